"""What compute writes for people, and what it leaves off by default (issue 19).

One small demo city, fetched once, computed in two copies of the workspace: with the defaults
(no per-scene rasters; per-date GeoJSON, as the city is small) and with ``outputs.scene_rasters``
on and ``outputs.geojson_max_cells`` below the city's cell count.
"""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pandas as pd
import pytest
import rasterio

from uhi.config import load_config
from uhi.demo import DemoSpec, write_demo
from uhi.raster.indices import VARIABLES
from uhi.stages import get_spec
from uhi.stages.runner import execute
from uhi.workspace import Workspace


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    result = write_demo(root, DemoSpec(seed=7, size_km=2.0, first_year=2018, last_year=2019, scenes_per_year=2))
    default = load_config(result.config, environ={}, overrides={"outputs.formats": ["geojson", "cog"]})
    ws_default = Workspace(default.resolved_workdir())
    with ws_default.locked():
        execute(get_spec("fetch"), default, ws_default)
    shutil.copytree(ws_default.root, root / "ws_on")
    with ws_default.locked():
        execute(get_spec("compute"), default, ws_default)
    on = load_config(
        result.config, environ={},
        overrides={
            "workdir": str(root / "ws_on"), "outputs.formats": ["geojson", "cog"],
            "outputs.scene_rasters": True, "outputs.geojson_max_cells": 10,
        },
    )
    ws_on = Workspace(on.resolved_workdir())
    records = _Records()
    logger = logging.getLogger("uhi.compute")
    logger.addHandler(records)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        with ws_on.locked():
            execute(get_spec("compute"), on, ws_on)
    finally:
        logger.removeHandler(records)
        logger.setLevel(old_level)
    return ws_default, ws_on, records.messages


def _read(path):
    with rasterio.open(path) as src:
        return src.read(1), src.transform, src.descriptions, src.units


def test_no_scene_rasters_by_default_and_composites_equal_the_scene_means(two_runs):
    ws_default, ws_on, _ = two_runs
    scenes_dir = ws_default.path("compute", "scenes")
    assert not scenes_dir.exists() or not any(scenes_dir.rglob("*.tif"))
    panel = pd.read_parquet(ws_on.panel, columns=["date", "year", "scene_id"]).drop_duplicates("date")
    checked = 0
    most = 0
    for year, rows in panel.groupby("year"):
        used = [sid for joined in rows["scene_id"] for sid in joined.split("+")]
        most = max(most, len(used))
        for var in VARIABLES:
            composite, transform, desc, units = _read(
                ws_default.path("compute", "outputs", "composites", f"{var}_{year}.tif")
            )
            assert desc == (var,) and units == (("degC",) if var == "lst_c" else ("1",))
            with rasterio.open(ws_default.path("compute", "outputs", "composites", f"{var}_{year}.tif")) as src:
                # a cloud-optimised GeoTIFF as GDAL's reader recognises one (its ghost header
                # says the IFDs come first and tiles in order), tiled, with overviews
                structure = src.tags(ns="IMAGE_STRUCTURE")
                assert structure["LAYOUT"] == "COG" and structure["COMPRESSION"] == "ZSTD"
                assert structure["PREDICTOR"] == "3" and src.profile["blockxsize"] == 256
                assert src.overviews(1) or max(src.shape) <= 256
            # the mean computed here from the per-scene rasters the key writes: float64 sum of
            # the clear pixels / their count, as float32 (NaN where no scene saw the pixel)
            total = np.zeros(composite.shape)
            count = np.zeros(composite.shape)
            for sid in used:
                values, scene_transform, _, _ = _read(ws_on.path("compute", "scenes", sid, f"{var}.tif"))
                assert scene_transform == transform  # the demo's scenes share one pixel grid
                ok = ~np.isnan(values)
                total[ok] += values[ok].astype(np.float64)
                count[ok] += 1
            with np.errstate(invalid="ignore", divide="ignore"):
                expected = np.where(count > 0, total / count, np.nan).astype(np.float32)
            assert np.isfinite(expected).mean() > 0.5
            # exact: the same float64 sums and division, in the same scene order
            np.testing.assert_array_equal(composite, expected)
            # and the composite does not depend on whether the per-scene rasters were written
            np.testing.assert_array_equal(
                composite, _read(ws_on.path("compute", "outputs", "composites", f"{var}_{year}.tif"))[0]
            )
            checked += 1
    assert checked == 2 * len(VARIABLES)
    assert most >= 2  # a mean of several scenes, not only copies of one


def test_scene_rasters_key_writes_every_used_scene(two_runs):
    _, ws_on, _ = two_runs
    panel = pd.read_parquet(ws_on.panel, columns=["scene_id"])
    used = {sid for joined in panel["scene_id"].unique() for sid in joined.split("+")}
    folders = {p.name for p in ws_on.path("compute", "scenes").iterdir()}
    assert used <= folders
    for sid in used:
        names = sorted(p.name for p in ws_on.path("compute", "scenes", sid).iterdir())
        assert names == sorted(f"{v}.tif" for v in (*VARIABLES, "valid"))
        with rasterio.open(ws_on.path("compute", "scenes", sid, "lst_c.tif")) as src:
            assert src.overviews(1) or max(src.shape) <= 256  # a COG: overviews when larger than a tile
            assert src.profile["compress"] == "zstd" and src.descriptions == ("lst_c",)


def test_per_date_geojson_above_the_cell_limit_is_left_out_and_said(two_runs):
    ws_default, ws_on, messages = two_runs
    n_cells = len(pd.read_parquet(ws_on.cells, columns=["cell"]))
    dates = pd.read_parquet(ws_on.panel, columns=["date"])["date"].nunique()
    out_on = ws_on.path("compute", "outputs")
    assert not list(out_on.glob("*_outputs_*.geojson"))
    assert (out_on / "demo_cells.geojson").is_file()  # the cells file stays
    (said,) = [m for m in messages if "per-date GeoJSON not written" in m]
    assert "outputs.geojson_max_cells" in said and f"{n_cells} cells" in said
    assert f"to {n_cells} or more" in said and f"its {dates} files" in said and "MB" in said
    assert "panel.parquet" in said
    # under the limit (the default 100,000 here) every date is written
    written = sorted(ws_default.path("compute", "outputs").glob("demo_outputs_*.geojson"))
    assert len(written) == dates
    doc = json.loads(written[0].read_text())
    assert len(doc["features"]) == n_cells

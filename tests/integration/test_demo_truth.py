"""fetch + compute on the demo city recover the planted truth within the documented tolerances."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from uhi.demo import DemoSpec, write_demo

pytestmark = pytest.mark.slow  # one fetch + compute of a 2 km city: ~20-40 s on 2 cores


@pytest.fixture(scope="module")
def computed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    from uhi.cli.common import build_run_config, run_stages

    root = tmp_path_factory.mktemp("demo-truth") / "city"
    result = write_demo(root, DemoSpec(seed=11, size_km=2.0, scenes_per_year=2))
    cfg = build_run_config(result.config)
    run_stages(cfg, ["fetch", "compute"])
    return cfg.resolved_workdir(), json.loads(result.truth.read_text())


def test_cells_and_morphology_match_the_plant(computed: tuple[Path, dict[str, Any]]) -> None:
    import geopandas as gpd

    ws, truth = computed
    planted = pd.read_parquet(ws.parent / "truth_cells.parquet")
    planted = planted[(planted["year"] == truth["years"][0]) & planted["in_aoi"]].set_index("cell")
    cells = gpd.read_parquet(ws / "compute" / "cells.parquet").set_index("cell")
    assert set(cells.index) == set(planted.index)
    j = cells.join(planted, rsuffix="_true")
    tol = truth["tolerances"]["end_to_end"]["site_coverage_abs"]
    assert (j["site_coverage"] - j["site_coverage_true"]).abs().max() < tol
    assert (j["zone"] == j["zone_true"]).mean() > 0.99


def test_panel_lst_is_planted_lst_plus_weather(computed: tuple[Path, dict[str, Any]]) -> None:
    ws, truth = computed
    planted = pd.read_parquet(ws.parent / "truth_cells.parquet")
    panel = pd.read_parquet(ws / "compute" / "panel.parquet")
    scenes = {s["id"]: s for s in truth["scenes"]}
    used = set(panel["scene_id"])
    assert not any(scenes[s]["kind"] in ("full_cloud", "l2sr") for s in used if s in scenes)
    m = panel.merge(planted, on=["cell", "year"], suffixes=("", "_true"))
    m = m[(m["valid_share"] > 0.99) & ~m["water"] & m["scene_id"].isin(scenes)]
    resid = m["lst_c"] - m["lst_c_true"] - m["scene_id"].map(lambda s: scenes[s]["offset_c"])
    blur = truth["blur"]["lst_c"]["rmse"]
    noise = truth["lst_model"]["pixel_noise_sd_c"]
    assert len(resid) > 1000
    assert abs(resid.mean()) < 0.1
    # pixels on ~48 m cells blur by ``blur``; pixel noise averages over ~2.6 pixels per cell
    assert np.sqrt(np.mean(resid**2)) < 1.25 * np.hypot(blur, noise)
    nd = m["ndvi"] - m["ndvi_true"]
    assert abs(nd.mean()) < 0.01 and np.sqrt(np.mean(nd**2)) < 1.25 * truth["blur"]["ndvi"]["rmse"]


def test_scene_and_summer_means_match_the_expected(computed: tuple[Path, dict[str, Any]]) -> None:
    ws, truth = computed
    tol = truth["tolerances"]["end_to_end"]
    panel = pd.read_parquet(ws / "compute" / "panel.parquet")
    scenes = {s["id"]: s for s in truth["scenes"]}
    # the expected means are over planted land cells: uhi's cells at most half water
    mostly_land = (panel["valid_share"] >= 0.5) & (panel["water_share"] <= 0.5)
    means = panel[mostly_land].groupby("scene_id")["lst_c"].mean()
    # scenes with a few clear cells left (the regional cloud deck) are not compared: the mean
    # of a handful of cells at a cloud's edge is dominated by the pixel blur
    enough = 0.1 * truth["cells"]["aoi"]
    means = means[[scenes[s]["clear_aoi_cells"] >= enough for s in means.index]]
    assert len(means) >= 10
    for scene_id, value in means.items():
        expected = scenes[scene_id]["expected_aoi_mean_lst_c"]
        assert abs(value - expected) < tol["scene_mean_lst_c_abs"], scene_id
    summer = means.groupby(means.index.map(lambda s: scenes[s]["year"])).mean()
    for year, value in summer.items():
        assert (
            abs(value - truth["expected_summer_mean_lst_c"][str(year)])
            < tol["summer_mean_lst_c_abs"]
        )
    slope = np.polyfit(summer.index.to_numpy(float), summer.to_numpy(), 1)[0]
    assert abs(slope - truth["expected_trend_c_per_year"]) < tol["trend_c_per_year_abs"]


def _classes(ws: Path, truth: dict[str, Any]) -> tuple[Any, Any]:
    """The urban/rural sets uhi's compute used, rebuilt from its own cells.parquet and config."""
    import geopandas as gpd

    from uhi.config import load_config
    from uhi.suhi import classify_cells

    cells = gpd.read_parquet(ws / "compute" / "cells.parquet")
    panel = pd.read_parquet(ws / "compute" / "panel.parquet", columns=["cell", "ndbi"])
    ndbi = panel.groupby("cell")["ndbi"].mean().reindex(cells["cell"]).to_numpy()
    cfg = load_config(ws.parent / "config.yaml", environ={})
    classes = classify_cells(
        cells["x_m"].to_numpy(), cells["y_m"].to_numpy(), ndbi,
        cells["water_share"].to_numpy(dtype=np.float64), cells["site_coverage"].to_numpy(),
        cfg.suhi, tile_xy=(cells["tile_x"].to_numpy(), cells["tile_y"].to_numpy()),
        area_m2=cells["area_m2"].to_numpy(dtype=np.float64),
    )
    return cells, classes


def test_suhi_is_the_planted_urban_minus_rural_difference(
    computed: tuple[Path, dict[str, Any]],
) -> None:
    """Per date, uhi's SUHI equals the planted urban-minus-rural difference over the cells
    clear that date (truth.json scenes[].expected_suhi_c), and its rural set is the plant's:
    the fields outside the city, never the named park cell."""
    ws, truth = computed
    tol = truth["tolerances"]["end_to_end"]["suhi_c_abs"]
    manifest = json.loads((ws / "manifest.json").read_text())
    ref = manifest["stages"]["compute"]["summary"]["suhi_reference"]
    assert ref["extent_cells"] == truth["suhi"]["extent_cells"]
    assert ref["urban_cells"] == truth["suhi"]["urban_cells"]
    assert ref["rural_cells"] == truth["suhi"]["rural_cells"] and ref["warning"] is None
    cells, classes = _classes(ws, truth)
    assert int(classes.rural.sum()) == ref["rural_cells"]  # the set compute used
    park = truth["suhi"]["park_cell"]
    row = np.flatnonzero(cells["cell"].to_numpy() == park)
    assert len(row) == 1 and not classes.rural[row[0]] and not classes.urban[row[0]]
    series = pd.read_excel(ws / "compute" / "outputs" / "demo_summary.xlsx", sheet_name="suhi")
    by_date = {s["date"]: s for s in truth["scenes"]}
    checked = 0
    for _, rec in series.iterrows():
        scene = by_date[str(rec["date"])[:10]]
        if scene["clear_aoi_cells"] < 0.1 * truth["cells"]["aoi"]:
            continue  # a handful of cells at a cloud deck's edge
        assert abs(rec["suhi_c"] - scene["expected_suhi_c"]) < tol, (scene["date"], rec["suhi_c"])
        checked += 1
    assert checked >= 10


def test_river_and_lake_are_colder_than_every_land_class(
    computed: tuple[Path, dict[str, Any]],
) -> None:
    """On every date, uhi's water temperature (water_lst_c) over the river and the lake is
    below the mean land LST of every planted land class, and lst_c of water cells is NaN."""
    ws, truth = computed
    planted = pd.read_parquet(ws.parent / "truth_cells.parquet")
    planted = planted[planted["year"] == truth["years"][0]][["cell", "land_class"]]
    panel = pd.read_parquet(ws / "compute" / "panel.parquet").merge(planted, on="cell")
    land = panel[panel["water_share"] <= 0.5].groupby(["date", "land_class"])["lst_c"].mean()
    water = panel[panel["land_class"].isin(["river", "lake"]) & (panel["water_share"] > 0.5)]
    assert water.loc[water["water_share"] == 1.0, "lst_c"].isna().all()  # no land pixel
    water = water.groupby(["date", "land_class"])["water_lst_c"].mean().unstack()
    land = land.unstack()[["core", "suburb", "industrial", "park", "field"]]
    both = water.join(land, how="inner").dropna(subset=["river"])
    assert len(both) >= 10
    for date, rec in both.iterrows():
        coldest_land = rec[["core", "suburb", "industrial", "park", "field"]].min()
        assert rec[["river", "lake"]].max() < coldest_land - 3.0, (date, rec.to_dict())

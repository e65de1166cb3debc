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

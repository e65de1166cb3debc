"""`uhi plan` on the demo city after `uhi run --to exposure`: it beats both naive plans and `uhi scenario` replays it."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pytest
from conftest import uhi_exit_code as uhi

from uhi.demo import DemoSpec, write_demo

pytestmark = pytest.mark.slow




@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo-plan")
    write_demo(root, DemoSpec(size_km=1.5, first_year=2019, last_year=2020, scenes_per_year=2))
    assert uhi("run", str(root / "config.yaml"), "--to", "exposure", "--set", "model.models=[ols, lag]") == 0
    return root


def test_demo_plan_beats_naive_plans_and_replays(demo: Path) -> None:
    cfg = str(demo / "config.yaml")
    ws = demo / "workspace"
    assert uhi("plan", cfg, "--budget", "250000", "--model", "lag") == 0
    s = json.loads((ws / "plan" / "summary.json").read_text())
    assert s["unit"] == "person-degC" and s["model"] == "lag"
    assert s["total_cost"] == pytest.approx(250000.0, rel=1e-9)
    assert s["total_benefit"] > s["naive_plans"]["hottest_cells"] > 0
    assert s["total_benefit"] > s["naive_plans"]["most_populated_cells"] > 0
    assert s["interval"]["low"] < s["total_benefit"] < s["interval"]["high"]
    assert uhi("scenario", cfg, "--changes", str(ws / "plan" / "changes.geojson"), "--model", "lag") == 0
    out = gpd.read_file(ws / "scenario" / "changes.geojson")
    pop = pd.read_parquet(ws / "exposure" / "cells.parquet").set_index("cell")["population"]
    replay = -float((out["dlst_c"] * out["cell"].map(pop).fillna(0.0)).sum())
    assert replay == pytest.approx(s["total_benefit"], rel=1e-6)
    # the default model has no albedo: cool roofs are refused naming the variable, nothing rewritten
    before = (ws / "plan" / "summary.json").read_bytes()
    assert uhi("plan", cfg, "--budget", "250000", "--intervention", "cool_roofs") == 2
    assert (ws / "plan" / "summary.json").read_bytes() == before

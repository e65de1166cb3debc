"""The plan stage on a synthetic workspace: agreement with `uhi scenario`, optimality, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import test_scenario as synth
from scipy.optimize import linprog

from uhi.config import build_config
from uhi.errors import ConfigError, InputError
from uhi.scenario import run_scenario
from uhi.stages.plan import run
from uhi.stats.weights import weights_for_cells
from uhi.workspace import Workspace


def _workspace(tmp_path: Path, *, population: bool = True) -> tuple[Workspace, gpd.GeoDataFrame, pd.Series]:
    ws, g = synth._workspace(tmp_path)
    pop = pd.Series(np.random.default_rng(3).integers(0, 500, len(g)).astype(float), index=g["cell"].to_numpy())
    if population:
        ws.path("exposure").mkdir(exist_ok=True)
        pd.DataFrame({"cell": pop.index, "population": pop.to_numpy(), "age65": pop.to_numpy() // 5}).to_parquet(
            ws.path("exposure", "cells.parquet"))
    return ws, g, pop


def _cfg(**plan: object):
    return build_config({"plan": {"budget": 60000.0, **plan}})


def _scenario_benefit(ws: Workspace, changes: Path, name: str, model: str, weight: pd.Series | None) -> float:
    rec = run_scenario(build_config(), ws, changes, model=model, name=name)
    if weight is None:  # area objective: the scenario's own area-weighted city mean
        return -float(rec["city"]["mean_dlst_c"])
    # the GeoPackage keeps full precision (the GeoJSON rounds properties to 6 decimals)
    out = gpd.read_file(ws.root / "scenario" / f"{name}.gpkg", layer=f"scenario_{name}")
    return -float((out["dlst_c"] * out["cell"].map(weight)).sum())


@pytest.mark.parametrize(("model", "objective"), [("lag", "people"), ("slx", "people"), ("ols", "area"),
                                                  ("lag", "area"), ("lag", "group:age65")])
def test_scenario_on_the_plans_changes_reproduces_its_benefit(tmp_path: Path, model: str, objective: str) -> None:
    ws, _, pop = _workspace(tmp_path)
    out = run(_cfg(model=model, objective=objective), ws)
    summary = json.loads(ws.path("plan", "summary.json").read_text())
    assert summary["total_benefit"] == out["total_benefit"] > 0
    assert summary["total_cost"] == pytest.approx(60000.0, rel=1e-12)
    weight = {"people": pop, "area": None, "group:age65": pop // 5}[objective]
    again = _scenario_benefit(ws, ws.path("plan", "changes.geojson"), "replay", model, weight)
    assert again == pytest.approx(summary["total_benefit"], rel=1e-6)
    # own + spill-over add up, and the lag model's spill-over is a real part of the benefit
    assert summary["own_benefit"] + summary["spillover_benefit"] == pytest.approx(summary["total_benefit"])
    if model == "lag":
        assert summary["spillover_benefit"] > 0.2 * summary["total_benefit"]


def test_three_single_cells_equal_one_cell_scenarios(tmp_path: Path) -> None:
    ws, _, pop = _workspace(tmp_path)
    run(_cfg(), ws)
    table = gpd.read_parquet(ws.path("plan", "cells.parquet"))
    for i, row in enumerate(table.iloc[[0, len(table) // 2, -1]].itertuples()):
        one = gpd.GeoDataFrame({"name": [row.cell], "ndvi": [row.change]}, geometry=[row.geometry], crs=table.crs)
        path = tmp_path / f"one{i}.geojson"
        path.write_text(one.to_json(drop_id=True))
        assert _scenario_benefit(ws, path, f"one{i}", "lag", pop) == pytest.approx(row.benefit, rel=1e-6)


def test_chosen_cells_equal_a_dense_inverse_linear_programme(tmp_path: Path) -> None:
    """Benefits from (I - rho W)^-1 formed densely, the budget split by HiGHS: the same cells are chosen."""
    ws, g, pop = _workspace(tmp_path)
    run(_cfg(), ws)
    table = gpd.read_parquet(ws.path("plan", "cells.parquet"))
    cells = gpd.read_parquet(ws.cells)
    w = weights_for_cells(cells, "knn:8").row_standardised().toarray()
    s = np.linalg.inv(np.eye(len(cells)) - synth.RHO * w)
    p = cells["cell"].map(pop).to_numpy()
    per_unit = pd.Series(-synth.B_NDVI * (s.T @ p), index=cells["cell"].to_numpy())
    dense = per_unit.loc[table["cell"]].to_numpy() * table["change"].to_numpy()
    np.testing.assert_allclose(table["benefit"], dense, rtol=1e-9)
    cost = table["cost"].to_numpy()
    lp = linprog(-dense, A_ub=cost[None, :], b_ub=[60000.0], bounds=[(0, 1)] * len(cost), method="highs")
    np.testing.assert_array_equal(table["selected"].to_numpy(), lp.x > 1e-9)
    np.testing.assert_allclose(table["fraction"], lp.x, atol=1e-9)


def test_the_plan_beats_both_naive_plans(tmp_path: Path) -> None:
    ws, _, _ = _workspace(tmp_path)
    run(_cfg(), ws)
    s = json.loads(ws.path("plan", "summary.json").read_text())
    assert s["total_benefit"] > s["naive_plans"]["hottest_cells"] > 0
    assert s["total_benefit"] > s["naive_plans"]["most_populated_cells"] > 0
    assert set(s["columns"]) >= {"benefit", "own_benefit", "spillover_benefit", "benefit_per_cost", "selected"}
    curve = pd.read_csv(ws.path("plan", "budget_curve.csv"))
    at_budget = np.interp(60000.0, curve["spend"], curve["benefit"])
    assert at_budget == pytest.approx(s["total_benefit"], rel=1e-9)
    assert {"cells.parquet", "chosen.geojson", "changes.geojson", "plan.xlsx", "budget_curve.csv",
            "budget_curve.png", "plan_map.png", "summary.json"} <= {p.name for p in ws.path("plan").iterdir()}


def test_whole_cells_and_trees(tmp_path: Path) -> None:
    ws, _, _ = _workspace(tmp_path)
    out = run(_cfg(intervention="trees", whole_cells=True), ws)
    s = json.loads(ws.path("plan", "summary.json").read_text())
    table = gpd.read_parquet(ws.path("plan", "cells.parquet"))
    assert set(table["fraction"].unique()) <= {0.0, 1.0}
    assert out["total_cost"] <= 60000.0 and s["amount_unit"] == "trees planted"
    # 50 m cells, half of the open ground planted at one tree per 50 m2: the whole change of a cell
    # costs trees x 500; the cap of 0.3 NDVI can only lower the number
    assert (table["cost"] / 500.0 <= np.floor(0.5 * 2500.0 / 50.0) + 1e-9).all()


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"budget": 1.0}, InputError, "is below the cheapest change"),
        ({"intervention": "cool_roofs"}, ConfigError, "changes 'albedo', which model 'lag' does not use"),
        ({"objective": "group:kids"}, ConfigError, "has no column 'kids'"),
        ({"budget": None}, ConfigError, "no budget: give --budget"),
    ],
)
def test_bad_input_writes_nothing(tmp_path: Path, change: dict, error: type, message: str) -> None:
    ws, _, _ = _workspace(tmp_path)
    cfg = build_config({"plan": {"budget": 60000.0, **{k: v for k, v in change.items() if v is not None}}})
    if change.get("budget", 0) is None:
        cfg = build_config()
    with pytest.raises(error, match=message):
        run(cfg, ws)
    assert not ws.path("plan").exists() or not any(ws.path("plan").iterdir())


def test_people_without_exposure_and_no_model(tmp_path: Path) -> None:
    ws, _, _ = _workspace(tmp_path, population=False)
    with pytest.raises(InputError, match=r"exposure/cells.parquet, which is missing; .*run `uhi exposure` first"):
        run(_cfg(), ws)
    assert run(_cfg(objective="area"), ws)["total_benefit"] > 0  # area needs no population
    ws.model_summary.unlink()
    with pytest.raises(InputError, match="model/summary.json is missing .*run uhi model first"):
        run(_cfg(objective="area"), ws)


def test_a_budget_above_every_change_buys_all_and_says_so(tmp_path: Path) -> None:
    ws, _, _ = _workspace(tmp_path)
    run(_cfg(budget=1e9), ws)
    s = json.loads(ws.path("plan", "summary.json").read_text())
    table = gpd.read_parquet(ws.path("plan", "cells.parquet"))
    assert table["selected"].all() and s["total_cost"] == pytest.approx(table["cost"].sum())
    assert any("leaves the rest unspent" in n for n in s["notes"])


def test_water_cells_left_out_as_the_scenario_leaves_them_out(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    ws, _, pop = _workspace(tmp_path)
    table = pq.read_table(ws.cells)
    water = np.zeros(table.num_rows)
    water[:30] = 0.9  # a lake along the south edge: more than model.max_water_share (0.5)
    pq.write_table(table.append_column("water_share", pa_array(water)), ws.cells)
    run(_cfg(), ws)
    s = json.loads(ws.path("plan", "summary.json").read_text())
    assert s["water_cells"]["cells_left_out_water"] == 30 and s["cells_modelled"] == 144 - 30
    chosen = gpd.read_parquet(ws.path("plan", "cells.parquet"))
    lake = set(pq.read_table(ws.cells, columns=["cell"]).column("cell").to_pylist()[:30])
    assert not lake & set(chosen["cell"])
    again = _scenario_benefit(ws, ws.path("plan", "changes.geojson"), "replay", "lag", pop)
    assert again == pytest.approx(s["total_benefit"], rel=1e-6)


def pa_array(values: np.ndarray):
    import pyarrow as pa

    return pa.array(values)

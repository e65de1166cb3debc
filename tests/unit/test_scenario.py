"""Scenario: change polygons -> covariates -> predicted LST change, against dense references."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from shapely.geometry import box

from uhi.config import build_config
from uhi.errors import InputError
from uhi.scenario import (
    ChangeSet,
    ScenarioModel,
    apply_changes,
    coverage_shares,
    predict_lst_change,
    read_changes,
    read_scenario_model,
    run_scenario,
)
from uhi.stats.weights import build_weights
from uhi.workspace import Workspace

UTM = "EPSG:32612"
SIDE = 12  # cells per side
CELL_M = 50.0
X0, Y0 = 700000.0, 5650000.0
B_NDVI, B_NDBI, B_SC = -8.0, 4.0, 3.0
RHO = 0.5


def _grid() -> gpd.GeoDataFrame:
    rows = []
    for j in range(SIDE):
        for i in range(SIDE):
            x, y = X0 + i * CELL_M, Y0 + j * CELL_M
            rows.append({"cell": f"c{j:02d}{i:02d}", "tile_x": i, "tile_y": j, "zoom": 19, "geometry": box(x, y, x + CELL_M, y + CELL_M)})
    g = gpd.GeoDataFrame(rows, crs=UTM)
    g["x_m"] = g.geometry.centroid.x
    g["y_m"] = g.geometry.centroid.y
    g["area_m2"] = CELL_M * CELL_M
    return g


def _workspace(
    tmp_path: Path, *, best: str = "lag", years: tuple[int, ...] = (2019, 2020)
) -> tuple[Workspace, gpd.GeoDataFrame]:
    """A workspace holding cells, a two-year panel and a model summary (the contract's shape)."""
    rng = np.random.default_rng(42)
    ws = Workspace(tmp_path / "ws")
    g = _grid()
    n = len(g)
    g["site_coverage"] = rng.uniform(0, 0.8, n)
    g["urban"] = g["site_coverage"] > 0.3
    cells = g.to_crs(4326)
    ws.cells.parent.mkdir(parents=True, exist_ok=True)
    cells.to_parquet(ws.cells)
    import pyarrow.parquet as pq

    table = pq.read_table(ws.cells)
    meta = dict(table.schema.metadata or {})
    meta[b"uhi:working_crs"] = UTM.encode()
    pq.write_table(table.replace_schema_metadata(meta), ws.cells)
    frames = []
    for year in years:
        for day in (10, 20):
            ndvi = rng.uniform(0.0, 0.7, n)
            ndbi = rng.uniform(-0.3, 0.3, n)
            lst = 30 + 0.1 * (year - years[0]) + B_NDVI * ndvi + B_NDBI * ndbi + B_SC * g["site_coverage"].to_numpy() + rng.normal(0, 0.3, n)
            frames.append(
                pd.DataFrame(
                    {
                        "cell": g["cell"],
                        "date": pd.Timestamp(f"{year}-07-{day}"),
                        "year": year,
                        "lst_c": lst,
                        "ndvi": ndvi,
                        "ndbi": ndbi,
                        "anomaly_c": lst - 25,
                    }
                )
            )
    pd.concat(frames, ignore_index=True).to_parquet(ws.panel)
    coefs = {"const": 30.0, "ndvi": B_NDVI, "ndbi": B_NDBI, "site_coverage": B_SC}
    summary = {
        "y": "lst_c",
        "x": ["ndvi", "ndbi", "site_coverage"],
        "weights": "knn:8",
        "best_model": best,
        # the model stage's layout: models -> name -> years -> period -> fit record
        "models": {
            "ols": {"years": {str(y): {"coefficients": coefs, "r2": 0.8} for y in (2019, 2020)}, "mean_r2": 0.8},
            "lag": {
                "years": {str(y): {"coefficients": coefs, "rho": RHO, "r2": 0.85, "weights": "knn:8"} for y in (2019, 2020)},
                "mean_r2": 0.85,
            },
            "slx": {
                "years": {str(y): {"coefficients": {**coefs, "W_ndvi": -2.0}, "r2": 0.82} for y in (2019, 2020)},
                "mean_r2": 0.82,
            },
            "panel_fe": {
                "years": {"pooled": {"coefficients": {"ndvi": B_NDVI, "ndbi": B_NDBI}, "x": ["ndvi", "ndbi"], "rho": RHO, "r2": 0.9}},
                "mean_r2": 0.9,
            },
        },
    }
    ws.write_json(ws.model_summary, summary)
    return ws, g


def _changes(tmp_path: Path, features: list[dict]) -> Path:
    path = tmp_path / "changes.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def _feature(geom_utm, props: dict) -> dict:
    geom = gpd.GeoSeries([geom_utm], crs=UTM).to_crs(4326).iloc[0]
    return {"type": "Feature", "properties": props, "geometry": geom.__geo_interface__}


def test_predict_lag_matches_dense_inverse() -> None:
    rng = np.random.default_rng(1)
    xy = rng.uniform(0, 1000, (60, 2))
    w = build_weights(xy, "knn:5").row_standardised()
    dx = np.zeros((60, 2))
    dx[:5, 0] = 0.2
    model = ScenarioModel("lag", 2020, ("ndvi", "ndbi"), {"ndvi": -8.0, "ndbi": 4.0}, {}, 0.6, "knn:5")
    direct, total = predict_lst_change(dx, model, w)
    dense = np.linalg.solve(np.eye(60) - 0.6 * w.toarray(), dx @ np.array([-8.0, 4.0]))
    np.testing.assert_allclose(total, dense, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(direct[:5], -1.6)
    assert np.all(direct[5:] == 0)
    # spill-over: neighbours of the changed cells cool too, and the multiplier deepens the change
    assert np.all(total[:5] < direct[:5])
    assert (total[5:] < 0).sum() > 0


def test_predict_lag_series_matches_dense_inverse() -> None:
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 5000, (1500, 2))
    w = build_weights(xy, "knn:8").row_standardised()
    dx = np.zeros((1500, 1))
    dx[rng.choice(1500, 40, replace=False), 0] = 0.2
    model = ScenarioModel("lag", 2020, ("ndvi",), {"ndvi": -6.0}, {}, 0.8, "knn:8")
    _, series = predict_lst_change(dx, model, w, exact_max_n=0)  # Neumann series
    _, lu = predict_lst_change(dx, model, w)  # sparse LU
    dense = np.linalg.solve(np.eye(1500) - 0.8 * w.toarray(), dx[:, 0] * -6.0)
    np.testing.assert_allclose(lu, dense, rtol=0, atol=1e-12)
    np.testing.assert_allclose(series, dense, rtol=0, atol=1e-11)


def test_predict_slx_adds_lagged_term() -> None:
    xy = np.array([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    w = build_weights(xy, "knn:1").row_standardised()
    dx = np.array([[0.1], [0.0], [0.0], [0.0]])
    model = ScenarioModel("slx", 2020, ("ndvi",), {"ndvi": -8.0}, {"ndvi": -2.0}, None, "knn:1")
    direct, total = predict_lst_change(dx, model, w)
    expected = dx[:, 0] * -8.0 + (w.toarray() @ dx[:, 0]) * -2.0
    np.testing.assert_allclose(direct, expected)
    np.testing.assert_array_equal(total, direct)


def test_coverage_shares_half_and_full() -> None:
    cells = gpd.GeoDataFrame(geometry=[box(0, 0, 10, 10), box(10, 0, 20, 10), box(20, 0, 30, 10)], crs=UTM)
    polys = gpd.GeoDataFrame(geometry=[box(5, -5, 20, 15)], crs=UTM)
    s = coverage_shares(cells, polys).toarray()
    np.testing.assert_allclose(s[:, 0], [0.5, 1.0, 0.0])


def test_apply_changes_add_set_clip_and_input_untouched() -> None:
    base = pd.DataFrame({"ndvi": [0.5, 0.95, 0.1], "site_coverage": [0.2, 0.4, 0.5]})
    frame = gpd.GeoDataFrame({"name": ["a", "b"], "change": ["add", "set"]}, geometry=[box(0, 0, 1, 1)] * 2, crs=UTM)
    cs = ChangeSet(frame=frame, values=({"ndvi": 0.2}, {"site_coverage": 0.6}))
    shares = sp.csr_matrix(np.array([[0.5, 0.0], [1.0, 0.0], [0.0, 0.5]]))
    out = apply_changes(base, shares, cs)
    np.testing.assert_allclose(out["ndvi"], [0.6, 1.0, 0.1])  # 0.95 + 0.2 clipped to 1
    np.testing.assert_allclose(out["site_coverage"], [0.2, 0.4, 0.55])
    np.testing.assert_array_equal(base["ndvi"], [0.5, 0.95, 0.1])


def test_read_scenario_model_picks_latest_year_and_best(tmp_path: Path) -> None:
    ws, _ = _workspace(tmp_path)
    summary = json.loads(ws.model_summary.read_text())
    m = read_scenario_model(summary)
    assert (m.kind, m.year, m.rho, m.x) == ("lag", 2020, RHO, ("ndvi", "ndbi", "site_coverage"))
    assert read_scenario_model(summary, "slx", 2019).lag_coefficients == {"ndvi": -2.0}
    pooled = read_scenario_model(summary, "panel_fe")
    assert (pooled.year, pooled.x, pooled.rho) == (None, ("ndvi", "ndbi"), RHO)
    with pytest.raises(InputError, match="not in model/summary.json"):
        read_scenario_model(summary, "error")
    with pytest.raises(InputError, match="not fitted for 2015"):
        read_scenario_model(summary, "ols", 2015)


def test_greening_cools_inside_and_lag_spills_over(tmp_path: Path) -> None:
    ws, g = _workspace(tmp_path)
    # 2 x 2 cells in the middle, greened by +0.2 NDVI
    park = box(X0 + 5 * CELL_M, Y0 + 5 * CELL_M, X0 + 7 * CELL_M, Y0 + 7 * CELL_M)
    path = _changes(tmp_path, [_feature(park.buffer(-0.01), {"name": "park", "ndvi": 0.2})])
    cfg = build_config()
    lag = run_scenario(cfg, ws, path, model="lag", name="park_lag")
    ols = run_scenario(cfg, ws, path, model="ols", name="park_ols")
    out_lag = gpd.read_file(ws.root / "scenario" / "park_lag.geojson").set_index("cell")
    out_ols = gpd.read_file(ws.root / "scenario" / "park_ols.geojson").set_index("cell")
    inside = ["c0505", "c0506", "c0605", "c0606"]
    # OLS: exactly b * dNDVI inside (share ~1), exactly zero elsewhere
    np.testing.assert_allclose(out_ols.loc[inside, "dlst_c"], B_NDVI * 0.2, rtol=1e-3)
    assert (out_ols.drop(index=inside)["dlst_c"] == 0).all()
    # lag: inside cools more than the direct effect; neighbours cool a little; far cells ~0
    assert (out_lag.loc[inside, "dlst_c"] < B_NDVI * 0.2 * 0.999).all()
    assert out_lag.loc["c0404", "dlst_c"] < -0.01
    assert abs(out_lag.loc["c0000", "dlst_c"]) < abs(out_lag.loc["c0404", "dlst_c"])
    assert lag["polygons"][0]["mean_dlst_c"] < ols["polygons"][0]["mean_dlst_c"] < 0
    assert lag["city"]["outside_mean_dlst_c"] < 0 == ols["city"]["outside_mean_dlst_c"]
    # the workbook and summary are there
    book = pd.read_excel(ws.root / "scenario" / "park_lag.xlsx", sheet_name=None)
    assert {"cells", "polygons", "city", "about"} <= set(book)
    assert json.loads((ws.root / "scenario" / "park_lag_summary.json").read_text())["model"] == "lag"


def test_no_op_change_is_exactly_zero(tmp_path: Path) -> None:
    ws, _ = _workspace(tmp_path)
    area = box(X0 + 2 * CELL_M + 10, Y0 + 2 * CELL_M + 10, X0 + 9 * CELL_M, Y0 + 4 * CELL_M)
    path = _changes(tmp_path, [_feature(area, {"name": "nothing", "ndvi": 0.0, "ndbi": 0})])
    rec = run_scenario(build_config(), ws, path, model="lag", name="noop")
    out = gpd.read_file(ws.root / "scenario" / "noop.geojson")
    assert (out["dlst_c"] == 0).all() and (out["dlst_direct_c"] == 0).all()
    assert rec["city"]["mean_dlst_c"] == 0.0


def test_set_site_coverage_partial_cell(tmp_path: Path) -> None:
    ws, g = _workspace(tmp_path)
    half = box(X0, Y0, X0 + CELL_M / 2, Y0 + CELL_M)  # west half of cell c0000
    path = _changes(tmp_path, [_feature(half, {"change": "set", "site_coverage": 0.6})])
    run_scenario(build_config(), ws, path, model="ols", name="roofs")
    out = gpd.read_file(ws.root / "scenario" / "roofs.geojson").set_index("cell")
    before = g.set_index("cell").loc["c0000", "site_coverage"]
    assert out.loc["c0000", "share_changed"] == pytest.approx(0.5, abs=1e-3)
    assert out.loc["c0000", "site_coverage_after"] == pytest.approx(before + 0.5 * (0.6 - before), abs=1e-3)
    assert out.loc["c0000", "dlst_c"] == pytest.approx(B_SC * 0.5 * (0.6 - before), abs=1e-3)


def test_changes_validation(tmp_path: Path) -> None:
    ws, _ = _workspace(tmp_path)
    cfg = build_config()
    inside = box(X0 + 10, Y0 + 10, X0 + 90, Y0 + 90)
    bad_var = _changes(tmp_path, [_feature(inside, {"albedo": 0.1})])
    with pytest.raises(InputError, match=r"changes to \['albedo'\] cannot be predicted"):
        run_scenario(cfg, ws, bad_var, model="ols")
    text = _changes(tmp_path, [_feature(inside, {"ndvi": "lots"})])
    with pytest.raises(InputError, match="must be a number"):
        read_changes(text, UTM)
    far = _changes(tmp_path, [_feature(box(0, 0, 10, 10), {"ndvi": 0.1})])
    with pytest.raises(InputError, match="overlaps no cell|no change polygon"):
        run_scenario(cfg, ws, far, model="ols")
    with pytest.raises(InputError, match="not found"):
        read_changes(tmp_path / "nope.geojson", UTM)


def test_new_buildings_recompute_site_coverage(tmp_path: Path) -> None:
    ws, g = _workspace(tmp_path)
    existing = gpd.GeoDataFrame(
        {"height": [9.0], "floors": [3]}, geometry=[box(X0 + 50, Y0 + 50, X0 + 60, Y0 + 100)], crs=UTM
    )
    layer = tmp_path / "buildings.gpkg"
    existing.to_file(layer, driver="GPKG")
    cfg = build_config(overrides={"buildings": {"path": str(layer)}})
    half = box(X0, Y0, X0 + 25, Y0 + 50)  # half of cell c0000, which has no building
    overlap = box(X0 + 50, Y0 + 50, X0 + 70, Y0 + 100)  # covers the existing one in c0101 and 10 m more
    path = _changes(tmp_path, [
        _feature(half, {"name": "new_a", "change": "building", "height": 12.0}),
        _feature(overlap, {"name": "new_b", "change": "building", "floors": 4}),
    ])
    run_scenario(cfg, ws, path, model="ols", name="build")
    out = gpd.read_file(ws.root / "scenario" / "build.geojson").set_index("cell")
    d_sc = out["site_coverage_after"] - out["site_coverage_before"]
    # union areas: the overlapping footprint adds only the 10 m x 50 m outside the existing one
    assert d_sc["c0000"] == pytest.approx(0.5, abs=1e-6)
    assert d_sc["c0101"] == pytest.approx(0.2, abs=1e-6)
    assert (d_sc.drop(index=["c0000", "c0101"]).abs() < 1e-9).all()
    assert out.loc["c0000", "dlst_c"] == pytest.approx(B_SC * 0.5, abs=1e-5)
    # without a buildings layer the footprints cannot be placed: a config error naming the key
    with pytest.raises(InputError, match="set buildings.path"):
        run_scenario(build_config(), ws, path, model="ols", name="build2")
    bad = _changes(tmp_path, [_feature(half, {"change": "building", "ndvi": 0.1})])
    with pytest.raises(InputError, match="takes only height"):
        read_changes(bad, UTM)


def test_water_cells_are_left_out_with_the_models_limit(tmp_path: Path) -> None:
    ws, g = _workspace(tmp_path)
    import pyarrow.parquet as pq

    cells = gpd.read_parquet(ws.cells)
    lake = ["c0505", "c0000"]
    cells["water_share"] = np.where(cells["cell"].isin(lake), 0.8, 0.0)
    cells.to_parquet(ws.cells)
    table = pq.read_table(ws.cells)
    meta = {**(table.schema.metadata or {}), b"uhi:working_crs": UTM.encode()}
    pq.write_table(table.replace_schema_metadata(meta), ws.cells)
    summary = json.loads(ws.model_summary.read_text())
    summary["notes"] = {"water": {"max_water_share": 0.7}}  # the model stage's record wins
    ws.write_json(ws.model_summary, summary)
    park = box(X0 + 5 * CELL_M, Y0 + 5 * CELL_M, X0 + 7 * CELL_M, Y0 + 7 * CELL_M)
    path = _changes(tmp_path, [_feature(park.buffer(-0.01), {"name": "park", "ndvi": 0.2})])
    rec = run_scenario(build_config({"model": {"max_water_share": 0.9}}), ws, path, model="ols", name="w")
    assert rec["water_cells"]["cells_left_out_water"] == 2
    assert rec["water_cells"]["max_water_share"] == 0.7
    out = gpd.read_file(ws.root / "scenario" / "w.geojson")
    assert not set(lake) & set(out["cell"])
    assert len(out) == len(g) - 2

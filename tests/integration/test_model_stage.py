"""The model stage on a synthetic workspace with a planted SAR process: recovery, outputs, contract."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from uhi.config import build_config
from uhi.stages.model import SPEC
from uhi.stages.runner import execute
from uhi.workspace import Workspace

PLANTED = {"ndvi": -8.0, "ndbi": 5.0, "site_coverage": 6.0}
RHO = 0.5
YEARS = (2017, 2018, 2019, 2020)
SIDE = 36  # 1,296 cells: exact (LU) log-determinant, fast


def _cells_and_panel(seed: int = 7) -> tuple[object, pd.DataFrame]:
    """Zoom-19 tiles near Calgary; y_t = (I - rho W)^-1 (X_t b + e_t) + base_t, two dates per year."""
    import geopandas as gpd
    import mercantile
    import scipy.sparse as sp
    from pyproj import Transformer
    from scipy.sparse.linalg import splu
    from shapely.geometry import box

    from uhi.stats.weights import build_weights

    rng = np.random.default_rng(seed)
    x0, y0 = mercantile.tile(-114.07, 51.05, 19)[:2]
    tx, ty = np.meshgrid(np.arange(x0, x0 + SIDE), np.arange(y0, y0 + SIDE))
    tx, ty = tx.ravel(), ty.ravel()
    bounds = [mercantile.bounds(int(a), int(b), 19) for a, b in zip(tx, ty, strict=True)]
    geoms = [box(b.west, b.south, b.east, b.north) for b in bounds]
    lon = np.array([(b.west + b.east) / 2 for b in bounds])
    lat = np.array([(b.south + b.north) / 2 for b in bounds])
    x_m, y_m = Transformer.from_crs(4326, 32611, always_xy=True).transform(lon, lat)
    n = tx.size
    quad = [mercantile.quadkey(int(a), int(b), 19) for a, b in zip(tx, ty, strict=True)]
    site = rng.uniform(0, 0.6, n)
    zone = np.where(tx - x0 < SIDE // 2, "west", "east") + np.where(ty - y0 < SIDE // 2, "-n", "-s")
    cells = gpd.GeoDataFrame(
        {"cell": quad, "tile_x": tx, "tile_y": ty, "zoom": 19, "x_m": x_m, "y_m": y_m,
         "site_coverage": site, "zone": zone},
        geometry=geoms, crs=4326,
    )
    w = build_weights(np.column_stack([x_m, y_m]), "knn:8").row_standardised()
    lu = splu((sp.identity(n, format="csc") - RHO * w).tocsc())
    rows = []
    for i, year in enumerate(YEARS):
        ndvi = rng.uniform(0.1, 0.8, n)
        ndbi = rng.uniform(-0.4, 0.3, n)
        xb = PLANTED["ndvi"] * ndvi + PLANTED["ndbi"] * ndbi + PLANTED["site_coverage"] * site
        lst = lu.solve(xb + rng.normal(0, 1.0, n)) + 30.0 + 0.4 * i
        for day in (10, 25):
            frame = pd.DataFrame({
                "cell": quad, "date": pd.Timestamp(year, 7, day), "year": year,
                "lst_c": lst, "ndvi": ndvi, "ndbi": ndbi, "anomaly_c": lst - 30.0,
            })
            rows.append(frame)
    panel = pd.concat(rows, ignore_index=True)
    # clouds: one date missing for a tenth of the cells (the yearly mean is unchanged) ...
    miss = (panel["date"].dt.day == 25) & (rng.uniform(size=len(panel)) < 0.1)
    panel.loc[miss, ["lst_c", "ndvi", "ndbi", "anomaly_c"]] = np.nan
    # ... and 30 cells never seen in 2018 (dropped that year and from the balanced panel)
    gone = panel["cell"].isin(quad[:30]) & (panel["year"] == 2018)
    panel.loc[gone, ["lst_c", "ndvi", "ndbi", "anomaly_c"]] = np.nan
    return cells, panel


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, object, dict]:
    root = tmp_path_factory.mktemp("ws")
    ws = Workspace(root)
    cells, panel = _cells_and_panel()
    ws.stage_dir("compute").mkdir(parents=True)
    cells.to_parquet(ws.cells)
    panel.to_parquet(ws.panel)
    config = build_config({"workdir": str(root)})
    with ws.locked():
        outcome = execute(SPEC, config, ws)
    summary = json.loads(ws.model_summary.read_text())
    return ws, config, {"outcome": outcome, "summary": summary}


def test_writes_exactly_the_declared_outputs(workspace: tuple) -> None:
    ws, _, out = workspace
    names = sorted(p.name for p in ws.files_under(ws.stage_dir("model")))
    assert names == [
        "hotspots.geojson", "hotspots.parquet", "model.gpkg", "model.xlsx", "predictions.geojson", "summary.json",
    ]
    assert not out["outcome"].skipped


def test_planted_coefficients_and_rho_recovered(workspace: tuple) -> None:
    """Per year, the lag model's estimates lie within 3 standard errors of the planted values."""
    summary = workspace[2]["summary"]
    years = summary["models"]["lag"]["years"]
    assert sorted(years) == [str(y) for y in YEARS]
    for rec in years.values():
        for name, planted in PLANTED.items():
            assert abs(rec["coefficients"][name] - planted) < 3 * rec["std_errors"][name], (name, rec)
        assert abs(rec["rho"] - RHO) < 3 * rec["rho_se"]


def test_panel_fe_recovers_time_varying_slopes(workspace: tuple) -> None:
    """Cell and year effects absorb site_coverage (static) and the warming trend."""
    rec = workspace[2]["summary"]["models"]["panel_fe"]["years"]["pooled"]
    assert set(rec["coefficients"]) == {"ndvi", "ndbi"}
    for name in ("ndvi", "ndbi"):
        assert abs(rec["coefficients"][name] - PLANTED[name]) < 3 * rec["std_errors"][name]
    assert abs(rec["rho"] - RHO) < 3 * rec["rho_se"]
    assert rec["diagnostics"]["x_dropped_time_invariant"] == ["site_coverage"]
    assert rec["diagnostics"]["balanced_units"] == SIDE * SIDE - 30


def test_spatial_models_beat_ols_on_aic(workspace: tuple) -> None:
    models = workspace[2]["summary"]["models"]
    for year in map(str, YEARS):
        ols = models["ols"]["years"][year]["aic"]
        assert models["lag"]["years"][year]["aic"] < ols
        assert models["error"]["years"][year]["aic"] < ols
    assert workspace[2]["summary"]["best_model"] == "lag"


def test_nan_rows_counted_and_fe_fitted(workspace: tuple) -> None:
    summary = workspace[2]["summary"]
    assert summary["rows"]["2018"]["dropped_nan"] == 30
    assert summary["rows"]["2019"]["dropped_nan"] == 0
    assert summary["models"]["fe"]["years"]["2019"]["diagnostics"]["zones"] == 4
    assert summary["models"]["ols"]["years"]["2018"]["n"] == SIDE * SIDE - 30
    lag = summary["models"]["lag"]["years"]["2019"]
    total = lag["impacts"]["ndvi"]["total"]
    assert total == pytest.approx(lag["coefficients"]["ndvi"] / (1 - lag["rho"]), rel=1e-9)


def test_workbook_and_geojson_contents(workspace: tuple) -> None:
    ws = workspace[0]
    book = pd.read_excel(ws.stage_dir("model") / "model.xlsx", sheet_name=None)
    assert {"r2", "coefficients", "diagnostics", "impacts", "hotspots", "about"} <= set(book)
    r2 = book["r2"].set_index("model")
    assert list(r2.columns) == [*map(str, YEARS), "mean"] or list(r2.columns) == [*YEARS, "mean"]
    assert set(r2.index) == {"ols", "slx", "lag", "error", "fe", "panel_fe"}
    pred = json.loads((ws.stage_dir("model") / "predictions.geojson").read_text())
    assert len(pred["features"]) == SIDE * SIDE
    props = pred["features"][40]["properties"]
    assert props["model"] == "lag"
    assert props["y_2019"] == pytest.approx(props["fitted_2019"] + props["residual_2019"])
    hot = json.loads((ws.stage_dir("model") / "hotspots.geojson").read_text())
    classes = {f["properties"]["hotspot_all"] for f in hot["features"]}
    assert classes <= set(range(-3, 4)) and len(classes) > 1


def test_rerun_is_skipped(workspace: tuple) -> None:
    ws, config, _ = workspace
    with ws.locked():
        again = execute(SPEC, config, ws)
    assert again.skipped


def test_missing_x_column_names_it(tmp_path: Path) -> None:
    from uhi.errors import InputError

    ws = Workspace(tmp_path)
    cells, panel = _cells_and_panel()
    ws.stage_dir("compute").mkdir(parents=True)
    cells.drop(columns=["site_coverage"]).to_parquet(ws.cells)
    panel.to_parquet(ws.panel)
    config = build_config({"workdir": str(tmp_path)})
    with pytest.raises(InputError, match="site_coverage"):
        SPEC.run(config, ws)


def test_summary_is_readable_by_the_scenario_reader(workspace: tuple) -> None:
    """summary.json is the contract with scenario/forecast: every fitted model is readable."""
    from uhi.scenario import read_scenario_model

    summary = workspace[2]["summary"]
    lag = read_scenario_model(summary, "lag", 2019)
    assert lag.rho == summary["models"]["lag"]["years"]["2019"]["rho"]
    assert lag.coefficients["ndvi"] == summary["models"]["lag"]["years"]["2019"]["coefficients"]["ndvi"]
    slx = read_scenario_model(summary, "slx")
    assert set(slx.lag_coefficients) == set(PLANTED)
    panel = read_scenario_model(summary, "panel_fe")
    assert set(panel.coefficients) == {"ndvi", "ndbi"} and panel.rho is not None
    assert read_scenario_model(summary).kind == summary["best_model"]


def test_all_nan_x_column_is_left_out_and_said(tmp_path: Path) -> None:
    """Without a buildings layer compute writes NaN site_coverage: modelled without it, recorded."""
    ws = Workspace(tmp_path)
    cells, panel = _cells_and_panel()
    cells["site_coverage"] = np.nan
    ws.stage_dir("compute").mkdir(parents=True)
    cells.to_parquet(ws.cells)
    panel.to_parquet(ws.panel)
    config = build_config({"workdir": str(tmp_path), "model": {"models": ["ols"]}})
    SPEC.run(config, ws)
    summary = json.loads(ws.model_summary.read_text())
    assert summary["x"] == ["ndvi", "ndbi"]
    assert "site_coverage" in summary["skipped"]["x"]
    assert set(summary["models"]["ols"]["years"]["2019"]["coefficients"]) == {"const", "ndvi", "ndbi"}


def test_all_nan_y_is_refused(tmp_path: Path) -> None:
    from uhi.errors import InputError

    ws = Workspace(tmp_path)
    cells, panel = _cells_and_panel()
    panel["lst_c"] = np.nan
    ws.stage_dir("compute").mkdir(parents=True)
    cells.to_parquet(ws.cells)
    panel.to_parquet(ws.panel)
    with pytest.raises(InputError, match=r"\['lst_c'\] have no values at all"):
        SPEC.run(build_config({"workdir": str(tmp_path)}), ws)


def test_lag_by_2sls_when_configured(tmp_path: Path) -> None:
    """model.lag_estimator: 2sls fits the lag model by GM (spreg.GM_Lag's estimates on the
    same rows and weights), recovers the planted process, and keeps it out of the AIC ranking."""
    import spreg
    from libpysal.weights import WSP

    from uhi.stats.weights import build_weights

    ws = Workspace(tmp_path)
    cells, panel = _cells_and_panel()
    ws.stage_dir("compute").mkdir(parents=True)
    cells.to_parquet(ws.cells)
    panel.to_parquet(ws.panel)
    config = build_config({"workdir": str(tmp_path), "model": {"lag_estimator": "2sls", "models": ["ols", "lag", "error"]}})
    with ws.locked():
        execute(SPEC, config, ws)
    summary = json.loads(ws.model_summary.read_text())
    assert summary["lag_estimator"] == "2sls" and "2SLS" in summary["best_model_criterion"]
    assert summary["best_model"] == "error"  # lag is not AIC-ranked under 2SLS
    rec = summary["models"]["lag"]["years"]["2019"]
    assert rec["diagnostics"]["method"] == "gm-2sls"
    for name, planted in PLANTED.items():
        assert abs(rec["coefficients"][name] - planted) < 3 * rec["std_errors"][name]
    assert abs(rec["rho"] - RHO) < 3 * rec["rho_se"]
    # the same year's rows through spreg (2019 has no cloud-free gap: every cell, both dates)
    year = panel[panel["year"] == 2019].groupby("cell", sort=False)[["lst_c", "ndvi", "ndbi"]].mean()
    frame = cells.set_index("cell").join(year, how="inner")
    w = build_weights(frame[["x_m", "y_m"]].to_numpy(), "knn:8").row_standardised()
    x = frame[["ndvi", "ndbi", "site_coverage"]].to_numpy()
    ref = spreg.GM_Lag(frame[["lst_c"]].to_numpy(), x, w=WSP(w.tocsr()).to_W(silence_warnings=True), w_lags=1)
    ours = [rec["coefficients"][k] for k in ("const", "ndvi", "ndbi", "site_coverage")] + [rec["rho"]]
    np.testing.assert_allclose(ours, ref.betas.ravel(), rtol=1e-6)

"""model.sensor_effects: a planted ETM+ offset is recovered from yearly cell means, and the
scenario reader never treats a sensor term as an intervention."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from uhi.config import build_config
from uhi.scenario import read_scenario_model
from uhi.stages.model import SPEC
from uhi.stages.runner import execute
from uhi.stats.sensors import sensor_of_platforms, sensor_terms
from uhi.workspace import Workspace

SIDE = 12  # 144 cells
OFFSET_L7 = 2.0  # planted: an ETM+ observation reads 2 C warmer than a TM one of the same cell-day
SLOPE = -8.0  # planted ndvi slope
OBS = 4  # observations per cell and year


def _cells() -> object:
    import geopandas as gpd
    from shapely.geometry import box

    ix, iy = np.meshgrid(np.arange(SIDE), np.arange(SIDE))
    ix, iy = ix.ravel(), iy.ravel()
    x_m, y_m = 500_000.0 + 30.0 * ix, 5_650_000.0 + 30.0 * iy
    geoms = [box(a, b, a + 30.0, b + 30.0) for a, b in zip(x_m, y_m, strict=True)]
    cells = gpd.GeoDataFrame({"cell": [f"c{i:03d}" for i in range(ix.size)], "x_m": x_m + 15, "y_m": y_m + 15},
                             geometry=geoms, crs=32611)
    return cells.to_crs(4326)


def _panel(platforms_by_year: dict[int, tuple[str, str]], seed: int = 3) -> tuple[pd.DataFrame, dict[int, np.ndarray]]:
    """OBS observations per cell-year; each observation's platform drawn per cell (so the ETM+
    share varies between cells), value = 30 + SLOPE * ndvi + OFFSET_L7 * [ETM+] + noise."""
    rng = np.random.default_rng(seed)
    n = SIDE * SIDE
    cells = [f"c{i:03d}" for i in range(n)]
    rows, l7_share = [], {}
    for year, (older, newer) in platforms_by_year.items():
        ndvi = rng.uniform(0.1, 0.8, n)
        k_new = rng.integers(0, OBS + 1, n)  # how many of the cell's OBS observations the newer platform made
        l7_share[year] = k_new / OBS if newer == "landsat-7" else np.zeros(n)
        for j in range(OBS):
            plat = np.where(j < k_new, newer, older)
            lst = 30.0 + SLOPE * ndvi + OFFSET_L7 * (plat == "landsat-7") + rng.normal(0, 0.3, n)
            rows.append(pd.DataFrame({"cell": cells, "date": pd.Timestamp(year, 7, 1 + 3 * j), "year": year,
                                      "lst_c": lst, "ndvi": ndvi, "anomaly_c": lst - 30.0, "platform": plat}))
    return pd.concat(rows, ignore_index=True), l7_share


def _run(root: Path, panel: pd.DataFrame, **model: object) -> dict:
    ws = Workspace(root)
    ws.stage_dir("compute").mkdir(parents=True)
    _cells().to_parquet(ws.cells)
    panel.to_parquet(ws.panel)
    config = build_config({"workdir": str(root), "model": {"x": ["ndvi"], "models": ["ols"], **model}})
    with ws.locked():
        execute(SPEC, config, ws)
    return json.loads(ws.model_summary.read_text())


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, pd.DataFrame, dict]:
    # 2005 and 2006: TM and ETM+ (the 1999-2011 overlap); 2015: OLI/TIRS alone
    panel, share = _panel({2005: ("landsat-5", "landsat-7"), 2006: ("landsat-5", "landsat-7"),
                           2015: ("landsat-8", "landsat-8")})
    return _run(tmp_path_factory.mktemp("mixed"), panel), panel, share


def test_planted_offset_recovered_and_matches_statsmodels(mixed: tuple) -> None:
    import statsmodels.api as sm

    summary, panel, share = mixed
    for year in (2005, 2006):
        fit = summary["models"]["ols"]["years"][str(year)]
        # ETM+ is the newest sensor of the year, so the reference: the TM share's coefficient
        # is TM minus ETM+, i.e. minus the planted offset
        assert "sensor[TM]" in fit["coefficients"]
        got = fit["coefficients"]["sensor[TM]"]
        assert abs(got + OFFSET_L7) < 3 * fit["std_errors"]["sensor[TM]"] + 1e-9
        assert abs(got + OFFSET_L7) < 0.15
        # independent reference: statsmodels OLS on the yearly means with the TM share built here
        here = panel[panel["year"] == year]
        means = here.groupby("cell", sort=True)[["lst_c", "ndvi"]].mean()
        tm_share = 1.0 - share[year]
        xs = sm.add_constant(np.column_stack([means["ndvi"].to_numpy(), tm_share]))
        ref = sm.OLS(means["lst_c"].to_numpy(), xs).fit()
        np.testing.assert_allclose(
            [fit["coefficients"][k] for k in ("const", "ndvi", "sensor[TM]")], ref.params, rtol=1e-8, atol=1e-8)
        np.testing.assert_allclose(fit["std_errors"]["sensor[TM]"], ref.bse[2], rtol=1e-6)
        assert fit["x"] == ["ndvi"]  # the sensor term is not an x the scenario or plan would change
    single = summary["models"]["ols"]["years"]["2015"]
    assert not any(k.startswith("sensor[") for k in single["coefficients"])
    assert summary["sensor_effects"]["columns"] == ["sensor[TM]", "sensor[ETM+]", "sensor[OLI/TIRS]"]
    assert "reference ETM+" in summary["sensor_effects"]["per_period"]["2005"]
    assert summary["sensor_effects"]["per_period"]["2015"].startswith("one sensor")


def test_without_sensor_effects_the_offset_biases_nothing_is_added(tmp_path: Path, mixed: tuple) -> None:
    _, panel, _ = mixed
    off = _run(tmp_path, panel, sensor_effects=False)
    fit = off["models"]["ols"]["years"]["2005"]
    assert set(fit["coefficients"]) == {"const", "ndvi"}
    assert off["sensor_effects"]["columns"] == []


def test_scenario_model_ignores_sensor_terms(mixed: tuple) -> None:
    summary, _, _ = mixed
    with_terms = read_scenario_model(summary, "ols", 2005)
    stripped = json.loads(json.dumps(summary))
    fit = stripped["models"]["ols"]["years"]["2005"]
    for key in ("coefficients", "std_errors", "p_values"):
        fit[key] = {k: v for k, v in fit[key].items() if not k.startswith("sensor[")}
    assert read_scenario_model(stripped, "ols", 2005) == with_terms
    assert with_terms.x == ("ndvi",) and set(with_terms.coefficients) == {"ndvi"}


def test_one_sensor_result_is_unchanged_by_the_switch(tmp_path: Path) -> None:
    panel, _ = _panel({2014: ("landsat-8", "landsat-8"), 2015: ("landsat-8", "landsat-9")})
    on = _run(tmp_path / "on", panel)
    off = _run(tmp_path / "off", panel, sensor_effects=False)
    assert on["models"]["ols"] == off["models"]["ols"]  # L8 and L9 are one sensor: no term anywhere
    assert read_scenario_model(on, "ols") == read_scenario_model(off, "ols")


def test_sensor_terms_rule() -> None:
    assert sensor_of_platforms("landsat-7+landsat-8") == "OLI/TIRS"
    assert sensor_of_platforms("landsat-5+landsat-7") == "ETM+"
    assert sensor_of_platforms("landsat-4") == "TM"
    assert sensor_of_platforms("unknown") is None
    varying = np.array([0.0, 0.5, 1.0])
    assert sensor_terms({"sensor[TM]": varying, "sensor[ETM+]": 1 - varying})[0] == ["sensor[TM]"]
    # the same TM share in every cell is collinear with the intercept: left out, and said so
    cols, why = sensor_terms({"sensor[TM]": np.full(3, 0.5), "sensor[ETM+]": np.full(3, 0.5)})
    assert cols == [] and "absorbed in the intercept" in why
    # a sensor column of only zeros did not contribute
    assert sensor_terms({"sensor[TM]": np.zeros(3), "sensor[ETM+]": np.ones(3)})[0] == []


def _rook(side: int) -> np.ndarray:
    """Row-standardised rook contiguity of a side x side grid, cell i = row * side + col."""
    n = side * side
    w = np.zeros((n, n))
    for i in range(n):
        r, c = divmod(i, side)
        for rr, cc in ((r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)):
            if 0 <= rr < side and 0 <= cc < side:
                w[i, rr * side + cc] = 1.0
    return w / w.sum(axis=1, keepdims=True)


def _shares(panel: pd.DataFrame, platforms: tuple[str, ...]) -> np.ndarray:
    """Per (year, cell), time-major, the share of the observations made on ``platforms``."""
    hit = panel["platform"].isin(platforms).astype(float)
    return hit.groupby([panel["year"], panel["cell"]], sort=True).mean().to_numpy()


def test_panel_fe_adds_sensor_shares_and_matches_a_dense_within_solve(tmp_path: Path) -> None:
    """panel_fe (two-way fixed effects, spatial lag) with the sensor shares as regressors,
    against a dense two-way within transform and a dense log-determinant written here."""
    from scipy.optimize import minimize_scalar

    # 2015 mixes ETM+ and OLI/TIRS per cell, so every sensor's offset is identified against
    # OLI/TIRS (the newest, the reference) despite the year effects
    panel, _ = _panel({2005: ("landsat-5", "landsat-7"), 2006: ("landsat-5", "landsat-7"),
                       2015: ("landsat-7", "landsat-8")}, seed=5)
    summary = _run(tmp_path, panel, models=["panel_fe"], weights="rook")
    fit = summary["models"]["panel_fe"]["years"]["pooled"]
    coef, se = fit["coefficients"], fit["std_errors"]
    assert set(coef) == {"ndvi", "sensor[TM]", "sensor[ETM+]"}
    assert abs(coef["sensor[ETM+]"] - OFFSET_L7) < 3 * se["sensor[ETM+]"]  # planted +2 C
    assert abs(coef["sensor[TM]"]) < 3 * se["sensor[TM]"]  # TM reads as OLI/TIRS
    assert abs(coef["ndvi"] - SLOPE) < 3 * se["ndvi"]
    assert fit["x"] == ["ndvi"]
    assert "share terms for ['TM', 'ETM+']" in fit["diagnostics"]["sensor_terms"]

    years = sorted(panel["year"].unique())
    n, t = SIDE * SIDE, len(years)
    means = panel.groupby(["year", "cell"], sort=True)[["lst_c", "ndvi"]].mean()
    y = means["lst_c"].to_numpy()  # time-major: years outer, cells (c000 ..) inner
    x = np.column_stack([means["ndvi"].to_numpy(), _shares(panel, ("landsat-5",)), _shares(panel, ("landsat-7",))])
    # two-way within transform as a dense NT x NT projector
    i_n, i_t = np.eye(n), np.eye(t)
    q = (np.eye(n * t) - np.kron(np.full((t, t), 1 / t), i_n) - np.kron(i_t, np.full((n, n), 1 / n))
         + np.full((n * t, n * t), 1 / (n * t)))
    w = _rook(SIDE)
    wy = np.kron(i_t, w) @ y
    qx = q @ x

    def beta(rho: float) -> tuple[np.ndarray, float]:
        lhs = q @ (y - rho * wy)
        b, *_ = np.linalg.lstsq(qx, lhs, rcond=None)
        r = lhs - qx @ b
        return b, float(r @ r)

    def nll(rho: float) -> float:  # concentrated: NT/2 log(SSR/NT) - T log|I - rho W|
        return 0.5 * n * t * np.log(beta(rho)[1] / (n * t)) - t * np.linalg.slogdet(np.eye(n) - rho * w)[1]

    opt = minimize_scalar(nll, bounds=(-0.9, 0.9), method="bounded", options={"xatol": 1e-9})
    b_ref, _ = beta(opt.x)
    assert fit["rho"] == pytest.approx(opt.x, abs=1e-5)
    np.testing.assert_allclose([coef["ndvi"], coef["sensor[TM]"], coef["sensor[ETM+]"]], b_ref, rtol=1e-4, atol=1e-5)


def test_panel_fe_year_effects_absorb_a_sensor_alone_in_its_years(tmp_path: Path, mixed: tuple) -> None:
    """OLI/TIRS alone in 2015: its offset is the year effect's. What is left is TM against
    ETM+, as the per-year models report it."""
    summary, panel, _ = mixed
    fe = _run(tmp_path, panel, models=["panel_fe"], weights="rook")["models"]["panel_fe"]["years"]["pooled"]
    assert set(fe["coefficients"]) == {"ndvi", "sensor[TM]"}
    assert "['ETM+'] absorbed" in fe["diagnostics"]["sensor_terms"]
    assert abs(fe["coefficients"]["sensor[TM]"] + OFFSET_L7) < 3 * fe["std_errors"]["sensor[TM]"]
    per_year = summary["models"]["ols"]["years"]["2005"]["coefficients"]["sensor[TM]"]
    assert fe["coefficients"]["sensor[TM]"] == pytest.approx(per_year, abs=0.1)


def test_panel_sensor_terms_rule() -> None:
    from uhi.stats.sensors import panel_sensor_terms

    n, t = 4, 3
    x = np.arange(n * t, dtype=float)[:, None] ** 1.5
    # each year one sensor sees every cell: the year effects absorb the shares, cell effects alone do not
    tm = np.repeat([1.0, 0.0, 0.0], n)
    shares = {"sensor[TM]": tm, "sensor[OLI/TIRS]": 1.0 - tm}
    cols, why = panel_sensor_terms(shares, x, n, t, time_effects=True)
    assert cols == [] and "absorbed" in why
    assert panel_sensor_terms(shares, x, n, t, time_effects=False)[0] == ["sensor[TM]"]
    # a share that differs between cells within a year survives both
    tm = np.array([1.0, 0.5, 0.0, 0.25] + [0.0] * 8)
    shares = {"sensor[TM]": tm, "sensor[OLI/TIRS]": 1.0 - tm}
    assert panel_sensor_terms(shares, x, n, t, time_effects=True)[0] == ["sensor[TM]"]
    assert panel_sensor_terms({"sensor[OLI/TIRS]": np.ones(n * t)}, x, n, t)[0] == []

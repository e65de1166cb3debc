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

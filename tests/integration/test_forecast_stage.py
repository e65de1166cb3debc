"""The forecast stage end to end on a seeded synthetic workspace with a planted warming trend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from uhi.config import build_config
from uhi.stages.runner import execute
from uhi.workspace import Workspace

WARMING_C_PER_YEAR = 0.08
YEARS = list(range(2005, 2021))  # 16 summers


def build_workspace(root: Path, *, seed: int = 7, nx: int = 9, ny: int = 7, model: bool = True) -> Workspace:
    """cells.parquet + panel.parquet (+ model/summary.json) with a planted linear warming.

    LST = 30 + cell effect + 0.08 (year - 2005) + scene weather offset + noise, three irregular
    summer dates a year. Planted defects: a cell with two observations, an all-NaN cell, a
    duplicated row, a row outside the summer months and a cell absent from the panel.
    """
    import geopandas as gpd
    import mercantile
    from shapely.geometry import box

    rng = np.random.default_rng(seed)
    x0, y0, z = 94_000, 168_000, 19
    tiles = [mercantile.Tile(x0 + i, y0 + j, z) for j in range(ny) for i in range(nx)]
    cells = gpd.GeoDataFrame(
        {
            "cell": [mercantile.quadkey(t) for t in tiles],
            "tile_x": [t.x for t in tiles],
            "tile_y": [t.y for t in tiles],
            "zoom": z,
            "x_m": [mercantile.xy(*mercantile.ul(t))[0] for t in tiles],
            "y_m": [mercantile.xy(*mercantile.ul(t))[1] for t in tiles],
            "site_coverage": rng.uniform(0, 0.6, len(tiles)),
        },
        geometry=[box(*mercantile.bounds(t)) for t in tiles],
        crs="EPSG:4326",
    )
    n = len(cells)
    effect = rng.normal(0, 1.5, n)
    ndvi_base = rng.uniform(0.1, 0.6, n)
    rows = []
    for year in YEARS:
        days = sorted(rng.choice(np.arange(0, 92), size=3, replace=False))
        for d in days:
            date = pd.Timestamp(f"{year}-06-01") + pd.Timedelta(days=int(d))
            offset = rng.normal(0, 0.5)
            lst = 30 + effect + WARMING_C_PER_YEAR * (year - YEARS[0]) + offset + rng.normal(0, 0.3, n)
            ndvi = ndvi_base - 0.004 * (year - YEARS[0]) + rng.normal(0, 0.02, n)
            ndbi = -ndvi / 2 + rng.normal(0, 0.02, n)
            rows.append(pd.DataFrame({"cell": cells["cell"], "date": date, "year": year,
                                      "lst_c": lst, "ndvi": ndvi, "ndbi": ndbi}))
    panel = pd.concat(rows, ignore_index=True)
    few, empty, absent = cells["cell"].iloc[0], cells["cell"].iloc[1], cells["cell"].iloc[2]
    panel.loc[(panel["cell"] == few) & (panel["year"] < 2019), ["lst_c", "ndvi", "ndbi"]] = np.nan
    panel.loc[panel["cell"] == empty, ["lst_c", "ndvi", "ndbi"]] = np.nan
    panel = panel[panel["cell"] != absent]
    dup = panel.iloc[[100]].copy()
    spring = panel.iloc[[101]].copy()
    spring["date"] = pd.Timestamp("2012-04-15")
    spring["lst_c"] = 99.0
    panel = pd.concat([panel, dup, spring], ignore_index=True)
    ws = Workspace(root)
    ws.path("compute").mkdir(parents=True, exist_ok=True)
    cells.to_parquet(ws.cells)
    panel.to_parquet(ws.panel)
    if model:
        summary = {
            "x": ["ndvi", "ndbi", "site_coverage"],
            "best_model": "ols",
            "models": {"ols": {"2020": {"coefficients": {"const": 30.0, "ndvi": -9.0, "ndbi": 12.0,
                                                          "site_coverage": 5.0}}}},
        }
        ws.path("model").mkdir(parents=True, exist_ok=True)
        ws.write_json(ws.model_summary, summary)
    return ws


@pytest.fixture(scope="module")
def done(tmp_path_factory: pytest.TempPathFactory) -> tuple[Workspace, dict]:
    from uhi.stages.forecast import SPEC

    ws = build_workspace(tmp_path_factory.mktemp("fc"))
    cfg = build_config({"workdir": str(ws.root), "forecast": {"horizon": 3, "holdout": 2}})
    with ws.locked():
        outcome = execute(SPEC, cfg, ws)
    summary = json.loads((ws.stage_dir("forecast") / "summary.json").read_text())
    return ws, {"outcome": outcome, "summary": summary, "config": cfg}


def test_declared_outputs_written(done: tuple[Workspace, dict]) -> None:
    ws, d = done
    out = ws.stage_dir("forecast")
    names = sorted(p.relative_to(out).as_posix() for p in ws.files_under(out))
    assert names == [
        "cogs/lst_c_2021.tif", "cogs/lst_c_2022.tif", "cogs/lst_c_2023.tif",
        "forecast.geojson", "forecast.gpkg", "forecast.xlsx", "summary.json",
    ]


def test_planted_warming_recovered(done: tuple[Workspace, dict]) -> None:
    _, d = done
    trend = d["summary"]["city"]["lst_c"]["trend_per_step"]
    # city mean: 16 summers, weather offsets sd 0.5/sqrt(3) per summer -> slope SE ~0.015 C/yr
    assert trend["ols_slope"] == pytest.approx(WARMING_C_PER_YEAR, abs=0.04)
    fc = d["summary"]["city"]["lst_c"]["forecast"]
    # the city forecast continues from the last level, and rises when the trend is kept
    assert fc["2023"] >= fc["2021"] - 1e-9


def test_bad_cells_reported_not_dropped(done: tuple[Workspace, dict]) -> None:
    ws, d = done
    status = d["summary"]["status"]["lst_c"]
    n = 9 * 7
    assert status == {"ok": n - 3, "too_few_points": 1, "no_data": 2, "failed": 0}
    report = d["summary"]["input_report"]
    assert report["duplicate_rows"] == 2 and report["rows_outside_months"] == 1
    gj = json.loads((ws.stage_dir("forecast") / "forecast.geojson").read_text())
    assert len(gj["features"]) == n
    by_status = {f["properties"]["lst_c_status"] for f in gj["features"]}
    assert by_status == {"ok", "too_few_points", "no_data"}
    absent = gj["features"][2]["properties"]  # the cell with no panel row at all
    assert absent["lst_c_status"] == "no_data" and absent["lst_c_method"] == ""
    assert absent["lst_c_steps_observed"] == 0 and absent["lst_c_2021"] is None


def test_model_projection_and_rcp(done: tuple[Workspace, dict]) -> None:
    ws, d = done
    mp = d["summary"]["model_projection"]
    assert mp["status"] == "done" and mp["model"] == "ols"
    # the GeoPackage keeps full precision (the GeoJSON rounds properties to 6 decimals)
    import pyogrio

    table = pyogrio.read_dataframe(ws.stage_dir("forecast") / "forecast.gpkg", read_geometry=False)
    p = table[table["lst_c_status"] == "ok"].iloc[0].to_dict()
    # independent arithmetic: level + b_ndvi * dNDVI + b_ndbi * dNDBI (site coverage static)
    expect = (p["lst_c_level"] - 9.0 * (p["ndvi_2022"] - p["ndvi_level"])
              + 12.0 * (p["ndbi_2022"] - p["ndbi_level"]))
    assert p["lst_c_model_2022"] == pytest.approx(expect, abs=1e-9)
    rcp = d["summary"]["rcp85"]
    # shipped AR5 table: 0 at 1995.5, 2.0 at 2055.5, 3.7 at 2090.5; baseline 2020
    base = 2.0 * (2020 - 1995.5) / 60
    assert rcp["air_warming_added_c"][0] == pytest.approx(2.0 * (2050 - 1995.5) / 60 - base, abs=1e-12)
    assert rcp["air_warming_added_c"][1] == pytest.approx(2.0 + 1.7 * (2085 - 2055.5) / 35 - base, abs=1e-12)
    assert rcp["lst_per_air_k"] == 1.0 and rcp["lst_change_added_c"] == rcp["air_warming_added_c"]
    assert "assumption" in rcp["assumption"] and "AIR temperature" in rcp["assumption"]
    # the column says LST (not air) and its unit; its description is in the summary
    assert p["lst_rcp85_2085_c"] == pytest.approx(p["lst_c_level"] + rcp["lst_change_added_c"][1], abs=1e-9)
    assert "not air temperature" in rcp["columns"]["lst_rcp85_2085_c"]
    assert not any(k.startswith("lst_c_rcp85") for k in p)


def test_cog_grid_matches_cells(done: tuple[Workspace, dict]) -> None:
    import rasterio

    ws, _ = done
    gj = json.loads((ws.stage_dir("forecast") / "forecast.geojson").read_text())
    with rasterio.open(ws.stage_dir("forecast") / "cogs" / "lst_c_2021.tif") as src:
        assert src.crs.to_epsg() == 3857 and src.count == 4
        assert (src.height, src.width) == (7, 9)
        assert src.descriptions == ("forecast", "lower", "upper", "model_projection")
        grid = src.read(1)
    # the first tile row, in cells.parquet order, holds the first nine cells' forecasts
    first_row = [f["properties"]["lst_c_2021"] for f in gj["features"][:9]]
    np.testing.assert_allclose(grid[0], np.array(first_row, dtype=float).astype(np.float32), equal_nan=True)


def test_rerun_skips_and_missing_model_is_skipped(tmp_path: Path) -> None:
    from uhi.stages.forecast import SPEC

    ws = build_workspace(tmp_path, nx=4, ny=3, model=False)
    cfg = build_config({"workdir": str(ws.root), "outputs": {"formats": ["geojson"]}})
    with ws.locked():
        first = execute(SPEC, cfg, ws)
        second = execute(SPEC, cfg, ws)
    assert not first.skipped and second.skipped
    summary = json.loads((ws.stage_dir("forecast") / "summary.json").read_text())
    assert summary["model_projection"]["status"] == "skipped"
    assert "model/summary.json" in summary["model_projection"]["reason"]


def test_horizon_over_half_is_a_config_error(tmp_path: Path) -> None:
    from uhi.errors import ConfigError
    from uhi.stages.forecast import SPEC

    ws = build_workspace(tmp_path, nx=3, ny=2, model=False)
    cfg = build_config({"workdir": str(ws.root), "forecast": {"horizon": 9}})
    with ws.locked(), pytest.raises(ConfigError, match=r"forecast.horizon 9 .*16 steps, so at most 8"):
        execute(SPEC, cfg, ws)


def test_rcp_region_canada_doubles_the_added_warming(tmp_path: Path) -> None:
    from uhi.stages.forecast import SPEC

    ws = build_workspace(tmp_path, nx=3, ny=2, model=False)
    added = {}
    for region in ("global", "canada"):
        cfg = build_config({"workdir": str(ws.root), "outputs": {"formats": ["geojson"]},
                            "forecast": {"rcp_region": region}})
        with ws.locked():
            assert not execute(SPEC, cfg, ws).skipped  # the region is part of the fingerprint
        rcp = json.loads((ws.stage_dir("forecast") / "summary.json").read_text())["rcp85"]
        assert rcp["region"] == region
        added[region] = np.array(rcp["lst_change_added_c"])
        if region == "canada":
            assert rcp["source"].startswith("UPPER BOUND")
    assert np.all(added["global"] > 0)
    np.testing.assert_allclose(added["canada"], 2 * added["global"], rtol=1e-12)


def test_forecast_cogs_describe_their_bands(done: tuple[Workspace, dict]) -> None:
    import rasterio

    ws, _ = done
    with rasterio.open(ws.stage_dir("forecast") / "cogs" / "lst_c_2021.tif") as src:
        assert src.descriptions[:3] == ("forecast", "lower", "upper")
        assert set(src.units) == {"degC"} and src.crs.to_epsg() == 3857


def test_lst_per_air_warming_scales_the_added_change(tmp_path: Path) -> None:
    from uhi.stages.forecast import SPEC

    ws = build_workspace(tmp_path, nx=3, ny=2, model=False)
    cfg = build_config({"workdir": str(ws.root), "outputs": {"formats": ["geojson"]},
                        "forecast": {"rcp_lst_per_air_k": 1.5}})
    with ws.locked():
        execute(SPEC, cfg, ws)
    rcp = json.loads((ws.stage_dir("forecast") / "summary.json").read_text())["rcp85"]
    assert rcp["lst_per_air_k"] == 1.5
    np.testing.assert_allclose(rcp["lst_change_added_c"], 1.5 * np.array(rcp["air_warming_added_c"]), rtol=1e-12)
    gj = json.loads((ws.stage_dir("forecast") / "forecast.geojson").read_text())
    p = next(f["properties"] for f in gj["features"] if f["properties"]["lst_c_status"] == "ok")
    assert p["lst_rcp85_2050_c"] == pytest.approx(p["lst_c_level"] + 1.5 * rcp["air_warming_added_c"][0], abs=1e-9)


def test_water_cells_are_left_out_and_counted(tmp_path: Path) -> None:
    import geopandas as gpd

    from uhi.stages.forecast import SPEC

    ws = build_workspace(tmp_path / "ws", model=False)
    cells = gpd.read_parquet(ws.cells)
    water = cells["cell"].iloc[[10, 11, 20]].tolist()  # three cells a lake covers
    cells["water_share"] = np.where(cells["cell"].isin(water), 0.9, 0.1)
    cells.loc[12, "water_share"] = 0.5  # exactly at the limit: kept (above it is left out)
    cells.to_parquet(ws.cells)
    cfg = build_config({"workdir": str(ws.root), "outputs": {"formats": ["geojson"]}})
    with ws.locked():
        outcome = execute(SPEC, cfg, ws)
    summary = json.loads((ws.stage_dir("forecast") / "summary.json").read_text())
    assert outcome.summary["cells_left_out_water"] == 3
    assert summary["water_cells"]["cells_left_out_water"] == 3
    assert "model.max_water_share" in summary["water_cells"]["reason"]
    assert summary["cells"] == len(cells) - 3
    assert summary["input_report"]["rows_of_unknown_cells"] == 0  # not mistaken for orphans
    out = gpd.read_file(ws.stage_dir("forecast") / "forecast.geojson")
    assert not set(water) & set(out["cell"])
    assert cells["cell"].iloc[12] in set(out["cell"])


def test_sensor_overlap_years_report_the_step_at_the_transition(tmp_path: Path) -> None:
    """Landsat 7 to 8 in 2013-2014 with a planted +2 C OLI step: the summary compares the two
    sensors' scene city means in each overlap year, equal to the means taken here by hand."""
    from uhi.stages.forecast import SPEC

    ws = build_workspace(tmp_path / "ws", model=False)
    panel = pd.read_parquet(ws.panel)
    panel = panel[panel["date"].dt.month.between(6, 8)].copy()
    dates = sorted(panel["date"].unique())
    first_of_year = {y: min(d for d in dates if d.year == y) for y in (2013, 2014)}
    second_2013 = sorted(d for d in dates if d.year == 2013)[1]

    def platform(d: pd.Timestamp) -> str:
        if d.year < 2013 or d in (first_of_year[2013], second_2013, first_of_year[2014]):
            return "landsat-7"
        return "landsat-8"

    panel["platform"] = panel["date"].map(platform)
    panel.loc[panel["platform"] == "landsat-8", "lst_c"] += 2.0
    panel["platform"] = panel["platform"].astype(str)
    panel.to_parquet(ws.panel)
    cfg = build_config({"workdir": str(ws.root), "forecast": {"horizon": 3, "holdout": 2}})
    with ws.locked():
        execute(SPEC, cfg, ws)
    summary = json.loads((ws.stage_dir("forecast") / "summary.json").read_text())
    rows = summary["city"]["lst_c"]["sensor_overlap"]
    assert [(r["year"], r["older"], r["newer"], r["n_older"], r["n_newer"]) for r in rows] == [
        (2013, "ETM+", "OLI/TIRS", 2, 1), (2014, "ETM+", "OLI/TIRS", 1, 2)
    ]
    scene_means = panel.groupby("date")["lst_c"].mean()
    for r in rows:
        in_year = scene_means[scene_means.index.year == r["year"]]
        sensor = panel.groupby("date")["platform"].first()[in_year.index]
        expected = in_year[sensor == "landsat-8"].mean() - in_year[sensor == "landsat-7"].mean()
        assert r["difference"] == pytest.approx(expected, abs=1e-9)
        assert r["difference"] > 1.0  # the planted +2 C shows through the weather

"""`uhi model`: general mode on real vector layers, workspace mode, exit codes and messages."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import uhi_exit_code as uhi


@pytest.fixture(scope="module")
def columbus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    import geopandas as gpd
    import libpysal

    gdf = gpd.read_file(libpysal.examples.get_path("columbus.shp"))
    # the shapefile ships without a CRS: its coordinates are used as projected units as they are
    gdf["zone"] = np.array(["a", "b", "c", "d"])[np.arange(len(gdf)) % 4]
    gdf["label"] = "x"
    path = tmp_path_factory.mktemp("in") / "columbus.gpkg"
    gdf.to_file(path)
    return path, gdf


def test_general_mode_fits_and_writes_everything(columbus, tmp_path: Path, capsys) -> None:
    import libpysal
    import spreg
    import statsmodels.api as sm

    path, gdf = columbus
    out = tmp_path / "out"
    code = uhi("model", "--input", str(path), "--y", "CRIME", "--x", "INC", "--x", "HOVAL",
               "--weights", "queen", "--zone-col", "zone", "--out", str(out))
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "hotspots.geojson", "hotspots.parquet", "model.gpkg", "model.xlsx", "predictions.geojson", "summary.json"]
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["models"]) == {"ols", "slx", "lag", "error", "fe"}
    ols = summary["models"]["ols"]["years"]["all"]
    ref = sm.OLS(gdf["CRIME"], sm.add_constant(gdf[["INC", "HOVAL"]])).fit()
    for name in ("const", "INC", "HOVAL"):
        assert ols["coefficients"][name] == pytest.approx(ref.params[name], rel=1e-10)
    w = libpysal.weights.Queen.from_dataframe(gdf, use_index=False)
    w.transform = "r"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lag_ref = spreg.ML_Lag(gdf[["CRIME"]].to_numpy(), gdf[["INC", "HOVAL"]].to_numpy(), w=w, method="LU")
    lag = summary["models"]["lag"]["years"]["all"]
    assert lag["rho"] == pytest.approx(lag_ref.rho, abs=1e-6)
    assert lag["coefficients"]["INC"] == pytest.approx(lag_ref.betas[1, 0], rel=1e-5)
    assert summary["best_model"] in summary["models"]
    assert "no CRS" in summary["notes"]["crs"]
    pred = json.loads((out / "predictions.geojson").read_text())
    assert len(pred["features"]) == 49
    first = pred["features"][0]["properties"]
    assert first["y"] == pytest.approx(gdf["CRIME"].iloc[0])
    assert first["fitted"] + first["residual"] == pytest.approx(first["y"])
    hot = json.loads((out / "hotspots.geojson").read_text())
    assert {f["properties"]["hotspot"] for f in hot["features"]} <= set(range(-3, 4))


def test_missing_column_exits_2_naming_it(columbus, tmp_path: Path, capsys) -> None:
    code = uhi("model", "--input", str(columbus[0]), "--y", "CRIME", "--x", "NOPE", "--out", str(tmp_path))
    err = capsys.readouterr().err
    assert code == 2 and "NOPE" in err and "Traceback" not in err


def test_non_numeric_column_exits_2_naming_it(columbus, tmp_path: Path, capsys) -> None:
    code = uhi("model", "--input", str(columbus[0]), "--y", "CRIME", "--x", "label", "--out", str(tmp_path))
    err = capsys.readouterr().err
    assert code == 2 and "non-numeric" in err and "label" in err


def test_collinear_x_exits_2(columbus, tmp_path: Path, capsys) -> None:
    import geopandas as gpd

    gdf = gpd.read_file(columbus[0])
    gdf["INC2"] = gdf["INC"] * 2.0
    path = tmp_path / "c.geojson"
    gdf.to_file(path)
    code = uhi("model", "--input", str(path), "--y", "CRIME", "--x", "INC", "--x", "INC2", "--out", str(tmp_path / "o"))
    err = capsys.readouterr().err
    assert code == 2 and "collinear x" in err and "INC" in err


def test_nan_rows_dropped_and_counted(columbus, tmp_path: Path) -> None:
    import geopandas as gpd

    gdf = gpd.read_file(columbus[0])
    gdf.loc[[3, 10, 11], "HOVAL"] = np.nan
    path = tmp_path / "nan.gpkg"
    gdf.to_file(path)
    out = tmp_path / "o"
    assert uhi("model", "--input", str(path), "--y", "CRIME", "--x", "INC", "--x", "HOVAL", "--out", str(out),
               "--models", "ols") == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rows"]["all"] == {"rows": 49, "used": 46, "dropped_nan": 3}
    assert summary["models"]["ols"]["years"]["all"]["n"] == 46


def test_single_row_is_refused(columbus, tmp_path: Path, capsys) -> None:
    import geopandas as gpd

    path = tmp_path / "one.gpkg"
    gpd.read_file(columbus[0]).iloc[:1].to_file(path)
    code = uhi("model", "--input", str(path), "--y", "CRIME", "--x", "INC", "--out", str(tmp_path / "o"))
    err = capsys.readouterr().err
    assert code == 3 and "enough complete rows" in err


@pytest.mark.parametrize("value", [0.0, 7.3])
def test_constant_y_exits_2_without_traceback(columbus, tmp_path: Path, capsys, value: float) -> None:
    # y = 0 everywhere made lm_tests divide by a zero residual variance (ZeroDivisionError)
    import geopandas as gpd

    gdf = gpd.read_file(columbus[0])
    gdf["CRIME"] = value
    path = tmp_path / "const.gpkg"
    gdf.to_file(path)
    code = uhi("model", "--input", str(path), "--y", "CRIME", "--x", "INC", "--out", str(tmp_path / "o"))
    err = capsys.readouterr().err
    assert code == 2 and "'CRIME' has the same value" in err and "49 rows" in err and "Traceback" not in err
    assert not (tmp_path / "o" / "summary.json").exists()


def test_a_year_with_constant_y_is_skipped_and_said(tmp_path: Path, capsys) -> None:
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import box

    rng = np.random.default_rng(5)
    polys = [box(i * 50, j * 50, (i + 1) * 50, (j + 1) * 50) for j in range(8) for i in range(8)]
    a = rng.normal(size=64)
    frames = [
        gpd.GeoDataFrame({"year": 2020, "a": a, "y": 2 * a + rng.normal(size=64)}, geometry=polys, crs=32611),
        gpd.GeoDataFrame({"year": 2021, "a": a, "y": 30.0}, geometry=polys, crs=32611),  # a saturated sensor
    ]
    path = tmp_path / "long.parquet"
    pd.concat(frames, ignore_index=True).to_parquet(path)
    out = tmp_path / "o"
    assert uhi("model", "--input", str(path), "--y", "y", "--x", "a", "--year-col", "year", "--models", "ols", "--models", "lag",
               "--out", str(out)) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["models"]["ols"]["years"]) == ["2020"]
    assert summary["skipped"]["period 2021"] == "y 'y' is constant (30) in its 64 rows"
    assert "2021: y 'y' is the same in every row" in capsys.readouterr().err


def test_rows_at_one_point_are_refused(columbus, tmp_path: Path, capsys) -> None:
    # every row at the same point: a KNN picks its 8 "nearest" among 48 ties arbitrarily
    import geopandas as gpd
    from shapely.geometry import Point

    gdf = gpd.read_file(columbus[0])
    gdf["geometry"] = [Point(3.0, 4.0)] * len(gdf)
    path = tmp_path / "one.gpkg"
    gdf.to_file(path)
    code = uhi("model", "--input", str(path), "--y", "CRIME", "--x", "INC", "--out", str(tmp_path / "o"))
    err = capsys.readouterr().err
    assert code == 2 and "all 49 units" in err and "one point (3, 4)" in err and "Traceback" not in err


def test_colocated_rows_are_warned_and_noted(columbus, tmp_path: Path, capsys) -> None:
    import geopandas as gpd

    gdf = gpd.read_file(columbus[0])
    gdf.loc[[1, 2, 3], "geometry"] = gdf.geometry.iloc[0]  # three tracts drawn over the first
    path = tmp_path / "dup.gpkg"
    gdf.to_file(path)
    out = tmp_path / "o"
    assert uhi("model", "--input", str(path), "--y", "CRIME", "--x", "INC", "--models", "ols", "--out", str(out)) == 0
    assert json.loads((out / "summary.json").read_text())["notes"]["colocated_units"] == 3
    err = capsys.readouterr().err
    assert "3 of 49 units" in err and "broken arbitrarily" in err


def test_disconnected_weights_reported(columbus, tmp_path: Path) -> None:
    out = tmp_path / "o"
    # a 0.5-unit band leaves the outlying tracts without neighbours
    assert uhi("model", "--input", str(columbus[0]), "--y", "CRIME", "--x", "INC", "--weights", "distance:0.5",
               "--models", "ols", "--models", "lag", "--out", str(out)) == 0
    info = json.loads((out / "summary.json").read_text())["weights_info"]["all"]
    assert info["islands"] > 0 and info["components"] > 1


def test_panel_from_a_long_geoparquet(tmp_path: Path) -> None:
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import box

    rng = np.random.default_rng(4)
    side, years = 15, (2019, 2020, 2021)
    polys = [box(i * 50, j * 50, (i + 1) * 50, (j + 1) * 50) for j in range(side) for i in range(side)]
    frames = []
    for t, year in enumerate(years):
        a = rng.normal(size=side * side)
        frames.append(gpd.GeoDataFrame({"year": year, "a": a, "y": 2 * a + t + rng.normal(size=side * side)},
                                       geometry=polys, crs=32611))
    path = tmp_path / "long.parquet"
    pd.concat(frames, ignore_index=True).to_parquet(path)
    out = tmp_path / "o"
    assert uhi("model", "--input", str(path), "--y", "y", "--x", "a", "--year-col", "year", "--weights", "rook",
               "--out", str(out)) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["models"]["ols"]["years"]) == ["2019", "2020", "2021"]
    pooled = summary["models"]["panel_fe"]["years"]["pooled"]
    assert pooled["n"] == side * side * 3
    assert pooled["coefficients"]["a"] == pytest.approx(2.0, abs=4 * pooled["std_errors"]["a"])


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--weights", "knn:0"], "--weights"),
        (["--models", "ols", "--models", "probit"], "probit"),
        (["--models", "ols,lag"], "--models ols --models lag"),
        (["--models", "fe"], "--zone-col"),
    ],
)
def test_bad_options_exit_2(columbus, tmp_path: Path, capsys, args: list[str], needle: str) -> None:
    code = uhi("model", "--input", str(columbus[0]), "--y", "CRIME", "--x", "INC", "--out", str(tmp_path), *args)
    err = capsys.readouterr().err
    assert code == 2 and needle in err


def test_general_flags_need_input(capsys) -> None:
    code = uhi("model", "--y", "CRIME")
    assert code == 2 and "--input" in capsys.readouterr().err


def test_workspace_mode_without_compute_exits_2(tmp_path: Path, capsys) -> None:
    code = uhi("model", "--workdir", str(tmp_path / "ws"))
    err = capsys.readouterr().err
    assert code == 2 and "uhi compute" in err


def test_workspace_mode_runs_with_flag_overrides(tmp_path: Path, capsys) -> None:
    """`uhi model --workdir WS --weights queen --models ols --models lag` on a minimal compute output."""
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import box

    rng = np.random.default_rng(3)
    tx, ty = np.meshgrid(np.arange(12), np.arange(12))
    tx, ty = tx.ravel(), ty.ravel()
    n = tx.size
    cells = gpd.GeoDataFrame(
        {"cell": [f"c{i}" for i in range(n)], "tile_x": tx, "tile_y": ty, "x_m": tx * 50.0, "y_m": ty * -50.0,
         "site_coverage": rng.uniform(0, 0.5, n)},
        geometry=[box(-114 + a * 1e-3, 51 - (b + 1) * 1e-3, -114 + (a + 1) * 1e-3, 51 - b * 1e-3) for a, b in zip(tx, ty, strict=True)],
        crs=4326,
    )
    frames = []
    for year in (2019, 2020):
        ndvi, ndbi = rng.uniform(0, 0.8, n), rng.uniform(-0.3, 0.3, n)
        frames.append(pd.DataFrame({"cell": cells["cell"], "date": pd.Timestamp(year, 7, 1), "year": year,
                                    "lst_c": 30 - 6 * ndvi + 8 * ndbi + rng.normal(size=n), "ndvi": ndvi, "ndbi": ndbi}))
    ws = tmp_path / "ws"
    (ws / "compute").mkdir(parents=True)
    cells.to_parquet(ws / "compute" / "cells.parquet")
    pd.concat(frames).to_parquet(ws / "compute" / "panel.parquet")
    code = uhi("model", "--workdir", str(ws), "--weights", "queen", "--models", "ols", "--models", "lag")
    assert code == 0, capsys.readouterr().err
    summary = json.loads((ws / "model" / "summary.json").read_text())
    assert summary["weights"] == "queen" and set(summary["models"]) == {"ols", "lag"}
    assert summary["weights_info"]["2019"] == {"islands": 0, "components": 1, "n": n}
    assert uhi("model", "--workdir", str(ws), "--weights", "queen", "--models", "ols", "--models", "lag") == 0
    assert "unchanged, skipped" in capsys.readouterr().out


def test_shapefile_input(tmp_path: Path) -> None:
    import libpysal
    import statsmodels.api as sm

    shp = libpysal.examples.get_path("columbus.shp")
    out = tmp_path / "o"
    assert uhi("model", "--input", shp, "--y", "HOVAL", "--x", "INC", "--models", "ols", "--out", str(out)) == 0
    rec = json.loads((out / "summary.json").read_text())["models"]["ols"]["years"]["all"]
    import geopandas as gpd

    gdf = gpd.read_file(shp)
    ref = sm.OLS(gdf["HOVAL"], sm.add_constant(gdf[["INC"]])).fit()
    assert rec["coefficients"]["INC"] == pytest.approx(ref.params["INC"], rel=1e-10)
    assert rec["r2"] == pytest.approx(ref.rsquared, rel=1e-10)

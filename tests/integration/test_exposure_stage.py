"""The exposure stage on a small real workspace (cells, panel, the model's Gi*): outputs, references, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import rasterio
import shapely
from conftest import uhi_exit_code as uhi
from rasterio.transform import from_origin
from shapely.geometry import box

from uhi.config import build_config
from uhi.grid.cells import build_cells
from uhi.stages.model import SPEC as MODEL
from uhi.stages.runner import execute
from uhi.workspace import Workspace

CRS = "EPSG:32611"
AOI = box(-114.080, 51.040, -114.066, 51.049)  # ~1 km x 1 km near Calgary: ~440 zoom-19 cells
YEARS = (2019, 2020)




def _write_workspace(root: Path) -> tuple[Workspace, gpd.GeoDataFrame, pd.DataFrame]:
    rng = np.random.default_rng(4)
    ws = Workspace(root)
    cells = build_cells(AOI, 19, CRS)
    n = len(cells)
    x = (cells["x_m"] - cells["x_m"].min()).to_numpy()
    cells["site_coverage"] = rng.uniform(0, 0.6, n)
    cells["floor_area_m2"] = np.where(rng.random(n) < 0.7, rng.uniform(100, 3000, n), 0.0)
    water = x < 120  # a river along the west edge: land-only LST is NaN there
    rows = []
    for year in YEARS:
        for day in (5, 20):
            lst = 28 + 0.01 * x + 4 * cells["site_coverage"].to_numpy() + rng.normal(0, 0.5, n) + (year - 2019)
            lst[water] = np.nan
            frame = pd.DataFrame({"cell": cells["cell"], "date": pd.Timestamp(year, 7, day), "year": year,
                                  "lst_c": lst, "ndvi": rng.uniform(0.1, 0.7, n), "ndbi": rng.uniform(-0.3, 0.3, n),
                                  "anomaly_c": lst - 30})
            if day == 20:
                frame.loc[rng.random(n) < 0.2, ["lst_c", "anomaly_c"]] = np.nan  # clouds on one date
            rows.append(frame)
    panel = pd.concat(rows, ignore_index=True)
    ws.stage_dir("compute").mkdir(parents=True, exist_ok=True)
    cells.to_parquet(ws.cells)
    table = pq.read_table(ws.cells)
    meta = dict(table.schema.metadata or {})
    meta[b"uhi:working_crs"] = CRS.encode()
    pq.write_table(table.replace_schema_metadata(meta), ws.cells)
    panel.to_parquet(ws.panel)
    return ws, cells, panel


def _layers(folder: Path, cells: gpd.GeoDataFrame) -> dict[str, Path]:
    rng = np.random.default_rng(8)
    proj = cells.to_crs(CRS)
    x0, y0, x1, y1 = proj.total_bounds
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    quads = [box(x0 - 50, y0 - 50, xm, ym), box(xm, y0 - 50, x1 + 50, ym),
             box(x0 - 50, ym, xm, y1 + 50), box(xm, ym, x1 + 50, y1 + 50)]
    zones = gpd.GeoDataFrame({"zone_id": ["SW", "SE", "NW", "NE"], "name": ["Riverside", "Eastfield", "Northgate", "Hilltop"],
                              "income": [30_000.0, 80_000.0, 45_000.0, 120_000.0]}, geometry=quads, crs=CRS).to_crs(4326)
    paths = {"zones": folder / "zones.gpkg"}
    zones.to_file(paths["zones"])
    # census-like polygons inside the cells' extent, in web mercator (another CRS than the zones)
    # inside the cells' union (web-mercator tiles are slightly rotated in UTM)
    inner = shapely.union_all(proj.geometry.to_numpy()).buffer(-30)
    seeds = shapely.points(rng.uniform(x0, x1, 25), rng.uniform(y0, y1, 25))
    polys = shapely.intersection(shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds))), inner)
    polys = polys[~shapely.is_empty(polys)]
    pop = rng.integers(50, 900, len(polys)).astype(float)
    census = gpd.GeoDataFrame({"population": pop, "age65": np.floor(pop * rng.uniform(0.05, 0.3, len(pop))),
                               "low_income": np.floor(pop * rng.uniform(0.0, 0.4, len(pop)))},
                              geometry=polys, crs=CRS).to_crs(3857)
    paths["census"] = folder / "census.gpkg"
    census.to_file(paths["census"])
    # a count raster in web mercator, 30 m pixels over the whole AOI and a margin
    b = cells.to_crs(3857).total_bounds
    transform = from_origin(b[0] - 200, b[3] + 200, 30, 30)
    shape = (int((b[3] - b[1] + 400) / 30) + 1, int((b[2] - b[0] + 400) / 30) + 1)
    counts = rng.gamma(2.0, 2.0, shape)
    counts[:3, :3] = -9999.0  # declared nodata
    paths["raster"] = folder / "pop.tif"
    with rasterio.open(paths["raster"], "w", driver="GTiff", height=shape[0], width=shape[1], count=1,
                       dtype="float64", crs="EPSG:3857", transform=transform, nodata=-9999.0) as dst:
        dst.write(counts, 1)
    return paths


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("exposure")
    ws, cells, panel = _write_workspace(root / "ws")
    config = build_config({"workdir": str(ws.root), "time": {"start": "2019-01-01", "end": "2020-12-31"},
                           "model": {"x": ["ndvi", "ndbi"], "models": ["ols"]}}, environ={})
    with ws.locked():
        execute(MODEL, config, ws)
    paths = _layers(root, cells)
    return {"root": root, "ws": ws, "cells": cells, "panel": panel, "paths": paths}


def _config_file(base: dict, folder: Path, **exposure: object) -> Path:
    import yaml

    ws_dir = folder / "ws"
    if not ws_dir.exists():
        shutil.copytree(base["ws"].root, ws_dir)
    data = {"workdir": str(ws_dir), "time": {"start": "2019-01-01", "end": "2020-12-31"},
            "model": {"x": ["ndvi", "ndbi"], "models": ["ols"]}, "exposure": exposure}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def polygons_run(base: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("poly")
    cfg = _config_file(base, folder, zones_path=str(base["paths"]["zones"]), zone_id_col="zone_id",
                       rank_col="income", population_path=str(base["paths"]["census"]),
                       groups=["age65", "low_income"], threshold_c=38.0)
    assert uhi("exposure", str(cfg)) == 0
    out = folder / "ws" / "exposure"
    return {"cfg": cfg, "out": out, "ws": Workspace(folder / "ws")}


def test_writes_the_declared_outputs(polygons_run: dict) -> None:
    names = sorted(p.name for p in polygons_run["ws"].files_under(polygons_run["out"]))
    assert names == ["cells.parquet", "exposure.gpkg", "exposure.xlsx", "exposure_map.png", "people_per_band.png",
                     "summary.json", "zones.geojson", "zones.parquet"]
    cells = gpd.read_parquet(polygons_run["out"] / "cells.parquet")
    assert cells.crs.to_epsg() == 4326
    assert list(cells.columns[:6]) == ["cell", "zone", "area_m2", "population", "age65", "low_income"]


def test_population_and_groups_conserved(polygons_run: dict, base: dict) -> None:
    census = gpd.read_file(base["paths"]["census"])
    cells = gpd.read_parquet(polygons_run["out"] / "cells.parquet")
    for col in ("population", "age65", "low_income"):
        assert cells[col].sum() == pytest.approx(census[col].sum(), rel=1e-9)
    summary = json.loads((polygons_run["out"] / "summary.json").read_text())
    assert summary["population"] == pytest.approx(census["population"].sum(), rel=1e-9)
    assert "dasymetric" in summary["population_method"]


def test_cell_lst_and_gi_come_from_panel_and_model(polygons_run: dict, base: dict) -> None:
    cells = gpd.read_parquet(polygons_run["out"] / "cells.parquet").set_index("cell")
    panel = base["panel"]
    ref = panel[panel.year == 2020].groupby("cell")["lst_c"].mean()  # pandas skips NaN dates
    np.testing.assert_allclose(cells["lst_c"].to_numpy(), ref.reindex(cells.index).to_numpy())
    hot = gpd.read_file(base["ws"].path("model", "hotspots.geojson")).set_index("cell")
    has = hot["gi_z_2020"].notna()
    got = cells["gi_class"].reindex(hot.index)
    np.testing.assert_array_equal(got[has].to_numpy(dtype=float), hot.loc[has, "hotspot_2020"].to_numpy(dtype=float))
    assert got[~has].isna().all() and (~has).sum() > 0  # water cells: no class, not "not significant"


def test_zone_figures_equal_pandas_from_the_definitions(polygons_run: dict) -> None:
    cells = gpd.read_parquet(polygons_run["out"] / "cells.parquet")
    zones = gpd.read_parquet(polygons_run["out"] / "zones.parquet").set_index("zone")
    for zid, c in cells.groupby("zone"):
        lv = c[c.lst_c.notna()]
        z = zones.loc[zid]
        assert z["population"] == pytest.approx(c.population.sum(), rel=1e-12)
        assert z["lst_mean_c"] == pytest.approx((lv.lst_c * lv.area_m2).sum() / lv.area_m2.sum(), rel=1e-12)
        assert z["lst_pop_mean_c"] == pytest.approx((lv.lst_c * lv.population).sum() / lv.population.sum(), rel=1e-12)
        assert z["people_no_lst"] == pytest.approx(c[c.lst_c.isna()].population.sum(), rel=1e-12, abs=1e-9)
        assert z["people_hot_95"] == pytest.approx(c[c.gi_class >= 2].population.sum(), rel=1e-12, abs=1e-9)
        assert z["people_above_threshold"] == pytest.approx(c[c.lst_c > 38.0].population.sum(), rel=1e-12, abs=1e-9)
    summary = json.loads((polygons_run["out"] / "summary.json").read_text())
    # water cells hold people: counted in the total, reported as without a land temperature
    assert summary["people_no_lst"] > 0
    assert set(summary["levels"]) == {"cell", "zone"}
    assert summary["levels"]["zone"]["units"] == 4
    assert "concentration_index_c" in summary["levels"]["zone"]
    assert zones.loc["SW", "name"] == "Riverside"


def test_unchanged_inputs_skip_and_a_changed_layer_reruns(polygons_run: dict, base: dict, tmp_path: Path, capsys) -> None:
    capsys.readouterr()
    assert uhi("exposure", str(polygons_run["cfg"])) == 0
    assert "exposure: unchanged, skipped" in capsys.readouterr().out
    zones = gpd.read_file(base["paths"]["zones"])
    zones.loc[0, "name"] = "Riverbank"
    moved = tmp_path / "zones.gpkg"
    zones.to_file(moved)
    assert uhi("exposure", str(polygons_run["cfg"]), "--set", f"exposure.zones_path={moved}") == 0
    assert "exposure: unchanged" not in capsys.readouterr().out


def test_raster_population_in_another_crs_equals_exactextract(base: dict, tmp_path: Path) -> None:
    from exactextract import exact_extract

    cfg = _config_file(base, tmp_path, zones_path=str(base["paths"]["zones"]), zone_id_col="zone_id",
                       population_path=str(base["paths"]["raster"]))
    assert uhi("exposure", str(cfg)) == 0
    cells = gpd.read_parquet(tmp_path / "ws" / "exposure" / "cells.parquet")
    ref = exact_extract(str(base["paths"]["raster"]), cells[["cell", "geometry"]].to_crs(3857), ["sum"],
                        output="pandas")["sum"].to_numpy()
    # exactextract's coverage fractions are float32 (~6e-8 relative)
    np.testing.assert_allclose(cells["population"].to_numpy(), ref, rtol=2e-7)


def _bad(base: dict, folder: Path, **changes: object) -> tuple[int, str, Path]:
    args = {"zones_path": str(base["paths"]["zones"]), "zone_id_col": "zone_id",
            "population_path": str(base["paths"]["census"]), "groups": ["age65"]}
    args.update(changes)
    cfg = _config_file(base, folder, **args)
    return uhi("exposure", str(cfg)), str(cfg), folder / "ws" / "exposure"


def test_bad_inputs_name_file_and_column_and_write_nothing(base: dict, tmp_path: Path, capsys) -> None:
    census = gpd.read_file(base["paths"]["census"])
    zones = gpd.read_file(base["paths"]["zones"])
    cases = {}
    far = zones.copy()
    far["geometry"] = far.geometry.translate(5.0, 0.0)
    cases["far"] = ({"zones_path": "far.gpkg"}, far, "far.gpkg (exposure.zones_path) do not overlap the AOI")
    dup = zones.copy()
    dup.loc[1, "zone_id"] = "SW"
    cases["dup"] = ({"zones_path": "dup.gpkg"}, dup, "column 'zone_id' of dup.gpkg is not unique")
    neg = census.copy()
    neg.loc[2, "population"] = -5
    cases["neg"] = ({"population_path": "neg.gpkg"}, neg, "column 'population' of neg.gpkg has 1 negative counts")
    nan = census.copy()
    nan.loc[3, "age65"] = np.nan
    cases["nan"] = ({"population_path": "nan.gpkg"}, nan, "column 'age65' of nan.gpkg has 1 empty (NaN) counts")
    cases["group"] = ({"groups": ["under5"]}, None, "census.gpkg (exposure.population_path) has no column(s) ['under5']")
    cases["idcol"] = ({"zone_id_col": "ward"}, None, "zones.gpkg (exposure.zones_path) has no column(s) ['ward']")
    for key, (change, frame, message) in cases.items():
        folder = tmp_path / key
        folder.mkdir()
        if frame is not None:
            name = next(iter(change.values()))
            frame.to_file(folder / str(name))
            change = {k: str(folder / str(v)) for k, v in change.items()}
        capsys.readouterr()
        code, _, out = _bad(base, folder, **change)
        err = capsys.readouterr().err
        assert code == 2, (key, err)
        assert message in err, (key, err)
        assert "Traceback" not in err
        assert not out.exists() or not any(out.iterdir()), key


def test_raster_without_crs_is_refused(base: dict, tmp_path: Path, capsys) -> None:
    path = tmp_path / "nocrs.tif"
    with rasterio.open(path, "w", driver="GTiff", height=4, width=4, count=1, dtype="float32",
                       transform=from_origin(0, 4, 1, 1)) as dst:
        dst.write(np.ones((1, 4, 4), dtype="float32"))
    code, _, out = _bad(base, tmp_path, population_path=str(path), groups=[])
    err = capsys.readouterr().err
    assert code == 2 and "population raster nocrs.tif has no CRS" in err
    assert not out.exists() or not any(out.iterdir())


def test_zones_only_run_leaves_people_unknown_and_drops_stale_files(base: dict, tmp_path: Path) -> None:
    cfg = _config_file(base, tmp_path, zones_path=str(base["paths"]["zones"]), zone_id_col="zone_id",
                       population_path=str(base["paths"]["raster"]))
    assert uhi("exposure", str(cfg)) == 0
    out = tmp_path / "ws" / "exposure"
    assert (out / "people_per_band.png").exists()
    cfg = _config_file(base, tmp_path, zones_path=str(base["paths"]["zones"]), zone_id_col="zone_id")
    assert uhi("exposure", str(cfg)) == 0
    assert not (out / "people_per_band.png").exists()  # the previous run's chart is not left behind
    zones = gpd.read_parquet(out / "zones.parquet")
    assert zones["population"].isna().all() and zones["lst_mean_c"].notna().all()
    manifest = json.loads((tmp_path / "ws" / "manifest.json").read_text())
    assert sorted(manifest["stages"]["exposure"]["outputs"]) == [
        "exposure/cells.parquet", "exposure/exposure.gpkg", "exposure/exposure.xlsx", "exposure/exposure_map.png",
        "exposure/summary.json", "exposure/zones.geojson", "exposure/zones.parquet"]


def test_gi_from_the_geojson_when_the_model_wrote_no_parquet(base: dict, polygons_run: dict, tmp_path: Path) -> None:
    cfg = _config_file(base, tmp_path, zones_path=str(base["paths"]["zones"]), zone_id_col="zone_id",
                       population_path=str(base["paths"]["census"]), groups=["age65", "low_income"])
    (tmp_path / "ws" / "model" / "hotspots.parquet").unlink()  # a workspace of an older uhi
    assert uhi("exposure", str(cfg)) == 0
    old = gpd.read_parquet(tmp_path / "ws" / "exposure" / "cells.parquet")
    new = gpd.read_parquet(polygons_run["out"] / "cells.parquet")
    pd.testing.assert_series_equal(old["gi_class"], new["gi_class"])

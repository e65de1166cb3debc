"""The compute stage on real Landsat clips placed in a workspace as the fetch stage leaves them."""

from __future__ import annotations

import datetime as dt
import json
import logging
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pystac
import pytest
import rasterio
import shapely
from conftest import require_module
from exactextract import exact_extract
from pyproj import Transformer
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from uhi.config import build_config
from uhi.errors import NoDataError
from uhi.landsat import canonical_asset_key
from uhi.stages.compute import SPEC
from uhi.stages.runner import execute
from uhi.workspace import Workspace

LIVERPOOL = "liverpool-LC08-20200927"
LIVERPOOL_ID = "LC08_L2SP_204023_20200927_20201006_02_T1"
CLOUDY100 = "fullbands-LC08-017036-cloudy100"

PANEL_COLUMNS = [
    "cell", "date", "year", "scene_id", "platform", "lst_c", "ndvi", "ndbi", "mndwi", "albedo",
    "lst_c_std", "lst_c_min", "lst_c_max", "valid_share", "water_share", "water_lst_c",
    "lst_uncertainty_k", "anomaly_c",
]


def place_scene(
    ws: Workspace, clip: Path, *, scene_id: str | None = None, window: Window | None = None,
    props: dict | None = None,
) -> tuple[str, tuple[float, float, float, float]]:
    """Copy (a window of) a clip into fetch/scenes/<id>/<key>.tif; returns id and lon/lat bounds."""
    files = sorted(clip.glob("*.TIF"))
    sid = scene_id or "_".join(files[0].name.split("_")[:7])
    bounds = None
    for f in files:
        key = canonical_asset_key(f.name, f.name)
        if key is None:
            continue
        dst = ws.scene_asset(sid, key)
        dst.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.open(f) as src:
            win = window or Window(0, 0, src.width, src.height)
            data = src.read(1, window=win)
            profile = src.profile | {
                "height": data.shape[0], "width": data.shape[1],
                "transform": src.window_transform(win), "driver": "GTiff",
            }
            with rasterio.open(dst, "w", **profile) as out:
                out.write(data, 1)
            bounds = transform_bounds(src.crs, 4326, *rasterio.windows.bounds(win, src.transform))
    acquired = dt.datetime.strptime(sid.split("_")[3], "%Y%m%d").replace(hour=11)
    item = pystac.Item(
        sid, geometry=None, bbox=list(bounds), datetime=acquired,
        properties={"uhi:level": "L2SP", "uhi:solar_day": acquired.date().isoformat(), **(props or {})},
    )
    index = ws.scenes_index
    features = json.loads(index.read_text())["features"] if index.exists() else []
    features.append(item.to_dict())
    ws.write_json(index, {"type": "FeatureCollection", "features": features})
    return sid, bounds


def inner_bbox(bounds, margin_deg: float = 0.01) -> list[float]:
    w, s, e, n = bounds
    return [w + margin_deg, s + margin_deg, e - margin_deg, n - margin_deg]


def _config(tmp_path: Path, bbox, **extra):
    # GeoJSON writing dominates small runs; only the Liverpool fixture checks it
    data = {
        "city": {"name": "testcity", "bbox": bbox},
        "workdir": str(tmp_path / "ws"),
        "outputs": {"formats": ["excel", "cog"]},
        **extra,
    }
    return build_config(data, environ={})


@pytest.fixture(scope="module")
def liverpool_run(tmp_path_factory, data_dir):
    tmp = tmp_path_factory.mktemp("liverpool")
    ws = Workspace(tmp / "ws")
    sid, bounds = place_scene(ws, data_dir / "landsat" / LIVERPOOL)
    cfg = _config(tmp, inner_bbox(bounds), grid={"zoom": 18}, outputs={"formats": ["geojson", "excel", "cog", "gpkg"], "scene_rasters": True})
    outcome = execute(SPEC, cfg, ws)
    return ws, cfg, sid, outcome


def test_liverpool_writes_the_contract_tables(liverpool_run):
    ws, cfg, sid, outcome = liverpool_run
    assert not outcome.skipped
    panel = pd.read_parquet(ws.panel)
    assert list(panel.columns) == PANEL_COLUMNS
    assert panel["date"].dtype == "datetime64[ns]"
    assert (panel["date"] == pd.Timestamp("2020-09-27")).all()
    assert (panel["scene_id"] == sid).all()
    assert (panel["platform"] == "landsat-8").all()
    cells = gpd.read_parquet(ws.cells)
    for col in ("cell", "tile_x", "tile_y", "zoom", "x_m", "y_m", "area_m2", "urban", "water_share",
                "building_count", "site_coverage", "far"):
        assert col in cells.columns
    assert cells.crs.to_epsg() == 4326
    meta = pq.read_schema(ws.cells).metadata
    assert meta[b"uhi:working_crs"] == b"EPSG:32630"
    assert b"rural" in meta[b"uhi:suhi_method"]
    assert cells["site_coverage"].isna().all()  # no buildings layer: NaN, not 0
    assert len(panel) == len(cells)
    # Liverpool Bay: most cells are water
    assert (cells["water_share"] > 0.5).mean() > 0.5


def _read_band(clip: Path, suffix: str) -> np.ndarray:
    with rasterio.open(next(clip.glob(f"*_{suffix}.TIF"))) as src:
        return src.read(1)


def _exactextract_means(values: np.ndarray, clip: Path, cells: gpd.GeoDataFrame, tmp: Path) -> np.ndarray:
    """exactextract's coverage-weighted mean per cell of a float64 raster on the clip's grid."""
    with rasterio.open(next(clip.glob("*_ST_B10.TIF"))) as src:
        profile = src.profile | {"dtype": "float64", "nodata": np.nan}
        crs = src.crs
    raster = tmp / f"r{len(list(tmp.iterdir()))}.tif"
    with rasterio.open(raster, "w", **profile) as dst:
        dst.write(values, 1)
    # the same quadrilaterals uhi uses: the tile corners projected to the scene CRS
    tr = Transformer.from_crs(4326, crs, always_xy=True)
    rings = np.array([np.array(g.exterior.coords) for g in cells.geometry])
    x, y = tr.transform(rings[:, :, 0], rings[:, :, 1])
    polys = shapely.polygons(np.stack([x, y], axis=2))
    frame = gpd.GeoDataFrame({"cell": cells["cell"]}, geometry=polys, crs=crs)
    return exact_extract(str(raster), frame, ["mean"], output="pandas")["mean"].to_numpy()


@pytest.fixture(scope="module")
def liverpool_decoded(data_dir):
    """LST and the water mask of the Liverpool clip decoded here, independently of uhi.

    Constants written out: LSDS-1619 ST_B10 scale 0.00341802, offset 149.0 K, fill 0; SR scale
    0.0000275, offset -0.2, fill 0. The clip has no QA_PIXEL, so water is MNDWI = (B3 - B6) /
    (B3 + B6) > 0 on the unclipped reflectance (Xu 2006); B3 + B6 > 0 on every pixel here, so
    that is B3 > B6, as uhi tests it.
    """
    clip = data_dir / "landsat" / LIVERPOOL
    st = _read_band(clip, "ST_B10").astype(np.float64)
    lst = np.where(st == 0, np.nan, st * 0.00341802 + 149.0 - 273.15)
    green_dn = _read_band(clip, "SR_B3").astype(np.float64)
    swir_dn = _read_band(clip, "SR_B6").astype(np.float64)
    green = np.where(green_dn == 0, np.nan, green_dn * 0.0000275 - 0.2)
    swir = np.where(swir_dn == 0, np.nan, swir_dn * 0.0000275 - 0.2)
    assert (green + swir > 0).all()
    with np.errstate(invalid="ignore", divide="ignore"):
        water = (green - swir) / (green + swir) > 0
    clear = ~np.isnan(lst)
    return clip, lst, clear & ~water, clear & water


def test_liverpool_shoreline_cells_equal_exactextract_over_land_pixels(liverpool_run, liverpool_decoded, tmp_path):
    """Must show (issue 12): a shoreline cell's LST is the mean of its land pixels only."""
    ws, _, _, _ = liverpool_run
    clip, lst, land, water = liverpool_decoded
    cells = gpd.read_parquet(ws.cells)
    panel = pd.read_parquet(ws.panel).set_index("cell").loc[cells["cell"]]
    ref_land = _exactextract_means(np.where(land, lst, np.nan), clip, cells, tmp_path)
    ref_water = _exactextract_means(np.where(water, lst, np.nan), clip, cells, tmp_path)
    ref_share = _exactextract_means(np.where(land | water, water.astype(np.float64), np.nan), clip, cells, tmp_path)
    got = panel["lst_c"].to_numpy()
    share = panel["water_share"].to_numpy()
    # exactextract keeps coverage fractions in float32: 1e-6 of the value range, as for LST
    np.testing.assert_allclose(share, ref_share, rtol=0, atol=1e-6, equal_nan=True)
    shore = (share > 0) & (share < 1)
    assert shore.sum() >= 50  # the docks and the Mersey's banks
    # the water pixels change these cells' means by whole degrees: the test can tell
    all_px = _exactextract_means(lst, clip, cells, tmp_path)
    assert np.nanmax(np.abs(all_px[shore] - ref_land[shore])) > 1.0
    value_range = np.nanmax(lst) - np.nanmin(lst)
    # float32 per-pixel LST: ~2e-6 C relative to the float64 reference at most (<< 0.01 C)
    np.testing.assert_allclose(got[shore], ref_land[shore], rtol=0, atol=1e-6 * value_range)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref_land))
    np.testing.assert_allclose(got, ref_land, rtol=0, atol=1e-6 * value_range, equal_nan=True)
    np.testing.assert_allclose(panel["water_lst_c"], ref_water, rtol=0, atol=1e-6 * value_range, equal_nan=True)
    # cells.parquet's all-dates share equals the one date's share here
    np.testing.assert_allclose(cells["water_share"], share, rtol=0, atol=1e-12, equal_nan=True)


def test_liverpool_all_water_cell_has_no_land_temperature(liverpool_run):
    ws, _, _, _ = liverpool_run
    panel = pd.read_parquet(ws.panel)
    sea = panel[panel["water_share"] == 1.0]
    assert len(sea) > 100  # Liverpool Bay
    for var in ("lst_c", "ndvi", "ndbi", "mndwi", "albedo", "lst_c_std", "lst_c_min", "lst_c_max", "anomaly_c"):
        assert sea[var].isna().all(), var
    assert np.isfinite(sea["water_lst_c"]).all()
    assert (sea["valid_share"] > 0).all()
    land = panel[panel["water_share"] == 0.0]
    assert len(land) > 10
    assert np.isfinite(land["lst_c"]).all() and land["water_lst_c"].isna().all()
    # no ST_QA in this clip: no uncertainty, never a made-up one
    assert panel["lst_uncertainty_k"].isna().all()
    assert liverpool_run[3].summary["lst_uncertainty_k"] is None


def test_liverpool_scene_cogs_equal_raw_dn_arithmetic(liverpool_run, data_dir):
    ws, _, sid, _ = liverpool_run
    clip = data_dir / "landsat" / LIVERPOOL
    folder = ws.path("compute", "scenes", sid)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        f"{v}.tif" for v in ("lst_c", "ndvi", "ndbi", "mndwi", "albedo", "valid")
    )
    with rasterio.open(folder / "lst_c.tif") as src:
        lst = src.read(1)
        assert src.crs.to_epsg() == 32630
    with rasterio.open(folder / "ndvi.tif") as src:
        ndvi = src.read(1)
    with rasterio.open(next(clip.glob("*_ST_B10.TIF"))) as src:
        dn = src.read(1).astype(np.float64)
    with rasterio.open(next(clip.glob("*_SR_B4.TIF"))) as src:
        red = src.read(1) * 2.75e-5 - 0.2
    with rasterio.open(next(clip.glob("*_SR_B5.TIF"))) as src:
        nir = src.read(1) * 2.75e-5 - 0.2
    # reflectance outside [0, 1] is masked, never clipped into NDVI = -1 (issue 12)
    out_of_range = (red < 0) | (red > 1) | (nir < 0) | (nir > 1)
    assert out_of_range.sum() > 40000  # water NIR below 0 (44,783 pixels by the old clip count)
    red = np.where(out_of_range, np.nan, red)
    nir = np.where(out_of_range, np.nan, nir)
    expected = dn * 0.00341802 + 149.0 - 273.15
    assert np.nanmean(lst) == pytest.approx(expected.mean(), abs=1e-4)
    assert np.nanstd(lst) == pytest.approx(expected.std(), abs=1e-4)
    with np.errstate(invalid="ignore", divide="ignore"):
        nd = (nir - red) / (nir + red)
    nd[np.abs(nir + red) <= 1e-6] = np.nan
    np.testing.assert_array_equal(np.isnan(ndvi), np.isnan(nd))
    assert np.nanmean(ndvi) == pytest.approx(np.nanmean(nd), abs=1e-5)
    assert np.nanmin(ndvi) >= -1 and np.nanmax(ndvi) <= 1


def test_liverpool_outputs_for_people(liverpool_run):
    ws, cfg, _, outcome = liverpool_run
    out = ws.path("compute", "outputs")
    gj = json.loads((out / "testcity_outputs_2020-09-27.geojson").read_text())
    assert len(gj["features"]) == len(pd.read_parquet(ws.cells))
    props = gj["features"][0]["properties"]
    for key in ("cell", "date", "lst_c", "ndvi", "ndbi", "mndwi", "albedo", "anomaly_c",
                "water_share", "water_lst_c"):
        assert key in props
    # this clip has no ST_QA: lst_uncertainty_k has no value anywhere, so the GeoJSON leaves the
    # column out (GDAL would type a column of nulls as String); the panel keeps it
    assert "lst_uncertainty_k" not in props and pd.read_parquet(ws.panel)["lst_uncertainty_k"].isna().all()
    assert gj["features"][0]["id"] == props["cell"]
    # the static columns are in the cells file once, not on every date (outputs.geojson_wide)
    assert "site_coverage" not in props and "area_m2" not in props
    cells_gj = json.loads((out / "testcity_cells.geojson").read_text())
    assert len(cells_gj["features"]) == len(gj["features"])
    assert {"cell", "area_m2", "urban", "water_share"} <= set(cells_gj["features"][0]["properties"])
    xl = pd.read_excel(out / "testcity_summary.xlsx", sheet_name=None)
    assert {"city_by_date", "suhi", "about"} <= set(xl)
    assert xl["city_by_date"]["lst_c_mean"].iloc[0] == pytest.approx(
        pd.read_parquet(ws.panel)["lst_c"].mean()
    )
    about = xl["about"].set_index("item")["description"]
    assert "floor area" in about["far"] and "share of the ground" in about["site_coverage"]
    with rasterio.open(out / "composites" / "lst_c_2020.tif") as src:
        comp = src.read(1)
        assert src.descriptions == ("lst_c",) and src.units == ("degC",)
    with rasterio.open(ws.path("compute", "scenes", LIVERPOOL_ID, "lst_c.tif")) as src:
        np.testing.assert_array_equal(comp, src.read(1))  # one scene: the mean is the scene
        assert src.descriptions == ("lst_c",) and src.units == ("degC",)
    with rasterio.open(ws.path("compute", "scenes", LIVERPOOL_ID, "ndvi.tif")) as src:
        assert src.descriptions == ("ndvi",) and src.units == ("1",)
    assert outcome.summary["scenes_used"] == 1


CLOUDY81 = "fullbands-LC08-008059-cloudy81"


def test_cloudy81_land_means_and_uncertainty_equal_exactextract_on_real_qa(tmp_path, data_dir):
    """With real QA_PIXEL and ST_QA: land pixels by QA bits written here, LST and ST_QA decoded here."""
    clip = data_dir / "landsat" / CLOUDY81
    ws = Workspace(tmp_path / "ws")
    _, bounds = place_scene(ws, clip)
    cfg = _config(tmp_path, inner_bbox(bounds, 0.3), grid={"zoom": 13}, outputs={"formats": []})
    outcome = execute(SPEC, cfg, ws)
    qa = _read_band(clip, "QA_PIXEL").astype(np.int64)
    st = _read_band(clip, "ST_B10").astype(np.float64)
    st_qa = _read_band(clip, "ST_QA").astype(np.float64)
    # LSDS-1619 Table 6-3: reject fill (0), dilated cloud (1), cirrus (2), cloud (3), shadow (4),
    # snow (5); water is bit 7. ST_B10: x 0.00341802 + 149.0 K, fill 0; ST_QA: x 0.01 K, fill -9999
    rejected = (qa & 0b111111) != 0
    clear = ~rejected & (st != 0)
    water = clear & (((qa >> 7) & 1) == 1)
    land = clear & ~water
    assert water.sum() > 0 and land.sum() > 1000
    lst = st * 0.00341802 + 149.0 - 273.15
    unc = np.where(st_qa == -9999, np.nan, st_qa * 0.01)
    cells = gpd.read_parquet(ws.cells)
    panel = pd.read_parquet(ws.panel).set_index("cell").loc[cells["cell"]]
    ref_lst = _exactextract_means(np.where(land, lst, np.nan), clip, cells, tmp_path)
    ref_unc = _exactextract_means(np.where(land, unc, np.nan), clip, cells, tmp_path)
    ref_water = _exactextract_means(np.where(water, lst, np.nan), clip, cells, tmp_path)
    value_range = np.nanmax(lst[clear]) - np.nanmin(lst[clear])
    np.testing.assert_array_equal(np.isnan(panel["lst_c"]), np.isnan(ref_lst))
    np.testing.assert_allclose(panel["lst_c"], ref_lst, rtol=0, atol=1e-6 * value_range, equal_nan=True)
    np.testing.assert_allclose(panel["water_lst_c"], ref_water, rtol=0, atol=1e-6 * value_range, equal_nan=True)
    unc_range = np.nanmax(unc[land]) - np.nanmin(unc[land])
    np.testing.assert_array_equal(np.isnan(panel["lst_uncertainty_k"]), np.isnan(ref_unc))
    np.testing.assert_allclose(panel["lst_uncertainty_k"], ref_unc, rtol=0, atol=1e-6 * unc_range, equal_nan=True)
    # the city summary: median and 90th percentile of the cell-date uncertainties
    finite = ref_unc[np.isfinite(ref_unc)]
    summary = outcome.summary["lst_uncertainty_k"]
    assert summary["cell_dates"] == finite.size > 100
    assert summary["median"] == pytest.approx(np.median(finite), abs=1e-4)
    assert summary["p90"] == pytest.approx(np.percentile(finite, 90), abs=1e-4)
    assert 0.1 < summary["median"] < summary["p90"] < 20


def test_rerun_with_same_inputs_is_skipped(liverpool_run):
    ws, cfg, _, _ = liverpool_run
    again = execute(SPEC, cfg, ws)
    assert again.skipped


def test_only_scene_fully_cloudy_is_no_data(tmp_path, data_dir):
    ws = Workspace(tmp_path / "ws")
    _, bounds = place_scene(ws, data_dir / "landsat" / CLOUDY100)
    cfg = _config(tmp_path, inner_bbox(bounds, 0.5), grid={"zoom": 15})
    with pytest.raises(NoDataError, match="no clear pixel"):
        execute(SPEC, cfg, ws)
    assert not ws.panel.exists()
    assert ws.stage_record("compute") is None


def test_cli_exit_3_for_the_fully_cloudy_scene(tmp_path, data_dir):
    ws = Workspace(tmp_path / "ws")
    _, bounds = place_scene(ws, data_dir / "landsat" / CLOUDY100)
    w, s, e, n = inner_bbox(bounds, 0.5)
    (tmp_path / "c.yaml").write_text(
        f"city:\n  name: cloudy\n  bbox: [{w}, {s}, {e}, {n}]\ngrid:\n  zoom: 15\nworkdir: {ws.root}\n"
    )
    r = subprocess.run(
        [sys.executable, "-m", "uhi.cli.main", "compute", str(tmp_path / "c.yaml")],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 3, r.stderr
    assert "no clear pixel" in r.stderr and "Traceback" not in r.stderr


def test_cloudy_scene_beside_a_clear_one_is_skipped_not_zero(tmp_path, data_dir, caplog):
    ws = Workspace(tmp_path / "ws")
    cloudy, _ = place_scene(ws, data_dir / "landsat" / CLOUDY100)
    _, bounds = place_scene(ws, data_dir / "landsat" / LIVERPOOL)
    cfg = _config(tmp_path, inner_bbox(bounds, 0.03), grid={"zoom": 17})
    with caplog.at_level(logging.WARNING, logger="uhi.compute"):
        outcome = execute(SPEC, cfg, ws)
    assert outcome.summary["scenes_no_clear"] == 1
    assert any(cloudy in r.message and "no clear pixel" in r.message for r in caplog.records)
    panel = pd.read_parquet(ws.panel)
    assert set(panel["scene_id"]) == {LIVERPOOL_ID}
    assert panel["lst_c"].min() > 0  # September in Liverpool: no -124 C, no zeros


def test_same_solar_day_scenes_are_merged(tmp_path, data_dir):
    """Two overlapping windows of one clip as adjacent-row scenes of one day equal the whole clip."""
    clip = data_dir / "landsat" / LIVERPOOL
    whole_ws = Workspace(tmp_path / "whole")
    _, bounds = place_scene(whole_ws, clip)
    bbox = inner_bbox(bounds, 0.02)
    whole_cfg = _config(tmp_path, bbox, grid={"zoom": 17}, workdir=str(whole_ws.root))
    execute(SPEC, whole_cfg, whole_ws)
    ws = Workspace(tmp_path / "split")
    a = LIVERPOOL_ID.replace("204023", "204022")
    b = LIVERPOOL_ID.replace("204023", "204024")
    place_scene(ws, clip, scene_id=a, window=Window(0, 0, 433, 150))
    place_scene(ws, clip, scene_id=b, window=Window(0, 120, 433, 147))
    cfg = _config(tmp_path, bbox, grid={"zoom": 17}, workdir=str(ws.root))
    outcome = execute(SPEC, cfg, ws)
    assert outcome.summary["dates"] == 1 and outcome.summary["pixel_grids"] == 2
    split = pd.read_parquet(ws.panel)
    whole = pd.read_parquet(whole_ws.panel)
    assert set(split["scene_id"]) == {f"{a}+{b}"}
    # every cell comes whole from the scene that covers it best: the same pixels as the clip
    for col in ("lst_c", "ndvi", "albedo", "lst_c_min", "lst_c_max", "valid_share"):
        np.testing.assert_allclose(split[col], whole[col], rtol=1e-9, atol=1e-12, equal_nan=True)


def test_scene_without_thermal_keeps_indices(tmp_path, data_dir, caplog):
    ws = Workspace(tmp_path / "ws")
    _, bounds = place_scene(ws, data_dir / "landsat" / "manaus-LC09-20230723")
    cfg = _config(tmp_path, inner_bbox(bounds, 0.03), grid={"zoom": 16})
    with caplog.at_level(logging.WARNING, logger="uhi.compute"):
        execute(SPEC, cfg, ws)
    assert any("no surface temperature" in r.message for r in caplog.records)
    panel = pd.read_parquet(ws.panel)
    assert panel["lst_c"].isna().all()
    # the Rio Negro's cells are all water: no land NDVI there, every other cell has one
    river = panel["water_share"] == 1.0
    assert 0.05 < river.mean() < 0.5
    assert panel.loc[river, "ndvi"].isna().all()
    assert panel.loc[~river, "ndvi"].notna().all()
    assert panel["valid_share"].mean() > 0.9


def test_momotombo_lava_survives_the_stage(tmp_path, data_dir):
    ws = Workspace(tmp_path / "ws")
    _, bounds = place_scene(ws, data_dir / "landsat" / "momotombo-LC08-20151205")
    cfg = _config(tmp_path, inner_bbox(bounds, 0.0), grid={"zoom": 17})
    execute(SPEC, cfg, ws)
    panel = pd.read_parquet(ws.panel)
    assert panel["lst_c_max"].max() > 90  # the crater (~372 K)
    assert panel["lst_c_min"].min() > -60  # fill never becomes -124 C


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_panel(tmp_path, data_dir):
    """The stage runs unchanged on Dask (one task per scene): the same panel as on threads."""
    require_module("distributed", "pip install 'uhi-landsat[dask]' (the test extra pulls it in)")
    clip = data_dir / "landsat" / LIVERPOOL
    results = {}
    for mode, dask in (("threads", {}), ("dask", {"workers": 1})):
        ws = Workspace(tmp_path / mode)
        place_scene(ws, clip, scene_id=LIVERPOOL_ID)
        # the same pixels under a second date: two tasks
        _, bounds = place_scene(ws, clip, scene_id=LIVERPOOL_ID.replace("20200927", "20200911"))
        cfg = build_config(
            {
                "city": {"name": "d", "bbox": inner_bbox(bounds, 0.03)},
                "grid": {"zoom": 17},
                "outputs": {"formats": ["excel"]},
                "dask": dask,
                "workdir": str(ws.root),
            },
            environ={},
        )
        outcome = execute(SPEC, cfg, ws)
        assert outcome.summary["dates"] == 2
        results[mode] = pd.read_parquet(ws.panel)
    for col in ("lst_c", "ndvi", "albedo", "valid_share", "anomaly_c"):
        np.testing.assert_array_equal(results["threads"][col], results["dask"][col])


def _gdal_tool(name: str) -> str:
    """Path of a Debian gdal-bin program (skipped locally, failed under CI when missing)."""
    from conftest import require_program

    return require_program(name, fix="apt-get install -y gdal-bin (.ci/run installs it)")


def test_liverpool_geopackage_read_by_stock_gdal(liverpool_run):
    """The city GeoPackage opens in Debian's ogrinfo; its cells equal cells.parquet."""
    from uhi.pipeline import assemble_city_gpkg

    ws, cfg, _, _ = liverpool_run
    ogrinfo, ogr2ogr = _gdal_tool("ogrinfo"), _gdal_tool("ogr2ogr")
    with ws.locked():
        city = assemble_city_gpkg(cfg, ws)
    assert city == ws.root / "testcity.gpkg"
    opened = subprocess.run([ogrinfo, "-ro", "-al", "-so", str(city)], capture_output=True, text=True, check=True)
    assert "Warning" not in opened.stderr, opened.stderr  # e.g. a GeoPackage version it half supports
    listing = opened.stdout
    layers = [line.split(":", 1)[1].strip() for line in listing.splitlines() if line.startswith("Layer name:")]
    assert layers == ["aoi", "cells", "cell_years"]
    cells = gpd.read_parquet(ws.cells)
    assert f"Feature Count: {len(cells)}" in listing.split("Layer name: cells")[1].split("Layer name:")[0]
    # a column with no value (no buildings layer) is still typed Real, not String
    assert "site_coverage: Real" in listing and "urban: Integer(Boolean)" in listing
    # every value of cells.parquet, read back by GDAL's own CSV writer (not by pyogrio)
    text = subprocess.run(
        [ogr2ogr, "-f", "CSV", "/vsistdout/", str(city), "cells", "-lco", "GEOMETRY=AS_WKT"],
        capture_output=True, text=True, check=True,
    ).stdout
    import io

    back = pd.read_csv(io.StringIO(text), dtype={"cell": str})
    assert back["cell"].tolist() == cells["cell"].tolist()
    for col in cells.columns.drop(["cell", "geometry"]):
        ours = back[col].to_numpy(dtype=float)
        ref = cells[col].to_numpy(dtype=float)
        # GDAL's CSV writer prints at most 15 significant digits and 16 decimals
        np.testing.assert_allclose(ours, ref, rtol=1e-13, atol=1e-16, err_msg=col, equal_nan=True)
    # and bit for bit through GDAL's binary reader
    import pyogrio

    exact = pyogrio.read_dataframe(city, layer="cells")
    pd.testing.assert_frame_equal(
        pd.DataFrame(exact[cells.columns.drop("geometry")]), pd.DataFrame(cells.drop(columns="geometry")),
        check_exact=True, check_dtype=False,
    )
    geoms = shapely.from_wkt(back["WKT"].to_numpy())
    assert shapely.equals_exact(geoms, cells.geometry.to_numpy(), tolerance=1e-12).all()
    # the latest-year summer means beside the morphology: one date here, so they equal the panel
    panel = pd.read_parquet(ws.panel).set_index("cell")
    np.testing.assert_allclose(back["lst_c_summer"], panel.loc[back["cell"], "lst_c"], rtol=1e-14, equal_nan=True)
    assert (back["summer_year"] == 2020).all()

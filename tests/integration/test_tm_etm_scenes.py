"""TM and ETM+ scenes end to end: EarthExplorer files on disk -> local search -> fetch -> compute,
checked against exactextract on DNs decoded here with the USGS constants written in this file.

The scenes are small real-format GeoTIFFs built here (seeded DNs): no TM/ETM+ clip is in
tests/data. Each band holds its own random DNs, so reading TM files with the OLI numbering (SR_B1
as coastal, SR_B4 as red, ST_B10 for thermal) changes every index and LST and fails the test.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from exactextract import exact_extract
from pyproj import Transformer
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds

from uhi.config import Config
from uhi.stages import compute, fetch
from uhi.stages.runner import execute
from uhi.workspace import Workspace

# LSDS-1618 (Landsat 4-7 C2 L2 Science Product Guide) and LSDS-1619 (8-9), scaling tables:
# SR DN x 0.0000275 - 0.2, ST DN x 0.00341802 + 149.0 K, fill 0 in both.
SR_MULT, SR_ADD = 0.0000275, -0.2
ST_MULT, ST_ADD = 0.00341802, 149.0
KELVIN = 273.15
# TM/ETM+ band files (LSDS-1618 band designations): 1 blue, 2 green, 3 red, 4 NIR, 5 SWIR1, 7 SWIR2, ST_B6.
TM_SR = ("SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7")
# OLI (LSDS-1619): 1 coastal, 2 blue, 3 green, 4 red, 5 NIR, 6 SWIR1, 7 SWIR2, ST_B10.
OLI_SR = ("SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7")

CRS = "EPSG:32630"
ORIGIN = (500_010.0, 5_920_020.0)  # near Liverpool
SIZE = 64  # pixels of 30 m
MIN_VALID_SHARE = 0.6

TM_ID = "LT05_L2SP_204023_20090715_20200827_02_T1"
ETM_ID = "LE07_L2SP_204023_20100718_20200911_02_T1"  # SLC-off (after 2003-05-31): striped
# 2013, the L7/L8 overlap: an ETM+ scene and an OLI scene of an adjacent path on one solar day
ETM_PAIR_ID = "LE07_L2SP_204023_20130720_20200907_02_T1"
OLI_ID = "LC08_L2SP_205023_20130720_20200913_02_T1"
MSS_ID = "LM05_L1TP_204023_19900704_20200916_02_T2"


def _write(path: Path, data: np.ndarray, nodata: int | None) -> None:
    profile = {
        "driver": "GTiff", "height": SIZE, "width": SIZE, "count": 1, "dtype": data.dtype.name,
        "crs": CRS, "transform": from_origin(*ORIGIN, 30.0, 30.0), "nodata": nodata,
        "tiled": True, "blockxsize": 32, "blockysize": 32,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


def _mtl(product: str, spacecraft: str, thermal: str, sr_numbers: list[str], when: str) -> str:
    refl = "".join(
        f"    REFLECTANCE_MULT_BAND_{n} = 2.75E-05\n    REFLECTANCE_ADD_BAND_{n} = -0.200000\n" for n in sr_numbers
    )
    return (
        "GROUP = LANDSAT_METADATA_FILE\n"
        f"  GROUP = PRODUCT_CONTENTS\n    LANDSAT_PRODUCT_ID = \"{product}\"\n    PROCESSING_LEVEL = \"L2SP\"\n"
        "  END_GROUP = PRODUCT_CONTENTS\n"
        f"  GROUP = IMAGE_ATTRIBUTES\n    SPACECRAFT_ID = \"{spacecraft}\"\n    CLOUD_COVER = 5.00\n"
        f"    DATE_ACQUIRED = {when}\n    SCENE_CENTER_TIME = \"10:55:00.0000000Z\"\n"
        "  END_GROUP = IMAGE_ATTRIBUTES\n"
        f"  GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS\n{refl}  END_GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS\n"
        "  GROUP = LEVEL2_SURFACE_TEMPERATURE_PARAMETERS\n"
        f"    TEMPERATURE_MULT_BAND_ST_{thermal} = 0.00341802\n    TEMPERATURE_ADD_BAND_ST_{thermal} = 149.000000\n"
        "  END_GROUP = LEVEL2_SURFACE_TEMPERATURE_PARAMETERS\n"
        "END_GROUP = LANDSAT_METADATA_FILE\nEND\n"
    )


def _scene(folder: Path, product: str, rng: np.random.Generator, *, sr_bands: tuple[str, ...], thermal: str,
           spacecraft: str, stripes: bool) -> dict[str, np.ndarray]:
    """Write one product's files; return its raw arrays keyed by USGS band name."""
    folder.mkdir(parents=True)
    bands: dict[str, np.ndarray] = {}
    # land reflectance 0.02..0.45 (inside LSDS valid range DN 7273..43636)
    for band in sr_bands:
        bands[band] = rng.integers(8000, 23600, size=(SIZE, SIZE), dtype=np.uint16)
    bands[f"ST_{thermal}"] = rng.integers(44000, 50000, size=(SIZE, SIZE), dtype=np.uint16)  # ~ 8 .. 29 C
    qa = np.full((SIZE, SIZE), 1 << 6, dtype=np.uint16)  # clear
    cloud = rng.random((SIZE, SIZE)) < 0.05
    qa[cloud] = (1 << 3) | (1 << 1)  # cloud + dilated cloud
    fill = np.zeros((SIZE, SIZE), dtype=bool)
    if stripes:
        # SLC-off: diagonal wedges of no data, ~ 25 % of pixels, fill in every band (LSDS-1618 QA bit 0)
        rows, cols = np.mgrid[0:SIZE, 0:SIZE]
        fill = ((rows + cols // 3) % 12) < 3
    fill[:, :2] = True  # the scene edge
    qa[fill] = 1
    for band, data in bands.items():
        data[fill] = 0
        _write(folder / f"{product}_{band}.TIF", data, 0)
    bands["QA_PIXEL"] = qa
    _write(folder / f"{product}_QA_PIXEL.TIF", qa, 1)
    when = dt.datetime.strptime(product.split("_")[3], "%Y%m%d").date().isoformat()
    numbers = [b.removeprefix("SR_B") for b in sr_bands]
    (folder / f"{product}_MTL.txt").write_text(_mtl(product, spacecraft, thermal, numbers, when))
    return bands


def _sr(dn: np.ndarray) -> np.ndarray:
    return np.where(dn == 0, np.nan, dn.astype(np.float64) * SR_MULT + SR_ADD)


def _decoded(bands: dict[str, np.ndarray], tm_numbering: bool) -> dict[str, np.ndarray]:
    """LST and indices per pixel, independently of uhi (NaN where QA rejects or fill)."""
    if tm_numbering:
        blue, green, red, nir, swir1, swir2, st = (bands[b] for b in (*TM_SR, "ST_B6"))
    else:
        blue, green, red, nir, swir1, swir2, st = (
            bands[b] for b in ("SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7", "ST_B10")
        )
    qa = bands["QA_PIXEL"].astype(np.uint16)
    reject = (qa & 0b111111) != 0  # bits 0..5: fill, dilated cloud, cirrus, cloud, shadow, snow
    b, g, r, n, s1, s2 = (np.where(reject, np.nan, _sr(x)) for x in (blue, green, red, nir, swir1, swir2))
    lst = np.where(reject | (st == 0), np.nan, st.astype(np.float64) * ST_MULT + ST_ADD - KELVIN)
    return {
        "lst_c": lst,
        "ndvi": (n - r) / (n + r),
        "ndbi": (s1 - n) / (s1 + n),
        "mndwi": (g - s1) / (g + s1),
        # Liang (2001) shortwave albedo, TM bands 1, 3, 4, 5, 7
        "albedo": 0.356 * b + 0.130 * r + 0.373 * n + 0.085 * s1 + 0.072 * s2 - 0.0018,
        "clear": (~np.isnan(lst)).astype(np.float64),
    }


def _cell_polygons(cells: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    tr = Transformer.from_crs(4326, CRS, always_xy=True)
    rings = np.array([np.array(g.exterior.coords) for g in cells.geometry])
    x, y = tr.transform(rings[:, :, 0], rings[:, :, 1])
    return gpd.GeoDataFrame({"cell": cells["cell"]}, geometry=shapely.polygons(np.stack([x, y], axis=2)), crs=CRS)


def _extract(values: np.ndarray, frame: gpd.GeoDataFrame, tmp: Path, ops: list[str]) -> pd.DataFrame:
    raster = tmp / f"ref{len(list(tmp.glob('ref*.tif')))}.tif"
    profile = {"driver": "GTiff", "height": SIZE, "width": SIZE, "count": 1, "dtype": "float64", "crs": CRS,
               "transform": from_origin(*ORIGIN, 30.0, 30.0), "nodata": np.nan}
    with rasterio.open(raster, "w", **profile) as dst:
        dst.write(values, 1)
    return exact_extract(str(raster), frame, ops, output="pandas")


@pytest.fixture(scope="module")
def sensors_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sensors")
    rng = np.random.default_rng(17)
    scenes = tmp / "scenes"
    tm = _scene(scenes / TM_ID, TM_ID, rng, sr_bands=TM_SR, thermal="B6", spacecraft="LANDSAT_5", stripes=False)
    etm = _scene(scenes / ETM_ID, ETM_ID, rng, sr_bands=TM_SR, thermal="B6", spacecraft="LANDSAT_7", stripes=True)
    pair = _scene(scenes / ETM_PAIR_ID, ETM_PAIR_ID, rng, sr_bands=TM_SR, thermal="B6", spacecraft="LANDSAT_7",
                  stripes=True)
    oli = _scene(scenes / OLI_ID, OLI_ID, rng, sr_bands=OLI_SR, thermal="B10", spacecraft="LANDSAT_8",
                 stripes=False)
    # an MSS product (no Level-2): never a scene
    (scenes / MSS_ID).mkdir()
    _write(scenes / MSS_ID / f"{MSS_ID}_B1.TIF", np.ones((SIZE, SIZE), dtype=np.uint8), 0)
    with rasterio.open(scenes / TM_ID / f"{TM_ID}_SR_B1.TIF") as src:
        w, s, e, n = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    dx, dy = (e - w) * 0.2, (n - s) * 0.2
    cfg = Config.model_validate({
        "city": {"name": "sensors", "bbox": [w + dx, s + dy, e - dx, n - dy]},
        "time": {"start": "2009-01-01", "end": "2013-12-31", "months": [7]},
        "search": {"backend": "local", "path": str(scenes), "platforms": "all"},
        "fetch": {"workers": 2, "margin_m": 60},
        "grid": {"zoom": 18},
        "compute": {"min_valid_share": MIN_VALID_SHARE},
        "outputs": {"formats": ["cog"], "scene_rasters": True},
        "workdir": str(tmp / "ws"),
    })
    ws = Workspace(cfg.resolved_workdir())
    with ws.locked():
        execute(fetch.SPEC, cfg, ws)
        execute(compute.SPEC, cfg, ws)
    return ws, tmp, {"tm": tm, "etm": etm, "pair": pair, "oli": oli}


def test_fetch_resolves_tm_and_etm_files_by_their_own_numbering(sensors_run):
    ws, _, _ = sensors_run
    import json

    index = json.loads(ws.scenes_index.read_text())
    by_id = {f["id"]: f for f in index["features"]}
    assert set(by_id) == {TM_ID, ETM_ID, ETM_PAIR_ID, OLI_ID}  # the MSS product is dropped
    for sid, sensor in ((TM_ID, "TM"), (ETM_ID, "ETM+"), (OLI_ID, "OLI/TIRS")):
        assert by_id[sid]["properties"]["uhi:sensor"] == sensor
    tm_assets = by_id[TM_ID]["assets"]
    assert tm_assets["blue"]["href"].endswith("blue.tif")
    # the fetched blue clip holds the SR_B1 DNs of the TM scene
    tm_dir = ws.scene_dir(TM_ID)
    with rasterio.open(tm_dir / "blue.tif") as got, rasterio.open(
        sensors_run[1] / "scenes" / TM_ID / f"{TM_ID}_SR_B1.TIF"
    ) as src:
        assert got.read(1).sum() > 0
        win = rasterio.windows.from_bounds(*got.bounds, transform=src.transform)
        np.testing.assert_array_equal(got.read(1), src.read(1, window=win.round_offsets().round_lengths()))


def _reference(decoded: dict[str, np.ndarray], frame: gpd.GeoDataFrame, tmp: Path) -> pd.DataFrame:
    out = pd.DataFrame({"cell": frame["cell"].to_numpy()})
    share = _extract(np.where(np.isnan(decoded["clear"]), np.nan, decoded["clear"]), frame, tmp, ["mean"])
    out["valid_share"] = share["mean"].to_numpy()
    for var in ("lst_c", "ndvi", "ndbi", "mndwi", "albedo"):
        out[var] = _extract(decoded[var], frame, tmp, ["mean"])["mean"].to_numpy()
    return out


@pytest.mark.parametrize(
    ("sid", "key", "day", "platform"),
    [(TM_ID, "tm", "2009-07-15", "landsat-5"), (ETM_ID, "etm", "2010-07-18", "landsat-7")],
)
def test_tm_and_etm_scenes_equal_exactextract_on_decoded_dns(sensors_run, sid, key, day, platform):
    """LST and indices of a TM and a striped ETM+ scene: cell means within 0.01 C / 1e-5 of
    exactextract on DNs decoded here; a cell-date below compute.min_valid_share is NaN."""
    ws, tmp, raw = sensors_run
    cells = gpd.read_parquet(ws.cells)
    frame = _cell_polygons(cells)
    panel = pd.read_parquet(ws.panel)
    rows = panel[panel["date"] == pd.Timestamp(day)].set_index("cell").loc[cells["cell"]]
    assert (rows["platform"] == platform).all() and (rows["scene_id"] == sid).all()
    decoded = _decoded(raw[key], tm_numbering=True)
    ref = _reference(decoded, frame, tmp)
    # valid share: clear pixels / cell area (exactextract's mean of the 0/1 clear raster over the cell)
    np.testing.assert_allclose(rows["valid_share"], ref["valid_share"], rtol=0, atol=1e-6)
    keep = ref["valid_share"].to_numpy() >= MIN_VALID_SHARE
    if key == "etm":
        # SLC-off stripes: ~ 25 % of the pixels are fill, many cells fall below the threshold
        assert 0.2 < np.isnan(decoded["lst_c"]).mean() < 0.4
        assert 0.1 < (~keep).mean() < 0.9
    else:
        assert keep.mean() > 0.8  # 5 % cloud only
    for var, tol in (("lst_c", 0.01), ("ndvi", 1e-5), ("ndbi", 1e-5), ("mndwi", 1e-5), ("albedo", 1e-5)):
        expected = np.where(keep, ref[var].to_numpy(), np.nan)
        np.testing.assert_allclose(rows[var].to_numpy(), expected, rtol=0, atol=tol, equal_nan=True, err_msg=var)
    # no stripe leaks as a zero DN: ST 0 would be -124.15 C, SR 0 a reflectance of -0.2
    assert np.nanmin(rows["lst_c"]) > 5.0 and np.nanmin(rows["albedo"]) > 0.0


def test_etm_slc_off_day_merged_with_l8_equals_pooled_exactextract(sensors_run):
    """The striped ETM+ scene and the same-day OLI scene of the adjacent path merge as any
    same-solar-day scenes do: each cell keeps the scene that saw more of it clear (the OLI
    scene, first by id, on ties); the row records both platforms."""
    ws, tmp, raw = sensors_run
    cells = gpd.read_parquet(ws.cells)
    frame = _cell_polygons(cells)
    panel = pd.read_parquet(ws.panel)
    rows = panel[panel["date"] == pd.Timestamp("2013-07-20")].set_index("cell").loc[cells["cell"]]
    assert (rows["platform"] == "landsat-7+landsat-8").all()
    assert set(rows["scene_id"].iloc[0].split("+")) == {ETM_PAIR_ID, OLI_ID}
    etm = _reference(_decoded(raw["pair"], tm_numbering=True), frame, tmp)
    oli = _reference(_decoded(raw["oli"], tm_numbering=False), frame, tmp)
    etm_better = (etm["valid_share"] > oli["valid_share"]).to_numpy()
    assert 0 < etm_better.sum() < len(etm_better) * 0.5  # the stripes make OLI win most cells
    share = np.where(etm_better, etm["valid_share"], oli["valid_share"])
    np.testing.assert_allclose(rows["valid_share"], share, rtol=0, atol=1e-6)
    keep = share >= MIN_VALID_SHARE
    for var, tol in (("lst_c", 0.01), ("ndvi", 1e-5), ("ndbi", 1e-5), ("mndwi", 1e-5), ("albedo", 1e-5)):
        expected = np.where(keep, np.where(etm_better, etm[var], oli[var]), np.nan)
        np.testing.assert_allclose(rows[var].to_numpy(), expected, rtol=0, atol=tol, equal_nan=True, err_msg=var)
    assert np.nanmin(rows["lst_c"]) > 5.0 and np.nanmin(rows["albedo"]) > 0.0


def test_etm_scene_cog_keeps_stripes_nan(sensors_run):
    ws, _, _ = sensors_run
    with rasterio.open(ws.path("compute", "scenes", ETM_ID, "lst_c.tif")) as src:
        lst = src.read(1)
    assert np.isnan(lst).mean() > 0.15  # stripes stay NaN in the per-scene COG
    assert np.nanmin(lst) > 5.0

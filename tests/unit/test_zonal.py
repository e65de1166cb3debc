"""Coverage-weighted zonal statistics against exactextract, on synthetic and real rasters."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely
from exactextract import exact_extract
from pyproj import Transformer
from rasterio.transform import from_origin
from shapely.geometry import box

from uhi.grid.cells import cell_quads, tiles_for_geometry
from uhi.grid.zonal import ZonalAccumulator, build_coverage, grid_key, zonal_stats


def _cells_over(crs: str, transform, shape, zoom: int, inset_m: float) -> np.ndarray:
    rows, cols = shape
    left, top = transform.c, transform.f
    right = left + cols * transform.a
    bottom = top + rows * transform.e
    tr = Transformer.from_crs(crs, 4326, always_xy=True)
    w, s = tr.transform(left + inset_m, bottom + inset_m)
    e, n = tr.transform(right - inset_m, top - inset_m)
    x, y = tiles_for_geometry(box(w, s, e, n), zoom)
    return cell_quads(x, y, zoom, crs)


def _exactextract(raster: np.ndarray, crs: str, transform, quads: np.ndarray, tmp: Path):
    path = tmp / "r.tif"
    with rasterio.open(
        path, "w", driver="GTiff", height=raster.shape[0], width=raster.shape[1], count=1,
        dtype="float64", crs=crs, transform=transform, nodata=np.nan,
    ) as dst:
        dst.write(raster, 1)
    polys = shapely.polygons(np.concatenate([quads, quads[:, :1]], axis=1))
    frame = gpd.GeoDataFrame({"id": np.arange(len(quads))}, geometry=polys, crs=crs)
    return exact_extract(str(path), frame, ["mean", "min", "max", "stdev", "count"], output="pandas")


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    rng = np.random.default_rng(42)
    crs = "EPSG:32633"
    transform = from_origin(455010, 5560020, 30, 30)
    shape = (160, 200)
    raster = 30 + 5 * rng.standard_normal(shape)
    raster[rng.random(shape) < 0.15] = np.nan
    raster[40:60, 50:90] = np.nan  # a cloud
    quads = _cells_over(crs, transform, shape, 19, inset_m=-200)  # cells spill past the raster
    ref = _exactextract(raster, crs, transform, quads, tmp_path_factory.mktemp("zonal"))
    return raster, crs, transform, quads, ref


def test_means_equal_exactextract_on_synthetic_raster(synthetic):
    raster, _, transform, quads, ref = synthetic
    cov = build_coverage(quads, transform, raster.shape)
    out = zonal_stats(cov, raster)
    value_range = np.nanmax(raster) - np.nanmin(raster)
    has = ref["count"].to_numpy() > 0
    assert has.sum() > 1000
    np.testing.assert_array_equal(np.isnan(out["mean"]), ~has)
    assert np.nanmax(np.abs(out["mean"] - ref["mean"].to_numpy())) <= 1e-6 * value_range
    np.testing.assert_allclose(out["weight"], ref["count"], atol=1e-6)
    np.testing.assert_allclose(out["min"][has], ref["min"][has])
    np.testing.assert_allclose(out["max"][has], ref["max"][has])
    np.testing.assert_allclose(out["std"][has], ref["stdev"][has], atol=1e-6 * value_range)


def test_valid_share_counts_cloud_and_outside_as_invalid(synthetic):
    raster, _, transform, quads, ref = synthetic
    cov = build_coverage(quads, transform, raster.shape)
    full = zonal_stats(cov, np.ones(raster.shape))
    # cells wholly inside the raster are wholly covered; cells partly outside are not
    inside = np.isclose(full["valid_share"], 1.0)
    assert inside.sum() > 0 and (~inside).sum() > 0
    np.testing.assert_allclose(full["weight"][inside], cov.cell_area_px[inside], rtol=1e-9)
    out = zonal_stats(cov, raster)
    assert (out["valid_share"] <= full["valid_share"] + 1e-12).all()
    np.testing.assert_allclose(out["valid_share"], np.clip(ref["count"] / cov.cell_area_px, 0, 1), atol=1e-6)


def test_blockwise_accumulation_equals_whole_raster(synthetic):
    raster, _, transform, quads, _ = synthetic
    cov = build_coverage(quads, transform, raster.shape)
    whole = zonal_stats(cov, raster)
    acc = ZonalAccumulator(cov.n_cells, shift=30.0)
    for r0, r1, block in cov.row_blocks(37):
        acc.add(block, raster[r0:r1])
    res = acc.result()
    for key in ("mean", "min", "max", "weight"):
        np.testing.assert_allclose(res[key], whole[key], rtol=1e-9, atol=1e-9, equal_nan=True)
    # std comes from one-pass sums: a one-pixel cell's 0 carries sqrt(eps) * |v - shift| noise
    value_range = np.nanmax(raster) - np.nanmin(raster)
    np.testing.assert_allclose(res["std"], whole["std"], atol=1e-6 * value_range, equal_nan=True)


def test_merge_pools_two_scenes(synthetic):
    raster, _, transform, quads, _ = synthetic
    cov = build_coverage(quads, transform, raster.shape)
    other = raster[::-1].copy() + 3.0
    a, b = ZonalAccumulator(cov.n_cells, 10.0), ZonalAccumulator(cov.n_cells, 40.0)
    a.add(cov.matrix, raster)
    b.add(cov.matrix, other)
    a.merge(b)
    pooled = a.result()
    # pooling = the weighted mean over both scenes' valid pixels
    w = cov.matrix
    v1, v2 = np.nan_to_num(raster.ravel()), np.nan_to_num(other.ravel())
    m1, m2 = ~np.isnan(raster.ravel()), ~np.isnan(other.ravel())
    with np.errstate(invalid="ignore"):
        expected = (w @ (v1 * m1) + w @ (v2 * m2)) / (w @ m1 + w @ m2)
    np.testing.assert_allclose(pooled["mean"], expected, rtol=1e-12, equal_nan=True)


def test_real_liverpool_lst_means_equal_exactextract(data_dir, tmp_path):
    path = next((data_dir / "landsat" / "liverpool-LC08-20200927").glob("*_ST_B10.TIF"))
    with rasterio.open(path) as src:
        dn = src.read(1)
        crs, transform = src.crs.to_string(), src.transform
    lst = np.where(dn == 0, np.nan, dn * 0.00341802 + 149.0 - 273.15)
    quads = _cells_over(crs, transform, lst.shape, 18, inset_m=100)
    ref = _exactextract(lst, crs, transform, quads, tmp_path)
    out = zonal_stats(build_coverage(quads, transform, lst.shape), lst)
    value_range = np.nanmax(lst) - np.nanmin(lst)
    assert np.nanmax(np.abs(out["mean"] - ref["mean"].to_numpy())) <= 1e-6 * value_range


def test_grid_key_identifies_a_pixel_grid():
    t = from_origin(0, 0, 30, 30)
    assert grid_key("EPSG:32633", t, (10, 10)) == grid_key("EPSG:32633", t, (10, 10))
    assert grid_key("EPSG:32633", t, (10, 10)) != grid_key("EPSG:32634", t, (10, 10))
    assert grid_key("EPSG:32633", t, (10, 10)) != grid_key("EPSG:32633", t, (10, 11))


def test_shape_mismatch_is_an_error(synthetic):
    raster, _, transform, quads, _ = synthetic
    cov = build_coverage(quads, transform, raster.shape)
    with pytest.raises(ValueError, match="does not match the grid"):
        zonal_stats(cov, raster[:-1])


def test_zonal_means_fast_path_equals_full_stats(synthetic):
    from uhi.grid.zonal import zonal_means

    raster, _, transform, quads, ref = synthetic
    cov = build_coverage(quads, transform, raster.shape)
    means = zonal_means(cov, raster)
    value_range = np.nanmax(raster) - np.nanmin(raster)
    assert np.nanmax(np.abs(means - ref["mean"].to_numpy())) <= 1e-6 * value_range
    np.testing.assert_array_equal(np.isnan(means), np.isnan(ref["mean"].to_numpy()))

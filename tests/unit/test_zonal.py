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


def _sparse_reference(cov, blocks, values, shifts):
    """Per variable, the sums of ZonalAccumulator.add: scipy's sparse products and min/max."""
    out = []
    for j, shift in enumerate(shifts):
        acc = ZonalAccumulator(cov.n_cells, shift)
        for (_, _, block), v in zip(blocks, values, strict=True):
            acc.add(block, v[:, j])
        out.append(acc)
    return out


@pytest.mark.parametrize(("k", "moments"), [(8, 1), (8, 8), (3, 2), (3, 0)])
def test_add_block_equals_the_sparse_products_bit_for_bit(synthetic, k, moments):
    """Both kernels (compute's unrolled 8-variable one and the general one) against scipy's
    CSR products per variable: the same float64 sums, min and max, bit for bit."""
    from uhi.grid.zonal import accumulator_set, add_block

    raster, _, transform, quads, _ = synthetic
    cov = build_coverage(quads, transform, raster.shape)
    rng = np.random.default_rng(k * 10 + moments)
    blocks = cov.row_blocks(37)
    values = []
    for r0, r1, _ in blocks:
        v = (20 + 10 * rng.standard_normal(((r1 - r0) * raster.shape[1], k))).astype(np.float32)
        v[rng.random(v.shape) < 0.3] = np.nan
        v[:, 0] = np.where(np.isnan(raster[r0:r1].ravel()), np.nan, v[:, 0])  # the cloud too
        values.append(v)
    shifts = [float(s) for s in rng.uniform(-5, 25, k)]
    accs = accumulator_set(cov.n_cells, shifts, moments=moments)
    for (_, _, block), v in zip(blocks, values, strict=True):
        add_block(accs, block, v)
    reference = _sparse_reference(cov, blocks, values, shifts)
    for j, (got, ref) in enumerate(zip(accs.accumulators, reference, strict=True)):
        np.testing.assert_array_equal(got.sum_w, ref.sum_w)
        np.testing.assert_array_equal(got.sum_wv, ref.sum_wv)
        assert got.has_moments == (j < moments)
        if j < moments:
            np.testing.assert_array_equal(got.sum_wv2, ref.sum_wv2)
            np.testing.assert_array_equal(got.vmin, ref.vmin)
            np.testing.assert_array_equal(got.vmax, ref.vmax)
            assert set(got.result()) == {"mean", "std", "min", "max", "weight"}
        else:
            assert got.sum_wv2 is None and set(got.result()) == {"mean", "weight"}
        np.testing.assert_array_equal(got.mean(), ref.result()["mean"])


def test_statistics_equal_the_numpy_formulas_bit_for_bit():
    """mean = S1 / W + shift, std = sqrt(max(S2 / W - (S1 / W)^2, 0)), NaN where W = 0,
    min/max NaN where no pixel was seen: the expressions the compiled passes replaced."""
    rng = np.random.default_rng(5)
    n = 5000
    acc = ZonalAccumulator(n, shift=25.0)
    acc.sum_w[:] = np.where(rng.random(n) < 0.2, 0.0, rng.uniform(0, 3, n))
    acc.sum_wv[:] = np.where(acc.sum_w > 0, rng.normal(0, 5, n) * acc.sum_w, 0.0)
    # some variances round below 0 (one pixel: S2 / W = (S1 / W)^2 up to rounding)
    acc.sum_wv2[:] = np.where(rng.random(n) < 0.3, acc.sum_wv**2 / np.where(acc.sum_w > 0, acc.sum_w, 1),
                              rng.uniform(0, 50, n) * acc.sum_w)
    acc.vmin[:] = np.where(acc.sum_w > 0, rng.normal(20, 3, n), np.inf)
    acc.vmax[:] = np.where(acc.sum_w > 0, acc.vmin + 1, -np.inf)
    with np.errstate(invalid="ignore", divide="ignore"):
        has = acc.sum_w > 0
        mean0 = np.where(has, acc.sum_wv / np.where(has, acc.sum_w, 1), np.nan)
        var = np.where(has, acc.sum_wv2 / np.where(has, acc.sum_w, 1) - mean0 * mean0, np.nan)
    got = acc.result()
    assert (var < 0).any() and (~has).any()
    np.testing.assert_array_equal(got["mean"], mean0 + 25.0)
    np.testing.assert_array_equal(got["std"], np.sqrt(np.clip(var, 0, None)))
    np.testing.assert_array_equal(got["min"], np.where(has, acc.vmin, np.nan))
    np.testing.assert_array_equal(got["max"], np.where(has, acc.vmax, np.nan))
    np.testing.assert_array_equal(acc.mean(), mean0 + 25.0)


def test_pooled_accumulator_set_starts_empty():
    """A set built from a pool's used arrays starts from zero sums and +-inf extremes."""
    from uhi.buffers import ArrayPool
    from uhi.grid.zonal import accumulator_set

    pool = ArrayPool(10**8)
    first = accumulator_set(100, [0.0, 1.0, 2.0], moments=1, pool=pool)
    for arr in first.arrays():
        arr.fill(7.0)
    pool.give(*first.arrays())
    second = accumulator_set(100, [0.0, 1.0, 2.0], moments=1, pool=pool)
    assert any(a is b for a in second.arrays() for b in first.arrays())  # reused
    fresh = accumulator_set(100, [0.0, 1.0, 2.0], moments=1)
    for a, b in zip(second.arrays(), fresh.arrays(), strict=True):
        np.testing.assert_array_equal(a, b)

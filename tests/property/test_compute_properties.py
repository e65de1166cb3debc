"""Invariants of compute: zonal sums conserve the raster total, NDVI in [-1, 1], no fill passes."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from rasterio.transform import Affine

from uhi.config import MaskingConfig
from uhi.grid.zonal import build_coverage, zonal_stats
from uhi.raster.indices import REFLECTANCE_KEYS, compute_block

_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _tiling_quads(n_x: int, n_y: int, x0: float, y0: float, size: float, angle: float) -> np.ndarray:
    """A grid of rotated squares (like web-mercator cells seen in UTM) tiling a rotated rectangle."""
    c, s = np.cos(angle), np.sin(angle)
    quads = []
    for j in range(n_y):
        for i in range(n_x):
            corners = np.array([[i, j], [i + 1, j], [i + 1, j + 1], [i, j + 1]], dtype=float) * size
            rot = corners @ np.array([[c, s], [-s, c]])
            quads.append(rot + [x0, y0])
    return np.array(quads)


@_SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    angle=st.floats(-0.05, 0.05),
    size=st.floats(35.0, 120.0),
    origin=st.tuples(st.floats(0, 30), st.floats(0, 30)),
)
def test_zonal_sums_conserve_the_raster_total(seed, angle, size, origin):
    rng = np.random.default_rng(seed)
    rows, cols = 40, 50
    transform = Affine(30.0, 0.0, 0.0, 0.0, -30.0, rows * 30.0)
    raster = rng.normal(20, 5, (rows, cols))
    raster[rng.random((rows, cols)) < 0.2] = np.nan
    # cells generously overlapping the raster on every side: every pixel is covered exactly once
    # (the raster spans 1500 x 1200 m; a 0.05 rad rotation moves far corners by < 100 m)
    n = int(np.ceil(2200 / size)) + 8
    start = -4 * size - 200
    quads = _tiling_quads(n, n, start + origin[0], start + origin[1], size, angle)
    cov = build_coverage(quads, transform, (rows, cols))
    out = zonal_stats(cov, raster)
    np.testing.assert_allclose(cov.matrix.sum(axis=0).A1, 1.0, atol=1e-9)
    assert out["sum"].sum() == np_approx(np.nansum(raster))


def np_approx(x: float):
    import pytest

    return pytest.approx(x, rel=1e-9, abs=1e-9)


_dn = arrays(np.uint16, (6, 7), elements=st.integers(0, 65535))


@_SETTINGS
@given(red=_dn, nir=_dn, other=_dn, clip=st.booleans())
def test_ndvi_is_within_minus_one_and_one(red, nir, other, clip):
    dns = {k: other for k in REFLECTANCE_KEYS} | {"red": red, "nir08": nir}
    res = compute_block(dns, MaskingConfig(clip_reflectance=clip))
    for var in ("ndvi", "ndbi", "mndwi"):
        v = res.variables[var]
        assert not np.isinf(v).any()
        finite = v[~np.isnan(v)]
        assert ((finite >= -1.0) & (finite <= 1.0)).all()


@_SETTINGS
@given(
    lwir=arrays(np.uint16, (5, 8), elements=st.sampled_from([0, 0, 293, 40000, 44000, 65535])),
    sr=arrays(np.uint16, (5, 8), elements=st.sampled_from([0, 7000, 7273, 20000, 43636, 50000])),
    qa=arrays(np.uint16, (5, 8), elements=st.integers(0, 65535)),
    with_qa=st.booleans(),
)
def test_no_fill_value_passes_the_mask(lwir, sr, qa, with_qa):
    dns = {k: sr for k in REFLECTANCE_KEYS} | {"lwir11": lwir}
    if with_qa:
        dns["qa_pixel"] = qa
    res = compute_block(dns, MaskingConfig())
    lst = res.variables["lst_c"]
    assert np.isnan(lst[lwir == 0]).all()
    for var in ("ndvi", "ndbi", "mndwi", "albedo"):
        assert np.isnan(res.variables[var][sr == 0]).all()
    assert (res.valid[lwir == 0] == 0).all()
    if with_qa:
        fill = (qa & 1) == 1
        assert np.isnan(lst[fill]).all() and (res.valid[fill] == 0).all()
        rejected = (qa & 0b111111) != 0
        assert np.isnan(lst[rejected]).all()
    # the smallest non-fill DN here (293) is 150 K: an unmasked fill would read -124.15 C
    finite = lst[~np.isnan(lst)]
    assert (finite > -123.2).all()


@_SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    with_qa=st.booleans(),
    with_lst=st.booleans(),
    clip=st.booleans(),
    water_bit=st.booleans(),
    max_unc=st.sampled_from([None, 1.5]),
    min_cd=st.sampled_from([None, 0.5]),
    variant=st.sampled_from(["liang", "smith"]),
)
def test_fused_kernel_equals_the_numpy_reference(seed, with_qa, with_lst, clip, water_bit, max_unc, min_cd, variant):
    from uhi.raster.indices import compute_block_numpy

    rng = np.random.default_rng(seed)
    shape = (9, 11)
    dns = {k: rng.integers(0, 50000, shape, dtype=np.uint16) for k in REFLECTANCE_KEYS}
    for k in REFLECTANCE_KEYS:
        dns[k][rng.random(shape) < 0.1] = 0
    if with_lst:
        dns["lwir11"] = rng.integers(0, 60000, shape, dtype=np.uint16)
        dns["qa"] = rng.integers(-9999, 400, shape).astype(np.int16)
        dns["cdist"] = rng.integers(-9999, 400, shape).astype(np.int16)
    if with_qa:
        dns["qa_pixel"] = rng.integers(0, 65536, shape).astype(np.uint16)
    masking = MaskingConfig(
        clip_reflectance=clip, water_bit=water_bit, max_st_uncertainty_k=max_unc, min_cloud_distance_km=min_cd
    )
    fast = compute_block(dns, masking, albedo_variant=variant)
    ref = compute_block_numpy(dns, masking, albedo_variant=variant)
    for var, arr in ref.variables.items():
        np.testing.assert_array_equal(fast.variables[var], arr, err_msg=var)
    for name in ("valid", "water", "clear", "st_uncertainty_k"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(ref, name), err_msg=name)


def _write_scene(folder, dns: dict[str, np.ndarray], transform) -> dict:
    import rasterio

    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for key, arr in dns.items():
        paths[key] = folder / f"{key}.tif"
        with rasterio.open(
            paths[key], "w", driver="GTiff", height=arr.shape[0], width=arr.shape[1], count=1,
            dtype=arr.dtype, crs="EPSG:32630", transform=transform,
        ) as dst:
            dst.write(arr, 1)
    return paths


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), with_qa=st.booleans())
def test_water_pixels_never_change_a_land_mean(tmp_path_factory, seed, with_qa):
    """Rewriting every water pixel's LST and reflectance leaves every land variable of every
    cell unchanged, and moves the water LST (issue 12: water is its own class)."""
    import datetime as dt

    from uhi.raster.indices import SceneTask, process_scene
    from uhi.raster.scene import Scene

    rng = np.random.default_rng(seed)
    shape = (12, 14)
    transform = Affine(30.0, 0.0, 0.0, 0.0, -30.0, shape[0] * 30.0)
    water = rng.random(shape) < 0.4
    land_dn = {k: rng.integers(9000, 30000, shape).astype(np.uint16) for k in REFLECTANCE_KEYS}
    dns = dict(land_dn)
    if not with_qa:
        # water by MNDWI: green above SWIR1 there, below it on land
        dns["green"] = np.where(water, 20000, 9000).astype(np.uint16)
        dns["swir16"] = np.where(water, 8000, 20000).astype(np.uint16)
    else:
        dns["qa_pixel"] = np.where(water, 21952, 21824).astype(np.uint16)  # bit 7 or not
    dns["lwir11"] = rng.integers(42000, 46000, shape).astype(np.uint16)
    dns["qa"] = rng.integers(100, 600, shape).astype(np.int16)
    other = {k: v.copy() for k, v in dns.items()}
    other["lwir11"][water] = 48000  # a warm lake
    other["qa"][water] = 1500
    for k in ("blue", "red", "nir08", "swir22"):
        other[k][water] = 7000  # slightly negative reflectance over water
    quads = _tiling_quads(6, 5, -7.0, -9.0, 75.0, 0.02)
    cov = build_coverage(quads, transform, shape)
    root = tmp_path_factory.mktemp("water")
    results = []
    for name, bands in (("a", dns), ("b", other)):
        assets = _write_scene(root / name, bands, transform)
        scene = Scene("LC08_L2SP_204023_20200927_20201006_02_T1", dt.date(2020, 9, 27), "L2SP", assets, {})
        results.append(process_scene(SceneTask(scene, MaskingConfig(), coverage=cov)))
    a, b = results
    assert a.water.result()["weight"].sum() > 0
    for var, acc in a.accumulators.items():
        ra, rb = acc.result(), b.accumulators[var].result()
        for key in ra:  # mean and weight; std, min and max too for LST
            np.testing.assert_array_equal(ra[key], rb[key], err_msg=f"{var} {key}")
    np.testing.assert_array_equal(a.uncertainty.result()["mean"], b.uncertainty.result()["mean"])
    np.testing.assert_array_equal(a.water.result()["mean"], b.water.result()["mean"])
    wa, wb = a.water_lst.result()["mean"], b.water_lst.result()["mean"]
    seen = np.isfinite(wa)
    assert seen.any() and (wb[seen] > wa[seen]).all()

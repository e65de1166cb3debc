"""Masking, indices and LST on the real Landsat clips, against raw DN arithmetic and MTL factors."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import rasterio

from uhi.config import MaskingConfig
from uhi.errors import InputError
from uhi.landsat import BandScale
from uhi.raster.indices import (
    VALID_LAND,
    VALID_WATER,
    albedo,
    compute_block,
    normalized_difference,
)
from uhi.raster.scene import checked_scales

BANDS = {
    "blue": "SR_B2",
    "green": "SR_B3",
    "red": "SR_B4",
    "nir08": "SR_B5",
    "swir16": "SR_B6",
    "swir22": "SR_B7",
    "lwir11": "ST_B10",
    "qa_pixel": "QA_PIXEL",
    "qa": "ST_QA",
    "cdist": "ST_CDIST",
}


def read_clip(folder: Path) -> dict[str, np.ndarray]:
    out = {}
    for key, suffix in BANDS.items():
        hits = sorted(folder.glob(f"*_{suffix}.TIF"))
        if hits:
            with rasterio.open(hits[0]) as src:
                out[key] = src.read(1)
    return out


def mtl_factors(folder: Path) -> dict[str, float]:
    """MULT/ADD factors of the Level-2 groups, parsed here independently of uhi.landsat."""
    text = next(folder.glob("*_MTL.txt")).read_text()
    sr = text.split("GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS")[1].split("END_GROUP")[0]
    st = text.split("GROUP = LEVEL2_SURFACE_TEMPERATURE_PARAMETERS")[1].split("END_GROUP")[0]

    def grab(block: str, name: str) -> float:
        return float(re.search(rf"{name}\s*=\s*([-0-9.eE+]+)", block).group(1))

    return {
        "sr_mult_4": grab(sr, "REFLECTANCE_MULT_BAND_4"),
        "sr_add_4": grab(sr, "REFLECTANCE_ADD_BAND_4"),
        "sr_mult_5": grab(sr, "REFLECTANCE_MULT_BAND_5"),
        "sr_add_5": grab(sr, "REFLECTANCE_ADD_BAND_5"),
        "st_mult": grab(st, "TEMPERATURE_MULT_BAND_ST_B10"),
        "st_add": grab(st, "TEMPERATURE_ADD_BAND_ST_B10"),
    }


@pytest.fixture(scope="module")
def liverpool(data_dir: Path) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    folder = data_dir / "landsat" / "liverpool-LC08-20200927"
    return read_clip(folder), mtl_factors(folder)


def test_liverpool_lst_equals_raw_dn_arithmetic(liverpool):
    dns, f = liverpool
    res = compute_block(dns, MaskingConfig())
    dn = dns["lwir11"].astype(np.float64)
    expected = dn * f["st_mult"] + f["st_add"] - 273.15
    expected[dns["lwir11"] == 0] = np.nan
    got = res.variables["lst_c"]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, atol=1e-4)  # float32 output: ~1e-6 relative
    assert np.nanmean(got) == pytest.approx(np.nanmean(expected), abs=1e-5)
    assert np.nanmin(got) == pytest.approx(np.nanmin(expected), abs=1e-4)
    assert np.nanmax(got) == pytest.approx(np.nanmax(expected), abs=1e-4)


def test_liverpool_ndvi_equals_raw_dn_arithmetic(liverpool):
    dns, f = liverpool
    res = compute_block(dns, MaskingConfig(clip_reflectance=False))
    red = dns["red"].astype(np.float64) * f["sr_mult_4"] + f["sr_add_4"]
    nir = dns["nir08"].astype(np.float64) * f["sr_mult_5"] + f["sr_add_5"]
    ok = (dns["red"] != 0) & (dns["nir08"] != 0) & (red >= 0) & (red <= 1) & (nir >= 0) & (nir <= 1)
    # with clip_reflectance=False, out-of-range reflectance is masked; NDVI needs B4 and B5 only
    expected = np.where(ok, (nir - red) / (nir + red), np.nan)
    got = res.variables["ndvi"]
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    np.testing.assert_allclose(got, expected, atol=2e-5)
    assert np.nanmean(got) == pytest.approx(np.nanmean(expected), abs=1e-6)
    # a DN-based NDVI would be wrong: the -0.2 offset matters
    dn_ndvi = (dns["nir08"].astype(float) - dns["red"]) / (dns["nir08"].astype(float) + dns["red"])
    assert abs(np.nanmean(dn_ndvi[ok]) - np.nanmean(expected)) > 0.05


def test_liverpool_without_qa_masks_fill_only_and_flags_water_by_mndwi(liverpool):
    dns, _ = liverpool
    assert "qa_pixel" not in dns
    res = compute_block(dns, MaskingConfig())
    assert not np.isnan(res.variables["lst_c"]).any()  # the clip has no fill
    # ~75 % of the clip is Liverpool Bay and the Mersey (PROVENANCE.md)
    assert 0.6 < res.water.mean() < 0.9
    assert set(np.unique(res.valid)) <= {VALID_LAND, VALID_WATER}


def test_momotombo_fill_is_nan_and_lava_kept(data_dir):
    dns = read_clip(data_dir / "landsat" / "momotombo-LC08-20151205")
    res = compute_block(dns, MaskingConfig())
    lst = res.variables["lst_c"]
    fill = dns["lwir11"] == 0
    assert fill.sum() == 48
    assert np.isnan(lst[fill]).all()
    assert not np.isnan(lst[~fill]).any()
    assert np.nanmin(lst) > -60  # no -124.15 C from an unmasked fill
    hottest = np.unravel_index(np.argmax(dns["lwir11"]), lst.shape)
    assert dns["lwir11"][hottest] == 65376
    assert lst[hottest] == pytest.approx(65376 * 0.00341802 + 149.0 - 273.15, abs=1e-3)


def test_cloudy100_has_no_clear_pixel(data_dir):
    dns = read_clip(data_dir / "landsat" / "fullbands-LC08-017036-cloudy100")
    res = compute_block(dns, MaskingConfig())
    assert res.clear.sum() == 0
    assert np.isnan(res.variables["lst_c"]).all()
    assert (res.valid == 0).all()


def test_cloudy81_reject_bits_and_thresholds(data_dir):
    dns = read_clip(data_dir / "landsat" / "fullbands-LC08-008059-cloudy81")
    qa = dns["qa_pixel"].astype(np.int64)
    res = compute_block(dns, MaskingConfig())
    expected_clear = ((qa & 0b111111) == 0) & (dns["lwir11"] != 0)
    np.testing.assert_array_equal(res.clear, expected_clear)
    assert 0 < expected_clear.mean() < 0.3
    # water (bit 7) pixels are kept but flagged
    np.testing.assert_array_equal(res.water, expected_clear & ((qa >> 7) & 1 == 1))
    # ST_QA uncertainty limit: DN * 0.01 K
    strict = compute_block(dns, MaskingConfig(max_st_uncertainty_k=2.0))
    unc_ok = (dns["qa"] != -9999) & (dns["qa"] * 0.01 <= 2.0)
    np.testing.assert_array_equal(strict.clear, expected_clear & unc_ok)
    assert strict.clear.sum() < res.clear.sum()
    far = compute_block(dns, MaskingConfig(min_cloud_distance_km=1.0))
    cd_ok = (dns["cdist"] != -9999) & (dns["cdist"] * 0.01 >= 1.0)
    np.testing.assert_array_equal(far.clear, expected_clear & cd_ok)
    # dropping snow from the reject bits can only keep more pixels
    lax = compute_block(dns, MaskingConfig(reject_bits=(0, 1, 2, 3, 4)))
    assert lax.clear.sum() >= res.clear.sum()


def test_manaus_has_no_thermal_indices_still_computed(data_dir):
    dns = read_clip(data_dir / "landsat" / "manaus-LC09-20230723")
    assert "lwir11" not in dns
    res = compute_block(dns, MaskingConfig())
    assert np.isnan(res.variables["lst_c"]).all()
    assert res.clear.mean() > 0.9
    ndvi = res.variables["ndvi"]
    assert np.nanmax(ndvi) > 0.5  # the rain forest is there


def test_normalized_difference_guards_zero_denominator():
    a = np.array([0.0, 0.2, 0.5, np.nan], dtype=np.float32)
    b = np.array([0.0, 0.1, 0.5, 0.1], dtype=np.float32)
    out = normalized_difference(a, b)
    assert np.isnan(out[0]) and np.isnan(out[3])
    assert out[1] == pytest.approx(1 / 3)
    assert out[2] == 0.0
    assert not np.isinf(out).any()


def test_albedo_liang_and_smith():
    rho = {k: np.array([0.1, 0.3], dtype=np.float32) for k in ("blue", "red", "nir08", "swir16", "swir22")}
    liang = albedo(rho, "liang")
    expected = (0.356 + 0.130 + 0.373 + 0.085 + 0.072) * np.array([0.1, 0.3]) - 0.0018
    np.testing.assert_allclose(liang, expected, rtol=1e-6)
    np.testing.assert_allclose(albedo(rho, "smith"), expected / 1.016, rtol=1e-6)
    with pytest.raises(ValueError):
        albedo(rho, "bogus")


def test_scales_from_metadata_agree_with_constants(data_dir):
    from uhi.landsat import read_mtl_file

    mtl = read_mtl_file(next((data_dir / "landsat" / "liverpool-LC08-20200927").glob("*_MTL.txt")))
    scales = checked_scales({}, "x", mtl=mtl)
    assert scales["lwir11"] == BandScale(0.00341802, 149.0, 0)
    assert scales["red"].scale == pytest.approx(2.75e-5)
    item_scales = {"uhi:scales": {"red": [2.75e-05, -0.2, 0], "lwir11": [0.00341802, 149.0, 0]}}
    assert checked_scales(item_scales, "x")["red"] == BandScale(2.75e-05, -0.2, 0)
    raster_bands = {"assets": {"lwir11": {"raster:bands": [{"scale": 0.00341802, "offset": 149.0, "nodata": 0}]}}}
    assert checked_scales(raster_bands, "x")["lwir11"].offset == 149.0


def test_scales_that_disagree_are_rejected():
    bad = {"assets": {"red": {"raster:bands": [{"scale": 0.0001, "offset": 0.0}]}}}
    with pytest.raises(InputError, match="asset red has scale 0.0001"):
        checked_scales(bad, "LC08_X")


def test_item_scales_are_used(liverpool):
    dns, _ = liverpool
    # a documented-equal scale given through metadata gives the same LST as the constants
    same = compute_block(dns, MaskingConfig(), scales={"lwir11": BandScale(0.00341802, 149.0, 0)})
    ref = compute_block(dns, MaskingConfig())
    np.testing.assert_array_equal(same.variables["lst_c"], ref.variables["lst_c"])

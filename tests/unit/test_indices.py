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
    compute_block_numpy,
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


# ---------------------------------------------------------------------------------------------
# one hand-computed pixel: pins every index's band order and every constant (issue 12, 10b)

# DNs chosen so that rho = DN x 0.0000275 - 0.2 (LSDS-1619) is a short decimal
PIXEL_DN = {"blue": 9000, "green": 10000, "red": 8000, "nir08": 20000, "swir16": 16000, "swir22": 12000}
PIXEL_RHO = {"blue": 0.0475, "green": 0.075, "red": 0.02, "nir08": 0.35, "swir16": 0.24, "swir22": 0.13}
QA_CLEAR_LAND = 21824  # a real clear land QA_PIXEL value (bits 6, 8, 10, 12, 14)
QA_CLEAR_WATER = 21952  # the same with bit 7 (water)


def _pixel(**extra: int) -> dict[str, np.ndarray]:
    dns = {k: np.array([[v]], dtype=np.uint16) for k, v in PIXEL_DN.items()}
    for key, value in extra.items():
        dtype = np.int16 if key in ("qa", "cdist") else np.uint16
        dns[key] = np.array([[value]], dtype=dtype)
    return dns


@pytest.mark.parametrize("block", [compute_block, compute_block_numpy], ids=["fused", "numpy"])
def test_hand_computed_pixel_pins_band_order_and_constants(block):
    for key, dn in PIXEL_DN.items():
        assert dn * 0.0000275 - 0.2 == pytest.approx(PIXEL_RHO[key], abs=1e-12)
    res = block(_pixel(lwir11=44000, qa_pixel=QA_CLEAR_LAND, qa=250), MaskingConfig())
    v = {k: float(a[0, 0]) for k, a in res.variables.items()}
    # NDVI (B5 - B4) / (B5 + B4) = (0.35 - 0.02) / 0.37; swapped bands give -0.8919
    assert v["ndvi"] == pytest.approx(0.33 / 0.37, rel=1e-6)
    # NDBI (B6 - B5) / (B6 + B5) = (0.24 - 0.35) / 0.59
    assert v["ndbi"] == pytest.approx(-0.11 / 0.59, rel=1e-6)
    # MNDWI (B3 - B6) / (B3 + B6) = (0.075 - 0.24) / 0.315
    assert v["mndwi"] == pytest.approx(-0.165 / 0.315, rel=1e-6)
    # Liang 2001: 0.356 B2 + 0.130 B4 + 0.373 B5 + 0.085 B6 + 0.072 B7 - 0.0018
    #   = 0.016910 + 0.002600 + 0.130550 + 0.020400 + 0.009360 - 0.0018 = 0.178020
    assert v["albedo"] == pytest.approx(0.17802, rel=1e-6)
    # LST: 44000 x 0.00341802 + 149.0 - 273.15 = 26.24288 C
    assert v["lst_c"] == pytest.approx(26.24288, abs=2e-5)
    # ST_QA 250 x 0.01 = 2.5 K
    assert float(res.st_uncertainty_k[0, 0]) == pytest.approx(2.5, rel=1e-7)
    assert res.valid[0, 0] == VALID_LAND and not res.water[0, 0]
    smith = block(_pixel(lwir11=44000, qa_pixel=QA_CLEAR_LAND), MaskingConfig(), albedo_variant="smith")
    assert float(smith.variables["albedo"][0, 0]) == pytest.approx(0.17802 / 1.016, rel=1e-6)


# what each single QA_PIXEL bit does under the default masking (reject bits 0-5, LSDS-1619
# Table 6-3): written out, so dropping any bit from the mask fails here (issue 12, 10c)
QA_BIT_OUTCOME = {
    0: "masked",  # fill
    1: "masked",  # dilated cloud
    2: "masked",  # cirrus
    3: "masked",  # cloud
    4: "masked",  # cloud shadow
    5: "masked",  # snow
    6: "land",  # clear
    7: "water",  # water
    8: "land", 9: "land", 10: "land", 11: "land", 12: "land", 13: "land", 14: "land", 15: "land",
}


@pytest.mark.parametrize("block", [compute_block, compute_block_numpy], ids=["fused", "numpy"])
@pytest.mark.parametrize("bit", sorted(QA_BIT_OUTCOME))
def test_each_qa_bit_alone(block, bit):
    res = block(_pixel(lwir11=44000, qa_pixel=1 << bit), MaskingConfig())
    outcome = QA_BIT_OUTCOME[bit]
    expected_valid = {"masked": 0, "land": VALID_LAND, "water": VALID_WATER}[outcome]
    assert res.valid[0, 0] == expected_valid
    assert bool(res.clear[0, 0]) == (outcome != "masked")
    assert bool(res.water[0, 0]) == (outcome == "water")
    for var, arr in res.variables.items():
        assert np.isnan(arr[0, 0]) == (outcome == "masked"), var


@pytest.mark.parametrize("block", [compute_block, compute_block_numpy], ids=["fused", "numpy"])
def test_st_thresholds_keep_a_pixel_exactly_at_the_limit(block):
    # ST_QA DN 200 = 2.00 K: float32 reads 2.0000000298 and used to reject it against 2.0 K;
    # 29 x 0.01 is 0.29000000000000004 in float64, so float64 alone is not enough either
    for dn, limit_k, kept in ((200, 2.0, True), (201, 2.0, False), (29, 0.29, True), (30, 0.29, False)):
        res = block(_pixel(lwir11=44000, qa=dn), MaskingConfig(max_st_uncertainty_k=limit_k))
        assert bool(res.clear[0, 0]) == kept, (dn, limit_k)
    # ST_CDIST DN 100 = 1.00 km; 7 x 0.01 km against 0.07 km
    for dn, limit_km, kept in ((100, 1.0, True), (99, 1.0, False), (7, 0.07, True), (6, 0.07, False)):
        res = block(_pixel(lwir11=44000, cdist=dn), MaskingConfig(min_cloud_distance_km=limit_km))
        assert bool(res.clear[0, 0]) == kept, (dn, limit_km)
    for key, masking in (("qa", MaskingConfig(max_st_uncertainty_k=2.0)), ("cdist", MaskingConfig(min_cloud_distance_km=0.0))):
        res = block(_pixel(lwir11=44000, **{key: -9999}), masking)
        assert not res.clear[0, 0], key  # fill never passes a threshold


def test_dn_bound_snaps_decimal_thresholds():
    from uhi.landsat import CDIST_SCALE, ST_QA_SCALE, dn_bound

    assert dn_bound(2.0, ST_QA_SCALE, upper=True) == 200
    assert dn_bound(0.29, ST_QA_SCALE, upper=True) == 29
    assert dn_bound(2.005, ST_QA_SCALE, upper=True) == 200
    assert dn_bound(0.07, CDIST_SCALE, upper=False) == 7
    assert dn_bound(0.065, CDIST_SCALE, upper=False) == 7


@pytest.mark.parametrize("block", [compute_block, compute_block_numpy], ids=["fused", "numpy"])
def test_water_test_reads_unclipped_reflectance_and_land_is_masked_not_clipped(block):
    # a dark water pixel without QA: NIR and SWIR below 0 after atmospheric correction
    # (DN 7000 -> -0.0075, DN 7100 -> -0.00475, DN 7500 -> 0.00625)
    water = _pixel(lwir11=44000) | {
        k: np.array([[dn]], dtype=np.uint16)
        for k, dn in {"green": 7500, "nir08": 7000, "swir16": 7100, "swir22": 7000}.items()
    }
    res = block(water, MaskingConfig())
    assert res.valid[0, 0] == VALID_WATER and res.water[0, 0]
    # nothing made up: with NIR clipped to 0 NDVI would be -1 and NDBI +1
    for var in ("ndvi", "ndbi", "mndwi", "albedo"):
        assert np.isnan(res.variables[var][0, 0]), var
    assert np.isfinite(res.variables["lst_c"][0, 0])
    # both green and SWIR below 0 (green the less dark): still water, though the ratio
    # (-0.002 + 0.00475) / (-0.002 - 0.00475) is negative (DN 7200 -> -0.002)
    darker = water | {"green": np.array([[7200]], dtype=np.uint16)}
    assert block(darker, MaskingConfig()).water[0, 0]
    # green below 0, SWIR above: land, though that ratio is positive (DN 7300 -> +0.00075)
    odd = water | {"green": np.array([[7200]], dtype=np.uint16), "swir16": np.array([[7300]], dtype=np.uint16)}
    assert block(odd, MaskingConfig()).valid[0, 0] == VALID_LAND
    # a land pixel with one band out of range: that band's indices masked, the others kept
    land = _pixel(lwir11=44000) | {"swir22": np.array([[7000]], dtype=np.uint16)}
    res = block(land, MaskingConfig())
    assert res.valid[0, 0] == VALID_LAND
    assert np.isnan(res.variables["albedo"][0, 0])
    assert res.variables["ndvi"][0, 0] == pytest.approx(0.33 / 0.37, rel=1e-6)
    # clip_reflectance: true keeps the old clipping (documented, not the default)
    clipped = block(land, MaskingConfig(clip_reflectance=True))
    assert np.isfinite(clipped.variables["albedo"][0, 0])


def test_qa_bit6_clear_is_exactly_no_cloud_and_no_dilated_cloud_on_real_qa(data_dir):
    """The claim in uhi.landsat and docs/science.md, checked on the real QA_PIXEL bands."""
    seen_shadow_clear = seen_cirrus_clear = 0
    checked = 0
    for folder in ("fullbands-LC08-008059-cloudy81", "fullbands-LC08-017036-cloudy100"):
        qa = read_clip(data_dir / "landsat" / folder)["qa_pixel"].astype(np.int64)
        bit = {b: ((qa >> b) & 1) == 1 for b in range(8)}
        data = ~bit[0]
        np.testing.assert_array_equal(bit[6][data], (~bit[1] & ~bit[3])[data])
        assert not (bit[6] & bit[0]).any()  # fill is never "clear"
        seen_shadow_clear += int((bit[6] & bit[4]).sum())
        seen_cirrus_clear += int((bit[6] & bit[2]).sum())
        checked += int(data.sum())
    assert checked > 300_000
    # bit 6 excludes neither cloud shadow nor cirrus: uhi must reject bits 4 and 2 itself
    assert seen_shadow_clear > 1000 and seen_cirrus_clear > 0

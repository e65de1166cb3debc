"""Per-pixel masking, scaled reflectance, NDVI/NDBI/MNDWI/albedo and LST for one block of a scene."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numba
import numpy as np

from uhi.config import MaskingConfig
from uhi.landsat import (
    CDIST_SCALE,
    SR_SCALE,
    ST_QA_SCALE,
    ST_SCALE,
    BandScale,
    apply_valid_range,
    dn_bound,
    lst_celsius,
    qa_bit_set,
    qa_reject_mask,
    reflectance,
)

__all__ = [
    "VARIABLES",
    "REFLECTANCE_KEYS",
    "VALID_LAND",
    "VALID_WATER",
    "BlockResult",
    "normalized_difference",
    "albedo",
    "compute_block",
    "compute_block_numpy",
    "COG_VARIABLES",
    "SceneTask",
    "SceneStats",
    "scene_grid",
    "process_scene",
    "write_scene_cogs",
    "write_composite",
]

VARIABLES = ("lst_c", "ndvi", "ndbi", "mndwi", "albedo")
REFLECTANCE_KEYS = ("blue", "green", "red", "nir08", "swir16", "swir22")

# codes of the per-scene `valid` raster
VALID_LAND = 1
VALID_WATER = 2

# Liang (2001, Remote Sensing of Environment 76:213-238) broadband shortwave albedo, derived for
# Landsat TM bands 1, 3, 4, 5, 7: on TM/ETM+ scenes the canonical keys below ARE those bands
# (uhi.landsat.SENSORS); on Landsat 8/9, OLI B2, B4, B5, B6, B7 stand in for them
# (docs/science.md). Smith (2010) rescales the same combination by 1/1.016.
_LIANG = {"blue": 0.356, "red": 0.130, "nir08": 0.373, "swir16": 0.085, "swir22": 0.072}
_LIANG_INTERCEPT = -0.0018
_SMITH_DIVISOR = 1.016
# |a + b| below this makes a normalised difference meaningless (reflectance units)
_DENOMINATOR_EPS = 1e-6


def normalized_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a - b) / (a + b) as float32; NaN where an input is NaN or the denominator is ~0.

    Parameters
    ----------
    a, b
        Scaled reflectance arrays of the same shape (never DNs: the -0.2 offset changes ratios).
    """
    a = np.asarray(a, dtype=np.float32)
    b = np.asarray(b, dtype=np.float32)
    den = a + b
    ok = np.abs(den) > _DENOMINATOR_EPS
    out = np.full(den.shape, np.nan, dtype=np.float32)
    np.divide(a - b, den, out=out, where=ok)
    return out


def albedo(
    rho: Mapping[str, np.ndarray], variant: str = "liang"
) -> np.ndarray:
    """Broadband shortwave albedo (float32) from scaled reflectance.

    Parameters
    ----------
    rho
        Reflectance per canonical key; needs ``blue red nir08 swir16 swir22``.
    variant
        ``"liang"`` (Liang 2001) or ``"smith"`` (Smith 2010: Liang divided by 1.016).
    """
    if variant not in ("liang", "smith"):
        raise ValueError(f"unknown albedo variant {variant!r}; use 'liang' or 'smith'")
    out = np.full(np.shape(rho["red"]), _LIANG_INTERCEPT, dtype=np.float32)
    for key, coef in _LIANG.items():
        out += np.float32(coef) * np.asarray(rho[key], dtype=np.float32)
    if variant == "smith":
        out /= np.float32(_SMITH_DIVISOR)
    return out


@dataclass
class BlockResult:
    """Physical variables of one block of pixels (float32, NaN where masked)."""

    variables: dict[str, np.ndarray]
    valid: np.ndarray  # uint8: 0 masked, VALID_LAND, VALID_WATER
    water: np.ndarray  # bool: clear water pixel (QA bit 7, else MNDWI > 0 on unclipped reflectance)
    clear: np.ndarray  # bool: passed the cloud/fill mask (LST usable; reflectance without thermal)
    st_uncertainty_k: np.ndarray  # float32 ST_QA x 0.01 K of clear pixels, NaN without ST_QA / fill

    @property
    def land(self) -> np.ndarray:
        """Clear pixels that are not water: the only pixels the cell means are taken over."""
        return self.valid == VALID_LAND


def _scale(scales: Mapping[str, BandScale], key: str, default: BandScale) -> BandScale:
    return scales.get(key, default)


def compute_block(
    dns: Mapping[str, np.ndarray],
    masking: MaskingConfig,
    *,
    scales: Mapping[str, BandScale] | None = None,
    albedo_variant: str = "liang",
) -> BlockResult:
    """Mask and convert one block of raw DNs into LST, NDVI, NDBI, MNDWI and albedo.

    One fused pass per pixel (numba): the arithmetic runs near memory bandwidth, where the
    step-by-step numpy version (:func:`compute_block_numpy`, identical results) makes ~25 passes.

    Parameters
    ----------
    dns
        Raw DN arrays of one block, keyed by canonical asset key. Reflectance keys are
        required; ``lwir11`` (LST), ``qa_pixel``, ``qa`` (ST_QA) and ``cdist`` are optional.
    masking
        Reject bits and thresholds. Without ``qa_pixel`` only fill values are masked.
    scales
        Scale/offset/fill per key (from the item or MTL); documented constants otherwise.
    albedo_variant
        ``"liang"`` or ``"smith"``.

    Returns
    -------
    BlockResult
        Variables with NaN wherever a pixel is fill, rejected by QA, out of the configured
        ST_QA / ST_CDIST limits, or (indices and albedo) uses a reflectance outside the valid
        range [0, 1] (clipped into it instead with ``masking.clip_reflectance``). Water is
        flagged by QA_PIXEL bit 7, else by MNDWI > 0 on the unclipped reflectance (green >
        SWIR1, the sign of MNDWI's numerator).
    """
    if albedo_variant not in ("liang", "smith"):
        raise ValueError(f"unknown albedo variant {albedo_variant!r}; use 'liang' or 'smith'")
    scales = scales or {}
    missing = [k for k in REFLECTANCE_KEYS if k not in dns]
    if missing:
        raise ValueError(f"missing reflectance bands {missing}")
    shape = np.shape(dns["red"])
    flat = int(np.prod(shape))
    out = {v: np.empty(flat, dtype=np.float32) for v in VARIABLES}
    valid = np.empty(flat, dtype=np.uint8)
    water = np.empty(flat, dtype=np.bool_)
    clear = np.empty(flat, dtype=np.bool_)
    unc = np.empty(flat, dtype=np.float32)
    _run_kernel(
        dns, _kernel_constants(scales, masking, albedo_variant), [out[v] for v in VARIABLES],
        valid, water, clear, unc, _NO_ZONAL,
    )
    return BlockResult(
        variables={k: v.reshape(shape) for k, v in out.items()},
        valid=valid.reshape(shape),
        water=water.reshape(shape),
        clear=clear.reshape(shape),
        st_uncertainty_k=unc.reshape(shape),
    )


# the kernel's per-pixel zonal values (block pixels x ZONAL_COLUMNS) are not wanted
ZONAL_COLUMNS = 8
_NO_ZONAL = np.empty((0, ZONAL_COLUMNS), dtype=np.float32)


def _kernel_constants(scales: Mapping[str, BandScale], masking: MaskingConfig, albedo_variant: str) -> tuple[Any, ...]:
    """The kernel's scalar and per-band arguments between the DNs and the outputs (once a scene)."""
    if albedo_variant not in ("liang", "smith"):
        raise ValueError(f"unknown albedo variant {albedo_variant!r}; use 'liang' or 'smith'")
    sr = [_scale(scales, k, SR_SCALE) for k in REFLECTANCE_KEYS]
    sr_scale = np.array([s.scale for s in sr], dtype=np.float32)
    sr_offset = np.array([s.offset for s in sr], dtype=np.float32)
    sr_fill = np.array([-1 if s.fill is None else int(s.fill) for s in sr], dtype=np.int64)
    st = _scale(scales, "lwir11", ST_SCALE)
    reject = np.uint16(sum(1 << b for b in masking.reject_bits) | 1)  # fill bit always
    max_unc_dn, min_cd_dn = _threshold_dns(masking)
    return (
        sr_scale, sr_offset, sr_fill,
        float(st.scale), float(st.offset), -1 if st.fill is None else int(st.fill),
        reject, bool(masking.water_bit), bool(masking.clip_reflectance),
        max_unc_dn, min_cd_dn,
        albedo_variant == "smith",
    )


def _flat_band(dns: Mapping[str, np.ndarray], key: str, dtype: Any) -> np.ndarray:
    if key not in dns:
        return np.zeros(0, dtype=dtype)
    return np.ascontiguousarray(np.asarray(dns[key]).reshape(-1)).astype(dtype, copy=False)


def _run_kernel(
    dns: Mapping[str, np.ndarray],
    constants: tuple[Any, ...],
    variables: list[np.ndarray],
    valid: np.ndarray,
    water: np.ndarray,
    clear: np.ndarray,
    unc: np.ndarray,
    zonal: np.ndarray,
) -> None:
    """One block through :func:`_indices_kernel` into the given flat outputs (``VARIABLES`` order)."""
    _indices_kernel(  # type: ignore[call-arg]
        *(_flat_band(dns, k, np.uint16) for k in REFLECTANCE_KEYS),
        _flat_band(dns, "lwir11", np.uint16),
        _flat_band(dns, "qa_pixel", np.uint16),
        _flat_band(dns, "qa", np.int16),
        _flat_band(dns, "cdist", np.int16),
        *constants,
        *variables, valid, water, clear, unc, zonal,
    )


# no ST_QA / ST_CDIST limit: DN bounds no int16 reaches
_NO_MAX_DN = np.iinfo(np.int64).max
_NO_MIN_DN = np.iinfo(np.int64).min


def _threshold_dns(masking: MaskingConfig) -> tuple[int, int]:
    """The ST_QA and ST_CDIST thresholds as integer DN bounds (inclusive).

    Comparing DNs keeps a pixel exactly at the threshold: in float32, 200 x 0.01 K reads
    2.0000000298 K and a 2.0 K limit rejected it (issue 12).
    """
    max_unc = _NO_MAX_DN
    if masking.max_st_uncertainty_k is not None:
        max_unc = dn_bound(masking.max_st_uncertainty_k, ST_QA_SCALE, upper=True)
    min_cd = _NO_MIN_DN
    if masking.min_cloud_distance_km is not None:
        min_cd = dn_bound(masking.min_cloud_distance_km, CDIST_SCALE, upper=False)
    return max_unc, min_cd


_EPS32 = np.float32(_DENOMINATOR_EPS)


@numba.njit(cache=True, inline="always", error_model="numpy")
def _nd(a: np.float32, b: np.float32) -> np.float32:
    den = a + b
    if abs(den) > _EPS32:  # False for NaN too; float32 like numpy's comparison
        return (a - b) / den
    return np.float32(np.nan)


@numba.njit(cache=True, inline="always")
def _raw_refl(dn: np.uint16, scale: np.float32, offset: np.float32, fill: np.int64, rejected: bool) -> np.float32:
    """Unclipped reflectance (NaN for fill or a rejected pixel): what the water test reads."""
    if rejected or np.int64(dn) == fill:
        return np.float32(np.nan)
    return np.float32(dn) * scale + offset


@numba.njit(cache=True, inline="always")
def _in_range(r: np.float32, clip: bool) -> np.float32:
    """Reflectance inside [0, 1] (LSDS-1619 valid range), clipped into it or NaN outside it."""
    if clip:
        if r < np.float32(0.0):
            return np.float32(0.0)
        if r > np.float32(1.0):
            return np.float32(1.0)
    elif r < np.float32(0.0) or r > np.float32(1.0):
        return np.float32(np.nan)
    return r


# serial on purpose: scenes already run in parallel (one task per scene, threads or Dask);
# nested kernel threads oversubscribe the cores, and numba's workqueue layer aborts when two
# threads enter a parallel kernel at once. error_model="numpy": a zero denominator is already
# guarded, and Python's per-division check costs 2x here.
@numba.njit(cache=True, nogil=True, error_model="numpy")
def _indices_kernel(
    blue, green, red, nir, swir1, swir2, lwir, qa_pixel, st_qa, cdist,
    sr_scale, sr_offset, sr_fill, st_scale, st_offset, st_fill,
    reject, water_bit, clip, max_unc_dn, min_cd_dn, smith,
    lst_out, ndvi_out, ndbi_out, mndwi_out, albedo_out, valid_out, water_out, clear_out, unc_out,
    zonal_out,
):  # pragma: no cover - compiled
    n = red.shape[0]
    # the zonal values of the pixel (uhi.grid.zonal.add_block's layout, see _process_scene):
    # the five variables, the water indicator, water LST, the ST_QA uncertainty; NaN = not counted
    has_zonal = zonal_out.shape[0] == n
    has_qa = qa_pixel.shape[0] == n
    has_lst = lwir.shape[0] == n
    has_unc = st_qa.shape[0] == n
    has_cd = cdist.shape[0] == n
    use_unc = has_unc and max_unc_dn != _NO_MAX_DN
    use_cd = has_cd and min_cd_dn != _NO_MIN_DN
    nan32 = np.float32(np.nan)
    c_blue = np.float32(0.356)
    c_red = np.float32(0.130)
    c_nir = np.float32(0.373)
    c_sw1 = np.float32(0.085)
    c_sw2 = np.float32(0.072)
    a0 = np.float32(-0.0018)
    smith_div = np.float32(1.016)
    for i in range(np.uint64(n)):  # unsigned: no negative-index wraparound test per access
        rejected = False
        water = False
        if has_qa:
            q = qa_pixel[i]
            rejected = (q & reject) != 0
            water = water_bit and ((q >> 7) & 1) == 1
        b_ = _raw_refl(blue[i], sr_scale[0], sr_offset[0], sr_fill[0], rejected)
        g_ = _raw_refl(green[i], sr_scale[1], sr_offset[1], sr_fill[1], rejected)
        rd = _raw_refl(red[i], sr_scale[2], sr_offset[2], sr_fill[2], rejected)
        nr = _raw_refl(nir[i], sr_scale[3], sr_offset[3], sr_fill[3], rejected)
        s1 = _raw_refl(swir1[i], sr_scale[4], sr_offset[4], sr_fill[4], rejected)
        s2 = _raw_refl(swir2[i], sr_scale[5], sr_offset[5], sr_fill[5], rejected)
        no_fill = b_ == b_ and g_ == g_ and rd == rd and nr == nr and s1 == s1 and s2 == s2
        if not has_qa:
            # MNDWI > 0 (Xu 2006) on the unclipped values, as its numerator's sign: green >
            # SWIR1. The ratio's sign flips when both are slightly negative (dark water after
            # atmospheric correction); clipping them to 0 would decide on made-up numbers.
            water = water_bit and g_ > s1
        b_ = _in_range(b_, clip)
        g_ = _in_range(g_, clip)
        rd = _in_range(rd, clip)
        nr = _in_range(nr, clip)
        s1 = _in_range(s1, clip)
        s2 = _in_range(s2, clip)
        ok_all = b_ == b_ and g_ == g_ and rd == rd and nr == nr and s1 == s1 and s2 == s2
        ndvi_out[i] = _nd(nr, rd)
        ndbi_out[i] = _nd(s1, nr)
        mndwi_out[i] = _nd(g_, s1)
        if ok_all:
            al = a0
            al += c_blue * b_
            al += c_red * rd
            al += c_nir * nr
            al += c_sw1 * s1
            al += c_sw2 * s2
            if smith:
                al /= smith_div
            albedo_out[i] = al
        else:
            albedo_out[i] = nan32
        u_k = nan32
        if has_unc:
            u = st_qa[i]
            if u != -9999:
                u_k = np.float32(np.float64(u) * 0.01)  # ST_QA scale, LSDS-1619 (ST_QA_SCALE)
        if has_lst:
            dn_t = lwir[i]
            if rejected or np.int64(dn_t) == st_fill:
                t = nan32
            else:
                t = np.float32(np.float64(dn_t) * st_scale + st_offset - 273.15)
            if use_unc:
                u = st_qa[i]
                # integer DNs: a pixel exactly at the limit is kept
                if u == -9999 or np.int64(u) > max_unc_dn:
                    t = nan32
            if use_cd:
                c = cdist[i]
                if c == -9999 or np.int64(c) < min_cd_dn:
                    t = nan32
            lst_out[i] = t
            is_clear = t == t
        else:
            lst_out[i] = nan32
            is_clear = no_fill
        clear_out[i] = is_clear
        water_out[i] = water and is_clear
        valid_out[i] = (VALID_WATER if water else VALID_LAND) if is_clear else 0
        unc_out[i] = u_k if is_clear else nan32
        if has_zonal:
            # cell means over clear land pixels only: water is its own class (issue 12)
            land = is_clear and not water
            zonal_out[i, 0] = lst_out[i] if land else nan32
            zonal_out[i, 1] = ndvi_out[i] if land else nan32
            zonal_out[i, 2] = ndbi_out[i] if land else nan32
            zonal_out[i, 3] = mndwi_out[i] if land else nan32
            zonal_out[i, 4] = albedo_out[i] if land else nan32
            # the water indicator 1/0 over clear pixels, exact in float32
            zonal_out[i, 5] = (np.float32(1.0) if water else np.float32(0.0)) if is_clear else nan32
            zonal_out[i, 6] = lst_out[i] if (water and is_clear) else nan32
            zonal_out[i, 7] = u_k if land else nan32


def compute_block_numpy(
    dns: Mapping[str, np.ndarray],
    masking: MaskingConfig,
    *,
    scales: Mapping[str, BandScale] | None = None,
    albedo_variant: str = "liang",
) -> BlockResult:
    """The readable numpy version of :func:`compute_block` (same arguments, same results).

    Kept as the reference the fused kernel is tested against; ~25x slower (one pass per step).

    Parameters
    ----------
    dns
        Raw DN arrays of one block, keyed by canonical asset key. Reflectance keys are
        required; ``lwir11`` (LST), ``qa_pixel``, ``qa`` (ST_QA) and ``cdist`` are optional.
    masking
        Reject bits and thresholds. Without ``qa_pixel`` only fill values are masked.
    scales
        Scale/offset/fill per key (from the item or MTL); documented constants otherwise.
    albedo_variant
        ``"liang"`` or ``"smith"``.

    Returns
    -------
    BlockResult
        As :func:`compute_block`.
    """
    scales = scales or {}
    missing = [k for k in REFLECTANCE_KEYS if k not in dns]
    if missing:
        raise ValueError(f"missing reflectance bands {missing}")
    shape = np.shape(dns["red"])
    rejected = np.zeros(shape, dtype=bool)
    if "qa_pixel" in dns:
        qa = np.asarray(dns["qa_pixel"])
        rejected |= qa_reject_mask(qa, masking.reject_bits)
        # fill (bit 0) carries no data whatever reject_bits says
        rejected |= qa_bit_set(qa, 0)
        water = qa_bit_set(qa, 7) if masking.water_bit else np.zeros(shape, dtype=bool)
    else:
        water = None

    raw: dict[str, np.ndarray] = {}
    for key in REFLECTANCE_KEYS:
        r = reflectance(dns[key], _scale(scales, key, SR_SCALE), out_of_range="keep")
        r[rejected] = np.nan
        raw[key] = r
    no_fill = np.ones(shape, dtype=bool)
    for r in raw.values():
        no_fill &= ~np.isnan(r)
    if water is None:
        # without QA_PIXEL, open water by MNDWI > 0 (Xu 2006) on the unclipped reflectance,
        # taken as green > SWIR1 (the numerator's sign: it holds when both are below 0)
        with np.errstate(invalid="ignore"):
            water = raw["green"] > raw["swir16"]
        if not masking.water_bit:
            water = np.zeros(shape, dtype=bool)
    mode = "clip" if masking.clip_reflectance else "mask"
    rho = {k: apply_valid_range(r, mode) for k, r in raw.items()}
    refl_ok = np.ones(shape, dtype=bool)
    for r in rho.values():
        refl_ok &= ~np.isnan(r)

    variables: dict[str, np.ndarray] = {
        "ndvi": normalized_difference(rho["nir08"], rho["red"]),
        "ndbi": normalized_difference(rho["swir16"], rho["nir08"]),
        "mndwi": normalized_difference(rho["green"], rho["swir16"]),
        "albedo": albedo(rho, albedo_variant),
    }
    variables["albedo"][~refl_ok] = np.nan

    unc_k = np.full(shape, np.nan, dtype=np.float32)
    if "qa" in dns:
        st_qa = np.asarray(dns["qa"])
        has = st_qa != ST_QA_SCALE.fill
        unc_k[has] = (st_qa[has].astype(np.float64) * ST_QA_SCALE.scale).astype(np.float32)
    if "lwir11" in dns:
        lst = lst_celsius(dns["lwir11"], _scale(scales, "lwir11", ST_SCALE))
        lst[rejected] = np.nan
        if masking.max_st_uncertainty_k is not None and "qa" in dns:
            st_qa = np.asarray(dns["qa"]).astype(np.int64)
            limit = dn_bound(masking.max_st_uncertainty_k, ST_QA_SCALE, upper=True)
            lst[(st_qa == ST_QA_SCALE.fill) | (st_qa > limit)] = np.nan
        if masking.min_cloud_distance_km is not None and "cdist" in dns:
            cd = np.asarray(dns["cdist"]).astype(np.int64)
            limit = dn_bound(masking.min_cloud_distance_km, CDIST_SCALE, upper=False)
            lst[(cd == CDIST_SCALE.fill) | (cd < limit)] = np.nan
        variables["lst_c"] = lst
        clear = ~np.isnan(lst)
    else:
        variables["lst_c"] = np.full(shape, np.nan, dtype=np.float32)
        clear = no_fill
    unc_k[~clear] = np.nan
    valid = np.zeros(shape, dtype=np.uint8)
    valid[clear & ~water] = VALID_LAND
    valid[clear & water] = VALID_WATER
    return BlockResult(
        variables=variables, valid=valid, water=water & clear, clear=clear, st_uncertainty_k=unc_k
    )


# ---------------------------------------------------------------------------------------------
# one scene, windowed: bounded memory whatever the scene size, one picklable task per scene

COG_VARIABLES = (*VARIABLES, "valid")
# band units written on every per-scene and composite COG (UDUNITS strings; "1" = unitless)
COG_UNITS = {"lst_c": "degC", "ndvi": "1", "ndbi": "1", "mndwi": "1", "albedo": "1", "valid": "1"}
# 256 rows = one row of 256 px COG tiles; x 7,700 columns: ~40 MB of DNs, ~60 MB of float32
# outputs and ~150 MB of float64 zonal temporaries per band (measured peak: +490 MB at 512 rows)
ROWS_PER_BLOCK = 256


@dataclass(frozen=True)
class SceneTask:
    """Everything one worker needs to process a scene (picklable: ships to Dask workers).

    Attributes
    ----------
    scene
        The fetched scene (asset paths, scales).
    masking
        Masking settings.
    albedo_variant
        ``liang`` or ``smith``.
    coverage
        The cells x pixels coverage matrix of the scene's pixel grid (None: no zonal stats).
    out_dir
        Folder for the per-scene COGs (None: none written).
    rows_per_block
        Raster rows read and processed at a time.
    keep_rasters
        Return the scene's variable rasters (float32, whole grid) in ``SceneStats.rasters``,
        e.g. for the yearly composites (4 bytes per pixel and variable while the result is held).
    pool
        A :class:`uhi.buffers.ArrayPool` the task takes its arrays from and gives its block
        buffers back to (threads only: a pool does not travel to Dask workers); the caller
        gives back the result's with :meth:`SceneStats.release`.
    """

    scene: Any
    masking: MaskingConfig
    albedo_variant: str = "liang"
    coverage: Any = None
    out_dir: Path | None = None
    rows_per_block: int = ROWS_PER_BLOCK
    keep_rasters: bool = False
    pool: Any = None


@dataclass
class SceneStats:
    """Per-cell accumulators of one scene (or a merged solar day) and its pixel counts."""

    scene_ids: list[str]
    accumulators: dict[str, Any]  # per variable, over clear land pixels
    water: Any  # accumulator of the water indicator (1/0) over clear pixels (land and water)
    water_lst: Any  # LST over clear water pixels
    uncertainty: Any  # ST_QA uncertainty (K) over clear land pixels
    cell_area_px: np.ndarray
    clear_px: int
    total_px: int
    has_thermal: bool
    cogs: dict[str, str]
    rasters: dict[str, np.ndarray] | None = None  # per variable, float32 (SceneTask.keep_rasters)
    acc_set: Any = None  # the uhi.grid.zonal.AccumulatorSet behind the accumulators

    def release(self, pool: Any) -> None:
        """Give the accumulators' and the rasters' arrays to ``pool`` (an ArrayPool) for the next
        scene; this object's sums and rasters must not be read afterwards."""
        if self.acc_set is not None:
            pool.give(*self.acc_set.arrays())
        if self.rasters is not None:
            pool.give(*self.rasters.values())
        self.acc_set = None
        self.rasters = None

    @property
    def clear_weight(self) -> np.ndarray:
        """Per cell, the covered area (pixel units) of clear pixels, land and water."""
        return self.water.sum_w

    def merge(self, other: SceneStats) -> None:
        """Combine a same-day scene of the same cells (adjacent rows of one path).

        Each cell keeps the scene that saw more of it clear, so pixels in the overlap of the
        two scenes are never counted twice and cells cut by one scene's edge come whole from
        the other.
        """
        if other.has_thermal and not self.has_thermal:
            better = np.ones(len(self.cell_area_px), dtype=bool)
        elif self.has_thermal and not other.has_thermal:
            better = np.zeros(len(self.cell_area_px), dtype=bool)
        else:
            better = other.clear_weight > self.clear_weight
        for key, acc in other.accumulators.items():
            self.accumulators[key].take(acc, better)
        self.water.take(other.water, better)
        self.water_lst.take(other.water_lst, better)
        self.uncertainty.take(other.uncertainty, better)
        self.scene_ids += other.scene_ids
        self.clear_px += other.clear_px
        self.total_px += other.total_px
        self.has_thermal = self.has_thermal or other.has_thermal


# typical values subtracted before squaring (keeps the variance sums well conditioned)
_SHIFTS = {"lst_c": 25.0, "ndvi": 0.3, "ndbi": 0.0, "mndwi": 0.0, "albedo": 0.15}


def _open_assets(scene: Any) -> tuple[dict[str, Any], Any, Any, tuple[int, int]]:
    import rasterio

    from uhi.errors import InputError

    handles = {k: rasterio.open(p) for k, p in scene.assets.items()}
    ref = handles.get("red") or next(iter(handles.values()))
    for key, h in handles.items():
        if h.shape != ref.shape or h.transform != ref.transform:
            for h2 in handles.values():
                h2.close()
            raise InputError(
                f"scene {scene.scene_id}: asset {key} is {h.shape} on {tuple(h.transform)[:6]}, "
                f"red is {ref.shape} on {tuple(ref.transform)[:6]}; refetch the scene"
            )
    return handles, ref.crs, ref.transform, ref.shape


def scene_grid(scene: Any) -> tuple[Any, Any, tuple[int, int]]:
    """(crs, transform, shape) of a scene's pixel grid: its red band's (the reference
    :func:`process_scene` checks every other asset against)."""
    import rasterio

    key = "red" if "red" in scene.assets else next(iter(scene.assets))
    with rasterio.open(scene.assets[key]) as src:
        return src.crs, src.transform, src.shape


# GDAL's block cache defaults to 5 % of RAM and holds written tiles: cap it so one scene stays
# within a few hundred MB however large it is
GDAL_CACHE_MB = 128


def process_scene(task: SceneTask) -> SceneStats:
    """Mask, convert and aggregate one scene, row band by row band (see :func:`_process_scene`)."""
    import rasterio

    with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
        return _process_scene(task)


def _process_scene(task: SceneTask) -> SceneStats:
    """Mask, convert and aggregate one scene, row band by row band.

    Returns per-cell accumulators for the zonal statistics; with ``task.out_dir`` writes the
    per-scene COGs (``lst_c ndvi ndbi mndwi albedo valid``) there from the scene's rasters
    held in memory, and with ``task.keep_rasters`` returns those rasters.

    Raises
    ------
    InputError
        When the scene lacks reflectance bands or its assets are on different grids.
    """
    from rasterio.windows import Window

    from uhi.buffers import ArrayPool
    from uhi.errors import InputError
    from uhi.grid.zonal import accumulator_set, add_block

    scene = task.scene
    missing = [k for k in REFLECTANCE_KEYS if k not in scene.assets]
    if missing:
        raise InputError(
            f"scene {scene.scene_id}: missing reflectance assets {', '.join(missing)}; "
            "add them to fetch.assets and fetch again"
        )
    handles, crs, transform, shape = _open_assets(scene)
    if not scene.has_thermal and "lwir11" in handles:
        handles.pop("lwir11").close()
    rows, cols = shape
    n_cells = task.coverage.n_cells if task.coverage is not None else 0
    # one stacked set: the variables (clear land), the water indicator (clear land and water),
    # water LST (clear water) and the ST_QA uncertainty (clear land), added in one pass per
    # block; only LST keeps its squares and min/max (the panel's lst_c_std/min/max), the
    # others are means (59 MB a scene at 389k cells instead of 125 MB)
    pool = task.pool if task.pool is not None else ArrayPool(0)  # a pool of nothing: np.empty
    acc_set = accumulator_set(
        n_cells, [*(_SHIFTS[v] for v in VARIABLES), 0.0, _SHIFTS["lst_c"], 1.0], moments=1,
        pool=task.pool,
    )
    *var_accs, water_acc, water_lst_acc, unc_acc = acc_set.accumulators
    accs = dict(zip(VARIABLES, var_accs, strict=True))
    blocks = task.coverage.row_blocks(task.rows_per_block) if task.coverage is not None else None
    # the whole scene's rasters in memory (4 bytes a pixel and variable, 1 for valid) when they
    # are written or kept: the kernel writes its rows straight into them, and the COGs are then
    # tiled, compressed and given overviews in one pass from these arrays
    keep = task.keep_rasters or task.out_dir is not None
    rasters = {v: pool.take(shape, np.float32) for v in VARIABLES} if keep else None
    valid_px = np.empty(shape, dtype=np.uint8) if task.out_dir is not None else None
    # the kernel's other outputs, the zonal values and the DNs: one set of buffers for every block
    block_rows = min(rows, task.rows_per_block)
    block_px = block_rows * cols
    scratch = [] if keep else [pool.take(block_px, np.float32) for _ in VARIABLES]
    valid_buf = pool.take(block_px, np.uint8)
    water_buf = pool.take(block_px, np.bool_)
    clear_buf = pool.take(block_px, np.bool_)
    unc_buf = pool.take(block_px, np.float32)
    zonal = pool.take((block_px, ZONAL_COLUMNS), np.float32) if blocks is not None else _NO_ZONAL
    dn_bufs = {k: pool.take((block_rows, cols), h.dtypes[0]) for k, h in handles.items()}
    constants = _kernel_constants(scene.scales, task.masking, task.albedo_variant)
    clear_px = 0
    try:
        for bi, r0 in enumerate(range(0, rows, task.rows_per_block)):
            r1 = min(rows, r0 + task.rows_per_block)
            n = (r1 - r0) * cols
            win = Window(0, r0, cols, r1 - r0)
            dns = {k: h.read(1, window=win, out=dn_bufs[k][: r1 - r0]) for k, h in handles.items()}
            if rasters is not None:
                variables = [rasters[v][r0:r1].reshape(-1) for v in VARIABLES]  # views: rows are contiguous
            else:
                variables = [buf[:n] for buf in scratch]
            valid = valid_px[r0:r1].reshape(-1) if valid_px is not None else valid_buf[:n]
            _run_kernel(
                dns, constants, variables, valid, water_buf[:n], clear_buf[:n], unc_buf[:n],
                zonal[:n] if blocks is not None else _NO_ZONAL,
            )
            clear_px += int(np.count_nonzero(clear_buf[:n]))
            if blocks is not None:
                add_block(acc_set, blocks[bi][2], zonal[:n])
    finally:
        for h in handles.values():
            h.close()
        pool.give(*scratch, valid_buf, water_buf, clear_buf, unc_buf, *dn_bufs.values())
        if blocks is not None:
            pool.give(zonal)
    cogs: dict[str, str] = {}
    if task.out_dir is not None and rasters is not None and valid_px is not None:
        cogs = write_scene_cogs(Path(task.out_dir), {**rasters, "valid": valid_px}, crs, transform)
    area = task.coverage.cell_area_px if task.coverage is not None else np.zeros(0)
    return SceneStats(
        scene_ids=[scene.scene_id],
        accumulators=accs,
        water=water_acc,
        water_lst=water_lst_acc,
        uncertainty=unc_acc,
        cell_area_px=area,
        clear_px=clear_px,
        total_px=rows * cols,
        has_thermal="lwir11" in handles,
        cogs=cogs,
        rasters=rasters if task.keep_rasters else None,
        acc_set=acc_set,
    )


# Per-scene COG codec, measured on three scenes of the 30 km demo city (1,071 x 1,071 px; six
# rasters written from memory with overviews; floating-point predictor): ZSTD 1 0.43 CPU s and
# 17.8 MB a scene, ZSTD 3 0.56 s / 17.7 MB, ZSTD 9 1.11 s / 17.5 MB, DEFLATE 1 0.56 s / 18.0 MB,
# DEFLATE 6 0.72 s / 17.6 MB, LZW 0.65 s / 23.3 MB. Higher levels save under 2 % for 1.3-2.6x
# the CPU: level 1. (Pixels in noise-like synthetic rasters; real scenes compress better.)
SCENE_COG_COMPRESS = "zstd"
SCENE_COG_LEVEL = 1


def write_scene_cogs(
    out_dir: Path, rasters: Mapping[str, np.ndarray], crs: Any, transform: Any
) -> dict[str, str]:
    """Write one scene's rasters (``COG_VARIABLES``) as COGs in ``out_dir``, atomically each.

    Float rasters: NaN nodata, floating-point predictor, average overviews; ``valid``: uint8
    codes, horizontal predictor, nearest overviews (a mean of codes means nothing).
    """
    from uhi.writers.raster import write_array_cog

    out_dir.mkdir(parents=True, exist_ok=True)
    out: dict[str, str] = {}
    for var in COG_VARIABLES:
        is_valid = var == "valid"
        target = out_dir / f"{var}.tif"
        write_array_cog(
            target, rasters[var], transform=transform, crs=crs,
            nodata=None if is_valid else float("nan"), band_name=var, unit=COG_UNITS[var],
            compress=SCENE_COG_COMPRESS, level=SCENE_COG_LEVEL, predictor=2 if is_valid else 3,
            overview_resampling="nearest" if is_valid else "average",
        )
        out[var] = str(target)
    return out


# Yearly composite codec, measured on the five 2016 composites of the 30 km demo city (1,061 x
# 1,061 px float32 written from memory, overviews as the COG driver builds them, one process,
# back to back): DEFLATE (level 6) 135-152 ms CPU and 3.94 MB a file, DEFLATE level 1
# (libdeflate) 114-119 ms / 3.99 MB, level 2-3 122-125 ms / 3.97 MB, ZSTD level 1 77-87 ms /
# 3.95 MB, ZSTD 3 106 ms / 3.93 MB, LZW 133 ms / 5.31 MB; without the floating-point predictor
# ZSTD 1 is 61 ms but 4.31 MB. Overviews take 30-60 ms of each file whatever the codec.
COMPOSITE_COMPRESS = "zstd"
COMPOSITE_LEVEL = 1


def write_composite(target: Path, mean: np.ndarray, var: str, crs: Any, transform: Any) -> Path:
    """One yearly mean composite as a COG (ZSTD level 1, floating-point predictor, the COG
    driver's overviews), band described as ``var`` with its unit.

    ZSTD in GeoTIFF reads in GDAL >= 2.3 and so in QGIS, rasterio and GeoServer; it writes in
    about half the CPU of the DEFLATE it replaced at the same size (see COMPOSITE_COMPRESS).
    """
    from uhi.writers.raster import write_array_cog

    target.parent.mkdir(parents=True, exist_ok=True)
    return write_array_cog(
        target, mean, transform=transform, crs=crs, nodata=float("nan"), band_name=var,
        unit=COG_UNITS[var], compress=COMPOSITE_COMPRESS, level=COMPOSITE_LEVEL, predictor=3,
    )

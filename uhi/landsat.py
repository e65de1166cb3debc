"""Landsat 4-9 Collection 2 Level-2 facts: sensors and band numbering, asset keys, scales, QA bits.

Sources: USGS Landsat 4-7 Collection 2 Level-2 Science Product Guide (LSDS-1618) for TM and
ETM+, Landsat 8-9 Collection 2 Level-2 Science Product Guide (LSDS-1619, v4+) for OLI/TIRS, the
Data Format Control Book (LSDS-1328), and the STAC items of Earth Search, Planetary Computer and
USGS landsatlook (tests/data/stac). See docs/science.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "Sensor",
    "TM",
    "ETM_PLUS",
    "OLI_TIRS",
    "SENSORS",
    "PLATFORMS",
    "sensor_for",
    "is_mss",
    "BandScale",
    "SR_SCALE",
    "ST_SCALE",
    "ST_QA_SCALE",
    "CDIST_SCALE",
    "KELVIN_OFFSET",
    "SR_VALID_DN",
    "QA_BITS",
    "CANONICAL_ASSETS",
    "canonical_asset_key",
    "scale_for",
    "scale_from_raster_bands",
    "parse_mtl",
    "read_mtl_file",
    "scales_from_mtl",
    "product_level",
    "is_l2sp",
    "reflectance",
    "apply_valid_range",
    "dn_bound",
    "lst_celsius",
    "qa_reject_mask",
    "qa_bit_set",
    "parse_scene_id",
    "SceneId",
]


@dataclass(frozen=True)
class BandScale:
    """Physical value = DN * scale + offset; ``fill`` DNs carry no data."""

    scale: float
    offset: float
    fill: int | float | None


# LSDS-1619 Table 6-1 (surface reflectance) and 6-2 (surface temperature).
SR_SCALE = BandScale(scale=0.0000275, offset=-0.2, fill=0)
ST_SCALE = BandScale(scale=0.00341802, offset=149.0, fill=0)
ST_QA_SCALE = BandScale(scale=0.01, offset=0.0, fill=-9999)  # ST uncertainty, kelvin
CDIST_SCALE = BandScale(scale=0.01, offset=0.0, fill=-9999)  # distance to cloud, km
KELVIN_OFFSET = 273.15  # exactly, by definition of the Celsius scale
SR_VALID_DN = (7273, 43636)  # rho in [0, 1] (LSDS-1619 Table 6-1 "valid range")


@dataclass(frozen=True)
class Sensor:
    """One Landsat instrument's Collection 2 Level-2 product: its band numbering and facts."""

    name: str  # "TM", "ETM+", "OLI/TIRS"
    platforms: tuple[str, ...]  # STAC ``platform`` values (landsat-5, ...)
    id_prefixes: tuple[str, ...]  # product id prefixes (LT05, ...)
    bands: Mapping[str, str]  # canonical asset key -> USGS band name in the file name (SR_B1, ST_B6)
    thermal_native_m: int  # thermal band's native resolution; the L2 product is resampled to 30 m
    guide: str  # the USGS product guide the table follows
    qa_unused_bits: tuple[int, ...] = ()  # QA_PIXEL bits the guide leaves unused for the sensor


# THE band table: every place that meets a band name (STAC asset keys, EarthExplorer file names,
# SageMaker items, MTL scale groups) resolves it through ``Sensor.bands``.
# TM and ETM+: LSDS-1618 (Landsat 4-7 C2 L2 Science Product Guide), band designations:
# SR_B1 blue, SR_B2 green, SR_B3 red, SR_B4 NIR, SR_B5 SWIR1, SR_B7 SWIR2, ST_B6 thermal (TM 120 m,
# ETM+ 60 m, both delivered at 30 m); QA_PIXEL bit 2 (cirrus) is unused (no cirrus band).
# OLI/TIRS: LSDS-1619, band designations: SR_B1 coastal .. SR_B7 SWIR2, ST_B10 thermal (100 m, delivered at 30 m).
_TM_ETM_BANDS: dict[str, str] = {
    "blue": "SR_B1",
    "green": "SR_B2",
    "red": "SR_B3",
    "nir08": "SR_B4",
    "swir16": "SR_B5",
    "swir22": "SR_B7",
    "lwir11": "ST_B6",
}
TM = Sensor("TM", ("landsat-4", "landsat-5"), ("LT04", "LT05"), _TM_ETM_BANDS, 120, "LSDS-1618", (2,))
ETM_PLUS = Sensor("ETM+", ("landsat-7",), ("LE07",), _TM_ETM_BANDS, 60, "LSDS-1618", (2,))
OLI_TIRS = Sensor(
    "OLI/TIRS",
    ("landsat-8", "landsat-9"),
    ("LC08", "LC09", "LO08", "LO09", "LT08", "LT09"),
    {
        "coastal": "SR_B1",
        "blue": "SR_B2",
        "green": "SR_B3",
        "red": "SR_B4",
        "nir08": "SR_B5",
        "swir16": "SR_B6",
        "swir22": "SR_B7",
        "lwir11": "ST_B10",
    },
    100,
    "LSDS-1619",
)
SENSORS: tuple[Sensor, ...] = (TM, ETM_PLUS, OLI_TIRS)
PLATFORMS: tuple[str, ...] = ("landsat-4", "landsat-5", "landsat-7", "landsat-8", "landsat-9")
# Multispectral Scanner products (LM01..LM05) have no Level-2 (LSDS-1618 covers TM/ETM+ only)
_MSS_PREFIX = re.compile(r"^LM0\d_", re.I)


def sensor_for(platform: str | None = None, scene_id: str | None = None) -> Sensor | None:
    """The sensor of a product id (LT05_..., read first: it also tells TM from MSS on Landsat 4/5)
    or else of a normalised ``platform`` (landsat-7); None for anything else (MSS included)."""
    if scene_id:
        name = scene_id.strip().rsplit("/", 1)[-1].upper()
        if _MSS_PREFIX.match(name):
            return None
        for sensor in SENSORS:
            if name[:4] in sensor.id_prefixes:
                return sensor
    if platform:
        for sensor in SENSORS:
            if platform in sensor.platforms:
                return sensor
    return None


def is_mss(scene_id: str | None, instruments: Any = None) -> bool:
    """True for a Multispectral Scanner product (id LM0x_ or ``instruments`` ["mss"]): no L2 exists."""
    if isinstance(scene_id, str) and _MSS_PREFIX.match(scene_id.strip().rsplit("/", 1)[-1]):
        return True
    if isinstance(instruments, (list, tuple)):
        return any(isinstance(i, str) and i.lower() == "mss" for i in instruments)
    return False


# QA_PIXEL bit layout, LSDS-1619 Table 6-3. Bit 6 "clear" is set exactly when bits 1 (dilated
# cloud) and 3 (cloud) are unset (on non-fill pixels; checked on the real QA in tests/data): it
# does NOT exclude cloud shadow (4) or cirrus (2), nor by that rule snow (5), so masks test the
# reject bits. TM and ETM+ QA_PIXEL (LSDS-1618, pixel quality band) has the same layout with
# bit 2 unused (always 0: no cirrus band) and cirrus confidence (14-15) unused; Landsat 7's scan-line-corrector
# gaps (SLC-off, after 2003-05-31) are fill (bit 0 set, SR/ST DN 0), so the reject mask and the
# fill tests drop them like any other fill.
QA_BITS: dict[str, int] = {
    "fill": 0,
    "dilated_cloud": 1,
    "cirrus": 2,
    "cloud": 3,
    "cloud_shadow": 4,
    "snow": 5,
    "clear": 6,
    "water": 7,
}

# canonical asset key -> sensor-independent aliases and USGS file suffixes. Canonical keys follow
# the STAC landsat-c2-l2 collection used by Earth Search, Planetary Computer and landsatlook; the
# numbered band names (SR_B4, B4, ST_B6) depend on the sensor and come from ``Sensor.bands``.
# ``lwir`` is the TM/ETM+ thermal key of those collections, ``lwir11`` the TIRS one: both are
# the canonical ``lwir11`` ("the thermal band") whatever the sensor.
CANONICAL_ASSETS: dict[str, tuple[str, ...]] = {
    "coastal": ("coastal_aerosol",),
    "blue": (),
    "green": (),
    "red": (),
    "nir08": ("nir",),
    "swir16": ("swir1", "swir_1"),
    "swir22": ("swir2", "swir_2"),
    "lwir11": ("lwir", "thermal", "surface_temperature"),
    "qa_pixel": ("QA_PIXEL", "pixel_qa", "qa_pixel"),
    "qa_radsat": ("QA_RADSAT",),
    "qa_aerosol": ("SR_QA_AEROSOL",),
    "qa": ("ST_QA",),
    "cdist": ("ST_CDIST",),
    "emis": ("ST_EMIS",),
    "emsd": ("ST_EMSD",),
    "atran": ("ST_ATRAN",),
    "drad": ("ST_DRAD",),
    "urad": ("ST_URAD",),
    "trad": ("ST_TRAD",),
    "mtl.txt": ("MTL.txt", "MTL_txt", "mtl_txt", "MTL"),
    "mtl.json": ("MTL.json", "MTL_json", "mtl_json"),
    "mtl.xml": ("MTL.xml", "MTL_xml", "mtl_xml"),
}

_ALIAS = {k.lower(): k for k in CANONICAL_ASSETS}
for _key, _aliases in CANONICAL_ASSETS.items():
    for _alias in _aliases:
        _ALIAS.setdefault(_alias.lower(), _key)


def _band_aliases(sensor: Sensor) -> dict[str, str]:
    """'sr_b1' and 'b1' -> canonical key, per the sensor's band numbering."""
    out: dict[str, str] = {}
    for key, band in sensor.bands.items():
        out[band.lower()] = key
        out[band.split("_", 1)[1].lower()] = key
    return out


_SENSOR_ALIAS = {sensor.name: _band_aliases(sensor) for sensor in SENSORS}
# old USGS sidecars use keys such as "SR_B4.TIF"
_SUFFIX = re.compile(r"_((?:SR|ST)_(?:B\d+|QA|CDIST|EMIS|EMSD|ATRAN|DRAD|URAD|TRAD|QA_AEROSOL)|QA_PIXEL|QA_RADSAT|MTL)\.(tif|txt|json|xml)$", re.I)


def _file_name(href: str) -> str:
    return href.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def canonical_asset_key(key: str, href: str | None = None, sensor: Sensor | None = None) -> str | None:
    """Map an asset key ('red', 'SR_B4', 'B4', 'SR_B4.TIF') or its href's file name to a
    canonical key, or None when it is not a Landsat band uhi knows.

    Numbered band names are read with ``sensor``'s numbering (SR_B1 is blue on TM/ETM+, coastal
    on OLI); without one, the sensor of the href's product id (LT05_...), else OLI/TIRS.
    """
    if sensor is None:
        sensor = (sensor_for(scene_id=_file_name(href)) if href else None) or OLI_TIRS
    numbered = _SENSOR_ALIAS[sensor.name]
    k = key.strip().lower()
    stem = re.sub(r"\.(tif|tiff)$", "", k)
    hit = _ALIAS.get(k) or _ALIAS.get(stem) or numbered.get(stem)
    if hit:
        return hit
    if href:
        m = _SUFFIX.search(_file_name(href))
        if m:
            band, ext = m.group(1).lower(), m.group(2).lower()
            if band == "mtl":
                return f"mtl.{ext}"
            return _ALIAS.get(band) or numbered.get(band)
    return None


_DEFAULT_SCALES: dict[str, BandScale] = {
    **{k: SR_SCALE for k in ("coastal", "blue", "green", "red", "nir08", "swir16", "swir22")},
    "lwir11": ST_SCALE,
    "qa": ST_QA_SCALE,
    "cdist": CDIST_SCALE,
    "qa_pixel": BandScale(1.0, 0.0, None),
}


def scale_for(asset_key: str) -> BandScale:
    """The documented scale/offset/fill of a canonical asset (the fallback for metadata)."""
    try:
        return _DEFAULT_SCALES[asset_key]
    except KeyError:
        raise KeyError(f"no documented scale for asset {asset_key!r}") from None


def scale_from_raster_bands(asset: Mapping[str, Any]) -> BandScale | None:
    """Scale/offset/nodata from a STAC asset's ``raster:bands`` (None when absent)."""
    bands = asset.get("raster:bands") or []
    if not bands or not isinstance(bands[0], Mapping):
        return None
    b = bands[0]
    if "scale" not in b and "offset" not in b:
        return None
    return BandScale(float(b.get("scale", 1.0)), float(b.get("offset", 0.0)), b.get("nodata"))


def parse_mtl(text: str) -> dict[str, dict[str, str]]:
    """Parse an MTL.txt (ODL ``GROUP = X ... END_GROUP``) into {group: {key: value}}."""
    out: dict[str, dict[str, str]] = {}
    stack: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line == "END" or "=" not in line:
            continue
        key, value = (s.strip() for s in line.split("=", 1))
        value = value.strip('"')
        if key == "GROUP":
            stack.append(value)
            out.setdefault(value, {})
        elif key == "END_GROUP":
            if stack:
                stack.pop()
        elif stack:
            out[stack[-1]][key] = value
    return out


def scales_from_mtl(mtl: Mapping[str, Mapping[str, str]], sensor: Sensor | None = None) -> dict[str, BandScale]:
    """Scale/offset per canonical key from the MTL's LEVEL2_SURFACE_*_PARAMETERS groups.

    The band numbers are read with ``sensor``'s numbering; without one, the sensor of the MTL's
    product id or spacecraft (REFLECTANCE_MULT_BAND_1 is blue on TM/ETM+, coastal on OLI).
    """
    if sensor is None:
        contents = mtl.get("PRODUCT_CONTENTS", {})
        attrs = mtl.get("IMAGE_ATTRIBUTES", {})
        platform = attrs.get("SPACECRAFT_ID")
        sensor = sensor_for(
            platform=_platform_name(platform) if platform else None,
            scene_id=contents.get("LANDSAT_PRODUCT_ID"),
        ) or OLI_TIRS
    out: dict[str, BandScale] = {}
    refl = mtl.get("LEVEL2_SURFACE_REFLECTANCE_PARAMETERS", {})
    temp = mtl.get("LEVEL2_SURFACE_TEMPERATURE_PARAMETERS", {})
    for key, band in sensor.bands.items():
        kind, number = band.split("_", 1)
        if kind == "SR":
            mult = refl.get(f"REFLECTANCE_MULT_BAND_{number[1:]}")
            add = refl.get(f"REFLECTANCE_ADD_BAND_{number[1:]}")
        else:
            mult, add = temp.get(f"TEMPERATURE_MULT_BAND_{band}"), temp.get(f"TEMPERATURE_ADD_BAND_{band}")
        if mult is not None and add is not None:
            out[key] = BandScale(float(mult), float(add), 0)
    return out


def _platform_name(value: str) -> str:
    """'LANDSAT_7' -> 'landsat-7'."""
    m = re.search(r"(\d+)\s*$", value.strip().strip('"'))
    return f"landsat-{int(m.group(1))}" if m else value.strip().lower()


@dataclass(frozen=True)
class SceneId:
    """The parts of a Landsat product id, e.g. LC08_L2SP_204023_20200927_20201006_02_T1."""

    sensor: str  # LT04 LT05 LE07 LC08 LC09 (LM0x: MSS, which has no Level-2)
    level: str  # L2SP / L2SR (L1xx for MSS and Level-1 ids)
    path: int
    row: int
    acquired: str  # YYYYMMDD
    collection: str
    category: str

    @property
    def platform(self) -> str:
        return f"landsat-{int(self.sensor[2:])}"


_ID_RE = re.compile(
    r"^(L[COTEM]0[1-9])_(L2SP|L2SR|L1[A-Z]{2})_(\d{3})(\d{3})_(\d{8})(?:_(\d{8}))?_(\d{2})_(T1|T2|RT)"
)


def parse_scene_id(scene_id: str) -> SceneId | None:
    """Parse a Landsat product or STAC item id; None when it is not one."""
    m = _ID_RE.match(scene_id.strip())
    if not m:
        return None
    sensor, level, path, row, acquired, _processed, coll, cat = m.groups()
    return SceneId(sensor, level, int(path), int(row), acquired, coll, cat)


def product_level(item_or_props: Mapping[str, Any], scene_id: str | None = None) -> str | None:
    """'L2SP' or 'L2SR' from ``landsat:correction``, the MTL's PROCESSING_LEVEL or the id."""
    props = item_or_props.get("properties", item_or_props)
    corr = props.get("landsat:correction") or props.get("PROCESSING_LEVEL")
    if isinstance(corr, str) and corr.upper() in ("L2SP", "L2SR"):
        return corr.upper()
    sid = scene_id or item_or_props.get("id") or props.get("landsat:scene_id")
    parsed = parse_scene_id(sid) if isinstance(sid, str) else None
    return parsed.level if parsed and parsed.level in ("L2SP", "L2SR") else None


def is_l2sp(item_or_props: Mapping[str, Any], scene_id: str | None = None) -> bool:
    """True when the scene carries surface temperature (L2SP)."""
    return product_level(item_or_props, scene_id) == "L2SP"


def reflectance(dn: np.ndarray, scale: BandScale = SR_SCALE, *, out_of_range: str = "mask") -> np.ndarray:
    """Surface reflectance (float32) from SR DNs; fill becomes NaN.

    Parameters
    ----------
    dn
        Raw SR DNs.
    scale
        Scale/offset/fill of the band.
    out_of_range
        What becomes of values outside the valid range [0, 1] (LSDS-1619 Table 6-1: DN
        7273..43636): ``"mask"`` (NaN, the default), ``"clip"`` (into [0, 1]) or ``"keep"``
        (unchanged: what a water test needs, since water is often slightly negative in NIR
        and SWIR after atmospheric correction).

    Never compute indices from DNs: the -0.2 offset changes them.
    """
    if out_of_range not in ("mask", "clip", "keep"):
        raise ValueError(f"out_of_range must be 'mask', 'clip' or 'keep', not {out_of_range!r}")
    dn = np.asarray(dn)
    rho = dn.astype(np.float32) * np.float32(scale.scale) + np.float32(scale.offset)
    if scale.fill is not None:
        rho[dn == scale.fill] = np.nan
    return apply_valid_range(rho, out_of_range)


def apply_valid_range(rho: np.ndarray, out_of_range: str) -> np.ndarray:
    """``rho`` (float32, not modified) with values outside [0, 1] masked, clipped or kept
    (``out_of_range`` as in :func:`reflectance`)."""
    out = np.array(rho, dtype=np.float32, copy=True)
    if out_of_range == "clip":
        np.clip(out, 0.0, 1.0, out=out)
    elif out_of_range == "mask":
        with np.errstate(invalid="ignore"):
            out[(out < 0) | (out > 1)] = np.nan
    return out


def dn_bound(value: float, scale: BandScale, *, upper: bool) -> int:
    """The integer DN bound of a physical threshold on a scaled band (scale > 0).

    ``DN * scale + offset <= value`` holds exactly for ``DN <= dn_bound(value, upper=True)``,
    and ``>= value`` for ``DN >= dn_bound(value, upper=False)``. A quotient within 1e-9 of an
    integer counts as that integer, so a pixel exactly at the threshold (200 x 0.01 K against
    2.0 K) is kept whichever way the decimal constants round in binary.
    """
    q = (float(value) - scale.offset) / scale.scale
    nearest = round(q)
    if math.isclose(q, nearest, rel_tol=1e-9, abs_tol=1e-9):
        return int(nearest)
    return int(math.floor(q)) if upper else int(math.ceil(q))


def lst_celsius(dn: np.ndarray, scale: BandScale = ST_SCALE) -> np.ndarray:
    """Land surface temperature in degrees C (float32) from ST_B10 DNs.

    Fill is masked *before* scaling: an unmasked 0 would become 149 - 273.15 = -124.15 C.
    Emissivity is already applied by USGS (ASTER GED, NDVI-adjusted): no second correction.
    """
    dn = np.asarray(dn)
    kelvin = dn.astype(np.float64) * scale.scale + scale.offset
    out = (kelvin - KELVIN_OFFSET).astype(np.float32)
    if scale.fill is not None:
        out[dn == scale.fill] = np.nan
    return out


def qa_bit_set(qa: np.ndarray, bit: int) -> np.ndarray:
    """Boolean array: is ``bit`` set in each QA_PIXEL value."""
    return (np.asarray(qa).astype(np.uint16) >> np.uint16(bit)) & np.uint16(1) == 1


def qa_reject_mask(qa: np.ndarray, reject_bits: tuple[int, ...] = (0, 1, 2, 3, 4, 5)) -> np.ndarray:
    """True where any of ``reject_bits`` is set (default: fill, dilated cloud, cirrus, cloud,
    shadow, snow: LSDS-1619 Table 6-3)."""
    mask_value = np.uint16(sum(1 << b for b in reject_bits))
    return (np.asarray(qa).astype(np.uint16) & mask_value) != 0


def read_mtl_file(path: Path) -> dict[str, dict[str, str]]:
    """Parse an MTL.txt from disk."""
    return parse_mtl(Path(path).read_text(encoding="utf-8", errors="replace"))

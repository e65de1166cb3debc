"""Landsat 8/9 Collection 2 Level-2 facts: asset keys, scale/offset, fill, QA bits, L2SP check.

Sources: USGS Landsat 8-9 Collection 2 Level-2 Science Product Guide (LSDS-1619, v4+), the
Data Format Control Book (LSDS-1328), and the STAC items of Earth Search, Planetary Computer and
USGS landsatlook (shared/data/stac). See docs/science.md.
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

# QA_PIXEL bit layout, LSDS-1619 Table 6-3. Bit 6 "clear" is set exactly when bits 1 (dilated
# cloud) and 3 (cloud) are unset (on non-fill pixels; checked on the real QA in tests/data): it
# does NOT exclude cloud shadow (4) or cirrus (2), nor by that rule snow (5), so masks test the
# reject bits.
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

# canonical asset key -> (aliases and USGS file suffixes). Canonical keys follow the STAC
# landsat-c2-l2 collection used by Earth Search, Planetary Computer and landsatlook.
CANONICAL_ASSETS: dict[str, tuple[str, ...]] = {
    "coastal": ("SR_B1", "B1", "coastal_aerosol"),
    "blue": ("SR_B2", "B2"),
    "green": ("SR_B3", "B3"),
    "red": ("SR_B4", "B4"),
    "nir08": ("SR_B5", "B5", "nir"),
    "swir16": ("SR_B6", "B6", "swir1", "swir_1"),
    "swir22": ("SR_B7", "B7", "swir2", "swir_2"),
    "lwir11": ("ST_B10", "B10", "lwir", "thermal", "surface_temperature"),
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
# old USGS sidecars use keys such as "SR_B4.TIF"
_SUFFIX = re.compile(r"_((?:SR|ST)_(?:B\d+|QA|CDIST|EMIS|EMSD|ATRAN|DRAD|URAD|TRAD|QA_AEROSOL)|QA_PIXEL|QA_RADSAT|MTL)\.(tif|txt|json|xml)$", re.I)


def canonical_asset_key(key: str, href: str | None = None) -> str | None:
    """Map an asset key ('red', 'SR_B4', 'B4', 'SR_B4.TIF') or its href's file name to a
    canonical key, or None when it is not a Landsat band uhi knows."""
    k = key.strip()
    hit = _ALIAS.get(k.lower()) or _ALIAS.get(re.sub(r"\.(tif|tiff)$", "", k, flags=re.I).lower())
    if hit:
        return hit
    if href:
        name = href.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        m = _SUFFIX.search(name)
        if m:
            stem, ext = m.group(1).upper(), m.group(2).lower()
            if stem == "MTL":
                return f"mtl.{ext}"
            return _ALIAS.get(stem.lower())
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


def scales_from_mtl(mtl: Mapping[str, Mapping[str, str]]) -> dict[str, BandScale]:
    """Scale/offset per canonical key from the MTL's LEVEL2_SURFACE_*_PARAMETERS groups."""
    out: dict[str, BandScale] = {}
    refl = mtl.get("LEVEL2_SURFACE_REFLECTANCE_PARAMETERS", {})
    for band, key in ((1, "coastal"), (2, "blue"), (3, "green"), (4, "red"), (5, "nir08"), (6, "swir16"), (7, "swir22")):
        mult, add = refl.get(f"REFLECTANCE_MULT_BAND_{band}"), refl.get(f"REFLECTANCE_ADD_BAND_{band}")
        if mult is not None and add is not None:
            out[key] = BandScale(float(mult), float(add), 0)
    temp = mtl.get("LEVEL2_SURFACE_TEMPERATURE_PARAMETERS", {})
    mult, add = temp.get("TEMPERATURE_MULT_BAND_ST_B10"), temp.get("TEMPERATURE_ADD_BAND_ST_B10")
    if mult is not None and add is not None:
        out["lwir11"] = BandScale(float(mult), float(add), 0)
    return out


@dataclass(frozen=True)
class SceneId:
    """The parts of a Landsat product id, e.g. LC08_L2SP_204023_20200927_20201006_02_T1."""

    sensor: str  # LC08 / LC09
    level: str  # L2SP / L2SR
    path: int
    row: int
    acquired: str  # YYYYMMDD
    collection: str
    category: str

    @property
    def platform(self) -> str:
        return {"LC08": "landsat-8", "LC09": "landsat-9", "LO08": "landsat-8", "LO09": "landsat-9"}.get(
            self.sensor, self.sensor.lower()
        )


_ID_RE = re.compile(
    r"^(L[COTE]0[89])_(L2SP|L2SR)_(\d{3})(\d{3})_(\d{8})(?:_(\d{8}))?_(\d{2})_(T1|T2|RT)"
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
    return parsed.level if parsed else None


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

"""One scene model whatever the source: canonical asset keys, product level, solar day, scales, filters."""

from __future__ import annotations

import copy
import datetime as dt
import logging
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pystac

from uhi import landsat
from uhi.config import Config

__all__ = [
    "canonicalize_item",
    "merge_split_items",
    "solar_day",
    "normalize_platform",
    "SceneFilter",
    "filter_items",
    "FILTER_REASONS",
]

log = logging.getLogger("uhi.search")

# USGS landsatlook publishes one item per product: "<scene>_SR" and "<scene>_ST".
_SPLIT_SUFFIX = re.compile(r"_(SR|ST)$")
_SCALED_KEYS = ("coastal", "blue", "green", "red", "nir08", "swir16", "swir22", "lwir11", "qa", "cdist")

FILTER_REASONS = (
    "no overlap",
    "dates",
    "months",
    "platform",
    "MSS (no Level-2 product)",
    "cloud",
    "cloud over land",
    "L2SR (no thermal)",
    "no thermal band",
    "invalid geometry",
)


def normalize_platform(value: Any) -> str | None:
    """'LANDSAT_9', 'Landsat-9', 'landsat-9' -> 'landsat-9'."""
    if not isinstance(value, str):
        return None
    m = re.search(r"(\d+)$", value.strip())
    if "landsat" in value.lower() and m:
        return f"landsat-{int(m.group(1))}"
    return value.strip().lower()


def solar_day(when: dt.datetime, lon_deg: float) -> dt.date:
    """The local (mean solar time) date of an acquisition at longitude ``lon_deg``.

    Landsat crosses the equator near 10:00 local solar time, so east of ~120 deg E the UTC date is
    the day *before* the local one (Tasmania scenes at 23:50 UTC are next-morning scenes). Panels
    are keyed on the local day so same-day scenes of adjacent paths merge correctly.
    """
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    local = when.astimezone(dt.UTC) + dt.timedelta(hours=lon_deg / 15.0)
    return local.date()


def _item_lon(item: pystac.Item) -> float:
    if item.bbox:
        w, e = (item.bbox[0], item.bbox[2]) if len(item.bbox) == 4 else (item.bbox[0], item.bbox[3])
        # a bbox with west > east crosses the antimeridian
        return (w + e) / 2.0 if w <= e else ((w + e + 360.0) / 2.0 + 180.0) % 360.0 - 180.0
    if item.geometry:
        from shapely.errors import GEOSException
        from shapely.geometry import shape

        try:
            return float(shape(item.geometry).centroid.x)
        except (GEOSException, ValueError, TypeError, KeyError, AttributeError, IndexError):
            # a broken footprint: the scene filter drops the item as "invalid geometry"
            return 0.0
    return 0.0


def _scales(item: pystac.Item, mtl_scales: Mapping[str, landsat.BandScale] | None) -> dict[str, list[Any]]:
    """{key: [scale, offset, fill]} from raster:bands, then the MTL, then the documented constants."""
    out: dict[str, list[Any]] = {}
    for key in _SCALED_KEYS:
        asset = item.assets.get(key)
        if asset is None:
            continue
        documented = landsat.scale_for(key)
        found = landsat.scale_from_raster_bands(asset.extra_fields)
        if found is None and mtl_scales:
            found = mtl_scales.get(key)
        if found is None:
            found = documented
        # USGS LSDS-1619 fixes these constants; metadata that disagrees is worth a warning but
        # the scene's own metadata wins (it is what the DNs were encoded with).
        for name, got, want in (("scale", found.scale, documented.scale), ("offset", found.offset, documented.offset)):
            if not math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-12):
                log.warning(
                    "%s: %s %s of %s differs from the documented %s (LSDS-1618/1619); using the item's value",
                    item.id, key, name, got, want,
                )
        fill = found.fill if found.fill is not None else documented.fill
        out[key] = [found.scale, found.offset, fill]
    return out


def canonicalize_item(
    item: pystac.Item, *, mtl_scales: Mapping[str, landsat.BandScale] | None = None
) -> pystac.Item:
    """A copy of ``item`` with canonical asset keys and the ``uhi:*`` properties.

    Asset keys such as ``SR_B4``, ``B4``, ``SR_B4.TIF`` or an href ending in ``_SR_B4.TIF`` become
    ``red``; unknown assets keep their key unless it collides. Adds ``uhi:level`` (L2SP/L2SR),
    ``uhi:solar_day`` (YYYY-MM-DD), ``uhi:scales`` ({key: [scale, offset, fill]}) and
    ``uhi:sensor`` (TM, ETM+, OLI/TIRS), and normalises ``platform`` to ``landsat-4`` ..
    ``landsat-9``. Numbered band names are read with the sensor's numbering (uhi.landsat.SENSORS).
    """
    out = item.clone()
    props = out.properties
    platform = normalize_platform(props.get("platform"))
    if platform is None:
        parsed = landsat.parse_scene_id(item.id)
        platform = parsed.platform if parsed else None
    if platform is not None:
        props["platform"] = platform
    # the band numbering depends on the sensor (SR_B1 is blue on TM/ETM+, coastal on OLI)
    sensor = landsat.sensor_for(platform=platform, scene_id=_SPLIT_SUFFIX.sub("", item.id))
    if sensor is not None:
        props["uhi:sensor"] = sensor.name
    assets: dict[str, pystac.Asset] = {}
    for key, asset in item.assets.items():
        canonical = landsat.canonical_asset_key(key, asset.href, sensor)
        if canonical is not None and canonical not in assets:
            assets[canonical] = asset.clone()
    for key, asset in item.assets.items():
        if landsat.canonical_asset_key(key, asset.href, sensor) is None and key not in assets:
            assets[key] = asset.clone()
    out.assets = {}
    for key, asset in assets.items():
        out.add_asset(key, asset)
    level = landsat.product_level(props, scene_id=_SPLIT_SUFFIX.sub("", item.id))
    if level is None:
        # an item with a thermal band is L2SP whatever its id says
        level = "L2SP" if "lwir11" in out.assets else None
    props["uhi:level"] = level
    when = out.datetime or out.common_metadata.start_datetime
    if when is not None:
        props["uhi:solar_day"] = solar_day(when, _item_lon(out)).isoformat()
    if mtl_scales is None and isinstance(props.get("uhi:scales"), Mapping):
        # an item canonicalised before (a local catalog written by uhi) keeps its MTL scales
        mtl_scales = {
            k: landsat.BandScale(float(v[0]), float(v[1]), v[2])
            for k, v in props["uhi:scales"].items()
            if isinstance(v, (list, tuple)) and len(v) == 3
        }
    props["uhi:scales"] = _scales(out, mtl_scales)
    return out


def merge_split_items(items: Iterable[pystac.Item]) -> list[pystac.Item]:
    """Merge USGS landsatlook's separate ``<scene>_SR`` and ``<scene>_ST`` items into one per scene.

    The SR item's properties lead; the ST item adds its assets (``lwir11``, ``qa``, ...) and any
    property the SR item lacks. Items sharing an id (old USGS ``_SR_stac.json``/``_ST_stac.json``
    sidecars) are merged the same way: the first one's properties lead.
    """
    merged: dict[str, pystac.Item] = {}
    for item in items:
        base_id = _SPLIT_SUFFIX.sub("", item.id)
        if base_id not in merged:
            clone = item.clone()
            clone.id = base_id
            merged[base_id] = clone
            continue
        target = merged[base_id]
        for key, asset in item.assets.items():
            if key not in target.assets:
                target.add_asset(key, asset.clone())
        for key, value in item.properties.items():
            target.properties.setdefault(key, copy.deepcopy(value))
        if item.id.endswith("_SR"):
            # the SR item's properties lead whichever arrived first
            target.properties.update(copy.deepcopy(item.properties))
    return list(merged.values())


@dataclass(frozen=True)
class SceneFilter:
    """The client-side filters re-applied to every backend's results (servers ignore ``query``)."""

    aoi: Any
    start: dt.date
    end: dt.date
    months: tuple[int, ...]
    platforms: tuple[str, ...]
    max_cloud: float
    max_cloud_land: float | None
    require_thermal: bool
    reasons: tuple[str, ...] = field(default=FILTER_REASONS)

    @classmethod
    def from_config(cls, config: Config, aoi_geometry: Any) -> SceneFilter:
        """The filter a config asks for."""
        s = config.search
        return cls(
            aoi=aoi_geometry,
            start=config.time.start,
            end=config.time.end,
            months=config.time.months,
            platforms=tuple(s.platforms),
            max_cloud=s.max_cloud,
            max_cloud_land=s.max_cloud_land,
            require_thermal=s.require_thermal,
        )

    def describe(self) -> str:
        """The filters in words, for the 'no scene matched' message."""
        months = ",".join(str(m) for m in self.months)
        parts = [
            f"{self.start.isoformat()}/{self.end.isoformat()}",
            f"months {months}",
            f"cloud <= {self.max_cloud:g} %",
            "platforms " + ",".join(self.platforms),
        ]
        if self.max_cloud_land is not None:
            parts.append(f"land cloud <= {self.max_cloud_land:g} %")
        if self.require_thermal:
            parts.append("L2SP only")
        return ", ".join(parts)

    def reject_reason(self, item: pystac.Item) -> str | None:
        """Why ``item`` is dropped, or None when it is kept."""
        from shapely.errors import GEOSException
        from shapely.geometry import shape

        if item.geometry is None:
            return "no overlap"
        try:
            footprint = shape(item.geometry)
            if not footprint.is_valid:
                footprint = footprint.buffer(0)
            if not footprint.intersects(self.aoi):
                return "no overlap"
        except (GEOSException, ValueError, TypeError, KeyError, AttributeError, IndexError):
            return "invalid geometry"
        props = item.properties
        day_text = props.get("uhi:solar_day")
        when = item.datetime or item.common_metadata.start_datetime
        utc_day = when.date() if when is not None else None
        day = dt.date.fromisoformat(day_text) if isinstance(day_text, str) else utc_day
        if day is None or utc_day is None:
            return "dates"
        # the server searched on UTC dates; accept either calendar reading at the range edges
        if not (self.start <= day <= self.end or self.start <= utc_day <= self.end):
            return "dates"
        if day.month not in self.months:
            return "months"
        if landsat.is_mss(_SPLIT_SUFFIX.sub("", item.id), props.get("instruments")):
            return "MSS (no Level-2 product)"
        platform = normalize_platform(props.get("platform"))
        if platform is not None and platform not in self.platforms:
            return "platform"
        cloud = props.get("eo:cloud_cover")
        if isinstance(cloud, (int, float)) and cloud > self.max_cloud:
            return "cloud"
        land = props.get("landsat:cloud_cover_land")
        if self.max_cloud_land is not None and isinstance(land, (int, float)) and land > self.max_cloud_land:
            return "cloud over land"
        if self.require_thermal and props.get("uhi:level") != "L2SP":
            return "L2SR (no thermal)"
        if self.require_thermal and "lwir11" not in item.assets:
            return "no thermal band"
        return None


def filter_items(items: Iterable[pystac.Item], scene_filter: SceneFilter) -> tuple[list[pystac.Item], Counter[str]]:
    """Split ``items`` into the kept ones (sorted by datetime, id) and a count of drop reasons.

    Every reason is logged with its count and the first few ids, so the log says why scenes
    were dropped.
    """
    kept: list[pystac.Item] = []
    dropped: Counter[str] = Counter()
    examples: dict[str, list[str]] = {}
    for item in items:
        reason = scene_filter.reject_reason(item)
        if reason is None:
            kept.append(item)
        else:
            dropped[reason] += 1
            examples.setdefault(reason, []).append(item.id)
    for reason, count in sorted(dropped.items()):
        shown = ", ".join(examples[reason][:3]) + (" ..." if count > 3 else "")
        log.info("dropped %d scene(s): %s (%s)", count, reason, shown)
    kept.sort(key=lambda it: (it.datetime or dt.datetime.min.replace(tzinfo=dt.UTC), it.id))
    return kept, dropped

"""A fetched scene as compute reads it: asset files, checked scales, pixel grid, solar day."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uhi import landsat
from uhi.errors import InputError, NoDataError
from uhi.landsat import BandScale
from uhi.workspace import Workspace

__all__ = [
    "Scene",
    "load_scenes",
    "checked_scales",
    "group_by_solar_day",
    "SCENE_ASSETS",
]

log = logging.getLogger("uhi.compute")

# assets compute reads, when the scene has them
SCENE_ASSETS = ("blue", "green", "red", "nir08", "swir16", "swir22", "lwir11", "qa_pixel", "qa", "cdist")
# metadata scales may be printed with fewer digits than LSDS-1619 (e.g. 2.75e-05): relative slack
_SCALE_RTOL = 1e-6


@dataclass(frozen=True)
class Scene:
    """One fetched scene.

    Attributes
    ----------
    scene_id
        STAC item id.
    solar_day
        Local solar date of the acquisition (``uhi:solar_day``, else the UTC date).
    level
        ``L2SP`` (with surface temperature) or ``L2SR``.
    assets
        Canonical key -> local COG path (raw DNs).
    scales
        Canonical key -> scale/offset/fill, checked against the documented constants.
    platform
        ``landsat-4`` .. ``landsat-9`` (the item's platform, else the id's), None when unknown.
    """

    scene_id: str
    solar_day: dt.date
    level: str | None
    assets: Mapping[str, Path] = field(default_factory=dict)
    scales: Mapping[str, BandScale] = field(default_factory=dict)
    platform: str | None = None

    @property
    def has_thermal(self) -> bool:
        return "lwir11" in self.assets and self.level != "L2SR"


def checked_scales(
    meta: Mapping[str, Any], scene_id: str, *, mtl: Mapping[str, Mapping[str, str]] | None = None
) -> dict[str, BandScale]:
    """Scales from ``uhi:scales``, ``raster:bands`` or the MTL, checked against LSDS-1619.

    Parameters
    ----------
    meta
        ``{"uhi:scales": {...}, "assets": {key: asset dict}}`` of a STAC item.
    scene_id
        For messages.
    mtl
        A parsed MTL (:func:`uhi.landsat.parse_mtl`), used for keys the item does not scale.

    Raises
    ------
    InputError
        When metadata disagrees with the documented scale or offset: the DNs would then mean
        something uhi does not know how to convert.
    """
    out: dict[str, BandScale] = {}
    raw = meta.get("uhi:scales") or {}
    for key, value in raw.items() if isinstance(raw, Mapping) else ():
        if not isinstance(value, Sequence) or len(value) < 2:
            continue
        fill = value[2] if len(value) > 2 else None
        out[str(key)] = BandScale(float(value[0]), float(value[1]), fill)
    for key, asset in (meta.get("assets") or {}).items():
        if key in out or not isinstance(asset, Mapping):
            continue
        s = landsat.scale_from_raster_bands(asset)
        if s is not None:
            out[key] = s
    for key, s in (landsat.scales_from_mtl(mtl) if mtl else {}).items():
        out.setdefault(key, s)
    checked: dict[str, BandScale] = {}
    for key, s in out.items():
        try:
            ref = landsat.scale_for(key)
        except KeyError:
            continue
        if not (
            math.isclose(s.scale, ref.scale, rel_tol=_SCALE_RTOL)
            and math.isclose(s.offset, ref.offset, rel_tol=_SCALE_RTOL, abs_tol=1e-9)
        ):
            raise InputError(
                f"scene {scene_id}: asset {key} has scale {s.scale} offset {s.offset}, "
                f"documented {ref.scale} / {ref.offset} (LSDS-1618/1619); check the item's "
                "raster:bands or refetch the scene"
            )
        checked[key] = BandScale(s.scale, s.offset, ref.fill if s.fill is None else s.fill)
    return checked


def _solar_day(props: Mapping[str, Any], scene_id: str) -> dt.date:
    text = props.get("uhi:solar_day") or props.get("datetime") or props.get("start_datetime")
    if isinstance(text, str) and len(text) >= 10:
        try:
            return dt.date.fromisoformat(text[:10])
        except ValueError:
            pass
    parsed = landsat.parse_scene_id(scene_id)
    if parsed:
        return dt.datetime.strptime(parsed.acquired, "%Y%m%d").date()
    raise InputError(f"scene {scene_id}: no usable date (uhi:solar_day or datetime); refetch it")


def _check_one_crs(scene_id: str, assets: Mapping[str, Path]) -> None:
    """All files of a scene carry one CRS label (a Landsat scene is one UTM grid, LSDS-1619).

    The fetch drops a scene whose bands disagree; a file replaced in the workspace afterwards
    is caught here rather than read on the wrong grid.
    """
    import rasterio
    from rasterio.errors import RasterioError

    labels: dict[str, str | None] = {}
    for key, path in assets.items():
        try:
            with rasterio.open(path) as src:
                labels[key] = src.crs.to_string() if src.crs else None
        except (RasterioError, OSError):
            continue  # an unreadable file is reported where it is read, with its own message
    ref_key = "red" if "red" in labels else next(iter(sorted(labels)), None)
    if ref_key is None:
        return
    for key, crs in sorted(labels.items()):
        if crs != labels[ref_key]:
            raise InputError(
                f"scene {scene_id}: band {key} is labelled {crs}, its {ref_key} band {labels[ref_key]}; "
                "the bands of a scene share one grid: run `uhi fetch --force` to fetch the scene again"
            )


def load_scenes(ws: Workspace) -> list[Scene]:
    """Every scene in ``fetch/scenes.geojson`` whose files are in the workspace.

    Raises
    ------
    NoDataError
        When the index is missing or lists no scene.
    """
    index = ws.scenes_index
    if not index.is_file():
        raise NoDataError(f"no scenes to compute: {ws.relative(index)} is missing; run `uhi fetch` first")
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{index} is not valid GeoJSON ({exc}); run `uhi fetch --force`") from None
    features = data.get("features") if isinstance(data, Mapping) else None
    if not isinstance(features, list):
        raise InputError(f"{index} is not a STAC ItemCollection; run `uhi fetch --force`")
    scenes: list[Scene] = []
    for feat in features:
        if not isinstance(feat, Mapping) or not isinstance(feat.get("id"), str):
            continue
        sid = feat["id"]
        props = feat.get("properties") or {}
        assets = {}
        for key in SCENE_ASSETS:
            p = ws.scene_asset(sid, key)
            if p.is_file():
                assets[key] = p
        if not assets:
            log.warning("scene %s: no fetched files under %s; skipped", sid, ws.relative(ws.scene_dir(sid)))
            continue
        _check_one_crs(sid, assets)
        meta = {"uhi:scales": props.get("uhi:scales"), "assets": feat.get("assets") or {}}
        mtl_path = ws.scene_dir(sid) / "mtl.txt"
        mtl = landsat.read_mtl_file(mtl_path) if mtl_path.is_file() else None
        level = props.get("uhi:level") or landsat.product_level(feat, sid)
        platform = props.get("platform")
        if not (isinstance(platform, str) and platform in landsat.PLATFORMS):
            parsed = landsat.parse_scene_id(sid)
            platform = parsed.platform if parsed and parsed.platform in landsat.PLATFORMS else None
        scenes.append(
            Scene(
                scene_id=sid,
                solar_day=_solar_day(props, sid),
                level=level,
                assets=assets,
                scales=checked_scales(meta, sid, mtl=mtl),
                platform=platform,
            )
        )
    if not scenes:
        raise NoDataError(
            f"no scenes to compute in {ws.relative(index)}: the fetch found none; "
            "widen time.start/time.end or raise search.max_cloud and fetch again"
        )
    return sorted(scenes, key=lambda s: (s.solar_day, s.scene_id))


def group_by_solar_day(scenes: Sequence[Scene]) -> dict[dt.date, list[Scene]]:
    """Scenes grouped by solar day (same-day scenes of one path, adjacent rows, merge)."""
    out: dict[dt.date, list[Scene]] = {}
    for s in scenes:
        out.setdefault(s.solar_day, []).append(s)
    return dict(sorted(out.items()))

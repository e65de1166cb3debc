"""Scenes on disk: a folder of EarthExplorer-style files (``*_SR_B4.TIF`` + MTL) or a static STAC catalog."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from pathlib import Path
from typing import Any

import pystac

from uhi import landsat
from uhi.errors import InputError
from uhi.search.normalize import canonicalize_item

__all__ = ["search_local", "items_from_folder", "items_from_catalog", "item_from_scene_files"]

log = logging.getLogger("uhi.search")

_BAND_FILE = re.compile(
    r"^(?P<product>L[COTE]0[89]_L2S[PR]_\d{6}_\d{8}_\d{8}_\d{2}_(?:T1|T2|RT))_(?P<band>(?:SR|ST)_[A-Z0-9_]+|QA_PIXEL|QA_RADSAT)\.TIF$",
    re.I,
)


def search_local(path: Path) -> list[pystac.Item]:
    """Items from a scene folder or a static STAC catalog / item collection, canonicalised.

    Parameters
    ----------
    path
        A folder of EarthExplorer-style scenes, a folder holding ``catalog.json``, or a
        ``catalog.json``/``collection.json``/item-collection file.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"search.path not found: {path}; give a scene folder or a catalog.json")
    if path.is_dir() and (path / "catalog.json").is_file():
        path = path / "catalog.json"
    if path.is_file():
        return items_from_catalog(path)
    return items_from_folder(path)


def items_from_catalog(path: Path) -> list[pystac.Item]:
    """Every item of a static catalog, collection or item collection, with absolute hrefs."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"search.path is not a readable STAC JSON file: {path} ({exc})") from None
    try:
        if data.get("type") == "FeatureCollection":
            raw_items = list(pystac.ItemCollection.from_dict(data, preserve_dict=False))
            for item in raw_items:
                for asset in item.assets.values():
                    if not re.match(r"^[a-z][a-z0-9+.-]*://", asset.href) and not Path(asset.href).is_absolute():
                        asset.href = str((path.parent / asset.href).resolve())
        elif data.get("type") == "Feature":
            item = pystac.Item.from_file(str(path))
            item.make_asset_hrefs_absolute()
            raw_items = [item]
        else:
            catalog = pystac.read_file(str(path))
            if not isinstance(catalog, pystac.Catalog):
                raise InputError(f"search.path is not a STAC catalog or collection: {path}")
            raw_items = []
            for item in catalog.get_items(recursive=True):
                item.make_asset_hrefs_absolute()
                raw_items.append(item)
    except pystac.STACError as exc:
        raise InputError(f"search.path is not valid STAC: {path} ({exc})") from None
    log.info("local catalog %s: %d item(s)", path, len(raw_items))
    return [canonicalize_item(item) for item in raw_items]


def items_from_folder(folder: Path) -> list[pystac.Item]:
    """One item per Landsat product found (recursively) in ``folder``."""
    groups: dict[str, dict[str, Path]] = {}
    for file in sorted(folder.rglob("*")):
        m = _BAND_FILE.match(file.name)
        if m and file.is_file():
            groups.setdefault(m.group("product"), {})[m.group("band").upper()] = file
    if not groups:
        raise InputError(
            f"no Landsat Collection 2 Level-2 files (*_SR_B4.TIF, *_ST_B10.TIF, ...) under {folder}; "
            "point search.path at EarthExplorer downloads or a catalog.json"
        )
    items = [item_from_scene_files(product, bands, folder) for product, bands in sorted(groups.items())]
    log.info("local folder %s: %d scene(s)", folder, len(items))
    return items


def _mtl_for(product: str, first_band: Path) -> dict[str, dict[str, str]]:
    mtl_path = first_band.with_name(f"{product}_MTL.txt")
    if not mtl_path.is_file():
        log.warning("%s: no MTL.txt beside the bands; using the documented scales and the id's date", product)
        return {}
    return landsat.read_mtl_file(mtl_path)


def _acquired(mtl: dict[str, dict[str, str]], product: str) -> dt.datetime:
    attrs = mtl.get("IMAGE_ATTRIBUTES", {})
    date_text, time_text = attrs.get("DATE_ACQUIRED"), attrs.get("SCENE_CENTER_TIME")
    if date_text and time_text:
        clock = time_text.rstrip("Z")[:15]
        return dt.datetime.fromisoformat(f"{date_text}T{clock}").replace(tzinfo=dt.UTC)
    parsed = landsat.parse_scene_id(product)
    if parsed is None:
        raise InputError(f"cannot tell the acquisition date of {product}; keep its MTL.txt beside the bands")
    return dt.datetime.strptime(parsed.acquired, "%Y%m%d").replace(tzinfo=dt.UTC)


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def item_from_scene_files(product: str, bands: dict[str, Path], folder: Path) -> pystac.Item:
    """A canonical STAC item describing one product's files on disk.

    The footprint is the files' own extent (clips are smaller than the MTL's scene corners).
    """
    import rasterio
    from rasterio.warp import transform_bounds
    from shapely.geometry import box, mapping

    first = bands.get("SR_B4") or next(iter(bands.values()))
    with rasterio.open(first) as src:
        bounds4326 = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
        epsg = src.crs.to_epsg() if src.crs else None
        shape = [src.height, src.width]
        transform = list(src.transform)[:6]
    mtl = _mtl_for(product, first)
    attrs = mtl.get("IMAGE_ATTRIBUTES", {})
    parsed = landsat.parse_scene_id(product)
    props: dict[str, Any] = {
        "platform": (attrs.get("SPACECRAFT_ID") or (parsed.platform if parsed else "")).strip('"'),
        "landsat:correction": mtl.get("PRODUCT_CONTENTS", {}).get("PROCESSING_LEVEL")
        or (parsed.level if parsed else None),
        "proj:epsg": epsg,
        "proj:shape": shape,
        "proj:transform": transform,
    }
    cloud, land = _float(attrs.get("CLOUD_COVER")), _float(attrs.get("CLOUD_COVER_LAND"))
    if cloud is not None:
        props["eo:cloud_cover"] = cloud
    if land is not None:
        props["landsat:cloud_cover_land"] = land
    item = pystac.Item(product, mapping(box(*bounds4326)), list(bounds4326), _acquired(mtl, product), props)
    for band, file in sorted(bands.items()):
        item.add_asset(band, pystac.Asset(href=str(file.resolve()), media_type=pystac.MediaType.GEOTIFF))
    mtl_txt = first.with_name(f"{product}_MTL.txt")
    if mtl_txt.is_file():
        item.add_asset("MTL.txt", pystac.Asset(href=str(mtl_txt.resolve()), media_type="text/plain"))
    return canonicalize_item(item, mtl_scales=landsat.scales_from_mtl(mtl) if mtl else None)

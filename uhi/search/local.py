"""Scenes on disk: a folder of EarthExplorer-style files (``*_SR_B4.TIF`` + MTL) or a static STAC catalog."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pystac

from uhi import landsat
from uhi.errors import InputError
from uhi.redact import redact_url
from uhi.search.normalize import canonicalize_item

__all__ = [
    "search_local",
    "items_from_folder",
    "items_from_catalog",
    "item_from_scene_files",
    "read_json_file",
    "MAX_JSON_BYTES",
    "MAX_CATALOG_DEPTH",
]

log = logging.getLogger("uhi.search")

_BAND_FILE = re.compile(
    r"^(?P<product>L[COTE]0[4-9]_L2S[PR]_\d{6}_\d{8}_\d{8}_\d{2}_(?:T1|T2|RT))_(?P<band>(?:SR|ST)_[A-Z0-9_]+|QA_PIXEL|QA_RADSAT)\.TIF$",
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


# Bounds on what a local catalog can make uhi read. One Landsat item is ~15 KB and an item
# collection of search.max_items (2000) items ~30 MB; a file above the limit is refused before it
# is read whole. A static catalog nests catalog -> collection -> items: 16 levels is far more
# than any real layout, and a deeper chain is a link loop in disguise.
MAX_JSON_BYTES = 64 * 2**20
MAX_CATALOG_DEPTH = 16
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.I)


def read_json_file(path: Path, what: str = "search.path") -> Any:
    """The parsed JSON of a local file of at most :data:`MAX_JSON_BYTES` bytes.

    Raises
    ------
    InputError
        The file is missing, not a regular file, too large, or not JSON (the file is named).
    """
    try:
        if not path.is_file():
            raise InputError(f"{what}: {path} is not a file; give a STAC JSON file")
        with open(path, "rb") as fh:
            # the size on disk refuses a large file unread; the bounded read covers files that
            # report no size (a FIFO, /proc, a growing file)
            too_large = os.fstat(fh.fileno()).st_size > MAX_JSON_BYTES
            blob = b"" if too_large else fh.read(MAX_JSON_BYTES + 1)
        if too_large or len(blob) > MAX_JSON_BYTES:
            raise InputError(
                f"{what}: {path} is larger than {MAX_JSON_BYTES // 2**20} MiB, too large for a STAC "
                "catalog or item file; split the item collection or point search.path at a catalog.json"
            )
        return json.loads(blob.decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise InputError(f"{what} is not a readable STAC JSON file: {path} ({type(exc).__name__}: {exc})") from None


def _absolute_asset_hrefs(item: pystac.Item, base: Path) -> pystac.Item:
    for asset in item.assets.values():
        if not _URL.match(asset.href) and not Path(asset.href).is_absolute():
            asset.href = str((base / asset.href).resolve())
    return item


def _item(data: Any, path: Path, where: str) -> pystac.Item:
    """A pystac Item from one parsed item, or InputError naming the file."""
    if not isinstance(data, dict) or data.get("type") != "Feature":
        kind = type(data).__name__ if not isinstance(data, dict) else f"type {data.get('type')!r}"
        raise InputError(f"search.path: {where} in {path} is not a STAC item (got a JSON {kind}); fix or remove it")
    try:
        item = pystac.Item.from_dict(data, href=str(path), migrate=True, preserve_dict=True)
    except (pystac.STACError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InputError(
            f"search.path: {where} in {path} is not a valid STAC item ({type(exc).__name__}: {exc}); fix or remove it"
        ) from None
    return _absolute_asset_hrefs(item, path.parent)


def _walk(path: Path, ancestors: tuple[Path, ...], seen: set[Path], out: list[pystac.Item]) -> None:
    """Items of one STAC JSON file and, for a catalog or collection, of its child and item links."""
    data = read_json_file(path)
    if not isinstance(data, dict):
        raise InputError(
            f"search.path: {path} is a JSON {type(data).__name__}, not a STAC catalog, collection or item; "
            "point search.path at a catalog.json"
        )
    kind = data.get("type")
    if kind not in ("FeatureCollection", "Feature", "Catalog", "Collection"):
        # STAC before 1.0 had no "type" on catalogs and collections
        from pystac.serialization import identify_stac_object_type

        found = identify_stac_object_type(data)
        kind = found.value if found is not None else kind
    if kind == "FeatureCollection":
        features = data.get("features")
        if not isinstance(features, list):
            raise InputError(f"search.path: {path} is a FeatureCollection without a features list")
        out.extend(_item(f, path, f"feature {n}") for n, f in enumerate(features))
        return
    if kind == "Feature":
        out.append(_item(data, path, "the item"))
        return
    if kind not in ("Catalog", "Collection"):
        raise InputError(f"search.path is not a STAC catalog or collection: {path} (type {kind!r})")
    links = data.get("links")
    for link in links if isinstance(links, list) else []:
        if not isinstance(link, dict) or link.get("rel") not in ("child", "item"):
            continue
        href = link.get("href")
        if not isinstance(href, str) or not href:
            raise InputError(f"search.path: {path} has a {link.get('rel')} link without href; fix the catalog")
        if _URL.match(href) and not href.lower().startswith("file://"):
            raise InputError(
                f"search.path: {path} links to {redact_url(href)}; the local backend reads catalogs on disk only "
                "(use search.backend 'stac' with search.url for an API)"
            )
        target = Path(href.removeprefix("file://"))
        target = (target if target.is_absolute() else path.parent / target).resolve()
        if target in ancestors or target == path:
            raise InputError(
                f"search.path: catalog link loop: {path} links back to {target}; fix the {link.get('rel')} link"
            )
        if target in seen:
            continue  # reached twice without a loop (two parents): read once
        seen.add(target)
        if link.get("rel") == "item":
            out.append(_item(read_json_file(target), target, "the item"))
            continue
        if len(ancestors) + 1 >= MAX_CATALOG_DEPTH:
            raise InputError(
                f"search.path: catalogs nested deeper than {MAX_CATALOG_DEPTH} levels at {target}; "
                "check the catalog's child links"
            )
        _walk(target, (*ancestors, path), seen, out)


def items_from_catalog(path: Path) -> list[pystac.Item]:
    """Every item of a static catalog, collection or item collection, with absolute hrefs.

    The catalog's ``child`` and ``item`` links are followed on disk, each file read once and
    bounded by :data:`MAX_JSON_BYTES`; a link loop, a file that is not a STAC object (a JSON
    string or list), a remote link and a catalog deeper than :data:`MAX_CATALOG_DEPTH` levels
    are InputErrors naming the file.
    """
    path = Path(path).resolve()
    raw_items: list[pystac.Item] = []
    _walk(path, (), {path}, raw_items)
    log.info("local catalog %s: %d item(s)", path, len(raw_items))
    return [canonicalize_item(item) for item in raw_items]


def items_from_folder(folder: Path) -> list[pystac.Item]:
    """One item per Landsat product found (recursively) in ``folder``."""
    groups: dict[str, dict[str, Path]] = {}
    mss: set[str] = set()
    for file in sorted(folder.rglob("*")):
        m = _BAND_FILE.match(file.name)
        if m and file.is_file():
            groups.setdefault(m.group("product"), {})[m.group("band").upper()] = file
        elif landsat.is_mss(file.name) and file.is_file():
            mss.add("_".join(file.name.split("_")[:7]))
    if mss:
        shown = ", ".join(sorted(mss)[:3]) + (" ..." if len(mss) > 3 else "")
        log.info("dropped %d scene(s): MSS (no Level-2 product) (%s)", len(mss), shown)
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

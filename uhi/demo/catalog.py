"""A static, self-contained STAC catalog of the demo scenes, shaped like landsat-c2-l2 items."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any

from uhi.demo.encoding import (
    SR_ADD,
    SR_FILL,
    SR_MULT,
    ST_ADD_K,
    ST_FILL,
    ST_MULT,
    ST_QA_FILL,
    ST_QA_MULT_K,
)
from uhi.demo.scenes import SceneRecord
from uhi.demo.spec import UTM_EPSG, WRS_ROW

__all__ = ["write_catalog", "STAC_EXTENSIONS", "SYNTHETIC_PROPERTY"]

# item property (and catalog field) marking planted data, so outputs can say "synthetic"
SYNTHETIC_PROPERTY = "uhi:synthetic"

# the extension set of Planetary Computer's landsat-c2-l2 items (tests/data/stac), with the
# projection extension at v2.0.0 because the items carry proj:code (proj:epsg kept for readers
# of v1.x)
STAC_EXTENSIONS = [
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/view/v1.0.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
    "https://landsat.usgs.gov/stac/landsat-extension/v1.1.1/schema.json",
    "https://stac-extensions.github.io/classification/v1.0.0/schema.json",
]

_COG = "image/tiff; application=geotiff; profile=cloud-optimized"
_SR_TITLES: dict[str, str] = {
    # key: title (band names and wavelengths per sensor in uhi.demo.sensors)
    "blue": "Blue Band",
    "green": "Green Band",
    "red": "Red Band",
    "nir08": "Near Infrared Band 0.8",
    "swir16": "Short-wave Infrared Band 1.6",
    "swir22": "Short-wave Infrared Band 2.2",
}
_QA_BITS = [
    ("fill", 0, "Image or fill data"),
    ("dilated_cloud", 1, "Dilated cloud"),
    ("cirrus", 2, "Cirrus mask"),
    ("cloud", 3, "Cloud mask"),
    ("cloud_shadow", 4, "Cloud shadow mask"),
    ("snow", 5, "Snow/Ice mask"),
    ("clear", 6, "Clear mask"),
    ("water", 7, "Water mask"),
]


def _atomic_stac_io() -> Any:
    """pystac's StacIO writing every JSON through a temporary file and a rename."""
    from pystac.stac_io import DefaultStacIO

    from uhi.workspace import Workspace

    class AtomicStacIO(DefaultStacIO):  # type: ignore[misc]
        def write_text_to_href(self, href: str, txt: str) -> None:
            target = Path(os.fspath(href))
            Workspace(target.parent).write_text(target, txt)

    return AtomicStacIO()


def _assets(rec: SceneRecord) -> dict[str, dict[str, Any]]:
    folder = rec.folder
    sensor = rec.plan.sensor
    out: dict[str, dict[str, Any]] = {}
    for key, title in _SR_TITLES.items():
        name, cw, fwhm = sensor.eo_bands[key]
        common = key
        out[key] = {
            "href": str(folder / rec.files[key]),
            "type": _COG,
            "title": title,
            "roles": ["data", "reflectance"],
            "eo:bands": [
                {
                    "name": name,
                    "common_name": common,
                    "center_wavelength": cw,
                    "full_width_half_max": fwhm,
                }
            ],
            "raster:bands": [
                {
                    "scale": SR_MULT,
                    "offset": SR_ADD,
                    "nodata": SR_FILL,
                    "data_type": "uint16",
                    "spatial_resolution": 30,
                }
            ],
        }
    if "lwir11" in rec.files:
        name, cw, fwhm = sensor.eo_bands["lwir11"]
        out[sensor.thermal_asset] = {
            "href": str(folder / rec.files["lwir11"]),
            "type": _COG,
            "title": "Surface Temperature Band",
            "roles": ["data", "temperature"],
            "gsd": sensor.thermal_gsd_m,
            "eo:bands": [
                {
                    "name": name,
                    "common_name": sensor.thermal_asset,
                    "center_wavelength": cw,
                    "full_width_half_max": fwhm,
                }
            ],
            "raster:bands": [
                {
                    "unit": "kelvin",
                    "scale": ST_MULT,
                    "offset": ST_ADD_K,
                    "nodata": ST_FILL,
                    "data_type": "uint16",
                    "spatial_resolution": 30,
                }
            ],
        }
        out["qa"] = {
            "href": str(folder / rec.files["qa"]),
            "type": _COG,
            "title": "Surface Temperature Quality Assessment Band",
            "roles": ["data"],
            "raster:bands": [
                {
                    "unit": "kelvin",
                    "scale": ST_QA_MULT_K,
                    "nodata": ST_QA_FILL,
                    "data_type": "int16",
                    "spatial_resolution": 30,
                }
            ],
        }
    out["qa_pixel"] = {
        "href": str(folder / rec.files["qa_pixel"]),
        "type": _COG,
        "title": "Pixel Quality Assessment Band",
        "roles": ["cloud", "cloud-shadow", "snow-ice", "water-mask"],
        "classification:bitfields": [
            {"name": n, "offset": o, "length": 1, "description": d} for n, o, d in _QA_BITS
        ],
        "raster:bands": [
            {"unit": "bit index", "nodata": 1, "data_type": "uint16", "spatial_resolution": 30}
        ],
    }
    out["mtl.txt"] = {
        "href": str(folder / rec.files["mtl.txt"]),
        "type": "text/plain",
        "title": "Product Metadata File (txt)",
        "roles": ["metadata"],
    }
    return out


def _item(rec: SceneRecord) -> Any:
    import pystac
    import shapely

    plan = rec.plan
    hh, mm, rest = plan.center_time.rstrip("Z").split(":")
    sec, _, frac = rest.partition(".")
    when = dt.datetime(
        plan.date.year,
        plan.date.month,
        plan.date.day,
        int(hh),
        int(mm),
        int(sec),
        int(frac[:6].ljust(6, "0")),
        tzinfo=dt.UTC,
    )
    ring = [list(p) for p in rec.footprint_lonlat]
    geometry = {"type": "Polygon", "coordinates": [ring]}
    bbox = [round(v, 7) for v in shapely.Polygon(ring).bounds]
    doy = plan.date.timetuple().tm_yday
    sensor = plan.sensor
    props: dict[str, Any] = {
        "platform": sensor.platform,
        "instruments": list(sensor.instruments),
        "description": "SYNTHETIC Landsat Collection 2 Level-2 (uhi demo city)",
        # machine-readable: these pixels were planted by `uhi demo`, not imaged by Landsat
        SYNTHETIC_PROPERTY: True,
        "gsd": 30,
        "eo:cloud_cover": rec.cloud_cover,
        "landsat:cloud_cover_land": rec.cloud_cover_land,
        "landsat:correction": plan.level,
        "landsat:wrs_path": f"{plan.path:03d}",
        "landsat:wrs_row": f"{WRS_ROW:03d}",
        "landsat:wrs_type": "2",
        "landsat:collection_category": "T1",
        "landsat:collection_number": "02",
        "landsat:scene_id": f"{sensor.scene_prefix}{plan.path:03d}{WRS_ROW:03d}{plan.date.year}{doy:03d}LGN00",
        "proj:code": f"EPSG:{UTM_EPSG}",
        "proj:epsg": UTM_EPSG,
        "proj:shape": list(rec.shape),
        "proj:transform": [float(v) for v in rec.transform],
        "view:off_nadir": 0,
        "view:sun_azimuth": 145.0 if plan.path == 42 else 143.0,
        "view:sun_elevation": 56.0,
    }
    item = pystac.Item(
        id=plan.item_id,
        geometry=geometry,
        bbox=bbox,
        datetime=when,
        properties=props,
        stac_extensions=list(STAC_EXTENSIONS),
    )
    for key, asset in _assets(rec).items():
        extra = {k: v for k, v in asset.items() if k not in ("href", "type", "title", "roles")}
        item.add_asset(
            key,
            pystac.Asset(
                href=asset["href"],
                media_type=asset["type"],
                title=asset["title"],
                roles=asset["roles"],
                extra_fields=extra,
            ),
        )
    return item


def write_catalog(records: list[SceneRecord], catalog_dir: Path) -> Path:
    """Write ``catalog_dir/catalog.json`` and one item per scene, all hrefs relative.

    Returns
    -------
    Path
        The catalog.json path (what ``search.path`` points at).
    """
    import pystac

    platforms = sorted({r.plan.platform for r in records})
    what = "Landsat 8" if platforms == ["landsat-8"] else "Landsat 5, 7 and 8"
    catalog = pystac.Catalog(
        id="uhi-demo",
        description=f"SYNTHETIC {what} Collection 2 Level-2 scenes of the uhi demo city (Calgary-like).",
        title="uhi demo city",
        extra_fields={SYNTHETIC_PROPERTY: True},
    )
    items = [_item(r) for r in sorted(records, key=lambda r: r.plan.item_id)]
    catalog.add_items(items)
    catalog.normalize_hrefs(str(catalog_dir))
    for item in items:
        item.make_asset_hrefs_relative()
    catalog.save(catalog_type=pystac.CatalogType.SELF_CONTAINED, stac_io=_atomic_stac_io())
    return catalog_dir / "catalog.json"

"""The area of interest: loaded from ``city.aoi`` or ``city.bbox``, validated, with its target CRS."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uhi.config import CityConfig
from uhi.errors import ConfigError, InputError

__all__ = ["Aoi", "load_aoi", "check_cell_budget", "utm_crs", "utm_zone"]

log = logging.getLogger("uhi.aoi")


@dataclass(frozen=True)
class Aoi:
    """An area of interest.

    Attributes
    ----------
    geometry
        Shapely (multi)polygon in EPSG:4326 (lon, lat), valid and non-empty.
    crs
        Target projected CRS for the city ("EPSG:326ZZ"/"EPSG:327ZZ", or ``city.crs``).
    """

    geometry: Any
    crs: str

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """west, south, east, north in degrees."""
        w, s, e, n = self.geometry.bounds
        return (float(w), float(s), float(e), float(n))

    def geojson(self) -> dict[str, Any]:
        """The geometry as a GeoJSON mapping (RFC 7946, lon/lat)."""
        from shapely.geometry import mapping

        return dict(mapping(self.geometry))


def utm_zone(lon_deg: float) -> int:
    """UTM zone number (1-60) of a longitude; 180 deg E belongs to zone 60."""
    return min(60, int(math.floor((lon_deg + 180.0) / 6.0)) + 1)


def utm_crs(lon_deg: float, lat_deg: float) -> str:
    """The WGS 84 / UTM CRS of a point: EPSG:326ZZ north of the equator, EPSG:327ZZ south."""
    base = 32600 if lat_deg >= 0 else 32700
    return f"EPSG:{base + utm_zone(lon_deg)}"


def _read_file(path: Path) -> Any:
    import geopandas as gpd
    from pyogrio.errors import DataSourceError

    if not path.exists():
        raise InputError(f"city.aoi file not found: {path}; give an existing GeoJSON/GeoPackage file")
    try:
        frame = gpd.read_file(path)
    except (DataSourceError, ValueError) as exc:
        raise InputError(f"city.aoi could not be read: {path} ({exc}); give a GeoJSON/GeoPackage/OGR file") from None
    if frame.empty:
        raise InputError(f"city.aoi has no features: {path}; give at least one polygon")
    if frame.crs is None:
        log.warning("city.aoi %s has no CRS; assuming EPSG:4326 (lon/lat)", path)
        frame = frame.set_crs("EPSG:4326")
    geoms = frame.geometry
    if geoms.isna().any() or geoms.is_empty.any():
        raise InputError(f"city.aoi has empty or missing geometries: {path}; remove them")
    invalid = ~geoms.is_valid
    if invalid.any():
        from shapely.validation import explain_validity

        reason = explain_validity(geoms[invalid].iloc[0])
        raise InputError(
            f"city.aoi has an invalid geometry: {reason} in {path}; repair it (e.g. QGIS 'Fix geometries')"
        )
    kinds = set(geoms.geom_type)
    if not kinds <= {"Polygon", "MultiPolygon"}:
        raise InputError(
            f"city.aoi must hold polygons, got {', '.join(sorted(kinds))} in {path}; buffer points or lines first"
        )
    return frame.to_crs("EPSG:4326").geometry.union_all()


def load_aoi(city: CityConfig) -> Aoi:
    """Load and validate the AOI of ``city`` and choose its target CRS.

    Parameters
    ----------
    city
        The ``city`` config section: ``aoi`` (a file) or ``bbox`` (degrees), optional ``crs``.

    Returns
    -------
    Aoi
        The geometry in EPSG:4326 and the target CRS.

    Raises
    ------
    ConfigError
        No AOI, an invalid or empty geometry, or an AOI across two UTM zones without ``city.crs``.
    """
    from pyproj import CRS
    from pyproj.exceptions import CRSError
    from shapely.geometry import box

    if city.aoi is not None:
        geometry = _read_file(Path(city.aoi).expanduser())
    elif city.bbox is not None:
        geometry = box(*city.bbox)
    else:
        raise ConfigError("no area of interest: set city.aoi (a polygon file) or city.bbox (west, south, east, north)")
    if geometry.is_empty or geometry.area <= 0:
        raise ConfigError("the area of interest is empty; give a polygon with a non-zero area")
    w, s, e, n = geometry.bounds
    if not (-180 <= w <= e <= 180 and -90 <= s <= n <= 90):
        raise ConfigError(
            f"the area of interest is not in lon/lat degrees (bounds {w:.1f}, {s:.1f}, {e:.1f}, {n:.1f}); "
            "set the file's CRS or give city.bbox in EPSG:4326"
        )
    if city.crs is not None:
        try:
            crs = CRS.from_user_input(city.crs)
        except CRSError:
            raise ConfigError(f"city.crs is not a CRS: {city.crs!r}; give e.g. EPSG:32612") from None
        if not crs.is_projected:
            raise ConfigError(f"city.crs must be projected (metres), got {city.crs!r}; give e.g. EPSG:32612")
        return Aoi(geometry, city.crs)
    zone_w, zone_e = utm_zone(w), utm_zone(e)
    if zone_w != zone_e:
        raise ConfigError(
            f"the area of interest spans UTM zones {zone_w} and {zone_e} (longitudes {w:.3f} to {e:.3f}); "
            "set city.crs to one projected CRS, e.g. EPSG:326%02d" % zone_w
        )
    centre = geometry.centroid
    return Aoi(geometry, utm_crs(centre.x, centre.y))


def check_cell_budget(aoi: Aoi, zoom: int, max_cells: int) -> int:
    """Refuse an AOI whose estimated cell count at ``zoom`` exceeds ``max_cells``.

    Runs before any search or pixel read: a country-sized bbox would otherwise pass fetch and
    then ask compute for gigabytes (issue 18: 2,000 x 420 km asked for 354 M tiles, 5.3 GiB).

    Returns
    -------
    int
        The estimate (see ``uhi.grid.cells.estimate_tile_count``).

    Raises
    ------
    ConfigError
        Over the limit; the message names the estimate, the limit and the three ways out.
    """
    from uhi.grid.cells import estimate_tile_count

    estimate = estimate_tile_count(aoi.geometry, zoom)
    if estimate > max_cells:
        w, s, e, n = aoi.bounds
        raise ConfigError(
            f"the area of interest ({w:.3f}, {s:.3f}, {e:.3f}, {n:.3f}) holds about {estimate:,} cells "
            f"at grid.zoom {zoom}, over grid.max_cells ({max_cells:,}); split the city into smaller "
            f"AOIs, use a coarser grid (grid.zoom: {zoom - 1} has about a quarter as many cells), "
            "or raise grid.max_cells if the machine has the memory"
        )
    return estimate

"""The planted land: zoom-19 cells, river, parks, core, suburbs, fields, zones and covariates."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer

from uhi.demo.spec import CENTRE_LAT, CENTRE_LON, PIXEL_SIZE_M, UTM_EPSG, ZOOM, DemoSpec

__all__ = [
    "Landscape",
    "CellGrid",
    "build_landscape",
    "tile_xy",
    "tile_lonlat",
    "ZONES",
    "RIVER_WIDTH_M",
    "zone_polygons",
    "LAND_CLASSES",
    "WATER_CLASSES",
]

ZONES = ("core", "north", "east", "south", "west")
RIVER_WIDTH_M = 110.0
LAND_CLASSES = ("core", "suburb", "industrial", "park", "field")
WATER_CLASSES = ("river", "lake")
# the lake: centre and radius in units of the half side (r ~0.6, inside the built-up edge)
LAKE_CENTRE = (-0.40, -0.45)
LAKE_RADIUS = 0.11
# Clear inland water in Landsat 8 C2 surface reflectance: a few percent in the visible, NIR
# about 0.01 and SWIR near zero, often slightly negative after atmospheric correction (the
# USGS valid range starts at DN 7273 = 0.0 but L2 products carry DNs below it over water).
# Magnitudes typical of OLI over clear inland water (Pahlevan et al. 2017, Remote Sens.
# Environ. 190, 289-301): mean, sd per band; the lake is a little greener (algae).
_WATER_SPECTRA = {
    "blue": (0.055, 0.004),
    "green": (0.062, 0.004),
    "red": (0.035, 0.003),
    "nir08": (0.007, 0.004),
    "swir16": (0.003, 0.003),
    "swir22": (0.002, 0.002),
}
_LAKE_EXTRA = {"green": 0.010, "nir08": 0.004}
# planted cells reach this far beyond the AOI so every written pixel has a planted cell
_PLANT_MARGIN_M = 900.0
# scene rasters reach this far beyond the AOI (fetch clips the AOI + 300 m by default)
RASTER_MARGIN_M = 450.0


def tile_xy(lon: np.ndarray, lat: np.ndarray, zoom: int = ZOOM) -> tuple[np.ndarray, np.ndarray]:
    """Web-mercator tile column and row holding each lon/lat point (mercantile.tile, vectorised)."""
    n = 2.0**zoom
    lat_r = np.radians(lat)
    x = np.floor((np.asarray(lon) + 180.0) / 360.0 * n)
    y = np.floor((1.0 - np.log(np.tan(lat_r) + 1.0 / np.cos(lat_r)) / math.pi) / 2.0 * n)
    return x.astype(np.int64), y.astype(np.int64)


def tile_lonlat(x: np.ndarray, y: np.ndarray, zoom: int = ZOOM) -> tuple[np.ndarray, np.ndarray]:
    """Lon/lat of a tile's upper-left corner (fractional x, y give interior points)."""
    n = 2.0**zoom
    lon = np.asarray(x, dtype=np.float64) / n * 360.0 - 180.0
    lat = np.degrees(
        np.arctan(np.sinh(math.pi * (1.0 - 2.0 * np.asarray(y, dtype=np.float64) / n)))
    )
    return lon, lat


@dataclass(frozen=True)
class CellGrid:
    """A rectangle of zoom-19 tiles, flattened row-major (index = (y - y0) * nx + (x - x0)).

    Attributes
    ----------
    x0, y0, nx, ny
        First tile column and row and the rectangle's size in tiles.
    tile_x, tile_y
        Column and row of every cell.
    x_m, y_m
        Cell centre (the mercator centre of the tile) in UTM metres.
    area_m2
        Area of the cell's quadrilateral in UTM (the UTM scale error, ~3e-4 here, cancels in
        site coverage because footprints are measured in the same CRS).
    in_aoi
        The cell intersects the AOI bounding box (what ``mercantile.tiles`` returns for it).
    """

    x0: int
    y0: int
    nx: int
    ny: int
    tile_x: np.ndarray
    tile_y: np.ndarray
    x_m: np.ndarray
    y_m: np.ndarray
    area_m2: np.ndarray
    in_aoi: np.ndarray

    @property
    def n(self) -> int:
        return self.nx * self.ny

    def index_of(self, tx: np.ndarray, ty: np.ndarray) -> np.ndarray:
        """Flat cell index of tiles (-1 outside the rectangle)."""
        ok = (tx >= self.x0) & (tx < self.x0 + self.nx) & (ty >= self.y0) & (ty < self.y0 + self.ny)
        return np.where(ok, (ty - self.y0) * self.nx + (tx - self.x0), -1)

    def quadkeys(self) -> list[str]:
        """Quadkey of every cell (mercantile's definition: one digit per zoom level)."""
        shifts = np.arange(ZOOM - 1, -1, -1, dtype=np.int64)
        digits = ((self.tile_x[:, None] >> shifts) & 1) + 2 * ((self.tile_y[:, None] >> shifts) & 1)
        chars = (digits + ord("0")).astype(np.uint8)
        return [bytes(row).decode("ascii") for row in chars]


@dataclass(frozen=True)
class Landscape:
    """Cells with static land cover and per-year covariates (arrays of length n cells).

    ``ndvi``, ``ndbi``, ``mndwi`` and ``red`` have shape (years, cells); the rest are static.
    ``water = river | lake``; ``land_class`` names each cell's class (core, suburb,
    industrial, park, field, river, lake); ``water_rho`` holds the planted surface reflectance
    of the water cells per band (0 on land), which the scenes write as is.
    """

    grid: CellGrid
    aoi_lonlat: tuple[float, float, float, float]
    aoi_utm: tuple[float, float, float, float]
    raster_bounds_utm: tuple[float, float, float, float]
    water: np.ndarray
    river: np.ndarray
    lake: np.ndarray
    park: np.ndarray
    land_class: np.ndarray
    water_rho: dict[str, np.ndarray]
    industrial: np.ndarray
    builtness: np.ndarray
    developing: np.ndarray
    zone: np.ndarray
    target_coverage: np.ndarray
    ndvi: np.ndarray
    ndbi: np.ndarray
    mndwi: np.ndarray
    red: np.ndarray


def _to_utm() -> Transformer:
    return Transformer.from_crs(4326, UTM_EPSG, always_xy=True)


def _snap_out(lo: float, hi: float) -> tuple[float, float]:
    """Widen [lo, hi] to pixel edges on the USGS grid: edges at 15 m past a multiple of 30 m
    (pixel centres on multiples of 30 m, cf. the MTL's CORNER_*_PROJECTION_* of real scenes)."""
    half = PIXEL_SIZE_M / 2
    return (
        math.floor((lo - half) / PIXEL_SIZE_M) * PIXEL_SIZE_M + half,
        math.ceil((hi - half) / PIXEL_SIZE_M) * PIXEL_SIZE_M + half,
    )


def _aoi(spec: DemoSpec) -> tuple[tuple[float, ...], tuple[float, ...], float, float]:
    """AOI as a lon/lat rectangle about size_km on a side, its UTM bounds and the UTM centre."""
    fwd = _to_utm()
    cx, cy = fwd.transform(CENTRE_LON, CENTRE_LAT)
    h = spec.half_size_m
    back = Transformer.from_crs(UTM_EPSG, 4326, always_xy=True)
    lons, lats = back.transform([cx - h, cx + h, cx + h, cx - h], [cy - h, cy - h, cy + h, cy + h])
    # a lon/lat rectangle, so "cells intersecting the AOI" is exactly mercantile.tiles(bbox)
    west, east = (min(lons) + max(lons[0], lons[3])) / 2, (max(lons) + min(lons[1], lons[2])) / 2
    south, north = (min(lats) + max(lats[0], lats[1])) / 2, (max(lats) + min(lats[2], lats[3])) / 2
    aoi_ll = (round(west, 6), round(south, 6), round(east, 6), round(north, 6))
    xs, ys = fwd.transform(
        [aoi_ll[0], aoi_ll[2], aoi_ll[2], aoi_ll[0]], [aoi_ll[1], aoi_ll[1], aoi_ll[3], aoi_ll[3]]
    )
    return aoi_ll, (min(xs), min(ys), max(xs), max(ys)), cx, cy


def _cell_grid(aoi_ll: tuple[float, ...], plant_ll: tuple[float, ...]) -> CellGrid:
    """Every zoom-19 tile over ``plant_ll``; centres and areas in UTM; AOI membership."""
    x0, y0 = tile_xy(np.array([plant_ll[0]]), np.array([plant_ll[3]]))
    x1, y1 = tile_xy(np.array([plant_ll[2]]), np.array([plant_ll[1]]))
    nx, ny = int(x1[0] - x0[0] + 1), int(y1[0] - y0[0] + 1)
    ty, tx = np.divmod(np.arange(nx * ny, dtype=np.int64), nx)
    tx = tx + x0[0]
    ty = ty + y0[0]
    fwd = _to_utm()
    cx, cy = fwd.transform(*tile_lonlat(tx + 0.5, ty + 0.5))
    corners = [
        fwd.transform(*tile_lonlat(tx + dx, ty + dy)) for dx, dy in ((0, 0), (1, 0), (1, 1), (0, 1))
    ]
    area = np.zeros(nx * ny)
    for (xa, ya), (xb, yb) in zip(corners, corners[1:] + corners[:1], strict=True):
        area += xa * yb - xb * ya  # shoelace
    area = np.abs(area) / 2.0
    ax0, ay0 = tile_xy(np.array([aoi_ll[0]]), np.array([aoi_ll[3]]))
    ax1, ay1 = tile_xy(np.array([aoi_ll[2]]), np.array([aoi_ll[1]]))
    in_aoi = (tx >= ax0[0]) & (tx <= ax1[0]) & (ty >= ay0[0]) & (ty <= ay1[0])
    return CellGrid(
        int(x0[0]), int(y0[0]), nx, ny, tx, ty, np.asarray(cx), np.asarray(cy), area, in_aoi
    )


def zone_polygons(cx: float, cy: float, half_m: float) -> dict[str, Any]:
    """Five districts in UTM: a core disk (r < 0.3) and four sectors (N, E, S, W) around it."""
    ext = 4.0 * (half_m + _PLANT_MARGIN_M)
    core = shapely.Point(cx, cy).buffer(0.3 * half_m, quad_segs=64)
    out: dict[str, Any] = {"core": core}
    for name, mid in (("east", 0.0), ("north", 90.0), ("west", 180.0), ("south", 270.0)):
        a0, a1 = np.radians(mid - 45.0), np.radians(mid + 45.0)
        sector = shapely.Polygon(
            [
                (cx, cy),
                (cx + ext * np.cos(a0), cy + ext * np.sin(a0)),
                (cx + ext * np.cos(a1), cy + ext * np.sin(a1)),
            ]
        )
        out[name] = sector.difference(core)
    return out


def _rng(spec: DemoSpec, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([spec.seed, stream]))


def _disks(
    rng: np.random.Generator, count: int, half_m: float, r_lo: float, r_hi: float,
    size_lo: float, size_hi: float,
) -> np.ndarray:
    """``count`` random disks (x, y, radius) whose centres lie at normalised radius r_lo-r_hi
    from the city centre, radii size_lo-size_hi of the half side (the layout scales with it)."""
    angle = rng.uniform(0.0, 2.0 * np.pi, size=count)
    r = np.sqrt(rng.uniform(r_lo**2, r_hi**2, size=count)) * half_m  # uniform over the annulus
    size = rng.uniform(size_lo, size_hi, size=count) * half_m
    return np.column_stack([r * np.cos(angle), r * np.sin(angle), size])


def _in_disks(du: np.ndarray, dv: np.ndarray, disks: np.ndarray) -> np.ndarray:
    from scipy.spatial import cKDTree

    inside = np.zeros(du.shape, dtype=bool)
    if len(disks) == 0:
        return inside
    tree = cKDTree(np.column_stack([du, dv]))
    for x, y, r in disks:
        inside[tree.query_ball_point([x, y], r)] = True
    return inside


def _water_spectra(rng: np.random.Generator, n: int, lake: np.ndarray) -> dict[str, np.ndarray]:
    """Per-cell water reflectance per band (used only on water cells)."""
    out = {}
    for band, (mean, sd) in _WATER_SPECTRA.items():
        out[band] = mean + _LAKE_EXTRA.get(band, 0.0) * lake + rng.normal(0.0, sd, n)
    return out


def _index(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Normalised difference (a - b) / (a + b) of unclipped reflectance (NaN when a + b <= 0)."""
    total = a + b
    return np.where(total > 0, (a - b) / np.where(total > 0, total, 1.0), np.nan)


def build_landscape(spec: DemoSpec) -> Landscape:
    """Plant the city on the cell grid.

    The layout scales with ``size_km`` (normalised radius r = distance / half side): a dense
    core (r < ~0.3), suburbs to r ~ 0.7, fields beyond, a meandering river, parks and industrial
    patches. The east district develops: its builtness grows linearly over the years, so NDVI
    falls and NDBI rises slowly there (the covariates have a trend worth forecasting).
    """
    aoi_ll, aoi_utm, cx, cy = _aoi(spec)
    h = spec.half_size_m
    rx0, rx1 = _snap_out(aoi_utm[0] - RASTER_MARGIN_M, aoi_utm[2] + RASTER_MARGIN_M)
    ry0, ry1 = _snap_out(aoi_utm[1] - RASTER_MARGIN_M, aoi_utm[3] + RASTER_MARGIN_M)
    m = _PLANT_MARGIN_M - RASTER_MARGIN_M  # room for the path-041 raster's shift
    back = Transformer.from_crs(UTM_EPSG, 4326, always_xy=True)
    plant_ll = back.transform_bounds(rx0 - m, ry0 - m, rx1 + m, ry1 + m, densify_pts=51)
    grid = _cell_grid(aoi_ll, plant_ll)

    du, dv = grid.x_m - cx, grid.y_m - cy
    p, q = du / h, dv / h
    r = np.hypot(p, q)

    builtness = 0.95 * np.exp(-((r / 0.28) ** 2)) + 0.45 / (1.0 + np.exp((r - 0.7) / 0.04))
    builtness = np.clip(builtness, 0.0, 1.0)

    river_q = 0.22 * np.sin(2.3 * p + 0.6) - 0.12
    river = np.abs(q - river_q) * h < RIVER_WIDTH_M / 2.0
    # a reservoir at the south-western edge of the built-up area (Glenmore-like), off the river
    lake = np.hypot(p - LAKE_CENTRE[0], q - LAKE_CENTRE[1]) < LAKE_RADIUS
    water = river | lake

    area_scale = (spec.size_km / 4.0) ** 2
    rng = _rng(spec, 1)
    # parks and industry lie INSIDE the built-up area (r < ~0.7): a park is intra-urban green,
    # never part of the rural reference (issue 12; Peng et al. 2012 take rural outside the city)
    parks = _disks(rng, 4 * max(3, round(4 * area_scale)), h, 0.12, 0.5, 0.06, 0.11)
    # parks keep ~2 cells off the water: a park on the river bank is open to the rural land
    # along the river and is not enclosed by the city (uhi fills only enclosed holes)
    from scipy.spatial import cKDTree

    to_water, _ = cKDTree(np.column_stack([du[water], dv[water]])).query(parks[:, :2])
    parks = parks[to_water > parks[:, 2] + 100.0][: max(3, round(4 * area_scale))]
    industry = _disks(rng, max(2, round(2 * area_scale)), h, 0.3, 0.55, 0.06, 0.09)
    park = _in_disks(du, dv, parks) & ~water
    industrial = _in_disks(du, dv, industry) & ~water & ~park

    polygons = zone_polygons(cx, cy, h)
    zone = np.full(grid.n, "", dtype=object)
    for name, poly in polygons.items():
        zone[shapely.contains_xy(poly, grid.x_m, grid.y_m) & (zone == "")] = name
    developing = np.where(
        zone == "east", np.clip((r - 0.3) / 0.15, 0, 1) * np.clip((1.0 - r) / 0.15, 0, 1), 0.0
    )

    rng = _rng(spec, 2)
    eps_ndvi = rng.normal(0.0, 0.05, grid.n)
    eps_ndbi = rng.normal(0.0, 0.05, grid.n)
    eps_cov = rng.normal(0.0, 0.05, grid.n)
    eps_red = rng.normal(0.0, 0.008, grid.n)
    eps_mndwi = rng.normal(0.0, 0.03, grid.n)
    water_rho = _water_spectra(_rng(spec, 3), grid.n, lake)

    target = np.clip(0.62 * builtness + eps_cov, 0.0, 0.7)
    target[builtness < 0.12] = 0.0
    target[industrial] = 0.5
    target[water | park | (target < 0.03)] = 0.0

    years = spec.years
    span = max(1, len(years) - 1)
    n_years = len(years)
    ndvi = np.empty((n_years, grid.n))
    ndbi = np.empty((n_years, grid.n))
    mndwi = np.empty((n_years, grid.n))
    red = np.empty((n_years, grid.n))
    w_ndvi, w_ndbi, w_mndwi = (
        _index(water_rho[a], water_rho[b])
        for a, b in (("nir08", "red"), ("swir16", "nir08"), ("green", "swir16"))
    )
    for i, _year in enumerate(years):
        yr = _rng(spec, 100 + i)
        b_t = np.clip(builtness + 0.4 * developing * i / span, 0.0, 1.0)
        # fields are dry summer grass and crops (NDVI ~0.6); irrigated parks are greener
        v = 0.60 - 0.45 * b_t + eps_ndvi + yr.normal(0.0, 0.015, grid.n)
        d = -0.20 + 0.32 * b_t + eps_ndbi + 0.15 * industrial + yr.normal(0.0, 0.015, grid.n)
        v = np.where(park, 0.80 + 0.5 * eps_ndvi, v)
        d = np.where(park, -0.40 + 0.5 * eps_ndbi, d)
        ndvi[i] = np.where(water, w_ndvi, np.clip(v, 0.02, 0.88))
        ndbi[i] = np.where(water, w_ndbi, np.clip(d, -0.55, 0.45))
        mndwi[i] = np.where(water, w_mndwi, -0.35 - 0.1 * b_t + eps_mndwi)
        red[i] = np.where(water, water_rho["red"], np.clip(0.035 + 0.10 * b_t + eps_red, 0.02, 0.3))
        red[i, park] = np.clip(0.04 + eps_red[park] / 2, 0.02, 0.3)
    land_class = np.full(grid.n, "field", dtype=object)
    land_class[target > 0] = "suburb"
    land_class[(target > 0) & (r < 0.3)] = "core"
    land_class[industrial] = "industrial"
    land_class[park] = "park"
    land_class[river] = "river"
    land_class[lake] = "lake"
    return Landscape(
        grid=grid,
        aoi_lonlat=aoi_ll,  # type: ignore[arg-type]
        aoi_utm=aoi_utm,  # type: ignore[arg-type]
        raster_bounds_utm=(rx0, ry0, rx1, ry1),
        water=water,
        river=river,
        lake=lake,
        park=park,
        land_class=land_class,
        water_rho=water_rho,
        industrial=industrial,
        builtness=builtness,
        developing=developing,
        zone=zone,
        target_coverage=target,
        ndvi=ndvi,
        ndbi=ndbi,
        mndwi=mndwi,
        red=red,
    )

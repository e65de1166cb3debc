"""The demo's people: named neighbourhoods, a population raster, census blocks with a group, and their truth.

Everything is laid on the zoom-19 tile grid of the AOI cells, in web mercator (EPSG:3857, a
CRS other than the scenes' UTM zone, so the exposure stage reprojects): a neighbourhood or a
census block is a rectangle of whole tiles, and the raster has 4 x 4 pixels per tile. Per-zone
population and group counts are therefore recoverable exactly, and the population-weighted
LST of a zone differs from the planted one only by what compute measures (pixel blur, noise,
scene offsets).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from uhi.demo.landscape import Landscape
from uhi.demo.spec import ZOOM, DemoSpec

__all__ = ["NEIGHBOURHOODS", "PopulationTruth", "write_population", "exposure_config_text"]

# 3 x 3 neighbourhoods, north-west first (invented names)
NEIGHBOURHOODS = (
    "Bowfort", "Elm Heights", "Cedar Flats",
    "Riverside", "Old Town", "Foundry Row",
    "Willow Park", "South Commons", "Prairie Gate",
)
_PIXELS_PER_TILE = 4
_GROUP = "age65"


@dataclass(frozen=True)
class PopulationTruth:
    """What the demo planted, for truth.json (``as_dict``)."""

    record: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return self.record


def _blocks(lo: int, hi: int, parts: int) -> list[tuple[int, int]]:
    edges = np.linspace(lo, hi + 1, parts + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _rect_3857(xa: int, xb: int, ya: int, yb: int) -> Any:
    """Tiles [xa, xb) x [ya, yb) as one polygon in EPSG:3857, a vertex at every tile corner on
    its edges (so it reprojects onto the same points as the cells' own corners)."""
    import shapely

    from uhi.grid.cells import tile_bounds_3857

    left, _, _, top = tile_bounds_3857(np.array([xa]), np.array([ya]), ZOOM)[0]
    _, bottom, right, _ = tile_bounds_3857(np.array([xb - 1]), np.array([yb - 1]), ZOOM)[0]
    size = (right - left) / (xb - xa)
    return shapely.segmentize(shapely.box(left, bottom, right, top), size * 0.999)


def _write_raster(path: Path, land: Landscape, people: np.ndarray, xr: tuple[int, int], yr: tuple[int, int]) -> None:
    import rasterio
    from rasterio.transform import from_origin

    from uhi.grid.cells import tile_bounds_3857
    from uhi.workspace import Workspace

    g = land.grid
    nx, ny = xr[1] - xr[0] + 1, yr[1] - yr[0] + 1
    left, _, right, top = tile_bounds_3857(np.array([xr[0]]), np.array([yr[0]]), ZOOM)[0]
    px = (right - left) / _PIXELS_PER_TILE
    k = _PIXELS_PER_TILE
    grid = np.zeros((ny * k, nx * k), dtype=np.float32)
    sel = g.in_aoi
    ix, iy = g.tile_x[sel] - xr[0], g.tile_y[sel] - yr[0]
    # a tile's people spread evenly over its 16 pixels (exact in float32: a power of two)
    per_px = (people[sel] / (k * k)).astype(np.float32)
    for dy in range(k):
        for dx in range(k):
            grid[iy * k + dy, ix * k + dx] = per_px
    with Workspace(path.parent).atomic_path(path) as tmp, rasterio.open(
        tmp, "w", driver="GTiff", height=grid.shape[0], width=grid.shape[1], count=1, dtype="float32",
        crs="EPSG:3857", transform=from_origin(left, top, px, px), nodata=-1.0, compress="deflate",
        tiled=True, blockxsize=256, blockysize=256,
    ) as dst:
        dst.write(grid, 1)


def write_population(root: Path, spec: DemoSpec, land: Landscape, lst_c: np.ndarray, site_coverage: np.ndarray) -> PopulationTruth:
    """Write ``data/neighbourhoods.gpkg``, ``data/population.tif`` and ``data/census.gpkg``.

    Parameters
    ----------
    root
        The demo folder.
    spec
        Its seed and years.
    land
        The planted cells (water, AOI flag, tile indices).
    lst_c
        (years, cells) planted LST, degC.
    site_coverage
        (cells,) planted site coverage: people live where buildings are.

    Returns
    -------
    PopulationTruth
        Per neighbourhood: population, the group's count, and per year the population-weighted
        planted LST; the files written and how the layers were built.
    """
    import geopandas as gpd

    from uhi.demo.city import _write_gpkg  # the demo's deterministic GeoPackage writer

    rng = np.random.default_rng([spec.seed, 65])
    g = land.grid
    aoi = g.in_aoi
    # ~35 residents per 10 % of site coverage on a 48 m cell; none in the river or in parks
    people = rng.poisson(350.0 * np.clip(site_coverage, 0, 1)).astype(np.float64)
    people[land.water | ~aoi] = 0.0
    xr = (int(g.tile_x[aoi].min()), int(g.tile_x[aoi].max()))
    yr = (int(g.tile_y[aoi].min()), int(g.tile_y[aoi].max()))
    cols, rows = _blocks(*xr, 3), _blocks(*yr, 3)
    zone_rows: list[dict[str, Any]] = []
    census_rows: list[dict[str, Any]] = []
    zone_of = np.full(g.n, -1)
    census_of = np.full(g.n, -1)
    for r, (ya, yb) in enumerate(rows):
        for c, (xa, xb) in enumerate(cols):
            z = r * 3 + c
            zone_rows.append({"zone_id": f"N{z + 1}", "name": NEIGHBOURHOODS[z], "geometry": _rect_3857(xa, xb, ya, yb)})
            inside = aoi & (g.tile_x >= xa) & (g.tile_x < xb) & (g.tile_y >= ya) & (g.tile_y < yb)
            zone_of[inside] = z
            # four census blocks per neighbourhood
            for (cya, cyb) in _blocks(ya, yb - 1, 2):
                for (cxa, cxb) in _blocks(xa, xb - 1, 2):
                    b = len(census_rows)
                    census_rows.append({"block": f"B{b + 1:02d}", "geometry": _rect_3857(cxa, cxb, cya, cyb)})
                    census_of[inside & (g.tile_x >= cxa) & (g.tile_x < cxb) & (g.tile_y >= cya) & (g.tile_y < cyb)] = b
    # the group's share of residents differs by neighbourhood (older in the west), so a
    # disparity exists to be found
    share = np.array([0.30, 0.22, 0.12, 0.28, 0.18, 0.08, 0.26, 0.16, 0.10])
    group = np.zeros(g.n)
    lived = zone_of >= 0
    group[lived] = rng.binomial(people[lived].astype(np.int64), share[zone_of[lived]])
    nb = len(census_rows)
    for col, values in (("population", people), (_GROUP, group)):
        sums = np.bincount(census_of[census_of >= 0], weights=values[census_of >= 0], minlength=nb)
        for b in range(nb):
            census_rows[b][col] = float(sums[b])
    data = root / "data"
    zones = gpd.GeoDataFrame(zone_rows, geometry="geometry", crs="EPSG:3857")
    _write_gpkg(zones, data / "neighbourhoods.gpkg", "neighbourhoods")
    census = gpd.GeoDataFrame(census_rows, geometry="geometry", crs="EPSG:3857")
    _write_gpkg(census, data / "census.gpkg", "census")
    _write_raster(data / "population.tif", land, people, xr, yr)

    per_zone: dict[str, Any] = {}
    for z, name in enumerate(NEIGHBOURHOODS):
        m = zone_of == z
        pop = people[m]
        lst_pop = {
            str(year): round(float((pop * lst_c[i][m]).sum() / pop.sum()), 4) if pop.sum() > 0 else None
            for i, year in enumerate(spec.years)
        }
        per_zone[f"N{z + 1}"] = {
            "name": name,
            "population": float(pop.sum()),
            _GROUP: float(group[m].sum()),
            "cells": int(m.sum()),
            "lst_pop_mean_c": lst_pop,
        }
    record = {
        "population_total": float(people.sum()),
        f"{_GROUP}_total": float(group.sum()),
        "group": _GROUP,
        "zones": per_zone,
        "method": (
            "people per AOI cell ~ Poisson(350 x planted site coverage), none on water; neighbourhoods "
            "(3 x 3) and census blocks (2 x 2 per neighbourhood) are rectangles of whole tiles in EPSG:3857; "
            "population.tif has 4 x 4 pixels per tile in EPSG:3857 holding the cell's people / 16; "
            "lst_pop_mean_c is sum(people x planted LST) / sum(people) per zone and year (planted, before "
            "scene offsets and pixel blur)"
        ),
        "files": {"zones": "data/neighbourhoods.gpkg", "population": "data/population.tif", "census": "data/census.gpkg"},
    }
    return PopulationTruth(record)


def exposure_config_text() -> str:
    """The ``exposure:`` section of the demo's config.yaml."""
    return f"""exposure:
  zones_path: data/neighbourhoods.gpkg
  zone_id_col: zone_id
  zone_name_col: name
  # a count raster in web mercator; for the vulnerable group use the census blocks instead:
  #   population_path: data/census.gpkg, groups: [{_GROUP}]
  population_path: data/population.tif
  threshold_c: 35.0
"""

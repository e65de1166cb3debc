"""Building footprints drawn to a planted site coverage per cell, with a few invalid bow-ties."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import shapely
from pyproj import Transformer

from uhi.demo.landscape import Landscape, tile_lonlat
from uhi.demo.spec import UTM_EPSG, DemoSpec

__all__ = ["Buildings", "build_buildings", "STOREY_HEIGHT_M"]

STOREY_HEIGHT_M = 3.5
_BOWTIES = 6  # self-intersecting footprints that compute must repair with make_valid


@dataclass(frozen=True)
class Buildings:
    """Footprints in UTM (EPSG:32612) and the site coverage they give each cell.

    Attributes
    ----------
    geometry
        shapely Polygons as written (a few are invalid bow-ties).
    cell
        Flat index of the cell holding each footprint (footprints never cross a cell edge).
    height_m, floors
        Height in metres and number of storeys of each footprint.
    site_coverage
        Per cell: area of the repaired (``shapely.make_valid``) footprints / cell area, both in
        UTM. This, not the planning target, is the planted covariate.
    invalid
        Indices of the bow-tie footprints.
    """

    geometry: np.ndarray
    cell: np.ndarray
    height_m: np.ndarray
    floors: np.ndarray
    site_coverage: np.ndarray
    invalid: np.ndarray


def _rect(cx: np.ndarray, cy: np.ndarray, side: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Corners (n, 4) of squares in tile-fraction coordinates, counter-clockwise on the map."""
    h = side / 2.0
    fx = np.stack([cx - h, cx + h, cx + h, cx - h], axis=1)
    fy = np.stack([cy + h, cy + h, cy - h, cy - h], axis=1)  # tile y grows southwards
    return fx, fy


def build_buildings(spec: DemoSpec, land: Landscape) -> Buildings:
    """Footprints whose area in each cell is the landscape's target coverage.

    Squares are laid out in the tile's own (mercator) coordinates and their corners projected
    to UTM, so they stay inside the cell whatever the grid convergence; web mercator being
    conformal, the area share of a square of side s (tile fractions) is s**2 to ~1e-7. Dense
    cells hold one tower, lighter ones two houses.
    """
    grid = land.grid
    cov = land.target_coverage
    built = np.flatnonzero(cov > 0.0)
    tower = built[(cov[built] >= 0.35) | (land.builtness[built] > 0.6)]
    houses = np.setdiff1d(built, tower)
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 3]))

    cells = np.concatenate([tower, houses, houses])
    side = np.concatenate(
        [np.sqrt(cov[tower]), np.sqrt(cov[houses] / 2.0), np.sqrt(cov[houses] / 2.0)]
    )
    ccx = np.concatenate(
        [np.full(tower.size, 0.5), np.full(houses.size, 0.27), np.full(houses.size, 0.73)]
    )
    ccy = np.full(cells.size, 0.5)
    fx, fy = _rect(ccx, ccy, side)
    order = np.argsort(cells, kind="stable")
    cells, fx, fy = cells[order], fx[order], fy[order]

    height = np.where(
        np.isin(cells, tower),
        rng.uniform(20.0, 60.0, cells.size) + 100.0 * land.builtness[cells] ** 3,
        rng.uniform(5.0, 10.0, cells.size),
    )
    height = np.round(height, 1)
    floors = np.maximum(1, np.round(height / STOREY_HEIGHT_M)).astype(np.int32)

    lon, lat = tile_lonlat(grid.tile_x[cells, None] + fx, grid.tile_y[cells, None] + fy)
    x, y = Transformer.from_crs(4326, UTM_EPSG, always_xy=True).transform(lon, lat)
    x, y = np.round(x, 3), np.round(y, 3)
    invalid = np.sort(
        rng.choice(
            np.flatnonzero(np.isin(cells, tower)), size=min(_BOWTIES, tower.size), replace=False
        )
    )
    # corners A B C D -> A B D C: the edges B-D and C-A cross, a classic bow-tie
    x[invalid] = x[invalid][:, [0, 1, 3, 2]]
    y[invalid] = y[invalid][:, [0, 1, 3, 2]]
    ring = np.stack(
        [np.concatenate([x, x[:, :1]], axis=1), np.concatenate([y, y[:, :1]], axis=1)], axis=2
    )
    geometry = shapely.polygons(ring)

    area = shapely.area(shapely.make_valid(geometry))
    coverage = np.bincount(cells, weights=area, minlength=grid.n) / grid.area_m2
    return Buildings(geometry, cells, height, floors, coverage, invalid)

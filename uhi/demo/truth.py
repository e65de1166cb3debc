"""The planted truth: SAR land surface temperature per cell and year, and its blur by pixels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from uhi.demo.landscape import Landscape, tile_xy
from uhi.demo.spec import DemoSpec

__all__ = [
    "PlantedLst",
    "plant_lst",
    "measure_blur",
    "WEIGHTS_K",
    "SuhiReference",
    "suhi_reference",
    "ols_r_squared",
]

WEIGHTS_K = 8


@dataclass(frozen=True)
class PlantedLst:
    """Land: y_t = (I - rho W)^-1 (X_t b + u + e_t) + base + warming (year - first year); water:
    the river's or the lake's own temperature + warming + noise (a class of its own, outside the
    SAR: uhi leaves water cells out of the model and its weights).

    Attributes
    ----------
    lst_c
        (years, cells) planted LST, degC (land and water).
    xb_c
        (years, cells) X_t b, degC (NaN on water).
    u_c
        (cells,) the persistent innovation u (NaN on water).
    e_c
        (years, cells) the innovations e_t on land, the water noise on water, degC.
    site_coverage
        (cells,) the static covariate used in X.
    land
        (cells,) True on land cells, the cells the SAR and W cover.
    weights
        The row-standardised kNN-8 matrix W over the land cells (scipy CSR, land x land).
    """

    lst_c: np.ndarray
    xb_c: np.ndarray
    u_c: np.ndarray
    e_c: np.ndarray
    site_coverage: np.ndarray
    land: np.ndarray
    weights: Any


def knn_weights(x_m: np.ndarray, y_m: np.ndarray, k: int = WEIGHTS_K) -> Any:
    """Row-standardised kNN weights on projected cell centres (libpysal), as scipy CSR."""
    from libpysal.weights import KNN

    w = KNN.from_array(np.column_stack([x_m, y_m]), k=k)
    w.transform = "r"
    return w.sparse.tocsr()


def spatial_filter(w: Any, rho: float, rhs: np.ndarray, *, rtol: float = 1e-13) -> np.ndarray:
    """(I - rho W)^-1 applied to each row of ``rhs`` (years x cells), by the Neumann series.

    W is row-standardised, so ||rho W||_inf = rho < 1 and the series sum_k (rho W)^k r converges
    with a known bound: after K terms the error is at most rho^(K+1) / (1 - rho) ||r||_inf. This
    is measurably better than a sparse LU here: at 512k cells (the 30 km city) ``splu`` took
    16-56 s and ~2.6 GB peak, the series 1-2.5 s and a few vectors (bench/bench_demo.py; LeSage &
    Pace 2009, sec. 4.2 use the same expansion for impacts).
    """
    terms = int(np.ceil(np.log(rtol * (1.0 - rho)) / np.log(rho))) if rho > 0 else 0
    term = np.array(rhs, dtype=np.float64).T  # cells x years
    total = term.copy()
    for _ in range(terms):
        term = rho * (w @ term)
        total += term
    return np.ascontiguousarray(total.T)


def plant_lst(spec: DemoSpec, land: Landscape, site_coverage: np.ndarray) -> PlantedLst:
    """Draw the LST of every planted cell and year.

    Land cells follow the SAR with W kNN-8 on the land cells' UTM centres, row-standardised,
    over all planted land cells (the AOI and its margin); ``spatial_filter`` solves every year
    at once. Water cells take their water body's temperature.
    """
    grid = land.grid
    on_land = ~land.water
    w = knn_weights(grid.x_m[on_land], grid.y_m[on_land])
    b = spec.coefficients
    xb = b["ndvi"] * land.ndvi + b["ndbi"] * land.ndbi + b["site_coverage"] * site_coverage[None, :]
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 5]))
    e = rng.normal(0.0, spec.noise_sd_c, size=xb.shape)
    u = rng.normal(0.0, spec.cell_noise_sd_c, size=grid.n)
    z = spatial_filter(w, spec.rho, (xb + u[None, :] + e)[:, on_land])
    trend = spec.warming_c_per_year * (np.asarray(spec.years) - spec.first_year)
    lst = np.empty_like(xb)
    lst[:, on_land] = z + spec.base_c
    water_c = np.where(land.lake, spec.lake_lst_c, spec.river_lst_c)[None, :]
    e_water = rng.normal(0.0, spec.water_noise_sd_c, size=xb.shape)
    lst[:, ~on_land] = (water_c + e_water)[:, ~on_land]
    e[:, ~on_land] = e_water[:, ~on_land]
    lst += trend[:, None]
    xb[:, ~on_land] = np.nan
    u[~on_land] = np.nan
    return PlantedLst(lst, xb, u, e, site_coverage, on_land, w)


def measure_blur(
    land: Landscape,
    grid_transform: Any,
    width: int,
    height: int,
    values_by_cell: np.ndarray,
    pixel_values: np.ndarray | None = None,
    *,
    sub: int = 6,
    max_pixels: int = 250_000,
) -> dict[str, float]:
    """How far a coverage-weighted mean of painted 30 m pixels drifts from the planted cell value.

    Each pixel is split into ``sub`` x ``sub`` sub-pixels; a sub-pixel counts for the cell
    holding its centre, which estimates the pixel-in-cell coverage w_cp to 1/sub**2. The
    pixel values are ``pixel_values`` ((height, width), what the demo wrote before noise) or,
    without them, the value of the cell under each pixel centre (nearest-cell painting). Only
    land pixels and land cells count (water pixels never enter a land mean).
    Measured on AOI cells fully inside a central window of at most ``max_pixels`` pixels.

    Returns
    -------
    dict
        rmse, mean absolute, max absolute difference and the standard deviation of the planted
        values over the same cells, in the unit of ``values_by_cell``.
    """
    from pyproj import Transformer

    from uhi.demo.spec import UTM_EPSG

    side = int(min(width, height, int(np.sqrt(max_pixels))))
    r0, c0 = (height - side) // 2, (width - side) // 2
    to_ll = Transformer.from_crs(UTM_EPSG, 4326, always_xy=True)
    t = grid_transform
    frac = (np.arange(sub) + 0.5) / sub
    cols = c0 + np.arange(side)
    rows = r0 + np.arange(side)
    px_x, px_y = np.meshgrid(t.c + (cols + 0.5) * t.a, t.f + (rows + 0.5) * t.e)
    pix_cell = land.grid.index_of(*tile_xy(*to_ll.transform(px_x, px_y)))
    pix_value = (
        values_by_cell[pix_cell] if pixel_values is None else pixel_values[rows][:, cols]
    ).ravel()
    # water pixels (QA bit 7) never enter a land mean, as in uhi's compute
    pix_land = ~land.water[pix_cell].ravel()
    num = np.zeros(land.grid.n)
    den = np.zeros(land.grid.n)
    pix_index = np.arange(side * side)
    for fy in frac:
        for fx in frac:
            sx, sy = np.meshgrid(t.c + (cols + fx) * t.a, t.f + (rows + fy) * t.e)
            sub_cell = land.grid.index_of(*tile_xy(*to_ll.transform(sx, sy))).ravel()
            np.add.at(num, sub_cell, np.where(pix_land, pix_value, 0.0)[pix_index])
            np.add.at(den, sub_cell, pix_land[pix_index].astype(np.float64))
    # only cells whose whole area lies inside the window (interior of the sampled block)
    inside = np.zeros(land.grid.n, dtype=bool)
    block_cells = np.unique(pix_cell[1:-1, 1:-1])
    edge_cells = np.unique(
        np.concatenate([pix_cell[0], pix_cell[-1], pix_cell[:, 0], pix_cell[:, -1]])
    )
    inside[np.setdiff1d(block_cells, edge_cells)] = True
    keep = inside & land.grid.in_aoi & ~land.water & (den > 0)
    diff = num[keep] / den[keep] - values_by_cell[keep]
    return {
        "rmse": float(np.sqrt(np.mean(diff**2))),
        "mean_abs": float(np.mean(np.abs(diff))),
        "max_abs": float(np.max(np.abs(diff))),
        "planted_sd": float(np.std(values_by_cell[keep])),
        "cells": int(keep.sum()),
    }


@dataclass(frozen=True)
class SuhiReference:
    """The planted urban and rural cells, defined the way uhi's SUHI should find them.

    Attributes
    ----------
    urban
        AOI land cells with planted site coverage >= ``urban_site_coverage``.
    extent
        The urban extent: urban cells with one-cell gaps closed (3 x 3 closing on the tile
        grid) and enclosed holes filled, so every park inside the city belongs to it.
    rural
        AOI land cells outside the extent whose centre lies within ``buffer_m`` of an extent
        cell's centre (issue 12: rural cells lie outside the urban extent).
    """

    urban: np.ndarray
    extent: np.ndarray
    rural: np.ndarray
    buffer_m: float
    urban_site_coverage: float


def suhi_reference(
    land: Landscape, site_coverage: np.ndarray, *, buffer_m: float, urban_site_coverage: float
) -> SuhiReference:
    """Urban, extent and rural cells of the plant (written independently of ``uhi.suhi``)."""
    from scipy import ndimage
    from scipy.spatial import cKDTree

    g = land.grid
    aoi = g.in_aoi
    on_land = aoi & ~land.water
    urban = on_land & (site_coverage >= urban_site_coverage)
    # the tile grid is a rectangle (row-major): closing and hole filling work on it directly;
    # pad so the closing does not touch the border
    grid = np.pad(urban.reshape(g.ny, g.nx), 2)
    closed = ndimage.binary_closing(grid, structure=np.ones((3, 3), dtype=bool)) | grid
    filled = ndimage.binary_fill_holes(closed)
    extent = aoi & filled[2:-2, 2:-2].ravel()
    rural = np.zeros_like(urban)
    if extent.any():
        tree = cKDTree(np.column_stack([g.x_m[extent], g.y_m[extent]]))
        dist, _ = tree.query(np.column_stack([g.x_m, g.y_m]), k=1)
        rural = on_land & ~urban & ~extent & (dist <= buffer_m)
    return SuhiReference(urban, extent, rural, buffer_m, urban_site_coverage)


def ols_r_squared(y: np.ndarray, x: np.ndarray) -> float:
    """R-squared of the least-squares fit of ``y`` on ``x`` with an intercept (numpy lstsq)."""
    design = np.column_stack([np.ones(len(y)), x])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ beta
    return float(1.0 - resid @ resid / np.sum((y - y.mean()) ** 2))

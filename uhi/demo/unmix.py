"""Pixel values whose coverage-weighted cell means are exactly the planted cell values.

Painting each 30 m pixel with the value of the ~48 m cell under its centre blurs the cells: a
cell's coverage-weighted mean then mixes about half of its neighbours' values in (rmse 1.1 degC
of LST on the 2 km city with the realistic noise), an errors-in-variables problem that moved
the lag model's rho from 0.45 to ~0.6. Here the nearest-cell painting v0 is corrected by the
smallest change (least squares) that makes every cell's mean over its land pixels equal its
planted value: v = v0 + A^T (A A^T)^-1 (y - A v0), with A the cells x pixels matrix of
row-normalised exact overlap areas. There are ~2.6 pixels per cell, so the system is
underdetermined and A A^T is well conditioned (preconditioned CG converges in a few dozen
iterations). Overlaps are uhi's exact coverage fractions (``uhi.grid.zonal.build_coverage``,
the tiles' quadrilaterals in UTM against the pixel squares: fast, and itself checked against
exactextract); the demo tests check the written scenes with exactextract independently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from uhi.demo.landscape import Landscape, tile_lonlat
from uhi.demo.spec import PIXEL_SIZE_M, UTM_EPSG

__all__ = ["Unmixer", "build_unmixer"]

# cells with less valid land than this share of their area are not constrained
_MIN_VALID_SHARE = 0.3


@dataclass(frozen=True)
class Unmixer:
    """The overlap system of one pixel grid restricted to its valid land pixels.

    Attributes
    ----------
    matrix
        (constrained cells x valid pixels) CSR, rows normalised to sum 1.
    cells
        Flat index of each constrained cell (land cells lying wholly inside the raster).
    pixels
        Flat raster index of each valid land pixel (not fill, centre in a land cell).
    """

    matrix: Any
    cells: np.ndarray
    pixels: np.ndarray

    def unmix(
        self,
        cell_values: np.ndarray,
        pixel_start: np.ndarray,
        lower: np.ndarray | None = None,
        upper: np.ndarray | None = None,
    ) -> np.ndarray:
        """Correct ``pixel_start`` (k, n raster pixels) so the constrained cells' weighted means
        equal ``cell_values`` (k, n cells); pixels outside the system keep their start value.

        ``lower`` / ``upper`` ((k, n raster pixels), optional) clip the result: on the 2 km
        city 0.26 % of the land pixels' NDVI reach a bound (next to the parks), and only their
        cells' means are slightly off.
        """
        a = self.matrix
        start = pixel_start[:, self.pixels]
        resid = cell_values[:, self.cells] - (a @ start.T).T
        value = start + (a.T @ _cg(a, resid.T)).T
        result = np.array(pixel_start, dtype=np.float64, copy=True)
        result[:, self.pixels] = value
        if lower is not None:
            result = np.maximum(result, lower)
        if upper is not None:
            result = np.minimum(result, upper)
        return result


def _cg(a: Any, rhs: np.ndarray, *, rtol: float = 1e-10, max_iter: int = 500) -> np.ndarray:
    """Solve (A A^T) z = rhs column by column with Jacobi-preconditioned conjugate gradients."""
    diag = np.asarray(a.multiply(a).sum(axis=1)).ravel()[:, None]
    inv_d = 1.0 / diag
    z = np.zeros_like(rhs)
    r = rhs.copy()
    s = inv_d * r
    p = s.copy()
    rs = np.sum(r * s, axis=0)
    norm0 = np.linalg.norm(rhs, axis=0)
    for _ in range(max_iter):
        if np.all(np.linalg.norm(r, axis=0) <= rtol * np.maximum(norm0, 1e-300)):
            return z
        q = np.asarray(a @ (a.T @ p))
        pq = np.sum(p * q, axis=0)
        alpha = rs / np.where(pq == 0, 1.0, pq)
        z += alpha * p
        r -= alpha * q
        s = inv_d * r
        rs_new = np.sum(r * s, axis=0)
        p = s + (rs_new / np.where(rs == 0, 1.0, rs)) * p
        rs = rs_new
    raise AssertionError("demo unmixing did not converge")  # a bug, not a user error


def build_unmixer(land: Landscape, transform: Any, width: int, height: int, valid: np.ndarray,
                  pixel_cell: np.ndarray) -> Unmixer:
    """The exact overlap system of a raster against the planted land cells.

    Parameters
    ----------
    land
        The planted landscape (cells and the water mask).
    transform, width, height
        The raster's affine transform (UTM 12N) and size.
    valid
        (height, width) pixels that carry data (not fill).
    pixel_cell
        (height, width) flat index of the cell under each pixel centre.
    """
    import scipy.sparse as sp
    from pyproj import Transformer

    from uhi.grid.zonal import build_coverage

    g = land.grid
    to_utm = Transformer.from_crs(4326, UTM_EPSG, always_xy=True)
    corners = [
        np.column_stack(to_utm.transform(*tile_lonlat(g.tile_x + dx, g.tile_y + dy)))
        for dx, dy in ((0, 0), (1, 0), (1, 1), (0, 1))
    ]
    quads = np.stack(corners, axis=1)  # cells x 4 x 2, UTM
    full = build_coverage(quads, transform, (height, width)).matrix  # pixel shares in cells
    inside = np.abs(np.asarray(full.sum(axis=1)).ravel() * PIXEL_SIZE_M**2 - g.area_m2) <= 1e-6 * g.area_m2
    land_px = valid.ravel() & ~land.water[pixel_cell.ravel()]
    cells = np.flatnonzero(inside & ~land.water)
    pixels = np.flatnonzero(land_px)
    sub = full[cells][:, pixels].tocsr()
    weight = np.asarray(sub.sum(axis=1)).ravel()
    # a cell left with a sliver of valid land (at the fill edge, on a river bank) would force
    # its few pixels to extremes: such cells keep the nearest-cell painting
    ok = weight * PIXEL_SIZE_M**2 >= _MIN_VALID_SHARE * g.area_m2[cells]
    cells, sub, weight = cells[ok], sub[ok], weight[ok]
    matrix = sp.diags(1.0 / weight) @ sub
    return Unmixer(matrix.tocsr(), cells, pixels)

"""Spatial weights (knn:K, queen, rook, distance:D) as sparse matrices on projected coordinates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from uhi.errors import ConfigError, InputError

__all__ = [
    "SpatialWeights",
    "parse_weights_spec",
    "build_weights",
    "weights_from_tiles",
    "weights_for_cells",
]


@dataclass(frozen=True)
class SpatialWeights:
    """Binary neighbour structure plus what was learnt while building it.

    Attributes
    ----------
    binary
        n x n CSR matrix of 0/1 neighbour links, zero diagonal (used by Gi*).
    spec
        The spec it was built from, e.g. ``"knn:8"``.
    islands
        Row indices with no neighbour (their row in the standardised matrix stays zero).
    """

    binary: sp.csr_matrix
    spec: str
    islands: np.ndarray

    @property
    def n(self) -> int:
        """Number of observations."""
        return int(self.binary.shape[0])

    def row_standardised(self) -> sp.csr_matrix:
        """Row-standardised W (rows sum to 1; island rows stay zero), the form regressions use."""
        sums = np.asarray(self.binary.sum(axis=1)).ravel()
        inv = np.divide(1.0, sums, out=np.zeros_like(sums, dtype=float), where=sums > 0)
        return sp.csr_matrix(sp.diags(inv) @ self.binary)

    def components(self) -> int:
        """Number of connected components of the (symmetrised) neighbour graph."""
        from scipy.sparse.csgraph import connected_components

        count, _ = connected_components(self.binary, directed=True, connection="weak")
        return int(count)


def parse_weights_spec(spec: str) -> tuple[str, float]:
    """Split ``knn:8`` / ``queen`` / ``rook`` / ``distance:250`` into (kind, argument).

    Raises
    ------
    ConfigError
        When the spec is not one of the four forms.
    """
    kind, _, arg = spec.strip().partition(":")
    kind = kind.lower()
    if kind in ("queen", "rook") and not arg:
        return kind, 0.0
    if kind == "knn":
        if not arg:
            return kind, 8.0
        if arg.isdigit() and int(arg) >= 1:
            return kind, float(int(arg))
    if kind == "distance":
        try:
            d = float(arg)
        except ValueError:
            d = -1.0
        if d > 0 and np.isfinite(d):
            return kind, d
    raise ConfigError(
        f"invalid weights spec: {spec!r}; use knn:K (K >= 1), queen, rook or distance:D (D > 0 metres)"
    )


def _from_pairs(n: int, rows: np.ndarray, cols: np.ndarray, spec: str) -> SpatialWeights:
    data = np.ones(rows.size, dtype=float)
    b = sp.csr_matrix((data, (rows, cols)), shape=(n, n))
    b.setdiag(0.0)
    b.eliminate_zeros()
    b.data[:] = 1.0
    b.sort_indices()
    degree = np.diff(b.indptr)
    return SpatialWeights(binary=b, spec=spec, islands=np.flatnonzero(degree == 0))


def _knn(xy_m: np.ndarray, k: int, spec: str) -> SpatialWeights:
    from scipy.spatial import cKDTree

    n = xy_m.shape[0]
    if k >= n:
        raise InputError(f"knn:{k} needs more than {k} observations, got {n}; lower K in the weights spec")
    # query k+1 and drop the point itself; duplicates of a point count as neighbours (as libpysal)
    _, idx = cKDTree(xy_m).query(xy_m, k=k + 1, workers=-1)
    rows = np.repeat(np.arange(n), k + 1)
    cols = idx.ravel()
    keep = cols != rows
    rows, cols = rows[keep], cols[keep]
    # when duplicate points displaced self from the first k+1, keep the k nearest per row
    first = np.searchsorted(rows, np.arange(n))
    rank = np.arange(rows.size) - first[rows]
    keep = rank < k
    return _from_pairs(n, rows[keep], cols[keep], spec)


def _distance(xy_m: np.ndarray, d_m: float, spec: str) -> SpatialWeights:
    from scipy.spatial import cKDTree

    n = xy_m.shape[0]
    pairs = cKDTree(xy_m).query_pairs(d_m, output_type="ndarray")
    rows = np.concatenate([pairs[:, 0], pairs[:, 1]])
    cols = np.concatenate([pairs[:, 1], pairs[:, 0]])
    return _from_pairs(n, rows, cols, spec)


def weights_from_tiles(tile_x: np.ndarray, tile_y: np.ndarray, spec: str) -> SpatialWeights:
    """Queen or rook contiguity of square grid cells straight from their integer tile indices.

    Exact for a regular tile grid and O(n log n), where polygon-based contiguity would
    intersect 200k polygons.
    """
    kind, _ = parse_weights_spec(spec)
    if kind not in ("queen", "rook"):
        raise ConfigError(f"weights_from_tiles builds queen or rook only, got {spec!r}")
    tx = np.asarray(tile_x, dtype=np.int64)
    ty = np.asarray(tile_y, dtype=np.int64)
    n = tx.size
    span = int(ty.max() - ty.min()) + 3 if n else 1
    key = (tx - tx.min() + 1) * span + (ty - ty.min() + 1)
    order = np.argsort(key)
    sorted_key = key[order]
    offsets = [(1, 0), (-1, 0), (0, 1), (0, -1)]
    if kind == "queen":
        offsets += [(1, 1), (1, -1), (-1, 1), (-1, -1)]
    rows_l, cols_l = [], []
    for dx, dy in offsets:
        target = key + dx * span + dy
        pos = np.searchsorted(sorted_key, target)
        pos = np.minimum(pos, n - 1)
        hit = sorted_key[pos] == target
        rows_l.append(np.flatnonzero(hit))
        cols_l.append(order[pos[hit]])
    return _from_pairs(n, np.concatenate(rows_l), np.concatenate(cols_l), spec)


def _contiguity(geometries: Any, kind: str, spec: str) -> SpatialWeights:
    import geopandas as gpd
    from libpysal import weights as lw

    gdf = gpd.GeoDataFrame(geometry=gpd.GeoSeries(list(geometries)).reset_index(drop=True))
    if not gdf.geom_type.isin(["Polygon", "MultiPolygon"]).all():
        raise InputError(
            f"{kind} weights need polygon geometries, got {sorted(set(gdf.geom_type))}; "
            "use knn:K or distance:D for points"
        )
    cls = lw.Queen if kind == "queen" else lw.Rook
    w = cls.from_dataframe(gdf, use_index=False, silence_warnings=True)
    coo = w.sparse.tocoo()
    return _from_pairs(len(gdf), coo.row, coo.col, spec)


def build_weights(xy_m: np.ndarray, spec: str, *, geometries: Any = None) -> SpatialWeights:
    """Spatial weights from projected coordinates (metres) or, for queen/rook, polygons.

    Parameters
    ----------
    xy_m
        (n, 2) array of projected x, y in metres (never lon/lat degrees: docs/science.md).
    spec
        ``knn:K``, ``queen``, ``rook`` or ``distance:D`` (D in metres).
    geometries
        Polygons (any sequence of shapely geometries) for queen/rook contiguity.

    Returns
    -------
    SpatialWeights
        Binary matrix and its islands (rows with no neighbour).
    """
    kind, arg = parse_weights_spec(spec)
    xy = np.asarray(xy_m, dtype=float)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise InputError(f"coordinates must be an (n, 2) array, got shape {xy.shape}")
    if not np.isfinite(xy).all():
        raise InputError("coordinates contain NaN or infinite values; drop those rows first")
    if kind == "knn":
        return _knn(xy, int(arg), spec)
    if kind == "distance":
        return _distance(xy, arg, spec)
    if geometries is None:
        raise InputError(f"{kind} weights need polygon geometries; none were given")
    return _contiguity(geometries, kind, spec)


def weights_for_cells(cells: Any, spec: str) -> SpatialWeights:
    """Binary weights for a table of cells, the one way the model, forecast and scenario agree on.

    Queen/rook come straight from tile indices when the table has ``tile_x``/``tile_y`` (uhi's own
    cells: no polygon intersection needed); otherwise from ``x_m``/``y_m`` (metres) and, for
    contiguity, the table's geometry.
    """
    kind, _ = parse_weights_spec(spec)
    if kind in ("queen", "rook") and {"tile_x", "tile_y"} <= set(cells.columns):
        return weights_from_tiles(cells["tile_x"].to_numpy(), cells["tile_y"].to_numpy(), spec)
    xy = np.column_stack([cells["x_m"].to_numpy(float), cells["y_m"].to_numpy(float)])
    geoms = cells.geometry.to_numpy() if hasattr(cells, "geometry") else None
    return build_weights(xy, spec, geometries=geoms)

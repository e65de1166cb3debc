"""Coverage-weighted zonal statistics through a sparse cells x pixels matrix built once per grid."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numba
import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:
    from uhi.buffers import ArrayPool

__all__ = [
    "CoverageMatrix",
    "ZonalAccumulator",
    "accumulator_set",
    "add_block",
    "build_coverage",
    "grid_key",
    "zonal_stats",
    "zonal_means",
]

# Sutherland-Hodgman clipping of a quadrilateral against 4 half-planes adds at most one vertex
# per plane: 8 vertices; 12 leaves headroom for degenerate touching cases.
_MAX_VERTS = 12


@numba.njit(cache=True, inline="always")
def _clip_half(
    px: np.ndarray, py: np.ndarray, n: int, ox: np.ndarray, oy: np.ndarray,
    axis: int, bound: float, keep_above: bool,
) -> int:
    """Clip polygon (px, py)[:n] to x/y >= bound (keep_above) or <= bound; write to (ox, oy)."""
    m = 0
    if n == 0:
        return 0
    for i in range(n):
        j = (i + 1) % n
        ai = px[i] if axis == 0 else py[i]
        aj = px[j] if axis == 0 else py[j]
        in_i = ai >= bound if keep_above else ai <= bound
        in_j = aj >= bound if keep_above else aj <= bound
        if in_i:
            ox[m] = px[i]
            oy[m] = py[i]
            m += 1
        if in_i != in_j:
            t = (bound - ai) / (aj - ai)
            ox[m] = px[i] + t * (px[j] - px[i])
            oy[m] = py[i] + t * (py[j] - py[i])
            m += 1
    return m


@numba.njit(cache=True)
def _polygon_area(px: np.ndarray, py: np.ndarray, n: int) -> float:
    s = 0.0
    for i in range(n):
        j = (i + 1) % n
        s += px[i] * py[j] - px[j] * py[i]
    return abs(s) * 0.5


@numba.njit(cache=True)
def _count_candidates(
    qc: np.ndarray, qr: np.ndarray, n_rows: int, n_cols: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    n = qc.shape[0]
    c0 = np.empty(n, np.int64)
    c1 = np.empty(n, np.int64)
    r0 = np.empty(n, np.int64)
    r1 = np.empty(n, np.int64)
    counts = np.zeros(n, np.int64)
    for i in range(n):
        c0[i] = max(0, int(np.floor(qc[i].min())))
        c1[i] = min(n_cols, int(np.ceil(qc[i].max())))
        r0[i] = max(0, int(np.floor(qr[i].min())))
        r1[i] = min(n_rows, int(np.ceil(qr[i].max())))
        if c1[i] > c0[i] and r1[i] > r0[i]:
            counts[i] = (c1[i] - c0[i]) * (r1[i] - r0[i])
    return c0, c1, r0, r1, counts


@numba.njit(cache=True, parallel=True)
def _fill_coverage(
    qc: np.ndarray, qr: np.ndarray, n_cols: int,
    c0: np.ndarray, c1: np.ndarray, r0: np.ndarray, r1: np.ndarray, offsets: np.ndarray,
    out_pixel: np.ndarray, out_weight: np.ndarray,
) -> None:
    n = qc.shape[0]
    for i in numba.prange(n):
        ax = np.empty(_MAX_VERTS)
        ay = np.empty(_MAX_VERTS)
        bx = np.empty(_MAX_VERTS)
        by = np.empty(_MAX_VERTS)
        k = offsets[i]
        for r in range(r0[i], r1[i]):
            for c in range(c0[i], c1[i]):
                for v in range(4):
                    ax[v] = qc[i, v]
                    ay[v] = qr[i, v]
                m = _clip_half(ax, ay, 4, bx, by, 0, float(c), True)
                m = _clip_half(bx, by, m, ax, ay, 0, float(c + 1), False)
                m = _clip_half(ax, ay, m, bx, by, 1, float(r), True)
                m = _clip_half(bx, by, m, ax, ay, 1, float(r + 1), False)
                out_pixel[k] = r * n_cols + c
                # pixels are unit squares in pixel space: the area is the pixel's covered share
                out_weight[k] = _polygon_area(ax, ay, m) if m >= 3 else 0.0
                k += 1


def grid_key(crs: Any, transform: Any, shape: tuple[int, int]) -> tuple[str, tuple[float, ...], tuple[int, int]]:
    """Hashable identity of a pixel grid: (CRS WKT, affine coefficients, (rows, cols))."""
    from rasterio.crs import CRS

    wkt = CRS.from_user_input(crs).to_wkt()
    return (wkt, tuple(float(v) for v in tuple(transform)[:6]), (int(shape[0]), int(shape[1])))


@dataclass
class CoverageMatrix:
    """Sparse cells x pixels matrix of coverage fractions for one pixel grid.

    ``matrix[c, p]`` is the share of pixel ``p`` (row-major index) inside cell ``c``;
    ``cell_area_px`` is each cell's area in pixel units (the denominator of the valid share,
    so a cell partly outside the raster is partly invalid).
    """

    matrix: sp.csr_matrix
    shape: tuple[int, int]
    cell_area_px: np.ndarray
    _blocks: dict[int, list[tuple[int, int, sp.csr_matrix]]] = field(default_factory=dict, repr=False)

    @property
    def n_cells(self) -> int:
        return int(self.matrix.shape[0])

    def row_blocks(self, rows_per_block: int) -> list[tuple[int, int, sp.csr_matrix]]:
        """Split the matrix by raster row bands: [(row0, row1, cells x band-pixels CSR)], cached."""
        if rows_per_block not in self._blocks:
            # a cell's pixel indices are sorted, so each band's entries are a run of its row:
            # picked by band number in one pass, in order (what slicing a CSC copy and
            # converting it back gave, at a third of the time)
            matrix = self.matrix
            matrix.sort_indices()
            n_cols = self.shape[1]
            band_px = rows_per_block * n_cols
            band = matrix.indices // band_px
            cell = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
            out = []
            for bi, r0 in enumerate(range(0, self.shape[0], rows_per_block)):
                r1 = min(self.shape[0], r0 + rows_per_block)
                mine = band == bi
                indptr = np.zeros(matrix.shape[0] + 1, dtype=matrix.indptr.dtype)
                np.cumsum(np.bincount(cell[mine], minlength=matrix.shape[0]), out=indptr[1:])
                block = sp.csr_matrix(
                    (matrix.data[mine], matrix.indices[mine] - r0 * n_cols, indptr),
                    shape=(matrix.shape[0], (r1 - r0) * n_cols),
                )
                out.append((r0, r1, block))
            self._blocks[rows_per_block] = out
        return self._blocks[rows_per_block]


def build_coverage(quads: np.ndarray, transform: Any, shape: tuple[int, int]) -> CoverageMatrix:
    """Exact coverage fractions of cell quadrilaterals over a pixel grid.

    Each cell polygon is clipped against every pixel of its bounding box (Sutherland-Hodgman
    in pixel space, where pixels are unit squares; an affine map keeps area ratios), so the
    weights equal exactextract's coverage fractions for the same polygons.

    Parameters
    ----------
    quads
        (n, k, 2) convex polygon corners (k <= 4 used; quadrilaterals) in the raster's CRS.
    transform
        The raster's affine transform (rasterio ``Affine``).
    shape
        (rows, cols) of the raster.
    """
    quads = np.asarray(quads, dtype=np.float64)
    if quads.ndim != 3 or quads.shape[1] != 4:
        raise ValueError(f"expected (n, 4, 2) quadrilaterals, got shape {quads.shape}")
    inv = ~transform
    a, b, c, d, e, f = (float(v) for v in tuple(inv)[:6])
    qc = a * quads[:, :, 0] + b * quads[:, :, 1] + c
    qr = d * quads[:, :, 0] + e * quads[:, :, 1] + f
    # pixel coordinates stay below ~1e4 for a Landsat scene: no precision concern in the kernel
    n_rows, n_cols = int(shape[0]), int(shape[1])
    qc = np.ascontiguousarray(qc)
    qr = np.ascontiguousarray(qr)
    c0, c1, r0, r1, counts = _count_candidates(qc, qr, n_rows, n_cols)
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    pix = np.empty(offsets[-1], dtype=np.int64)
    wts = np.empty(offsets[-1], dtype=np.float64)
    _fill_coverage(qc, qr, n_cols, c0, c1, r0, r1, offsets, pix, wts)
    # each cell's candidate pixels come row by row, column by column: sorted and unique, so
    # the CSR arrays are the kernel's output without the zero-weight pixels (no COO sort)
    keep = wts > 0
    kept_before = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(keep, out=kept_before[1:])
    indptr = kept_before[offsets]  # kept entries before each cell's first candidate
    matrix = sp.csr_matrix((wts[keep], pix[keep], indptr), shape=(len(counts), n_rows * n_cols))
    x0, y0 = qc, qr
    x1, y1 = np.roll(x0, -1, axis=1), np.roll(y0, -1, axis=1)
    ref_x, ref_y = x0[:, :1], y0[:, :1]
    area = np.abs(((x0 - ref_x) * (y1 - ref_y) - (x1 - ref_x) * (y0 - ref_y)).sum(axis=1)) / 2
    return CoverageMatrix(matrix=matrix, shape=(n_rows, n_cols), cell_area_px=area)


class ZonalAccumulator:
    """Per-cell coverage-weighted sums of one variable, accumulated block by block.

    Holds sum w, sum w v, sum w (v - shift)^2 and min/max over valid pixels (w > 0), so a
    scene can be processed in row bands of bounded memory and same-day scenes can be merged
    by adding accumulators. A mean-only accumulator (``moments=False``, or a non-leading
    variable of an :func:`accumulator_set`) holds sum w and sum w v alone: its ``sum_wv2``,
    ``vmin`` and ``vmax`` are None and :meth:`result` gives ``mean`` and ``weight`` only.
    """

    def __init__(
        self,
        n_cells: int,
        shift: float = 0.0,
        *,
        moments: bool = True,
        _arrays: tuple[np.ndarray | None, ...] | None = None,
    ) -> None:
        self.n_cells = n_cells
        self.shift = float(shift)  # values are summed as v - shift: keeps squares well conditioned
        self.sum_wv2: np.ndarray | None
        self.vmin: np.ndarray | None
        self.vmax: np.ndarray | None
        if _arrays is not None:  # rows of an accumulator_set's stacked arrays (views)
            sum_w, sum_wv, self.sum_wv2, self.vmin, self.vmax = _arrays
            assert sum_w is not None and sum_wv is not None
            self.sum_w: np.ndarray = sum_w
            self.sum_wv: np.ndarray = sum_wv
            return
        self.sum_w = np.zeros(n_cells)
        self.sum_wv = np.zeros(n_cells)
        self.sum_wv2 = np.zeros(n_cells) if moments else None
        self.vmin = np.full(n_cells, np.inf) if moments else None
        self.vmax = np.full(n_cells, -np.inf) if moments else None

    @property
    def has_moments(self) -> bool:
        """Whether the accumulator keeps the squares and min/max (std, min and max in :meth:`result`)."""
        return self.sum_wv2 is not None

    def add(self, block: sp.csr_matrix, values: np.ndarray) -> None:
        """Add one block: ``block`` is cells x block-pixels, ``values`` the block's pixels
        (row-major, NaN = invalid)."""
        v = np.asarray(values, dtype=np.float64).ravel()
        ok = ~np.isnan(v)
        v0 = np.where(ok, v - self.shift, 0.0)
        okf = ok.astype(np.float64)
        self.sum_w += block @ okf
        self.sum_wv += block @ v0
        if self.sum_wv2 is not None and self.vmin is not None and self.vmax is not None:
            self.sum_wv2 += block @ (v0 * v0)
            if block.nnz:
                _minmax_update(block.indptr, block.indices, v, self.vmin, self.vmax)

    def _same_kind(self, other: ZonalAccumulator) -> None:
        if self.has_moments != other.has_moments:
            raise ValueError("cannot pool a mean-only accumulator with one that keeps moments")

    def merge(self, other: ZonalAccumulator) -> None:
        """Pool another accumulator of the same cells (e.g. a same-day scene) into this one."""
        self._same_kind(other)
        delta = other.shift - self.shift
        # re-centre the other's sums on this shift: sum w (v - s1)^2 = S2 + 2 d S1 + d^2 W
        if self.sum_wv2 is not None and other.sum_wv2 is not None:
            self.sum_wv2 += other.sum_wv2 + 2 * delta * other.sum_wv + delta * delta * other.sum_w
        self.sum_wv += other.sum_wv + delta * other.sum_w
        self.sum_w += other.sum_w
        if self.vmin is not None and other.vmin is not None:
            np.minimum(self.vmin, other.vmin, out=self.vmin)
        if self.vmax is not None and other.vmax is not None:
            np.maximum(self.vmax, other.vmax, out=self.vmax)

    def take(self, other: ZonalAccumulator, cells: np.ndarray) -> None:
        """Replace the sums of ``cells`` (bool mask) by ``other``'s (e.g. a better-covering scene)."""
        self._same_kind(other)
        delta = other.shift - self.shift
        self.sum_w[cells] = other.sum_w[cells]
        self.sum_wv[cells] = other.sum_wv[cells] + delta * other.sum_w[cells]
        if self.sum_wv2 is not None and other.sum_wv2 is not None:
            self.sum_wv2[cells] = (
                other.sum_wv2[cells] + 2 * delta * other.sum_wv[cells] + delta * delta * other.sum_w[cells]
            )
        if self.vmin is not None and other.vmin is not None:
            self.vmin[cells] = other.vmin[cells]
        if self.vmax is not None and other.vmax is not None:
            self.vmax[cells] = other.vmax[cells]

    def mean(self) -> np.ndarray:
        """The coverage-weighted mean per cell (NaN without a valid pixel): ``result()["mean"]``
        without the other statistics."""
        out = np.empty(self.n_cells)
        _means(self.sum_w, self.sum_wv, self.shift, out)
        return out

    def result(self) -> dict[str, np.ndarray]:
        """mean, std (population, coverage-weighted), min, max and the valid weight per cell
        (``mean`` and ``weight`` only for a mean-only accumulator)."""
        if self.sum_wv2 is None or self.vmin is None or self.vmax is None:
            return {"mean": self.mean(), "weight": self.sum_w.copy()}
        n = self.n_cells
        mean, std, vmin, vmax = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
        _statistics(self.sum_w, self.sum_wv, self.sum_wv2, self.vmin, self.vmax, self.shift, mean, std, vmin, vmax)
        return {"mean": mean, "std": std, "min": vmin, "max": vmax, "weight": self.sum_w.copy()}


# One pass per statistic over the (often strided: a column of an accumulator set) sums, with
# the arithmetic of the numpy expressions they replaced, bit for bit: mean = S1 / W + shift,
# var = S2 / W - (S1 / W)^2 clipped at 0, NaN where W = 0 (numpy: 4-6 passes and temporaries
# each; a solar day's columns took ~50 ms at 389k cells, issue 19).
@numba.njit(cache=True, nogil=True)
def _means(sum_w: np.ndarray, sum_wv: np.ndarray, shift: float, out: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in range(out.shape[0]):
        w = sum_w[i]
        out[i] = (sum_wv[i] / w if w > 0 else np.nan) + shift


@numba.njit(cache=True, nogil=True)
def _statistics(
    sum_w: np.ndarray, sum_wv: np.ndarray, sum_wv2: np.ndarray, lo: np.ndarray, hi: np.ndarray, shift: float,
    mean: np.ndarray, std: np.ndarray, vmin: np.ndarray, vmax: np.ndarray,
) -> None:  # pragma: no cover - compiled
    for i in range(mean.shape[0]):
        w = sum_w[i]
        if w > 0:
            m0 = sum_wv[i] / w
            var = sum_wv2[i] / w - m0 * m0
            mean[i] = m0 + shift
            std[i] = np.sqrt(var) if var > 0 else (0.0 if var <= 0 else np.nan)
        else:
            mean[i] = np.nan + shift
            std[i] = np.nan
        vmin[i] = lo[i] if np.isfinite(lo[i]) else np.nan
        vmax[i] = hi[i] if np.isfinite(hi[i]) else np.nan


@dataclass
class AccumulatorSet:
    """Accumulators of several variables over the same cells, stored as stacked rows so that
    :func:`add_block` updates all of them in one pass over the coverage matrix. The first
    ``moments`` variables also keep the squares and min/max; the others are mean-only."""

    accumulators: list[ZonalAccumulator]
    shifts: np.ndarray
    sum_w: np.ndarray  # (variables, cells), as sum_wv: each accumulator's sums contiguous
    sum_wv: np.ndarray
    sum_wv2: np.ndarray  # (moments, cells), as vmin and vmax
    vmin: np.ndarray
    vmax: np.ndarray

    @property
    def moments(self) -> int:
        return int(self.sum_wv2.shape[0])

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The five stacked arrays behind the accumulators (to give back to a pool)."""
        return (self.sum_w, self.sum_wv, self.sum_wv2, self.vmin, self.vmax)


def accumulator_set(
    n_cells: int, shifts: list[float], *, moments: int | None = None, pool: ArrayPool | None = None
) -> AccumulatorSet:
    """One :class:`ZonalAccumulator` per shift, backed by shared (variables, cells) arrays
    (each accumulator's arrays are row views: contiguous, so its means take one pass).

    ``moments`` (default: all) is how many leading variables keep the squares and min/max
    (std, min, max); the rest are mean-only, which halves the memory of a scene's set when
    only one variable needs its spread (compute: LST). ``pool``: take the arrays from it
    (and give them back with :meth:`AccumulatorSet.arrays` once the sums are read).
    """
    k = len(shifts)
    m = k if moments is None else int(moments)
    if not 0 <= m <= k:
        raise ValueError(f"moments must be in 0..{k}, got {moments}")
    if pool is None:
        sum_w, sum_wv = np.zeros((k, n_cells)), np.zeros((k, n_cells))
        sum_wv2 = np.zeros((m, n_cells))
        vmin, vmax = np.full((m, n_cells), np.inf), np.full((m, n_cells), -np.inf)
    else:
        sum_w, sum_wv = pool.take((k, n_cells), np.float64), pool.take((k, n_cells), np.float64)
        sum_wv2, vmin, vmax = (pool.take((m, n_cells), np.float64) for _ in range(3))
        for arr, start in ((sum_w, 0.0), (sum_wv, 0.0), (sum_wv2, 0.0), (vmin, np.inf), (vmax, -np.inf)):
            arr.fill(start)
    accs = [
        ZonalAccumulator(
            n_cells, shift,
            _arrays=(sum_w[j], sum_wv[j], *((sum_wv2[j], vmin[j], vmax[j]) if j < m else (None,) * 3)),
        )
        for j, shift in enumerate(shifts)
    ]
    return AccumulatorSet(accs, np.array([a.shift for a in accs]), sum_w, sum_wv, sum_wv2, vmin, vmax)


def add_block(accs: AccumulatorSet, block: sp.csr_matrix, values: np.ndarray) -> None:
    """Add one block to every accumulator of the set: ``values`` is (block pixels, variables),
    pixels row-major, NaN = invalid.

    The same sums as :meth:`ZonalAccumulator.add` per variable, bit for bit (each cell's block
    sums start from 0 and add w x value in the matrix's entry order, as scipy's CSR product
    does, then join the running sum), in one pass over the matrix instead of three sparse
    products and a min/max pass per variable: 8 variables took ~25 % of the compute stage on
    the 30 km demo city that way (issue 19). Pixel-major values keep a pixel's variables in
    one cache line. Compute's layout (8 variables, moments for the first) has a kernel of its
    own with the variables unrolled, its sums in registers: on a scene of the 30 km city (2.7M
    coverage entries) 29 ms against 96 ms for the general kernel with moments for all eight.
    """
    vals = np.asarray(values)
    k = len(accs.accumulators)
    if vals.ndim != 2 or vals.shape[1] != k or vals.shape[0] != block.shape[1]:
        raise ValueError(f"values of shape {vals.shape} for {block.shape[1]} pixels x {k} variables")
    if block.nnz == 0:
        return
    if k == 8 and accs.moments == 1 and vals.dtype == np.float32:
        _add_block_8_1(
            block.indptr, block.indices, block.data, vals, accs.shifts,
            accs.sum_w, accs.sum_wv, accs.sum_wv2, accs.vmin, accs.vmax,
        )
        return
    _add_block(
        block.indptr, block.indices, block.data, vals, accs.shifts,
        accs.sum_w, accs.sum_wv, accs.sum_wv2, accs.vmin, accs.vmax,
    )


@numba.njit(cache=True, nogil=True)
def _add_block(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, values: np.ndarray, shifts: np.ndarray,
    sum_w: np.ndarray, sum_wv: np.ndarray, sum_wv2: np.ndarray, vmin: np.ndarray, vmax: np.ndarray,
) -> None:  # pragma: no cover - compiled
    k = values.shape[1]
    m = sum_wv2.shape[0]
    s_w = np.empty(k)
    s_wv = np.empty(k)
    s_wv2 = np.empty(m)
    lo = np.empty(m)
    hi = np.empty(m)
    for i in range(len(indptr) - 1):
        first = indptr[i]
        last = indptr[i + 1]
        if first == last:
            continue
        for j in range(k):
            s_w[j] = 0.0
            s_wv[j] = 0.0
        for j in range(m):
            s_wv2[j] = 0.0
            lo[j] = vmin[j, i]
            hi[j] = vmax[j, i]
        for e in range(first, last):
            w = data[e]
            p = indices[e]
            for j in range(k):
                x = np.float64(values[p, j])
                # an invalid pixel adds w x 0 = +0 in the sparse products: no change to a sum
                # that started at +0, so it is skipped here
                if x == x:  # not NaN
                    v0 = x - shifts[j]
                    s_w[j] += w
                    s_wv[j] += w * v0
                    if j < m:
                        s_wv2[j] += w * (v0 * v0)
                        if x < lo[j]:
                            lo[j] = x
                        if x > hi[j]:
                            hi[j] = x
        for j in range(k):
            sum_w[j, i] += s_w[j]
            sum_wv[j, i] += s_wv[j]
        for j in range(m):
            sum_wv2[j, i] += s_wv2[j]
            vmin[j, i] = lo[j]
            vmax[j, i] = hi[j]


@numba.njit(cache=True, nogil=True)
def _add_block_8_1(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, values: np.ndarray, shifts: np.ndarray,
    sum_w: np.ndarray, sum_wv: np.ndarray, sum_wv2: np.ndarray, vmin: np.ndarray, vmax: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """:func:`_add_block` for 8 float32 variables, moments for the first: the same additions in
    the same order, each variable's sums in scalars."""
    c0, c1, c2, c3 = shifts[0], shifts[1], shifts[2], shifts[3]
    c4, c5, c6, c7 = shifts[4], shifts[5], shifts[6], shifts[7]
    for i in range(len(indptr) - 1):
        first = indptr[i]
        last = indptr[i + 1]
        if first == last:
            continue
        w0 = w1 = w2 = w3 = w4 = w5 = w6 = w7 = 0.0
        v0 = v1 = v2 = v3 = v4 = v5 = v6 = v7 = 0.0
        q0 = 0.0
        lo = vmin[0, i]
        hi = vmax[0, i]
        for e in range(first, last):
            w = data[e]
            p = indices[e]
            x = np.float64(values[p, 0])
            if x == x:
                d = x - c0
                w0 += w
                v0 += w * d
                q0 += w * (d * d)
                if x < lo:
                    lo = x
                if x > hi:
                    hi = x
            x = np.float64(values[p, 1])
            if x == x:
                w1 += w
                v1 += w * (x - c1)
            x = np.float64(values[p, 2])
            if x == x:
                w2 += w
                v2 += w * (x - c2)
            x = np.float64(values[p, 3])
            if x == x:
                w3 += w
                v3 += w * (x - c3)
            x = np.float64(values[p, 4])
            if x == x:
                w4 += w
                v4 += w * (x - c4)
            x = np.float64(values[p, 5])
            if x == x:
                w5 += w
                v5 += w * (x - c5)
            x = np.float64(values[p, 6])
            if x == x:
                w6 += w
                v6 += w * (x - c6)
            x = np.float64(values[p, 7])
            if x == x:
                w7 += w
                v7 += w * (x - c7)
        sum_w[0, i] += w0
        sum_w[1, i] += w1
        sum_w[2, i] += w2
        sum_w[3, i] += w3
        sum_w[4, i] += w4
        sum_w[5, i] += w5
        sum_w[6, i] += w6
        sum_w[7, i] += w7
        sum_wv[0, i] += v0
        sum_wv[1, i] += v1
        sum_wv[2, i] += v2
        sum_wv[3, i] += v3
        sum_wv[4, i] += v4
        sum_wv[5, i] += v5
        sum_wv[6, i] += v6
        sum_wv[7, i] += v7
        sum_wv2[0, i] += q0
        vmin[0, i] = lo
        vmax[0, i] = hi


@numba.njit(cache=True)
def _minmax_update(
    indptr: np.ndarray, indices: np.ndarray, v: np.ndarray, vmin: np.ndarray, vmax: np.ndarray
) -> None:
    for i in range(len(indptr) - 1):
        lo = vmin[i]
        hi = vmax[i]
        for k in range(indptr[i], indptr[i + 1]):
            x = v[indices[k]]
            if x == x:  # not NaN
                if x < lo:
                    lo = x
                if x > hi:
                    hi = x
        vmin[i] = lo
        vmax[i] = hi


def zonal_stats(coverage: CoverageMatrix, raster: np.ndarray) -> dict[str, np.ndarray]:
    """Coverage-weighted mean, std, min, max and valid share per cell of one 2-D raster.

    Parameters
    ----------
    coverage
        The grid's coverage matrix (built once, reused for every band and scene).
    raster
        2-D float array on the same grid; NaN marks invalid pixels.

    Returns
    -------
    dict
        ``mean std min max`` (NaN where a cell has no valid pixel), ``valid_share`` in [0, 1]
        (valid covered area / cell area) and ``sum`` (sum of w v, which conserves the raster
        total when the cells tile the raster).
    """
    arr = np.asarray(raster)
    if arr.shape != coverage.shape:
        raise ValueError(f"raster shape {arr.shape} does not match the grid {coverage.shape}")
    acc = ZonalAccumulator(coverage.n_cells)
    acc.add(coverage.matrix, arr.ravel())
    out = acc.result()
    out["valid_share"] = np.clip(out["weight"] / coverage.cell_area_px, 0.0, 1.0)
    out["sum"] = acc.sum_wv
    return out


def zonal_means(coverage: CoverageMatrix, raster: np.ndarray) -> np.ndarray:
    """Coverage-weighted mean per cell of one 2-D raster (NaN = invalid): two sparse products.

    The fast path when only means are needed (e.g. many bands of many scenes on one grid).
    """
    v = np.asarray(raster, dtype=np.float64).ravel()
    if v.size != coverage.shape[0] * coverage.shape[1]:
        raise ValueError(f"raster shape {np.shape(raster)} does not match the grid {coverage.shape}")
    ok = ~np.isnan(v)
    w_valid = coverage.matrix @ ok.astype(np.float64)
    w_sum = coverage.matrix @ np.where(ok, v, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(w_valid > 0, w_sum / w_valid, np.nan)

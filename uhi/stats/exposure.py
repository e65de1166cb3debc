"""Population exposure to heat: counts onto cells, cells into zones, disparity and concentration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

__all__ = [
    "AreaSplit",
    "raster_counts_per_cell",
    "split_polygons",
    "intersection_areas",
    "assign_zones",
    "zone_table",
    "hottest_quintile",
    "representation_ratios",
    "fractional_rank",
    "concentration_index",
    "band_counts",
]


def raster_counts_per_cell(coverage_matrix: Any, counts: np.ndarray) -> np.ndarray:
    """Per-cell sum of a count raster weighted by coverage (exactextract's ``sum``).

    Parameters
    ----------
    coverage_matrix
        Cells x pixels sparse matrix of coverage fractions (``uhi.grid.zonal.build_coverage``):
        entry (c, p) is the share of pixel p that lies inside cell c.
    counts
        The raster's pixels, row-major, people per pixel; NaN marks nodata (counted as 0,
        as exactextract skips nodata pixels).

    Returns
    -------
    numpy.ndarray
        sum over pixels of coverage x count, one value per cell. When the cells tile the
        raster the values add up to the raster total (each pixel's fractions sum to 1).
    """
    v = np.asarray(counts, dtype=np.float64).ravel()
    v = np.where(np.isnan(v), 0.0, v)
    return np.asarray(coverage_matrix @ v, dtype=np.float64)


@dataclass(frozen=True)
class AreaSplit:
    """Counts of polygons spread over cells.

    Attributes
    ----------
    per_cell
        (cells, k) counts assigned to each cell.
    share_in_cells
        (polygons,) share of each polygon's count that landed on the cells (1 when the polygon
        lies inside the grid; the rest of a polygon reaching beyond the grid is not placed).
    method
        (polygons,) 'floor_area', 'area' (no floor area under the polygon, or no density
        given) or 'none' (the polygon does not touch the grid).
    """

    per_cell: np.ndarray
    share_in_cells: np.ndarray
    method: np.ndarray


def split_polygons(
    cell_quads: np.ndarray,
    polygon_geoms: Any,
    counts: np.ndarray,
    *,
    density: np.ndarray | None = None,
) -> AreaSplit:
    """Spread the counts of polygons over cells by area, or by a density (dasymetric).

    Parameters
    ----------
    cell_quads
        (cells, 4, 2) corners of the cells (convex quadrilaterals that do not overlap), in
        the polygons' projected CRS (metres).
    polygon_geoms
        Shapely (multi)polygons, holes allowed.
    counts
        (polygons,) or (polygons, k) non-negative counts.
    density
        Optional (cells,) non-negative weight per unit area of each cell, e.g. building floor
        area per m2. A polygon's count then goes to its part of each cell in proportion to
        intersection area x density; where the density is zero over the whole polygon, by
        intersection area alone.

    Returns
    -------
    AreaSplit
        A polygon that lies partly outside the grid keeps only the share of its count that
        matches the share of its area over cells (the rest cannot be placed), so the cells'
        total equals sum(count x share_in_cells): exactly the total when all polygons are
        covered.
    """
    import shapely

    polys = np.asarray(polygon_geoms, dtype=object)
    c = np.asarray(counts, dtype=np.float64)
    one_d = c.ndim == 1
    c2 = c.reshape(len(polys), -1)
    p_idx, c_idx, inter = intersection_areas(cell_quads, polys)
    poly_area = shapely.area(polys)
    n_p, n_c = len(polys), len(cell_quads)
    covered = np.bincount(p_idx, weights=inter, minlength=n_p)
    with np.errstate(invalid="ignore", divide="ignore"):
        share_in = np.where(poly_area > 0, np.minimum(covered / poly_area, 1.0), 0.0)
    weight = inter.copy()
    method = np.where(covered > 0, "area", "none").astype(object)
    if density is not None:
        d = np.asarray(density, dtype=np.float64)
        dw = inter * np.where(np.isfinite(d), d, 0.0)[c_idx]
        dsum = np.bincount(p_idx, weights=dw, minlength=n_p)
        use = dsum[p_idx] > 0
        weight = np.where(use, dw, inter)
        method[(dsum > 0)] = "floor_area"
    wsum = np.bincount(p_idx, weights=weight, minlength=n_p)
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(wsum[p_idx] > 0, weight / wsum[p_idx], 0.0) * share_in[p_idx]
    per_cell = np.zeros((n_c, c2.shape[1]), dtype=np.float64)
    for j in range(c2.shape[1]):
        per_cell[:, j] = np.bincount(c_idx, weights=frac * c2[p_idx, j], minlength=n_c)
    return AreaSplit(per_cell=per_cell[:, 0] if one_d else per_cell, share_in_cells=share_in, method=method)


def intersection_areas(cell_quads: np.ndarray, polygon_geoms: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Areas of every (polygon, cell) overlap, for cells that are convex quadrilaterals.

    ``cell_quads`` is (cells, 4, 2) corners in the polygons' projected CRS (either winding).

    Each ring of each polygon is clipped against the cell's four edges (Sutherland-Hodgman,
    which is exact in area for any simple subject ring against a convex window); holes are
    subtracted. Non-polygon parts (lines or points left by ``make_valid``) have no area and are
    ignored. A GEOS intersection per pair gives the same areas (tested) but took 14 s for only
    the boundary pairs of bench_exposure, against ~1 s for every pair here.

    Returns
    -------
    poly_index, cell_index, area
        Pairs with a positive overlap and its area, in the geometries' (projected) units.
    """
    import shapely

    quads = np.asarray(cell_quads, dtype=np.float64)
    polys = np.asarray(polygon_geoms, dtype=object)
    empty = (np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64))
    if quads.ndim != 3 or quads.shape[1:] != (4, 2):
        raise ValueError(f"expected (n, 4, 2) cell corners, got shape {quads.shape}")
    if not len(quads) or not len(polys):
        return empty
    # counter-clockwise corners so that "inside" is left of every edge
    signed = 0.5 * ((quads[:, :, 0] * np.roll(quads[:, :, 1], -1, axis=1)) - (np.roll(quads[:, :, 0], -1, axis=1) * quads[:, :, 1])).sum(axis=1)
    quads = np.where((signed < 0)[:, None, None], quads[:, ::-1], quads)
    # rings of every polygon part: exterior +1, holes -1
    parts, part_of = shapely.get_parts(polys, return_index=True)
    areal = (shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)
    parts, part_of = parts[areal], part_of[areal]
    if not len(parts):
        return empty
    rings, ring_of_part = shapely.get_rings(parts, return_index=True)
    is_ext = np.concatenate([[True], ring_of_part[1:] != ring_of_part[:-1]]) if len(rings) else np.zeros(0, bool)
    ring_poly = part_of[ring_of_part]
    ring_sign = np.where(is_ext, 1.0, -1.0)
    coords, ring_id = shapely.get_coordinates(rings, return_index=True)
    ring_n = np.bincount(ring_id, minlength=len(rings))
    ring_start = np.concatenate([[0], np.cumsum(ring_n)[:-1]])
    lo, hi = quads.min(axis=1), quads.max(axis=1)
    tree = shapely.STRtree(shapely.box(lo[:, 0], lo[:, 1], hi[:, 0], hi[:, 1]))
    p_idx, c_idx = tree.query(polys)  # bounding boxes; the clip gives 0 where they do not overlap
    if not p_idx.size:
        return empty
    # expand (polygon, cell) pairs to (ring, cell) pairs
    order = np.argsort(ring_poly, kind="stable")
    first = np.searchsorted(ring_poly[order], np.arange(len(polys)))
    last = np.searchsorted(ring_poly[order], np.arange(len(polys)), side="right")
    per_pair = (last - first)[p_idx]
    pair_of = np.repeat(np.arange(p_idx.size), per_pair)
    offs = np.arange(pair_of.size) - np.repeat(np.cumsum(per_pair) - per_pair, per_pair)
    ring_sel = order[first[p_idx][pair_of] + offs]
    box = np.column_stack([np.minimum.reduceat(coords[:, 0], ring_start), np.minimum.reduceat(coords[:, 1], ring_start),
                           np.maximum.reduceat(coords[:, 0], ring_start), np.maximum.reduceat(coords[:, 1], ring_start)])
    areas = _clip_rings(coords[:, 0].copy(), coords[:, 1].copy(), ring_start, ring_n, box, ring_sel,
                        c_idx[pair_of], np.ascontiguousarray(quads))
    pair_area = np.bincount(pair_of, weights=areas * ring_sign[ring_sel], minlength=p_idx.size)
    keep = pair_area > 0
    return p_idx[keep], c_idx[keep], pair_area[keep]


@numba.njit(cache=True, parallel=True)
def _clip_rings(
    xs: np.ndarray, ys: np.ndarray, start: np.ndarray, n: np.ndarray, box: np.ndarray,
    ring_sel: np.ndarray, cell_sel: np.ndarray, quads: np.ndarray,
) -> np.ndarray:
    m = ring_sel.size
    out = np.zeros(m)
    for k in numba.prange(m):
        r = ring_sel[k]
        q = quads[cell_sel[k]]
        # a hole or another part of the polygon may lie away from this cell
        if (box[r, 2] < q[:, 0].min() or box[r, 0] > q[:, 0].max()
                or box[r, 3] < q[:, 1].min() or box[r, 1] > q[:, 1].max()):
            continue
        s0 = start[r]
        cnt = n[r] - 1  # drop the closing point
        # clipping by a half-plane adds at most one vertex per two input vertices: x1.5 per edge
        cap = 6 * cnt + 16
        ax = np.empty(cap)
        ay = np.empty(cap)
        bx = np.empty(cap)
        by = np.empty(cap)
        for i in range(cnt):
            ax[i] = xs[s0 + i]
            ay[i] = ys[s0 + i]
        # shift to the cell's first corner: UTM coordinates (~5e6 m) would cancel digits
        ox, oy = q[0, 0], q[0, 1]
        for i in range(cnt):
            ax[i] -= ox
            ay[i] -= oy
        for e in range(4):
            ex0, ey0 = q[e, 0] - ox, q[e, 1] - oy
            ex1, ey1 = q[(e + 1) % 4, 0] - ox, q[(e + 1) % 4, 1] - oy
            dx, dy = ex1 - ex0, ey1 - ey0
            mm = 0
            for i in range(cnt):
                j = (i + 1) % cnt
                si = dx * (ay[i] - ey0) - dy * (ax[i] - ex0)
                sj = dx * (ay[j] - ey0) - dy * (ax[j] - ex0)
                if si >= 0:
                    bx[mm] = ax[i]
                    by[mm] = ay[i]
                    mm += 1
                if (si >= 0) != (sj >= 0):
                    t = si / (si - sj)
                    bx[mm] = ax[i] + t * (ax[j] - ax[i])
                    by[mm] = ay[i] + t * (ay[j] - ay[i])
                    mm += 1
            cnt = mm
            for i in range(cnt):
                ax[i] = bx[i]
                ay[i] = by[i]
            if cnt < 3:
                cnt = 0
                break
        a = 0.0
        for i in range(cnt):
            j = (i + 1) % cnt
            a += ax[i] * ay[j] - ax[j] * ay[i]
        out[k] = abs(a) * 0.5
    return out


def assign_zones(x: np.ndarray, y: np.ndarray, zone_geoms: Any) -> np.ndarray:
    """Index of the zone containing each point (cell centroid), -1 when none.

    A point on a shared border (or in overlapping zones) goes to the zone listed first.
    """
    import shapely

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    out = np.full(len(x), -1, dtype=np.int64)
    zones = np.asarray(zone_geoms, dtype=object)
    if not len(zones) or not len(x):
        return out
    # candidates by bounding box, then GEOS's prepared point-in-polygon test (boundary included,
    # as `intersects`): 389k centroids in 9 zones of ~840 vertices, 0.8 s instead of 5.6 s with
    # the tree's unprepared predicate. The zones are copied so the caller's are not prepared.
    zones = shapely.from_wkb(shapely.to_wkb(zones))
    shapely.prepare(zones)
    p_idx, z_idx = shapely.STRtree(zones).query(shapely.points(x, y))
    inside = shapely.intersects_xy(zones[z_idx], x[p_idx], y[p_idx])
    p_idx, z_idx = p_idx[inside], z_idx[inside]
    # reversed order: the first-listed zone is written last and wins
    order = np.lexsort((-z_idx, p_idx))
    out[p_idx[order]] = z_idx[order]
    return out


def _wmean(values: np.ndarray, weights: np.ndarray, groups: np.ndarray, n: int) -> np.ndarray:
    """Per-group sum(w v) / sum(w) over entries with a finite value and w > 0 (NaN if none)."""
    ok = np.isfinite(values) & np.isfinite(weights)
    w = np.where(ok, weights, 0.0)
    num = np.bincount(groups, weights=np.where(ok, w * np.where(ok, values, 0.0), 0.0), minlength=n)
    den = np.bincount(groups, weights=w, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def zone_table(
    cells: Any,
    n_zones: int,
    *,
    groups: Sequence[str] = (),
    threshold_c: float,
) -> Any:
    """Per-zone exposure figures from per-cell values (definitions in docs/exposure.md).

    Parameters
    ----------
    cells
        pandas DataFrame, one row per cell: ``zone_index`` (0..n_zones-1, -1 = no zone),
        ``area_m2``, ``population`` and each group (counts, NaN = unknown), ``lst_c``,
        ``anomaly_c``, ``ndvi``, ``site_coverage`` (NaN = no value), ``gi_class``
        (float, NaN = no Gi* value).
    n_zones
        Number of zones (rows of the result, in zone order).
    groups
        Group count columns.
    threshold_c
        LST threshold for ``people_above_threshold``.

    Returns
    -------
    pandas.DataFrame
        One row per zone, in zone order, without identifiers (the caller adds them).
    """
    import pandas as pd

    z = cells["zone_index"].to_numpy()
    keep = z >= 0
    zi = z[keep]

    def col(name: str) -> np.ndarray:
        return np.asarray(cells[name].to_numpy(dtype=np.float64))[keep]

    area = col("area_m2")
    pop = np.nan_to_num(col("population"), nan=0.0)
    lst = col("lst_c")
    gi = col("gi_class")
    has_lst = np.isfinite(lst)
    hot95 = np.isfinite(gi) & (gi >= 2)
    hot99 = np.isfinite(gi) & (gi >= 3)
    out: dict[str, Any] = {}
    out["cells"] = np.bincount(zi, minlength=n_zones).astype(np.int64)
    out["cell_area_km2"] = np.bincount(zi, weights=area, minlength=n_zones) / 1e6
    out["population"] = np.bincount(zi, weights=pop, minlength=n_zones)
    for g in groups:
        out[g] = np.bincount(zi, weights=np.nan_to_num(col(g), nan=0.0), minlength=n_zones)
    out["lst_mean_c"] = _wmean(lst, area, zi, n_zones)
    out["lst_pop_mean_c"] = _wmean(lst, pop, zi, n_zones)
    out["anomaly_mean_c"] = _wmean(col("anomaly_c"), area, zi, n_zones)
    out["anomaly_pop_mean_c"] = _wmean(col("anomaly_c"), pop, zi, n_zones)
    out["people_no_lst"] = np.bincount(zi, weights=np.where(has_lst, 0.0, pop), minlength=n_zones)
    area_sum = np.bincount(zi, weights=area, minlength=n_zones)
    with np.errstate(invalid="ignore", divide="ignore"):
        for tag, mask in (("95", hot95), ("99", hot99)):
            a = np.bincount(zi, weights=np.where(mask, area, 0.0), minlength=n_zones)
            p = np.bincount(zi, weights=np.where(mask, pop, 0.0), minlength=n_zones)
            out[f"share_area_hot_{tag}"] = np.where(area_sum > 0, a / area_sum, np.nan)
            out[f"people_hot_{tag}"] = p
            out[f"share_people_hot_{tag}"] = np.where(out["population"] > 0, p / out["population"], np.nan)
    above = has_lst & (np.where(has_lst, lst, -np.inf) > threshold_c)
    out["people_above_threshold"] = np.bincount(zi, weights=np.where(above, pop, 0.0), minlength=n_zones)
    out["ndvi_mean"] = _wmean(col("ndvi"), area, zi, n_zones)
    out["site_coverage_mean"] = _wmean(col("site_coverage"), area, zi, n_zones)
    table = pd.DataFrame(out)
    # rank 1 = hottest for residents; zones without people or without LST get no rank
    table["rank"] = table["lst_pop_mean_c"].rank(ascending=False, method="min").astype("Int64")
    return table


def hottest_quintile(values: np.ndarray) -> np.ndarray:
    """Boolean mask of the hottest fifth of the units with a value (by count of units).

    Units at or above the 80th percentile (numpy's linear interpolation) of the finite
    values; NaN units are never in it.
    """
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    out = np.zeros(v.shape, dtype=bool)
    if ok.any():
        cut = np.quantile(v[ok], 0.8)
        out[ok] = v[ok] >= cut
    return out


def representation_ratios(
    in_hot: np.ndarray, population: np.ndarray, groups: Mapping[str, np.ndarray], valid: np.ndarray
) -> dict[str, float]:
    """Each group's share in the hot units divided by its share of the whole (1 = no disparity).

    ratio_g = (G_hot / P_hot) / (G / P), sums over the ``valid`` units only (those with a
    temperature): the over- or under-representation of a group among the people in the heat.
    """
    pop = np.nan_to_num(np.asarray(population, dtype=np.float64), nan=0.0)
    v = np.asarray(valid, dtype=bool)
    hot = np.asarray(in_hot, dtype=bool) & v
    p_all, p_hot = pop[v].sum(), pop[hot].sum()
    out: dict[str, float] = {}
    for name, g in groups.items():
        gv = np.nan_to_num(np.asarray(g, dtype=np.float64), nan=0.0)
        g_all, g_hot = gv[v].sum(), gv[hot].sum()
        if p_all > 0 and p_hot > 0 and g_all > 0:
            out[name] = float((g_hot / p_hot) / (g_all / p_all))
        else:
            out[name] = float("nan")
    return out


def fractional_rank(rank_by: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted fractional rank in (0, 1): the population share below a unit plus half its own.

    Ties share the mean rank of their block, so units with the same ranking value (e.g.
    cells of one zone) are not ordered arbitrarily.
    """
    r = np.asarray(rank_by, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    order = np.argsort(r, kind="stable")
    ws = w[order]
    total = ws.sum()
    below = np.concatenate([[0.0], np.cumsum(ws)[:-1]])
    rs = r[order]
    # blocks of ties: the block's rank is (weight below the block + half the block's weight)
    starts = np.flatnonzero(np.concatenate([[True], rs[1:] != rs[:-1]]))
    block_w = np.add.reduceat(ws, starts)
    block_rank = (below[starts] + block_w / 2) / total
    sizes = np.diff(np.append(starts, len(rs)))
    out = np.empty_like(r)
    out[order] = np.repeat(block_rank, sizes)
    return out


def concentration_index(heat: np.ndarray, rank_by: np.ndarray, weights: np.ndarray) -> float:
    """Generalized concentration index of ``heat`` over ``rank_by``, population-weighted.

    GC = 2 cov_w(h, R), R the weighted fractional rank by ``rank_by`` (O'Donnell, van Doorslaer,
    Wagstaff & Lindelow 2008, *Analyzing Health Equity Using Household Survey Data*, ch. 8:
    the generalized index is the mean times the relative index). It is in the units of ``heat``
    (degC) and, unlike the relative index, does not change when the temperature's zero moves
    (degC vs K). Negative: heat is concentrated among the low-ranked (e.g. low income).
    Units with a NaN heat, rank or weight, or zero weight, are left out.
    """
    h = np.asarray(heat, dtype=np.float64)
    r = np.asarray(rank_by, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    ok = np.isfinite(h) & np.isfinite(r) & np.isfinite(w) & (w > 0)
    if ok.sum() < 2:
        return float("nan")
    h, r, w = h[ok], r[ok], w[ok]
    rank = fractional_rank(r, w)
    total = w.sum()
    mu = (w * h).sum() / total
    return float(2.0 * (w * (h - mu) * (rank - 0.5)).sum() / total)


def band_counts(lst: np.ndarray, population: np.ndarray, width_c: float) -> Any:
    """People per LST band of ``width_c`` degrees (bands [lo, lo + width)), plus no-LST people.

    Returns a pandas DataFrame with ``band_low_c``, ``band_high_c``, ``label``, ``population``;
    the last row (NaN limits, label 'no land temperature') holds cells without an LST.
    """
    import pandas as pd

    v = np.asarray(lst, dtype=np.float64)
    pop = np.nan_to_num(np.asarray(population, dtype=np.float64), nan=0.0)
    ok = np.isfinite(v)
    rows = []
    if ok.any():
        lo = np.floor(v[ok].min() / width_c) * width_c
        idx = np.floor((v[ok] - lo) / width_c).astype(np.int64)
        sums = np.bincount(idx, weights=pop[ok])
        for i, s in enumerate(sums):
            a = lo + i * width_c
            rows.append({"band_low_c": a, "band_high_c": a + width_c, "label": f"{a:g}-{a + width_c:g}", "population": float(s)})
    rows.append({"band_low_c": np.nan, "band_high_c": np.nan, "label": "no land temperature", "population": float(pop[~ok].sum())})
    return pd.DataFrame(rows)

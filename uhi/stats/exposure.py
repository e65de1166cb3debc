"""Population exposure to heat: counts onto cells, cells into zones, disparity and concentration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "AreaSplit",
    "raster_counts_per_cell",
    "split_polygons",
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
    cell_geoms: Any,
    polygon_geoms: Any,
    counts: np.ndarray,
    *,
    density: np.ndarray | None = None,
) -> AreaSplit:
    """Spread the counts of polygons over cells by area, or by a density (dasymetric).

    Parameters
    ----------
    cell_geoms, polygon_geoms
        Shapely polygons in one projected CRS (metres); cells must not overlap.
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

    cells = np.asarray(cell_geoms, dtype=object)
    polys = np.asarray(polygon_geoms, dtype=object)
    c = np.asarray(counts, dtype=np.float64)
    one_d = c.ndim == 1
    c2 = c.reshape(len(polys), -1)
    tree = shapely.STRtree(cells)
    p_idx, c_idx = tree.query(polys, predicate="intersects")
    inter = np.empty(p_idx.size, dtype=np.float64)
    if p_idx.size:
        # a cell wholly inside a polygon (most pairs) needs no intersection: its own area;
        # only the cells on polygon boundaries are clipped
        shapely.prepare(polys)
        inside = shapely.contains_properly(polys[p_idx], cells[c_idx])
        inter[inside] = shapely.area(cells[c_idx[inside]])
        edge = ~inside
        if edge.any():
            inter[edge] = shapely.area(shapely.intersection(polys[p_idx[edge]], cells[c_idx[edge]]))
    poly_area = shapely.area(polys)
    n_p, n_c = len(polys), len(cells)
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


def assign_zones(x: np.ndarray, y: np.ndarray, zone_geoms: Any) -> np.ndarray:
    """Index of the zone containing each point (cell centroid), -1 when none.

    A point on a shared border (or in overlapping zones) goes to the zone listed first.
    """
    import shapely

    pts = shapely.points(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
    zones = np.asarray(zone_geoms, dtype=object)
    out = np.full(len(pts), -1, dtype=np.int64)
    if not len(zones) or not len(pts):
        return out
    tree = shapely.STRtree(zones)
    p_idx, z_idx = tree.query(pts, predicate="intersects")
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

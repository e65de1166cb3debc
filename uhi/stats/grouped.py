"""Grouped means computed the way pandas computes them, on arrays already laid out by group."""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd

__all__ = ["cell_year_means", "compensated_column_means", "grouped_means"]


@numba.njit(cache=True)
def compensated_column_means(values: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Column means of (rows, columns), NaN skipped, NaN for an empty column: Kahan-compensated
    sums in row order, as pandas' cython ``group_mean`` (2.x) computes a grouped mean."""
    rows, cols = values.shape
    sumx = np.zeros(cols)
    comp = np.zeros(cols)
    nobs = np.zeros(cols, np.int64)
    for i in range(rows):  # row by row: the columns are contiguous
        for j in range(cols):
            val = values[i, j]
            if val == val:
                nobs[j] += 1
                y = val - comp[j]
                t = sumx[j] + y
                c = t - sumx[j] - y
                if c != c:  # an infinite value: pandas resets the compensation (GH 50367)
                    c = 0.0
                comp[j] = c
                sumx[j] = t
    out = np.empty(cols)
    for j in range(cols):
        out[j] = sumx[j] / nobs[j] if nobs[j] > 0 else np.nan
    return out


@numba.njit(cache=True)
def _grouped_kahan_means(labels: np.ndarray, n_groups: int, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Per group, the NaN-skipping mean of ``values`` and the number of rows (NaN or not).

    The same arithmetic, in the same row order, as pandas' cython ``group_mean`` (2.x), so the
    means are bit-identical to ``DataFrame.groupby(...).mean()``; a label below 0 is no group.
    """
    sumx = np.zeros(n_groups)
    comp = np.zeros(n_groups)
    nobs = np.zeros(n_groups, np.int64)
    rows = np.zeros(n_groups, np.int64)
    for i in range(labels.shape[0]):
        g = labels[i]
        if g < 0:
            continue
        rows[g] += 1
        val = values[i]
        if val == val:
            nobs[g] += 1
            y = val - comp[g]
            t = sumx[g] + y
            c = t - sumx[g] - y
            if c != c:  # an infinite value: pandas resets the compensation (GH 50367)
                c = 0.0
            comp[g] = c
            sumx[g] = t
    out = np.empty(n_groups)
    for g in range(n_groups):
        out[g] = sumx[g] / nobs[g] if nobs[g] > 0 else np.nan
    return out, rows


def grouped_means(labels: np.ndarray, n_groups: int, columns: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Means per group label (0..n_groups-1) of each float column, for the groups with rows.

    Returns the labels that have at least one row, ascending, and each column's means for them:
    what ``groupby(keys, sort=True, observed=True).mean()`` gives when ``labels`` enumerate the
    keys in their sort order. One pass per column, no sort (the 30 km panel, 16M rows x 4
    columns: pandas' categorical groupby 6.1 s, this ~0.3 s).
    """
    labels = np.ascontiguousarray(labels, dtype=np.int64)
    present: np.ndarray | None = None
    means: dict[str, np.ndarray] = {}
    for name, values in columns.items():
        out, rows = _grouped_kahan_means(labels, int(n_groups), np.ascontiguousarray(values, dtype=np.float64))
        if present is None:
            present = np.flatnonzero(rows > 0)
        means[name] = out[present]
    if present is None:
        present = np.flatnonzero(np.bincount(labels[labels >= 0], minlength=int(n_groups)) > 0)
    return present, means


def cell_year_means(cell: pd.Series, year: np.ndarray, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per (cell, year) with rows, the mean of each column: ``cell``, ``year`` and the columns.

    Bit-identical to ``frame.groupby(["cell", "year"], sort=True, observed=True)[cols].mean()
    .reset_index()`` for a categorical ``cell`` (rows in the categories' order, then by year;
    rows with a missing cell dropped), at less than half its time on the 30 km panel
    (16M rows, 4 columns: 5.2 -> 2.4 s). Any other ``cell`` dtype goes through pandas.
    """
    year = np.asarray(year)
    if not isinstance(cell.dtype, pd.CategoricalDtype) or len(year) == 0 or year.dtype.kind not in "iu":
        frame = pd.DataFrame({"cell": cell.to_numpy(), "year": year, **columns})
        return frame.groupby(["cell", "year"], sort=True, observed=True)[list(columns)].mean().reset_index()
    first = int(year.min())
    n_years = int(year.max()) - first + 1
    codes = cell.cat.codes.to_numpy().astype(np.int64)
    labels = np.where(codes >= 0, codes * n_years + (year - first), -1)
    present, means = grouped_means(labels, len(cell.cat.categories) * n_years, columns)
    return pd.DataFrame({
        "cell": pd.Categorical.from_codes(present // n_years, dtype=cell.dtype),
        "year": (present % n_years + first).astype(year.dtype),
        **means,
    })

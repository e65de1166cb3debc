"""Grouped means computed the way pandas computes them, on arrays already laid out by group."""

from __future__ import annotations

import numba
import numpy as np
import pandas as pd

__all__ = ["GroupedMeans", "cell_year_means", "compensated_column_means", "grouped_means"]


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


@numba.njit(cache=True, nogil=True)
def _kahan_accumulate(labels: np.ndarray, values: np.ndarray, sumx: np.ndarray, comp: np.ndarray,
                      nobs: np.ndarray) -> None:  # pragma: no cover - compiled
    """Add rows to per-group NaN-skipping compensated sums, in row order, in place.

    ``values`` is (rows, columns) and the sums (groups, columns): a row's columns update one
    group's adjacent state, so the columns share each label's memory access. Per column the
    same arithmetic, in the same row order, as pandas' cython ``group_mean`` (2.x): fed the
    rows in one call or in consecutive chunks, the sums are bit-identical to those of
    ``DataFrame.groupby(...).mean()``; a label below 0 is no group.
    """
    for i in range(labels.shape[0]):
        g = labels[i]
        if g < 0:
            continue
        for j in range(values.shape[1]):
            val = values[i, j]
            if val == val:
                nobs[g, j] += 1
                y = val - comp[g, j]
                t = sumx[g, j] + y
                c = t - sumx[g, j] - y
                if c != c:  # an infinite value: pandas resets the compensation (GH 50367)
                    c = 0.0
                comp[g, j] = c
                sumx[g, j] = t


class GroupedMeans:
    """NaN-skipping means per group label of float columns, fed rows chunk by chunk.

    Chunks given in the rows' order give the means of the rows concatenated, bit for bit
    (and so those of pandas' groupby mean): a panel is aggregated row group by row group
    without holding its 16 million rows at once.

    Parameters
    ----------
    n_groups
        Labels run 0..n_groups-1 (a label below 0 is no group).
    names
        The columns.
    """

    def __init__(self, n_groups: int, names: list[str]) -> None:
        self.n_groups = int(n_groups)
        self.names = list(names)
        self.rows = np.zeros(self.n_groups, np.int64)
        shape = (self.n_groups, len(self.names))
        self._sumx, self._comp, self._nobs = np.zeros(shape), np.zeros(shape), np.zeros(shape, np.int64)

    def add(self, labels: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        """Add the rows of one chunk: a label per row and each column's values."""
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        self.rows += np.bincount(labels[labels >= 0], minlength=self.n_groups)
        values = np.empty((labels.shape[0], len(self.names)))
        for j, name in enumerate(self.names):
            values[:, j] = columns[name]
        _kahan_accumulate(labels, values, self._sumx, self._comp, self._nobs)

    def result(self) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The labels with at least one row, ascending, and each column's means for them."""
        present = np.flatnonzero(self.rows > 0)
        means = {}
        for j, name in enumerate(self.names):
            n = self._nobs[present, j]
            with np.errstate(invalid="ignore", divide="ignore"):
                means[name] = np.where(n > 0, self._sumx[present, j] / np.maximum(n, 1), np.nan)
        return present, means


def grouped_means(labels: np.ndarray, n_groups: int, columns: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Means per group label (0..n_groups-1) of each float column, for the groups with rows.

    Returns the labels that have at least one row, ascending, and each column's means for them:
    what ``groupby(keys, sort=True, observed=True).mean()`` gives when ``labels`` enumerate the
    keys in their sort order. One pass per column, no sort (the 30 km panel, 16M rows x 4
    columns: pandas' categorical groupby 6.1 s, this ~0.3 s).
    """
    acc = GroupedMeans(n_groups, list(columns))
    acc.add(labels, columns)
    return acc.result()


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

"""Grouped means computed the way pandas computes them, on arrays already laid out by group."""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["compensated_column_means"]


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

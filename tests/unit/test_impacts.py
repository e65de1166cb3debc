"""Impacts of the lag model on the n > DENSE_MAX_N path (trace series and its tail) against a dense inverse."""

from __future__ import annotations

import numpy as np
import pytest

from uhi.stats.impacts import lag_impacts, lag_multipliers, trace_series_tail
from uhi.stats.spatial import DENSE_MAX_N, LogDeterminant
from uhi.stats.weights import build_weights

BETA = np.array([2.0, -1.5])
NAMES = ["const", "a", "b"]


@pytest.fixture(scope="module")
def grid():
    """1,521 jittered cells, knn:8: above DENSE_MAX_N, so lag_multipliers takes the series path."""
    rng = np.random.default_rng(3)
    xx, yy = np.meshgrid(np.arange(39), np.arange(39))
    xy = np.column_stack([xx.ravel(), yy.ravel()]) * 50.0 + rng.normal(0, 5, (39 * 39, 2))
    w = build_weights(xy, "knn:8").row_standardised()
    assert w.shape[0] > DENSE_MAX_N
    exact = LogDeterminant(w, method="traces", probes=w.shape[0])  # identity probes: exact traces
    return w, exact, w.toarray()


@pytest.mark.parametrize("rho", [0.45, 0.95, -0.5])
def test_impacts_equal_a_dense_inverse(grid, rho: float) -> None:
    w, exact, dense = grid
    n = dense.shape[0]
    s = np.linalg.inv(np.eye(n) - rho * dense)
    imp = lag_impacts(rho, np.r_[30.0, BETA], NAMES, w, logdet=exact)
    for name, beta in zip(NAMES[1:], BETA, strict=True):
        direct = beta * np.trace(s) / n
        total = beta * s.sum() / n
        assert imp[name]["direct"] == pytest.approx(direct, abs=1e-4)
        assert imp[name]["total"] == pytest.approx(total, abs=1e-4)
        assert imp[name]["indirect"] == pytest.approx(total - direct, abs=1e-4)
    # the default path (64 Rademacher probes) carries Monte Carlo error: 0.3 % at rho = 0.95 here
    direct_m, total_m = lag_multipliers(rho, w)
    assert direct_m == pytest.approx(np.trace(s) / n, rel=0.005)
    assert total_m == pytest.approx(s.sum() / n, rel=1e-9)


def test_the_tail_carries_what_60_terms_miss(grid) -> None:
    w, exact, dense = grid
    n = dense.shape[0]
    rho = 0.95
    ref = np.trace(np.linalg.inv(np.eye(n) - rho * dense)) / n
    t = exact.traces
    truncated = float(np.sum(rho ** np.arange(len(t)) * t)) / n
    assert ref - truncated > 0.003  # 60 terms alone are 0.24 % low here
    assert abs(truncated + trace_series_tail(t, rho) / n - ref) < 1e-4


def test_bipartite_weights_get_no_odd_tail() -> None:
    # rook contiguity on a lattice: closed walks have even length, odd traces are exactly 0
    t = np.zeros(61)
    t[0::2] = 1000.0 * (1.0 + np.arange(31)) ** -1.0
    # by hand: t_k = t_60 (60 / k)^a for even k > 60, a = ln(t_30 / t_60) / ln 2 = ln(31 / 16) / ln 2
    a = np.log(31 / 16) / np.log(2)
    k = np.arange(62, 40_000, 2)
    expected = float(np.sum(0.9**k * (1000 / 31) * (60 / k) ** a))
    assert trace_series_tail(t, -0.9) == pytest.approx(expected, rel=1e-9)

"""Plan math against independent references: a dense inverse, linprog, exhaustive search, finite differences."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.optimize import linprog

from uhi.stats.plan import (
    SpatialSolver,
    allocate,
    benefit_interval,
    budget_curve,
    marginal_benefits,
)
from uhi.stats.weights import build_weights

N = 300


def _w(n: int = N, k: int = 6, seed: int = 0):
    xy = np.random.default_rng(seed).uniform(0, 3000, (n, 2))
    return build_weights(xy, f"knn:{k}").row_standardised()


def _dense_benefit(w, rho: float, b: float, theta: float, p: np.ndarray) -> np.ndarray:
    """Benefit per unit change in each cell, cell by cell from the dense inverse (no transpose trick)."""
    n = w.shape[0]
    s = np.linalg.inv(np.eye(n) - rho * w.toarray())
    wd = w.toarray()
    out = np.empty(n)
    for j in range(n):
        e = np.zeros(n)
        e[j] = 1.0
        out[j] = -p @ (s @ (b * e + theta * (wd @ e)))
    return out


@pytest.mark.parametrize("exact_max_n", [20_000, 0])  # sparse LU with trans='T', and the Neumann series
def test_lag_marginal_benefits_equal_dense_inverse(exact_max_n: int) -> None:
    w = _w()
    p = np.random.default_rng(1).integers(0, 400, N).astype(float)
    solver = SpatialSolver(w, 0.6, exact_max_n=exact_max_n)
    mb = marginal_benefits(p, -7.5, w=w, solver=solver)
    np.testing.assert_allclose(mb.total, _dense_benefit(w, 0.6, -7.5, 0.0, p), rtol=1e-10)
    np.testing.assert_allclose(mb.own, 7.5 * p)
    # the spill-over adds cooling: a positive rho multiplies the effect
    assert np.all(mb.total >= mb.own - 1e-9)


def test_slx_marginal_benefits_equal_dense() -> None:
    w = _w(seed=2)
    p = np.random.default_rng(3).uniform(0, 1, N)
    mb = marginal_benefits(p, -6.0, lag_coefficient=-2.5, w=w)
    np.testing.assert_allclose(mb.total, _dense_benefit(w, 0.0, -6.0, -2.5, p), rtol=1e-12)


def test_solver_solves_both_ways() -> None:
    w = _w(120, seed=4)
    a = np.eye(120) - 0.7 * w.toarray()
    v = np.random.default_rng(5).normal(size=120)
    for exact in (20_000, 0):
        s = SpatialSolver(w, 0.7, exact_max_n=exact)
        np.testing.assert_allclose(s.solve(v), np.linalg.solve(a, v), atol=1e-11)
        np.testing.assert_allclose(s.solve_transposed(v), np.linalg.solve(a.T, v), atol=1e-11)


def test_divisible_allocation_equals_linear_programme() -> None:
    """The fractional knapsack on dense-inverse benefits, solved by HiGHS (linprog): same plan, same total."""
    rng = np.random.default_rng(6)
    w = _w(seed=6)
    p = rng.integers(0, 300, N).astype(float)
    change = rng.uniform(0.02, 0.3, N)
    cost = rng.uniform(1e3, 2e4, N)
    benefit_dense = _dense_benefit(w, 0.5, -8.0, 0.0, p) * change
    budget = 0.1 * cost.sum()
    lp = linprog(-benefit_dense, A_ub=cost[None, :], b_ub=[budget], bounds=[(0, 1)] * N, method="highs")
    assert lp.status == 0
    mb = marginal_benefits(p, -8.0, w=w, solver=SpatialSolver(w, 0.5))
    fraction, method = allocate(mb.total * change, cost, budget, divisible=True)
    assert "fractional knapsack" in method
    np.testing.assert_allclose(fraction @ benefit_dense, -lp.fun, rtol=1e-9)
    np.testing.assert_array_equal(fraction > 1e-9, lp.x > 1e-9)
    np.testing.assert_allclose(fraction @ cost, budget, rtol=1e-12)
    # exactly one cell bought in part
    assert ((fraction > 0) & (fraction < 1)).sum() == 1


def test_equal_cost_whole_cells_top_k_equals_exhaustive_search() -> None:
    n, k = 14, 4
    rng = np.random.default_rng(7)
    w = _w(n, k=3, seed=7)
    p = rng.integers(1, 100, n).astype(float)
    change = rng.uniform(0.05, 0.3, n)
    cost = np.full(n, 5000.0)
    benefit_dense = _dense_benefit(w, 0.4, -8.0, 0.0, p) * change
    best = max(itertools.combinations(range(n), k), key=lambda c: benefit_dense[list(c)].sum())
    mb = marginal_benefits(p, -8.0, w=w, solver=SpatialSolver(w, 0.4))
    fraction, method = allocate(mb.total * change, cost, k * 5000.0 + 1.0, divisible=False)
    assert "top-k" in method
    assert set(np.flatnonzero(fraction)) == set(best)


def test_whole_cells_of_unequal_cost_never_overspend() -> None:
    cost = np.array([6.0, 5.0, 5.0])
    benefit = np.array([7.0, 5.5, 5.5])
    fraction, method = allocate(benefit, cost, 10.0, divisible=False)
    # greedy takes the best ratio (7/6), then nothing fits: the heuristic's known gap to the optimum (11)
    assert "heuristic" in method
    np.testing.assert_array_equal(fraction, [1.0, 0.0, 0.0])


def test_budget_curve_is_concave_and_ends_at_the_whole_benefit() -> None:
    rng = np.random.default_rng(8)
    benefit, cost = rng.uniform(0, 10, 50), rng.uniform(1, 5, 50)
    spends = np.linspace(0, cost.sum(), 101)
    curve = budget_curve(benefit, cost, spends)
    assert curve[0] == 0 and curve[-1] == pytest.approx(benefit.sum())
    assert np.all(np.diff(curve, 2) <= 1e-9)
    for s in (3.0, 17.5, 60.0):
        fraction, _ = allocate(benefit, cost, s, divisible=True)
        assert budget_curve(benefit, cost, np.array([s]))[0] == pytest.approx(fraction @ benefit)


def test_delta_method_gradient_equals_finite_differences() -> None:
    w = _w(80, seed=9)
    rng = np.random.default_rng(10)
    p = rng.uniform(0, 50, 80)
    d = np.where(rng.uniform(size=80) < 0.2, rng.uniform(0.05, 0.2, 80), 0.0)
    b, theta, rho = -7.0, -1.5, 0.45
    se_b, se_t, se_r = 0.8, 0.5, 0.05

    def total(bb: float, tt: float, rr: float) -> float:
        return float(_dense_benefit(w, rr, bb, tt, p) @ d)

    h = 1e-6
    grads = [(total(b + h, theta, rho) - total(b - h, theta, rho)) / (2 * h),
             (total(b, theta + h, rho) - total(b, theta - h, rho)) / (2 * h),
             (total(b, theta, rho + h) - total(b, theta, rho - h)) / (2 * h)]
    se_ref = np.sqrt(sum(g * g * s * s for g, s in zip(grads, (se_b, se_t, se_r), strict=True)))
    mb = marginal_benefits(p, b, lag_coefficient=theta, w=w, solver=SpatialSolver(w, rho))
    out = benefit_interval(d, mb, coefficient=b, coefficient_se=se_b, lag_coefficient=theta,
                           lag_coefficient_se=se_t, rho_se=se_r, w=w, solver=SpatialSolver(w, rho), level=0.95)
    assert out["estimate"] == pytest.approx(total(b, theta, rho), rel=1e-10)
    assert out["se"] == pytest.approx(se_ref, rel=1e-6)
    assert out["high"] - out["estimate"] == pytest.approx(1.959963984540054 * se_ref, rel=1e-6)
    missing = benefit_interval(d, mb, coefficient=b, coefficient_se=float("nan"), w=w)
    assert np.isnan(missing["se"])

"""Panel FE spatial lag against spreg Panel_FE_Lag (balanced, time-major, no constant)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from uhi.errors import InputError
from uhi.stats.panel import fit_panel_fe_lag, within_transform
from uhi.stats.spatial import LogDeterminant, solve_spatial

N, T, RHO, BETA = 900, 5, 0.45, np.array([1.5, -2.0])


def _panel(trend_c: float):
    import libpysal

    rng = np.random.default_rng(21)
    xy = rng.uniform(0, 3000, size=(N, 2))
    lw = libpysal.weights.KNN.from_array(xy, k=8)
    lw.transform = "r"
    w = sp.csr_matrix(lw.sparse)
    mu = rng.normal(0, 2, N)  # cell effects, correlated with x below
    ys, xs = [], []
    for t in range(T):
        x = rng.normal(size=(N, 2)) + mu[:, None] * 0.3
        y = solve_spatial(w, RHO, x @ BETA + mu + trend_c * t + rng.normal(size=N))
        ys.append(y)
        xs.append(x)
    return np.concatenate(ys), np.vstack(xs), lw, w


@pytest.fixture(scope="module")
def panel():
    return _panel(0.0)


@pytest.fixture(scope="module")
def warming_panel():
    return _panel(0.8)


@pytest.fixture(scope="module")
def spreg_fit(panel):
    import spreg

    y, x, lw, w = panel
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return spreg.Panel_FE_Lag(y[:, None], x, lw)


def test_equals_spreg_panel_fe_lag(panel, spreg_fit) -> None:
    y, x, lw, w = panel
    ref = spreg_fit
    fit = fit_panel_fe_lag(y, x, ["a", "b"], w, T, bias_correction=False)
    np.testing.assert_allclose(np.append(fit.coefficients, fit.rho), ref.betas.ravel(), rtol=1e-6)
    np.testing.assert_allclose(np.append(fit.std_errors, fit.rho_se), ref.std_err, rtol=1e-5)
    assert fit.diagnostics["r2_within"] == pytest.approx(ref.pr2, rel=1e-6)
    # spreg concentrates the likelihood with SSR instead of SSR / NT, so its log-likelihood
    # lacks +(NT/2) ln(NT); with that term restored the two agree
    nt = N * T
    assert fit.loglik == pytest.approx(ref.logll + 0.5 * nt * np.log(nt), rel=1e-9)


def test_lee_yu_sigma2_is_t_over_t_minus_1_of_spreg(panel, spreg_fit) -> None:
    y, x, lw, w = panel
    ref = spreg_fit
    fit = fit_panel_fe_lag(y, x, ["a", "b"], w, T)
    # Lee & Yu (2010): sigma^2 = SSR / (N (T - 1)) = T / (T - 1) x the ML SSR / (N T)
    assert fit.sigma2 == pytest.approx(ref.sig2 * T / (T - 1), rel=1e-6)
    assert fit.sigma2 == pytest.approx(float(fit.residuals @ fit.residuals) / (N * (T - 1)), rel=1e-12)
    np.testing.assert_allclose(np.append(fit.coefficients, fit.rho), ref.betas.ravel(), rtol=1e-6)
    # larger standard errors than spreg's, by about sqrt(T / (T - 1)) for b
    ratio = fit.std_errors / np.asarray(ref.std_err[:2])
    np.testing.assert_allclose(ratio, np.sqrt(T / (T - 1)), rtol=0.01)
    two = fit_panel_fe_lag(y, x, ["a", "b"], w, T, time_effects=True)
    assert two.sigma2 == pytest.approx(float(two.residuals @ two.residuals) / ((N - 1) * (T - 1)), rel=1e-12)


def test_lee_yu_sigma2_and_standard_errors_unbiased_by_simulation() -> None:
    """At T = 3 the ML sigma^2 is 2/3 of the truth; the corrected one and its SEs are right."""
    import libpysal

    n, t, rho, beta, reps = 36, 3, 0.4, np.array([1.0]), 200
    lw = libpysal.weights.lat2W(6, 6, rook=True)
    lw.transform = "r"
    w = sp.csr_matrix(lw.sparse)
    ld = LogDeterminant(w, method="lu")
    rng = np.random.default_rng(5)
    x = rng.normal(size=(n * t, 1))  # fixed regressors across replications
    mu = rng.normal(0, 2, n)
    s2, s2_ml, b = [], [], []
    se = []
    for _ in range(reps):
        y = np.concatenate([
            solve_spatial(w, rho, x[i * n:(i + 1) * n] @ beta + mu + rng.normal(size=n)) for i in range(t)
        ])
        fit = fit_panel_fe_lag(y, x, ["a"], w, t, logdet=ld)
        s2.append(fit.sigma2)
        s2_ml.append(fit.diagnostics["sigma2_ml"])
        b.append(fit.coefficients[0])
        se.append(fit.std_errors[0])
    # the truth is sigma^2 = 1 (less (k + 1) / (N (T - 1)) = 2 % for the estimated rho and b);
    # the mean of 200 estimates has a standard error of ~0.01
    assert np.mean(s2) == pytest.approx(1.0, abs=0.05)
    assert np.mean(s2_ml) == pytest.approx((t - 1) / t, abs=0.05)
    # reported SE against the spread of the estimates (~5 % sampling error at 200 replications;
    # uncorrected they are sqrt(2/3) = 0.82 of it)
    assert np.mean(se) / np.std(b, ddof=1) == pytest.approx(1.0, abs=0.1)


def test_trace_path_within_005_se_of_exact(panel) -> None:
    y, x, _, w = panel
    exact = fit_panel_fe_lag(y, x, ["a", "b"], w, T, logdet=LogDeterminant(w, method="lu"))
    fast = fit_panel_fe_lag(y, x, ["a", "b"], w, T, logdet=LogDeterminant(w, method="traces"))
    assert abs(fast.rho - exact.rho) < 0.05 * exact.rho_se
    assert np.all(np.abs(fast.coefficients - exact.coefficients) < 0.05 * exact.std_errors)


def test_year_effects_absorb_a_common_trend(warming_panel) -> None:
    """A planted 0.8 degC/period trend biases rho under one-way FE, not under two-way."""
    y, x, _, w = warming_panel
    one = fit_panel_fe_lag(y, x, ["a", "b"], w, T)
    two = fit_panel_fe_lag(y, x, ["a", "b"], w, T, time_effects=True)
    assert abs(two.rho - RHO) < 3 * two.rho_se
    assert abs(one.rho - RHO) > abs(two.rho - RHO)
    np.testing.assert_array_less(np.abs(two.coefficients - BETA), 3 * two.std_errors)


def test_within_transform_sweeps_unit_and_period_means() -> None:
    a = np.random.default_rng(0).normal(size=(4 * 6, 2))
    d = within_transform(a, 6, 4, time_effects=True).reshape(4, 6, 2)
    np.testing.assert_allclose(d.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(d.mean(axis=1), 0, atol=1e-12)


def test_unbalanced_and_time_invariant_refused(panel) -> None:
    y, x, _, w = panel
    with pytest.raises(InputError, match="balanced panel"):
        fit_panel_fe_lag(y[:-3], x[:-3], ["a", "b"], w, T)
    static = np.column_stack([x[:, 0], np.tile(np.arange(N, dtype=float), T)])
    with pytest.raises(InputError, match=r"\['s'\] does not change over time"):
        fit_panel_fe_lag(y, static, ["a", "s"], w, T)

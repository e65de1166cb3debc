"""Forecasts on 35 summers (issue 17: Landsat 4-9 give a city 30-40 summers, not 7).

Seeded 35-step series of three kinds: a planted linear warming of 0.08 C per summer, a warming
that levels off (30 + 4 (1 - 0.8^t)), and a flat level. statsmodels is the independent
reference: its ``ExponentialSmoothing`` fits give the SSE of each method, from which the AICc
choice is recomputed with uhi's parameter counts; its fixed-parameter ``ExponentialSmoothing``
gives the forecasts of uhi's fitted parameters and initial states.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from uhi.errors import ConfigError
from uhi.stats.ets import (
    METHODS,
    check_horizon,
    fit_ets,
    forecast_series,
    forecast_variance,
    n_params,
)

SUMMERS = 35
PLANTED_TREND_C = 0.08


def _cells(per_kind: int = 2, seed: int = 35) -> tuple[np.ndarray, list[str]]:
    rng = np.random.default_rng(seed)
    t = np.arange(SUMMERS)
    warming = 30 + PLANTED_TREND_C * t + rng.normal(0, 0.3, (per_kind, SUMMERS))
    levelling = 30 + 4.0 * (1 - 0.8 ** (t + 1)) + rng.normal(0, 0.15, (per_kind, SUMMERS))
    flat = 30 + rng.normal(0, 0.5, (per_kind, SUMMERS))
    return np.vstack([warming, levelling, flat]), ["warming"] * per_kind + ["levelling"] * per_kind + ["flat"] * per_kind


def _statsmodels_sse(y: np.ndarray, method: str) -> float:
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(ExponentialSmoothing(y, trend=None if method == "simple" else "add",
                                          damped_trend=method == "damped",
                                          initialization_method="estimated").fit().sse)


def test_method_choice_on_35_summers_matches_statsmodels_fits() -> None:
    y, kinds = _cells()
    fit = fit_ets(y)
    # the AICc of each method from statsmodels' least-squares fit, with uhi's parameter counts
    sse = np.array([[_statsmodels_sse(row, m) for m in METHODS] for row in y])
    k = np.array([n_params(m) for m in METHODS], dtype=float)
    n = float(SUMMERS)
    aicc = n * (np.log(2 * np.pi * sse / n) + 1) + 2 * k + 2 * k * (k + 1) / (n - k - 1)
    theirs = np.array(METHODS)[aicc.argmin(axis=1)]
    assert list(fit.method_names) == list(theirs)
    # and the planted shapes are told apart: 35 summers leave damped a candidate (it needs 8)
    chosen = dict(zip(range(len(kinds)), fit.method_names, strict=True))
    assert all(chosen[i] in ("holt", "damped") for i, kd in enumerate(kinds) if kd == "warming")
    assert all(chosen[i] == "damped" for i, kd in enumerate(kinds) if kd == "levelling")
    assert any(chosen[i] == "simple" for i, kd in enumerate(kinds) if kd == "flat")
    # uhi's SSE is statsmodels' or lower, method by method
    ours = np.column_stack([fit_ets(y, (m,)).sse for m in METHODS])
    assert np.all(ours <= 1.01 * sse), ours / sse


def test_planted_warming_recovered_by_holt_on_35_summers() -> None:
    y, kinds = _cells()
    warming = y[[i for i, kd in enumerate(kinds) if kd == "warming"]]
    trend = fit_ets(warming, ("holt",)).trend
    # 0.3 C noise over 35 summers: the OLS slope's standard error is 0.3 / sqrt(sum (t - t_bar)^2) = 0.0029
    ols = np.polyfit(np.arange(SUMMERS), warming.T, 1)[0]
    np.testing.assert_allclose(ols, PLANTED_TREND_C, atol=4 * 0.0029)
    np.testing.assert_allclose(trend, PLANTED_TREND_C, atol=0.01)


def _variance_multipliers(alpha: float, beta_star: float, phi: float, trend: bool, horizon: int) -> np.ndarray:
    """1 + sum_{j<h} c_j^2 with c_j = w' F^(j-1) g, from the state-space matrices of the
    additive-error models (Hyndman et al. 2008, ch. 6): x_t = F x_{t-1} + g e_t, y_t = w' x_{t-1} + e_t."""
    if trend:
        f = np.array([[1.0, phi], [0.0, phi]])
        g = np.array([alpha, alpha * beta_star])
        w = np.array([1.0, phi])
    else:
        f, g, w = np.eye(1), np.array([alpha]), np.array([1.0])
    out = np.ones(horizon)
    power = np.eye(f.shape[0])
    for h in range(1, horizon):
        out[h:] += float(w @ power @ g) ** 2
        power = power @ f
    return out


@pytest.mark.parametrize("method", METHODS)
def test_intervals_on_35_summers_equal_statsmodels_forecasts(method: str) -> None:
    """Forecasts 17 summers ahead from uhi's own fit equal statsmodels' forecasts of the same
    parameters and initial states; the interval widths follow the state-space variances.

    statsmodels' ETSModel (the variance reference of test_ets_equivalence.py) returns NaN at
    alpha exactly 0 or 1, where most least-squares fits on these series land, so the variances
    are checked against the matrix recursion instead."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    y, _ = _cells()
    horizon = SUMMERS // 2
    res = forecast_series(y, horizon, holdout=2, coverage=0.9, methods=(method,))
    fit = res.fit
    trend = method != "simple"
    z = 1.6448536269514722  # standard normal 0.95 quantile
    for i in range(y.shape[0]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ExponentialSmoothing(
                y[i], trend="add" if trend else None, damped_trend=method == "damped",
                initialization_method="known", initial_level=fit.level0[i],
                initial_trend=fit.trend0[i] if trend else None,
            )
            kwargs = {"smoothing_level": fit.alpha[i]}
            if trend:
                kwargs["smoothing_trend"] = fit.beta[i]
            if method == "damped":
                kwargs["damping_trend"] = fit.phi[i]
            theirs = model.fit(optimized=False, **kwargs)
        np.testing.assert_allclose(res.mean[i], theirs.forecast(horizon), rtol=0, atol=1e-8)
        assert fit.sse[i] == pytest.approx(theirs.sse, rel=1e-8)
        multiplier = _variance_multipliers(fit.alpha[i], fit.beta[i], fit.phi[i], trend, horizon)
        np.testing.assert_allclose(forecast_variance(fit, horizon)[i], fit.sigma2[i] * multiplier, rtol=1e-10)
        np.testing.assert_allclose(res.upper[i] - res.lower[i], 2 * z * np.sqrt(fit.sigma2[i] * multiplier),
                                   rtol=1e-10)
        # sigma^2 = SSE / (n - k): n = 35 summers, k = smoothing parameters + initial states + variance
        assert fit.sigma2[i] == pytest.approx(fit.sse[i] / (SUMMERS - n_params(method)), rel=1e-12)


def test_horizon_limit_scales_with_the_series() -> None:
    # half the series: 7 summers allow 3 steps, 35 summers 17 (docs/forecast.md, Horizon)
    check_horizon(3, 7)
    check_horizon(17, SUMMERS)
    with pytest.raises(ConfigError, match=r"forecast.horizon 4 is more than half the series length \(7 steps"):
        check_horizon(4, 7)
    with pytest.raises(ConfigError, match=r"forecast.horizon 18 .*so at most 17\); lower forecast.horizon"):
        check_horizon(18, SUMMERS)
    y, _ = _cells(per_kind=1)
    assert forecast_series(y, 17).mean.shape == (3, 17)

"""ETS behaviour: bad input, missing steps, AICc choice, the full parameter range, intervals."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from uhi.errors import ConfigError
from uhi.stats.ets import check_horizon, fit_ets, forecast_series, n_params, prediction_interval


def test_short_and_empty_series_are_reported_not_fitted() -> None:
    y = np.full((4, 10), np.nan)
    y[1, -1] = 20.0  # length 1
    y[2, -2:] = [20.0, 21.0]  # length 2
    y[3] = np.linspace(20, 25, 10)
    res = forecast_series(y, 3, holdout=2, min_points=4)
    assert res.status.tolist() == ["no_data", "too_few_points", "too_few_points", "ok"]
    assert np.isnan(res.mean[:3]).all() and np.isfinite(res.mean[3]).all()
    assert res.fit.method.tolist()[:3] == [-1, -1, -1]
    assert res.fit.n_obs.tolist() == [0, 1, 2, 10]


def test_length_two_series_can_be_fitted_when_allowed() -> None:
    fit = fit_ets(np.array([[20.0, 21.0]]), ("simple",), min_obs=2)
    assert fit.method[0] == 0 and np.isfinite(fit.level[0])
    # no finite AICc at n = 2: the method with fewest parameters is used, AICc reported as inf
    assert np.isinf(fit.aicc[0])


def test_missing_step_propagates_states() -> None:
    rng = np.random.default_rng(5)
    y = 20 + 0.3 * np.arange(20) + rng.normal(0, 0.2, 20)
    with_gap = np.append(y, np.nan)[None, :]
    fit_a = fit_ets(y[None, :], ("holt",))
    fit_b = fit_ets(with_gap, ("holt",))
    # a trailing missing step adds no error: same parameters and SSE ...
    assert fit_b.sse[0] == pytest.approx(fit_a.sse[0], rel=1e-9)
    assert fit_b.alpha[0] == pytest.approx(fit_a.alpha[0], abs=1e-9)
    # ... and the forecasts from the gap are the 2..h+1-step forecasts from the last observation
    ma, _, _ = prediction_interval(fit_a, 4)
    mb, _, _ = prediction_interval(fit_b, 3)
    np.testing.assert_allclose(mb[0], ma[0, 1:], atol=1e-9)


def test_interior_gaps_are_skipped_in_the_sse() -> None:
    rng = np.random.default_rng(6)
    y = 25 + rng.normal(0, 1, 24)
    y[[5, 11, 12]] = np.nan
    fit = fit_ets(y[None, :], ("simple",))
    assert fit.n_obs[0] == 21 and np.isfinite(fit.sse[0])


def test_zero_is_inside_the_parameter_range() -> None:
    # iid noise around a constant: alpha = 0 (level = the mean) is the least-squares optimum
    y = 30 + np.random.default_rng(11).normal(0, 1, (1, 40))
    fit = fit_ets(y, ("simple",))
    assert fit.alpha[0] == 0.0
    assert fit.sse[0] == pytest.approx(np.sum((y - y.mean()) ** 2), rel=1e-9)
    assert fit.level[0] == pytest.approx(y.mean(), rel=1e-12)


def test_aicc_selects_trend_for_a_trending_series_and_simple_for_noise() -> None:
    rng = np.random.default_rng(2)
    t = np.arange(30)
    y = np.vstack([10 + 0.5 * t + rng.normal(0, 0.3, 30), 10 + rng.normal(0, 0.3, 30)])
    fit = fit_ets(y)
    assert fit.method_names[0] in ("holt", "damped")
    assert fit.method_names[1] == "simple"


def test_aicc_formula() -> None:
    y = 20 + np.random.default_rng(9).normal(0, 1, (1, 25)).cumsum(axis=1)
    fit = fit_ets(y, ("holt",))
    n, k = 25, n_params("holt")
    m2ll = n * (np.log(2 * np.pi * fit.sse[0] / n) + 1)
    assert fit.aicc[0] == pytest.approx(m2ll + 2 * k + 2 * k * (k + 1) / (n - k - 1), rel=1e-12)


def test_horizon_capped_at_half_the_series() -> None:
    check_horizon(5, 10)
    with pytest.raises(ConfigError, match=r"forecast.horizon 6 is more than half the series length \(10 steps, so at most 5\)"):
        check_horizon(6, 10)
    with pytest.raises(ConfigError, match="horizon 6"):
        forecast_series(np.ones((1, 10)), 6)


def test_unknown_method_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown forecast method"):
        fit_ets(np.ones((1, 10)), ("arima",))


def test_interval_coverage_on_simulated_ets_ann() -> None:
    # ETS(A,N,N) with alpha 0.3, sigma 1: the 90 % one-step interval covers ~90 % of outcomes
    rng = np.random.default_rng(123)
    n_series, n = 3000, 41
    e = rng.normal(0, 1, (n_series, n))
    y = np.empty((n_series, n))
    level = np.full(n_series, 20.0)
    for t in range(n):
        y[:, t] = level + e[:, t]
        level = level + 0.3 * e[:, t]
    fit = fit_ets(y[:, :-1], ("simple",))
    mean, lo, hi = prediction_interval(fit, 1, coverage=0.9)
    covered = np.mean((y[:, -1] >= lo[:, 0]) & (y[:, -1] <= hi[:, 0]))
    # binomial sd at p = 0.9, n = 3000 is 0.0055; estimation error of alpha costs ~1 point
    assert 0.87 <= covered <= 0.93
    half = (hi - lo)[:, 0] / 2
    np.testing.assert_allclose(half, norm.ppf(0.95) * np.sqrt(fit.sigma2), rtol=1e-12)


def test_holdout_rmse_is_the_rmse_of_the_holdout_forecasts() -> None:
    rng = np.random.default_rng(4)
    y = 15 + rng.normal(0, 1, (3, 20)).cumsum(axis=1)
    res = forecast_series(y, 3, holdout=4, methods=("simple",))
    train = fit_ets(y[:, :16], ("simple",))
    expect = np.sqrt(np.mean((y[:, 16:] - train.level[:, None]) ** 2, axis=1))
    np.testing.assert_allclose(res.rmse, expect, rtol=1e-12)


def test_overflowing_series_fail_instead_of_reporting_ok(caplog) -> None:
    # +-1e308 alternating: every sum of squares overflows float64; the fit cannot be trusted
    y = np.vstack([np.linspace(20, 25, 10), np.where(np.arange(10) % 2, 1e308, -1e308)])
    res = forecast_series(y, 2, holdout=2, min_points=4)
    assert res.status.tolist() == ["ok", "failed"]
    assert np.isfinite(res.mean[0]).all() and np.isnan(res.mean[1]).all()
    assert np.isnan(res.lower[1]).all() and np.isnan(res.upper[1]).all() and np.isnan(res.rmse[1])
    assert "1 series could not be fitted" in caplog.text

"""uhi.stats.trend: the OLS trend per decade and its interval against statsmodels."""

from __future__ import annotations

import numpy as np
import pytest

from uhi.stats.trend import linear_trend, yearly_means


@pytest.mark.parametrize("n_years", [3, 7, 38])
def test_trend_and_interval_match_statsmodels(n_years: int) -> None:
    import statsmodels.api as sm

    rng = np.random.default_rng(n_years)
    years = np.arange(1984, 1984 + n_years)
    values = 5.0 + 0.03 * (years - 1984) + rng.normal(0, 0.4, n_years)
    got = linear_trend(years, values)
    assert got is not None
    ref = sm.OLS(values, sm.add_constant(years.astype(float))).fit()
    low, high = ref.conf_int(alpha=0.05)[1]
    assert got.per_decade == pytest.approx(10 * ref.params[1], rel=1e-10)
    assert got.std_error == pytest.approx(10 * ref.bse[1], rel=1e-10)
    assert (got.low, got.high) == pytest.approx((10 * low, 10 * high), rel=1e-10)
    assert (got.n_years, got.first_year, got.last_year) == (n_years, 1984, 1983 + n_years)


def test_gaps_and_too_few_years() -> None:
    from scipy import stats

    years = [1990, 1995, 2001, 2002, 2020]
    values = [1.0, np.nan, 1.4, 1.2, 2.0]
    got = linear_trend(years, values, confidence=0.9)
    ref = stats.linregress([1990, 2001, 2002, 2020], [1.0, 1.4, 1.2, 2.0])
    assert got is not None and got.n_years == 4
    assert got.per_decade == pytest.approx(10 * ref.slope, rel=1e-10)
    half = stats.t.ppf(0.95, 2) * ref.stderr
    assert got.high == pytest.approx(10 * (ref.slope + half), rel=1e-10)
    assert linear_trend([2000, 2001], [1.0, 2.0]) is None
    assert linear_trend([2000, 2000, 2000], [1.0, 2.0, 3.0]) is None


def test_yearly_means_weigh_each_year_once() -> None:
    years, means = yearly_means([2001, 2001, 2001, 2003, 2004], [1.0, 2.0, np.nan, 5.0, np.nan])
    assert years.tolist() == [2001, 2003]
    assert means.tolist() == [1.5, 5.0]

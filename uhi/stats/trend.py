"""Linear trend of a yearly series: OLS slope with its Student-t confidence interval."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["LinearTrend", "linear_trend", "yearly_means"]


@dataclass(frozen=True)
class LinearTrend:
    """An OLS trend of a yearly series.

    Attributes
    ----------
    per_decade
        Slope times ten: change per decade in the series' unit.
    low, high
        Bounds of its ``confidence`` interval, per decade.
    std_error
        Standard error of the slope, per decade.
    n_years
        Years with a finite value; ``first_year``, ``last_year`` their span.
    confidence
        Two-sided level of the interval (0.95).
    """

    per_decade: float
    low: float
    high: float
    std_error: float
    n_years: int
    first_year: int
    last_year: int
    confidence: float

    def as_dict(self) -> dict[str, float | int]:
        """Plain numbers for JSON (summary.json, the report)."""
        return {
            "per_decade": self.per_decade,
            "low": self.low,
            "high": self.high,
            "std_error": self.std_error,
            "n_years": self.n_years,
            "first_year": self.first_year,
            "last_year": self.last_year,
            "confidence": self.confidence,
        }


def linear_trend(years: npt.ArrayLike, values: npt.ArrayLike, *,
                 confidence: float = 0.95) -> LinearTrend | None:
    """OLS slope of ``values`` on ``years`` with its t interval; None below three finite years.

    slope = sum(dx dy) / sum(dx^2), se = sqrt(SSR / (n - 2) / sum(dx^2)), interval slope +- t(n - 2,
    (1 + confidence) / 2) se: the textbook simple-regression inference (e.g. Wilks 2011,
    Statistical Methods in the Atmospheric Sciences, sec. 7.2.5), the figures
    statsmodels ``OLS(...).fit().conf_int()`` gives. Independent errors are assumed: year-to-year
    autocorrelation of the residuals would make the interval too narrow.
    """
    from scipy.special import stdtrit  # Student-t quantile; scipy.stats alone takes ~3 s to import

    x = np.asarray(years, dtype=np.float64)
    y = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    n = int(x.size)
    if n < 3 or np.ptp(x) == 0:
        return None
    dx = x - x.mean()
    sxx = float(dx @ dx)
    slope = float(dx @ (y - y.mean())) / sxx
    resid = y - y.mean() - slope * dx
    se = math.sqrt(float(resid @ resid) / (n - 2) / sxx)
    half = float(stdtrit(n - 2, 0.5 + confidence / 2.0)) * se
    return LinearTrend(
        per_decade=10.0 * slope,
        low=10.0 * (slope - half),
        high=10.0 * (slope + half),
        std_error=10.0 * se,
        n_years=n,
        first_year=int(x.min()),
        last_year=int(x.max()),
        confidence=confidence,
    )


def yearly_means(years: npt.ArrayLike, values: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean of the finite ``values`` per year: (years ascending, means); years without one are left out.

    Each year weighs the same in a trend whatever its number of scenes, so a summer seen four
    times does not pull the line more than one seen once.
    """
    y = np.asarray(years, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    ok = np.isfinite(v)
    uniq, inverse = np.unique(y[ok], return_inverse=True)
    sums = np.bincount(inverse, weights=v[ok], minlength=uniq.size)
    counts = np.bincount(inverse, minlength=uniq.size)
    return uniq, sums / counts

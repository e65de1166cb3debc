"""Step changes between Landsat sensors: the same year's scenes compared sensor by sensor."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["SENSOR_ORDER", "sensor_steps"]

# oldest first: a step is reported as the newer sensor's mean minus the older one's
SENSOR_ORDER = ("TM", "ETM+", "OLI/TIRS")
# |difference| above this many standard errors is flagged as a step (about a 95 % two-sided
# test under normality; Welch's standard error, unequal variances)
_STEP_Z = 2.0


def sensor_steps(years: Sequence[int], values: Sequence[float], sensors: Sequence[str | None]) -> list[dict[str, Any]]:
    """Per year observed by two sensors, the difference of their scene means.

    A city series that crosses a sensor transition (Landsat 5 -> 7 -> 8) can jump for reasons
    that are the instruments', not the city's. In an overlap year (1999-2011 TM and ETM+,
    2013- ETM+ and OLI/TIRS) both sensors saw the same summer: their mean scene values should
    agree within sampling error.

    Parameters
    ----------
    years
        Calendar year of each scene.
    values
        The scene's city mean (NaN scenes are ignored).
    sensors
        ``TM``, ``ETM+`` or ``OLI/TIRS`` per scene; None (unknown or a merged day of two
        sensors) is ignored.

    Returns
    -------
    list of dict
        One per (year, consecutive sensor pair present that year): ``year``, ``older``,
        ``newer``, ``n_older``, ``n_newer``, ``mean_older``, ``mean_newer``, ``difference``
        (newer - older), ``se`` (Welch: sqrt(s1^2/n1 + s2^2/n2), NaN with fewer than two scenes
        of either) and ``step`` (True when |difference| > 2 se).
    """
    y = np.asarray(years, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    s = np.asarray([x if x in SENSOR_ORDER else "" for x in sensors], dtype=object)
    ok = np.isfinite(v) & (s != "")
    out: list[dict[str, Any]] = []
    for year in sorted(set(y[ok].tolist())):
        here = ok & (y == year)
        present = [name for name in SENSOR_ORDER if np.any(here & (s == name))]
        for older, newer in zip(present, present[1:], strict=False):
            a, b = v[here & (s == older)], v[here & (s == newer)]
            diff = float(b.mean() - a.mean())
            se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size) if min(a.size, b.size) >= 2 else math.nan
            out.append({
                "year": int(year), "older": older, "newer": newer,
                "n_older": int(a.size), "n_newer": int(b.size),
                "mean_older": float(a.mean()), "mean_newer": float(b.mean()),
                "difference": diff, "se": se,
                "step": bool(math.isfinite(se) and abs(diff) > _STEP_Z * se),
            })
    return out

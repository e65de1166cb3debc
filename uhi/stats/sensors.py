"""Step changes between Landsat sensors: the same year's scenes compared sensor by sensor."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["SENSOR_ORDER", "panel_sensor_terms", "sensor_column", "sensor_index", "sensor_of_platforms", "sensor_shares",
           "sensor_steps", "sensor_terms"]

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


def sensor_column(sensor: str) -> str:
    """The regressor name of a sensor's share, as written in model/summary.json."""
    return f"sensor[{sensor}]"


def sensor_of_platforms(platform: str | None) -> str | None:
    """The sensor of a panel ``platform`` value, None when unknown.

    A same-day merge of two platforms (``landsat-7+landsat-8``) mixes both sensors' pixels; by
    convention it counts as the newest one's sensor, which is the model's reference whenever it
    is present, so a merged day adds no offset term of an older sensor.
    """
    from uhi.landsat import sensor_for

    if not platform:
        return None
    found = [sensor_for(platform=p.strip()) for p in str(platform).split("+")]
    names = [s.name for s in found if s is not None]
    if not names:
        return None
    return max(names, key=SENSOR_ORDER.index)


def sensor_index(platforms: Sequence[str | None]) -> np.ndarray:
    """Position in SENSOR_ORDER of each ``platform`` value's sensor (sensor_of_platforms), -1 when
    unknown; meant for the few distinct values of a panel column, not one per row."""
    return np.array([SENSOR_ORDER.index(s) if (s := sensor_of_platforms(p)) else -1 for p in platforms],
                    dtype=np.int64)


def sensor_shares(cells: Sequence[Any], years: Sequence[int], platforms: Sequence[str | None],
                  valid: Sequence[bool]) -> Any:
    """Per (cell, year), the share of its valid observations made by each sensor.

    A model of yearly cell means sees a sensor's additive offset ``d_s`` as ``d_s`` times the
    share of that cell-year's observations made by sensor ``s``: the mean of ``v + d_s`` over
    the observations is the mean of ``v`` plus ``sum_s share_s d_s``. The shares are therefore
    the regressors whose coefficients are the sensor offsets.

    Parameters
    ----------
    cells, years, platforms
        One entry per observation (a panel row).
    valid
        Whether the observation's response is finite (only those enter the yearly mean).

    Returns
    -------
    pandas.DataFrame
        Columns ``cell``, ``year`` and ``sensor[<name>]`` for every sensor seen, shares in
        [0, 1] summing to 1 per row; cell-years with no valid observation of a known sensor
        are absent.
    """
    import pandas as pd

    # factorised, not row by row: a 30 km city's panel has 16 million rows but a handful of
    # platform strings, and per-row Python calls plus a crosstab took half the model stage
    # (68 of 135 CPU seconds on the 30 km demo; now ~1.5 s); the counts are the same
    # integers, so the shares are identical
    year_arr = np.asarray(years, dtype=np.int64)
    p_codes, p_uniques = pd.factorize(pd.Series(platforms, copy=False), use_na_sentinel=True)
    p_sensor = np.append(sensor_index(list(p_uniques)), -1)
    sensor_code = p_sensor[p_codes]  # the sentinel -1 (missing platform) picks the appended -1
    keep = np.asarray(valid, dtype=bool) & (sensor_code >= 0)
    c_codes, c_uniques = pd.factorize(pd.Series(cells, copy=False)[keep], sort=True)
    y_kept = year_arr[keep]
    y_min = int(y_kept.min()) if y_kept.size else 0
    y_uniques = np.flatnonzero(np.bincount(y_kept - y_min)) + y_min if y_kept.size else y_kept
    y_index = np.zeros(int(y_uniques[-1]) - y_min + 1 if y_kept.size else 1, dtype=np.int64)
    y_index[y_uniques - y_min] = np.arange(y_uniques.size)
    s_kept = sensor_code[keep]
    present_idx = [i for i in range(len(SENSOR_ORDER)) if np.any(s_kept == i)]
    n_years = len(y_uniques)
    # (cell, year) pairs in cell-then-year order, as the crosstab's index; counted, not sorted
    pair = np.asarray(c_codes, dtype=np.int64) * n_years + y_index[y_kept - y_min]
    size = len(c_uniques) * n_years
    counts = np.column_stack([np.bincount(pair[s_kept == i], minlength=size) for i in present_idx]) if present_idx \
        else np.zeros((size, 0), dtype=np.int64)
    seen = np.flatnonzero(counts.sum(axis=1) > 0)
    counts = counts[seen]
    shares = counts / counts.sum(axis=1, keepdims=True) if counts.size else counts.astype(float)
    out = pd.DataFrame({"cell": np.asarray(c_uniques)[seen // n_years], "year": y_uniques[seen % n_years]})
    for j, i in enumerate(present_idx):
        out[sensor_column(SENSOR_ORDER[i])] = shares[:, j]
    return out


def sensor_terms(shares: dict[str, np.ndarray]) -> tuple[list[str], str]:
    """Which sensor-share columns enter one period's regression, and why.

    The rule, per period (year), over that period's rows: the sensors with a positive share in
    some row are the ones that contributed. With fewer than two, nothing is added. Otherwise the
    newest of them is the reference (its offset is in the intercept) and each older one adds
    its share column if that share varies across the rows; a share equal in every row is
    collinear with the intercept and its offset cannot be told from the intercept (it is left
    out and said so).

    Parameters
    ----------
    shares
        ``sensor[<name>]`` -> the share per row of the period.

    Returns
    -------
    (columns, note)
        Columns to add (oldest first) and a sentence for summary.json.
    """
    present = _present_sensors(shares)
    if len(present) < 2:
        return [], f"one sensor ({present[0] if present else 'unknown'}): no sensor terms"
    reference = present[-1]
    cols: list[str] = []
    constant: list[str] = []
    for s in present[:-1]:
        v = shares[sensor_column(s)]
        (cols if np.nanmax(v) - np.nanmin(v) > 0 else constant).append(s)
    note = f"sensors {present}, reference {reference}"
    if cols:
        note += f"; share terms for {cols}"
    if constant:
        note += f"; {constant} have the same share in every cell (absorbed in the intercept)"
    return [sensor_column(s) for s in cols], note


def _present_sensors(shares: dict[str, np.ndarray]) -> list[str]:
    """The sensors with a positive share in some row, oldest first."""
    return [s for s in SENSOR_ORDER if sensor_column(s) in shares and np.nanmax(shares[sensor_column(s)], initial=0.0) > 0]


def panel_sensor_terms(shares: dict[str, np.ndarray], x: np.ndarray, n_units: int, n_periods: int, *,
                       time_effects: bool = False) -> tuple[list[str], str]:
    """Which sensor-share columns enter the fixed-effects panel (``panel_fe``), and why.

    The same rule as ``sensor_terms`` over the whole balanced panel, judged after the within
    transform the panel model applies: the newest sensor present is the reference; an older
    one adds its share column unless the cell effects (a cell seen by that sensor in the same
    share every year) or, with ``time_effects``, the year effects (the same share in every cell
    of a year, as when one sensor saw the whole city that summer) absorb it, or it is
    collinear with the x columns and the shares already taken.

    Parameters
    ----------
    shares
        ``sensor[<name>]`` -> the share per row, stacked time-major like ``x``.
    x
        The panel's other regressors (rows x k), stacked time-major.
    n_units, n_periods
        N and T of the balanced panel.
    time_effects
        Whether the panel model also sweeps out year effects.

    Returns
    -------
    (columns, note)
        Columns to add (oldest first) and a sentence for summary.json.
    """
    from uhi.stats.panel import within_transform

    present = _present_sensors(shares)
    if len(present) < 2:
        return [], f"one sensor ({present[0] if present else 'unknown'}): no sensor terms"
    x = np.asarray(x, dtype=float)
    design = within_transform(x if x.ndim == 2 else x[:, None], n_units, n_periods, time_effects=time_effects)
    rank = int(np.linalg.matrix_rank(design)) if design.shape[1] else 0
    cols: list[str] = []
    absorbed: list[str] = []
    for s in present[:-1]:
        col = within_transform(np.asarray(shares[sensor_column(s)], dtype=float), n_units, n_periods,
                               time_effects=time_effects)
        if np.max(np.abs(col)) <= 1e-12:
            absorbed.append(s)
            continue
        trial = np.column_stack([design, col])
        new_rank = int(np.linalg.matrix_rank(trial))
        if new_rank > rank:
            design, rank = trial, new_rank
            cols.append(s)
        else:
            absorbed.append(s)
    note = f"sensors {present}, reference {present[-1]}"
    if cols:
        note += f"; share terms for {cols}"
    if absorbed:
        effects = "cell and year effects" if time_effects else "cell effects"
        note += f"; {absorbed} absorbed by the {effects} or collinear with x (left out)"
    return [sensor_column(s) for s in cols], note

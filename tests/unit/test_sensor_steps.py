"""Sensor step check: overlap-year differences against scipy's Welch t-test, by hand on tiny data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from uhi.stats.sensors import sensor_steps


def test_overlap_year_difference_and_welch_se_match_scipy() -> None:
    rng = np.random.default_rng(3)
    l7 = 30.0 + rng.normal(0, 1.0, 5)
    l8 = 33.0 + rng.normal(0, 0.5, 4)  # OLI 3 C warmer: a step
    years = [2012] * 3 + [2013] * 9
    values = [29.0, 30.0, 31.0, *l7, *l8]
    sensors = ["ETM+"] * 3 + ["ETM+"] * 5 + ["OLI/TIRS"] * 4
    [row] = sensor_steps(years, values, sensors)  # 2012 has one sensor: nothing to compare
    assert (row["year"], row["older"], row["newer"], row["n_older"], row["n_newer"]) == (2013, "ETM+", "OLI/TIRS", 5, 4)
    assert row["difference"] == pytest.approx(l8.mean() - l7.mean(), abs=1e-12)
    ref = stats.ttest_ind(l8, l7, equal_var=False)
    assert row["difference"] / row["se"] == pytest.approx(ref.statistic, rel=1e-12)
    assert abs(ref.statistic) > 2.0 and row["step"] is True


def test_no_step_when_the_sensors_agree_and_unknown_or_merged_scenes_are_ignored() -> None:
    years = [2005] * 6
    values = [20.0, 21.0, 22.0, 20.5, 21.5, float("nan")]
    sensors = ["TM", "TM", "TM", "ETM+", "ETM+", "ETM+"]
    [row] = sensor_steps([*years, 2005], [*values, 99.0], [*sensors, None])
    assert row["difference"] == pytest.approx(21.0 - 21.0)
    # by hand: var(TM) = 1, var(ETM+) = 0.5; se = sqrt(1/3 + 0.5/2)
    assert row["se"] == pytest.approx(math.sqrt(1 / 3 + 0.25))
    assert row["step"] is False


def test_a_single_scene_of_a_sensor_gives_no_standard_error() -> None:
    [row] = sensor_steps([2013, 2013, 2013], [30.0, 31.0, 35.0], ["ETM+", "ETM+", "OLI/TIRS"])
    assert row["difference"] == pytest.approx(4.5) and math.isnan(row["se"]) and row["step"] is False

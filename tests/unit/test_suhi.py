"""Surface UHI: urban/rural classes, per-date intensity and anomaly on a hand-checkable panel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uhi.config import SuhiConfig
from uhi.suhi import classify_cells, suhi_series


def _line_of_cells():
    # 10 cells on a line, 100 m apart: 0-2 built, 3-8 vegetated, 9 water
    x = np.arange(10) * 100.0
    y = np.zeros(10)
    ndbi = np.array([0.3, 0.2, 0.25, -0.2, -0.3, -0.25, -0.2, -0.3, -0.1, -0.5])
    water = np.array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0.9])
    return x, y, ndbi, water


def test_nonbuilt_rural_reference_and_series():
    x, y, ndbi, water = _line_of_cells()
    classes = classify_cells(x, y, ndbi, water, None, SuhiConfig(rural="nonbuilt"))
    assert classes.urban.tolist() == [True] * 3 + [False] * 7
    assert classes.rural.tolist() == [False] * 3 + [True] * 6 + [False]
    assert classes.water[9]
    lst_day1 = np.array([35, 36, 37, 30, 29, 31, 30, 28, 32, 20], dtype=float)
    lst_day2 = lst_day1 - 5
    lst_day2[0] = np.nan
    panel = pd.DataFrame(
        {
            "date": np.repeat(pd.to_datetime(["2020-07-01", "2020-07-17"]), 10),
            "lst_c": np.r_[lst_day1, lst_day2],
        }
    )
    series, anomaly = suhi_series(panel, np.tile(np.arange(10), 2), classes)
    rural1 = lst_day1[3:9].mean()
    assert series["rural_lst_c"].iloc[0] == pytest.approx(rural1)
    assert series["urban_lst_c"].iloc[0] == pytest.approx(36.0)
    assert series["suhi_c"].iloc[0] == pytest.approx(36.0 - rural1)
    assert series["urban_lst_c"].iloc[1] == pytest.approx((31 + 32) / 2)  # NaN cell skipped
    assert series["n_urban"].tolist() == [3, 2]
    np.testing.assert_allclose(anomaly[:10], lst_day1 - rural1)
    assert "non-built" in series["method"].iloc[0]


def test_buffer_ring_and_site_coverage_urban():
    x, y, ndbi, water = _line_of_cells()
    site = np.array([0.4, 0.3, 0.2, 0, 0, 0, 0, 0, 0.01, 0])
    classes = classify_cells(x, y, ndbi, water, site, SuhiConfig(rural="buffer", buffer_m=250))
    assert classes.urban.tolist() == [True] * 3 + [False] * 7
    # cells 3 and 4 are within 250 m of cell 2; cell 9 is water
    assert classes.rural.tolist() == [False] * 3 + [True, True] + [False] * 5
    assert "250 m ring" in classes.method


def test_elevation_filter():
    x, y, ndbi, water = _line_of_cells()
    elev = np.array([10, 12, 14, 20, 300, 30, 40, 80, 70, 0], dtype=float)
    classes = classify_cells(
        x, y, ndbi, water, None, SuhiConfig(elevation_tolerance_m=50), elevation_m=elev
    )
    # urban median 12 m: rural cells above 62 m are dropped
    assert classes.rural.tolist() == [False] * 3 + [True, False, True, True, False, False, False]
    assert "+-50 m" in classes.method

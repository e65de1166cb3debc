"""Surface UHI: urban extent, rural reference outside it, per-date intensity and anomaly on hand-made grids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from uhi.config import SuhiConfig
from uhi.errors import NoDataError
from uhi.suhi import classify_cells, suhi_series

SIDE = 20  # 20 x 20 cells of 100 m
CELL = 100.0
PARK = (8, 8)  # a park cell in the middle of a 3 x 3 park inside the city
LAKE = (15, 10)  # a water cell just south of the city


def _idx(r: int, c: int) -> int:
    return r * SIDE + c


def _city_grid():
    """A 10 x 10 city (rows/cols 5-14) with a 3 x 3 park (rows/cols 7-9) inside, farmland around."""
    rows, cols = np.divmod(np.arange(SIDE * SIDE), SIDE)
    x = cols * CELL
    y = (SIDE - rows) * CELL
    city = (rows >= 5) & (rows <= 14) & (cols >= 5) & (cols <= 14)
    park = (rows >= 7) & (rows <= 9) & (cols >= 7) & (cols <= 9)
    ndbi = np.where(city & ~park, 0.3, -0.3)
    water = np.zeros(SIDE * SIDE)
    water[_idx(*LAKE)] = 0.9
    return x, y, ndbi, water, rows, cols


def test_a_park_inside_the_city_is_not_rural():
    x, y, ndbi, water, rows, cols = _city_grid()
    classes = classify_cells(x, y, ndbi, water, None, SuhiConfig(rural="buffer", buffer_m=250))
    park = _idx(*PARK)
    assert not classes.urban[park]  # the park is not built up ...
    assert classes.extent[park]  # ... but it lies inside the urban extent (an enclosed hole) ...
    assert not classes.rural[park]  # ... so it is not rural
    assert classes.urban.sum() == 100 - 9
    assert classes.extent.sum() == 100  # the 10 x 10 city with its park filled
    assert not (classes.rural & classes.extent).any()


def test_buffer_distance_band():
    x, y, ndbi, water, rows, cols = _city_grid()
    classes = classify_cells(x, y, ndbi, water, None, SuhiConfig(rural="buffer", buffer_m=250))
    # Euclidean distance from a cell centre to the nearest extent cell centre
    dr = np.maximum(np.maximum(5 - rows, rows - 14), 0)
    dc = np.maximum(np.maximum(5 - cols, cols - 14), 0)
    dist = np.hypot(dr, dc) * CELL
    expected = (dist > 0) & (dist <= 250)
    expected[_idx(*LAKE)] = False  # water is never rural
    np.testing.assert_array_equal(classes.rural, expected)
    rep = classes.rural_report
    # band: the nearest rural cell is one cell away, the farthest sqrt(2^2 + 1^2) cells
    assert rep["band_m"] == pytest.approx([100.0, np.hypot(200.0, 100.0)])
    assert rep["rural_cells"] == int(expected.sum()) == 4 * 10 * 2 + 4 * 3 - 1
    assert rep["rural_area_m2"] == pytest.approx(rep["rural_cells"] * CELL * CELL)
    assert "250 m" in classes.method


def test_equal_area_ring_matches_the_urban_extent():
    x, y, ndbi, water, rows, cols = _city_grid()
    area = np.full(x.size, CELL * CELL)
    classes = classify_cells(x, y, ndbi, water, None, SuhiConfig(rural="ring"), area_m2=area)
    rep = classes.rural_report
    assert rep["extent_area_m2"] == pytest.approx(100 * CELL * CELL)
    assert abs(rep["ring_area_m2"] - rep["extent_area_m2"]) <= CELL * CELL  # within one cell
    # rings of 100 m (40 cells), 141 m (4), 200 m (40), 224 m (8), 283 m (4) = 96, then 4 at 300 m
    assert rep["ring_width_m"] == pytest.approx(300.0)
    assert rep["rural_cells"] == 100 - 1  # the lake cell is in the ring but not rural
    assert not classes.rural[_idx(*PARK)]
    assert "Peng" in classes.method


def test_series_and_anomaly_against_hand_means():
    x, y, ndbi, water, rows, cols = _city_grid()
    classes = classify_cells(x, y, ndbi, water, None, SuhiConfig(rural="buffer", buffer_m=150))
    lst1 = np.where(classes.urban, 36.0, 30.0)
    lst1[_idx(*PARK)] = 25.0  # a cool park: counting it as rural would lower the reference
    lst1[_idx(2, 2)] = 10.0  # far outside the buffer: not in the reference either
    lst2 = lst1 - 5
    lst2[_idx(5, 5)] = np.nan
    dates = pd.to_datetime(["2020-07-01", "2020-07-17"]).to_numpy()
    series, anomaly = suhi_series(dates, np.stack([lst1, lst2]), classes)
    assert series["rural_lst_c"].iloc[0] == pytest.approx(30.0)
    assert series["urban_lst_c"].iloc[0] == pytest.approx(36.0)
    assert series["suhi_c"].tolist() == pytest.approx([6.0, 6.0])
    assert series["n_urban"].tolist() == [91, 90]
    assert series["n_rural"].tolist() == [classes.rural.sum()] * 2
    np.testing.assert_allclose(anomaly[0], lst1 - 30.0)


def test_site_coverage_defines_urban_when_buildings_exist():
    x, y, ndbi, water, rows, cols = _city_grid()
    site = np.where(ndbi > 0, 0.3, 0.0)
    site[_idx(3, 3)] = 0.04  # below urban_site_coverage 0.05: a farm house, not urban
    classes = classify_cells(x, y, -np.abs(ndbi), water, site, SuhiConfig(rural="buffer", buffer_m=250))
    assert classes.urban.sum() == 91
    assert not classes.urban[_idx(3, 3)]


def test_elevation_filter():
    x, y, ndbi, water, rows, cols = _city_grid()
    elev = np.where(rows < 5, 300.0, 20.0)  # a plateau north of the city
    classes = classify_cells(
        x, y, ndbi, water, None, SuhiConfig(rural="buffer", buffer_m=250, elevation_tolerance_m=50),
        elevation_m=elev,
    )
    assert classes.rural.sum() > 0
    assert not classes.rural[rows < 5].any()
    assert "+-50 m" in classes.method


def test_few_rural_cells_warn_and_name_the_fix():
    x, y, ndbi, water, rows, cols = _city_grid()
    classes = classify_cells(x, y, ndbi, water, None, SuhiConfig(rural="buffer", buffer_m=100))
    # 40 cells at 100 m minus the lake: 39 >= 30 and >= 5 % of the 91 urban cells: no warning
    assert classes.rural_report["warning"] is None
    keep = (rows >= 4) & (rows <= 15) & (cols >= 4) & (cols <= 15)  # an AOI of the city + one cell
    keep &= ~((rows == 4) & (cols < 14))  # ... missing most of its northern margin
    keep &= ~((cols == 4) | (cols == 15))
    classes = classify_cells(x[keep], y[keep], ndbi[keep], water[keep], None, SuhiConfig(rural="buffer", buffer_m=100))
    assert classes.rural_report["rural_cells"] < 30
    assert "enlarge city.aoi" in classes.rural_report["warning"]


def test_ring_cut_by_the_aoi_warns():
    x, y, ndbi, water, rows, cols = _city_grid()
    keep = (rows >= 4) & (rows <= 15) & (cols >= 4) & (cols <= 15)
    classes = classify_cells(x[keep], y[keep], ndbi[keep], water[keep], None, SuhiConfig(rural="ring"))
    assert "equal-area ring is cut by the AOI" in classes.rural_report["warning"]


def test_an_aoi_that_is_all_water_is_an_error():
    x, y, ndbi, _, _, _ = _city_grid()
    with pytest.raises(NoDataError, match="every observed cell is more than half water"):
        classify_cells(x, y, ndbi, np.full(x.size, 0.95), None, SuhiConfig())


def test_land_without_a_city_warns_and_gives_no_suhi():
    x, y, _, water, _, _ = _city_grid()
    classes = classify_cells(x, y, np.full(x.size, -0.3), water, None, SuhiConfig())
    assert not classes.urban.any() and not classes.rural.any()
    assert classes.rural_report["warning"].startswith("no urban cell among 400 cells: no SUHI")
    assert "check city.aoi" in classes.rural_report["warning"]


def test_an_aoi_that_is_all_city_is_an_error():
    x, y, _, water, _, _ = _city_grid()
    with pytest.raises(NoDataError, match="no rural reference cell.*enlarge city.aoi"):
        classify_cells(x, y, np.full(x.size, 0.3), np.zeros(x.size), None, SuhiConfig())


def test_nonbuilt_is_rejected_with_the_replacement_named():
    with pytest.raises(ValidationError, match="parks inside the city.*'buffer'.*'ring'"):
        SuhiConfig(rural="nonbuilt")


def test_the_method_sentence_carries_the_rural_figures():
    x, y, ndbi, water, rows, cols = _city_grid()
    classes = classify_cells(x, y, ndbi, water, None, SuhiConfig(rural="buffer", buffer_m=250),
                             area_m2=np.full(x.size, CELL * CELL))
    # 91 rural cells of 1 ha; band 100-224 m (see test_buffer_distance_band)
    assert classes.method.endswith("rural reference: 91 cells, 0.91 km2, 100-224 m from the urban extent")

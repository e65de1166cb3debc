"""Yearly mean composites summed in memory (uhi.raster.composite) against numpy's own mean."""

from __future__ import annotations

import numpy as np
import pytest

from uhi.raster.composite import YearlyMeans


def test_yearly_means_equal_numpy_means_of_the_clear_pixels():
    rng = np.random.default_rng(11)
    shape = (37, 53)
    scenes = []
    for _ in range(5):
        lst = (25 + 8 * rng.standard_normal(shape)).astype(np.float32)
        lst[rng.random(shape) < 0.35] = np.nan
        scenes.append({"lst_c": lst, "ndvi": np.full(shape, np.nan, dtype=np.float32)})
    scenes[0]["lst_c"][0, 0] = np.nan
    for s in scenes:
        s["lst_c"][0, 0] = np.nan  # a pixel no scene saw clear
    means = YearlyMeans()
    for s in scenes:
        means.add("grid", 2020, s)
    year = means.pop(2020)
    assert year is not None and year.scenes == 5 and year.grid == "grid"
    stack = np.stack([s["lst_c"] for s in scenes]).astype(np.float64)
    with np.errstate(invalid="ignore"), pytest.warns(RuntimeWarning):  # the never-seen pixel
        expected = np.nanmean(stack, axis=0).astype(np.float32)
    # numpy's pairwise nanmean may round differently from a running sum: equal to float32
    np.testing.assert_allclose(year.means["lst_c"], expected, rtol=2e-7, equal_nan=True)
    # bit for bit against the same running float64 sum in scene order
    total = np.zeros(shape)
    count = np.zeros(shape)
    for layer in stack:
        ok = ~np.isnan(layer)
        total[ok] += layer[ok]
        count[ok] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        running = np.where(count > 0, total / count, np.nan).astype(np.float32)
    np.testing.assert_array_equal(year.means["lst_c"], running)
    assert np.isnan(year.means["lst_c"][0, 0])
    assert "ndvi" not in year.means  # never clear anywhere: no composite
    assert means.years() == [] and means.pop(2020) is None


def test_a_year_lives_on_the_grid_most_of_its_scenes_share():
    means = YearlyMeans()
    a = {"lst_c": np.ones((2, 2), dtype=np.float32)}
    b = {"lst_c": np.full((3, 3), 5.0, dtype=np.float32)}
    means.add("a", 2019, a)
    means.add("b", 2019, b)
    means.add("b", 2019, b)
    year = means.pop(2019)
    assert year is not None and year.grid == "b" and year.scenes == 2
    np.testing.assert_array_equal(year.means["lst_c"], np.full((3, 3), 5.0, dtype=np.float32))
    with pytest.raises(ValueError, match="shape"):
        means.add("b", 2020, b)
        means.add("b", 2020, a)

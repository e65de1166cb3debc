"""cell_year_means against pandas' own groupby mean, bit for bit."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uhi.stats.grouped import cell_year_means


def _panel(seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 5000
    cats = [f"0231{i:04d}" for i in range(60)]  # some categories never used
    cell = pd.Categorical(rng.choice(cats[:50], n), categories=cats)
    cell[rng.random(n) < 0.01] = np.nan  # rows without a cell are no group
    year = rng.choice([1999, 2003, 2004, 2020], n).astype(np.int64)  # gaps between years
    values = rng.normal(30.0, 1e6, n) + rng.normal(0, 1e-9, n)  # large and tiny parts: compensation matters
    values[rng.random(n) < 0.2] = np.nan
    values[rng.random(n) < 0.002] = np.inf
    values[rng.random(n) < 0.002] = -np.inf
    other = rng.random(n)
    other[cell == cats[3]] = np.nan  # a cell whose every value is NaN keeps its rows (NaN mean)
    return pd.DataFrame({"cell": cell, "year": year, "lst_c": values, "ndvi": other})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cell_year_means_equal_pandas_groupby_bit_for_bit(seed: int) -> None:
    panel = _panel(seed)
    cols = ["lst_c", "ndvi"]
    expected = panel.groupby(["cell", "year"], sort=True, observed=True)[cols].mean().reset_index()
    got = cell_year_means(panel["cell"], panel["year"].to_numpy(), {c: panel[c].to_numpy() for c in cols})
    # exact: the same Kahan-compensated sums in the same row order, the same group order and dtypes
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_cell_year_means_of_plain_strings_go_through_pandas() -> None:
    panel = _panel(3)
    panel["cell"] = panel["cell"].astype(object)
    cols = ["lst_c"]
    expected = panel.dropna(subset=["cell"]).groupby(["cell", "year"], sort=True)[cols].mean().reset_index()
    got = cell_year_means(panel["cell"], panel["year"].to_numpy(), {"lst_c": panel["lst_c"].to_numpy()})
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_compute_cell_years_equal_pandas_groupby_bit_for_bit() -> None:
    """compute.gpkg's cell_years layer from the date-major panel, against pandas' groupby."""
    from uhi.panel import DatePanel
    from uhi.stages.compute import _YEAR_VARIABLES, _cell_years

    rng = np.random.default_rng(7)
    n, days = 40, 9
    cells = np.array([f"0231{i:04d}" for i in rng.permutation(n)], dtype=object)  # not sorted
    years = np.array([2014, 2014, 2014, 2016, 2016, 2017, 2017, 2017, 2017], dtype=np.int64)
    panel = pd.DataFrame({"cell": np.tile(cells, days), "year": np.repeat(years, n)})
    for var in _YEAR_VARIABLES:
        values = rng.normal(30.0, 1e6, n * days) + rng.normal(0, 1e-9, n * days)
        values[rng.random(n * days) < 0.25] = np.nan
        panel[var] = values
    g = panel.groupby(["cell", "year"], sort=True)
    expected = g[list(_YEAR_VARIABLES)].mean()
    expected.insert(0, "dates", g["lst_c"].count().astype("int64"))
    expected = expected.reset_index()
    dates = np.array([f"{y}-07-{d + 1:02d}" for d, y in enumerate(years)], dtype="datetime64[ns]")
    date_major = DatePanel(
        cells=cells, dates=dates, scene_ids=np.array(["s"] * days, dtype=object),
        platforms=np.array(["landsat-8"] * days, dtype=object),
        values={var: panel[var].to_numpy().reshape(days, n) for var in _YEAR_VARIABLES},
    )
    pd.testing.assert_frame_equal(_cell_years(date_major), expected, check_exact=True)

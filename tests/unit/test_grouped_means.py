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

"""Regularising irregular per-cell observations: summer means, counts, duplicates, gaps."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uhi.errors import InputError
from uhi.stats.series import MAX_STEPS, infer_step, regularise, step_labels


def _panel() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cell": ["a", "a", "a", "a", "a", "b", "b", "c"],
            "date": pd.to_datetime(
                ["2018-06-03", "2018-08-20", "2018-08-20", "2018-04-01", "2020-07-11",
                 "2018-07-01", "2019-07-09", "2019-06-30"]
            ),
            "lst_c": [30.0, 34.0, 36.0, 99.0, 31.0, 28.0, np.nan, np.nan],
        }
    )


def test_summer_means_counts_and_duplicates() -> None:
    rs = regularise(_panel(), ["lst_c"], step="summer", months=(6, 7, 8))
    assert rs.steps.tolist() == [2018, 2019, 2020]
    assert rs.ids.tolist() == ["a", "b", "c"]
    v, n = rs.values["lst_c"], rs.counts["lst_c"]
    # a 2018: 30 and the duplicated 2018-08-20 averaged to 35 first -> (30 + 35) / 2; April dropped
    assert v[0, 0] == pytest.approx(32.5) and n[0, 0] == 2
    assert np.isnan(v[0, 1]) and n[0, 1] == 0  # a gap year stays as a NaN step
    assert v[0, 2] == 31.0 and v[1, 0] == 28.0
    assert np.isnan(v[2]).all() and n[2].sum() == 0  # all-NaN cell kept, not dropped
    assert rs.report["duplicate_rows"] == 2 and rs.report["rows_outside_months"] == 1
    assert rs.observed_steps("lst_c").tolist() == [2, 1, 0]


def test_month_step_and_labels() -> None:
    rs = regularise(_panel(), ["lst_c"], step="month")
    assert step_labels(rs.steps[:3], "month") == ["2018-04", "2018-05", "2018-06"]
    assert rs.n_steps == 28  # 2018-04 .. 2020-07
    assert rs.values["lst_c"][0, 0] == 99.0


def test_index_step_with_gaps_and_end_alignment() -> None:
    t = pd.DataFrame({"id": ["x"] * 3 + ["y"] * 2, "t": [1, 2, 4, 10, 11], "v": [1.0, 2.0, 4.0, 7.0, 8.0]})
    common = regularise(t, ["v"], id_col="id", time_col="t", step="index")
    assert common.steps.tolist() == list(range(1, 12))
    end = regularise(t, ["v"], id_col="id", time_col="t", step="index", align="end")
    assert end.steps.tolist() == [-3, -2, -1, 0]
    np.testing.assert_array_equal(end.values["v"][0], [1.0, 2.0, np.nan, 4.0])
    np.testing.assert_array_equal(end.values["v"][1], [np.nan, np.nan, 7.0, 8.0])
    assert end.last_step.tolist() == [4.0, 11.0]


def test_bad_columns() -> None:
    with pytest.raises(InputError, match=r"column\(s\) \['ndvi'\] not in the table"):
        regularise(_panel(), ["ndvi"])
    bad = _panel().assign(lst_c="hot")
    with pytest.raises(InputError, match="not numeric"):
        regularise(bad, ["lst_c"])
    with pytest.raises(InputError, match="not dates or numbers"):
        regularise(_panel().assign(date=["x"] * 8), ["lst_c"], step="year")


def test_infer_step() -> None:
    assert infer_step(pd.Series([1871, 1872])) == "index"
    assert infer_step(pd.Series(pd.date_range("2000-01-01", periods=24, freq="MS"))) == "month"
    assert infer_step(pd.Series(pd.to_datetime(["2014-07-01", "2015-07-03", "2016-06-30"]))) == "year"


def test_infinite_values_are_dropped_counted_and_warned(caplog) -> None:
    t = pd.DataFrame({"id": ["x"] * 4, "t": [1, 2, 3, 4], "v": [1.0, np.inf, -np.inf, 4.0], "w": [1.0, 2.0, 3.0, np.nan]})
    rs = regularise(t, ["v", "w"], id_col="id", time_col="t", step="index")
    np.testing.assert_array_equal(rs.values["v"][0], [1.0, np.nan, np.nan, 4.0])
    assert rs.counts["v"][0].tolist() == [1, 0, 0, 1]
    # NaN is a missing value, not an infinite one: only v is reported
    assert rs.report["infinite_values_dropped"] == {"v": 2}
    assert "2 infinite value(s) of 'v'" in caplog.text


def test_a_grid_longer_than_max_steps_is_refused_before_allocation() -> None:
    # Unix seconds 30 days apart: as index steps the grid would be 9 x 2,592,000 + 1 long
    secs = 1_600_000_000 + 2_592_000 * np.arange(10)
    t = pd.DataFrame({"id": ["x"] * 10, "t": secs, "v": np.arange(10.0)})
    with pytest.raises(InputError, match=r"spans 23,328,001 index steps.*look like Unix epoch times"):
        regularise(t, ["v"], id_col="id", time_col="t", step="index")
    with pytest.raises(InputError, match="look like Unix epoch times"):
        regularise(t, ["v"], id_col="id", time_col="t", step="year")  # integers read as years
    # small integers far apart are not epoch times, and MAX_STEPS itself is allowed
    far = pd.DataFrame({"id": ["x", "x"], "t": [0, MAX_STEPS], "v": [1.0, 2.0]})
    with pytest.raises(InputError, match="give consecutive step numbers"):
        regularise(far, ["v"], id_col="id", time_col="t", step="index")
    edge = regularise(far.assign(t=[1, MAX_STEPS]), ["v"], id_col="id", time_col="t", step="index")
    assert edge.n_steps == MAX_STEPS


@pytest.mark.parametrize("duplicates", [False, True])
def test_rows_mask_equals_the_table_without_those_rows(duplicates: bool) -> None:
    """``rows=`` (the forecast stage's water and unknown cells, left in the 16M-row panel rather
    than copied out) must give what the same call gives on the table holding only those rows:
    ids in first-seen order, means, counts and the report (rows, months, duplicates)."""
    rng = np.random.default_rng(11)
    n = 400
    table = pd.DataFrame({
        "cell": pd.Categorical(rng.choice([f"c{i}" for i in range(30)], n)),
        "date": pd.to_datetime("2015-05-01") + pd.to_timedelta(rng.integers(0, 9 * 365, n), unit="D"),
        "lst_c": rng.normal(30, 4, n),
        "ndvi": np.where(rng.uniform(size=n) < 0.2, np.nan, rng.uniform(-0.2, 0.9, n)),
    })
    if duplicates:
        table = pd.concat([table, table.iloc[:25]], ignore_index=True)  # the same (cell, date) twice
    rows = rng.uniform(size=len(table)) < 0.7
    rows[table["cell"].to_numpy() == "c3"] = False  # a cell left out entirely
    masked = regularise(table, ["lst_c", "ndvi"], rows=rows)
    reference = regularise(table[rows].reset_index(drop=True), ["lst_c", "ndvi"])
    assert (masked.report["duplicate_rows"] > 0) == duplicates
    assert masked.report == reference.report
    assert list(masked.ids) == list(reference.ids) and "c3" not in list(masked.ids)
    np.testing.assert_array_equal(masked.steps, reference.steps)
    for var in ("lst_c", "ndvi"):
        np.testing.assert_array_equal(masked.values[var], reference.values[var])
        np.testing.assert_array_equal(masked.counts[var], reference.counts[var])

"""uhi.panel: the lean panel reader returns what pandas.read_parquet plus filtering would."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from uhi.panel import latest_year, panel_columns, read_panel


def _panel(n_cells: int = 50, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dates = pd.to_datetime(["2019-05-30", "2019-07-02", "2019-08-19", "2020-06-11", "2020-09-02", "2021-07-15"])
    cells = [f"19/{rng.integers(1e5)}/{i}" for i in range(n_cells)]
    rows = [(c, d) for d in dates for c in rng.permutation(cells)]
    frame = pd.DataFrame(rows, columns=["cell", "date"])
    frame["year"] = frame["date"].dt.year.astype("int64")
    frame["scene_id"] = "LC08_" + frame["date"].dt.strftime("%Y%m%d")
    frame["lst_c"] = rng.normal(30, 3, len(frame))
    frame.loc[rng.random(len(frame)) < 0.1, "lst_c"] = np.nan
    frame["ndvi"] = rng.uniform(-0.2, 0.8, len(frame))
    return frame


def _write(frame: pd.DataFrame, path: Path, row_group_size: int, statistics: bool = True) -> Path:
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path,
                   row_group_size=row_group_size, write_statistics=statistics)
    return path


def test_columns_months_and_categorical_cells(tmp_path: Path) -> None:
    frame = _panel()
    path = _write(frame, tmp_path / "panel.parquet", row_group_size=70)  # groups straddle dates
    got = read_panel(path, ["cell", "year", "lst_c", "not_a_column"], months=(6, 7, 8))
    assert list(got.columns) == ["cell", "year", "lst_c"]
    assert isinstance(got["cell"].dtype, pd.CategoricalDtype)
    assert got["cell"].cat.categories.is_monotonic_increasing
    want = frame[frame["date"].dt.month.isin([6, 7, 8])][["cell", "year", "lst_c"]].reset_index(drop=True)
    assert len(got) == len(want) == 4 * 50
    pd.testing.assert_frame_equal(got.assign(cell=got["cell"].astype(object)), want)
    # grouping by the categorical orders cells as the plain strings do
    a = got.groupby(["cell", "year"], observed=True)["lst_c"].mean()
    b = want.groupby(["cell", "year"])["lst_c"].mean()
    assert list(a.index.get_level_values(0).astype(str)) == list(b.index.get_level_values(0))
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


def test_years_filter_and_latest_year(tmp_path: Path) -> None:
    frame = _panel()
    for stats in (True, False):
        path = _write(frame, tmp_path / f"p{stats}.parquet", row_group_size=64, statistics=stats)
        assert latest_year(path) == 2021
        got = read_panel(path, ["cell", "ndvi"], years=[2020])
        assert len(got) == 2 * 50 and list(got.columns) == ["cell", "ndvi"]
        np.testing.assert_array_equal(np.sort(got["ndvi"].to_numpy()),
                                      np.sort(frame.loc[frame["year"] == 2020, "ndvi"].to_numpy()))
    assert panel_columns(path) == list(frame.columns)



def test_a_year_is_read_from_its_row_groups_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frame = _panel()
    path = _write(frame, tmp_path / "panel.parquet", row_group_size=50)  # one date per row group
    read: list[int] = []
    real = pq.ParquetFile.read_row_group
    monkeypatch.setattr(pq.ParquetFile, "read_row_group", lambda self, i, **kw: (read.append(i), real(self, i, **kw))[1])
    got = read_panel(path, ["cell", "lst_c"], months=(6, 7, 8), years=[2021])
    assert read == [5]  # the sixth date, 2021-07-15
    want = frame[(frame["year"] == 2021)][["cell", "lst_c"]].reset_index(drop=True)
    pd.testing.assert_frame_equal(got.assign(cell=got["cell"].astype(object)), want)
    read.clear()
    none = read_panel(path, ["cell", "lst_c"], years=[2022])
    assert read == [] and none.empty and list(none.columns) == ["cell", "lst_c"]


def test_empty_panel(tmp_path: Path) -> None:
    path = _write(_panel().iloc[:0], tmp_path / "empty.parquet", row_group_size=10)
    assert latest_year(path) is None
    got = read_panel(path, ["cell", "lst_c"], months=(7,))
    assert got.empty and list(got.columns) == ["cell", "lst_c"]


@pytest.mark.parametrize("months", [(7,), (1, 2)])
def test_months_without_matches_give_no_rows(tmp_path: Path, months: tuple[int, ...]) -> None:
    frame = _panel()
    path = _write(frame, tmp_path / "panel.parquet", row_group_size=100)
    got = read_panel(path, ["lst_c"], months=months)
    assert len(got) == int(frame["date"].dt.month.isin(months).sum())

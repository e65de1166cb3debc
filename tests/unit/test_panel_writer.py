"""compute's panel without a pandas table: the Parquet writer, the by-date sheet, SUHI and the
cell_years layer from the date-major arrays, each against pandas on the long table built here."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pyogrio
from conftest import require_program, under_ci

from uhi.panel import DatePanel, read_panel
from uhi.writers.parquet import write_panel

VARIABLES = ("lst_c", "ndvi", "lst_c_min", "valid_share", "water_share", "lst_uncertainty_k")


def _panel(n: int = 37, seed: int = 5) -> DatePanel:
    rng = np.random.default_rng(seed)
    dates = np.array(["2019-06-03", "2019-07-21", "2020-06-05", "2020-08-24", "2021-07-11"], dtype="datetime64[ns]")
    k = len(dates)
    values = {}
    for var in VARIABLES:
        v = rng.normal(30.0, 1e4, (k, n)) + rng.normal(0.0, 1e-7, (k, n))
        v[rng.random((k, n)) < 0.2] = np.nan
        values[var] = v
    values["lst_c"][1] = np.nan  # a date without any LST
    values["lst_c_min"] = np.round(values["lst_c_min"], 1)  # few distinct values, as pixel minima
    return DatePanel(
        cells=np.array([f"0231{i:05d}" for i in rng.permutation(n)], dtype=object),
        dates=dates,
        scene_ids=np.array([f"LC08_{i}" for i in range(k - 1)] + ["LC08_a+LC09_b"], dtype=object),
        platforms=np.array(["landsat-8"] * (k - 1) + ["landsat-8+landsat-9"], dtype=object),
        values=values,
    )


def _long(panel: DatePanel) -> pd.DataFrame:
    """The long table row by row, in the date-major order compute writes (date, then cell)."""
    records = []
    for d, date in enumerate(panel.dates):
        for i, cell in enumerate(panel.cells):
            rec = {"cell": cell, "date": pd.Timestamp(date), "year": pd.Timestamp(date).year,
                   "scene_id": panel.scene_ids[d], "platform": panel.platforms[d]}
            rec.update({var: panel.values[var][d, i] for var in panel.values})
            records.append(rec)
    frame = pd.DataFrame.from_records(records)
    frame["year"] = frame["year"].astype("int64")
    frame["date"] = frame["date"].astype("datetime64[ns]")
    return frame


def test_write_panel_equals_pandas_to_parquet(tmp_path: Path) -> None:
    panel = _panel()
    frame = _long(panel)
    ref = tmp_path / "ref.parquet"
    frame.to_parquet(ref, index=False, row_group_size=64)
    got = write_panel(panel, tmp_path / "panel.parquet", row_group_rows=64)  # groups straddle dates

    a, b = pq.read_table(got), pq.read_table(ref)
    assert a.schema.equals(b.schema, check_metadata=True)  # strings stay strings, pandas metadata kept
    assert a.equals(b)  # NaN written as null, as pandas writes it
    pd.testing.assert_frame_equal(pd.read_parquet(got), frame)
    meta = pq.ParquetFile(got).metadata
    assert meta.num_row_groups == math.ceil(len(frame) / 64)
    assert meta.row_group(0).column(0).has_dictionary_page  # cell
    # uhi's own reader: the same frame from either file, year filter by statistics included
    for kwargs in ({}, {"years": [2020]}, {"months": [6]}):
        pd.testing.assert_frame_equal(
            read_panel(got, ["cell", "year", "lst_c", "platform"], **kwargs),
            read_panel(ref, ["cell", "year", "lst_c", "platform"], **kwargs),
        )


def test_write_panel_keeps_a_city_sized_cell_dictionary(tmp_path: Path) -> None:
    """pyarrow's 1 MB dictionary page would turn 60k 19-digit keys back into plain strings."""
    n = 60_000
    panel = DatePanel(
        cells=np.array([f"{i:019d}" for i in range(n)], dtype=object),
        dates=np.array(["2020-07-01", "2020-07-17"], dtype="datetime64[ns]"),
        scene_ids=np.array(["a", "b"], dtype=object), platforms=np.array(["landsat-8"] * 2, dtype=object),
        values={"lst_c": np.arange(2.0 * n).reshape(2, n)},
    )
    path = write_panel(panel, tmp_path / "panel.parquet")
    f = pq.ParquetFile(path)
    cells = f.read(columns=["cell"]).column("cell")
    assert cells.type == pa.string() and cells.to_pylist() == list(panel.cells) * 2
    # one dictionary page of the 60k keys (4-byte length + 19 digits each) and 120k codes of
    # at most 4 bytes; a fallback to plain strings after pyarrow's 1 MB page writes the ~75k
    # keys past it again (23 bytes each): 2.7 MB and more
    assert f.metadata.row_group(0).column(0).total_uncompressed_size < n * 23 + 2 * n * 4
    # one platform on both dates: a dictionary of one value (a repeated dictionary value made
    # pyarrow write 120k plain strings, different bytes each time), and the same bytes twice
    platform = f.metadata.row_group(0).column(f.schema_arrow.names.index("platform"))
    assert platform.has_dictionary_page and platform.total_uncompressed_size < 1000
    again = write_panel(panel, tmp_path / "again.parquet")
    assert again.read_bytes() == path.read_bytes()


def test_by_date_sheet_equals_pandas_groupby() -> None:
    from uhi.stages.compute import _by_date

    panel = _panel()
    variables = ("lst_c", "ndvi", "ndbi", "mndwi", "albedo", "valid_share", "water_share", "water_lst_c")
    rng = np.random.default_rng(1)
    values = dict(panel.values)
    for var in (*variables, "lst_uncertainty_k"):
        if var not in values:
            values[var] = np.where(rng.random((panel.n_dates, panel.n_cells)) < 0.3, np.nan,
                                   rng.normal(0.2, 1e3, (panel.n_dates, panel.n_cells)))
    panel = DatePanel(panel.cells, panel.dates, panel.scene_ids, panel.platforms, values)
    long = _long(panel)
    g = long.groupby("date", sort=True)
    expected = pd.DataFrame({
        "scene_id": g["scene_id"].first(),
        "cells_with_lst": g["lst_c"].count(),
        "lst_c_mean": g["lst_c"].mean(),
        "lst_c_std": g["lst_c"].std(),
        "lst_c_min": g["lst_c"].min(),
        "lst_c_max": g["lst_c"].max(),
        **{f"{v}_mean": g[v].mean() for v in variables[1:]},
        "lst_uncertainty_k_median": g["lst_uncertainty_k"].median(),
    }).reset_index()
    pd.testing.assert_frame_equal(_by_date(panel), expected, check_exact=True)


def test_suhi_series_equals_pandas_groupby_bit_for_bit() -> None:
    from uhi.suhi import SuhiClasses, suhi_series

    panel = _panel()
    rng = np.random.default_rng(2)
    urban = rng.random(panel.n_cells) < 0.4
    rural = ~urban & (rng.random(panel.n_cells) < 0.7)
    classes = SuhiClasses(urban=urban, rural=rural, water=np.zeros(panel.n_cells, bool), method="m",
                          extent=urban, rural_report={})
    series, anomaly = suhi_series(panel.dates, panel.values["lst_c"], classes)
    long = _long(panel)
    pos = np.tile(np.arange(panel.n_cells), panel.n_dates)
    long["urban"] = np.where(urban[pos], long["lst_c"], np.nan)
    long["rural"] = np.where(rural[pos], long["lst_c"], np.nan)
    g = long.groupby("date", sort=True)
    assert series["date"].tolist() == list(g.groups)
    np.testing.assert_array_equal(series["urban_lst_c"], g["urban"].mean())
    np.testing.assert_array_equal(series["rural_lst_c"], g["rural"].mean())
    np.testing.assert_array_equal(series["n_urban"], g["urban"].count())
    np.testing.assert_array_equal(series["n_rural"], g["rural"].count())
    np.testing.assert_array_equal(series["suhi_c"], g["urban"].mean() - g["rural"].mean())
    want = long["lst_c"] - g["rural"].transform("mean")
    np.testing.assert_array_equal(anomaly.ravel(), want.to_numpy())
    assert list(series.columns) == ["date", "urban_lst_c", "rural_lst_c", "suhi_c", "n_urban", "n_rural", "method"]


def test_cell_years_arrow_layer_reads_back_as_the_pandas_groupby(tmp_path: Path) -> None:
    from uhi.stages.compute import _YEAR_VARIABLES, _cell_year_arrays, _cell_years_table
    from uhi.writers.gpkg import write_gpkg

    base = _panel()
    rng = np.random.default_rng(3)
    values = {var: base.values.get(var, rng.normal(0.5, 2.0, (base.n_dates, base.n_cells))) for var in _YEAR_VARIABLES}
    panel = DatePanel(base.cells, base.dates, base.scene_ids, base.platforms, values)
    table = _cell_years_table(panel.cells, *_cell_year_arrays(panel))
    path = write_gpkg(tmp_path / "c.gpkg", {"cell_years": table, "frame": table.to_pandas()})

    long = _long(panel)
    g = long.groupby(["cell", "year"], sort=True)
    expected = g[list(_YEAR_VARIABLES)].mean()
    expected.insert(0, "dates", g["lst_c"].count().astype("int64"))
    expected = expected.reset_index()
    got = pyogrio.read_dataframe(path, layer="cell_years", use_arrow=True)
    pd.testing.assert_frame_equal(pd.DataFrame(got), expected, check_exact=True)
    # the same types as the DataFrame path gives the same table
    a, b = pyogrio.read_info(path, layer="cell_years"), pyogrio.read_info(path, layer="frame")
    assert list(a["fields"]) == list(b["fields"]) and list(a["ogr_types"]) == list(b["ogr_types"])
    assert a["features"] == len(expected)
    if shutil.which("ogrinfo") or under_ci():  # the system's own GDAL opens it too (required under CI)
        ogrinfo = require_program("ogrinfo", fix="apt-get install -y gdal-bin (.ci/run installs it)")
        out = subprocess.run([ogrinfo, "-so", "-al", str(path)], capture_output=True, text=True, check=True).stdout
        assert f"Feature Count: {len(expected)}" in out

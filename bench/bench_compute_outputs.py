"""`make bench` rows for compute after the scene pass (issue 19): the panel from its date-major
arrays against the pandas table compute built before, part by part, in one process.

A seeded synthetic panel of 100,000 cells x 42 dates over 7 summers (a quarter of the 30 km
demo city's 389,375 cells, so that `make bench` stays near 3.5 GB; the pandas side needs about
13 GB at the city's size: ``BENCH_COMPUTE_OUTPUTS_CELLS=389375`` runs it), values with 20 % NaN. Each row times
uhi's path (``uhi_s``, CPU seconds in the note) and the former pandas path on the same values
(``anchor_s``) and checks they give the same result:

- ``panel.parquet``: ``write_panel`` from the arrays against building the long pandas table
  and converting it to Arrow row group by row group (the same Arrow table read back);
- ``by-date sheet``: the workbook's per-date statistics against ``groupby("date")``;
- ``SUHI series``: per-date urban/rural means and the anomaly against ``groupby("date")``;
- ``cell_years``: the GeoPackage's per cell and year means against ``groupby(["cell", "year"])``.

Run alone: ``python bench/run.py compute_outputs`` (about 2 minutes and 13 GB at the city's
size, most of it the pandas side's table and groupbys; a quarter of both at the default). Prints one JSON line per row.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CELLS = int(os.environ.get("BENCH_COMPUTE_OUTPUTS_CELLS", "100000"))
YEARS = range(2014, 2021)
DATES_PER_YEAR = 6


def _panel(n: int) -> Any:
    from uhi.panel import DatePanel

    rng = np.random.default_rng(19)
    dates = np.array(
        [f"{y}-{6 + d // 2:02d}-{1 + 14 * (d % 2):02d}" for y in YEARS for d in range(DATES_PER_YEAR)],
        dtype="datetime64[ns]",
    )
    k = len(dates)
    names = ("lst_c", "ndvi", "ndbi", "mndwi", "albedo", "lst_c_std", "lst_c_min", "lst_c_max",
             "valid_share", "water_share", "water_lst_c", "lst_uncertainty_k", "anomaly_c")
    values = {}
    for name in names:
        v = rng.normal(30.0, 5.0, (k, n))
        v[rng.random((k, n)) < 0.2] = np.nan
        values[name] = v
    return DatePanel(
        cells=np.array([f"0231{i:015d}" for i in rng.permutation(n)], dtype=object),
        dates=dates,
        scene_ids=np.array([f"LC08_L2SP_042025_{str(d)[:10].replace('-', '')}" for d in dates], dtype=object),
        platforms=np.array(["landsat-8"] * k, dtype=object),
        values=values,
    )


def _timed(fn: Any, *args: Any) -> tuple[Any, float, float]:
    w, c = time.perf_counter(), time.process_time()
    out = fn(*args)
    return out, time.perf_counter() - w, time.process_time() - c


def _pandas_parquet(frame: Any, path: Path) -> None:
    """What compute did before: the long pandas table to Arrow, one row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from uhi.writers.parquet import PANEL_ROW_GROUP

    writer = None
    for start in range(0, len(frame), PANEL_ROW_GROUP):
        part = pa.Table.from_pandas(frame.iloc[start : start + PANEL_ROW_GROUP], preserve_index=False)
        if writer is None:
            writer = pq.ParquetWriter(path, part.schema)
        writer.write_table(part)
    if writer is not None:
        writer.close()


def _pandas_by_date(frame: Any) -> Any:
    import pandas as pd

    g = frame.groupby("date", sort=True)
    means = ("ndvi", "ndbi", "mndwi", "albedo", "valid_share", "water_share", "water_lst_c")
    return pd.DataFrame({
        "scene_id": g["scene_id"].first(), "cells_with_lst": g["lst_c"].count(),
        "lst_c_mean": g["lst_c"].mean(), "lst_c_std": g["lst_c"].std(),
        "lst_c_min": g["lst_c"].min(), "lst_c_max": g["lst_c"].max(),
        **{f"{m}_mean": g[m].mean() for m in means},
        "lst_uncertainty_k_median": g["lst_uncertainty_k"].median(),
    }).reset_index()


def _pandas_suhi(frame: Any, urban: np.ndarray, rural: np.ndarray) -> tuple[Any, np.ndarray]:
    import pandas as pd

    n = len(urban)
    pos = np.tile(np.arange(n), len(frame) // n)
    lst = frame["lst_c"].to_numpy()
    f = pd.DataFrame({"date": frame["date"].to_numpy(), "urban": np.where(urban[pos], lst, np.nan),
                      "rural": np.where(rural[pos], lst, np.nan)})
    g = f.groupby("date", sort=True)
    rural_mean = g["rural"].mean()
    return g["urban"].mean(), lst - rural_mean.reindex(f["date"]).to_numpy()


def main() -> None:
    import pandas as pd
    import pyarrow.parquet as pq

    from uhi.stages.compute import _YEAR_VARIABLES, _by_date, _cell_year_arrays, _cell_years_table
    from uhi.suhi import SuhiClasses, suhi_series
    from uhi.writers.parquet import write_panel

    panel = _panel(CELLS)
    size = f"{panel.n_cells:,} cells x {panel.n_dates} dates"
    frame, build_s, _ = _timed(panel.to_frame)
    rows = []
    with tempfile.TemporaryDirectory(prefix="uhi-bench-co-") as tmp:
        new, old = Path(tmp) / "new.parquet", Path(tmp) / "old.parquet"
        _, s_new, c_new = _timed(write_panel, panel, new)
        _, s_old, c_old = _timed(_pandas_parquet, frame, old)
        same = pq.read_table(new).equals(pq.read_table(old))
        rows.append({"case": f"panel.parquet {size}", "uhi_s": s_new, "anchor": "pandas table -> Arrow",
                     "anchor_s": s_old + build_s, "cpu": (c_new, c_old),
                     "note": f"same table {same}; {new.stat().st_size / 1e6:.0f} MB vs {old.stat().st_size / 1e6:.0f} MB; "
                             f"anchor includes building the pandas table ({build_s:.1f} s)"})
    got, s_new, c_new = _timed(_by_date, panel)
    want, s_old, c_old = _timed(_pandas_by_date, frame)
    same = got.equals(want)
    rows.append({"case": f"by-date sheet {size}", "uhi_s": s_new, "anchor": "groupby('date')", "anchor_s": s_old,
                 "cpu": (c_new, c_old), "note": f"equal {same}"})
    rng = np.random.default_rng(1)
    urban = rng.random(panel.n_cells) < 0.3
    rural = ~urban & (rng.random(panel.n_cells) < 0.6)
    classes = SuhiClasses(urban=urban, rural=rural, water=np.zeros(panel.n_cells, bool), method="m",
                          extent=urban, rural_report={})
    (series, anomaly), s_new, c_new = _timed(suhi_series, panel.dates, panel.values["lst_c"], classes)
    (urban_mean, anomaly_old), s_old, c_old = _timed(_pandas_suhi, frame, urban, rural)
    same = np.array_equal(series["urban_lst_c"].to_numpy(), urban_mean.to_numpy(), equal_nan=True) and np.array_equal(
        anomaly.ravel(), anomaly_old, equal_nan=True)
    rows.append({"case": f"SUHI series {size}", "uhi_s": s_new, "anchor": "groupby('date')", "anchor_s": s_old,
                 "cpu": (c_new, c_old), "note": f"equal {same}"})

    def cell_years() -> Any:
        return _cell_years_table(panel.cells, *_cell_year_arrays(panel)).to_pandas()

    def grouped() -> Any:
        g = frame.groupby(["cell", "year"], sort=True)
        out = g[list(_YEAR_VARIABLES)].mean()
        out.insert(0, "dates", g["lst_c"].count().astype("int64"))
        return out.reset_index()

    got, s_new, c_new = _timed(cell_years)
    want, s_old, c_old = _timed(grouped)
    try:
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        same = True
    except AssertionError:
        same = False
    rows.append({"case": f"cell_years {size}", "uhi_s": s_new, "anchor": "groupby(['cell','year'])",
                 "anchor_s": s_old, "cpu": (c_new, c_old), "note": f"equal {same}"})
    for row in rows:
        c_new, c_old = row.pop("cpu")
        row["note"] = f"CPU {c_new:.2f} s vs {c_old:.2f} s; {row['note']}"
        print(json.dumps({"bench": "compute_outputs", **row}))


if __name__ == "__main__":
    sys.exit(main())

"""compute's long panel: held date-major in memory (:class:`DatePanel`) and read back from
``compute/panel.parquet`` lean: only the columns and rows a stage needs, with the cell id as a
pandas categorical.

A city-scale panel is one row per (cell, scene): 16 million rows for a 30 km city and 42
scenes. Read whole with ``pandas.read_parquet`` it costs ~4 GB, mostly two columns of Python
strings (``cell``, ``scene_id``) that no model needs. Reading row group by row group through
pyarrow, keeping the wanted columns, filtering months/years before conversion and decoding
``cell`` as a dictionary (one string per cell, int32 codes per row) brings that to the size of
the numeric columns themselves (measured in docs/operations.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DatePanel", "read_panel", "panel_columns", "latest_year", "year_range"]


@dataclass(frozen=True)
class DatePanel:
    """The cell x date panel as compute holds it: date-major, one row of values per date.

    Row ``d * n + i`` of the table (as written to ``panel.parquet``) is cell ``i`` on date
    ``d``; a variable is one ``(dates, cells)`` float64 array, so a date's values are a
    contiguous row and no per-row key (cell, date, scene) is ever materialised in memory: at
    389k cells x 42 dates the pandas table of the same rows took ~3.3 GB, these arrays 1.8 GB.
    """

    cells: np.ndarray
    """Cell keys (quadkeys), one per column of the value arrays, in the cell table's order."""
    dates: np.ndarray
    """Solar days (datetime64[ns]), one per row of the value arrays, ascending."""
    scene_ids: np.ndarray
    """Per date: the STAC item id(s) behind it, '+'-joined (object array of str)."""
    platforms: np.ndarray
    """Per date: the Landsat platform(s) behind it, '+'-joined (object array of str)."""
    values: dict[str, np.ndarray]
    """Variable name -> (dates, cells) float64 array, C order; the table's column order."""

    @property
    def n_cells(self) -> int:
        return len(self.cells)

    @property
    def n_dates(self) -> int:
        return len(self.dates)

    @property
    def rows(self) -> int:
        return self.n_cells * self.n_dates

    @property
    def years(self) -> np.ndarray:
        """Per date: its calendar year (int64)."""
        return self.dates.astype("datetime64[Y]").astype(np.int64) + 1970

    def flat(self, name: str) -> np.ndarray:
        """A variable as the table's column (rows date-major): a view, no copy."""
        return self.values[name].reshape(-1)

    def to_frame(self) -> Any:
        """The whole table as pandas (columns cell, date, year, scene_id, platform, values...).

        For tests and small panels: at city scale this is the 3 GB the class avoids.
        """
        import pandas as pd

        n, k = self.n_cells, self.n_dates
        frame = pd.DataFrame({
            "cell": np.tile(np.asarray(self.cells, dtype=object), k),
            "date": np.repeat(self.dates.astype("datetime64[ns]"), n),
            "year": np.repeat(self.years, n),
            "scene_id": np.repeat(np.asarray(self.scene_ids, dtype=object), n),
            "platform": np.repeat(np.asarray(self.platforms, dtype=object), n),
        })
        for name in self.values:
            frame[name] = self.flat(name)
        return frame


def panel_columns(path: Path) -> list[str]:
    """Column names of the panel (schema only, no data read)."""
    import pyarrow.parquet as pq

    return list(pq.read_schema(path).names)


def year_range(path: Path) -> tuple[int, int] | None:
    """The panel's first and last year, from the row groups' statistics when written, else one
    column; None for a panel without rows or without ``year``."""
    import pyarrow.parquet as pq

    f = pq.ParquetFile(path)
    if "year" not in f.schema_arrow.names or f.metadata.num_rows == 0:
        return None
    col = f.schema_arrow.names.index("year")
    lo: int | None = None
    hi: int | None = None
    for i in range(f.num_row_groups):
        rg = f.metadata.row_group(i)
        if rg.num_rows == 0:
            continue
        stats = rg.column(col).statistics
        if stats is None or not stats.has_min_max:
            years = f.read(columns=["year"]).column("year").drop_null().to_numpy()
            return (int(years.min()), int(years.max())) if years.size else None
        lo = int(stats.min) if lo is None else min(lo, int(stats.min))
        hi = int(stats.max) if hi is None else max(hi, int(stats.max))
    return None if lo is None or hi is None else (lo, hi)


def latest_year(path: Path) -> int | None:
    """The panel's last year (:func:`year_range`)."""
    span = year_range(path)
    return None if span is None else span[1]


def _may_hold_years(f: Any, group: int, years: Sequence[int]) -> bool:
    """False only when row group ``group``'s ``year`` statistics exclude every one of ``years``."""
    stats = f.metadata.row_group(group).column(f.schema_arrow.names.index("year")).statistics
    if stats is None or not stats.has_min_max:
        return True
    return any(int(stats.min) <= y <= int(stats.max) for y in years)


def read_panel(
    path: Path,
    columns: Sequence[str],
    *,
    months: Sequence[int] | None = None,
    years: Sequence[int] | None = None,
) -> Any:
    """The panel's ``columns`` (those present) as a pandas DataFrame.

    Parameters
    ----------
    path
        ``compute/panel.parquet``.
    columns
        Wanted columns; names the file does not have are left out (callers check what they
        require and name it in their own message).
    months
        Keep only rows whose ``date`` falls in these months (``date`` need not be wanted).
    years
        Keep only rows of these ``year`` values.

    ``cell`` (and ``scene_id``, ``platform``) come back as categoricals whose categories are
    the values read, sorted, so ``groupby('cell')`` orders cells exactly as it would the plain
    strings, and the result does not depend on how the file's row groups were laid out.
    """
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    f = pq.ParquetFile(path, read_dictionary=[c for c in ("cell", "scene_id", "platform") if c in names])
    wanted = [c for c in dict.fromkeys(columns) if c in names]
    filter_cols = []
    if months is not None and "date" in names:
        filter_cols.append("date")
    if years is not None and "year" in names:
        filter_cols.append("year")
    read_cols = wanted + [c for c in filter_cols if c not in wanted]
    month_set = pa.array(sorted({int(m) for m in months or ()}), pa.int64())
    year_set = pa.array(sorted({int(y) for y in years or ()}), pa.int64())
    parts = []
    for i in range(f.num_row_groups):
        if "year" in filter_cols and not _may_hold_years(f, i, year_set.to_pylist()):
            continue  # compute writes the panel date by date: most row groups hold one year
        t = f.read_row_group(i, columns=read_cols)
        mask = None
        if "date" in filter_cols:
            mask = pc.is_in(pc.month(t["date"]), value_set=month_set)
        if "year" in filter_cols:
            ym = pc.is_in(pc.cast(t["year"], pa.int64()), value_set=year_set)
            mask = ym if mask is None else pc.and_(mask, ym)
        if mask is not None:
            t = t.filter(pc.fill_null(mask, False))
        parts.append(t.select(wanted))
    if parts:
        table = pa.concat_tables(parts).unify_dictionaries()
    else:
        table = f.schema_arrow.empty_table().select(wanted)
    del parts
    frame = table.to_pandas(split_blocks=True, self_destruct=True)
    del table
    for col in ("cell", "scene_id", "platform"):
        if col in frame.columns and isinstance(frame[col].dtype, pd.CategoricalDtype):
            # the categories are the values read, whatever the file's dictionaries held: a
            # row group's dictionary may list values of rows filtered out or of other row groups
            codes = frame[col].cat.codes.to_numpy()
            used = np.bincount(codes[codes >= 0], minlength=len(frame[col].cat.categories))
            if (used == 0).any():
                frame[col] = frame[col].cat.remove_unused_categories()
            cats = frame[col].cat.categories
            if not cats.is_monotonic_increasing:
                frame[col] = frame[col].cat.reorder_categories(cats.sort_values())
    return frame

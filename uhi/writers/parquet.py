"""GeoParquet tables and compute's panel, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from uhi.panel import DatePanel

__all__ = ["write_geoparquet", "write_parquet", "write_panel", "panel_schema"]

# pyarrow's default maximum row-group length (ParquetWriter.write_table, row_group_size=None):
# the panel keeps the row groups DataFrame.to_parquet gave it
PANEL_ROW_GROUP = 1024 * 1024

# Dictionary-encoded panel columns. The keys repeat (a cell on every date, a date, scene and
# platform on every cell) and LST min/max are single pixel values (at most 65,536 distinct
# ST_B10 values), as is a mostly zero per-date water share. The other float columns are
# means with few repeats: encoding them as dictionaries first cost 3 of the 7 CPU-s of the
# 30 km city's panel (16.35M rows) and saved nothing (their pages fall back to plain).
_PANEL_DICTIONARY = ("cell", "date", "year", "scene_id", "platform", "lst_c_min", "lst_c_max", "water_share")


def write_geoparquet(gdf: Any, path: Path) -> Path:
    """Write a GeoDataFrame as GeoParquet (geometry as WKB, CRS in the 'geo' metadata), atomically."""
    from uhi.workspace import Workspace

    path = Path(path)
    with Workspace(path.parent).atomic_path(path) as tmp:
        gdf.to_parquet(tmp, index=False)
    return path


def write_parquet(frame: Any, path: Path) -> Path:
    """Write a pandas DataFrame (no geometry) as Parquet, atomically."""
    import pandas as pd

    from uhi.workspace import Workspace

    path = Path(path)
    with Workspace(path.parent).atomic_path(path) as tmp:
        pd.DataFrame(frame).to_parquet(tmp, index=False)
    return path


def panel_schema(panel: DatePanel) -> Any:
    """The Arrow schema of the panel table, with the pandas metadata ``DataFrame.to_parquet`` adds:
    columns ``cell``, ``date``, ``year``, ``scene_id``, ``platform``, then the value columns."""
    import pyarrow as pa

    from uhi.panel import DatePanel

    if panel.rows == 0:
        raise ValueError("the panel has no row (no cell or no date); nothing to write")
    # the schema of the first row: pandas' metadata is the same for any number of rows
    head = DatePanel(
        cells=panel.cells[:1], dates=panel.dates[:1], scene_ids=panel.scene_ids[:1],
        platforms=panel.platforms[:1], values={k: v[:1, :1] for k, v in panel.values.items()},
    ).to_frame()
    return pa.Schema.from_pandas(head, preserve_index=False)


def write_panel(panel: DatePanel, path: Path, *, row_group_rows: int = PANEL_ROW_GROUP) -> Path:
    """Write the panel to ``path`` as Parquet, one row per cell and date, date-major.

    ``path`` is written in place: the stage hands in the temporary of its workspace's atomic
    write (``Workspace.atomic_path``), which keeps the file inside the workspace.

    The rows, types and schema metadata are those of ``DataFrame.to_parquet`` on
    ``panel.to_frame()`` (float NaN as null, strings as strings to every reader), but each
    row group is built as Arrow arrays straight from the date-major arrays, with no pandas
    table: the value columns are zero-copy slices, the keys dictionary codes. ``cell`` is
    written from those codes as a Parquet dictionary column (one page of the cell keys per row
    group, whatever its size: handed a dictionary array, pyarrow writes its dictionary as it
    is, where hashing strings would fall back to plain ones past its 1 MB dictionary page).
    The readers' ``read_dictionary`` then takes the codes rather than hashing 16M strings.
    """
    import base64

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    schema = panel_schema(panel)
    keys = ("cell", "scene_id", "platform")
    dict_type = pa.dictionary(pa.int32(), pa.string())
    # the writer is handed dictionary arrays for the keys; the file's Arrow schema (what
    # pq.read_table and pandas restore) is the plain-string one, added as metadata below
    write_schema = pa.schema([f.with_type(dict_type) if f.name in keys else f for f in schema]).remove_metadata()
    cell_keys = pa.array(np.asarray(panel.cells, dtype=object), pa.string())  # unique keys
    # a dictionary must not repeat a value: one platform on many dates was written as plain
    # strings, and not the same bytes from one run to the next (pyarrow 26)
    scene_ids, scene_of_day = _unique(panel.scene_ids)
    platforms, platform_of_day = _unique(panel.platforms)
    dates = np.asarray(panel.dates, dtype="datetime64[ns]")
    years = panel.years
    n = panel.n_cells
    writer = pq.ParquetWriter(
        path, write_schema, store_schema=False, compression="snappy",
        use_dictionary=[c for c in _PANEL_DICTIONARY if c in schema.names],
        # nothing reads the cell keys' min/max; the others' (year's above all) are kept
        write_statistics=[c for c in schema.names if c != "cell"],
    )
    try:
        for start in range(0, panel.rows, row_group_rows):
            stop = min(start + row_group_rows, panel.rows)
            row = np.arange(start, stop, dtype=np.int64)
            day = (row // n).astype(np.int32)
            cell = (row - day.astype(np.int64) * n).astype(np.int32)
            del row
            columns = [
                pa.DictionaryArray.from_arrays(pa.array(cell), cell_keys),
                pa.array(dates[day]),
                pa.array(years[day]),
                pa.DictionaryArray.from_arrays(pa.array(scene_of_day[day]), scene_ids),
                pa.DictionaryArray.from_arrays(pa.array(platform_of_day[day]), platforms),
            ]
            # from_pandas: NaN becomes null, as DataFrame.to_parquet writes it
            columns += [pa.array(panel.flat(name)[start:stop], from_pandas=True) for name in panel.values]
            writer.write_table(pa.Table.from_arrays(columns, schema=write_schema))
        writer.add_key_value_metadata({
            "ARROW:schema": base64.b64encode(schema.serialize().to_pybytes()).decode(),
            **{k.decode(): v.decode() for k, v in (schema.metadata or {}).items()},
        })
    finally:
        writer.close()
    return path


def _unique(values: Any) -> tuple[Any, Any]:
    """The distinct strings of ``values`` as an Arrow array and each value's int32 code."""
    import numpy as np
    import pyarrow as pa

    uniq, codes = np.unique(np.asarray(values, dtype=str), return_inverse=True)
    return pa.array(uniq.tolist(), pa.string()), codes.astype(np.int32)

"""Excel workbooks people can filter and read: typed number formats, a columns sheet, atomic writes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from uhi.writers.columns import describe_column

__all__ = ["write_workbook", "column_kind", "cell_centres"]

# Formats by kind of column (Excel number-format codes; values stay numbers).
_FORMATS = {
    "celsius": '0.00" °C"',
    "share": "0.0%",
    "p_value": "0.00E+00",
    "count": "0",
    "year": "0",
    "lonlat": "0.0000000",
}
_UNITS = {
    "celsius": "°C",
    "share": "share 0..1 (shown as %)",
    "p_value": "probability",
    "count": "count",
    "year": "year",
    "date": "date",
    "lonlat": "degrees (EPSG:4326)",
    "m2": "m²",
    "m": "m",
    "km": "km",
    "seconds": "s",
}

def column_kind(name: str, dtype: Any = None) -> str:
    """The kind of a column from its name (and dtype): sets its number format and unit.

    One of ``celsius``, ``share``, ``p_value``, ``count``, ``year``, ``date``, ``lonlat``,
    ``m2``, ``m``, ``km``, ``seconds`` or ``""``. uhi names columns by what they hold and in
    which unit (``lst_c``, ``valid_share``, ``area_m2``), so the name is enough.
    """
    import pandas as pd

    n = str(name).lower()
    if dtype is not None and pd.api.types.is_datetime64_any_dtype(dtype):
        return "date"
    if n in ("lon", "lat"):
        return "lonlat"
    if n in ("year", "period", "baseline_year", "model_year") or n.endswith("_year"):
        return "year"
    if n in ("p", "p_value", "gi_p") or n.startswith(("p_", "gi_p_")) or n.endswith(("_p", "_p_value", "_pvalue")):
        return "p_value"
    if "share" in n or n in ("site_coverage", "block_coverage", "coverage") or n.endswith("_coverage"):
        return "share"
    if re.search(r"(^|_)(lst_c|suhi_c|anomaly_c|dlst|delta_c)($|_)", n) or re.search(r"_c(_|$)", n):
        return "celsius"
    if n.endswith("_m2"):
        return "m2"
    if n.endswith("_km"):
        return "km"
    if n.endswith("_m"):
        return "m"
    if n.endswith(("_s", "_seconds")):
        return "seconds"
    integer = dtype is not None and pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
    if integer or n in ("n", "k", "count", "cells", "dates", "scenes") or n.endswith(
        ("_count", "_scenes", "_observations", "_cells")
    ) or n.startswith(("n_", "cells_")):
        return "count"
    return ""


def cell_centres(gdf: Any, column: str = "cell") -> Any:
    """Longitude and latitude (EPSG:4326, 7 decimals) of each feature's centre, indexed by ``column``.

    Pass it as ``write_workbook(..., centres=...)`` so sheets that list cells gain ``lon`` and
    ``lat``. Centres are taken in the features' own projected CRS when they have one (the cells'
    web-mercator square), then converted.
    """
    import numpy as np
    import pandas as pd
    import shapely
    from pyproj import Transformer

    geoms = np.asarray(gdf.geometry.values, dtype=object)
    crs = gdf.crs if gdf.crs is not None else "EPSG:4326"
    if gdf.crs is not None and gdf.crs.is_geographic:
        # a tile is a square in web mercator: its centre there is the cell centre
        to_merc = Transformer.from_crs(crs, "EPSG:3857", always_xy=True)
        geoms = shapely.transform(geoms, lambda xy: np.column_stack(to_merc.transform(xy[:, 0], xy[:, 1])))
        crs = "EPSG:3857"
    centre = shapely.centroid(geoms)
    x, y = shapely.get_x(centre), shapely.get_y(centre)
    lon, lat = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(x, y)
    return pd.DataFrame(
        {"lon": np.round(lon, 7), "lat": np.round(lat, 7)}, index=pd.Index(gdf[column].to_numpy(), name=column)
    )


def _years_as_numbers(df: Any) -> Any:
    """Columns (and an index) of year-like names holding digit strings become integers."""
    import pandas as pd

    def numeric(values: Any) -> Any:
        text = pd.Series(values).astype(str)
        return pd.to_numeric(text) if len(text) and text.str.fullmatch(r"\d{4}").all() else None

    def year_or_label(v: Any) -> Any:
        return int(v) if isinstance(v, str) and re.fullmatch(r"\d{4}", v) else v

    for col in df.columns:
        if column_kind(col) == "year":
            if df[col].dtype == object:
                as_int = numeric(df[col])
                # all years: an integer column; years mixed with labels ('pooled'): each year a number
                df[col] = as_int.to_numpy() if as_int is not None else [year_or_label(v) for v in df[col]]
    if df.index.name and column_kind(df.index.name) == "year":
        as_int = numeric(df.index)
        if as_int is not None:
            df.index = pd.Index(as_int.to_numpy(), name=df.index.name)
    return df


def _with_centres(df: Any, centres: Any) -> Any:
    if centres is None or "cell" not in df.columns or {"lon", "lat"} & set(df.columns):
        return df
    pos = list(df.columns).index("cell") + 1
    joined = centres.reindex(df["cell"].to_numpy())
    df.insert(pos, "lon", joined["lon"].to_numpy())
    df.insert(pos + 1, "lat", joined["lat"].to_numpy())
    return df


def write_workbook(
    path: Path,
    sheets: Mapping[str, Any],
    *,
    notes: Mapping[str, str] | None = None,
    columns: Mapping[str, str] | None = None,
    centres: Any = None,
) -> Path:
    """Write DataFrames to an .xlsx file, one sheet each, atomically.

    Every table sheet gets a frozen header row (and index columns), an autofilter, and number
    formats by kind of column (see :func:`column_kind`): degrees C with 2 decimals, shares as %,
    p-values in scientific notation, counts and years as integers, dates as dates without a
    time. A ``columns`` sheet lists every column of every sheet with its unit and description.

    Parameters
    ----------
    path
        Target .xlsx file.
    sheets
        Sheet name (<= 31 characters) -> pandas.DataFrame. Index written when it is named.
    notes
        Optional "about" sheet: variable or topic -> description (units, methods, sources).
        Entries named like a column also describe that column in the ``columns`` sheet.
    columns
        Column name -> description, for the ``columns`` sheet (wins over ``notes``).
    centres
        DataFrame indexed by cell with ``lon`` and ``lat`` (:func:`cell_centres`): sheets with a
        ``cell`` column get the cell centre's coordinates beside it.
    """
    import pandas as pd

    from uhi.workspace import Workspace

    described = {**dict(notes or {}), **dict(columns or {})}
    catalogue: list[dict[str, str]] = []
    bulk: dict[str, list[list[Any]]] = {}  # sheet -> values written by _insert_rows
    ws = Workspace(Path(path).parent)
    with ws.atomic_path(Path(path)) as tmp:
        with pd.ExcelWriter(
            tmp, engine="xlsxwriter", date_format="yyyy-mm-dd", datetime_format="yyyy-mm-dd hh:mm"
        ) as xw:
            book = xw.book
            formats = {kind: book.add_format({"num_format": code}) for kind, code in _FORMATS.items()}
            for name, frame in sheets.items():
                sheet = name[:31]
                df = frame.copy()
                for col in df.columns:
                    if isinstance(df[col].dtype, pd.DatetimeTZDtype):
                        df[col] = df[col].dt.tz_localize(None)
                    if pd.api.types.is_datetime64_any_dtype(df[col]):
                        days = df[col].dropna()
                        if (days == days.dt.normalize()).all():
                            # dates without a time of day are written as dates, not 00:00:00
                            df[col] = df[col].dt.date
                df = _with_centres(_years_as_numbers(df), centres)
                keep_index = any(n is not None for n in df.index.names)
                cell_values = None if keep_index else _cell_columns(df)
                if cell_values is None:
                    df.to_excel(xw, sheet_name=sheet, index=keep_index)
                else:
                    if _plain_cells(cell_values):
                        # the header through xlsxwriter, the values into the file afterwards
                        bulk[sheet] = cell_values
                        cell_values = []
                    _write_cells(book.add_worksheet(sheet), df, cell_values, book.add_format(_PANDAS_HEADER))
                _format_sheet(xw.sheets[sheet], df, keep_index, formats, catalogue, sheet, described, frame)
            if notes:
                about = pd.DataFrame({"item": list(notes), "description": list(notes.values())})
                about.to_excel(xw, sheet_name="about", index=False)
                xw.sheets["about"].set_column(0, 0, 28)
                xw.sheets["about"].set_column(1, 1, 100)
                xw.sheets["about"].freeze_panes(1, 0)
            table = pd.DataFrame(catalogue, columns=["sheet", "column", "unit", "description"])
            table.to_excel(xw, sheet_name="columns", index=False)
            cols = xw.sheets["columns"]
            cols.freeze_panes(1, 0)
            cols.autofilter(0, 0, len(table), 3)
            for i, width in enumerate((18, 24, 24, 100)):
                cols.set_column(i, i, width)
        if bulk:
            _insert_rows(tmp, bulk)
    return Path(path)


# Excel's sheet size (rows including the header, columns)
_MAX_ROWS = 1_048_576
_MAX_COLS = 16_384
# pandas' header cell style (ExcelFormatter.header_style as its xlsxwriter engine converts it)
_PANDAS_HEADER = {"bold": True, "align": "center", "valign": "top", "top": 1, "right": 1, "bottom": 1, "left": 1}


_UNWRITTEN = object()  # a value left for pandas to write (dates, timedeltas, other objects)


def _cell_value(v: Any) -> Any:
    """The value pandas' ``to_excel`` hands xlsxwriter for v (None: no cell), or ``_UNWRITTEN``."""
    import math

    import numpy as np
    import pandas as pd

    if isinstance(v, np.generic) and v.dtype.kind in "iufb":
        v = v.item()
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, float):
        if math.isnan(v):
            return None  # na_rep ''
        return "inf" if v == math.inf else "-inf" if v == -math.inf else v  # inf_rep 'inf'
    if isinstance(v, (bool, int, str)):
        return v
    return _UNWRITTEN


def _cell_columns(df: Any) -> list[list[Any]] | None:
    """Each column as the Python values pandas' ``to_excel`` would write, or None to let pandas write it.

    pandas writes a frame cell by cell through a styling layer (a style object and a JSON key
    per cell) that costs more than xlsxwriter itself: 5.4 of the forecast stage's 8.7 CPU-s on
    the demo city went to its 450k-cell workbook, 2.5 after this. Plain frames (one header row,
    no index; numbers, booleans and strings) go to xlsxwriter directly with the values pandas
    would pass (its na_rep, inf_rep and ``_value_with_fmt``); others still go through pandas.
    """
    import numpy as np
    import pandas as pd

    if isinstance(df.columns, pd.MultiIndex) or len(df) >= _MAX_ROWS or df.shape[1] > _MAX_COLS:
        return None  # pandas raises its own error for a sheet too large
    out: list[list[Any]] = []
    for j in range(df.shape[1]):
        col = df.iloc[:, j]
        # numpy dtypes only: nullable (Int64, boolean, string) and other extension types go to pandas
        kind = col.dtype.kind if isinstance(col.dtype, np.dtype) else None
        if kind in ("i", "u", "b"):
            out.append(col.tolist())
            continue
        if kind == "f":
            arr = col.to_numpy()
            values = arr.tolist()
            for i in np.flatnonzero(~np.isfinite(arr)):
                values[i] = None if np.isnan(arr[i]) else "inf" if arr[i] > 0 else "-inf"
            out.append(values)
            continue
        if kind != "O":
            return None
        values = [_cell_value(v) for v in col.tolist()]
        if any(v is _UNWRITTEN for v in values):
            return None
        out.append(values)
    return out


def _write_cells(sheet: Any, df: Any, columns: list[list[Any]], header: Any) -> None:
    """Header row (pandas' style) and the values of :func:`_cell_columns`."""
    for j, name in enumerate(df.columns):
        sheet.write(0, j, name if isinstance(name, (bool, int, float)) else str(name), header)
    number = sheet.write_number
    other = sheet.write
    # column by column, as pandas: strings enter the shared-string table in the same order, so
    # the sheet's XML is the same as pandas would write
    for j, values in enumerate(columns):
        for i, v in enumerate(values, start=1):
            if v is None:
                continue
            if v.__class__ is float or v.__class__ is int:
                number(i, j, v)
            else:
                other(i, j, v)


# Strings xlsxwriter's ``write`` would not store as plain text: formulas ('=...', '{=...}'), URLs
# (its strings_to_urls patterns), control characters (escaped as _xHHHH_) and text longer than
# a cell holds. A sheet holding one goes cell by cell through xlsxwriter (:func:`_write_cells`).
_NOT_PLAIN = re.compile(r"^(=|\{=.*\}$|(ftp|http)s?://|mailto:|(in|ex)ternal:|file://)|[\x00-\x08\x0b-\x1f]", re.S)
_MAX_TEXT = 32_767
_BULK_DEFLATE_LEVEL = 1
_EDGE_SPACE = re.compile(r"^\s|\s$")


def _plain_cells(columns: list[list[Any]]) -> bool:
    """Whether every value of :func:`_cell_columns` is a number, a boolean, None or plain text."""
    for values in columns:
        for v in values:
            if v.__class__ is str and (len(v) > _MAX_TEXT or _NOT_PLAIN.search(v)):
                return False
    return True


def _column_letters(j: int) -> str:
    letters = ""
    j += 1
    while j:
        j, r = divmod(j - 1, 26)
        letters = chr(65 + r) + letters
    return letters


def _rows_xml(columns: list[list[Any]], styles: Mapping[int, str]) -> tuple[list[str], int]:
    """The ``<row>`` elements of rows 2, 3, ... and the last row holding a cell.

    The cells are what xlsxwriter writes for the same values: numbers as ``%.16G`` (its
    ``_xml_number_element``), booleans as ``t="b"``, the column's number format as ``s``, no
    element for None or ''; text as an inline string (``t="inlineStr"``, as xlsxwriter's
    constant_memory mode writes it) rather than through the shared-string table.
    """
    n_rows = max((len(v) for v in columns), default=0)
    refs = [str(r) for r in range(2, n_rows + 2)]
    cells: list[list[str]] = []
    for j, values in enumerate(columns):
        col = _column_letters(j)
        style = f' s="{styles[j]}"' if j in styles else ""
        out = []
        for ref, v in zip(refs, values, strict=True):
            kind = v.__class__
            if kind is float or kind is int:
                out.append(f'<c r="{col}{ref}"{style}><v>{v:.16G}</v></c>')
            elif v is None or v == "":
                out.append("")
            elif kind is bool:
                out.append(f'<c r="{col}{ref}"{style} t="b"><v>{int(v)}</v></c>')
            else:
                text = v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                space = ' xml:space="preserve"' if _EDGE_SPACE.search(v) else ""
                out.append(f'<c r="{col}{ref}"{style} t="inlineStr"><is><t{space}>{text}</t></is></c>')
        cells.append(out)
    rows = []
    last = 1
    for ref, parts in zip(refs, zip(*cells, strict=True), strict=True):
        body = "".join(parts)
        if body:
            rows.append(f'<row r="{ref}">{body}</row>')
            last = int(ref)
    return rows, last


def _insert_rows(path: Path, bulk: Mapping[str, list[list[Any]]]) -> None:
    """Put the values of header-only sheets into the closed workbook at ``path``.

    xlsxwriter spends about 9 us per cell (a cell object per value, then its XML element); the
    forecast's 450k-cell sheet on the demo city took 4 of the stage's 8 s that way, and
    formatting the same elements here takes 0.4 s. The sheet's column styles come from its own
    ``<cols>`` (the number formats _format_sheet set), so every cell carries the style xlsxwriter
    would give it.
    """
    import zipfile

    with zipfile.ZipFile(path) as z:
        members = [(info, z.read(info)) for info in z.infolist()]
    parts = {info.filename: data for info, data in members}
    book = parts["xl/workbook.xml"].decode("utf-8")
    rels = parts["xl/_rels/workbook.xml.rels"].decode("utf-8")
    targets = dict(re.findall(r'<Relationship Id="([^"]+)"[^>]*Target="([^"]+)"', rels))
    targets.update({rid: t for t, rid in re.findall(r'<Relationship [^>]*Target="([^"]+)"[^>]*Id="([^"]+)"', rels)})
    sheet_files = {}
    for name, rid in re.findall(r'<sheet name="([^"]+)"[^>]*r:id="([^"]+)"', book):
        target = targets[rid]
        sheet_files[_xml_unescape(name)] = target.lstrip("/") if target.startswith("/") else "xl/" + target
    for sheet, columns in bulk.items():
        member = sheet_files[sheet]
        xml = parts[member].decode("utf-8")
        styles: dict[int, str] = {}
        for lo, hi, style in re.findall(r'<col min="(\d+)" max="(\d+)"[^>]*?style="(\d+)"', xml):
            for j in range(int(lo) - 1, int(hi)):
                styles[j] = style
        rows, last = _rows_xml(columns, styles)
        width = max(len(columns), 1)
        ref = "A1" if width == 1 and last == 1 else f"A1:{_column_letters(width - 1)}{last}"
        head, tail = xml.split("</sheetData>", 1)
        head = re.sub(r'<dimension ref="[^"]*"/>', f'<dimension ref="{ref}"/>', head, count=1)
        parts[member] = "".join([head, *rows, "</sheetData>", tail]).encode("utf-8")
    filled = {sheet_files[sheet] for sheet in bulk}
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for info, _ in members:
            # the same names, order and (fixed, 1980) timestamps as xlsxwriter's archive
            fresh = zipfile.ZipInfo(info.filename, info.date_time)
            fresh.external_attr = info.external_attr
            # DEFLATE level 1 for the filled sheets: the demo forecast's 19 MB cells sheet
            # compresses in 0.10 s to 4.05 MB, against 0.52 s to 3.06 MB at zlib's default 6
            level = _BULK_DEFLATE_LEVEL if info.filename in filled else None
            z.writestr(fresh, parts[info.filename], compress_type=zipfile.ZIP_DEFLATED, compresslevel=level)


def _xml_unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&apos;", "'").replace("&amp;", "&")


def _format_sheet(
    sheet: Any,
    df: Any,
    keep_index: bool,
    formats: Mapping[str, Any],
    catalogue: list[dict[str, str]],
    sheet_name: str,
    described: Mapping[str, str],
    original: Any,
) -> None:
    """Freeze the header, add the autofilter, set widths and number formats, list the columns."""
    import pandas as pd

    index_names = [n for n in df.index.names if n is not None] if keep_index else []
    n_index = df.index.nlevels if keep_index else 0
    header_rows = df.columns.nlevels + (1 if isinstance(df.columns, pd.MultiIndex) and keep_index else 0)
    sheet.freeze_panes(header_rows, n_index)
    if not isinstance(df.columns, pd.MultiIndex):
        sheet.autofilter(0, 0, len(df), n_index + len(df.columns) - 1)
    entries: list[tuple[int, Any, Any]] = [(i, n, df.index.get_level_values(i).dtype) for i, n in enumerate(index_names)]
    entries += [(n_index + j, c, df[c].dtype) for j, c in enumerate(df.columns)]
    for pos, col, dtype in entries:
        before = original[col].dtype if col in getattr(original, "columns", ()) else dtype
        kind = column_kind(col, before if pd.api.types.is_datetime64_any_dtype(before) else dtype)
        width = min(max(len(str(col)), 10) + 2, 40)
        sheet.set_column(pos, pos, width, formats.get(kind))
        label = str(col) if not isinstance(col, tuple) else ".".join(map(str, col))
        catalogue.append(
            {
                "sheet": sheet_name,
                "column": label,
                "unit": _UNITS.get(kind, ""),
                "description": describe_column(label, described),
            }
        )

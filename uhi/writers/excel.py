"""Excel workbooks (one DataFrame per sheet, plus a notes sheet), written atomically."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["write_workbook"]


def write_workbook(
    path: Path, sheets: Mapping[str, Any], *, notes: Mapping[str, str] | None = None
) -> Path:
    """Write DataFrames to an .xlsx file, one sheet each, atomically.

    Parameters
    ----------
    path
        Target .xlsx file.
    sheets
        Sheet name (<= 31 characters) -> pandas.DataFrame. Index written when it is named.
    notes
        Optional "about" sheet: variable or topic -> description (units, methods, sources).
    """
    import pandas as pd

    from uhi.workspace import Workspace

    ws = Workspace(Path(path).parent)
    with ws.atomic_path(Path(path)) as tmp:
        with pd.ExcelWriter(tmp, engine="xlsxwriter") as xw:
            for name, frame in sheets.items():
                sheet = name[:31]
                df = frame.copy()
                for col in df.columns:
                    if isinstance(df[col].dtype, pd.DatetimeTZDtype):
                        df[col] = df[col].dt.tz_localize(None)
                keep_index = any(n is not None for n in df.index.names)
                df.to_excel(xw, sheet_name=sheet, index=keep_index)
                width = max([len(str(c)) for c in df.columns] + [10])
                xw.sheets[sheet].set_column(0, len(df.columns) + int(keep_index), min(width + 2, 40))
            if notes:
                about = pd.DataFrame({"item": list(notes), "description": list(notes.values())})
                about.to_excel(xw, sheet_name="about", index=False)
                xw.sheets["about"].set_column(0, 0, 28)
                xw.sheets["about"].set_column(1, 1, 100)
    return Path(path)

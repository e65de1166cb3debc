"""GeoParquet tables, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_geoparquet", "write_parquet"]


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

"""GeoParquet tables, written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_geoparquet"]


def write_geoparquet(gdf: Any, path: Path) -> Path:
    """Write a GeoDataFrame as GeoParquet (geometry as WKB, CRS in the 'geo' metadata), atomically."""
    from uhi.workspace import Workspace

    path = Path(path)
    with Workspace(path.parent).atomic_path(path) as tmp:
        gdf.to_parquet(tmp, index=False)
    return path

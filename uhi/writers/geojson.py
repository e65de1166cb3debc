"""RFC 7946 GeoJSON (EPSG:4326, lon/lat order), written atomically."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["write_geojson"]


def _clean(value: Any) -> Any:
    """NaN and infinities are not JSON: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_geojson(gdf: Any, path: Path, *, precision: int = 7) -> Path:
    """Write a GeoDataFrame as RFC 7946 GeoJSON in EPSG:4326, atomically.

    Parameters
    ----------
    gdf
        geopandas.GeoDataFrame with a CRS (reprojected to EPSG:4326 here).
    path
        Target file; a temporary beside it is renamed into place when complete.
    precision
        Decimal places kept for coordinates (7 ~ 1 cm).
    """
    import numpy as np
    import pandas as pd

    from uhi.workspace import Workspace

    if gdf.crs is None:
        raise ValueError("GeoDataFrame has no CRS; set one before writing GeoJSON")
    out = gdf.to_crs(4326) if gdf.crs.to_epsg() != 4326 else gdf
    props = out.drop(columns=out.geometry.name)
    for col in props.columns:
        if pd.api.types.is_datetime64_any_dtype(props[col]):
            props[col] = props[col].dt.strftime("%Y-%m-%dT%H:%M:%SZ" if props[col].dt.hour.any() else "%Y-%m-%d")
    geoms = json.loads(out.geometry.to_json(drop_id=True, to_wgs84=False))["features"]
    records = props.to_dict(orient="records")
    features = []
    for geom, rec in zip(geoms, records, strict=True):
        clean = {k: _clean(v.item() if isinstance(v, np.generic) else v) for k, v in rec.items()}
        features.append({"type": "Feature", "properties": clean, "geometry": _round(geom["geometry"], precision)})
    fc = {"type": "FeatureCollection", "features": features}
    ws = Workspace(Path(path).parent)
    return ws.write_text(Path(path), json.dumps(fc, separators=(",", ":"), allow_nan=False))


def _round(geom: dict[str, Any] | None, precision: int) -> dict[str, Any] | None:
    if geom is None:
        return None

    def r(c: Any) -> Any:
        if isinstance(c, (list, tuple)) and c and isinstance(c[0], (int, float)):
            return [round(float(x), precision) for x in c]
        return [r(x) for x in c]

    if geom.get("type") == "GeometryCollection":
        return {"type": "GeometryCollection", "geometries": [_round(g, precision) for g in geom["geometries"]]}
    return {"type": geom["type"], "coordinates": r(geom["coordinates"])}

"""RFC 7946 GeoJSON (EPSG:4326, lon/lat order), written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_geojson"]


def write_geojson(gdf: Any, path: Path, *, precision: int = 7) -> Path:
    """Write a GeoDataFrame as RFC 7946 GeoJSON in EPSG:4326, atomically.

    Geometries are rounded and serialised by shapely (vectorised, in GEOS) and properties by
    pandas' JSON encoder; the features are then joined as text. This is ~50x faster than
    building one dict per feature in Python (3.3 s -> 0.07 s for 8k cells), which mattered
    because city outputs have 100k-400k cells.

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
    import shapely

    from uhi.workspace import Workspace

    if gdf.crs is None:
        raise ValueError("GeoDataFrame has no CRS; set one before writing GeoJSON")
    out = gdf.to_crs(4326) if gdf.crs.to_epsg() != 4326 else gdf
    props = pd.DataFrame(out.drop(columns=out.geometry.name))
    for col in props.columns:
        series = props[col]
        if pd.api.types.is_datetime64_any_dtype(series):
            has_time = bool((series.dropna().dt.normalize() != series.dropna()).any())
            fmt = "%Y-%m-%dT%H:%M:%SZ" if has_time else "%Y-%m-%d"
            props[col] = series.dt.strftime(fmt)
        elif pd.api.types.is_float_dtype(series):
            # NaN and infinities are not JSON: they become null
            props[col] = series.where(np.isfinite(series.to_numpy(dtype=float, na_value=np.nan)))
    geoms = np.asarray(out.geometry.values, dtype=object)
    rounded = shapely.transform(geoms, lambda xy: np.round(xy, precision))
    geom_json = shapely.to_geojson(rounded)
    if len(props) == 0:
        prop_lines: list[str] = []
    elif len(props.columns):
        prop_lines = props.to_json(
            orient="records", lines=True, double_precision=15, force_ascii=False
        ).splitlines()
    else:
        prop_lines = ["{}"] * len(props)
    parts = [
        '{"type":"Feature","properties":' + p + ',"geometry":' + (g if g is not None else "null") + "}"
        for p, g in zip(prop_lines, geom_json, strict=True)
    ]
    text = '{"type":"FeatureCollection","features":[' + ",".join(parts) + "]}"
    return Workspace(Path(path).parent).write_text(Path(path), text)

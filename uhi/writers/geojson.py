"""RFC 7946 GeoJSON (EPSG:4326, lon/lat order), written atomically and streamed in chunks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["write_geojson", "geojson_geometries"]

_CHUNK_ROWS = 50_000  # features serialised at a time: bounds the text held in memory


def geojson_geometries(gdf: Any, *, precision: int = 7) -> list[str | None]:
    """GeoJSON text of every geometry of ``gdf`` in EPSG:4326, rounded to ``precision`` decimals.

    Compute it once and pass it to :func:`write_geojson` for every table that shares these
    geometries (e.g. one file per date over the same cells): serialising 400k polygons is most
    of the cost of writing them.
    """
    import numpy as np
    import shapely

    if gdf.crs is None:
        raise ValueError("GeoDataFrame has no CRS; set one before writing GeoJSON")
    geo = gdf.geometry.to_crs(4326) if gdf.crs.to_epsg() != 4326 else gdf.geometry
    geoms = np.asarray(geo.values, dtype=object)
    rounded = shapely.transform(geoms, lambda xy: np.round(xy, precision))
    return list(shapely.to_geojson(rounded))


def write_geojson(
    gdf: Any,
    path: Path,
    *,
    precision: int = 7,
    geometry_json: Sequence[str | None] | None = None,
) -> Path:
    """Write a GeoDataFrame as RFC 7946 GeoJSON in EPSG:4326, atomically.

    Geometries are rounded and serialised by shapely (vectorised, in GEOS) and properties by
    pandas' JSON encoder, a chunk of rows at a time, then written as text. This is ~50x faster
    than building one dict per feature in Python (3.3 s -> 0.07 s for 8k cells), which matters
    because city outputs have 100k-400k cells per date.

    Parameters
    ----------
    gdf
        geopandas.GeoDataFrame with a CRS (reprojected to EPSG:4326 here).
    path
        Target file; a temporary beside it is renamed into place when complete.
    precision
        Decimal places kept for coordinates (7 ~ 1 cm).
    geometry_json
        The rows' geometries already serialised by :func:`geojson_geometries`, in row order.
    """
    import numpy as np
    import pandas as pd

    from uhi.workspace import Workspace

    if geometry_json is None:
        geometry_json = geojson_geometries(gdf, precision=precision)
    elif len(geometry_json) != len(gdf):
        raise ValueError(f"geometry_json has {len(geometry_json)} entries for {len(gdf)} rows")
    props = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    for col in props.columns:
        series = props[col]
        if pd.api.types.is_datetime64_any_dtype(series):
            has_time = bool((series.dropna().dt.normalize() != series.dropna()).any())
            fmt = "%Y-%m-%dT%H:%M:%SZ" if has_time else "%Y-%m-%d"
            props[col] = series.dt.strftime(fmt)
        elif pd.api.types.is_float_dtype(series):
            # NaN and infinities are not JSON: they become null
            props[col] = series.where(np.isfinite(series.to_numpy(dtype=float, na_value=np.nan)))
    ws = Workspace(Path(path).parent)
    with ws.atomic_path(Path(path)) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write('{"type":"FeatureCollection","features":[')
        for start in range(0, len(props), _CHUNK_ROWS):
            chunk = props.iloc[start : start + _CHUNK_ROWS]
            if len(chunk.columns):
                lines = chunk.to_json(
                    orient="records", lines=True, double_precision=15, force_ascii=False
                ).splitlines()
            else:
                lines = ["{}"] * len(chunk)
            geoms = geometry_json[start : start + len(chunk)]
            if start:
                fh.write(",")
            fh.write(
                ",".join(
                    '{"type":"Feature","properties":' + p + ',"geometry":' + (g or "null") + "}"
                    for p, g in zip(lines, geoms, strict=True)
                )
            )
        fh.write("]}")
    return Path(path)

"""RFC 7946 GeoJSON (EPSG:4326, lon/lat order), written atomically and streamed in chunks."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["write_geojson", "geojson_geometries"]

_CHUNK_ROWS = 50_000  # features serialised at a time: bounds the text held in memory
_PLAIN_ID = r"[0-9A-Za-z_.:+-]*"  # ids whose JSON string is the id in quotes


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
    id_column: str | None = "cell",
    float_digits: int | None = 6,
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
    id_column
        Column whose value becomes each feature's ``id`` (the cell key by default; the column
        stays a property too, as GDAL reads a string ``id`` into a field of that name).
    float_digits
        Decimal places kept for float properties (None keeps 15): 6 keeps 1e-6 of a degree C
        or of an index; a p-value below 5e-7 reads 0 here (the workbooks and the GeoPackage
        keep full precision).

    A float column with no finite value in any row is left out: GeoJSON carries no types, and
    GDAL would read a column of nulls as String (the GeoPackage keeps such columns typed).
    """
    import numpy as np
    import pandas as pd

    from uhi.workspace import Workspace

    if geometry_json is None:
        geometry_json = geojson_geometries(gdf, precision=precision)
    elif len(geometry_json) != len(gdf):
        raise ValueError(f"geometry_json has {len(geometry_json)} entries for {len(gdf)} rows")
    props = pd.DataFrame(gdf.drop(columns=gdf.geometry.name))
    ids: list[str] | None = None
    if id_column is not None and id_column in props.columns:
        keys = props[id_column]
        if pd.api.types.is_string_dtype(keys) and keys.notna().all() and keys.str.fullmatch(_PLAIN_ID).all():
            # quadkeys and the like need no escaping: quoting them is 7x cheaper than json.dumps
            ids = ['"' + v + '"' for v in keys.tolist()]
        else:
            ids = [json.dumps(v, ensure_ascii=False) for v in keys.tolist()]
    for col in list(props.columns):
        series = props[col]
        if pd.api.types.is_datetime64_any_dtype(series):
            has_time = bool((series.dropna().dt.normalize() != series.dropna()).any())
            fmt = "%Y-%m-%dT%H:%M:%SZ" if has_time else "%Y-%m-%d"
            props[col] = series.dt.strftime(fmt)
        elif pd.api.types.is_float_dtype(series):
            # NaN and infinities are not JSON: they become null
            values = series.to_numpy(dtype=float, na_value=np.nan)
            finite = np.isfinite(values)
            if not finite.any() and len(values):
                props = props.drop(columns=col)
                continue
            props[col] = series.where(finite)
    ws = Workspace(Path(path).parent)
    with ws.atomic_path(Path(path)) as tmp, open(tmp, "w", encoding="utf-8") as fh:
        fh.write('{"type":"FeatureCollection","features":[')
        for start in range(0, len(props), _CHUNK_ROWS):
            chunk = props.iloc[start : start + _CHUNK_ROWS]
            if len(chunk.columns):
                lines = _record_texts(chunk, 15 if float_digits is None else float_digits)
            else:
                lines = ["{}"] * len(chunk)
            geoms = geometry_json[start : start + len(chunk)]
            if start:
                fh.write(",")
            heads = (
                ['{"type":"Feature","id":' + i + "," for i in ids[start : start + len(chunk)]]
                if ids is not None
                else ['{"type":"Feature",'] * len(chunk)
            )
            fh.write(
                ",".join(
                    h + '"properties":' + p + ',"geometry":' + (g or "null") + "}"
                    for h, p, g in zip(heads, lines, geoms, strict=True)
                )
            )
        fh.write("]}")
    return Path(path)


def _record_texts(frame: Any, digits: int) -> list[str]:
    """Each row of ``frame`` as its JSON object text, serialised by pandas' JSON encoder.

    pandas writes the rows as one array, ``[{"k":..},{"k":..}]``. Every object opens with the
    same first key, and a quote inside a JSON string is always escaped, so ``},{"k":`` occurs
    only between two rows: one ``str.split`` cuts the array into rows. The text per row is what
    ``lines=True`` plus ``splitlines`` gave (the 30 km city's forecast.geojson is byte-identical)
    at 20 % less CPU (0.19 -> 0.16 s for 50k rows x 21 columns), and unlike ``splitlines`` it
    never cuts a row at a U+2028 or U+0085 inside a string value.
    """
    if len(frame) == 0:
        return []
    text = frame.to_json(orient="records", double_precision=digits, force_ascii=False)
    # the first key exactly as the encoder writes it (it escapes '/', unlike json.dumps)
    key = frame.iloc[:0, :1].to_json(orient="split", force_ascii=False)
    key = key[key.index("[") + 1 : key.index("]")]
    sep = "},{" + key + ":"
    rows = ("}," + text[1:-1]).split(sep)
    if len(rows) != len(frame) + 1 or rows[0]:  # cannot happen for valid JSON; be safe anyway
        return frame.to_json(orient="records", lines=True, double_precision=digits, force_ascii=False).rstrip("\n").split("\n")
    head = "{" + key + ":"
    last = rows[-1][:-1]
    return [head + r + "}" for r in rows[1:-1]] + [head + last + "}"]

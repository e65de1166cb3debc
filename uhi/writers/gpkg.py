"""GeoPackages (OGC GPKG via GDAL): a stage's layers in one file, and the city's file assembled from them."""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["write_gpkg", "assemble_gpkg", "gpkg_sources"]

log = logging.getLogger("uhi.writers.gpkg")

_LAYER_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


# GDAL stamps gpkg_contents.last_change with the current time; a fixed stamp makes two runs
# write byte-identical files (the crash, Dask and shard tests compare artifacts byte for byte)
_FIXED_DATE = "2000-01-01T00:00:00.000Z"
# GeoPackage 1.2: recent GDAL writes 1.4 by default, which Debian 12's GDAL 3.6 opens with a
# "may only be partially supported" warning; uhi uses nothing newer than 1.2
_DATASET_OPTIONS = {"VERSION": "1.2"}


# SQLite's own journal and syncs protect a file edited in place; uhi writes a temporary file
# that atomic_path fsyncs and renames as a whole, so they only cost time (400k cells: about 1 s
# of 4 s on 2 cores)
_WRITE_OPTIONS = {
    "OGR_CURRENT_DATE": _FIXED_DATE,
    "OGR_SQLITE_SYNCHRONOUS": "OFF",
    "OGR_SQLITE_JOURNAL": "OFF",
}


@contextlib.contextmanager
def _fixed_change_date() -> Iterator[None]:
    """GDAL options for writing a temporary GeoPackage: fixed change date, no SQLite journal."""
    import pyogrio

    before = {key: pyogrio.get_gdal_config_option(key) for key in _WRITE_OPTIONS}
    pyogrio.set_gdal_config_options(_WRITE_OPTIONS)
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options(before)


def _prepared(frame: Any) -> Any:
    """A copy that GDAL types well: vector layers in EPSG:4326, naive datetimes kept as UTC."""
    import geopandas as gpd
    import pandas as pd

    df = frame.copy()
    for col in df.columns:
        if isinstance(df[col].dtype, pd.DatetimeTZDtype):
            df[col] = df[col].dt.tz_convert("UTC").dt.tz_localize(None)
    if isinstance(df, gpd.GeoDataFrame):
        if df.crs is None:
            raise ValueError("GeoDataFrame has no CRS; set one before writing a GeoPackage layer")
        if df.crs.to_epsg() != 4326:
            df = df.to_crs(4326)
    return df


def write_gpkg(path: Path, layers: Mapping[str, Any]) -> Path:
    """Write DataFrames as the layers of one GeoPackage, atomically (temporary file, then rename).

    Parameters
    ----------
    path
        Target ``.gpkg`` file; replaced as a whole.
    layers
        Layer name -> ``geopandas.GeoDataFrame`` (a feature layer in EPSG:4326, reprojected here),
        ``pandas.DataFrame`` or ``pyarrow.Table`` (an attribute table without geometry, joined in
        QGIS by ``cell``). Names are letters, digits and ``_`` (SQL-safe, as QGIS expects).
        Column types come from the dtypes, so a float column of nulls stays Real and booleans
        stay booleans. A ``pyarrow.Table`` goes to GDAL as it is: a table built from arrays skips
        the DataFrame and its conversion (the 30 km city's 2.7M-row ``cell_years``, issue 19).
    """
    import pyarrow as pa
    import pyogrio

    from uhi.workspace import Workspace

    if not layers:
        raise ValueError("a GeoPackage needs at least one layer")
    for name in layers:
        if not _LAYER_NAME.match(name):
            raise ValueError(f"layer name {name!r} must be letters, digits and '_' (at most 63)")
    ws = Workspace(Path(path).parent)
    with ws.atomic_path(Path(path)) as tmp:
        tmp.unlink()  # GDAL creates the file itself
        try:
            with _fixed_change_date():
                for name, frame in layers.items():
                    if isinstance(frame, pa.Table):
                        pyogrio.write_arrow(
                            frame, tmp, layer=name, driver="GPKG", dataset_options=_DATASET_OPTIONS,
                            append=False,
                        )
                        continue
                    # the Arrow path: half the time of the row-by-row one for a 400k-row table
                    # (0.7 s against 1.5 s, bench_exposure); the same types and values
                    pyogrio.write_dataframe(
                        _prepared(frame), tmp, layer=name, driver="GPKG", dataset_options=_DATASET_OPTIONS,
                        use_arrow=True,
                    )
        finally:
            for suffix in ("-journal", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    Path(f"{tmp}{suffix}").unlink()
    return Path(path)


def gpkg_sources(root: Path, order: Sequence[str]) -> list[Path]:
    """The stage GeoPackages under ``root``: ``<folder>/*.gpkg``, folders in ``order`` first."""
    root = Path(root)
    folders = [root / name for name in order]
    if root.is_dir():
        folders += sorted(
            p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in order
        )
    found: list[Path] = []
    for folder in folders:
        if folder.is_dir():
            found += sorted(p for p in folder.glob("*.gpkg") if not p.name.startswith("."))
    return found


def assemble_gpkg(target: Path, sources: Sequence[Path]) -> Path | None:
    """Copy every layer of ``sources`` into one GeoPackage ``target``, atomically.

    The first source is copied as a file (its layers as written); the layers of the others are
    appended in order. A layer whose name is already taken gets the source file's stem as a
    prefix. Returns None, writing nothing, when there is no source.

    A feature or attribute layer that keeps its name is copied as SQLite rows (table, spatial
    index, triggers and catalogue entries as the stage wrote them): the 30 km city's layers in
    seconds rather than decoding and encoding every geometry through GDAL. A renamed layer, or
    any layer of a file that holds something else (tiles, metadata), goes through GDAL.
    """
    import pyogrio

    from uhi.workspace import Workspace

    sources = [Path(p) for p in sources]
    if not sources:
        return None
    ws = Workspace(Path(target).parent)
    with ws.atomic_path(Path(target)) as tmp:
        shutil.copyfile(sources[0], tmp)
        taken = {str(row[0]) for row in pyogrio.list_layers(tmp)}
        for src in sources[1:]:
            plain = _plain_layers(src)
            for row in pyogrio.list_layers(src):
                layer = str(row[0])
                name = f"{src.stem}_{layer}" if layer in taken else layer
                if name == layer and layer in plain:
                    _copy_layer_sql(tmp, src, layer)
                else:
                    with _fixed_change_date():
                        frame = pyogrio.read_dataframe(src, layer=layer, use_arrow=True)
                        pyogrio.write_dataframe(frame, tmp, layer=name, driver="GPKG")
                taken.add(name)
        for suffix in ("-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{tmp}{suffix}").unlink()
    log.info("wrote %s (%d layers from %d files)", target, len(taken), len(sources))
    return Path(target)


# what a GeoPackage written by write_gpkg holds besides its layers and their R-trees: the
# GeoPackage 1.2 core tables, GDAL's feature-count table and SQLite's AUTOINCREMENT bookkeeping
_CATALOGUE = frozenset({
    "gpkg_spatial_ref_sys", "gpkg_contents", "gpkg_geometry_columns", "gpkg_extensions",
    "gpkg_tile_matrix_set", "gpkg_tile_matrix", "gpkg_ogr_contents", "sqlite_sequence",
})


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _plain_layers(src: Path) -> set[str]:
    """The layers of ``src`` that SQL can copy: all its feature and attribute layers when the file
    holds nothing but them, their R-trees and the catalogue; none otherwise."""
    import sqlite3

    con = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    try:
        tables = {str(r[0]) for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        layers = dict(con.execute("SELECT table_name, data_type FROM gpkg_contents").fetchall())
        geometry = dict(con.execute("SELECT table_name, column_name FROM gpkg_geometry_columns").fetchall())
        extensions = (
            {str(r[0]) for r in con.execute("SELECT extension_name FROM gpkg_extensions")}
            if "gpkg_extensions" in tables else set()
        )
    except sqlite3.Error:
        return set()
    finally:
        con.close()
    rtrees = {f"rtree_{t}_{c}{part}" for t, c in geometry.items() for part in ("", "_rowid", "_node", "_parent")}
    if tables - _CATALOGUE - set(layers) - rtrees or extensions - {"gpkg_rtree_index"}:
        return set()
    if any(kind not in ("features", "attributes") for kind in layers.values()):
        return set()
    return {str(t) for t in layers}


def _copy_layer_sql(target: Path, src: Path, layer: str) -> None:
    """Copy one layer of ``src`` (checked by ``_plain_layers``) into ``target`` under its name.

    The R-tree is filled before the triggers exist: they call GDAL's SQL functions
    (``ST_IsEmpty``, ``ST_MinX``), which plain SQLite lacks.
    """
    import sqlite3

    con = sqlite3.connect(target, isolation_level=None)
    try:
        con.execute("ATTACH DATABASE ? AS src", (str(src),))
        master = con.execute("SELECT type, name, tbl_name, sql FROM src.sqlite_master").fetchall()
        have = {str(r[0]) for r in con.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")}
        sql_of = {str(m[1]): m[3] for m in master if m[0] == "table"}
        q = _quoted(layer)
        con.execute("BEGIN")
        for name in ("gpkg_extensions", "gpkg_ogr_contents"):  # a first file without them
            if name not in have and sql_of.get(name):
                con.execute(sql_of[name])
        con.execute(sql_of[layer])
        con.execute(f"INSERT INTO main.{q} SELECT * FROM src.{q}")
        con.execute(
            "INSERT OR IGNORE INTO main.gpkg_spatial_ref_sys SELECT * FROM src.gpkg_spatial_ref_sys "
            "WHERE srs_id IN (SELECT srs_id FROM src.gpkg_contents WHERE table_name = ?)", (layer,),
        )
        for table in ("gpkg_contents", "gpkg_geometry_columns", "gpkg_ogr_contents", "gpkg_extensions"):
            if table in sql_of:
                con.execute(f"INSERT INTO main.{table} SELECT * FROM src.{table} WHERE table_name = ?", (layer,))
        for (column,) in con.execute("SELECT column_name FROM src.gpkg_geometry_columns WHERE table_name = ?", (layer,)).fetchall():
            rtree = f"rtree_{layer}_{column}"
            if rtree in sql_of:
                con.execute(f"CREATE VIRTUAL TABLE main.{_quoted(rtree)} USING rtree(id, minx, maxx, miny, maxy)")
                _copy_rtree(con, rtree)
        for kind, _name, table, sql in master:
            if kind in ("trigger", "index") and table == layer and sql:
                con.execute(sql)
        con.execute("COMMIT")
    finally:
        con.close()


def _copy_rtree(con: Any, rtree: str) -> None:
    """Fill the new R-tree ``main.<rtree>`` with the entries of ``src.<rtree>``.

    With equal page sizes the tree's shadow tables (nodes, parents, row ids) are copied as they
    are: the same tree, without rebuilding it (inserting 389k boxes one by one took 4.6 s of a
    5.6 s layer copy). Otherwise, or when SQLite refuses writes to shadow tables (its defensive
    mode), the entries are inserted.
    """
    import sqlite3

    q = _quoted(rtree)
    pages = {con.execute(f"PRAGMA {db}.page_size").fetchone()[0] for db in ("main", "src")}
    if len(pages) == 1:
        con.execute("SAVEPOINT rtree_copy")
        try:
            for part in ("node", "parent", "rowid"):
                shadow = _quoted(f"{rtree}_{part}")
                con.execute(f"DELETE FROM main.{shadow}")
                con.execute(f"INSERT INTO main.{shadow} SELECT * FROM src.{shadow}")
        except sqlite3.Error:
            con.execute("ROLLBACK TO rtree_copy")
            con.execute("RELEASE rtree_copy")
        else:
            con.execute("RELEASE rtree_copy")
            return
    con.execute(f"INSERT INTO main.{q} SELECT * FROM src.{q}")

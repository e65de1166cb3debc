"""Writers: GeoJSON is RFC 7946 (lon/lat, nulls for NaN), Excel and COG files round-trip."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from rasterio.transform import from_origin

from uhi.writers.excel import write_workbook
from uhi.writers.geojson import write_geojson
from uhi.writers.raster import write_cog, write_tiled_gtiff


def _frame() -> gpd.GeoDataFrame:
    geoms = [shapely.box(500000, 5650000, 500048, 5650048), shapely.box(500048, 5650000, 500096, 5650048), None]
    return gpd.GeoDataFrame(
        {
            "cell": ["a", "b", "c"],
            "lst_c": [30.123456789, np.nan, np.inf],
            "count": np.array([1, 2, 3], dtype=np.int64),
            "urban": [True, False, True],
            "date": pd.to_datetime(["2020-07-01", "2020-07-02", None]),
        },
        geometry=geoms,
        crs="EPSG:32612",
    )


def test_geojson_is_rfc7946_with_nulls_and_dates(tmp_path: Path) -> None:
    path = write_geojson(_frame(), tmp_path / "out.geojson")
    fc = json.loads(path.read_text())
    assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 3
    a, b, c = (f["properties"] for f in fc["features"])
    assert a == {"cell": "a", "lst_c": 30.123457, "count": 1, "urban": True, "date": "2020-07-01"}
    assert [f["id"] for f in fc["features"]] == ["a", "b", "c"]
    assert b["lst_c"] is None and c["lst_c"] is None and c["date"] is None
    assert fc["features"][2]["geometry"] is None
    lon, lat = fc["features"][0]["geometry"]["coordinates"][0][0]
    assert -115 < lon < -110 and 50 < lat < 52  # reprojected to lon/lat (UTM 12N near Calgary)
    assert all(len(str(v).split(".")[-1]) <= 7 for v in (lon, lat))
    # an independent reader gets the same geometry back (within the 7-decimal rounding)
    back = gpd.read_file(path)
    expected = _frame().to_crs(4326).geometry.iloc[0]
    assert back.geometry.iloc[0].equals_exact(expected, tolerance=1e-6)


def test_geojson_rows_survive_separators_and_line_breaks_inside_strings(tmp_path: Path) -> None:
    """A value holding the row separator text, a slash, U+2028 or U+0085 stays in its own row.

    Catches a writer that cuts pandas' output at line breaks (``splitlines`` cuts at U+2028 and
    U+0085) or at a ``},{"key":`` that sits inside a string.
    """
    names = ['he said "},{"scene/id":1', "line\u2028sep", "next\x85line", "plain/slash"]
    gdf = gpd.GeoDataFrame(
        {"scene/id": names, "v": [1.0, float("nan"), 2.5, 3.0]},
        geometry=[shapely.Point(-114.0 + i / 10, 51.0) for i in range(4)],
        crs="EPSG:4326",
    )
    fc = json.loads(write_geojson(gdf, tmp_path / "s.geojson", id_column=None).read_text(encoding="utf-8"))
    assert [f["properties"]["scene/id"] for f in fc["features"]] == names
    assert [f["properties"]["v"] for f in fc["features"]] == [1.0, None, 2.5, 3.0]
    assert [f["geometry"]["coordinates"][0] for f in fc["features"]] == [-114.0, -113.9, -113.8, -113.7]


def test_geojson_timestamps_keep_time(tmp_path: Path) -> None:
    g = gpd.GeoDataFrame(
        {"t": pd.to_datetime(["2020-07-01T17:30:00"])}, geometry=[shapely.Point(1, 2)], crs=4326
    )
    fc = json.loads(write_geojson(g, tmp_path / "t.geojson").read_text())
    assert fc["features"][0]["properties"]["t"] == "2020-07-01T17:30:00Z"


def test_geojson_without_properties_or_rows(tmp_path: Path) -> None:
    g = gpd.GeoDataFrame(geometry=[shapely.Point(1, 2)], crs=4326)
    fc = json.loads(write_geojson(g, tmp_path / "p.geojson").read_text())
    assert fc["features"][0]["properties"] == {}
    empty = gpd.GeoDataFrame({"a": []}, geometry=[], crs=4326)
    assert json.loads(write_geojson(empty, tmp_path / "e.geojson").read_text())["features"] == []


def test_geojson_needs_crs(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no CRS"):
        write_geojson(gpd.GeoDataFrame(geometry=[shapely.Point(0, 0)]), tmp_path / "x.geojson")


def test_workbook_round_trip(tmp_path: Path) -> None:
    df = pd.DataFrame({"model": ["ols", "lag"], "r2": [0.5, 0.7]})
    path = write_workbook(tmp_path / "w.xlsx", {"r2": df}, notes={"r2": "coefficient of determination"})
    back = pd.read_excel(path, sheet_name=None)
    assert list(back) == ["r2", "about", "columns"]
    pd.testing.assert_frame_equal(back["r2"], df)


def test_cog_round_trip(tmp_path: Path) -> None:
    data = np.arange(600 * 500, dtype=np.float32).reshape(600, 500)
    data[0, 0] = np.nan
    path = write_cog(tmp_path / "x.tif", data, transform=from_origin(500000, 5650000, 30, 30), crs="EPSG:32612")
    with rasterio.open(path) as src:
        assert src.profile["tiled"] and src.overviews(1)
        out = src.read(1)
        assert math.isnan(src.nodata)
    np.testing.assert_array_equal(out, data)


def test_geojson_precomputed_geometries_and_chunks_give_the_same_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uhi.writers.geojson as gj

    frame = _frame()
    whole = gj.write_geojson(frame, tmp_path / "a.geojson").read_bytes()
    monkeypatch.setattr(gj, "_CHUNK_ROWS", 2)  # three rows: two chunks
    shared = gj.geojson_geometries(frame)
    chunked = gj.write_geojson(frame, tmp_path / "b.geojson", geometry_json=shared).read_bytes()
    assert chunked == whole
    assert len(json.loads(chunked)["features"]) == 3
    with pytest.raises(ValueError, match="2 entries for 3 rows"):
        gj.write_geojson(frame, tmp_path / "c.geojson", geometry_json=shared[:2])


def test_geojson_ids_key_and_types_read_back_by_gdal(tmp_path: Path) -> None:
    """The cell key is the feature id, floats keep 6 decimals, GDAL types every column."""
    import pyogrio

    g = gpd.GeoDataFrame(
        {
            "cell": ["0231", "0232"],
            "lst_c": [30.1234564, np.nan],  # one null: still Real for GDAL
            "empty": [np.nan, np.nan],  # no value anywhere: left out, else GDAL reads String
            "hotspot": np.array([3, -1], dtype=np.int64),
            "p": [1.5e-3, 0.04],
        },
        geometry=[shapely.Point(-114.123456789, 51.0), shapely.Point(-114.0, 51.987654321)],
        crs=4326,
    )
    path = write_geojson(g, tmp_path / "g.geojson")
    fc = json.loads(path.read_text())
    assert [f["id"] for f in fc["features"]] == ["0231", "0232"]  # string keys stay strings
    assert fc["features"][0]["properties"]["lst_c"] == 30.123456  # 6 decimals, rounded half-even-free
    assert fc["features"][0]["geometry"]["coordinates"] == [-114.1234568, 51.0]
    info = pyogrio.read_info(path)
    types = dict(zip(info["fields"], info["ogr_types"], strict=True))
    assert "empty" not in types
    assert types["cell"] == "OFTString"
    assert types["lst_c"] == "OFTReal" and types["p"] == "OFTReal"
    assert types["hotspot"] in ("OFTInteger", "OFTInteger64")
    back = pyogrio.read_dataframe(path)
    assert back["cell"].tolist() == ["0231", "0232"]
    assert back["hotspot"].tolist() == [3, -1]


def test_workbook_panes_filters_formats_and_columns_sheet(tmp_path: Path) -> None:
    """Frozen headers, autofilters, number formats by kind, dates as dates, a columns sheet."""
    import openpyxl

    cells = pd.DataFrame(
        {
            "cell": ["0231", "0232"],
            "date": pd.to_datetime(["2020-07-01", "2020-07-17"]),
            "lst_c": [30.5, 31.25],
            "valid_share": [0.5, 1.0],
            "gi_p": [1e-9, 0.2],
            "building_count": np.array([3, 0], dtype=np.int64),
            "period": ["2019", "2020"],
        }
    )
    r2 = pd.DataFrame({"r2": [0.5]}, index=pd.Index(["ols"], name="model"))
    # the centres of two zoom-1 tiles: an independent reference is the tile geometry itself
    geo = gpd.GeoDataFrame(
        {"cell": ["0231", "0232"]},
        geometry=[shapely.box(0, 0, 90, 45), shapely.box(-90, -45, 0, 0)],
        crs=4326,
    )
    from uhi.writers.excel import cell_centres

    path = write_workbook(
        tmp_path / "w.xlsx",
        {"cells": cells, "r2": r2},
        notes={"lst_c": "land surface temperature"},
        centres=cell_centres(geo),
    )
    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["cells", "r2", "about", "columns"]
    sh = book["cells"]
    assert sh.freeze_panes == "A2" and sh.auto_filter.ref == "A1:I3"
    header = [c.value for c in sh[1]]
    assert header == ["cell", "lon", "lat", "date", "lst_c", "valid_share", "gi_p", "building_count", "period"]
    row = {h: c for h, c in zip(header, sh[2], strict=True)}
    # the centre of a tile is the middle of its web-mercator square: lat by the Gudermannian
    mid_lat = math.degrees(math.atan(math.sinh(math.asinh(math.tan(math.radians(45))) / 2)))
    assert row["lon"].value == pytest.approx(45.0, abs=1e-7)
    assert row["lat"].value == pytest.approx(mid_lat, abs=1e-7) and mid_lat > 22.5  # not the degree midpoint
    assert row["lst_c"].number_format == '0.00" °C"' and row["lst_c"].value == 30.5
    assert row["valid_share"].number_format == "0.0%"
    assert row["gi_p"].number_format == "0.00E+00"
    assert row["building_count"].number_format == "0"
    assert row["period"].value == 2019 and row["period"].number_format == "0"  # a number, not text
    assert row["date"].number_format == "yyyy-mm-dd" and row["date"].value.hour == 0
    assert book["r2"].freeze_panes == "B2"  # header row and the index column stay in view
    listed = pd.read_excel(path, sheet_name="columns")
    assert set(zip(listed["sheet"], listed["column"], strict=True)) == {
        *(("cells", c) for c in header), ("r2", "model"), ("r2", "r2")
    }
    units = listed.set_index(["sheet", "column"])["unit"]
    assert units[("cells", "lst_c")] == "°C" and units[("cells", "lon")] == "degrees (EPSG:4326)"
    desc = listed.set_index(["sheet", "column"])["description"]
    assert desc[("cells", "lst_c")] == "land surface temperature"


def test_cog_describes_its_bands(tmp_path: Path) -> None:
    """Descriptions, units, scale and offset survive the COG driver and read back in rasterio."""
    data = np.ones((2, 300, 300), dtype=np.uint16)
    path = write_cog(
        tmp_path / "d.tif", data, transform=from_origin(500000, 5650000, 30, 30), crs="EPSG:32612",
        nodata=0, band_names=["lwir11", "qa"], units=["kelvin", "kelvin"],
        scales=[0.00341802, 0.01], offsets=[149.0, 0.0], tags={"uhi_source": "https://x/y.tif"},
    )
    with rasterio.open(path) as src:
        assert src.descriptions == ("lwir11", "qa")
        assert src.units == ("kelvin", "kelvin")
        assert src.scales == (0.00341802, 0.01) and src.offsets == (149.0, 0.0)
        assert src.tags()["uhi_source"] == "https://x/y.tif"
        assert src.overviews(1)  # still a COG with overviews


def test_tiled_gtiff_holds_the_source_window_exactly(tmp_path: Path) -> None:
    """A window of a real deflate GeoTIFF, rewritten by write_tiled_gtiff, reads back as the
    same DNs GDAL reads from the source window (full uint16 range, nodata, odd sizes), in a
    tiled ZSTD GeoTIFF with no overviews and the band metadata kept."""
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    rng = np.random.default_rng(7)
    full = rng.integers(0, 65536, size=(700, 650), dtype=np.uint16)
    full[:5] = 0  # nodata rows
    src_path = tmp_path / "src.tif"
    with rasterio.open(
        src_path, "w", driver="GTiff", height=700, width=650, count=1, dtype="uint16",
        crs="EPSG:32612", transform=from_origin(500000, 5650000, 30, 30), nodata=0,
        tiled=True, blockxsize=256, blockysize=256, compress="deflate",
    ) as dst:
        dst.write(full, 1)
    window = Window(37, 3, 517, 301)  # straddles source tiles, starts in the nodata rows
    with rasterio.open(src_path) as src:
        expected = src.read(1, window=window)
        clip_transform = window_transform(window, src.transform)
    path = write_tiled_gtiff(
        tmp_path / "clip.tif", expected.copy(), transform=clip_transform, crs="EPSG:32612", nodata=0,
        band_names=["lwir11"], units=["kelvin"], scales=[0.00341802], offsets=[149.0],
        tags={"uhi_window": "37,3,517,301"},
    )
    with rasterio.open(path) as out:
        assert out.dtypes == ("uint16",) and out.nodata == 0 and out.crs.to_epsg() == 32612
        assert out.transform == clip_transform and (out.height, out.width) == (301, 517)
        assert out.profile["tiled"] and out.block_shapes == [(256, 256)]
        assert out.profile["compress"] == "zstd" and out.overviews(1) == []
        assert out.descriptions == ("lwir11",) and out.units == ("kelvin",)
        assert out.scales == (0.00341802,) and out.offsets == (149.0,)
        assert out.tags()["uhi_window"] == "37,3,517,301"
        got = out.read(1)
    assert np.array_equal(got, expected)
    assert np.array_equal(got, full[3:304, 37:554])  # and the array the window was cut from
    assert not list(tmp_path.glob(".clip.tif*"))  # the temporary was renamed in, none left


def test_gpkg_layers_typed_and_assembled(tmp_path: Path) -> None:
    """Stage GeoPackages keep their column types and are assembled into one file, in order."""
    import pyogrio

    from uhi.writers.gpkg import assemble_gpkg, gpkg_sources, write_gpkg

    cells = _frame().iloc[:2]  # UTM: reprojected to lon/lat on the way in
    cells["empty"] = np.nan  # no value anywhere: still a Real column
    write_gpkg(tmp_path / "compute" / "compute.gpkg", {"cells": cells})
    years = pd.DataFrame({"cell": ["a", "b"], "year": [2019, 2020], "lst_c": [30.0, 31.0]})
    write_gpkg(tmp_path / "model" / "model.gpkg", {"cells": cells, "years": years})
    (tmp_path / "scenario").mkdir()
    sources = gpkg_sources(tmp_path, ("compute", "model"))
    assert [p.relative_to(tmp_path).as_posix() for p in sources] == ["compute/compute.gpkg", "model/model.gpkg"]
    city = assemble_gpkg(tmp_path / "city.gpkg", sources)
    assert city is not None
    layers = [str(name) for name, _ in pyogrio.list_layers(city)]
    assert layers == ["cells", "model_cells", "years"]  # a taken name gets its file's stem
    info = pyogrio.read_info(city, layer="model_cells")
    types = dict(zip(info["fields"], info["ogr_types"], strict=True))
    assert types["empty"] == "OFTReal" and types["lst_c"] == "OFTReal" and types["cell"] == "OFTString"
    assert info["ogr_subtypes"][list(info["fields"]).index("urban")] == "OFSTBoolean"
    assert info["crs"] == "EPSG:4326"
    assert pyogrio.read_info(city, layer="years")["geometry_type"] is None  # an attribute table
    back = pyogrio.read_dataframe(city, layer="years")
    assert back["year"].tolist() == [2019, 2020]
    assert assemble_gpkg(tmp_path / "none.gpkg", []) is None and not (tmp_path / "none.gpkg").exists()
    with pytest.raises(ValueError, match="letters, digits"):
        write_gpkg(tmp_path / "bad.gpkg", {"my layer": years})



def test_city_gpkg_layers_copied_by_sql_equal_their_sources_and_stay_indexed(tmp_path: Path) -> None:
    """Layers that keep their name are copied as SQLite rows: the same frames, FIDs and types as
    the stage file, a spatial filter answered by the copied R-tree, triggers that GDAL runs when
    the file is edited later, and the same bytes when assembled twice."""
    import subprocess

    import pyogrio

    from uhi.writers.gpkg import assemble_gpkg, write_gpkg

    boxes = [shapely.box(500000 + 48 * i, 5650000, 500048 + 48 * i, 5650048) for i in range(40)]
    cells = gpd.GeoDataFrame(
        {"cell": [f"c{i}" for i in range(40)], "lst_c": np.linspace(25, 35, 40),
         "gi_class": pd.array([1, None] * 20, dtype="Int8"), "urban": [True, False] * 20},
        geometry=boxes, crs="EPSG:32612",
    )
    table = pd.DataFrame({"cell": ["c0", "c1"], "year": [2019, 2020]})
    write_gpkg(tmp_path / "compute" / "compute.gpkg", {"aoi": cells.iloc[:1]})
    write_gpkg(tmp_path / "model" / "model.gpkg", {"hotspots": cells, "hotspot_years": table})
    sources = [tmp_path / "compute" / "compute.gpkg", tmp_path / "model" / "model.gpkg"]
    city = assemble_gpkg(tmp_path / "city.gpkg", sources)
    assert city is not None
    assert [str(n) for n, _ in pyogrio.list_layers(city)] == ["aoi", "hotspots", "hotspot_years"]
    for layer in ("hotspots", "hotspot_years"):
        ours = pyogrio.read_dataframe(city, layer=layer, fid_as_index=True)
        ref = pyogrio.read_dataframe(sources[1], layer=layer, fid_as_index=True)
        pd.testing.assert_frame_equal(ours, ref)
        mine, theirs = pyogrio.read_info(city, layer=layer), pyogrio.read_info(sources[1], layer=layer)
        assert list(mine["ogr_subtypes"]) == list(theirs["ogr_subtypes"])  # Int16, Boolean as written
        assert mine["features"] == len(ref)
    # a bbox (lon/lat) over cells 10..19: the rows whose polygons meet it, by shapely on the source
    # (the UTM squares are slightly rotated in lon/lat, so a neighbour may touch it too)
    ref = pyogrio.read_dataframe(sources[1], layer="hotspots")
    xmin, ymin, _, _ = ref.geometry.iloc[10].bounds
    _, _, xmax, ymax = ref.geometry.iloc[19].bounds
    inside = ref.geometry.intersects(shapely.box(xmin + 1e-7, ymin + 1e-7, xmax - 1e-7, ymax - 1e-7))
    assert pyogrio.read_info(city, layer="hotspots")["capabilities"]["fast_spatial_filter"]
    hits = pyogrio.read_dataframe(city, layer="hotspots", bbox=(xmin + 1e-7, ymin + 1e-7, xmax - 1e-7, ymax - 1e-7))
    assert sorted(hits["cell"]) == sorted(ref.loc[inside, "cell"]) and len(hits) >= 10
    again = assemble_gpkg(tmp_path / "again.gpkg", sources)
    assert again is not None and again.read_bytes() == city.read_bytes()
    import sqlite3

    con = sqlite3.connect(city)
    try:  # SQLite's own consistency check of the copied tree, and its entries against the rows
        assert con.execute("SELECT rtreecheck('rtree_hotspots_geom')").fetchone() == ("ok",)
        assert con.execute("SELECT count(*) FROM rtree_hotspots_geom").fetchone() == (40,)
    finally:
        con.close()
    if (ogrinfo := shutil.which("ogrinfo")) is not None:  # the stock GDAL opens it without complaint
        done = subprocess.run([ogrinfo, "-ro", "-so", "-al", str(city)], capture_output=True, text=True, check=True)
        assert "Warning" not in done.stderr and "ERROR" not in done.stderr, done.stderr
    # GDAL appends to the copied layer: its triggers keep the R-tree and the feature count
    more = cells.iloc[:1].assign(cell="new").to_crs(4326)
    pyogrio.write_dataframe(more, city, layer="hotspots", driver="GPKG", append=True)
    assert pyogrio.read_info(city, layer="hotspots")["features"] == 41
    x0, y0, x1, y1 = more.geometry.iloc[0].bounds
    found = pyogrio.read_dataframe(city, layer="hotspots", bbox=(x0 + 1e-7, y0 + 1e-7, x1 - 1e-7, y1 - 1e-7))
    assert sorted(found["cell"]) == ["c0", "new"]


def test_column_descriptions_compose_variable_and_suffixes() -> None:
    from uhi.writers.columns import describe_column

    assert describe_column("lst_c_2021_lo") == (
        "land surface temperature (USGS ST_B10): for 2021, lower bound of the prediction interval"
    )
    assert describe_column("ndvi_steps_observed").endswith(": steps with an observed value")
    assert describe_column("gi_p_2019") == "Gi* p-value (FDR-adjusted when model.fdr): for 2019"
    assert describe_column("x_before", {"x": "my variable"}) == "my variable: before the changes"
    assert describe_column("no_such_thing") == ""


def test_workbook_cells_equal_pandas_to_excel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """write_workbook writes plain frames' cells itself (issue 19: pandas' per-cell styling cost
    5.4 s on the demo forecast). Every part of the file must equal what the same call writes
    through pandas' ``to_excel`` (the path frames with dates still take), byte for byte but the
    creation time: NaN and None as no cell, +-inf as 'inf'/'-inf' text, a formula- and a
    URL-looking string as pandas hands them to xlsxwriter, numpy scalars in an object column,
    the bold bordered header, shared strings in pandas' column order."""
    import zipfile

    from uhi.writers import excel

    frame = pd.DataFrame({
        "cell": ["a", "b", "c", "d"],
        "lst_c": [30.5, np.nan, np.inf, -np.inf],
        "n": np.array([1, 2, 3, 4], dtype=np.int64),
        "ok": [True, False, True, False],
        "mixed": [None, np.float64(2.5), np.int64(7), "=1+1"],
        "url": ["http://example.org", "", "x", float("nan")],
        "valid_share": np.array([0.5, 1.0, np.nan, 0.25], dtype=np.float32),
    })
    sheets = {"cells": frame, "summary": frame.iloc[:0]}
    assert excel._cell_columns(frame) is not None  # the direct path is the one under test
    ours = write_workbook(tmp_path / "ours.xlsx", sheets, notes={"lst_c": "LST"})
    monkeypatch.setattr(excel, "_cell_columns", lambda df: None)
    reference = write_workbook(tmp_path / "pandas.xlsx", sheets, notes={"lst_c": "LST"})

    def parts(path: Path) -> dict[str, bytes]:
        with zipfile.ZipFile(path) as z:
            return {n: z.read(n) for n in z.namelist() if n != "docProps/core.xml"}

    assert parts(ours) == parts(reference)
    # nullable and categorical columns are left to pandas (pd.NA has no xlsxwriter type)
    for dtype in ("Int64", "boolean", "category", "string"):
        odd = pd.DataFrame({"x": pd.array([1, None], dtype="Int64").astype(dtype)})
        assert excel._cell_columns(odd) is None, dtype
        write_workbook(tmp_path / f"{dtype}.xlsx", {"s": odd})
    import openpyxl

    sheet = openpyxl.load_workbook(ours)["cells"]
    assert [sheet.cell(r, 2).value for r in range(1, 6)] == ["lst_c", 30.5, None, "inf", "-inf"]
    assert sheet.cell(1, 2).font.b and sheet.cell(5, 5).value == "=1+1"


@pytest.mark.parametrize(
    "keys",
    [
        ["0212131212333231210", "0212131212333231211", "0212131212333231300"],  # quadkeys: quoted as they are
        ['a "quoted" key', "back\\slash", "naïve/é"],  # need escaping: the json.dumps path
    ],
)
def test_geojson_fast_writer_parses_and_equals_pyogrio(tmp_path: Path, keys: list[str]) -> None:
    """The per-date writer's text parses as JSON and holds what pyogrio (GDAL) writes and reads
    for the same table: ids, every property value (6 decimals) and the coordinates (7)."""
    import pyogrio

    rng = np.random.default_rng(5)
    values = rng.normal(30, 5, size=3)
    values[1] = np.nan
    g = gpd.GeoDataFrame(
        {"cell": keys, "date": ["2020-07-01"] * 3, "lst_c": values, "ndvi": [0.1234564, -0.5, 1e-7],
         "scene_id": ["LC08_L2SP_041025_20200701_02_T1"] * 3},
        geometry=[shapely.box(-114.2839050123, 51.18, -114.28, 51.1845081987 + i) for i in range(3)],
        crs=4326,
    )
    ours = json.loads(write_geojson(g, tmp_path / "ours.geojson").read_text(encoding="utf-8"))
    ogr_path = tmp_path / "ogr.geojson"
    pyogrio.write_dataframe(g, ogr_path, driver="GeoJSON", layer_options={"COORDINATE_PRECISION": 7})
    ref = json.loads(ogr_path.read_text(encoding="utf-8"))
    assert [f["id"] for f in ours["features"]] == keys
    assert len(ours["features"]) == len(ref["features"]) == 3
    for mine, theirs in zip(ours["features"], ref["features"], strict=True):
        p, q = mine["properties"], theirs["properties"]
        assert set(p) == set(q)
        assert p["cell"] == q["cell"] and p["date"] == q["date"] and p["scene_id"] == q["scene_id"]
        for key in ("lst_c", "ndvi"):
            if q[key] is None:
                assert p[key] is None
            else:  # ours keeps 6 decimals (float_digits), GDAL 15 significant digits
                assert p[key] == pytest.approx(q[key], abs=5e-7)
        np.testing.assert_allclose(
            np.array(mine["geometry"]["coordinates"][0]), np.array(theirs["geometry"]["coordinates"][0]), atol=0
        )
    # read back by GDAL, our file gives the same table as GDAL's own
    back, back_ref = pyogrio.read_dataframe(tmp_path / "ours.geojson"), pyogrio.read_dataframe(ogr_path)
    assert back["cell"].tolist() == back_ref["cell"].tolist() == keys


def test_workbook_bulk_rows_read_back_as_pandas_writes_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain sheets get their rows written into the file after xlsxwriter closes it (issue 19:
    4 of the demo forecast's 8 s were xlsxwriter's per-cell work). openpyxl, an independent
    reader, must read every cell back as pandas' to_excel writes it: the same value and type
    (floats to 16 digits, ints, booleans, text with XML characters and edge spaces; NaN, None
    and '' as no cell; +-inf as text), the same number format per column, the same sheet extent,
    on sheets whose names need escaping; and dates still go through pandas."""
    import openpyxl

    from uhi.writers import excel

    rng = np.random.default_rng(3)
    n = 40
    floats = rng.normal(30, 5, n)
    floats[[0, 7]] = np.nan
    floats[3] = np.inf
    floats[5] = 1 / 3
    floats[6] = -2.5e-300
    cells = pd.DataFrame({
        "cell": [f"0231{i:03d}" for i in range(n)],
        "lst_c": floats,
        "valid_share": rng.uniform(0, 1, n).astype(np.float32),
        "observations": rng.integers(-5, 2**40, n),
        "flag": rng.uniform(size=n) > 0.5,
        "status": (["ok", "a & b <c>", " edge ", "", None, "naïve°C"] * 7)[:n],
        "empty_tail": [1.5] * (n - 3) + [np.nan] * 3,
    })
    cells.loc[n - 1, ["lst_c", "valid_share", "observations", "flag", "status"]] = [np.nan, np.nan, 0, False, None]
    dated = pd.DataFrame({"date": pd.to_datetime(["2020-07-01", "2021-07-03"]), "lst_c": [30.5, np.nan]})
    sheets = {"cells": cells, "a&b <c>": cells.iloc[:5], "dated": dated, "none": cells.iloc[:0]}
    assert all(excel._plain_cells(excel._cell_columns(f)) for f in (cells, cells.iloc[:0]))
    ours = write_workbook(tmp_path / "ours.xlsx", sheets, notes={"lst_c": "LST"})
    monkeypatch.setattr(excel, "_cell_columns", lambda df: None)
    reference = write_workbook(tmp_path / "pandas.xlsx", sheets, notes={"lst_c": "LST"})

    import zipfile

    with zipfile.ZipFile(ours) as z:
        assert b't="inlineStr"' in z.read("xl/worksheets/sheet1.xml")  # the path under test
    a, b = openpyxl.load_workbook(ours), openpyxl.load_workbook(reference)
    assert a.sheetnames == b.sheetnames == ["cells", "a&b <c>", "dated", "none", "about", "columns"]
    checked = 0
    for name in a.sheetnames:
        sa, sb = a[name], b[name]
        assert (sa.dimensions, sa.freeze_panes, sa.auto_filter.ref) == (sb.dimensions, sb.freeze_panes, sb.auto_filter.ref)
        for row_a, row_b in zip(sa.iter_rows(), sb.iter_rows(), strict=True):
            for ca, cb in zip(row_a, row_b, strict=True):
                assert (type(ca.value), ca.value, ca.number_format) == (type(cb.value), cb.value, cb.number_format), ca.coordinate
                checked += 1
    assert checked > 9 * (n + 1)
    sheet = a["cells"]
    header = [c.value for c in sheet[1]]
    col = {h: i + 1 for i, h in enumerate(header)}
    assert sheet.cell(2, col["lst_c"]).value is None and sheet.cell(5, col["lst_c"]).value == "inf"
    assert sheet.cell(7, col["lst_c"]).value == 1 / 3 and sheet.cell(8, col["lst_c"]).value == -2.5e-300
    assert sheet.cell(3, col["status"]).value == "a & b <c>" and sheet.cell(4, col["status"]).value == " edge "
    assert sheet.cell(5, col["status"]).value is None  # '' is no cell, as xlsxwriter's write('')
    assert isinstance(sheet.cell(2, col["flag"]).value, bool)
    assert sheet.cell(2, col["observations"]).value == int(cells["observations"].iloc[0])
    assert sheet.cell(3, col["lst_c"]).number_format == '0.00" °C"'
    assert a["dated"].cell(2, 1).value.year == 2020

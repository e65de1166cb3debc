"""Building morphology per cell on real footprints, against per-cell hand computations in shapely."""

from __future__ import annotations

import math
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import Point, box

from uhi.config import BuildingsConfig
from uhi.errors import InputError
from uhi.grid.cells import build_cells, cell_quads
from uhi.morphology import MORPHOLOGY_COLUMNS, cell_morphology


def _cells(layer: gpd.GeoDataFrame, zoom: int, crs: str) -> np.ndarray:
    w, s, e, n = layer.to_crs(4326).total_bounds
    cells = build_cells(box(w, s, e, n), zoom, crs)
    q = cell_quads(cells["tile_x"].to_numpy(), cells["tile_y"].to_numpy(), zoom, crs)
    return shapely.polygons(np.concatenate([q, q[:, :1]], axis=1))


def _layer_cake(pieces, values):
    """Integral over the union of ``pieces`` of the largest value covering each point, by the
    layer-cake formula sum_k (v_k - v_k+1) x area(union of pieces with value >= v_k): an
    overlay-free reference for the face-by-face sums in uhi.morphology."""
    levels = sorted(set(values), reverse=True) + [0.0]
    total = 0.0
    for k, v in enumerate(levels[:-1]):
        above = [p for p, val in zip(pieces, values, strict=True) if val >= v]
        total += (v - levels[k + 1]) * shapely.union_all(above).area
    return total


def _hand(cell, geoms, height, floors, storey_m=3.0):
    """One cell by brute force: clip every building, one at a time, then integrate the tallest
    storeys (height) over the union; ground of unknown storeys counts one storey."""
    pieces, hs, fs = [], [], []
    hmax = -math.inf
    for g, h, f in zip(geoms, height, floors, strict=True):
        piece = cell.intersection(g)
        if piece.area <= 0:
            continue
        h_eff = h if not math.isnan(h) else f * storey_m
        f_eff = f if not math.isnan(f) else h / storey_m
        pieces.append(piece)
        hs.append(h_eff)
        fs.append(f_eff)
        if not math.isnan(h_eff):
            hmax = max(hmax, h_eff)
    if not pieces:
        return 0.0, 0.0, math.nan, math.nan, math.nan
    fp = shapely.union_all(pieces).area  # overlapping parts count once
    known_f = [(p, f) for p, f in zip(pieces, fs, strict=True) if not math.isnan(f)]
    known_h = [(p, h) for p, h in zip(pieces, hs, strict=True) if not math.isnan(h)]
    f_area = shapely.union_all([p for p, _ in known_f]).area if known_f else 0.0
    h_area = shapely.union_all([p for p, _ in known_h]).area if known_h else 0.0
    f_int = _layer_cake(*zip(*known_f, strict=True)) if known_f else 0.0
    h_int = _layer_cake(*zip(*known_h, strict=True)) if known_h else 0.0
    fa = f_int + (fp - f_area)
    return fp, fa, (h_int / h_area if h_area else math.nan), (hmax if h_area else math.nan), (
        f_int / f_area if f_area else math.nan
    )


def _overlap_in(cell, geoms) -> bool:
    """Whether two footprints overlap (share area) inside the cell."""
    pieces = [p for p in (cell.intersection(g) for g in geoms) if p.area > 0]
    return sum(p.area for p in pieces) > shapely.union_all(pieces).area + 1e-6 if pieces else False


def _to_float(series) -> np.ndarray:
    """OSM tag text ('12.13 m', '6') to numbers, NaN when absent."""
    out = []
    for v in series:
        m = re.match(r"\s*(\d+(?:\.\d+)?)", str(v)) if v not in (None, "") else None
        out.append(float(m.group(1)) if m else math.nan)
    return np.array(out, dtype=float)


def test_helsinki_osm_levels_and_repairs(data_dir: Path):
    path = data_dir / "buildings" / "helsinki-osm" / "helsinki_buildings.geojson"
    crs = "EPSG:32635"
    cfg = BuildingsConfig(path=path, height_col="height", floors_col="building:levels")
    raw = gpd.read_file(path)
    cells = _cells(raw, 19, crs)
    frame, report = cell_morphology(cells, cfg, crs)
    assert list(frame.columns) == list(MORPHOLOGY_COLUMNS)
    assert report.repaired == int((~raw.is_valid).sum()) == 18
    # make_valid turns a few degenerate OSM rings into lines: those carry no footprint
    assert report.buildings + report.parts + report.dropped == len(raw)
    assert 0 < report.dropped <= report.repaired
    assert report.with_floors > 150
    # footprints inside another, read off the data: the 8-storey Sokos polygon inside its
    # outline, a 5-storey part of the university main building, a tower inside its building,
    # and the cathedral's six parts (dome 38 m) inside its 13 m outline
    assert report.parts == 9
    # every building is counted exactly once, its parts never
    assert frame["building_count"].sum() == report.buildings == 489 - 7 - 9
    bld = raw.to_crs(crs)
    geoms = shapely.make_valid(bld.geometry.values)
    height = _to_float(bld["height"])
    floors = _to_float(bld["building:levels"])
    cell_area = shapely.area(cells)
    busiest = np.argsort(-frame["footprint_area_m2"].to_numpy())[:15]
    # and every cell where footprints overlap (Sokos, the university, the cathedral)
    overlapping = [i for i in range(len(cells)) if _overlap_in(cells[i], geoms)]
    assert len(overlapping) >= 5
    for i in sorted(set(busiest) | set(overlapping)):
        fp, fa, hmean, hmax, fmean = _hand(cells[i], geoms, height, floors)
        assert frame["footprint_area_m2"][i] == pytest.approx(fp, rel=1e-9)
        assert frame["site_coverage"][i] == pytest.approx(fp / cell_area[i], rel=1e-9)
        assert frame["floor_area_m2"][i] == pytest.approx(fa, rel=1e-9)
        assert frame["far"][i] == pytest.approx(fa / cell_area[i], rel=1e-9)
        assert frame["height_mean_m"][i] == pytest.approx(hmean, rel=1e-9, nan_ok=True)
        assert frame["height_max_m"][i] == pytest.approx(hmax, rel=1e-9, nan_ok=True)
        assert frame["floors_mean"][i] == pytest.approx(fmean, rel=1e-9, nan_ok=True)
    assert (frame["site_coverage"] <= 1 + 1e-9).all()
    assert frame["far"].max() > 1  # multi-storey central Helsinki: FAR exceeds site coverage
    # without those layers the columns are NaN, never zero
    for col in ("block_coverage", "landuse_entropy", "population"):
        assert frame[col].isna().all()


def test_delft_measured_heights_in_rd_new(data_dir: Path):
    path = data_dir / "buildings" / "delft-3d" / "delft_buildings_footprints_epsg28992.geojson"
    crs = "EPSG:32631"
    cfg = BuildingsConfig(path=path, height_col="measuredHeight", floors_col=None, storey_height_m=3.5)
    raw = gpd.read_file(path)
    cells = _cells(raw, 19, crs)
    frame, _ = cell_morphology(cells, cfg, crs)
    bld = raw.to_crs(crs)
    geoms = shapely.make_valid(bld.geometry.values)
    height = bld["measuredHeight"].to_numpy(dtype=float)
    floors = np.full(len(bld), math.nan)
    for i in np.flatnonzero(frame["footprint_area_m2"].to_numpy() > 0)[:20]:
        fp, fa, hmean, hmax, _ = _hand(cells[i], geoms, height, floors, storey_m=3.5)
        assert frame["footprint_area_m2"][i] == pytest.approx(fp, rel=1e-9)
        assert frame["height_mean_m"][i] == pytest.approx(hmean, rel=1e-9)
        assert frame["height_max_m"][i] == pytest.approx(hmax, rel=1e-9)
        assert frame["floor_area_m2"][i] == pytest.approx(fa, rel=1e-9)
    # total footprint is conserved across cells that cover the whole layer
    total = shapely.area(shapely.make_valid(bld.geometry.values)).sum()
    assert frame["footprint_area_m2"].sum() == pytest.approx(total, rel=1e-6)


def test_prague_blocks_landuse_population_zones(data_dir: Path, tmp_path: Path):
    gpkg = data_dir / "buildings" / "prague-bubenec" / "bubenec.gpkg"
    plots = gpd.read_file(gpkg, layer="plots")
    blocks_path = tmp_path / "plots.geojson"
    plots.to_file(blocks_path)
    rng = np.random.default_rng(3)
    bld = gpd.read_file(gpkg, layer="buildings")
    pts = bld.geometry.representative_point()
    pop = gpd.GeoDataFrame({"population": rng.integers(1, 50, len(pts))}, geometry=pts, crs=bld.crs)
    pop_path = tmp_path / "pop.gpkg"
    pop.to_file(pop_path)
    crs = "EPSG:32633"
    cfg = BuildingsConfig(
        path=gpkg, layer="buildings", height_col=None, floors_col=None,
        blocks_path=blocks_path, landuse_path=blocks_path, landuse_col="TYPPPD_KOD",
        population_path=pop_path, zones_path=blocks_path, zone_col="KATUZE_KOD",
    )
    cells = _cells(bld, 18, crs)
    frame, report = cell_morphology(cells, cfg, crs)
    assert report.with_height == 0
    # no heights: height NaN, floor area = footprint (one storey lower bound)
    assert frame["height_mean_m"].isna().all()
    np.testing.assert_allclose(frame["floor_area_m2"], frame["footprint_area_m2"])
    assert frame["population"].sum() == pop["population"].sum()
    plots_w = plots.to_crs(crs)
    geoms_b = bld.to_crs(crs).geometry.values
    for i in np.flatnonzero(frame["footprint_area_m2"].to_numpy() > 0)[:10]:
        c = cells[i]
        block_area = sum(c.intersection(g).area for g in plots_w.geometry)
        fp = shapely.union_all([c.intersection(g) for g in geoms_b]).area
        assert frame["block_coverage"][i] == pytest.approx(fp / block_area, rel=1e-9)
        shares = {}
        for g, cls in zip(plots_w.geometry, plots_w["TYPPPD_KOD"].astype(str), strict=True):
            a = c.intersection(g).area
            if a > 0:
                shares[cls] = shares.get(cls, 0) + a
        p = np.array(list(shares.values())) / sum(shares.values())
        assert frame["landuse_entropy"][i] == pytest.approx(-(p * np.log(p)).sum(), abs=1e-12)
        centroid = c.centroid
        holders = plots_w[plots_w.contains(centroid)]
        if len(holders):
            assert frame["zone"][i] == str(holders["KATUZE_KOD"].iloc[0])


def test_population_polygons_by_area_share(tmp_path: Path):
    crs = "EPSG:32633"
    square = box(455000, 5560000, 455100, 5560100)
    pop = gpd.GeoDataFrame({"population": [100.0]}, geometry=[square], crs=crs)
    path = tmp_path / "pop.geojson"
    pop.to_file(path)
    bpath = tmp_path / "b.geojson"
    gpd.GeoDataFrame({"height": [9.0]}, geometry=[Point(455050, 5560050).buffer(5)], crs=crs).to_file(bpath)
    cells = np.array([box(455000, 5560000, 455050, 5560100), box(455050, 5560000, 455200, 5560100)])
    frame, _ = cell_morphology(cells, BuildingsConfig(path=bpath, population_path=path), crs)
    np.testing.assert_allclose(frame["population"], [50.0, 50.0])
    np.testing.assert_allclose(frame["floors_mean"], [3.0, 3.0])


def test_missing_file_and_column_are_input_errors(tmp_path: Path):
    cells = np.array([box(0, 0, 10, 10)])
    with pytest.raises(InputError, match="buildings file not found"):
        cell_morphology(cells, BuildingsConfig(path=tmp_path / "nope.gpkg"), "EPSG:32633")
    lu = tmp_path / "lu.geojson"
    gpd.GeoDataFrame({"kind": ["a"]}, geometry=[box(0, 0, 10, 10)], crs="EPSG:32633").to_file(lu)
    with pytest.raises(InputError, match="no column 'landuse'"):
        cell_morphology(cells, BuildingsConfig(landuse_path=lu), "EPSG:32633")


def _footprints(tmp_path: Path, rows, crs="EPSG:32633") -> Path:
    """A buildings layer of (polygon, floors) rows; floors None when unknown."""
    path = tmp_path / "fp.gpkg"
    frame = gpd.GeoDataFrame(
        {"floors": [np.nan if f is None else float(f) for _, f in rows]}, geometry=[g for g, _ in rows], crs=crs
    )
    frame.to_file(path)
    return path


def test_identical_duplicates_count_once(tmp_path: Path):
    # two identical 20 x 20 m, 5-storey outlines (an OSM duplicate) in a 40 x 40 m cell:
    # 400 m2 x 5 storeys / 1600 m2 = FAR 1.25 and one building (summing gave 2.5 and 2)
    fp = box(455000, 5560000, 455020, 5560020)
    path = _footprints(tmp_path, [(fp, 5), (box(455000, 5560000, 455020, 5560020), 5)])
    cells = np.array([box(455000, 5560000, 455040, 5560040)])
    frame, report = cell_morphology(cells, BuildingsConfig(path=path, height_col=None), "EPSG:32633")
    assert frame["building_count"][0] == 1
    assert frame["footprint_area_m2"][0] == pytest.approx(400.0, rel=1e-12)
    assert frame["floor_area_m2"][0] == pytest.approx(2000.0, rel=1e-12)
    assert frame["far"][0] == pytest.approx(1.25, rel=1e-12)
    assert frame["floors_mean"][0] == pytest.approx(5.0, rel=1e-12)
    assert frame["height_mean_m"][0] == pytest.approx(15.0, rel=1e-12)  # 5 x 3 m storeys
    assert (report.buildings, report.parts) == (1, 1)


@pytest.mark.parametrize(
    ("outline_floors", "floor_area", "floors_mean", "height_mean"),
    [
        # 300 m2 of outline at 2 storeys + the 100 m2 part at 6: 600 + 600 = 1200 m2;
        # floors mean (300 x 2 + 100 x 6) / 400 = 3; height mean 3 x 3 m = 9 m
        (2, 1200.0, 3.0, 9.0),
        # outline of unknown storeys (like Helsinki's Sokos): its 300 m2 count one storey,
        # 300 + 600 = 900 m2; only the part's 100 m2 have storeys: mean 6, height 18 m
        (None, 900.0, 6.0, 18.0),
    ],
)
def test_part_inside_outline_takes_the_taller_storeys(tmp_path: Path, outline_floors, floor_area, floors_mean, height_mean):
    outline = box(455000, 5560000, 455020, 5560020)  # 400 m2
    part = box(455005, 5560005, 455015, 5560015)  # 100 m2, 6 storeys, drawn over the outline
    path = _footprints(tmp_path, [(part, 6), (outline, outline_floors)])
    cells = np.array([box(455000, 5560000, 455040, 5560040)])
    frame, report = cell_morphology(cells, BuildingsConfig(path=path, height_col=None), "EPSG:32633")
    assert frame["building_count"][0] == 1  # the part is not a building of its own
    assert (report.buildings, report.parts) == (1, 1)
    assert frame["footprint_area_m2"][0] == pytest.approx(400.0, rel=1e-12)
    assert frame["floor_area_m2"][0] == pytest.approx(floor_area, rel=1e-12)
    assert frame["far"][0] == pytest.approx(floor_area / 1600.0, rel=1e-12)
    assert frame["floors_mean"][0] == pytest.approx(floors_mean, rel=1e-12)
    assert frame["height_mean_m"][0] == pytest.approx(height_mean, rel=1e-12)
    assert frame["height_max_m"][0] == pytest.approx(18.0, rel=1e-12)


def test_partial_overlap_across_two_cells(tmp_path: Path):
    # A = 20 x 10 m at 3 storeys, B = 15 x 10 m at 5 storeys; they share 5 x 10 m, which
    # counts once at B's 5 storeys. Two 20 x 20 m cells split at x = 455020:
    #   left:  A alone 150 m2 x 3 + shared 50 m2 x 5 = 700 m2 on 200 m2 of ground
    #   right: B alone 100 m2 x 5                   = 500 m2 on 100 m2
    # (summing footprints gave 200 x 3 + 150 x 5 = 1350 m2 over both cells, not 1200)
    a = box(455000, 5560000, 455020, 5560010)
    b = box(455015, 5560000, 455030, 5560010)
    path = _footprints(tmp_path, [(a, 3), (b, 5)])
    cells = np.array([box(455000, 5560000, 455020, 5560020), box(455020, 5560000, 455040, 5560020)])
    frame, report = cell_morphology(cells, BuildingsConfig(path=path, height_col=None), "EPSG:32633")
    np.testing.assert_allclose(frame["floor_area_m2"], [700.0, 500.0], rtol=1e-12)
    np.testing.assert_allclose(frame["far"], [700.0 / 400.0, 500.0 / 400.0], rtol=1e-12)
    np.testing.assert_allclose(frame["footprint_area_m2"], [200.0, 100.0], rtol=1e-12)
    np.testing.assert_allclose(frame["floors_mean"], [3.5, 5.0], rtol=1e-12)  # 700/200, 500/100
    np.testing.assert_allclose(frame["height_max_m"], [15.0, 15.0], rtol=1e-12)
    # neither lies inside the other: two buildings, each in the cell of its representative
    # point (A's at x = 455010, B's at x = 455022.5)
    np.testing.assert_array_equal(frame["building_count"], [1.0, 1.0])
    assert (report.buildings, report.parts) == (2, 0)


def test_part_group_and_courtyard(tmp_path: Path):
    # a 30 x 30 m 2-storey outline with a 10 x 10 m courtyard (hole), two parts over it at 4
    # and 7 storeys that overlap each other, plus a wall-sharing neighbour at 1 storey:
    # outline ground 900 - 100 = 800 m2; part P1 = [0,10]x[0,10] (4), P2 = [5,15]x[0,10] (7);
    # P1 alone 50 m2 x 4 + P2 100 m2 x 7 + outline rest 800 - 150 = 650 m2 x 2 = 2200 m2,
    # neighbour [30,40]x[0,10] 100 m2 x 1: total 2300 m2 over 900 m2 of ground
    x0, y0 = 455000, 5560000
    outline = box(x0, y0, x0 + 30, y0 + 30).difference(box(x0 + 10, y0 + 10, x0 + 20, y0 + 20))
    p1 = box(x0, y0, x0 + 10, y0 + 10)
    p2 = box(x0 + 5, y0, x0 + 15, y0 + 10)
    neighbour = box(x0 + 30, y0, x0 + 40, y0 + 10)
    path = _footprints(tmp_path, [(outline, 2), (p1, 4), (p2, 7), (neighbour, 1)])
    cells = np.array([box(x0, y0, x0 + 50, y0 + 50)])
    frame, report = cell_morphology(cells, BuildingsConfig(path=path, height_col=None), "EPSG:32633")
    assert frame["floor_area_m2"][0] == pytest.approx(2300.0, rel=1e-12)
    assert frame["footprint_area_m2"][0] == pytest.approx(900.0, rel=1e-12)
    assert frame["building_count"][0] == 2  # the outline and the neighbour
    assert (report.buildings, report.parts) == (2, 2)

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


def _hand(cell, geoms, height, floors, storey_m=3.0):
    """One cell by brute force: clip every building, one at a time."""
    fa = 0.0
    hw = hs = 0.0
    hmax = -math.inf
    pieces = []
    for g, h, f in zip(geoms, height, floors, strict=True):
        piece = cell.intersection(g)
        a = piece.area
        if a <= 0:
            continue
        pieces.append(piece)
        h_eff = h if not math.isnan(h) else f * storey_m
        f_eff = f if not math.isnan(f) else h / storey_m
        fa += a * (f_eff if not math.isnan(f_eff) else 1.0)
        if not math.isnan(h_eff):
            hw += a
            hs += a * h_eff
            hmax = max(hmax, h_eff)
    fp = shapely.union_all(pieces).area if pieces else 0.0  # overlapping parts count once
    return fp, fa, (hs / hw if hw else math.nan), (hmax if hw else math.nan)


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
    assert report.buildings + report.dropped == len(raw)
    assert 0 < report.dropped <= report.repaired
    assert report.with_floors > 150
    # every building is counted exactly once
    assert frame["building_count"].sum() == report.buildings
    bld = raw.to_crs(crs)
    geoms = shapely.make_valid(bld.geometry.values)
    height = _to_float(bld["height"])
    floors = _to_float(bld["building:levels"])
    cell_area = shapely.area(cells)
    busiest = np.argsort(-frame["footprint_area_m2"].to_numpy())[:15]
    for i in busiest:
        fp, fa, hmean, hmax = _hand(cells[i], geoms, height, floors)
        assert frame["footprint_area_m2"][i] == pytest.approx(fp, rel=1e-9)
        assert frame["site_coverage"][i] == pytest.approx(fp / cell_area[i], rel=1e-9)
        assert frame["floor_area_m2"][i] == pytest.approx(fa, rel=1e-9)
        assert frame["far"][i] == pytest.approx(fa / cell_area[i], rel=1e-9)
        assert frame["height_mean_m"][i] == pytest.approx(hmean, rel=1e-9, nan_ok=True)
        assert frame["height_max_m"][i] == pytest.approx(hmax, rel=1e-9, nan_ok=True)
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
        fp, fa, hmean, hmax = _hand(cells[i], geoms, height, floors, storey_m=3.5)
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

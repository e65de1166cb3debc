"""Zoom-N cells: quadkeys, bounds, geodesic areas and AOI cover, against mercantile and pyproj."""

from __future__ import annotations

import math

import mercantile
import numpy as np
import pytest
import shapely
from pyproj import Geod, Transformer
from shapely.geometry import box

from uhi.grid.cells import build_cells, cell_quads, quadkeys, tile_bounds_3857, tiles_for_geometry

CALGARY = box(-114.10, 51.03, -114.05, 51.06)


def test_quadkeys_and_bounds_match_mercantile():
    rng = np.random.default_rng(7)
    x = rng.integers(0, 2**19, 200)
    y = rng.integers(0, 2**19, 200)
    keys = quadkeys(x, y, 19)
    b = tile_bounds_3857(x, y, 19)
    for i in range(len(x)):
        t = mercantile.Tile(int(x[i]), int(y[i]), 19)
        assert keys[i] == mercantile.quadkey(t)
        np.testing.assert_allclose(b[i], tuple(mercantile.xy_bounds(t)), atol=1e-6)


def test_tiles_cover_the_aoi_and_touch_it():
    x, y = tiles_for_geometry(CALGARY, 19)
    quads = cell_quads(x, y, 19, "EPSG:4326")
    polys = shapely.polygons(np.concatenate([quads, quads[:, :1]], axis=1))
    union = shapely.union_all(polys)
    # shared tile edges are computed independently per tile: allow float slivers only
    assert CALGARY.difference(union).area <= 1e-9 * CALGARY.area
    assert shapely.intersects(polys, CALGARY).all()
    expected = {(t.x, t.y) for t in mercantile.tiles(*CALGARY.bounds, 19)}
    assert set(zip(x.tolist(), y.tolist(), strict=True)) == expected


def test_zoom19_width_at_calgary_is_about_48_m_and_areas_are_geodesic():
    cells = build_cells(CALGARY, 19, "EPSG:32611")
    lat = 51.045
    width_m = 2 * math.pi * 6378137.0 / 2**19 * math.cos(math.radians(lat))
    assert width_m == pytest.approx(48.1, abs=0.1)  # docs/science.md: the blog's "48 m"
    geod = Geod(ellps="WGS84")
    for i in (0, len(cells) // 2, len(cells) - 1):
        g = cells.geometry.iloc[i]
        lon, lat_ = g.exterior.coords.xy
        area, _ = geod.polygon_area_perimeter(lon, lat_)
        assert cells["area_m2"].iloc[i] == pytest.approx(abs(area), rel=1e-9)
    # the planar web-mercator area is too large by ~sec^2(lat)
    planar = cells.to_crs(3857).area.to_numpy()
    ratio = planar / cells["area_m2"].to_numpy()
    assert ratio.mean() == pytest.approx(1 / math.cos(math.radians(lat)) ** 2, rel=0.01)


def test_cells_table_columns_and_projected_centroids():
    cells = build_cells(CALGARY, 18, "EPSG:32611")
    assert list(cells.columns[:7]) == ["cell", "tile_x", "tile_y", "zoom", "x_m", "y_m", "area_m2"]
    assert (cells["zoom"] == 18).all()
    assert cells["cell"].str.len().eq(18).all()
    assert cells.crs.to_epsg() == 4326
    ref = cells.to_crs(32611).centroid
    np.testing.assert_allclose(cells["x_m"], ref.x, atol=1e-3)
    np.testing.assert_allclose(cells["y_m"], ref.y, atol=1e-3)
    # zoom 18 at Calgary ~96 m: the blog's "100 m aggregation"
    assert math.sqrt(cells["area_m2"].median()) == pytest.approx(96.2, abs=0.5)


def test_quads_are_projected_corners():
    x, y = np.array([90000]), np.array([180000])
    q = cell_quads(x, y, 19, "EPSG:32611")
    b = mercantile.xy_bounds(90000, 180000, 19)
    tr = Transformer.from_crs(3857, 32611, always_xy=True)
    np.testing.assert_allclose(q[0, 0], tr.transform(b.left, b.bottom), atol=1e-6)
    np.testing.assert_allclose(q[0, 2], tr.transform(b.right, b.top), atol=1e-6)

"""Exposure math against independent references: exactextract, hand-made cases, pandas, statsmodels."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import shapely
from exactextract import exact_extract
from rasterio.transform import from_origin
from shapely.geometry import box

from uhi.grid.zonal import build_coverage
from uhi.stats.exposure import (
    assign_zones,
    band_counts,
    concentration_index,
    fractional_rank,
    hottest_quintile,
    raster_counts_per_cell,
    representation_ratios,
    split_polygons,
    zone_table,
)


def _grid(nx: int, ny: int, size: float, x0: float = 0.0, y0: float = 0.0) -> np.ndarray:
    xs, ys = np.meshgrid(x0 + size * np.arange(nx), y0 + size * np.arange(ny))
    return shapely.box(xs.ravel(), ys.ravel(), xs.ravel() + size, ys.ravel() + size)


def _quads(cells: np.ndarray) -> np.ndarray:
    return shapely.get_coordinates(cells).reshape(len(cells), 5, 2)[:, :4]


def test_raster_counts_equal_exactextract_sum(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    crs = "EPSG:32633"
    # 30 m pixels, 48 m rotated-free cells offset so that most cells split pixels
    transform = from_origin(500_000, 5_600_000, 30, 30)
    shape = (40, 50)
    counts = rng.gamma(2.0, 3.0, shape)
    counts[rng.random(shape) < 0.1] = np.nan  # nodata pixels
    cells = _grid(34, 28, 47.3, x0=500_000 - 70, y0=5_600_000 - 1200 - 90)  # spill past the raster
    quads = shapely.get_coordinates(cells).reshape(len(cells), 5, 2)[:, :4]
    path = tmp_path / "pop.tif"
    with rasterio.open(path, "w", driver="GTiff", height=shape[0], width=shape[1], count=1,
                       dtype="float64", crs=crs, transform=transform, nodata=np.nan) as dst:
        dst.write(counts, 1)
    ref = exact_extract(str(path), gpd.GeoDataFrame({"id": np.arange(len(cells))}, geometry=cells, crs=crs),
                        ["sum"], output="pandas")["sum"].to_numpy()
    cov = build_coverage(quads, transform, shape)
    out = raster_counts_per_cell(cov.matrix, counts)
    # exactextract keeps coverage fractions in single precision (float32, ~6e-8 relative):
    # that, not uhi, bounds the agreement
    np.testing.assert_allclose(out, ref, rtol=2e-7, atol=1e-9)
    # the cells cover the raster: every person is placed once
    assert out.sum() == pytest.approx(np.nansum(counts), rel=1e-9)


def test_areal_and_dasymetric_split_on_a_hand_made_case() -> None:
    # four 10 m cells: (0,0) (10,0) / (0,10) (10,10)
    cells = _grid(2, 2, 10.0)
    polys = [
        box(0, 0, 15, 10),     # A, 30 people: 10x10 in cell 0, 5x10 in cell 1
        box(5, 10, 20, 20),    # B, 60 people: 5x10 in cell 2, 10x10 in cell 3
        box(15, 15, 25, 25),   # C, 40 people: only a 5x5 quarter over the grid (cell 3)
    ]
    counts = np.array([[30.0, 3.0], [60.0, 6.0], [40.0, 4.0]])
    res = split_polygons(_quads(cells), polys, counts)
    np.testing.assert_allclose(res.per_cell[:, 0], [20.0, 10.0, 20.0, 40.0 + 10.0])
    np.testing.assert_allclose(res.per_cell[:, 1], [2.0, 1.0, 2.0, 4.0 + 1.0])
    np.testing.assert_allclose(res.share_in_cells, [1.0, 1.0, 0.25])
    # floor area per m2: none in cell 0, so A goes wholly to cell 1; B has none under it
    # (cells 2, 3 zero): area fallback; C lies over cell 3 only
    density = np.array([0.0, 2.0, 0.0, 0.0])
    das = split_polygons(_quads(cells), polys, counts, density=density)
    np.testing.assert_allclose(das.per_cell[:, 0], [0.0, 30.0, 20.0, 40.0 + 10.0])
    assert list(das.method) == ["floor_area", "area", "area"]
    density2 = np.array([0.0, 0.0, 1.0, 3.0])
    das2 = split_polygons(_quads(cells), polys, counts, density=density2)
    # B: weights 50 x 1 and 100 x 3 -> 60 x 50/350, 60 x 300/350
    np.testing.assert_allclose(das2.per_cell[:, 0], [20.0, 10.0, 60 * 50 / 350, 60 * 300 / 350 + 10.0])


@pytest.mark.parametrize("dasymetric", [False, True])
def test_split_conserves_totals_on_random_polygons(dasymetric: bool) -> None:
    rng = np.random.default_rng(11)
    cells = _grid(60, 50, 48.0)
    grid = box(0, 0, 60 * 48.0, 50 * 48.0)
    seeds = shapely.points(rng.uniform(0, 2880, 300), rng.uniform(0, 2400, 300))
    polys = shapely.intersection(shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds))), grid)
    polys = polys[~shapely.is_empty(polys)]
    counts = rng.integers(0, 5000, (len(polys), 3)).astype(float)
    density = rng.uniform(0, 4, len(cells)) * (rng.random(len(cells)) < 0.7) if dasymetric else None
    res = split_polygons(_quads(cells), polys, counts, density=density)
    np.testing.assert_allclose(res.share_in_cells, 1.0, rtol=1e-12)
    np.testing.assert_allclose(res.per_cell.sum(axis=0), counts.sum(axis=0), rtol=1e-9)


def test_assign_zones_by_centroid_first_listed_wins() -> None:
    zones = [box(0, 0, 10, 10), box(10, 0, 20, 10), box(5, 5, 15, 15)]
    x = np.array([5.0, 10.0, 12.0, 30.0, 7.0])
    y = np.array([5.0, 5.0, 2.0, 30.0, 7.0])
    # (10, 5) lies on the border of zones 0 and 1; (7, 7) lies in zones 0 and 2
    np.testing.assert_array_equal(assign_zones(x, y, zones), [0, 0, 1, -1, 0])



def test_assign_zones_equals_the_first_intersecting_zone_of_a_brute_force_search() -> None:
    rng = np.random.default_rng(11)
    # concave stars that overlap, and points on their vertices and edge midpoints
    angles = np.linspace(0, 2 * np.pi, 41)[:-1]
    zones = []
    for cx, cy in ((0, 0), (6, 1), (3, 7)):
        r = np.where(np.arange(40) % 2 == 0, 5.0, 2.0)
        zones.append(shapely.Polygon(np.c_[cx + r * np.cos(angles), cy + r * np.sin(angles)]))
    ring = shapely.get_coordinates(zones[1])
    x = np.r_[rng.uniform(-6, 12, 3000), ring[:, 0], (ring[:-1, 0] + ring[1:, 0]) / 2]
    y = np.r_[rng.uniform(-6, 13, 3000), ring[:, 1], (ring[:-1, 1] + ring[1:, 1]) / 2]
    expected = np.full(len(x), -1)
    for i, pt in enumerate(shapely.points(x, y)):
        hits = [z for z, g in enumerate(zones) if g.intersects(pt)]  # GEOS, one pair at a time
        expected[i] = hits[0] if hits else -1
    np.testing.assert_array_equal(assign_zones(x, y, zones), expected)
    assert not any(shapely.is_prepared(zones))  # the caller's geometries are left as they were


def test_zone_table_equals_pandas_from_the_definitions() -> None:
    rng = np.random.default_rng(5)
    n = 400
    cells = pd.DataFrame({
        "zone_index": rng.integers(-1, 6, n),
        "area_m2": rng.uniform(2000, 2400, n),
        "population": rng.gamma(2, 20, n),
        "old": rng.gamma(1, 4, n),
        "lst_c": rng.normal(33, 3, n),
        "anomaly_c": rng.normal(2, 1, n),
        "ndvi": rng.uniform(0, 0.8, n),
        "site_coverage": rng.uniform(0, 0.6, n),
        "gi_class": rng.integers(-3, 4, n).astype(float),
    })
    cells.loc[rng.random(n) < 0.15, "lst_c"] = np.nan  # water: no land temperature
    cells.loc[cells["lst_c"].isna(), "anomaly_c"] = np.nan
    cells.loc[rng.random(n) < 0.1, "gi_class"] = np.nan
    out = zone_table(cells, 6, groups=["old"], threshold_c=34.0)
    for z in range(6):
        c = cells[cells.zone_index == z]
        lv = c[c.lst_c.notna()]
        row = out.iloc[z]
        assert row["cells"] == len(c)
        assert row["population"] == pytest.approx(c.population.sum())
        assert row["old"] == pytest.approx(c.old.sum())
        assert row["lst_mean_c"] == pytest.approx((lv.lst_c * lv.area_m2).sum() / lv.area_m2.sum())
        assert row["lst_pop_mean_c"] == pytest.approx((lv.lst_c * lv.population).sum() / lv.population.sum())
        assert row["people_no_lst"] == pytest.approx(c[c.lst_c.isna()].population.sum())
        assert row["people_hot_95"] == pytest.approx(c[c.gi_class >= 2].population.sum())
        assert row["people_hot_99"] == pytest.approx(c[c.gi_class == 3].population.sum())
        assert row["share_area_hot_95"] == pytest.approx(c[c.gi_class >= 2].area_m2.sum() / c.area_m2.sum())
        assert row["people_above_threshold"] == pytest.approx(c[c.lst_c > 34.0].population.sum())
        assert row["ndvi_mean"] == pytest.approx((c.ndvi * c.area_m2).sum() / c.area_m2.sum())
    ranks = out["lst_pop_mean_c"].rank(ascending=False).astype(int).tolist()
    assert out["rank"].tolist() == ranks


def test_representation_ratio_by_hand() -> None:
    pop = np.array([100.0, 100.0, 100.0, 100.0, 50.0])
    old = np.array([30.0, 10.0, 10.0, 10.0, 40.0])
    hot = np.array([True, False, False, False, True])
    valid = np.array([True, True, True, True, False])  # the last unit has no temperature
    # among valid: old share hot 30/100 = 0.3, old share city 60/400 = 0.15 -> 2.0
    assert representation_ratios(hot, pop, {"old": old}, valid)["old"] == pytest.approx(2.0)


def test_hottest_quintile_counts_units_with_a_value() -> None:
    v = np.array([np.nan, *range(10)], dtype=float)
    assert np.flatnonzero(hottest_quintile(v)).tolist() == [9, 10]  # cut 7.2: values 8, 9


def test_fractional_rank_ties_equal_scipy_average_ranks() -> None:
    from scipy.stats import rankdata

    r = np.array([3.0, 1.0, 2.0, 2.0, 5.0, 2.0])
    expect = (rankdata(r, method="average") - 0.5) / len(r)
    np.testing.assert_allclose(fractional_rank(r, np.ones(len(r))), expect)


def test_concentration_index_equals_the_convenient_regression() -> None:
    import statsmodels.api as sm

    rng = np.random.default_rng(9)
    n = 300
    income = rng.lognormal(10, 0.5, n)
    heat = 40 - 2e-5 * income + rng.normal(0, 1, n)
    w = rng.uniform(50, 500, n)
    gc = concentration_index(heat, income, w)
    # O'Donnell et al. 2008 eq. 8.7 (generalized form): 2 var_w(R) h = a + b R, b = GC
    rank = fractional_rank(income, w)
    mean_r = np.average(rank, weights=w)
    var_r = np.average((rank - mean_r) ** 2, weights=w)
    fit = sm.WLS(2 * var_r * heat, sm.add_constant(rank), weights=w).fit()
    assert gc == pytest.approx(fit.params[1], rel=1e-9)
    assert gc < 0  # hotter where poorer
    # shift-invariant: degC or K give the same generalized index
    assert concentration_index(heat + 273.15, income, w) == pytest.approx(gc, rel=1e-9)


def test_band_counts_keeps_people_without_temperature() -> None:
    t = band_counts(np.array([30.2, 30.9, 31.5, np.nan]), np.array([1.0, 2.0, 4.0, 8.0]), 1.0)
    assert t["label"].tolist() == ["30-31", "31-32", "no land temperature"]
    assert t["population"].tolist() == [3.0, 4.0, 8.0]


def test_intersection_areas_equal_geos_on_concave_holed_multipart_polygons() -> None:
    from shapely import affinity

    from uhi.stats.exposure import intersection_areas

    rng = np.random.default_rng(21)
    # rotated quads (web-mercator tiles are slightly rotated in UTM), big coordinates like UTM
    cells = np.array([affinity.rotate(g, 1.3, origin=(700_500.0, 5_650_500.0))
                      for g in _grid(20, 20, 48.0, x0=700_000.0, y0=5_650_000.0)])
    ring = box(700_100, 5_650_100, 700_800, 5_650_800).difference(box(700_300, 5_650_300, 700_500, 5_650_600))
    star = shapely.Polygon([(700_400 + r * np.cos(a), 5_650_400 + r * np.sin(a))
                            for a, r in zip(np.linspace(0, 2 * np.pi, 41)[:-1], np.tile([350, 120], 20), strict=True)])
    multi = shapely.MultiPolygon([box(699_950, 5_649_950, 700_050, 5_650_990), box(700_900, 5_650_000, 701_200, 5_650_300)])
    blobs = shapely.buffer(shapely.points(rng.uniform(700_000, 700_960, 5), rng.uniform(5_650_000, 5_650_960, 5)), 90)
    polys = np.array([ring, star, multi, *blobs], dtype=object)
    p, c, a = intersection_areas(_quads(cells), polys)
    got = {(int(i), int(j)): v for i, j, v in zip(p, c, a, strict=True)}
    pi, ci = shapely.STRtree(cells).query(polys, predicate="intersects")
    ref = shapely.area(shapely.intersection(polys[pi], cells[ci]))
    for i, j, v in zip(pi, ci, ref, strict=True):
        assert got.get((int(i), int(j)), 0.0) == pytest.approx(v, rel=1e-9, abs=1e-6)
    assert sum(got.values()) == pytest.approx(ref.sum(), rel=1e-12)


def test_tile_outline_is_the_boundary_of_the_union() -> None:
    from uhi.grid.cells import tile_outline_segments

    # an L of three tiles and one tile apart: unit squares, corners as cell_quads orders them
    x = np.array([0, 1, 0, 5])
    y = np.array([0, 0, 1, 5])
    quads = np.stack([np.stack([x, -y - 1], 1), np.stack([x + 1, -y - 1], 1), np.stack([x + 1, -y], 1),
                      np.stack([x, -y], 1)], axis=1).astype(float)
    segs = tile_outline_segments(x, y, quads)
    union = shapely.union_all(shapely.polygons(np.concatenate([quads, quads[:, :1]], axis=1)))
    assert len(segs) == 8 + 4
    assert shapely.length(shapely.multilinestrings(segs)) == pytest.approx(union.boundary.length)


def test_intersection_areas_ignore_lines_and_empty_parts() -> None:
    from uhi.stats.exposure import intersection_areas

    cells = _grid(2, 1, 10.0)
    mixed = shapely.GeometryCollection([box(0, 0, 5, 10), shapely.LineString([(0, 0), (20, 10)])])
    p, c, a = intersection_areas(_quads(cells), [mixed, shapely.Polygon(), box(5, 0, 15, 10)])
    assert sorted(zip(p.tolist(), c.tolist(), a.tolist(), strict=True)) == [(0, 0, 50.0), (2, 0, 50.0), (2, 1, 50.0)]

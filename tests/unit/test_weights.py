"""Spatial weights against libpysal on the same coordinates and polygons."""

from __future__ import annotations

import numpy as np
import pytest

from uhi.errors import ConfigError, InputError
from uhi.stats.weights import build_weights, parse_weights_spec, weights_from_tiles


@pytest.fixture(scope="module")
def points() -> np.ndarray:
    return np.random.default_rng(11).uniform(0, 2000, size=(400, 2))


def _dense_diff(a, b) -> float:
    return float(abs(a - b).sum())


def test_knn_equals_libpysal(points: np.ndarray) -> None:
    from libpysal.weights import KNN

    w = build_weights(points, "knn:8")
    ref = KNN.from_array(points, k=8)
    assert _dense_diff(w.binary, ref.sparse) == 0
    assert np.all(np.diff(w.binary.indptr) == 8)
    assert w.islands.size == 0


def test_distance_band_equals_libpysal_and_reports_islands(points: np.ndarray) -> None:
    from libpysal.weights import DistanceBand

    w = build_weights(points, "distance:90")
    ref = DistanceBand.from_array(points, 90, binary=True, silence_warnings=True)
    assert _dense_diff(w.binary, ref.sparse) == 0
    assert sorted(w.islands.tolist()) == sorted(ref.islands)
    assert w.islands.size > 0
    rs = w.row_standardised()
    sums = np.asarray(rs.sum(axis=1)).ravel()
    assert np.allclose(sums[w.islands], 0) and np.allclose(np.delete(sums, w.islands), 1)


@pytest.mark.parametrize("kind", ["queen", "rook"])
def test_tile_contiguity_equals_polygon_contiguity(kind: str) -> None:
    import geopandas as gpd
    from libpysal.weights import Queen, Rook
    from shapely.geometry import box

    tx, ty = np.meshgrid(np.arange(1000, 1012), np.arange(2000, 2009))
    keep = np.random.default_rng(2).uniform(size=tx.size) > 0.2  # holes in the grid
    tx, ty = tx.ravel()[keep], ty.ravel()[keep]
    # integer corners, so neighbouring squares share vertices exactly (as tiles do)
    polys = [box(a * 50, b * 50, (a + 1) * 50, (b + 1) * 50) for a, b in zip(tx, ty, strict=True)]
    gdf = gpd.GeoDataFrame(geometry=polys, crs=32611)
    ref = (Queen if kind == "queen" else Rook).from_dataframe(gdf, use_index=False, silence_warnings=True)
    w = weights_from_tiles(tx, ty, kind)
    assert _dense_diff(w.binary, ref.sparse) == 0
    w2 = build_weights(np.zeros((len(gdf), 2)), kind, geometries=gdf.geometry)
    assert _dense_diff(w2.binary, ref.sparse) == 0


def test_disconnected_components_counted() -> None:
    xy = np.array([[0, 0], [10, 0], [0, 10], [1000, 1000], [1010, 1000], [5000, 5000]], float)
    w = build_weights(xy, "distance:20")
    assert w.components() == 3
    assert w.islands.tolist() == [5]


@pytest.mark.parametrize("spec", ["knn:0", "knn:x", "queen:2", "distance:-3", "distance:", "bishop"])
def test_bad_specs_are_config_errors(spec: str) -> None:
    with pytest.raises(ConfigError, match="knn:K"):
        parse_weights_spec(spec)


def test_knn_needs_more_points_than_k() -> None:
    with pytest.raises(InputError, match="knn:8 needs more than 8"):
        build_weights(np.random.default_rng(0).uniform(size=(5, 2)), "knn:8")


def test_contiguity_refuses_points() -> None:
    from shapely.geometry import Point

    with pytest.raises(InputError, match="polygon"):
        build_weights(np.zeros((3, 2)), "queen", geometries=[Point(0, 0), Point(1, 1), Point(2, 2)])

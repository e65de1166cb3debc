"""Gi* against esda's G_Local(star=True), FDR against esda.fdr, and the 90/95/99 % classes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from scipy import stats

from uhi.errors import InputError
from uhi.stats.hotspots import benjamini_hochberg, classify_hotspots, gi_star, hotspots
from uhi.stats.weights import build_weights


@pytest.fixture(scope="module")
def columbus():
    import geopandas as gpd
    import libpysal

    gdf = gpd.read_file(libpysal.examples.get_path("columbus.shp"))
    xy = np.column_stack([gdf.centroid.x, gdf.centroid.y])
    return gdf["CRIME"].to_numpy(float), xy


def test_gi_star_equals_esda(columbus) -> None:
    import esda
    import libpysal

    y, xy = columbus
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = esda.G_Local(y, libpysal.weights.KNN.from_array(xy, k=6), transform="B", star=True, permutations=0)
    z = gi_star(y, build_weights(xy, "knn:6").binary)
    np.testing.assert_allclose(z, ref.Zs, rtol=1e-12, atol=1e-12)
    # esda's p_norm is one-sided; uhi reports the two-sided p ArcGIS bins use
    np.testing.assert_allclose(2.0 * stats.norm.sf(np.abs(z)), 2.0 * ref.p_norm, rtol=1e-10)


def test_bh_rejects_what_esda_fdr_rejects() -> None:
    import esda

    rng = np.random.default_rng(5)
    p = np.concatenate([rng.uniform(0, 0.01, 40), rng.uniform(0, 1, 400)])
    for alpha in (0.01, 0.05, 0.10):
        q = benjamini_hochberg(p)
        thr = esda.fdr(p, alpha)
        assert np.array_equal(q <= alpha, p <= thr)


def test_classes_follow_arcgis_bins() -> None:
    z = np.array([3.0, 2.1, 1.7, 0.2, -1.7, -2.1, -3.0])
    p = 2.0 * stats.norm.sf(np.abs(z))
    assert classify_hotspots(z, p).tolist() == [3, 2, 1, 0, -1, -2, -3]


def test_planted_hot_block_is_found() -> None:
    rng = np.random.default_rng(8)
    gx, gy = np.meshgrid(np.arange(30), np.arange(30))
    xy = np.column_stack([gx.ravel(), gy.ravel()]) * 50.0
    v = rng.normal(30, 1, 900)
    hot = (gx.ravel() >= 10) & (gx.ravel() < 16) & (gy.ravel() >= 10) & (gy.ravel() < 16)
    v[hot] += 3.0
    res = hotspots(v, build_weights(xy, "knn:8").binary)
    assert (res.klass[hot] == 3).mean() > 0.8
    assert (res.klass[~hot] > 0).mean() < 0.1


def test_islands_get_no_class() -> None:
    xy = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [5, 5], [900, 900]], float)
    w = build_weights(xy, "distance:20")
    res = hotspots(np.array([1.0, 2, 3, 4, 5, 99]), w.binary)
    assert np.isnan(res.z[5]) and res.klass[5] == 0
    assert np.isfinite(res.z[:5]).all()


def test_constant_and_nan_values_refused() -> None:
    b = sp.csr_matrix(np.ones((4, 4)) - np.eye(4))
    with pytest.raises(InputError, match="varies"):
        gi_star(np.ones(4), b)
    with pytest.raises(InputError, match="NaN"):
        hotspots(np.array([1.0, np.nan, 2, 3]), b)


def test_permutation_p_values_match_full_enumeration() -> None:
    """Against the exact conditional randomisation distribution, enumerated over all subsets.

    (Checked once against esda G_Local(permutations=9999): median |difference| 0.003, the
    Monte Carlo noise; esda is not called here because its numba kernel compiles for ~150 s.)
    """
    from itertools import combinations

    rng = np.random.default_rng(12)
    xy = rng.uniform(0, 100, size=(9, 2))
    v = rng.normal(size=9)
    b = build_weights(xy, "knn:3").binary
    perms = 20_000
    got = hotspots(v, b, permutations=perms, seed=1, fdr=False).p
    for i in range(9):
        nbrs = b.indices[b.indptr[i] : b.indptr[i + 1]]
        observed = v[i] + v[nbrs].sum()
        others = np.delete(v, i)
        sums = np.array([v[i] + others[list(c)].sum() for c in combinations(range(8), 3)])
        q = float((sums >= observed - 1e-12).mean())
        exact = 2.0 * min(q, 1.0 - q)
        noise = 2.0 * np.sqrt(max(q * (1 - q), 1e-4) / perms)
        assert abs(got[i] - exact) < 4.0 * noise + 4.0 / perms, (i, got[i], exact)

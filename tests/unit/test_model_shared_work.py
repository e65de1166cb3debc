"""The model stage's shared work (per weights matrix, per panel) gives exactly the unshared results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uhi.stats.diagnostics import WeightsMoments, lm_tests, moran_residuals, moran_value
from uhi.stats.hotspots import GiStarWeights, hotspots
from uhi.stats.sensors import sensor_shares
from uhi.stats.spatial import (
    _THREADED_MIN_ROWS,
    LogDeterminant,
    _RowBlocks,
    estimate_error_ml,
    estimate_lag_ml,
    fit_error_ml,
    fit_lag_ml,
    inverse_frobenius_traces,
    power_traces,
    solve_spatial,
)
from uhi.stats.weights import build_weights


def _grid_weights(n: int, seed: int = 0) -> tuple[np.ndarray, object]:
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    idx = np.arange(n)
    xy = np.column_stack([idx % side, idx // side]) * 30.0 + rng.uniform(-3, 3, (n, 2))
    return xy, build_weights(xy, "knn:6")


def test_sensor_shares_equal_a_crosstab_of_the_rows() -> None:
    # the reference counts with pandas' crosstab, one Python sensor name per row
    rng = np.random.default_rng(4)
    n = 5_000
    cells = np.array([f"c{i:03d}" for i in rng.integers(0, 300, n)], dtype=object)
    years = rng.integers(2009, 2015, n)
    platforms = np.array(["landsat-5", "landsat-7", "landsat-8", "landsat-7+landsat-8", None, "spot-6"],
                         dtype=object)[rng.integers(0, 6, n)]
    valid = rng.random(n) > 0.25
    sensor = {"landsat-5": "TM", "landsat-7": "ETM+", "landsat-8": "OLI/TIRS", "landsat-7+landsat-8": "OLI/TIRS"}
    names = np.array([sensor.get(p) if p else None for p in platforms], dtype=object)
    keep = valid & pd.notna(names)
    counts = pd.crosstab([cells[keep], years[keep]], names[keep])[["TM", "ETM+", "OLI/TIRS"]]
    expected = counts.div(counts.sum(axis=1), axis=0)
    for as_categorical in (False, True):
        c = pd.Series(cells).astype("category") if as_categorical else cells
        p = pd.Series(platforms).astype("category") if as_categorical else platforms
        got = sensor_shares(c, years, p, valid)
        assert list(got.columns) == ["cell", "year", "sensor[TM]", "sensor[ETM+]", "sensor[OLI/TIRS]"]
        assert list(zip(got["cell"].astype(str), got["year"], strict=True)) == list(expected.index)
        # shares are ratios of the same integer counts: equal to the last bit
        np.testing.assert_array_equal(got.iloc[:, 2:].to_numpy(), expected.to_numpy())


def test_row_blocks_equal_the_unsplit_product_bit_for_bit() -> None:
    n = _THREADED_MIN_ROWS + 1_234  # above the threshold, so the rows really are split
    _, sw = _grid_weights(n)
    w = sw.row_standardised()
    rng = np.random.default_rng(1)
    with _RowBlocks(w.astype(np.float32)) as wb:
        assert len(wb.parts) == 0 or sum(b - a for a, b, _ in wb.parts) == n
        z = rng.normal(size=(n, 5)).astype(np.float32)
        np.testing.assert_array_equal(wb @ z, w.astype(np.float32) @ z)
    with _RowBlocks(w) as wb:
        v = rng.normal(size=n)
        np.testing.assert_array_equal(wb @ v, w @ v)


def test_neumann_solve_equals_the_plain_series_loop() -> None:
    # the series as first written: rho * (W @ term), stopped on max |term|; the in-place,
    # row-split loop must reach the same iterate in the same number of steps
    n = _THREADED_MIN_ROWS + 500
    _, sw = _grid_weights(n, seed=2)
    w = sw.row_standardised()
    b = np.random.default_rng(3).normal(size=(n, 3))

    def plain(w32: object, rhs: np.ndarray, rtol: float) -> np.ndarray:
        v = rhs.copy()
        term = v.copy()
        scale = float(np.abs(v).max())
        for _ in range(20_000):
            term = 0.7 * (w32 @ term)
            v += term
            if float(np.abs(term).max()) <= rtol * scale:
                break
        return v

    np.testing.assert_array_equal(solve_spatial(w, 0.7, b), plain(w, b, 1e-10))
    b32 = b.astype(np.float32)
    w32 = w.astype(np.float32)
    np.testing.assert_array_equal(solve_spatial(w32, 0.7, b32, rtol=1e-6), plain(w32, b32, 1e-6))
    # the power traces with probes equal to n would be dense; here a fixed seed gives the
    # same estimate whether or not the product is split (it is split above the threshold):
    # the same float32 iterates bit for bit, and z'W^k z summed in float64 per row block
    # (then exactly, by math.fsum) rather than in one pass, so equal to float64 rounding
    t = power_traces(w, 6, probes=4, seed=5)
    z = (np.random.default_rng(5).integers(0, 2, size=(n, 4), dtype=np.int8) * 2 - 1).astype(np.float32)
    v = z
    for k in range(1, 7):
        v = w32 @ v
        if k >= 3:
            assert t[k] == pytest.approx(float(np.einsum("ij,ij->", z, v, dtype=np.float64)) / 4, rel=1e-14, abs=0)


def test_one_weights_moments_serves_every_response_unchanged() -> None:
    xy, sw = _grid_weights(900, seed=6)
    w = sw.row_standardised()
    rng = np.random.default_rng(7)
    x = np.column_stack([np.ones(900), rng.normal(size=(900, 2))])
    shared = WeightsMoments(w)
    for _ in range(3):  # different responses on the same W, as the years of one cell set
        y = x @ rng.normal(size=3) + rng.normal(size=900) + 0.3 * xy[:, 0] / 900.0
        e = y - x @ np.linalg.lstsq(x, y, rcond=None)[0]
        assert lm_tests(y, x, e, w, moments=shared) == lm_tests(y, x, e, w)
        assert moran_residuals(e, x, w, moments=shared) == moran_residuals(e, x, w)
        assert moran_value(e, w, moments=shared) == moran_value(e, w)


@pytest.mark.parametrize("permutations", [0, 99])
def test_gi_star_weights_shared_across_variables_give_the_same_hotspots(permutations: int) -> None:
    _, sw = _grid_weights(400, seed=8)
    star = GiStarWeights.of(sw.binary)
    rng = np.random.default_rng(9)
    for _ in range(2):
        values = rng.normal(size=400).cumsum()
        a = hotspots(values, sw.binary, permutations=permutations, star=star)
        b = hotspots(values, sw.binary, permutations=permutations)
        for field in ("z", "p", "q", "klass"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))


def _dense_frobenius(w: object, rho: float, z: np.ndarray) -> tuple[float, float]:
    """Independent reference: (1/p) ||W (I - rho W)^-1 Z||_F^2 and the exact tr(B'B), densely."""
    dense = w.toarray()
    b = dense @ np.linalg.inv(np.eye(dense.shape[0]) - rho * dense)
    bz = b @ z.astype(float)
    return float(np.sum(bz * bz)) / z.shape[1], float(np.sum(b * b))


def test_inverse_frobenius_traces_of_several_rhos_equal_dense_solves_with_the_same_probes() -> None:
    # one pass of W's powers serves every rho: each value is the Hutchinson estimate a dense
    # inverse gives with the same probes (float32 products: ~1e-6), and near the exact trace
    n, probes = 1_200, 32
    _, sw = _grid_weights(n, seed=10)
    w = sw.row_standardised()
    z = (np.random.default_rng(11).integers(0, 2, size=(n, probes), dtype=np.int8) * 2 - 1).astype(np.float32)
    rhos = [-0.3, 0.0, 0.45, 0.8]
    got = inverse_frobenius_traces(w, rhos, probes=probes, seed=11, rtol=1e-10)
    for rho, value in zip(rhos, got, strict=True):
        assert value == pytest.approx(_dense_frobenius(w, rho, z)[0], rel=1e-6)
    # with many probes the estimates approach the exact traces (Monte Carlo error ~1 %)
    many = inverse_frobenius_traces(w, rhos, probes=400, seed=11)
    for rho, value in zip(rhos, many, strict=True):
        assert value == pytest.approx(_dense_frobenius(w, rho, z)[1], rel=0.03)
    # a rho computed alone gives the same value bit for bit as within the shared pass
    for rho, value in zip(rhos, inverse_frobenius_traces(w, rhos, probes=probes, seed=11), strict=True):
        assert inverse_frobenius_traces(w, [rho], probes=probes, seed=11)[0] == value
        # and what a separate Neumann solve of the same probes gave (the code before sharing),
        # which stops on the same term: equal up to float32 rounding
        v = solve_spatial(w.astype(np.float32), rho, z, rtol=1e-6)
        bz = w.astype(np.float32) @ v
        assert value == pytest.approx(float(np.einsum("ij,ij->", bz, bz, dtype=np.float64)) / probes, rel=1e-6)


def test_lag_and_error_fits_sharing_variance_traces_equal_the_fits_alone() -> None:
    n = 1_500
    xy, sw = _grid_weights(n, seed=12)
    w = sw.row_standardised()
    rng = np.random.default_rng(13)
    x = rng.normal(size=(n, 2))
    y = solve_spatial(w, 0.6, 1.0 + x @ np.array([2.0, -1.0]) + rng.normal(size=n))
    shared = LogDeterminant(w, method="traces")
    lag = estimate_lag_ml(y, x, ["a", "b"], w, logdet=shared)
    err = estimate_error_ml(y, x, ["a", "b"], w, logdet=shared)
    shared.share_variance_traces([lag.param, err.param])
    for est, alone in ((lag, fit_lag_ml), (err, fit_error_ml)):
        a = est.finish()
        b = alone(y, x, ["a", "b"], w, logdet=LogDeterminant(w, method="traces"))
        for field in ("coefficients", "std_errors", "p_values"):
            np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
        assert (a.rho, a.rho_se, a.lam, a.lam_se, a.loglik) == (b.rho, b.rho_se, b.lam, b.lam_se, b.loglik)

"""The model stage's shared work (per weights matrix, per panel) gives exactly the unshared results."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from uhi.stats.diagnostics import WeightsMoments, lm_tests, moran_residuals, moran_value
from uhi.stats.hotspots import GiStarWeights, hotspots
from uhi.stats.sensors import sensor_shares
from uhi.stats.spatial import _THREADED_MIN_ROWS, _RowBlocks, power_traces, solve_spatial
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
    # same estimate whether or not the product is split (it is split above the threshold)
    t = power_traces(w, 6, probes=4, seed=5)
    z = (np.random.default_rng(5).integers(0, 2, size=(n, 4), dtype=np.int8) * 2 - 1).astype(np.float32)
    v = z
    for k in range(1, 7):
        v = w32 @ v
        if k >= 3:
            assert t[k] == float(np.einsum("ij,ij->", z, v, dtype=np.float64)) / 4


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

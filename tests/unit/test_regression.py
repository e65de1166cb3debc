"""OLS, SLX, zone FE and the OLS diagnostics against statsmodels and spreg on Columbus."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from uhi.errors import InputError
from uhi.stats.diagnostics import lm_tests, moran_residuals, moran_value
from uhi.stats.regression import fit_fe, fit_ols, fit_slx

NAMES = ["INC", "HOVAL"]


@pytest.fixture(scope="module")
def columbus():
    import geopandas as gpd
    import libpysal

    gdf = gpd.read_file(libpysal.examples.get_path("columbus.shp"))
    w = libpysal.weights.Queen.from_dataframe(gdf, use_index=False)
    w.transform = "r"
    return gdf, w


def test_ols_equals_statsmodels(columbus) -> None:
    import statsmodels.api as sm

    gdf, _ = columbus
    y, x = gdf["CRIME"].to_numpy(), gdf[NAMES].to_numpy()
    fit = fit_ols(y, x, NAMES)
    ref = sm.OLS(y, sm.add_constant(x)).fit()
    np.testing.assert_allclose(fit.coefficients, ref.params, rtol=1e-10)
    np.testing.assert_allclose(fit.std_errors, ref.bse, rtol=1e-10)
    np.testing.assert_allclose(fit.p_values, ref.pvalues, rtol=1e-8)
    assert fit.r2 == pytest.approx(ref.rsquared, rel=1e-12)
    assert fit.loglik == pytest.approx(ref.llf, rel=1e-12)
    assert fit.aic == pytest.approx(ref.aic, rel=1e-12)
    np.testing.assert_allclose(fit.fitted + fit.residuals, y)


def test_lm_tests_and_residual_moran_equal_spreg(columbus) -> None:
    import scipy.sparse as sp
    import spreg

    gdf, w = columbus
    y, x = gdf["CRIME"].to_numpy(), gdf[NAMES].to_numpy()
    ref = spreg.OLS(y[:, None], x, w=w, spat_diag=True, moran=True)
    fit = fit_ols(y, x, NAMES)
    xc = np.column_stack([np.ones(len(y)), x])
    ws = sp.csr_matrix(w.sparse)
    lm = lm_tests(y, xc, fit.residuals, ws)
    for key, (stat, p) in {
        "lm_lag": ref.lm_lag, "lm_error": ref.lm_error, "rlm_lag": ref.rlm_lag, "rlm_error": ref.rlm_error
    }.items():
        assert lm[key] == pytest.approx(stat, rel=1e-9)
        assert lm[f"{key}_p"] == pytest.approx(p, rel=1e-7)
    mi = moran_residuals(fit.residuals, xc, ws)
    assert mi["moran_i"] == pytest.approx(ref.moran_res[0], rel=1e-10)
    assert mi["moran_z"] == pytest.approx(ref.moran_res[1], rel=1e-9)
    assert mi["moran_p"] == pytest.approx(ref.moran_res[2], rel=1e-7)


def test_slx_equals_spreg_slx(columbus) -> None:
    import scipy.sparse as sp
    import spreg

    gdf, w = columbus
    y, x = gdf["CRIME"].to_numpy(), gdf[NAMES].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = spreg.OLS(y[:, None], x, w=w, slx_lags=1)
    fit = fit_slx(y, x, NAMES, sp.csr_matrix(w.sparse))
    assert fit.names == ["const", "INC", "HOVAL", "W_INC", "W_HOVAL"]
    np.testing.assert_allclose(fit.coefficients, ref.betas.ravel(), rtol=1e-10)
    np.testing.assert_allclose(fit.std_errors, ref.std_err, rtol=1e-10)
    assert fit.aic == pytest.approx(ref.aic, rel=1e-12)


def test_zone_fe_equals_dummy_regression(columbus) -> None:
    import statsmodels.formula.api as smf

    gdf, _ = columbus
    frame = gdf[["CRIME", *NAMES]].copy()
    frame["zone"] = np.array(["a", "b", "c", "d", "e"])[np.arange(len(frame)) % 5]
    ref = smf.ols("CRIME ~ INC + HOVAL + C(zone)", frame).fit()
    fit = fit_fe(frame["CRIME"].to_numpy(), frame[NAMES].to_numpy(), NAMES, frame["zone"].to_numpy())
    np.testing.assert_allclose(fit.coefficients, ref.params[NAMES], rtol=1e-10)
    np.testing.assert_allclose(fit.std_errors, ref.bse[NAMES], rtol=1e-10)
    assert fit.r2 == pytest.approx(ref.rsquared, rel=1e-12)
    assert fit.loglik == pytest.approx(ref.llf, rel=1e-12)
    assert fit.aic == pytest.approx(ref.aic, rel=1e-12)
    assert fit.k == 2 + 5


def test_collinear_x_is_a_clear_error() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=50)
    x = np.column_stack([a, 2 * a + 1, rng.normal(size=50)])
    with pytest.raises(InputError, match=r"collinear x: \['b'\]|collinear x: \['a'\]"):
        fit_ols(rng.normal(size=50), x, ["a", "b", "c"])


def test_constant_x_is_collinear_with_intercept() -> None:
    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=30), np.full(30, 4.0)])
    with pytest.raises(InputError, match="collinear x"):
        fit_ols(rng.normal(size=30), x, ["a", "flat"])


def test_single_row_is_refused() -> None:
    with pytest.raises(InputError, match="too few observations for the model: 1 rows for 2 coefficients"):
        fit_ols(np.array([1.0]), np.array([[2.0]]), ["a"])


def test_fe_refuses_x_constant_within_zones() -> None:
    rng = np.random.default_rng(1)
    zones = np.repeat(["a", "b", "c"], 10)
    x = np.column_stack([rng.normal(size=30), np.repeat([1.0, 2.0, 3.0], 10)])
    with pytest.raises(InputError, match=r"\['zonal'\] is constant within every zone"):
        fit_fe(rng.normal(size=30), x, ["a", "zonal"], zones)


def test_diagnostics_of_a_perfect_fit_are_nan(columbus) -> None:
    # residuals all zero (constant y, or y exactly linear in x): every statistic divides by
    # e'e and is undefined; NaN, never ZeroDivisionError
    import scipy.sparse as sp

    gdf, w = columbus
    xc = np.column_stack([np.ones(len(gdf)), gdf[NAMES].to_numpy()])
    y = xc @ np.array([1.0, 2.0, -0.5])
    e = np.zeros(len(y))
    ws = sp.csr_matrix(w.sparse)
    lm = lm_tests(y, xc, e, ws)
    assert set(lm) == {f"{t}{p}" for t in ("lm_lag", "lm_error", "rlm_lag", "rlm_error") for p in ("", "_p")}
    assert all(np.isnan(v) for v in lm.values())
    assert all(np.isnan(v) for v in moran_residuals(e, xc, ws).values())
    assert np.isnan(moran_value(e, ws))

"""Spatial diagnostics of regression residuals: LM lag/error tests (and robust forms), Moran's I."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy import stats

__all__ = ["WeightsMoments", "lm_tests", "moran_residuals", "moran_value"]


def _trace_product(a: sp.csr_matrix, b: sp.csr_matrix) -> float:
    """tr(A B) without forming A B: sum of A elementwise times B transposed."""
    return float(a.multiply(b.T.tocsr()).sum())


class WeightsMoments:
    """The parts of the tests that depend on W alone, computed once per weights matrix.

    The LM tests and the residual Moran moments need S0, tr(W), tr(W'W), tr(WW') and tr(WW);
    at 384k cells (knn:8) these sparse products cost about 0.5 s per call, and the stage fits
    one OLS per year on the same W. Each value is computed exactly as the functions compute it
    without a cache (same operands, same summation order), so results do not change.

    Parameters
    ----------
    w
        The weights matrix the tests use (row-standardised in regressions).
    """

    def __init__(self, w: sp.csr_matrix) -> None:
        self.w = w
        self._values: dict[str, Any] = {}
        # the log-determinant's traces may ask for tr(WW) from another thread
        self._lock = threading.RLock()

    def _get(self, key: str) -> Any:
        with self._lock:
            return self._compute(key)

    def _compute(self, key: str) -> Any:
        if key not in self._values:
            w = self.w
            if key == "wt":
                value: Any = w.T.tocsr()
            elif key == "s0":
                value = float(w.sum())
            elif key == "trace":
                value = float(w.diagonal().sum())
            elif key == "tr_wtw":  # as lm_tests sums it: tr(W'W)
                value = _trace_product(self._get("wt"), w)
            elif key == "tr_wwt":  # as moran_residuals sums it: tr(WW')
                value = _trace_product(w, self._get("wt"))
            else:  # tr_ww: _trace_product(w, w) with W' already transposed above
                value = float(w.multiply(self._get("wt")).sum())
            self._values[key] = value
        return self._values[key]

    @property
    def wt(self) -> sp.csr_matrix:
        """W transposed, in CSR."""
        return self._get("wt")

    @property
    def s0(self) -> float:
        """Sum of all weights."""
        return float(self._get("s0"))

    @property
    def trace(self) -> float:
        """tr(W)."""
        return float(self._get("trace"))

    @property
    def tr_wtw(self) -> float:
        """tr(W'W), summed in W' order (lm_tests)."""
        return float(self._get("tr_wtw"))

    @property
    def tr_wwt(self) -> float:
        """tr(WW'), summed in W order (moran_residuals)."""
        return float(self._get("tr_wwt"))

    @property
    def tr_ww(self) -> float:
        """tr(WW)."""
        return float(self._get("tr_ww"))


def moran_value(e: np.ndarray, w: sp.csr_matrix, *, moments: WeightsMoments | None = None) -> float:
    """Moran's I of a vector: (n / S0) e'We / e'e (e centred first)."""
    e = np.asarray(e, dtype=float) - float(np.mean(e))
    if not float(e @ e) > 0:  # constant residuals: no spatial pattern to measure
        return float("nan")
    s0 = moments.s0 if moments is not None else float(w.sum())
    return float(len(e) / s0 * (e @ (w @ e)) / (e @ e))


def moran_residuals(
    e: np.ndarray, x: np.ndarray, w: sp.csr_matrix, *, moments: WeightsMoments | None = None
) -> dict[str, float]:
    """Moran's I of OLS residuals with its exact mean and variance under normality.

    Cliff & Ord (1981) moments for regression residuals, E[I] = (n/S0) tr(MW)/(n-k) and
    Var[I] from tr(MWMW'), tr(MWMW), tr(MW); the traces are expanded through the k x k
    matrices of M = I - X (X'X)^-1 X', so nothing n x n is formed (spreg ``MoranRes``
    builds them densely).

    Parameters
    ----------
    e
        OLS residuals.
    x
        The design matrix with the constant.
    w
        Weights matrix (row-standardised in regressions).
    moments
        W's own traces when already computed (:class:`WeightsMoments` of this ``w``).
    """
    n, k = x.shape
    if not float(e @ e) > 0:  # a perfect fit: I = e'We / e'e is undefined
        return dict.fromkeys(("moran_i", "moran_mean", "moran_var", "moran_z", "moran_p"), float("nan"))
    mom = moments if moments is not None else WeightsMoments(w)
    s0 = mom.s0
    g = np.linalg.inv(x.T @ x)
    wx = np.asarray(w @ x)
    wtx = np.asarray(w.T @ x)
    i_val = float(n / s0 * (e @ (w @ e)) / (e @ e))
    # tr(MW) = tr(W) - tr(G X'WX)
    xwx = x.T @ wx
    tr_mw = float(mom.trace - np.trace(g @ xwx))
    tr_wwt = mom.tr_wwt
    tr_ww = mom.tr_ww
    # tr(MWMW') = tr(WW') - tr(G X'WW'X) - tr(G X'W'WX) + tr(G X'WX G X'W'X)
    tr_mwmwt = (
        tr_wwt
        - np.trace(g @ (wtx.T @ wtx))
        - np.trace(g @ (wx.T @ wx))
        + np.trace(g @ xwx @ g @ xwx.T)
    )
    # tr(MWMW) = tr(WW) - 2 tr(G X'WWX) + tr(G X'WX G X'WX)
    wwx = np.asarray(w @ wx)
    tr_mwmw = tr_ww - 2.0 * np.trace(g @ (x.T @ wwx)) + np.trace(g @ xwx @ g @ xwx)
    c = n / s0
    mean = c * tr_mw / (n - k)
    var = c * c * (tr_mwmwt + tr_mwmw + tr_mw**2) / ((n - k) * (n - k + 2.0)) - mean**2
    z = (i_val - mean) / np.sqrt(var)
    return {
        "moran_i": i_val,
        "moran_mean": float(mean),
        "moran_var": float(var),
        "moran_z": float(z),
        "moran_p": float(2.0 * stats.norm.sf(abs(z))),
    }


def lm_tests(
    y: np.ndarray, x: np.ndarray, e: np.ndarray, w: sp.csr_matrix, *, moments: WeightsMoments | None = None
) -> dict[str, Any]:
    """Lagrange multiplier tests for spatial lag and error on OLS residuals (Anselin et al. 1996).

    Same statistics as spreg ``OLS(spat_diag=True)``: LM-lag, LM-error and their robust forms,
    each chi-squared with 1 degree of freedom. ``moments``: W's traces when already computed.
    """
    n = len(y)
    sig2 = float(e @ e) / n
    if not sig2 > 0:
        # a perfect fit (constant y, or y an exact combination of x): the statistics divide by
        # the residual variance and are undefined
        return {f"{name}{p}": float("nan") for name in ("lm_lag", "lm_error", "rlm_lag", "rlm_error") for p in ("", "_p")}
    mom = moments if moments is not None else WeightsMoments(w)
    t = mom.tr_wtw + mom.tr_ww
    g = np.linalg.inv(x.T @ x)
    b = g @ (x.T @ y)
    wxb = np.asarray(w @ (x @ b))
    mwxb = wxb - x @ (g @ (x.T @ wxb))
    nj = (float(wxb @ mwxb) + t * sig2) / sig2
    ewe = float(e @ (w @ e)) / sig2
    ewy = float(e @ (w @ y)) / sig2
    lm_err = ewe**2 / t
    lm_lag = ewy**2 / nj
    rlm_err = (ewe - t / nj * ewy) ** 2 / (t - t * t / nj)
    rlm_lag = (ewy - ewe) ** 2 / (nj - t)
    out: dict[str, Any] = {}
    for name, val in (
        ("lm_lag", lm_lag),
        ("lm_error", lm_err),
        ("rlm_lag", rlm_lag),
        ("rlm_error", rlm_err),
    ):
        out[name] = float(val)
        out[f"{name}_p"] = float(stats.chi2.sf(val, 1))
    return out

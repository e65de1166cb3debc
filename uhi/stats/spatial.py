"""Spatial lag (SAR) and spatial error (SEM) models that run at city scale (n = 200k) on sparse W."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy import stats
from scipy.optimize import minimize_scalar

from uhi.errors import InputError
from uhi.stats.regression import ModelFit, check_design

__all__ = [
    "LogDeterminant",
    "power_traces",
    "solve_spatial",
    "fit_lag_ml",
    "fit_lag_gm",
    "fit_error_ml",
    "EXACT_MAX_N",
    "DENSE_MAX_N",
]

_LN2PI = float(np.log(2.0 * np.pi))
# sparse LU per rho is exact but costs ~75 ms at n = 5k (x ~25 optimiser steps) and ~5 s at
# 200k (knn:8, 2 cores), while the traces path moves rho by < 0.05 SE at any n (tests): above
# this size the log-determinant comes from stochastic traces
EXACT_MAX_N = 2_000
# below this size the variance traces come from a dense inverse, like spreg's 'full' method;
# the O(n^3) inverse takes ~0.7 s at n = 1,300 on 2 cores, so above it traces are estimated
DENSE_MAX_N = 1_000
# the ML optimiser's search interval for rho/lambda; a row-standardised W has eigenvalues in
# [-1, 1], and spreg searches the same open interval
_BOUNDS = (-0.999, 0.999)


# sparse products on at least this many rows are split into row blocks on threads
# (scipy's sparse kernels release the GIL); below, a thread's start costs more than it saves
_THREADED_MIN_ROWS = 50_000


class _RowBlocks:
    """``w @ x`` with the rows of ``w`` split over threads, identical to ``w @ x`` itself.

    Each output row is the same sum over the same stored entries in the same order as the
    unsplit product, so the values do not change; only the rows are shared out. The
    power-trace and Neumann loops are one sparse product per step, most of the model stage's
    arithmetic at city scale (384k rows x 16 probes: ~20 ms of CPU per product).
    """

    def __init__(self, w: sp.csr_matrix) -> None:
        import os

        self.w = w
        n = int(w.shape[0])
        blocks = min(os.cpu_count() or 1, 4) if n >= _THREADED_MIN_ROWS else 1
        edges = np.linspace(0, n, blocks + 1).astype(int)
        self.parts = [(int(a), int(b), w[a:b]) for a, b in zip(edges[:-1], edges[1:], strict=True)] if blocks > 1 else []
        self._pool: Any = None

    def __enter__(self) -> _RowBlocks:
        if self.parts:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(len(self.parts))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __matmul__(self, x: np.ndarray) -> np.ndarray:
        if self._pool is None:
            return np.asarray(self.w @ x)
        out = np.empty((self.w.shape[0], *x.shape[1:]), dtype=np.result_type(self.w.dtype, x.dtype))

        def block(part: tuple[int, int, sp.csr_matrix]) -> None:
            a, b, rows = part
            out[a:b] = rows @ x

        for done in [self._pool.submit(block, part) for part in self.parts]:
            done.result()
        return out


def power_traces(
    w: sp.csr_matrix, order: int, *, probes: int, seed: int = 0
) -> np.ndarray:
    """tr(W^k) for k = 0..order: exact for k <= 2, Hutchinson estimates above.

    The Monte Carlo traces of Barry & Pace (1999) with Rademacher probes, which have the
    smallest variance among Hutchinson estimators (Hutchinson 1990); the k <= 2 terms are
    exact because they dominate the log-determinant at moderate rho. The probe products run
    in float32: W is row-stochastic, so the iterates stay bounded and single precision
    (1e-7) is far below the Monte Carlo error, at half the memory traffic (1.7x faster).
    With ``probes >= n`` the probes are the identity's columns and every trace is exact
    (float64; n x n memory: for checks at moderate n).
    """
    n = w.shape[0]
    t = np.zeros(order + 1)
    t[0] = n
    if order >= 1:
        t[1] = float(w.diagonal().sum())
    if order >= 2:
        t[2] = float(w.multiply(w.T.tocsr()).sum())
    if order >= 3 and probes >= n:
        power = np.eye(n)
        for k in range(1, order + 1):
            power = np.asarray(w @ power)
            if k >= 3:
                t[k] = float(np.trace(power))
    elif order >= 3:
        rng = np.random.default_rng(seed)
        z = (rng.integers(0, 2, size=(n, probes), dtype=np.int8) * 2 - 1).astype(np.float32)
        v = z
        with _RowBlocks(w.astype(np.float32)) as w32:
            for k in range(1, order + 1):
                v = w32 @ v
                if k >= 3:
                    t[k] = float(np.einsum("ij,ij->", z, v, dtype=np.float64)) / probes
    return t


def solve_spatial(
    w: sp.csr_matrix, rho: float, b: np.ndarray, *, lu: Any = None, rtol: float = 1e-10
) -> np.ndarray:
    """Solve (I - rho W) v = b: by a given sparse LU, else by the Neumann series.

    The series converges geometrically because |rho| < 1 and W is row-standardised
    (||rho W||_inf = |rho|), and each step is one sparse product, so it needs no factorisation.
    """
    if lu is not None:
        return np.asarray(lu.solve(np.asarray(b, dtype=float)))
    b = np.asarray(b)
    v = np.array(b, dtype=b.dtype if b.dtype == np.float32 else float, copy=True)
    term = v.copy()
    scale = float(np.abs(v).max()) or 1.0
    with _RowBlocks(w) as wb:
        for _ in range(20_000):
            # in place and max |term| from its extremes: the same values as rho * (w @ term)
            # and np.abs(term).max(), without two temporaries per step (about half of a step's
            # time at 384k rows x 16 probes went to them)
            term = wb @ term
            term *= rho
            v += term
            if max(float(term.max()), -float(term.min())) <= rtol * scale:
                break
    return v


class LogDeterminant:
    """ln|I - rho W| for a sparse row-standardised W.

    Parameters
    ----------
    w
        Row-standardised sparse weights.
    method
        ``"lu"`` (exact: sparse LU per rho, as spreg's ``method='LU'``), ``"traces"``
        (Barry & Pace 1999 series with stochastic traces and their tail correction), or
        ``"auto"``: LU up to EXACT_MAX_N observations, traces above.
    order
        Number of series terms for the traces method.
    probes
        Random probe vectors for the traces (default: more at small n, where each is cheap);
        ``probes >= n`` gives exact traces (the identity's columns; n x n memory, for checks).
    seed
        Seed of the probes (results are reproducible).
    """

    def __init__(
        self,
        w: sp.csr_matrix,
        *,
        method: str = "auto",
        order: int = 60,
        probes: int | None = None,
        seed: int = 0,
    ) -> None:
        self.w = sp.csr_matrix(w)
        self.n = int(w.shape[0])
        if method == "auto":
            method = "lu" if self.n <= EXACT_MAX_N else "traces"
        if method not in ("lu", "traces"):
            raise ValueError(f"unknown log-determinant method {method!r}")
        self.method = method
        self.order = order
        # the trace error relative to the standard error of rho depends on the probes only
        # (both shrink like 1/sqrt(n)); 64 probes move rho by ~0.003 SE at 10k and 16 by
        # ~0.006 SE at 200k (bench), far inside 0.05 SE; small n gets more because they are cheap
        self.probes = probes if probes is not None else (64 if self.n <= 20_000 else 16)
        self.seed = seed
        self._traces: np.ndarray | None = None
        self._ident = sp.identity(self.n, format="csc")
        self._wcsc = self.w.tocsc()

    @property
    def traces(self) -> np.ndarray:
        """tr(W^k), k = 0..order (computed once, shared by the log-determinant, the variance
        and the impacts)."""
        if self._traces is None:
            self._traces = power_traces(self.w, self.order, probes=self.probes, seed=self.seed)
        return self._traces

    def lu(self, rho: float) -> Any:
        """Sparse LU factor of I - rho W (None when the method avoids factorising)."""
        if self.method != "lu":
            return None
        return self._splu(rho)

    def _splu(self, rho: float) -> Any:
        from scipy.sparse.linalg import splu

        # I - rho W is strictly diagonally dominant (|rho| < 1, rows of W sum to <= 1), so LU
        # without pivoting is stable; keeping the symmetric fill-reducing order makes the
        # factorisation ~2.5x faster than SuperLU's default (measured, knn:8, n = 1.3k-5k)
        return splu(
            (self._ident - rho * self._wcsc).tocsc(),
            permc_spec="MMD_AT_PLUS_A",
            diag_pivot_thresh=0.0,
            options={"SymmetricMode": True},
        )

    def __call__(self, rho: float) -> float:
        if self.method == "lu":
            try:
                f = self._splu(rho)
            except RuntimeError:  # exactly singular
                return -np.inf
            d = np.abs(f.U.diagonal())
            if np.any(d == 0):
                return -np.inf
            return float(np.log(d).sum())
        t = self.traces
        k = np.arange(1, self.order + 1)
        powers = rho**k
        series = -float(np.sum(powers * t[1:] / k))
        if rho > 0:
            # Barry & Pace tail: the remaining terms with tr(W^k) held at its last value
            tail = -np.log1p(-rho) - float(np.sum(powers / k))
            series -= t[-1] * max(tail, 0.0)
        return series


def _variance_traces(
    w: sp.csr_matrix, rho: float, logdet: LogDeterminant, extra: np.ndarray
) -> tuple[float, float, float, np.ndarray]:
    """tr(W A^-1), tr((W A^-1)^2), tr((W A^-1)'(W A^-1)) with A = I - rho W, and A^-1 extra.

    Exact with a dense inverse up to DENSE_MAX_N; above, the first two from the power
    traces (W A^-1 = sum_j rho^j W^(j+1)) and the third by a Hutchinson estimate.
    """
    n = w.shape[0]
    if n <= DENSE_MAX_N:
        a = np.eye(n) - rho * w.toarray()
        ai = np.linalg.inv(a)
        b = np.asarray(w @ ai)
        return (
            float(np.trace(b)),
            float(np.sum(b * b.T)),
            float(np.sum(b * b)),
            ai @ extra,
        )
    t = logdet.traces
    m = np.arange(len(t) - 2)
    tr1 = float(np.sum(rho ** np.arange(len(t) - 1) * t[1:]))
    tr2 = float(np.sum((m + 1) * rho**m * t[2:]))
    rng = np.random.default_rng(logdet.seed + 1)
    probes = 16 if n > 50_000 else 32
    lu = logdet.lu(rho)
    # the Hutchinson probes only feed a variance: float32 and a 1e-6 tolerance suffice
    z = (rng.integers(0, 2, size=(n, probes), dtype=np.int8) * 2 - 1).astype(np.float32)
    if lu is not None:
        v = solve_spatial(w, rho, z.astype(float), lu=lu)
    else:
        v = solve_spatial(w.astype(np.float32), rho, z, rtol=1e-6)  # python float keeps float32
    bz = np.asarray(w.astype(v.dtype) @ v)
    tr3 = float(np.einsum("ij,ij->", bz, bz, dtype=np.float64)) / probes
    solved = solve_spatial(w, rho, extra, lu=lu) if extra.size else extra
    return tr1, tr2, tr3, solved


def _prepare(
    y: np.ndarray, x: np.ndarray, names: Sequence[str], w: sp.csr_matrix
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    if w.shape[0] != y.shape[0]:
        raise InputError(f"weights have {w.shape[0]} rows but y has {y.shape[0]}")
    xc = np.column_stack([np.ones(len(y)), x])
    cnames = ["const", *names]
    check_design(xc, cnames)
    return y, xc, cnames


def _corr2(a: np.ndarray, b: np.ndarray) -> float:
    c = np.corrcoef(a, b)[0, 1]
    return float(c * c)


def concentrated_lag(
    y: np.ndarray, x: np.ndarray, wy: np.ndarray, logdet: Any
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, float]:
    """Maximise the lag model's likelihood concentrated in rho (Anselin 1988, ch. 12).

    Residuals of y and of W y on X give the SSR as a quadratic in rho, so each likelihood
    evaluation costs O(1) plus ``logdet(rho)`` (the cross-section's log|I - rho W|, or T times
    it for a panel). Returns rho, the coefficients, the residuals, X'X and the minimised
    negative log-likelihood (without the 2 pi constant).
    """
    n = y.shape[0]
    xtx = x.T @ x
    xtxi = np.linalg.inv(xtx)
    b0 = xtxi @ (x.T @ y)
    b1 = xtxi @ (x.T @ wy)
    e0 = y - x @ b0
    e1 = wy - x @ b1
    a, c, d = float(e0 @ e0), float(e0 @ e1), float(e1 @ e1)

    def nll(rho: float) -> float:
        s2 = (a - 2.0 * rho * c + rho * rho * d) / n
        return float(0.5 * n * np.log(s2) - logdet(rho))

    res = minimize_scalar(nll, bounds=_BOUNDS, method="bounded", options={"xatol": 1e-8})
    rho = float(res.x)
    return rho, b0 - rho * b1, e0 - rho * e1, xtx, float(res.fun)


def fit_lag_ml(
    y: np.ndarray,
    x: np.ndarray,
    names: Sequence[str],
    w: sp.csr_matrix,
    *,
    logdet: LogDeterminant | None = None,
) -> ModelFit:
    """Spatial lag model y = rho W y + X b + e by maximum likelihood (Ord 1975, Anselin 1988).

    The likelihood is concentrated in rho (residuals of y and W y on X, as spreg.ML_Lag);
    the log-determinant is exact by sparse LU up to EXACT_MAX_N, else Barry-Pace traces,
    so nothing n x n is formed. Standard errors from the full information matrix.
    """
    y, xc, cnames = _prepare(y, x, names, w)
    n, kx = xc.shape
    ld = logdet if logdet is not None else LogDeterminant(w)
    rho, b, u, xtx, nll_min = concentrated_lag(y, xc, np.asarray(w @ y), ld)
    s2 = float(u @ u) / n
    loglik = float(-nll_min - 0.5 * n * (_LN2PI + 1.0))
    xb = xc @ b
    tr1, tr2, tr3, aixb = _variance_traces(w, rho, ld, xb[:, None])
    wpy = np.asarray(w @ aixb[:, 0])
    xtwpy = xc.T @ wpy
    info = np.zeros((kx + 2, kx + 2))
    info[:kx, :kx] = xtx / s2
    info[:kx, kx] = info[kx, :kx] = xtwpy / s2
    info[kx, kx] = tr2 + tr3 + float(wpy @ wpy) / s2
    info[kx, kx + 1] = info[kx + 1, kx] = tr1 / s2
    info[kx + 1, kx + 1] = n / (2.0 * s2 * s2)
    vm = np.linalg.inv(info)
    se = np.sqrt(np.diag(vm)[: kx + 1])
    z = np.append(b, rho) / se
    p = 2.0 * stats.norm.sf(np.abs(z))
    fitted = y - u
    k = kx + 1
    return ModelFit(
        model="lag",
        names=cnames,
        coefficients=b,
        std_errors=se[:kx],
        p_values=p[:kx],
        n=n,
        k=k,
        r2=_corr2(y, fitted),
        loglik=loglik,
        aic=-2.0 * loglik + 2.0 * k,
        sigma2=s2,
        fitted=fitted,
        residuals=u,
        rho=rho,
        rho_se=float(se[kx]),
        rho_p=float(p[kx]),
        diagnostics={"method": f"ml-{ld.method}", "r2_reduced_form": _corr2(y, aixb[:, 0])},
    )


def fit_lag_gm(
    y: np.ndarray, x: np.ndarray, names: Sequence[str], w: sp.csr_matrix
) -> ModelFit:
    """Spatial lag model by 2SLS with instruments [X, W X] (Kelejian & Prucha 1998).

    Same estimator as spreg.GM_Lag with ``w_lags=1``; linear cost in n.
    """
    y, xc, cnames = _prepare(y, x, names, w)
    n, kx = xc.shape
    wy = np.asarray(w @ y)
    wx = np.asarray(w @ xc[:, 1:])
    h = np.column_stack([xc, wx])
    z = np.column_stack([xc, wy])
    hth = h.T @ h
    try:
        proj = np.linalg.solve(hth, h.T @ z)
    except np.linalg.LinAlgError:
        raise InputError("collinear instruments [X, WX] for the lag model; drop an x variable") from None
    zhat = h @ proj
    zhz = zhat.T @ z
    delta = np.linalg.solve(zhz, zhat.T @ y)
    u = y - z @ delta
    s2 = float(u @ u) / n
    vm = s2 * np.linalg.inv(zhat.T @ zhat)
    se = np.sqrt(np.diag(vm))
    p = 2.0 * stats.norm.sf(np.abs(delta / se))
    fitted = y - u
    ssr = float(u @ u)
    # GM has no likelihood; report the Gaussian one of its residuals for a rough comparison
    loglik = float(-0.5 * n * (_LN2PI + 1.0 + np.log(ssr / n)))
    k = kx + 1
    return ModelFit(
        model="lag",
        names=cnames,
        coefficients=delta[:kx],
        std_errors=se[:kx],
        p_values=p[:kx],
        n=n,
        k=k,
        r2=_corr2(y, fitted),
        loglik=loglik,
        aic=-2.0 * loglik + 2.0 * k,
        sigma2=s2,
        fitted=fitted,
        residuals=u,
        rho=float(delta[kx]),
        rho_se=float(se[kx]),
        rho_p=float(p[kx]),
        diagnostics={"method": "gm-2sls"},
    )


def fit_error_ml(
    y: np.ndarray,
    x: np.ndarray,
    names: Sequence[str],
    w: sp.csr_matrix,
    *,
    logdet: LogDeterminant | None = None,
) -> ModelFit:
    """Spatial error model y = X b + u, u = lambda W u + e, by maximum likelihood.

    For each lambda the spatially filtered regression has k x k normal equations whose
    entries are quadratic in lambda, so the concentrated likelihood costs O(k^3) per step
    once W y and W X are formed (as spreg.ML_Error, without its dense n x n algebra).
    """
    y, xc, cnames = _prepare(y, x, names, w)
    n, kx = xc.shape
    ld = logdet if logdet is not None else LogDeterminant(w)
    wy = np.asarray(w @ y)
    wx = np.asarray(w @ xc)
    xx, xwx, wxwx = xc.T @ xc, xc.T @ wx, wx.T @ wx
    xy, xwy, wxy, wxwy = xc.T @ y, xc.T @ wy, wx.T @ y, wx.T @ wy
    yy, ywy, wywy = float(y @ y), float(y @ wy), float(wy @ wy)

    def parts(lam: float) -> tuple[np.ndarray, np.ndarray, float]:
        m = xx - lam * (xwx + xwx.T) + lam * lam * wxwx
        r = xy - lam * (xwy + wxy) + lam * lam * wxwy
        b = np.linalg.solve(m, r)
        ss = yy - 2.0 * lam * ywy + lam * lam * wywy
        ssr = ss - float(r @ b)
        return b, m, max(ssr, 1e-300)

    def nll(lam: float) -> float:
        _, _, ssr = parts(lam)
        return 0.5 * n * np.log(ssr / n) - ld(lam)

    res = minimize_scalar(nll, bounds=_BOUNDS, method="bounded", options={"xatol": 1e-8})
    lam = float(res.x)
    b, m, _ = parts(lam)
    ys = y - lam * wy
    xs = xc - lam * wx
    e = ys - xs @ b
    s2 = float(e @ e) / n
    loglik = float(-res.fun - 0.5 * n * (_LN2PI + 1.0))
    tr1, tr2, tr3, _ = _variance_traces(w, lam, ld, np.zeros((n, 0)))
    info = np.array([[tr2 + tr3, tr1 / s2], [tr1 / s2, n / (2.0 * s2 * s2)]])
    vlam = float(np.linalg.inv(info)[0, 0])
    se_b = np.sqrt(np.diag(s2 * np.linalg.inv(m)))
    se_l = float(np.sqrt(vlam))
    p = 2.0 * stats.norm.sf(np.abs(b / se_b))
    fitted = xc @ b
    k = kx + 1
    return ModelFit(
        model="error",
        names=cnames,
        coefficients=b,
        std_errors=se_b,
        p_values=p,
        n=n,
        k=k,
        r2=_corr2(y, fitted),
        loglik=loglik,
        aic=-2.0 * loglik + 2.0 * k,
        sigma2=s2,
        fitted=fitted,
        residuals=y - fitted,
        lam=lam,
        lam_se=se_l,
        lam_p=float(2.0 * stats.norm.sf(abs(lam / se_l))),
        diagnostics={"method": f"ml-{ld.method}", "filtered_residual_var": s2},
    )

"""Spatial lag (SAR) and spatial error (SEM) models that run at city scale (n = 200k) on sparse W."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
    "SpatialEstimate",
    "estimate_lag_ml",
    "estimate_error_ml",
    "inverse_frobenius_traces",
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
        return self.step(x)[0]

    def step(self, x: np.ndarray, after: Callable[[int, int, np.ndarray], Any] | None = None) -> tuple[np.ndarray, list[Any]]:
        """``w @ x``, and ``after(a, b, out)`` run on each block of rows a:b once it is computed.

        ``after`` runs on the block's own thread while its rows are in cache (numpy releases
        the GIL), e.g. a partial sum or an update of the rows a:b of another array; its
        return values come back in row order.
        """
        if self._pool is None:
            out = np.asarray(self.w @ x)
            return out, ([] if after is None else [after(0, out.shape[0], out)])
        out = np.empty((self.w.shape[0], *x.shape[1:]), dtype=np.result_type(self.w.dtype, x.dtype))

        def block(part: tuple[int, int, sp.csr_matrix]) -> Any:
            a, b, rows = part
            out[a:b] = rows @ x
            return None if after is None else after(a, b, out)

        results = [done.result() for done in [self._pool.submit(block, part) for part in self.parts]]
        return out, ([] if after is None else results)


def power_traces(
    w: sp.csr_matrix, order: int, *, probes: int, seed: int = 0, trace_ww: Callable[[], float] | None = None
) -> np.ndarray:
    """tr(W^k) for k = 0..order: exact for k <= 2, Hutchinson estimates above.

    The Monte Carlo traces of Barry & Pace (1999) with Rademacher probes, which have the
    smallest variance among Hutchinson estimators (Hutchinson 1990); the k <= 2 terms are
    exact because they dominate the log-determinant at moderate rho. The probe products run
    in float32: W is row-stochastic, so the iterates stay bounded and single precision
    (1e-7) is far below the Monte Carlo error, at half the memory traffic (1.7x faster).
    With ``probes >= n`` the probes are the identity's columns and every trace is exact
    (float64; n x n memory: for checks at moderate n). ``trace_ww`` gives tr(WW) when it is
    known already (uhi.stats.diagnostics.WeightsMoments sums it the same way).
    """
    n = w.shape[0]
    t = np.zeros(order + 1)
    t[0] = n
    if order >= 1:
        t[1] = float(w.diagonal().sum())
    if order >= 2:
        t[2] = float(trace_ww()) if trace_ww is not None else float(w.multiply(w.T.tocsr()).sum())
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

        def probe_sum(a: int, b: int, out: np.ndarray) -> float:
            # z'W^k z over the block's rows, on its thread while they are in cache (the float64
            # sum over all rows at once took as long as the sparse product itself)
            return float(np.einsum("ij,ij->", z[a:b], out[a:b], dtype=np.float64))

        with _RowBlocks(w.astype(np.float32)) as w32:
            for k in range(1, order + 1):
                v, sums = w32.step(v, probe_sum if k >= 3 else None)
                if k >= 3:
                    t[k] = math.fsum(sums) / probes
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
    trace_ww
        Returns tr(WW) when it is computed elsewhere already (:func:`power_traces`).
    """

    def __init__(
        self,
        w: sp.csr_matrix,
        *,
        method: str = "auto",
        order: int = 60,
        probes: int | None = None,
        seed: int = 0,
        trace_ww: Callable[[], float] | None = None,
    ) -> None:
        self.w = sp.csr_matrix(w)
        self._trace_ww = trace_ww
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
        self._lock = threading.Lock()
        # tr((W A^-1)'(W A^-1)) by rho, from one pass of W's powers shared by every fit on W
        self._frobenius: dict[float, float] = {}
        self._ident = sp.identity(self.n, format="csc")
        self._wcsc = self.w.tocsc()

    @property
    def traces(self) -> np.ndarray:
        """tr(W^k), k = 0..order (computed once, shared by the log-determinant, the variance
        and the impacts)."""
        with self._lock:  # computed once even when a thread computes them ahead of their use
            if self._traces is None:
                self._traces = power_traces(self.w, self.order, probes=self.probes, seed=self.seed,
                                            trace_ww=self._trace_ww)
        return self._traces

    @property
    def variance_probes(self) -> int:
        """Hutchinson probes of the variance trace tr((W A^-1)'(W A^-1))."""
        return 16 if self.n > 50_000 else 32

    def share_variance_traces(self, rhos: Sequence[float]) -> None:
        """Estimate tr((W A^-1)'(W A^-1)) for all ``rhos`` in one pass of W's powers.

        Every fit on this W (the lag and error models of each year on the same cells) then
        finds its trace here instead of running its own Neumann solve over the same probes;
        each value equals the one computed alone up to float32 rounding
        (:func:`inverse_frobenius_traces`). Only for the traces method (LU fits solve exactly).
        """
        if self.method != "traces" or self.n <= DENSE_MAX_N:
            return
        todo = sorted({float(r) for r in rhos} - set(self._frobenius))
        if todo:
            values = inverse_frobenius_traces(self.w, todo, probes=self.variance_probes, seed=self.seed + 1)
            self._frobenius.update(zip(todo, values.tolist(), strict=True))

    def frobenius(self, rho: float) -> float:
        """tr((W A^-1)'(W A^-1)) at ``rho`` (shared when :meth:`share_variance_traces` saw it)."""
        rho = float(rho)
        if rho not in self._frobenius:
            self._frobenius[rho] = float(inverse_frobenius_traces(self.w, [rho], probes=self.variance_probes,
                                                                  seed=self.seed + 1)[0])
        return self._frobenius[rho]

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


def inverse_frobenius_traces(
    w: sp.csr_matrix, rhos: Sequence[float], *, probes: int, seed: int, rtol: float = 1e-6
) -> np.ndarray:
    """Hutchinson estimates of tr((W A^-1)'(W A^-1)), A = I - rho W, for several rho at once.

    With Rademacher probes Z, W A^-1 Z = sum_k rho^k W^(k+1) Z (the Neumann series), and the
    powers W^(k+1) Z do not depend on rho: one pass of sparse products serves every rho, each
    adding its own rho^k multiple of the same iterate (Hutchinson 1990; the series as in
    Barry & Pace 1999). Each rho's series stops where a Neumann solve of (I - rho W) V = Z
    stops (its k-th term at most ``rtol`` times max |Z|), so it sums the same terms as a solve
    for that rho alone; values equal those of a separate solve up to float32 rounding. The
    probes feed a variance only: float32 products (as :func:`power_traces`).

    Parameters
    ----------
    w
        Row-standardised sparse weights.
    rhos
        Values of rho (|rho| < 1).
    probes, seed
        Number of probe vectors and the seed that draws them (the same probes for every rho).
    rtol
        Relative size of the last series term kept.

    Returns
    -------
    numpy.ndarray
        One trace per rho, in the order given.
    """
    n = int(w.shape[0])
    rng = np.random.default_rng(seed)
    z = (rng.integers(0, 2, size=(n, probes), dtype=np.int8) * 2 - 1).astype(np.float32)
    rho = np.asarray(list(rhos), dtype=np.float64)
    out = np.zeros(rho.size)
    if rho.size == 0:
        return out
    scale = float(np.abs(z).max()) or 1.0
    sums: dict[int, np.ndarray] = {}  # per rho, W A^-1 Z summed so far
    coefs: dict[int, np.float32] = {}  # per rho, this step's rho^k
    tmp = np.empty_like(z)

    def first(a: int, b: int, out: np.ndarray) -> float:
        for i in sums:
            sums[i][a:b] = out[a:b]  # the k = 0 term, W Z
        return max(float(out[a:b].max()), -float(out[a:b].min()))

    def add(a: int, b: int, out: np.ndarray) -> float:
        # each rho's term on the block's rows, on its thread while they are in cache
        for i, c in coefs.items():
            np.multiply(out[a:b], c, out=tmp[a:b])
            sums[i][a:b] += tmp[a:b]
        return max(float(out[a:b].max()), -float(out[a:b].min()))

    with _RowBlocks(w.astype(np.float32)) as w32:
        sums.update({i: np.empty_like(z) for i in range(rho.size)})
        nxt, tops = w32.step(z, first)  # W^1 Z
        for k in range(1, 20_000):
            top_k = max(tops)  # max |W^k Z|
            coefs.clear()
            coefs.update({i: np.float32(float(rho[i]) ** k) for i in sums})
            nxt, tops = w32.step(nxt, add)  # W^(k+1) Z, added as rho^k W^(k+1) Z
            for i in list(sums):
                # the Neumann solve stops once its k-th term rho^k W^k Z is small enough
                if abs(float(rho[i]) ** k) * top_k <= rtol * scale:
                    done = sums.pop(i)
                    out[i] = float(np.einsum("ij,ij->", done, done, dtype=np.float64)) / probes
            if not sums:
                break
    for i, rest in sums.items():  # not converged within the step limit: the terms so far
        out[i] = float(np.einsum("ij,ij->", rest, rest, dtype=np.float64)) / probes
    return out


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
    lu = logdet.lu(rho)
    if lu is not None:
        rng = np.random.default_rng(logdet.seed + 1)
        probes = logdet.variance_probes
        z = (rng.integers(0, 2, size=(n, probes), dtype=np.int8) * 2 - 1).astype(np.float32)
        v = solve_spatial(w, rho, z.astype(float), lu=lu)
        bz = np.asarray(w @ v)
        tr3 = float(np.einsum("ij,ij->", bz, bz, dtype=np.float64)) / probes
    else:
        # the Hutchinson probes only feed a variance: float32 and a 1e-6 tolerance suffice;
        # shared by every fit on this W when the stage announced their rhos beforehand
        tr3 = logdet.frobenius(rho)
    solved = solve_spatial(w, rho, extra, lu=lu) if extra.size else extra
    return tr1, tr2, tr3, solved


def _prepare(
    y: np.ndarray, x: np.ndarray, names: Sequence[str], w: sp.csr_matrix, *, checked: bool = False
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    if w.shape[0] != y.shape[0]:
        raise InputError(f"weights have {w.shape[0]} rows but y has {y.shape[0]}")
    xc = np.column_stack([np.ones(len(y)), x])
    cnames = ["const", *names]
    if not checked:
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


@dataclass
class SpatialEstimate:
    """A lag or error model's ML point estimate before its standard errors.

    Attributes
    ----------
    param
        rho (lag) or lambda (error).
    logdet
        The log-determinant (and traces) of the W it was fitted on.
    finish
        Computes the standard errors and returns the :class:`ModelFit`. A stage that fits
        several models on one W first collects every ``param`` and passes them to
        ``logdet.share_variance_traces`` so that the variance traces come from one pass.
    """

    param: float
    logdet: LogDeterminant
    finish: Callable[[], ModelFit]


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
    return estimate_lag_ml(y, x, names, w, logdet=logdet).finish()


def estimate_lag_ml(
    y: np.ndarray,
    x: np.ndarray,
    names: Sequence[str],
    w: sp.csr_matrix,
    *,
    logdet: LogDeterminant | None = None,
    design_checked: bool = False,
) -> SpatialEstimate:
    """:func:`fit_lag_ml` in two steps: rho now, the standard errors on ``finish()``
    (``design_checked``: the caller ran check_design on ``[1, x]``)."""
    y, xc, cnames = _prepare(y, x, names, w, checked=design_checked)
    ld = logdet if logdet is not None else LogDeterminant(w)
    rho, b, u, xtx, nll_min = concentrated_lag(y, xc, np.asarray(w @ y), ld)
    return SpatialEstimate(rho, ld, lambda: _finish_lag(y, xc, cnames, w, ld, rho, b, u, xtx, nll_min))


def _finish_lag(
    y: np.ndarray, xc: np.ndarray, cnames: list[str], w: sp.csr_matrix, ld: LogDeterminant,
    rho: float, b: np.ndarray, u: np.ndarray, xtx: np.ndarray, nll_min: float,
) -> ModelFit:
    n, kx = xc.shape
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
    return estimate_error_ml(y, x, names, w, logdet=logdet).finish()


def estimate_error_ml(
    y: np.ndarray,
    x: np.ndarray,
    names: Sequence[str],
    w: sp.csr_matrix,
    *,
    logdet: LogDeterminant | None = None,
    design_checked: bool = False,
) -> SpatialEstimate:
    """:func:`fit_error_ml` in two steps: lambda now, the standard errors on ``finish()``
    (``design_checked``: the caller ran check_design on ``[1, x]``)."""
    y, xc, cnames = _prepare(y, x, names, w, checked=design_checked)
    n = xc.shape[0]
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
    nll_min = float(res.fun)

    def finish() -> ModelFit:
        return _finish_error(y, xc, cnames, w, wy, wx, ld, lam, nll_min, *parts(lam)[:2])

    return SpatialEstimate(lam, ld, finish)


def _finish_error(
    y: np.ndarray, xc: np.ndarray, cnames: list[str], w: sp.csr_matrix, wy: np.ndarray, wx: np.ndarray,
    ld: LogDeterminant, lam: float, nll_min: float, b: np.ndarray, m: np.ndarray,
) -> ModelFit:
    n, kx = xc.shape
    ys = y - lam * wy
    xs = xc - lam * wx
    e = ys - xs @ b
    s2 = float(e @ e) / n
    loglik = float(-nll_min - 0.5 * n * (_LN2PI + 1.0))
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

"""Vectorised simple, Holt and damped-trend exponential smoothing over many series at once."""

from __future__ import annotations

import logging
import os
import statistics
from dataclasses import dataclass

import numba
import numpy as np

from uhi.errors import ConfigError

__all__ = [
    "METHODS",
    "STATUSES",
    "EtsFit",
    "fit_ets",
    "smooth_fixed",
    "forecast_mean",
    "forecast_variance",
    "prediction_interval",
    "n_params",
    "SeriesForecast",
    "check_horizon",
    "forecast_series",
]

METHODS = ("simple", "holt", "damped")
# per-series outcome of forecast_series, in the order outputs count them
STATUSES = ("ok", "too_few_points", "no_data", "failed")

log = logging.getLogger("uhi.stats.ets")

# Parameters counted by the likelihood, as in Hyndman et al. (2008) sec. 7.1 and R's
# forecast::ets: smoothing parameters + initial states + the error variance.
_N_PARAMS = np.array([3, 5, 6], dtype=np.int64)

# Nelder-Mead settings. The bar is SSE within 1 % of statsmodels: stopping when the
# simplex's SSEs agree to 1e-4 (relative) or its points to 0.01 keeps that bar on real and
# synthetic series (tests/unit/test_ets_equivalence.py) at ~25 % less time than 1e-8 / 1e-4.
_NM_MAX_EVAL = (0, 60, 80)  # per method index: holt (2-D) and damped (3-D)
_NM_FTOL = 1e-4
_NM_XTOL = 1e-2


def n_params(method: str) -> int:
    """Number of likelihood parameters of a method (smoothing, initial states, variance)."""
    return int(_N_PARAMS[METHODS.index(method)])


@dataclass(frozen=True)
class EtsFit:
    """Fitted exponential smoothing, one entry per series (arrays of length n_series).

    Attributes
    ----------
    method
        Index into ``METHODS`` (0 simple, 1 holt, 2 damped); -1 when the series was not fitted.
    alpha, beta, phi
        Smoothing level, smoothing trend (statsmodels' ``smoothing_trend``, the beta* of
        Hyndman et al. 2008, so the error-correction gain is alpha * beta) and damping.
        Simple: beta = 0, phi = 0 (no trend). Holt: phi = 1.
    level0, trend0
        Initial states (estimated by least squares, as statsmodels' ``initialization_method=
        "estimated"``).
    level, trend
        States after the last step, the origin of the forecasts.
    sse
        Sum of squared one-step errors over the observed steps.
    n_obs
        Observed (non-NaN) steps.
    aicc
        Corrected AIC of the chosen method (inf when the series is too short for it).
    sigma2
        One-step error variance, SSE / (n_obs - n_params) (SSE / n_obs when that is not positive).
    """

    method: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    phi: np.ndarray
    level0: np.ndarray
    trend0: np.ndarray
    level: np.ndarray
    trend: np.ndarray
    sse: np.ndarray
    n_obs: np.ndarray
    aicc: np.ndarray
    sigma2: np.ndarray

    @property
    def method_names(self) -> np.ndarray:
        """Method name per series ('' when not fitted)."""
        names = np.array(("",) + METHODS, dtype=object)
        return names[self.method + 1]


# ---------------------------------------------------------------------------------------------
# kernels
#
# Compile time is the first run's cost (issue 19: 21 s of a 21.5 s first forecast on the demo
# city). Every kernel therefore has one explicit signature: numba compiles exactly that
# specialisation once (at import, or loads it from the cache), instead of one per literal
# argument (kind 0/1/2, True/False) and per read-only global array it met at call sites, which
# had made 20 specialisations of 9 functions (now 6 functions, one each). The kernels also avoid
# array expressions and slice assignment (each pulls in and compiles a generic numpy
# implementation) in favour of plain loops, and write into output arrays the caller allocates.
# error_model="numpy": no division here can be by zero (each is guarded), so the Python
# model's zero checks are only code to compile. Measured on the 2-core machine: 14.7 -> 4.6
# CPU-s to compile, fits byte-identical (tests/unit/test_ets_equivalence.py, bench_forecast.py).
# The two helpers called once, _golden_alpha and _fit_trend, are inlined into _fit_all by numba
# (inline="always") rather than compiled as kernels of their own: each compiled kernel is
# optimised and turned into machine code again with everything it calls, so their own copies
# were pure cost. _fit_trend calls the simplex from one site (a loop over the first run and the
# restart). Compile 4.3 -> 3.6 CPU-s (min of 4 runs, same machine), fits bit-identical. Inlining _nelder_mead or _objective too made it 12 s: each has many sites.

# fastmath without 'nnan'/'ninf': NaN marks missing steps and must keep comparing unequal
_FAST = {"contract", "arcp", "nsz"}
_VEC = "float64[::1]"
_RESULT = f"Tuple(({_VEC}, float64))"


@numba.njit(f"UniTuple(float64, 5)({_VEC}, float64, float64, float64, boolean)", fastmath=_FAST,
            cache=True, nogil=True, error_model="numpy")
def _concentrated_sse(y: np.ndarray, alpha: float, beta: float, phi: float, trend: bool) -> tuple:
    """SSE minimised over the initial states, for fixed smoothing parameters.

    The one-step errors are linear in the initial states (l0, b0), so for given
    (alpha, beta, phi) the best initial states solve a 2x2 least-squares problem. One pass
    accumulates its normal equations: the recursion is run from zero states on y (u, v) and
    on the unit initial states with y = 0 (matrix m). NaN steps get no update (the states
    propagate), which is how missing steps are handled everywhere in this module.
    Returns (sse, l0, b0, level_T, trend_T).
    """
    u = 0.0
    v = 0.0
    m11 = 1.0
    m12 = 0.0
    m21 = 0.0
    m22 = 1.0
    ab = alpha * beta
    one_m_alpha = 1.0 - alpha
    s11 = 0.0
    s12 = 0.0
    s22 = 0.0
    s1z = 0.0
    s2z = 0.0
    szz = 0.0
    for t in range(y.shape[0]):
        yt = y[t]
        if trend:
            f0 = u + phi * v
            r1 = m11 + phi * m21
            r2 = m12 + phi * m22
        else:
            f0 = u
            r1 = m11
            r2 = 0.0
        if yt == yt:
            z = yt - f0
            s11 += r1 * r1
            s12 += r1 * r2
            s22 += r2 * r2
            s1z += r1 * z
            s2z += r2 * z
            szz += z * z
            if trend:
                u = f0 + alpha * z
                v = phi * v + ab * z
                # m1j + phi m2j - alpha rj = (1 - alpha) rj, since rj = m1j + phi m2j
                m21 = phi * m21 - ab * r1
                m22 = phi * m22 - ab * r2
                m11 = one_m_alpha * r1
                m12 = one_m_alpha * r2
            else:
                u = f0 + alpha * z
                m11 = m11 - alpha * r1
        elif trend:
            u = f0
            v = phi * v
            n11 = m11 + phi * m21
            n12 = m12 + phi * m22
            m21 = phi * m21
            m22 = phi * m22
            m11 = n11
            m12 = n12
    if s11 <= 0.0:
        return np.nan, np.nan, np.nan, np.nan, np.nan
    det = s11 * s22 - s12 * s12
    if trend and det > 1e-12 * s11 * s22 and s22 > 0.0:
        l0 = (s22 * s1z - s12 * s2z) / det
        b0 = (s11 * s2z - s12 * s1z) / det
    else:
        # b0 is not identified (phi = 0, or too few steps): keep it at 0
        l0 = s1z / s11
        b0 = 0.0
    sse = szz - 2.0 * (l0 * s1z + b0 * s2z) + l0 * l0 * s11 + 2.0 * l0 * b0 * s12 + b0 * b0 * s22
    if sse < 0.0:
        sse = 0.0
    level_t = u + m11 * l0 + m12 * b0
    trend_t = v + m21 * l0 + m22 * b0
    return sse, l0, b0, level_t, trend_t


@numba.njit(f"float64({_VEC}, {_VEC}, int64)", cache=True, nogil=True, error_model="numpy")
def _objective(y: np.ndarray, p: np.ndarray, kind: int) -> float:
    """SSE of method ``kind`` at parameters p: (alpha), (alpha, beta) or (alpha, beta, phi)."""
    # one call site: LLVM inlines the SSE pass once here rather than once per method
    beta = 0.0
    phi = 0.0
    if kind >= 1:
        beta = p[1]
        phi = p[2] if kind == 2 else 1.0
    return _concentrated_sse(y, p[0], beta, phi, kind >= 1)[0]


@numba.njit(inline="always")
def _clip01(p: np.ndarray) -> None:
    for i in range(p.shape[0]):
        if p[i] < 0.0:
            p[i] = 0.0
        elif p[i] > 1.0:
            p[i] = 1.0


@numba.njit(f"{_RESULT}({_VEC}, {_VEC}, float64, int64)", cache=True, nogil=True, error_model="numpy")
def _nelder_mead(y: np.ndarray, start: np.ndarray, step: float, kind: int) -> tuple:
    """Nelder-Mead in the unit box (points clipped to [0, 1], so 0 and 1 are reachable).

    Written without per-iteration allocation (no sorting copies): with ~100 evaluations per
    series and 250k series, allocations would cost more than the SSE passes themselves.
    """
    d = start.shape[0]
    simplex = np.empty((d + 1, d))
    fval = np.empty(d + 1)
    for i in range(d + 1):
        for j in range(d):
            simplex[i, j] = start[j]
        if i > 0:
            j = i - 1
            simplex[i, j] = start[j] + step if start[j] + step <= 1.0 else start[j] - step
        _clip01(simplex[i])
        fval[i] = _objective(y, simplex[i], kind)
    n_eval = d + 1
    centroid = np.empty(d)
    trial = np.empty(d)
    trial2 = np.empty(d)
    max_eval = _NM_MAX_EVAL[kind]
    while n_eval < max_eval:
        lo = 0
        hi = 0
        for i in range(1, d + 1):
            if fval[i] < fval[lo]:
                lo = i
            if fval[i] > fval[hi]:
                hi = i
        nh = lo
        for i in range(d + 1):
            if i != hi and fval[i] > fval[nh]:
                nh = i
        if fval[hi] - fval[lo] <= _NM_FTOL * (abs(fval[lo]) + 1e-300):
            break
        spread = 0.0
        for i in range(d + 1):
            for j in range(d):
                spread = max(spread, abs(simplex[i, j] - simplex[lo, j]))
        if spread < _NM_XTOL:
            break
        for j in range(d):
            c = 0.0
            for i in range(d + 1):
                if i != hi:
                    c += simplex[i, j]
            centroid[j] = c / d
        for j in range(d):
            trial[j] = centroid[j] + (centroid[j] - simplex[hi, j])
        _clip01(trial)
        fr = _objective(y, trial, kind)
        n_eval += 1
        if fr < fval[lo]:
            for j in range(d):
                trial2[j] = centroid[j] + 2.0 * (centroid[j] - simplex[hi, j])
            _clip01(trial2)
            fe = _objective(y, trial2, kind)
            n_eval += 1
            if fe < fr:
                for j in range(d):
                    simplex[hi, j] = trial2[j]
                fval[hi] = fe
            else:
                for j in range(d):
                    simplex[hi, j] = trial[j]
                fval[hi] = fr
        elif fr < fval[nh]:
            for j in range(d):
                simplex[hi, j] = trial[j]
            fval[hi] = fr
        else:
            if fr < fval[hi]:
                for j in range(d):
                    trial2[j] = centroid[j] + 0.5 * (trial[j] - centroid[j])
            else:
                for j in range(d):
                    trial2[j] = centroid[j] + 0.5 * (simplex[hi, j] - centroid[j])
            fc = _objective(y, trial2, kind)
            n_eval += 1
            if fc < min(fr, fval[hi]):
                for j in range(d):
                    simplex[hi, j] = trial2[j]
                fval[hi] = fc
            else:
                for i in range(d + 1):
                    if i == lo:
                        continue
                    for j in range(d):
                        simplex[i, j] = simplex[lo, j] + 0.5 * (simplex[i, j] - simplex[lo, j])
                    fval[i] = _objective(y, simplex[i], kind)
                n_eval += d
    best = 0
    for i in range(1, d + 1):
        if fval[i] < fval[best]:
            best = i
    x = np.empty(d)
    for j in range(d):
        x[j] = simplex[best, j]
    return x, fval[best]


@numba.njit(inline="always", error_model="numpy")  # one call site, in _fit_all
def _golden_alpha(y: np.ndarray) -> tuple:
    """Simple smoothing: coarse grid over alpha then golden-section search in the best bracket."""
    p = np.empty(1)
    n_grid = 11
    best_i = 0
    best_f = np.inf
    grid_f = np.empty(n_grid)
    for i in range(n_grid):
        p[0] = i / (n_grid - 1.0)
        grid_f[i] = _objective(y, p, 0)
        if grid_f[i] < best_f:
            best_f = grid_f[i]
            best_i = i
    lo = max(best_i - 1, 0) / (n_grid - 1.0)
    hi = min(best_i + 1, n_grid - 1) / (n_grid - 1.0)
    g = 0.6180339887498949
    a = hi - g * (hi - lo)
    b = lo + g * (hi - lo)
    p[0] = a
    fa = _objective(y, p, 0)
    p[0] = b
    fb = _objective(y, p, 0)
    for _ in range(40):
        if hi - lo < 1e-5:
            break
        if fa < fb:
            hi = b
            b = a
            fb = fa
            a = hi - g * (hi - lo)
            p[0] = a
            fa = _objective(y, p, 0)
        else:
            lo = a
            a = b
            fa = fb
            b = lo + g * (hi - lo)
            p[0] = b
            fb = _objective(y, p, 0)
    x = a if fa < fb else b
    fx = min(fa, fb)
    if best_f < fx:  # the grid point itself (e.g. alpha exactly 0 or 1) can be the optimum
        x = best_i / (n_grid - 1.0)
        fx = best_f
    return x, fx


# Start points: a coarse grid for Holt; the damped fit starts from the Holt optimum at a few
# phi values plus a small grid, which costs far fewer SSE passes than a 3-D grid.
# alpha = 0 is in the grids: a deterministic trend is a common optimum the simplex cannot reach
# from the interior once it shrinks around a local minimum.
_HOLT_A = np.array([0.0, 0.15, 0.5, 1.0])
_HOLT_B = np.array([0.0, 0.1, 0.4, 1.0])
_DAMP_PHI = np.array([0.8, 0.9, 0.98, 1.0])
_DAMP_A = np.array([0.0, 0.2, 0.6, 1.0])
_DAMP_B = np.array([0.05, 0.3])
_DAMP_GRID_PHI = np.array([0.85, 0.97])


@numba.njit(inline="always", error_model="numpy")  # one call site, in _fit_all
def _fit_trend(y: np.ndarray, kind: int, holt_alpha: float, holt_beta: float) -> tuple:
    """Holt (kind 1, phi = 1) or damped trend (kind 2): the best start point of a small grid,
    then a bounded Nelder-Mead restarted once; never worse than the grid.

    The damped search also starts from the Holt optimum (``holt_alpha``, ``holt_beta``; NaN
    when Holt was not fitted) at a few phi values.
    """
    d = kind + 1
    p = np.empty(d)
    best = np.empty(d)
    best_f = np.inf
    if kind == 1:
        for i in range(_HOLT_A.shape[0]):
            for j in range(_HOLT_B.shape[0]):
                p[0] = _HOLT_A[i]
                p[1] = _HOLT_B[j]
                f = _objective(y, p, 1)
                if f < best_f:
                    best_f = f
                    best[0] = p[0]
                    best[1] = p[1]
    else:
        if holt_alpha == holt_alpha:
            for k in range(_DAMP_PHI.shape[0]):
                p[0] = holt_alpha
                p[1] = holt_beta
                p[2] = _DAMP_PHI[k]
                f = _objective(y, p, 2)
                if f < best_f:
                    best_f = f
                    best[0] = p[0]
                    best[1] = p[1]
                    best[2] = p[2]
        for i in range(_DAMP_A.shape[0]):
            for j in range(_DAMP_B.shape[0]):
                for k in range(_DAMP_GRID_PHI.shape[0]):
                    p[0] = _DAMP_A[i]
                    p[1] = _DAMP_B[j]
                    p[2] = _DAMP_GRID_PHI[k]
                    f = _objective(y, p, 2)
                    if f < best_f:
                        best_f = f
                        best[0] = p[0]
                        best[1] = p[1]
                        best[2] = p[2]
    # one restart from the end point: the standard remedy for a simplex that collapsed early
    # (clipping to the box flattens a simplex that hits a bound)
    x = best
    fx = np.inf
    for restart in range(2):
        xr, fr = _nelder_mead(y, x, 0.1 if restart == 0 else 0.05, kind)
        if restart == 0 or fr < fx:
            x = xr
            fx = fr
    if best_f < fx:
        return best, best_f
    return x, fx


@numba.njit("void(float64[:, ::1], boolean[::1], int64[::1], int64[::1], float64[:, ::1], "
            "float64[:, :, ::1], float64[:, :, ::1])", cache=True, nogil=True, error_model="numpy")
def _fit_all(y2: np.ndarray, use: np.ndarray, min_obs: np.ndarray, only: np.ndarray,
             start: np.ndarray, out_p: np.ndarray, out_s: np.ndarray) -> None:
    """Fit every allowed method to every series (rows of y2) into ``out_p`` and ``out_s``.

    ``out_p[s, kind]`` receives (alpha, beta, phi) and ``out_s[s, kind]`` (sse, l0, b0,
    level_T, trend_T); the caller fills both with NaN, which stays where a method is not fitted.
    ``only[s] >= 0`` restricts series s to that method; a finite ``start[s]`` (alpha, beta,
    phi) replaces the grid by a Nelder-Mead from that point (warm start for re-fits).
    """
    n_series = y2.shape[0]
    n_steps = y2.shape[1]
    yc = np.empty(n_steps)
    for s in range(n_series):
        n = 0
        shift = np.nan
        for t in range(n_steps):
            if y2[s, t] == y2[s, t]:
                if n == 0:
                    shift = y2[s, t]
                n += 1
        if n == 0:
            continue
        # ETS is shift-equivariant: centring on the first value keeps the normal equations
        # well conditioned for series far from zero (CO2 ppm, LST in kelvin)
        for t in range(n_steps):
            yc[t] = y2[s, t] - shift
        holt_a = np.nan
        holt_b = np.nan
        warm = start[s, 0] == start[s, 0]
        for kind in range(3):
            if not use[kind] or n < min_obs[kind] or (only[s] >= 0 and kind != only[s]):
                continue
            if kind == 0:
                a, _ = _golden_alpha(yc)
                b = 0.0
                ph = 0.0
            elif warm:
                x0 = np.empty(kind + 1)
                for j in range(kind + 1):
                    x0[j] = start[s, j]
                f0 = _objective(yc, x0, kind)
                x, fx = _nelder_mead(yc, x0, 0.05, kind)
                if f0 < fx:
                    x = x0
                a = x[0]
                b = x[1]
                ph = x[2] if kind == 2 else 1.0
            else:
                x, _ = _fit_trend(yc, kind, holt_a, holt_b)
                a = x[0]
                b = x[1]
                ph = x[2] if kind == 2 else 1.0
                if kind == 1:
                    holt_a = a
                    holt_b = b
            # one call site: the SSE pass is compiled into this kernel once
            res = _concentrated_sse(yc, a, b, ph, kind >= 1)
            out_p[s, kind, 0] = a
            out_p[s, kind, 1] = b
            out_p[s, kind, 2] = ph
            out_s[s, kind, 0] = res[0]
            out_s[s, kind, 1] = res[1] + shift
            out_s[s, kind, 2] = res[2]
            out_s[s, kind, 3] = res[3] + shift
            out_s[s, kind, 4] = res[4]


def _fit_parallel(y2: np.ndarray, use: np.ndarray, min_obs: np.ndarray, only: np.ndarray,
                  start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run ``_fit_all`` on chunks of series in threads (the kernel releases the GIL).

    Threads over a plain compiled kernel rather than numba's ``parallel=True``: the parfor
    version took minutes to compile on a cold cache, this one seconds, at the same speed.
    """
    from concurrent.futures import ThreadPoolExecutor

    n = y2.shape[0]
    out_p = np.full((n, 3, 3), np.nan)  # alpha, beta, phi per method
    out_s = np.full((n, 3, 5), np.nan)  # sse, l0, b0, level_T, trend_T per method
    workers = max(1, min(numba.config.NUMBA_NUM_THREADS, os.cpu_count() or 1))  # type: ignore[attr-defined]
    if n < 256 or workers == 1:
        _fit_all(y2, use, min_obs, only, start, out_p, out_s)
        return out_p, out_s
    # more chunks than threads so a chunk of slow (long, trending) series does not idle a core
    bounds = np.linspace(0, n, 4 * workers + 1).astype(int)

    def work(i: int) -> None:
        a, b = bounds[i], bounds[i + 1]
        _fit_all(y2[a:b], use, min_obs, only[a:b], start[a:b], out_p[a:b], out_s[a:b])

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(work, range(len(bounds) - 1)))
    return out_p, out_s


# compiled on first use only: smooth_fixed is not on the forecast stage's path
@numba.njit(cache=True, nogil=True)
def _filter_known(y: np.ndarray, alpha: float, beta: float, phi: float, l0: float,
                  b0: float, trend: bool) -> tuple:
    """Run the recursion from known initial states; returns one-step fitted values and states."""
    n = y.shape[0]
    fitted = np.empty(n)
    lvl = l0
    b = b0 if trend else 0.0
    ph = phi if trend else 0.0
    for t in range(n):
        f = lvl + ph * b
        fitted[t] = f
        if y[t] == y[t]:
            e = y[t] - f
            lvl = f + alpha * e
            b = ph * b + alpha * beta * e
        else:
            lvl = f
            b = ph * b
    return fitted, lvl, b


# ---------------------------------------------------------------------------------------------
# public API


def _as_2d(y: np.ndarray) -> np.ndarray:
    arr = np.asarray(y, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[np.newaxis]
    if arr.ndim != 2:
        raise ConfigError(f"series array must be 1-D or 2-D (series x steps), got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def fit_ets(
    y: np.ndarray,
    methods: tuple[str, ...] = METHODS,
    *,
    min_obs: int = 3,
    only_method: np.ndarray | None = None,
    start: EtsFit | None = None,
) -> EtsFit:
    """Fit simple, Holt and damped exponential smoothing to every series; keep the best by AICc.

    Parameters
    ----------
    y
        Series x steps (or one 1-D series), equally spaced; NaN marks a missing step (the
        states propagate through it without an update).
    methods
        Candidate methods among ``METHODS``.
    min_obs
        Series with fewer observed steps are not fitted (method -1, NaN parameters).
    only_method
        Per series, a method index to fit alone (-1: all candidates), e.g. to re-fit the
        chosen method on a training window.
    start
        A previous fit whose parameters start the search (no grid): a warm start for re-fits
        of nearly the same series.

    Returns
    -------
    EtsFit
        Parameters by least squares (SSE of one-step errors) over the whole unit box for
        alpha, beta* and phi, 0 and 1 included, with initial states estimated jointly. The
        method with the smallest AICc wins; a method whose AICc is undefined for the series
        length (n <= n_params + 1) is a candidate only when no method has a finite AICc, in
        which case the one with fewest parameters is used.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ConfigError(
            f"unknown forecast method(s) {unknown or list(methods)}; choose from {', '.join(METHODS)}"
        )
    arr = _as_2d(y)
    use = np.array([m in methods for m in METHODS])
    min_by_kind = np.array([max(min_obs, 2), max(min_obs, 3), max(min_obs, 4)], dtype=np.int64)
    # a method whose AICc is undefined (n <= k + 1) can never win against one with a finite
    # AICc, so only the simplest candidate is fitted on such short series (saves the costly
    # damped search on 7-summer cities)
    first = int(np.argmax(use))
    for kind in range(first + 1, 3):
        min_by_kind[kind] = max(min_by_kind[kind], _N_PARAMS[kind] + 2)
    n_series = arr.shape[0]
    only = (np.full(n_series, -1, dtype=np.int64) if only_method is None
            else np.ascontiguousarray(only_method, dtype=np.int64))
    if start is None:
        start_p = np.full((n_series, 3), np.nan)
    else:
        start_p = np.column_stack([start.alpha, start.beta, start.phi]).astype(np.float64)
        start_p[start.method <= 0] = np.nan
    out_p, out_s = _fit_parallel(arr, use, min_by_kind, only, np.ascontiguousarray(start_p))
    n_obs = np.sum(~np.isnan(arr), axis=1)
    sse = out_s[:, :, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        n = n_obs[:, None].astype(float)
        # -2 log L of Gaussian one-step errors at the ML variance SSE/n (Hyndman et al. 2008, 7.1);
        # a perfect fit (SSE 0) is floored so log stays finite
        m2ll = n * (np.log(2 * np.pi * np.maximum(sse, 1e-300) / n) + 1.0)
        k = _N_PARAMS[None, :].astype(float)
        dof = n - k - 1.0
        aicc = np.where(dof > 0, m2ll + 2 * k + 2 * k * (k + 1) / np.where(dof > 0, dof, 1.0), np.inf)
    aicc = np.where(np.isnan(sse), np.nan, aicc)
    finite = np.isfinite(aicc)
    choice = np.where(finite, aicc, np.inf).argmin(axis=1)
    # no finite AICc: the fitted method with fewest parameters
    fitted_any = ~np.isnan(sse)
    fallback = np.where(fitted_any.any(axis=1), fitted_any.argmax(axis=1), -1)
    method = np.where(finite.any(axis=1), choice, fallback).astype(np.int64)
    rows = np.arange(arr.shape[0])
    pick = np.maximum(method, 0)

    def take(a: np.ndarray) -> np.ndarray:
        return np.where(method >= 0, a[rows, pick], np.nan)

    chosen_sse = take(sse)
    k_chosen = _N_PARAMS[pick]
    denom = np.where(n_obs - k_chosen > 0, n_obs - k_chosen, n_obs).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        sigma2 = np.where(method >= 0, chosen_sse / np.maximum(denom, 1.0), np.nan)
    return EtsFit(
        method=method,
        alpha=take(out_p[:, :, 0]),
        beta=take(out_p[:, :, 1]),
        phi=take(out_p[:, :, 2]),
        level0=take(out_s[:, :, 1]),
        trend0=take(out_s[:, :, 2]),
        level=take(out_s[:, :, 3]),
        trend=take(out_s[:, :, 4]),
        sse=chosen_sse,
        n_obs=n_obs,
        aicc=take(aicc),
        sigma2=sigma2,
    )


def smooth_fixed(
    y: np.ndarray,
    *,
    alpha: float,
    beta: float = 0.0,
    phi: float = 1.0,
    level0: float,
    trend0: float = 0.0,
    trend: bool = True,
    horizon: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Run one series through fixed parameters and initial states.

    Returns
    -------
    fitted, forecast
        One-step fitted values (length of y) and the ``horizon`` forecasts after the last step.
    """
    arr = np.ascontiguousarray(np.asarray(y, dtype=np.float64))
    fitted, lvl, b = _filter_known(arr, alpha, beta, phi, level0, trend0, trend)
    fc = forecast_mean(np.array([lvl]), np.array([b if trend else 0.0]),
                       np.array([phi if trend else 0.0]), horizon)[0]
    return fitted, fc


def _damped_sums(phi: np.ndarray, horizon: int) -> np.ndarray:
    """phi_h = phi + phi^2 + ... + phi^h for h = 1..horizon (series x horizon)."""
    powers = np.asarray(phi, dtype=float)[:, None] ** np.arange(1, horizon + 1)[None, :]
    return np.cumsum(powers, axis=1)


def forecast_mean(level: np.ndarray, trend: np.ndarray, phi: np.ndarray, horizon: int) -> np.ndarray:
    """Point forecasts l_T + phi_h b_T for h = 1..horizon (series x horizon).

    Simple smoothing is phi = 0 (flat), Holt phi = 1 (linear), damped 0 < phi < 1.
    """
    if horizon <= 0:
        return np.empty((np.asarray(level).shape[0], 0))
    tr = np.nan_to_num(np.asarray(trend, dtype=float))
    return np.asarray(level, dtype=float)[:, None] + _damped_sums(np.nan_to_num(phi), horizon) * tr[:, None]


def forecast_variance(fit: EtsFit, horizon: int) -> np.ndarray:
    """h-step forecast variances from the ETS(A,N,N), (A,A,N) and (A,Ad,N) formulas.

    Hyndman et al. (2008), Table 6.1 (class 1): v_h = sigma^2 [1 + sum_{j=1}^{h-1} c_j^2] with
    c_j = alpha (A,N,N), alpha + beta j (A,A,N) and alpha + beta phi_j (A,Ad,N), where beta is
    the error-correction gain alpha * beta* and phi_j = phi + ... + phi^j.
    """
    if horizon <= 0:
        return np.empty((fit.method.shape[0], 0))
    alpha = np.nan_to_num(fit.alpha)[:, None]
    gain_b = (np.nan_to_num(fit.alpha) * np.nan_to_num(fit.beta))[:, None]
    phi = np.where(fit.method == 0, 0.0, np.nan_to_num(fit.phi))
    c = alpha + gain_b * _damped_sums(phi, max(horizon - 1, 1))[:, : horizon - 1]
    c = np.where((fit.method == 0)[:, None], alpha, c)
    cum = np.concatenate([np.zeros((c.shape[0], 1)), np.cumsum(c**2, axis=1)], axis=1)
    var = fit.sigma2[:, None] * (1.0 + cum[:, :horizon])
    return np.where((fit.method >= 0)[:, None], var, np.nan)


def prediction_interval(
    fit: EtsFit, horizon: int, *, coverage: float = 0.9
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, lower and upper bounds of Gaussian prediction intervals (series x horizon)."""
    if not 0 < coverage < 1:
        raise ConfigError(f"interval coverage must be in (0, 1), got {coverage}; e.g. 0.9")
    phi = np.where(fit.method == 0, 0.0, fit.phi)
    mean = forecast_mean(fit.level, np.where(fit.method == 0, 0.0, fit.trend), phi, horizon)
    mean = np.where((fit.method >= 0)[:, None], mean, np.nan)
    z = statistics.NormalDist().inv_cdf(0.5 + coverage / 2)  # stdlib: scipy.stats imports slowly
    half = z * np.sqrt(forecast_variance(fit, horizon))
    return mean, mean - half, mean + half


@dataclass(frozen=True)
class SeriesForecast:
    """Forecasts, intervals and hold-out validation of many series.

    Attributes
    ----------
    fit
        The fit on the whole series (the forecasts' origin).
    mean, lower, upper
        Series x horizon point forecasts and prediction-interval bounds (NaN when not fitted).
    rmse
        Per series RMSE of the hold-out forecasts (the last ``holdout`` steps forecast by a
        fit on the steps before them); NaN when not validated.
    status
        'ok', 'too_few_points' (fewer observed steps than ``min_points``), 'no_data', or
        'failed' (fitted, but the forecasts came out non-finite: values so large that the sums
        of squares overflow float64, e.g. 1e308; the forecasts are then NaN).
    horizon, holdout, coverage
        What was asked.
    """

    fit: EtsFit
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    rmse: np.ndarray
    status: np.ndarray
    horizon: int
    holdout: int
    coverage: float


def check_horizon(horizon: int, n_steps: int, *, name: str = "forecast.horizon") -> None:
    """Refuse a horizon longer than half the series (forecasts beyond that are mostly noise)."""
    cap = n_steps // 2
    if horizon < 1:
        raise ConfigError(f"{name} must be at least 1, got {horizon}")
    if horizon > cap:
        raise ConfigError(
            f"{name} {horizon} is more than half the series length ({n_steps} steps, so at most "
            f"{cap}); lower {name} or give a longer series"
        )


def forecast_series(
    y: np.ndarray,
    horizon: int,
    *,
    holdout: int = 2,
    coverage: float = 0.9,
    methods: tuple[str, ...] = METHODS,
    min_points: int = 4,
) -> SeriesForecast:
    """Fit, forecast with intervals and validate every series (rows of ``y``).

    Parameters
    ----------
    y
        Series x steps on a regular grid; NaN marks missing steps.
    horizon
        Steps ahead; at most half the number of steps (``ConfigError`` otherwise).
    holdout
        Last steps held out for validation (0 skips it).
    coverage
        Prediction interval coverage (0.9 = 90 %).
    methods
        Candidate methods; the one with the smallest AICc is kept per series.
    min_points
        Series with fewer observed steps are reported as 'too_few_points' and not fitted.
    """
    arr = _as_2d(y)
    n_steps = arr.shape[1]
    check_horizon(horizon, n_steps)
    if holdout < 0 or holdout >= n_steps:
        raise ConfigError(
            f"forecast.holdout {holdout} must be between 0 and the series length minus one ({n_steps - 1})"
        )
    min_points = max(int(min_points), 2)
    fit = fit_ets(arr, methods, min_obs=min_points)
    mean, lower, upper = prediction_interval(fit, horizon, coverage=coverage)
    n_obs = fit.n_obs
    bounds_ok = np.isfinite(mean).all(axis=1) & np.isfinite(lower).all(axis=1) & np.isfinite(upper).all(axis=1)
    failed = (n_obs >= min_points) & ~bounds_ok
    status = np.where(
        n_obs == 0, "no_data", np.where(n_obs < min_points, "too_few_points", np.where(failed, "failed", "ok"))
    )
    if failed.any():
        log.warning(
            "%d series could not be fitted (non-finite forecasts: values too large for float64 "
            "sums of squares?); their status is 'failed'", int(failed.sum())
        )
        mean, lower, upper = (np.where(failed[:, None], np.nan, a) for a in (mean, lower, upper))
    rmse = np.full(arr.shape[0], np.nan)
    if holdout > 0:
        train = arr[:, : n_steps - holdout]
        test = arr[:, n_steps - holdout :]
        # validate the method chosen on the whole series, warm-started from its parameters
        vfit = fit_ets(train, methods, min_obs=min_points, only_method=fit.method, start=fit)
        vmean = forecast_mean(
            vfit.level,
            np.where(vfit.method == 0, 0.0, vfit.trend),
            np.where(vfit.method == 0, 0.0, vfit.phi),
            holdout,
        )
        err2 = (vmean - test) ** 2
        n_err = np.sum(np.isfinite(err2), axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            rmse = np.where(
                (vfit.method >= 0) & (n_err > 0),
                np.sqrt(np.nansum(err2, axis=1) / np.maximum(n_err, 1)),
                np.nan,
            )
    rmse = np.where(failed, np.nan, rmse)
    return SeriesForecast(fit, mean, lower, upper, rmse, status, horizon, holdout, coverage)

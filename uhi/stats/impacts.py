"""Direct, indirect and total impacts of a spatial lag model (LeSage & Pace 2009, ch. 2.7)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from uhi.stats.spatial import DENSE_MAX_N, LogDeterminant, solve_spatial

__all__ = ["lag_multipliers", "lag_impacts", "trace_series_tail"]

# terms summed past the last trace: rho^k < 1e-12 for |rho| <= 0.999 long before (k ~ 27,600)
_TAIL_TERMS = 30_000


def trace_series_tail(t: np.ndarray, rho: float) -> float:
    """sum_{k > L} rho^k tr(W^k) beyond the last computed trace tr(W^L).

    Truncating tr(S) = sum_k rho^k tr(W^k) after L = 60 terms leaves out rho^61 / (1 - rho)
    times a slowly decaying trace: 0.24 % of the direct multiplier at rho = 0.95 on a knn:8
    grid of 1,521 cells, and holding tr(W^k) at its last value (the Barry & Pace 1999
    log-determinant tail) overshoots by 0.05 %. The return probability of a random walk on a
    spatial graph decays like a power of k, so tr(W^k) is extrapolated as
    tr(W^m) (m / k)^a with a fitted on the traces at m and about m / 2; on that grid it leaves
    an error of 3e-5 in the direct multiplier (1.44) at rho = 0.95 (tests: a dense inverse). Even and odd
    powers are extrapolated separately, so a bipartite W (rook contiguity on a regular lattice,
    zero odd traces) gets no odd tail. Cf. LeSage & Pace (2009, ch. 4.1-4.2) on the trace
    series and its truncation error.
    """
    order = len(t) - 1
    if order < 8 or rho == 0.0:
        return 0.0
    total = 0.0
    k = np.arange(order + 1, order + 1 + _TAIL_TERMS, dtype=np.float64)
    for last in (order, order - 1):
        mid = last - 2 * (last // 4)  # about last / 2, of the same parity
        t_last, t_mid = float(t[last]), float(t[mid])
        if t_last <= 0.0:
            continue  # (estimated) traces of this parity vanish: nothing to extrapolate
        a = max(float(np.log(t_mid / t_last) / np.log(last / mid)), 0.0) if t_mid > 0 else 0.0
        same = k[(k - last) % 2 == 0]
        # rho^k (last / k)^a in logs: rho^k alone underflows to 0 harmlessly, never overflows
        terms = np.sign(rho) ** same * np.exp(same * np.log(abs(rho)) + a * np.log(last / same))
        total += t_last * float(np.sum(terms))
    return total


def lag_multipliers(
    rho: float, w: sp.csr_matrix, *, logdet: LogDeterminant | None = None
) -> tuple[float, float]:
    """Average direct and total multipliers of S = (I - rho W)^-1.

    direct = tr(S) / n and total = 1'S1 / n. Exact with a dense inverse up to DENSE_MAX_N;
    above, tr(S) = sum_k rho^k tr(W^k) from the power traces (LeSage & Pace 2009, eq. 4.30)
    plus the series' tail beyond the last trace (:func:`trace_series_tail`), and 1'S1 from one
    sparse solve (exactly 1 / (1 - rho) when no row of W is empty).
    """
    n = w.shape[0]
    if n <= DENSE_MAX_N:
        s = np.linalg.inv(np.eye(n) - rho * w.toarray())
        return float(np.trace(s)) / n, float(s.sum()) / n
    ld = logdet if logdet is not None else LogDeterminant(w, method="traces")
    t = ld.traces
    powers = rho ** np.arange(len(t))
    direct = (float(np.sum(powers * t)) + trace_series_tail(t, rho)) / n
    row_sums = np.asarray(w.sum(axis=1)).ravel()
    if np.allclose(row_sums, 1.0):
        total = 1.0 / (1.0 - rho)  # (I - rho W) 1 = (1 - rho) 1 when every row sums to one
    else:  # islands: their rows of W are empty
        total = float(np.mean(solve_spatial(w, rho, np.ones(n), lu=ld.lu(rho))))
    return direct, total


def lag_impacts(
    rho: float,
    coefficients: np.ndarray,
    names: Sequence[str],
    w: sp.csr_matrix,
    *,
    logdet: LogDeterminant | None = None,
) -> dict[str, dict[str, float]]:
    """Impacts per regressor (the constant excluded): name -> {direct, indirect, total}."""
    direct_m, total_m = lag_multipliers(rho, w, logdet=logdet)
    out: dict[str, dict[str, float]] = {}
    for name, beta in zip(names, coefficients, strict=True):
        if name == "const":
            continue
        direct = float(beta) * direct_m
        total = float(beta) * total_m
        out[name] = {"direct": direct, "indirect": total - direct, "total": total}
    return out

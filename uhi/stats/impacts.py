"""Direct, indirect and total impacts of a spatial lag model (LeSage & Pace 2009, ch. 2.7)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from uhi.stats.spatial import DENSE_MAX_N, LogDeterminant, solve_spatial

__all__ = ["lag_multipliers", "lag_impacts"]


def lag_multipliers(
    rho: float, w: sp.csr_matrix, *, logdet: LogDeterminant | None = None
) -> tuple[float, float]:
    """Average direct and total multipliers of S = (I - rho W)^-1.

    direct = tr(S) / n and total = 1'S1 / n. Exact with a dense inverse up to DENSE_MAX_N;
    above, tr(S) = sum_k rho^k tr(W^k) from the power traces (LeSage & Pace 2009, eq. 4.30)
    and 1'S1 from one sparse solve (exactly 1 / (1 - rho) when no row of W is empty).
    """
    n = w.shape[0]
    if n <= DENSE_MAX_N:
        s = np.linalg.inv(np.eye(n) - rho * w.toarray())
        return float(np.trace(s)) / n, float(s.sum()) / n
    ld = logdet if logdet is not None else LogDeterminant(w, method="traces")
    t = ld.traces
    powers = rho ** np.arange(len(t))
    direct = float(np.sum(powers * t)) / n
    if rho > 0:
        # remaining terms with tr(W^k) held at its last value, as in the log-determinant
        direct += float(t[-1]) * float(rho ** len(t) / (1.0 - rho)) / n
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

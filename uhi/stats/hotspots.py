"""Getis-Ord Gi* hot and cold spots with FDR-corrected p-values and 90/95/99 % classes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy import stats

from uhi.errors import InputError

__all__ = ["HotspotResult", "gi_star", "benjamini_hochberg", "classify_hotspots", "hotspots"]

# ArcGIS Hot Spot Analysis bins: +-3 at 99 %, +-2 at 95 %, +-1 at 90 % confidence
_LEVELS = ((0.01, 3), (0.05, 2), (0.10, 1))
CLASS_LABELS = {
    3: "hot 99%",
    2: "hot 95%",
    1: "hot 90%",
    0: "not significant",
    -1: "cold 90%",
    -2: "cold 95%",
    -3: "cold 99%",
}


@dataclass(frozen=True)
class HotspotResult:
    """Per-observation Gi* outcome.

    Attributes
    ----------
    z
        Gi* z-scores (positive: high values cluster).
    p
        Two-sided p-values (normal, or folded permutation p-values when permutations > 0).
    q
        Benjamini-Hochberg adjusted p-values (equal to p when FDR is off). z, p and q are NaN
        for islands (cells without neighbours), whose class is 0.
    klass
        -3..3: cold/hot at 99/95/90 % confidence, 0 not significant.
    """

    z: np.ndarray
    p: np.ndarray
    q: np.ndarray
    klass: np.ndarray


def gi_star(values: np.ndarray, binary: sp.csr_matrix) -> np.ndarray:
    """Gi* z-scores with binary weights and the cell itself included (Ord & Getis 1995).

    Vectorised closed form; identical to esda ``G_Local(y, w, transform='B', star=True).Zs``.
    """
    x = np.asarray(values, dtype=float)
    n = x.size
    if n < 3:
        raise InputError(f"Gi* needs at least 3 observations, got {n}")
    wstar = sp.csr_matrix(binary, dtype=float, copy=True)
    wstar.setdiag(1.0)
    wi = np.asarray(wstar.sum(axis=1)).ravel()
    s1i = np.asarray(wstar.multiply(wstar).sum(axis=1)).ravel()
    xbar = float(x.mean())
    s = float(np.sqrt((x * x).mean() - xbar * xbar))
    if s == 0:
        raise InputError("Gi* needs a variable that varies; every value is the same")
    num = np.asarray(wstar @ x) - xbar * wi
    den = s * np.sqrt((n * s1i - wi * wi) / (n - 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(den > 0, num / den, 0.0)
    return z


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg (1995) adjusted p-values: reject where q <= alpha controls the FDR."""
    p = np.asarray(p, dtype=float)
    n = p.size
    order = np.argsort(p)
    ranked = p[order] * n / np.arange(1, n + 1)
    q_sorted = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(n)
    q[order] = np.minimum(q_sorted, 1.0)
    return q


def classify_hotspots(z: np.ndarray, p: np.ndarray) -> np.ndarray:
    """-3..3 classes from z signs and (adjusted) two-sided p-values."""
    klass = np.zeros(z.size, dtype=np.int8)
    for alpha, level in reversed(_LEVELS):
        klass[p <= alpha] = level
    return np.where(z >= 0, klass, -klass).astype(np.int8)


def hotspots(
    values: np.ndarray,
    binary: sp.csr_matrix,
    *,
    permutations: int = 0,
    fdr: bool = True,
    seed: int = 0,
) -> HotspotResult:
    """Gi* hot/cold spots of a variable on binary weights.

    Parameters
    ----------
    values
        The variable (LST or its anomaly), no NaN.
    binary
        Binary weights without self links (Gi* adds the cell itself).
    permutations
        0 for normal p-values; else esda's conditional permutation p-values (one-sided,
        folded to two-sided by doubling).
    fdr
        Correct for multiple tests with Benjamini-Hochberg (as esda.fdr).
    seed
        Seed for permutations.
    """
    x = np.asarray(values, dtype=float)
    if not np.isfinite(x).all():
        raise InputError("Gi* values contain NaN; drop those cells first")
    z = gi_star(x, binary)
    if permutations > 0:
        p = _permutation_p(x, binary, permutations, seed)
    else:
        p = 2.0 * stats.norm.sf(np.abs(z))
    # an island has no neighbourhood to compare: no test, no class, and no share of the FDR
    island = np.diff(sp.csr_matrix(binary).indptr) == 0
    z = np.where(island, np.nan, z)
    p = np.where(island, np.nan, p)
    q = p.copy()
    if fdr and (~island).any():
        q[~island] = benjamini_hochberg(p[~island])
    klass = classify_hotspots(np.nan_to_num(z), np.where(island, 1.0, q))
    return HotspotResult(z=z, p=p, q=q, klass=klass)


def _permutation_p(x: np.ndarray, binary: sp.csr_matrix, permutations: int, seed: int) -> np.ndarray:
    import warnings

    from esda import G_Local
    from libpysal.weights import WSP

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = WSP(sp.csr_matrix(binary)).to_W(silence_warnings=True)
        g = G_Local(x, w, transform="B", star=True, permutations=permutations, seed=seed)
    return np.minimum(1.0, 2.0 * np.asarray(g.p_sim, dtype=float))

"""Budget allocation against a fitted spatial model: marginal benefits, greedy allocation, delta-method interval."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = [
    "SpatialSolver",
    "MarginalBenefits",
    "marginal_benefits",
    "allocate",
    "fill_in_order",
    "budget_curve",
    "benefit_interval",
]

# Largest n solved by a sparse LU; above, the Neumann series. The same threshold as the
# scenario's prediction (uhi.scenario.predict_lst_change), so plan and scenario take the same path.
EXACT_MAX_N = 20_000
_SERIES_TOL = 1e-13
_SERIES_MAX_ITER = 5000


class SpatialSolver:
    """Solves with A = I - rho W and its transpose, W row-standardised, |rho| < 1.

    Up to ``exact_max_n`` rows (or for |rho| >= 0.95) one sparse LU factorisation of A serves
    both ``A x = v`` and ``A' x = v`` (``trans='T'``). Above, the Neumann series
    sum_k rho^k W^k v (or (W')^k for the transpose), which converges geometrically because
    ||rho W||_inf = |rho| < 1 for a row-standardised W (LeSage & Pace 2009, sec. 2.7) and
    ||rho W'||_1 = |rho| likewise. The scenario makes the same choice at the same n.
    """

    def __init__(self, w: sp.spmatrix, rho: float, *, exact_max_n: int = EXACT_MAX_N) -> None:
        self.w = sp.csr_matrix(w)
        self.rho = float(rho)
        self.n = self.w.shape[0]
        self.exact = self.n <= exact_max_n or abs(self.rho) >= 0.95
        self._lu: object | None = None
        self._wt: sp.csr_matrix | None = None

    def _factor(self) -> object:
        if self._lu is None:
            from scipy.sparse.linalg import splu

            a = (sp.identity(self.n, format="csc") - self.rho * self.w.tocsc()).tocsc()
            # minimum degree on A'+A, as the scenario factorises (less fill-in on kNN graphs)
            self._lu = splu(a, permc_spec="MMD_AT_PLUS_A")
        return self._lu

    def _series(self, m: sp.csr_matrix, v: np.ndarray) -> np.ndarray:
        total = v.astype(float, copy=True)
        term = total.copy()
        scale = float(np.abs(v).max()) if v.size else 0.0
        if scale == 0.0:
            return total
        for _ in range(_SERIES_MAX_ITER):
            term = self.rho * (m @ term)
            total += term
            if float(np.abs(term).max()) <= _SERIES_TOL * scale:
                break
        return total

    def solve(self, v: np.ndarray) -> np.ndarray:
        """(I - rho W)^-1 v."""
        v = np.asarray(v, dtype=float)
        if self.exact:
            return np.asarray(self._factor().solve(v))  # type: ignore[attr-defined]
        return self._series(self.w, v)

    def solve_transposed(self, v: np.ndarray) -> np.ndarray:
        """(I - rho W)^-T v."""
        v = np.asarray(v, dtype=float)
        if self.exact:
            return np.asarray(self._factor().solve(v, trans="T"))  # type: ignore[attr-defined]
        if self._wt is None:
            self._wt = self.w.T.tocsr()
        return self._series(self._wt, v)


@dataclass(frozen=True)
class MarginalBenefits:
    """Benefit of one unit of change of one covariate in each cell (objective units per unit).

    Attributes
    ----------
    total
        Own plus spill-over: -(b z + theta W'z)_j with z = (I - rho W)^-T p.
    own
        The cell's own direct part, -b p_j (its LST change before any neighbour effect).
    weights_solved
        z = (I - rho W)^-T p (p itself without a spatial lag), kept for the interval.
    """

    total: np.ndarray
    own: np.ndarray
    weights_solved: np.ndarray


def marginal_benefits(
    p: np.ndarray,
    coefficient: float,
    *,
    lag_coefficient: float = 0.0,
    w: sp.spmatrix | None = None,
    solver: SpatialSolver | None = None,
) -> MarginalBenefits:
    """Benefit per unit change of a covariate in every cell at once, exactly.

    The model predicts dLST = S (b d + theta W d) for a change vector d, with S = (I - rho W)^-1
    for lag models and S = I otherwise (LeSage & Pace 2009, eq. 2.13). The objective's
    benefit is the cooling -p' dLST, which is linear in d:
    -p' S (b d + theta W d) = d' m with m = -(b S'p + theta W' S'p). One transposed solve
    gives S'p for all cells, instead of one solve per cell.

    Parameters
    ----------
    p
        Objective weight per cell (people, group counts or area shares), length n.
    coefficient
        Slope b of the changed covariate, degrees C per unit.
    lag_coefficient
        Slope theta of its spatial lag W x (SLX), else 0.
    w
        Row-standardised weights; needed when ``lag_coefficient`` is not 0.
    solver
        Solver of the lag model's (I - rho W); None for models without a spatial lag.
    """
    p = np.asarray(p, dtype=float)
    z = solver.solve_transposed(p) if solver is not None else p.copy()
    total = -float(coefficient) * z
    if lag_coefficient:
        if w is None:
            raise ValueError("an SLX term needs the weights matrix w")
        total = total - float(lag_coefficient) * np.asarray(sp.csr_matrix(w).T @ z)
    own = -float(coefficient) * p
    return MarginalBenefits(total=total, own=own, weights_solved=z)


def _ratio_order(benefit: np.ndarray, cost: np.ndarray) -> np.ndarray:
    ratio = benefit / cost
    # stable: ties keep the cells' order, so a plan is reproducible
    return np.argsort(-ratio, kind="stable")


def fill_in_order(cost: np.ndarray, budget: float, order: np.ndarray, *, divisible: bool) -> np.ndarray:
    """Fractions of each option bought when taking options in ``order`` until the budget is spent.

    Divisible options: the last one that does not fit is bought in part. Whole options: one
    that does not fit is skipped and the next ones are tried.
    """
    cost = np.asarray(cost, dtype=float)
    fraction = np.zeros(cost.size)
    if divisible:
        spent = np.cumsum(cost[order])
        full = spent <= budget
        fraction[order[full]] = 1.0
        k = int(full.sum())
        if k < order.size:
            left = budget - (spent[k - 1] if k else 0.0)
            fraction[order[k]] = max(0.0, left / cost[order[k]])
        return fraction
    left = float(budget)
    for i in order:
        if cost[i] <= left:
            fraction[i] = 1.0
            left -= cost[i]
    return fraction


def allocate(benefit: np.ndarray, cost: np.ndarray, budget: float, *, divisible: bool) -> tuple[np.ndarray, str]:
    """Choose options to maximise total benefit under a budget.

    Divisible options (any share of a cell's change can be bought at a proportional cost):
    the fractional knapsack, solved exactly by taking options by benefit per cost and the
    last one in part (Dantzig 1957; Martello & Toth 1990, sec. 2.2.1). Whole options of
    equal cost: the top-k by benefit, also exact. Whole options of unequal cost: the 0-1
    knapsack is NP-hard; the greedy by benefit per cost is used and its result is within one
    option's benefit of the optimum (Martello & Toth 1990, thm. 2.1).

    Parameters
    ----------
    benefit, cost
        Per option; costs must be positive.
    budget
        Money to spend, same unit as ``cost``.
    divisible
        Whether options can be bought in part.

    Returns
    -------
    fraction, method
        Share of each option bought (0..1) and a sentence naming the case that applied.
    """
    benefit = np.asarray(benefit, dtype=float)
    cost = np.asarray(cost, dtype=float)
    if np.any(cost <= 0) or not np.all(np.isfinite(cost)):
        raise ValueError("every option needs a positive, finite cost")
    if divisible:
        order = _ratio_order(benefit, cost)
        return fill_in_order(cost, budget, order, divisible=True), (
            "divisible changes: greedy by benefit per cost with the last cell in part (exact fractional knapsack)"
        )
    if cost.size and np.allclose(cost, cost[0], rtol=1e-12, atol=0):
        k = int(np.floor(budget / cost[0] * (1 + 1e-12)))
        fraction = np.zeros(cost.size)
        fraction[np.argsort(-benefit, kind="stable")[:k]] = 1.0
        return fraction, "whole cells of equal cost: the top-k cells by benefit (exact)"
    order = _ratio_order(benefit, cost)
    return fill_in_order(cost, budget, order, divisible=False), (
        "whole cells of unequal cost: greedy by benefit per cost (0-1 knapsack heuristic; "
        "within one cell's benefit of the optimum)"
    )


def budget_curve(benefit: np.ndarray, cost: np.ndarray, spends: np.ndarray) -> np.ndarray:
    """Best total benefit for each spend, buying divisible options by benefit per cost.

    For divisible options this is the exact optimum at every spend, a concave curve whose
    slope (benefit per extra money) never rises: the diminishing returns of the budget.
    """
    benefit = np.asarray(benefit, dtype=float)
    cost = np.asarray(cost, dtype=float)
    order = _ratio_order(benefit, cost)
    spent = np.concatenate([[0.0], np.cumsum(cost[order])])
    gained = np.concatenate([[0.0], np.cumsum(benefit[order])])
    return np.interp(np.asarray(spends, dtype=float), spent, gained)


def benefit_interval(
    change: np.ndarray,
    marginal: MarginalBenefits,
    *,
    coefficient: float,
    coefficient_se: float,
    lag_coefficient: float = 0.0,
    lag_coefficient_se: float = 0.0,
    rho_se: float = 0.0,
    w: sp.spmatrix | None = None,
    solver: SpatialSolver | None = None,
    level: float = 0.95,
) -> dict[str, float]:
    """Delta-method interval of the total benefit T = d'm of a chosen change vector d.

    T = -z'(b d + theta W d) with z = (I - rho W)^-T p. Its gradient is
    dT/db = -z'd, dT/dtheta = -z'W d and dT/drho = -z' W S (b d + theta W d), since
    dS/drho = S W S (LeSage & Pace 2009, sec. 4.4 uses the same derivative for the
    impacts). The model summary stores standard errors, not covariances, so the parameters
    are treated as uncorrelated: Var T ~ sum_k (dT/dk)^2 se_k^2 (Greene 2012, sec. 4.6).

    Returns
    -------
    dict
        ``estimate``, ``se``, ``low``, ``high`` and ``level``.
    """
    from statistics import NormalDist  # scipy.stats takes seconds to import

    d = np.asarray(change, dtype=float)
    z = marginal.weights_solved
    estimate = float(d @ marginal.total)
    wd = np.asarray(sp.csr_matrix(w) @ d) if (w is not None and (lag_coefficient or solver is not None)) else None
    grads = [(-float(z @ d), coefficient_se)]
    if lag_coefficient and wd is not None:
        grads.append((-float(z @ wd), lag_coefficient_se))
    if solver is not None and w is not None and wd is not None:
        g = coefficient * d + (lag_coefficient * wd if lag_coefficient else 0.0)
        sg = solver.solve(g)
        grads.append((-float(z @ (sp.csr_matrix(w) @ sg)), rho_se))
    # a missing standard error leaves the interval unknown (NaN), never silently narrower
    var = sum(gr * gr * se * se for gr, se in grads)
    se_t = float(np.sqrt(var))
    q = NormalDist().inv_cdf(0.5 + level / 2.0)
    return {"estimate": estimate, "se": se_t, "low": estimate - q * se_t, "high": estimate + q * se_t, "level": level}

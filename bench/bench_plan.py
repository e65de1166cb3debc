"""`make bench` rows for `uhi plan`: marginal benefits and allocation for 400k cells (target <= 5 s on 2 cores).

Seeded: a 633 x 633 grid of 48 m cells (400,689, a city of ~30 km at zoom 19) with kNN-8
row-standardised weights (built once, not timed: the stage builds them as the model stage does),
people per cell, and each cell's NDVI change and cost. Timed: the transposed solve
(I - rho W)^-T p by the Neumann series (the path above 20k cells), the marginal benefits, the
greedy allocation of a budget, and the delta-method interval (one more solve). Checked: the
series solve against the sparse LU on a 20k sub-grid. Prints JSON lines.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

SIDE = int(os.environ.get("UHI_BENCH_PLAN_SIDE", "633"))


def _grid(side: int) -> np.ndarray:
    i, j = np.meshgrid(np.arange(side), np.arange(side))
    return np.column_stack([i.ravel() * 48.0, j.ravel() * 48.0])


def main() -> None:
    from uhi.stats.plan import SpatialSolver, allocate, benefit_interval, marginal_benefits
    from uhi.stats.weights import build_weights

    rng = np.random.default_rng(14)
    w = build_weights(_grid(SIDE), "knn:8").row_standardised()
    n = w.shape[0]
    people = rng.gamma(2.0, 40.0, n)
    change = rng.uniform(0.0, 0.3, n)
    cost = rng.uniform(2e3, 4e4, n)
    for rho in (0.6, 0.85):
        t0 = time.perf_counter()
        solver = SpatialSolver(w, rho)
        mb = marginal_benefits(people, -8.0, w=w, solver=solver)
        t1 = time.perf_counter()
        benefit = mb.total * change
        ok = benefit > 0
        fraction, _ = allocate(benefit[ok], cost[ok], 5e6, divisible=True)
        t2 = time.perf_counter()
        chosen = np.zeros(n)
        chosen[np.flatnonzero(ok)] = fraction * change[ok]
        benefit_interval(chosen, mb, coefficient=-8.0, coefficient_se=0.5, rho_se=0.02, w=w, solver=solver)
        t3 = time.perf_counter()
        print(json.dumps({
            "bench": "plan", "case": f"marginal+allocation n={n // 1000}k rho={rho}", "uhi_s": round(t2 - t0, 3),
            "target": "<=5 s",
            "note": f"solve+benefits {t1 - t0:.2f} s, allocation {t2 - t1:.3f} s, interval {t3 - t2:.2f} s, "
                    f"{int((fraction > 0).sum())} cells chosen",
        }), flush=True)
    # the series against the sparse LU on 20k cells (the LU path the stage takes up to 20k)
    w_small = build_weights(_grid(141), "knn:8").row_standardised()
    p_small = people[: w_small.shape[0]]
    t0 = time.perf_counter()
    lu = SpatialSolver(w_small, 0.85).solve_transposed(p_small)
    t1 = time.perf_counter()
    series = SpatialSolver(w_small, 0.85, exact_max_n=0).solve_transposed(p_small)
    t2 = time.perf_counter()
    print(json.dumps({
        "bench": "plan", "case": "transposed solve n=20k rho=0.85", "uhi_s": round(t2 - t1, 3),
        "anchor": "splu trans='T'", "anchor_s": round(t1 - t0, 3),
        "note": f"max relative difference {float(np.max(np.abs(series - lu) / np.abs(lu).max())):.1e}",
    }), flush=True)


if __name__ == "__main__":
    main()

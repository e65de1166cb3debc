"""`make bench` rows for the demo city: the planted SAR solve against scipy's sparse LU, and the
time to write the default city. Prints JSON lines (see bench/run.py)."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np


def bench_sar_solve(size_km: float = 30.0) -> dict[str, object]:
    import scipy.sparse as sp
    from scipy.sparse.linalg import splu

    from uhi.demo.landscape import build_landscape
    from uhi.demo.spec import DemoSpec
    from uhi.demo.truth import knn_weights, spatial_filter

    spec = DemoSpec(size_km=size_km)
    land = build_landscape(spec)
    w = knn_weights(land.grid.x_m, land.grid.y_m)
    rhs = np.random.default_rng(0).normal(size=(len(spec.years), land.grid.n))
    t0 = time.perf_counter()
    ours = spatial_filter(w, spec.rho, rhs)
    uhi_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = splu((sp.identity(land.grid.n, format="csc") - spec.rho * w).tocsc()).solve(rhs.T).T
    anchor_s = time.perf_counter() - t0
    err = float(np.abs(ours - ref).max())
    return {
        "bench": "demo",
        "case": f"SAR (I-rho W)^-1, n={land.grid.n}, T={len(spec.years)}",
        "uhi_s": round(uhi_s, 3),
        "anchor": "scipy splu + solve",
        "anchor_s": round(anchor_s, 3),
        "target": ">=5x",
        "note": f"max abs difference {err:.1e} degC",
    }


def bench_write_default() -> dict[str, object]:
    from uhi.demo import DemoSpec, write_demo

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = write_demo(Path(tmp) / "city", DemoSpec())
        seconds = time.perf_counter() - t0
    return {
        "bench": "demo",
        "case": f"write default 4 km city ({result.scenes} scenes)",
        "uhi_s": round(seconds, 3),
        "anchor": "",
        "anchor_s": None,
        "target": "<10 s",
        "note": f"{result.aoi_cells} AOI cells, {result.cells} planted",
    }


if __name__ == "__main__":
    for row in (bench_write_default(), bench_sar_solve()):
        print(json.dumps(row), flush=True)

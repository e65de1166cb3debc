"""`make bench` rows for the model stage: uhi's estimators against spreg at n = 10k and 200k (knn:8),
and the whole stage on the 30 km demo city.

Prints one JSON line per row (see bench/run.py). Data: a jittered 50 m grid with a planted
SAR process (rho = 0.5), three regressors, seeded. spreg's ML_Lag (LU) builds a dense
n x n inverse for its variance, so it runs at 10k only (~40 s, ~5 GB); Panel_FE_Lag likewise
runs at small n only.

The city row (issue 19: <= 40 s on 2 cores) runs ``uhi model`` on the demo city's compute
outputs (30 km: 389k cells, 42 dates over 7 summers) and prints wall and CPU seconds with a
breakdown by part. ``BENCH_MODEL_WORKSPACE=DIR`` (with ``BENCH_MODEL_CONFIG=config.yaml``)
reuses a workspace whose compute stage has run; else the demo is written and computed first
(minutes), ``BENCH_MODEL_SIZE_KM`` (default 30) shrinks it. ``python bench/bench_model.py
--city`` runs that row alone.
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from uhi.stats.hotspots import hotspots
from uhi.stats.panel import fit_panel_fe_lag
from uhi.stats.regression import fit_fe, fit_ols, fit_slx
from uhi.stats.spatial import LogDeterminant, fit_error_ml, fit_lag_gm, fit_lag_ml, solve_spatial
from uhi.stats.weights import build_weights

NAMES = ["a", "b", "c"]
BETA = np.array([-4.0, 2.0, 3.0])


_CPUS: list[float] = []  # CPU seconds of the timings since the last row; uhi's is timed first


def _emit(**row: Any) -> None:
    # wall time is what the targets mean; CPU seconds and the load average tell a busy
    # machine (other jobs on the 2 cores) from a slow estimator
    import os

    extra = f"uhi cpu {_CPUS[0] if _CPUS else float('nan'):.2f} s, load {os.getloadavg()[0]:.1f}"
    _CPUS.clear()
    row["note"] = f"{row.get('note', '')}; {extra}".lstrip("; ")
    print(json.dumps({"bench": "model", **row}), flush=True)


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    c0 = time.process_time()
    t0 = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    _CPUS.append(time.process_time() - c0)
    return out, wall


def _grid(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    idx = np.arange(n)
    return np.column_stack([idx % side, idx // side]) * 50.0 + rng.uniform(-5, 5, (n, 2))


def _sar(w: sp.csr_matrix, x: np.ndarray, rng: np.random.Generator, rho: float = 0.5) -> np.ndarray:
    return solve_spatial(w, rho, 30.0 + x @ BETA + rng.normal(size=x.shape[0]))


def _libpysal_w(xy: np.ndarray) -> Any:
    from libpysal.weights import KNN

    lw = KNN.from_array(xy, k=8)
    lw.transform = "r"
    return lw


def _quiet(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kw)


def bench_cross_section(n: int, *, spreg_ml: bool) -> None:
    import spreg

    label = f"n={n // 1000}k"
    rng = np.random.default_rng(1)
    xy = _grid(n, 1)
    sw, t_w = _timed(lambda: build_weights(xy, "knn:8"))
    w = sw.row_standardised()
    lw, t_lw = _timed(lambda: _libpysal_w(xy))
    _emit(case=f"weights knn:8 {label}", uhi_s=t_w, anchor="libpysal KNN", anchor_s=t_lw, target="", note="")
    w = sp.csr_matrix(lw.sparse)  # identical matrix (no ties on a jittered grid); same W for both
    x = rng.normal(size=(n, 3))
    y = _sar(w, x, rng)
    zones = (xy[:, 0] // 500).astype(int) * 1000 + (xy[:, 1] // 500).astype(int)

    ols, t = _timed(lambda: fit_ols(y, x, NAMES))
    ref, t_ref = _timed(lambda: _quiet(spreg.OLS, y[:, None], x))
    _emit(case=f"ols {label}", uhi_s=t, anchor="spreg OLS", anchor_s=t_ref, target="<=5s",
          note=f"max |b diff| {np.abs(ols.coefficients - ref.betas.ravel()).max():.1e}")
    _, t = _timed(lambda: fit_slx(y, x, NAMES, w))
    _emit(case=f"slx {label}", uhi_s=t, target="<=5s", note="OLS on [X, WX]")
    _, t = _timed(lambda: fit_fe(y, x, NAMES, zones))
    _emit(case=f"fe {label}", uhi_s=t, target="<=5s", note=f"{np.unique(zones).size} zones")

    gm, t = _timed(lambda: fit_lag_gm(y, x, NAMES, w))
    gm_ref, t_ref = _timed(lambda: _quiet(spreg.GM_Lag, y[:, None], x, w=lw))
    gm_diff = np.abs(np.append(gm.coefficients, gm.rho) - gm_ref.betas.ravel()).max()
    _emit(case=f"lag GM/2SLS {label}", uhi_s=t, anchor="spreg GM_Lag", anchor_s=t_ref, target="<=5s",
          note=f"max |diff| {gm_diff:.1e}")

    lag, t = _timed(lambda: fit_lag_ml(y, x, NAMES, w))
    note = f"{lag.diagnostics['method']}; rho {lag.rho:.4f} (planted 0.5)"
    if spreg_ml:
        ref, t_ref = _timed(lambda: _quiet(spreg.ML_Lag, y[:, None], x, w=lw, method="LU"))
        est = np.append(lag.coefficients, lag.rho)
        worst = float(np.max(np.abs(est - ref.betas.ravel()) / np.asarray(ref.std_err)))
        _emit(case=f"lag ML {label}", uhi_s=t, anchor="spreg ML_Lag (LU)", anchor_s=t_ref, target=">=100x",
              note=f"{note}; max |diff|/SE {worst:.3f}")
    else:
        skipped = "OOM" if n > 20_000 else "skipped"
        _emit(case=f"lag ML {label}", uhi_s=t, anchor="spreg ML_Lag (LU)", anchor_s=skipped, target="<=5s",
              note=note + ("; spreg needs dense n x n" if n > 20_000 else "; --quick"))

    ye = 30.0 + x @ BETA + solve_spatial(w, 0.5, rng.normal(size=n))
    err, t = _timed(lambda: fit_error_ml(ye, x, NAMES, w))
    note = f"{err.diagnostics['method']}; lambda {err.lam:.4f} (planted 0.5)"
    if spreg_ml:
        ref, t_ref = _timed(lambda: _quiet(spreg.ML_Error, ye[:, None], x, w=lw, method="LU"))
        est = np.append(err.coefficients, err.lam)
        worst = float(np.max(np.abs(est - ref.betas.ravel()) / np.asarray(ref.std_err)))
        _emit(case=f"error ML {label}", uhi_s=t, anchor="spreg ML_Error (LU)", anchor_s=t_ref, target="<=5s",
              note=f"{note}; max |diff|/SE {worst:.3f}")
    else:
        _emit(case=f"error ML {label}", uhi_s=t, target="<=5s", note=note)

    # the stage shares one log-determinant (traces) between lag, error and impacts
    ld = LogDeterminant(w)
    _, t_both = _timed(lambda: (fit_lag_ml(y, x, NAMES, w, logdet=ld), fit_error_ml(ye, x, NAMES, w, logdet=ld)))
    _emit(case=f"lag + error shared logdet {label}", uhi_s=t_both, target="", note="as the stage runs them")

    res, t = _timed(lambda: hotspots(y, sw.binary))
    _emit(case=f"Gi* normal + FDR {label}", uhi_s=t, target="<=5s", note=f"{int((res.klass == 3).sum())} hot 99%")


def bench_panel(n_cells: int, periods: int, *, with_spreg: bool) -> None:
    import spreg

    label = f"N={n_cells // 1000 if n_cells >= 1000 else n_cells}{'k' if n_cells >= 1000 else ''} T={periods}"
    rng = np.random.default_rng(2)
    xy = _grid(n_cells, 2)
    lw = _libpysal_w(xy) if with_spreg else None
    w = sp.csr_matrix(lw.sparse) if lw is not None else build_weights(xy, "knn:8").row_standardised()
    mu = rng.normal(0, 2, n_cells)
    ys, xs = [], []
    for _ in range(periods):
        x = rng.normal(size=(n_cells, 3))
        ys.append(solve_spatial(w, 0.5, x @ BETA + mu + rng.normal(size=n_cells)))
        xs.append(x)
    y, x = np.concatenate(ys), np.vstack(xs)
    fit, t = _timed(lambda: fit_panel_fe_lag(y, x, NAMES, w, periods))
    note = f"{fit.diagnostics['method']}; rho {fit.rho:.4f} (planted 0.5)"
    if with_spreg:
        ref, t_ref = _timed(lambda: _quiet(spreg.Panel_FE_Lag, y[:, None], x, lw))
        est = np.append(fit.coefficients, fit.rho)
        worst = float(np.max(np.abs(est - ref.betas.ravel()) / np.asarray(ref.std_err)))
        _emit(case=f"panel_fe lag {label}", uhi_s=t, anchor="spreg Panel_FE_Lag", anchor_s=t_ref, target="<=5s",
              note=f"{note}; max |diff|/SE {worst:.3f}")
    else:
        _emit(case=f"panel_fe lag {label}", uhi_s=t, anchor="spreg Panel_FE_Lag", anchor_s="OOM", target="<=5s", note=note)


def bench_stage(n_cells: int, years: int) -> None:
    """The whole model stage on a synthetic workspace: read, fit all six models, Gi*, write."""
    import tempfile

    import geopandas as gpd
    import pandas as pd
    import shapely

    from uhi.config import build_config
    from uhi.stages.model import run
    from uhi.workspace import Workspace

    rng = np.random.default_rng(3)
    side = int(np.ceil(np.sqrt(n_cells)))
    idx = np.arange(n_cells)
    tx, ty = idx % side, idx // side
    x_m, y_m = tx * 48.0, -ty * 48.0
    lon0, lat0, d = -114.2, 51.2, 48.0 / 111_320.0
    geoms = shapely.box(lon0 + tx * d * 1.6, lat0 - (ty + 1) * d, lon0 + (tx + 1) * d * 1.6, lat0 - ty * d)
    site = rng.uniform(0, 0.6, n_cells)
    cells = gpd.GeoDataFrame(
        {"cell": idx.astype(str), "tile_x": tx, "tile_y": ty, "x_m": x_m, "y_m": y_m, "site_coverage": site,
         "zone": (tx // 100 * 100 + ty // 100).astype(str)},
        geometry=geoms, crs=4326,
    )
    w = build_weights(np.column_stack([x_m, y_m]), "knn:8").row_standardised()
    frames = []
    for t in range(years):
        ndvi, ndbi = rng.uniform(0, 0.8, n_cells), rng.uniform(-0.4, 0.3, n_cells)
        lst = solve_spatial(w, 0.5, -6 * ndvi + 8 * ndbi + 4 * site + rng.normal(size=n_cells)) + 40 + 0.1 * t
        frames.append(pd.DataFrame({"cell": cells["cell"], "date": pd.Timestamp(2015 + t, 7, 15), "year": 2015 + t,
                                    "lst_c": lst, "ndvi": ndvi, "ndbi": ndbi, "anomaly_c": lst - 40}))
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace(tmp)
        ws.stage_dir("compute").mkdir(parents=True)
        cells.to_parquet(ws.cells)
        pd.concat(frames, ignore_index=True).to_parquet(ws.panel)
        summary, t = _timed(lambda: run(build_config({"workdir": tmp}), ws))
    _emit(case=f"stage {n_cells // 1000}k cells x {years} years", uhi_s=t, target="",
          note=f"6 models per year + panel_fe + Gi* + xlsx/geojson; best {summary['best_model']}")


# the model stage's parts, timed by wrapping these functions (time spent in a nested wrapped
# function counts for the inner part only); what no wrapper covers is "stage: other". A part
# on the main thread is charged the process's CPU while it runs (so the row-split sparse
# products' worker threads count in their part); the GeoPackage and Parquet writes run on a
# second thread beside the GeoJSON ones and are charged that thread's CPU, which the GeoJSON
# part then also includes (the parts' CPU can sum past the stage's)
_PARTS = {
    "read: panel, cells, yearly means": [("uhi.stages.model", "workspace_data")],
    "read: sensor shares": [("uhi.stats.sensors", "sensor_shares")],  # before the panel was streamed
    "weights (knn build)": [("uhi.stats.weights", "weights_for_cells")],
    "log-det power traces": [("uhi.stats.spatial", "power_traces")],
    "variance traces (SE of rho, lambda)": [("uhi.stats.spatial", "_variance_traces"), ("uhi.stats.panel", "_variance_traces"),
                                            ("uhi.stats.spatial", "inverse_frobenius_traces")],
    "fits (ols slx lag error fe)": [("uhi.stats.regression", "fit_ols"), ("uhi.stats.regression", "fit_slx"),
                                    ("uhi.stats.regression", "fit_fe"), ("uhi.stats.spatial", "fit_lag_ml"),
                                    ("uhi.stats.spatial", "fit_lag_gm"), ("uhi.stats.spatial", "fit_error_ml"),
                                    ("uhi.stats.spatial", "estimate_lag_ml"), ("uhi.stats.spatial", "estimate_error_ml"),
                                    ("uhi.stats.spatial", "_finish_lag"), ("uhi.stats.spatial", "_finish_error")],
    "panel_fe fit": [("uhi.stats.panel", "fit_panel_fe_lag")],
    "LM and Moran tests": [("uhi.stats.diagnostics", "lm_tests"), ("uhi.stats.diagnostics", "moran_residuals"),
                           ("uhi.stats.diagnostics", "moran_value")],
    "impacts": [("uhi.stats.impacts", "lag_impacts")],
    "Gi* hot spots": [("uhi.stats.hotspots", "hotspots")],
    "fit_all: tables, subsets, panel pivot": [("uhi.stages.model", "fit_all")],
    "write: GeoJSON": [("uhi.writers.geojson", "write_geojson"), ("uhi.writers.geojson", "geojson_geometries")],
    "write: GeoPackage": [("uhi.writers.gpkg", "write_gpkg")],
    "write: Parquet": [("uhi.writers.parquet", "write_parquet")],
    "write: Excel": [("uhi.writers.excel", "write_workbook")],
    "write: summary, output tables": [("uhi.stages.model", "write_outputs")],
}


# beside the main thread: the GeoPackage and Parquet writes beside the GeoJSON ones, the power
# traces ahead of their use (charged the CPU of their calling thread, not of the sparse
# products' row-block threads, which the main thread's parts then include)
_SIDE_THREAD = ("write: GeoPackage", "write: Parquet", "log-det power traces")


def _wrap_parts(totals: dict[str, list[float]]) -> Callable[[], None]:
    """Wrap the parts' functions to add their exclusive (wall, CPU) seconds to ``totals``."""
    import functools
    import importlib
    import threading

    local = threading.local()  # per thread: the stage writes its GeoPackage on a second thread
    undo: list[tuple[Any, str, Any]] = []
    for part, targets in _PARTS.items():
        totals.setdefault(part, [0.0, 0.0])
        for module_name, attr in targets:
            module = importlib.import_module(module_name)
            fn = getattr(module, attr, None)
            if fn is None:
                continue

            def timed(*args: Any, __fn: Any = fn, __part: str = part, **kw: Any) -> Any:
                # per active wrapped call: seconds of nested wrapped calls
                stack = local.__dict__.setdefault("stack", [])
                stack.append([0.0, 0.0])
                clock = time.process_time if threading.current_thread() is threading.main_thread() else time.thread_time
                t0, c0 = time.perf_counter(), clock()
                try:
                    return __fn(*args, **kw)
                finally:
                    wall, cpu = time.perf_counter() - t0, clock() - c0
                    inner = stack.pop()
                    totals[__part][0] += wall - inner[0]
                    totals[__part][1] += cpu - inner[1]
                    if stack:
                        stack[-1][0] += wall
                        stack[-1][1] += cpu

            undo.append((module, attr, fn))
            setattr(module, attr, functools.wraps(fn)(timed))

    def restore() -> None:
        for module, attr, fn in undo:
            setattr(module, attr, fn)

    return restore


def _city_workspace(base: Path) -> tuple[Path, Path]:
    """(config, workspace) whose compute stage has run: a kept one or a freshly computed demo."""
    import os
    import shutil
    import subprocess

    kept = os.environ.get("BENCH_MODEL_WORKSPACE")
    ws = base / "ws"
    (ws / "compute").mkdir(parents=True)
    if kept:
        config = Path(os.environ.get("BENCH_MODEL_CONFIG", Path(kept).parent / "demo" / "config.yaml"))
        for name in ("cells.parquet", "panel.parquet"):
            # the workspace refuses symlinks out of it: a hard link (or a copy across file
            # systems); the stage only reads these, so the kept folder is unchanged
            src = Path(kept) / "compute" / name
            try:
                os.link(src, ws / "compute" / name)
            except OSError:
                shutil.copyfile(src, ws / "compute" / name)
        return config, ws
    size_km = os.environ.get("BENCH_MODEL_SIZE_KM", "30")
    exe = Path(sys.executable).with_name("uhi")
    uhi = [str(exe)] if exe.exists() else [sys.executable, "-m", "uhi.cli.main"]
    subprocess.run([*uhi, "-q", "demo", str(base / "demo"), "--size-km", size_km, "--scenes-per-year", "6"],
                   check=True, capture_output=True, text=True)
    config = base / "demo" / "config.yaml"
    subprocess.run([*uhi, "-q", "run", str(config), "--workdir", str(ws), "--to", "compute",
                    "--set", "city.crs=EPSG:32612"], check=True, capture_output=True, text=True)
    return config, ws


def bench_city() -> None:
    """The model stage (as `uhi run` runs it) on the demo city, with wall and CPU by part."""
    import os
    import shutil
    import tempfile

    from uhi.cli.common import build_run_config
    from uhi.stages import get_spec
    from uhi.stages.runner import execute
    from uhi.workspace import Workspace

    base = Path(tempfile.mkdtemp(prefix="uhi-bench-model-"))
    try:
        config, ws_dir = _city_workspace(base)
        cfg = build_run_config(config, workdir=ws_dir, set_values=("city.crs=EPSG:32612",))
        ws = Workspace(ws_dir)
        totals: dict[str, list[float]] = {}
        restore = _wrap_parts(totals)
        load = os.getloadavg()[0]
        try:
            with ws.locked():
                t0, c0 = time.perf_counter(), time.process_time()
                outcome = execute(get_spec("model"), cfg, ws, force=True)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        finally:
            restore()
        main = [v for k, v in totals.items() if k not in _SIDE_THREAD]
        totals["stage: other (runner hashes, imports)"] = [wall - sum(v[0] for v in main), cpu - sum(v[1] for v in main)]
        cells = outcome.summary.get("cells_left_out_water", 0)
        parts = "; ".join(f"{k} {v[0]:.1f}/{v[1]:.1f}" for k, v in totals.items() if v[0] >= 0.05)
        for k, v in totals.items():  # the breakdown as a table on stderr, for docs/operations.md
            print(f"# {k:<40} wall {v[0]:7.2f} s  CPU {v[1]:7.2f} s", file=sys.stderr)
        print(json.dumps({
            "bench": "model", "case": f"stage on the demo city ({os.environ.get('BENCH_MODEL_SIZE_KM', '30')} km)"
            if not os.environ.get("BENCH_MODEL_WORKSPACE") else "stage on a kept city workspace",
            "uhi_s": round(wall, 2), "anchor": "target 40 s", "anchor_s": 40.0, "target": "<=40s",
            "note": (f"CPU {cpu:.1f} s; load {load:.1f} at start; {os.cpu_count()} cores; "
                     f"{cells} water cells left out; parts wall/CPU s: {parts}"),
        }), flush=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    quick = "--quick" in sys.argv
    if "--city" in sys.argv:
        bench_city()
        return 0
    if "--stage" in sys.argv:
        bench_stage(int(sys.argv[-1]) if sys.argv[-1].isdigit() else 200_000, 3)
        return 0
    bench_cross_section(10_000, spreg_ml=not quick)
    bench_panel(2_500, 7, with_spreg=True)
    bench_panel(10_000, 7, with_spreg=False)
    bench_cross_section(200_000, spreg_ml=False)
    bench_panel(200_000, 7, with_spreg=False)
    bench_stage(200_000, 3)
    bench_city()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`make bench` rows for forecasting: uhi's vectorised ETS vs a statsmodels loop and statsforecast.

250k seeded series x 30 steps (a third random walks with drift, a third trend + noise, a third
level + noise), the size of a city's cell grid. The statsmodels loop and statsforecast are timed
on a subset and extrapolated linearly to 250k series (each series is an independent fit); the
note of each row says so. Prints one JSON line per row (see bench/run.py).

Two rows time the forecast stage itself on the default demo city, `uhi forecast --force` in a
subprocess: first with an empty NUMBA_CACHE_DIR (what a fresh install pays: compiling the ETS
kernels; target <= 8 s, issue 19), then again with the cache that run filled. The demo is
written and run to the model stage first (about a minute; BENCH_FORECAST_DEMO=DIR keeps it in
DIR and reuses it on the next run). `python bench/bench_forecast.py --stage` runs only these rows.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

N_SERIES = int(os.environ.get("UHI_BENCH_FORECAST_SERIES", "250000"))
N_STEPS = 30
SM_SUBSET = 150
SF_SUBSET = 3000


def make_series(n: int, steps: int, seed: int = 2024) -> np.ndarray:
    """Seeded series of three kinds, LST-like scale (degC)."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)
    kind = rng.integers(0, 3, n)
    walk = np.cumsum(rng.normal(0.05, 0.6, (n, steps)), axis=1)
    trend = rng.normal(0.08, 0.05, (n, 1)) * t + rng.normal(0, 0.5, (n, steps))
    level = rng.normal(0, 0.8, (n, steps))
    base = rng.normal(30, 3, (n, 1))
    return base + np.where(kind[:, None] == 0, walk, np.where(kind[:, None] == 1, trend, level))


def row(**kw: object) -> None:
    print(json.dumps({"bench": "forecast", **kw}), flush=True)


def statsmodels_loop(y: np.ndarray) -> tuple[float, np.ndarray]:
    """Seconds to fit simple, Holt and damped per series with statsmodels, and the SSEs."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    sse = np.empty((y.shape[0], 3))
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i in range(y.shape[0]):
            for j, (trend, damped) in enumerate(((None, False), ("add", False), ("add", True))):
                m = ExponentialSmoothing(y[i], trend=trend, damped_trend=damped, initialization_method="estimated")
                sse[i, j] = m.fit().sse
    return time.perf_counter() - t0, sse


def statsforecast_time(y: np.ndarray, n_jobs: int) -> tuple[float, float]:
    """Wall and CPU seconds (this process) of statsforecast AutoETS (additive error, no season:
    ANN/AAN/AAdN by AICc)."""
    import pandas as pd
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS

    n, steps = y.shape

    def frame(k: int) -> pd.DataFrame:
        return pd.DataFrame({
            "unique_id": np.repeat(np.arange(k), steps),
            "ds": np.tile(np.arange(steps), k),
            "y": y[:k].ravel(),
        })

    sf = StatsForecast(models=[AutoETS(model="AZN", season_length=1)], freq=1, n_jobs=n_jobs)
    sf.forecast(df=frame(50), h=3)  # compile / warm up before timing
    df = frame(n)
    t0, c0 = time.perf_counter(), time.process_time()
    sf.forecast(df=df, h=3)
    return time.perf_counter() - t0, time.process_time() - c0


COLD_TARGET_S = 8.0


def _uhi() -> list[str]:
    exe = Path(sys.executable).with_name("uhi")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "uhi.cli.main"]


def _timed_forecast(config: Path, cache: Path) -> tuple[float, float, float]:
    """Wall s, CPU s (user + system) and peak RSS GB of `uhi forecast --force` with this numba cache."""
    timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
    t0 = time.perf_counter()
    proc = subprocess.run([*timer, *_uhi(), "-q", "forecast", str(config), "--force"],
                          capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"uhi forecast failed ({proc.returncode}): {proc.stderr[-2000:]}")
    cpu = sum(float(m.group(1)) for m in re.finditer(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr))
    peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    return wall, cpu, (int(peak.group(1)) / 2**20 if peak else float("nan"))


def stage_rows() -> None:
    """The forecast stage on the default demo city, with a cold and then a warm numba cache."""
    keep = os.environ.get("BENCH_FORECAST_DEMO")
    base = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="uhi-bench-forecast-"))
    demo = base / "demo"
    config = demo / "config.yaml"
    if not (demo / "workspace" / "model" / "summary.json").is_file():
        subprocess.run([*_uhi(), "-q", "demo", str(demo), "--force"], check=True, capture_output=True)
        subprocess.run([*_uhi(), "-q", "run", str(config), "--to", "model"], check=True, capture_output=True)
    with tempfile.TemporaryDirectory(prefix="uhi-numba-cache-") as cache:
        load = os.getloadavg()[0]
        cold = _timed_forecast(config, Path(cache))
        warm = _timed_forecast(config, Path(cache))
    cells = json.loads((demo / "workspace" / "forecast" / "summary.json").read_text())["cells"]
    for name, (wall, cpu, peak) in (("cold", cold), ("warm", warm)):
        row(case=f"forecast stage, demo city, {name} numba cache", uhi_s=round(wall, 2),
            anchor=f"target {COLD_TARGET_S:g} s" if name == "cold" else "",
            anchor_s=COLD_TARGET_S if name == "cold" else None,
            target=">=1x" if name == "cold" else "",
            note=f"uhi forecast --force, {cells} cells; {cpu:.1f} CPU-s, peak {peak:.2f} GB; "
                 f"{os.cpu_count()} cores, load avg {load:.1f}" + ("; ratio = 8 s / uhi" if name == "cold" else ""))
    if not keep:
        import shutil

        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    from uhi.stats.ets import fit_ets, forecast_series

    stage_rows()
    if "--stage" in sys.argv[1:]:
        return

    y = make_series(N_SERIES, N_STEPS)
    forecast_series(y[:100], 5)  # numba compile (cached on disk after the first run)

    t0, c0 = time.perf_counter(), time.process_time()
    fit = fit_ets(y)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0

    t0, c0 = time.perf_counter(), time.process_time()
    forecast_series(y, 5, holdout=2, coverage=0.9)
    city_s, city_cpu = time.perf_counter() - t0, time.process_time() - c0
    cores = os.cpu_count()
    load = os.getloadavg()[0]
    row(case=f"city: fit+90% PI+holdout {N_SERIES // 1000}k x {N_STEPS}", uhi_s=round(city_s, 3),
        anchor="target 5 s", anchor_s=5.0, target=">=1x",
        note=f"forecast_series, {cores} cores, {city_cpu:.1f} CPU-s, load avg {load:.1f}; ratio = 5 s / uhi")

    sm_s, sm_sse = statsmodels_loop(y[:SM_SUBSET])
    sm_extrap = sm_s * N_SERIES / SM_SUBSET
    row(case=f"fit 3 methods + AICc {N_SERIES // 1000}k x {N_STEPS}", uhi_s=round(fit_s, 3),
        anchor="statsmodels loop", anchor_s=round(sm_extrap, 1), target=">=500x",
        note=f"statsmodels timed on {SM_SUBSET} series ({sm_s:.1f} s), extrapolated x{N_SERIES / SM_SUBSET:.0f}; uhi {fit_cpu:.1f} CPU-s")

    sub = fit_ets(y[:SM_SUBSET], ("simple",)), fit_ets(y[:SM_SUBSET], ("holt",)), fit_ets(y[:SM_SUBSET], ("damped",))
    ours = np.column_stack([f.sse for f in sub])
    share = float(np.mean(ours <= 1.01 * sm_sse))
    row(case="SSE <= 1.01 x statsmodels (share of fits)", ratio=share, anchor="statsmodels", target=">=0.95",
        note=f"{SM_SUBSET} series x 3 methods; ratio column = share")

    try:
        sf_s, _ = statsforecast_time(y[:SF_SUBSET], cores or 1)
        _, sf_cpu = statsforecast_time(y[:SF_SUBSET], 1)
    except ImportError as exc:  # statsforecast is a bench extra
        row(case="fit vs statsforecast", note=f"skipped: {exc}")
        return
    scale = N_SERIES / SF_SUBSET
    row(case=f"fit 3 methods + AICc {N_SERIES // 1000}k x {N_STEPS}", uhi_s=round(fit_s, 3),
        anchor="statsforecast AutoETS AZN", anchor_s=round(sf_s * scale, 1), target=">=50x",
        note=f"statsforecast timed on {SF_SUBSET} series ({sf_s:.1f} s, n_jobs={cores}), extrapolated; "
        f"CPU-s ratio (n_jobs=1) {sf_cpu * scale / fit_cpu:.0f}x")
    del fit


if __name__ == "__main__":
    main()

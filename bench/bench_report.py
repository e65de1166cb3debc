"""`make bench` row for `uhi report` on a 30 km city: wall time and peak memory against the targets.

The workspace is synthetic and cheap to build (no scenes, no model fit): zoom-19 web-mercator
tiles over a square of UHI_BENCH_REPORT_KM (30) km at Calgary's latitude (~390k cells), a panel of
7 summers x 2 dates, a model summary, and the model's and forecast's per-cell tables as layers of
their stage GeoPackages (the layout `outputs.formats: gpkg` writes), plus forecast/summary.json.
The report runs in a child process so its peak RSS is its own (ru_maxrss of the children).
Target (issue 15): <= 20 s and <= 1.5 GB. Prints one JSON line (see bench/run.py).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZE_KM = float(os.environ.get("UHI_BENCH_REPORT_KM", "30"))
ZOOM = 19
LAT, LON = 51.045, -114.06
YEARS = tuple(range(2014, 2021))


def build_workspace(root: Path) -> int:
    """Write the artifacts the report reads; returns the number of cells."""
    import geopandas as gpd
    import pandas as pd
    import pyarrow.parquet as pq
    import pyogrio
    import shapely

    from uhi.grid.cells import quadkeys

    n_tiles = 2.0**ZOOM
    tile_m = 40_075_016.686 * np.cos(np.radians(LAT)) / n_tiles  # ground size of a zoom-19 tile
    side = int(SIZE_KM * 1000 / tile_m)
    x0 = int((LON + 180) / 360 * n_tiles)
    y0 = int((1 - np.log(np.tan(np.radians(LAT)) + 1 / np.cos(np.radians(LAT))) / np.pi) / 2 * n_tiles)
    ty, tx = np.meshgrid(np.arange(y0, y0 + side), np.arange(x0, x0 + side), indexing="ij")
    tx, ty = tx.ravel(), ty.ravel()

    def lat(row: np.ndarray) -> np.ndarray:
        return np.degrees(np.arctan(np.sinh(np.pi * (1 - 2 * row / n_tiles))))

    geoms = shapely.box(tx / n_tiles * 360 - 180, lat(ty + 1), (tx + 1) / n_tiles * 360 - 180, lat(ty))
    cell = quadkeys(tx, ty, ZOOM)
    n = len(cell)
    rng = np.random.default_rng(15)
    r = np.hypot(tx - tx.mean(), ty - ty.mean()) / side
    built = np.clip(1.1 - 2 * r + rng.normal(0, 0.1, n), 0, 1)
    cells = gpd.GeoDataFrame({"cell": cell, "tile_x": tx, "tile_y": ty, "zoom": ZOOM, "urban": built > 0.3,
                              "site_coverage": built}, geometry=geoms, crs=4326)
    (root / "compute").mkdir(parents=True)
    cells.to_parquet(root / "compute" / "cells.parquet")
    table = pq.read_table(root / "compute" / "cells.parquet")
    meta = {**(table.schema.metadata or {}), b"uhi:working_crs": b"EPSG:32611"}
    pq.write_table(table.replace_schema_metadata(meta), root / "compute" / "cells.parquet")

    frames = []
    for year in YEARS:
        for day in (10, 25):
            ndvi = np.clip(0.6 - 0.5 * built + rng.normal(0, 0.05, n), -0.2, 0.9).astype(np.float32)
            lst = (28 + 0.1 * (year - YEARS[0]) + 9 * built + rng.normal(0, 1.0, n)).astype(np.float32)
            frames.append(pd.DataFrame({"cell": pd.Categorical(cell), "date": pd.Timestamp(f"{year}-07-{day}"),
                                        "year": np.int16(year), "lst_c": lst, "anomaly_c": lst - np.float32(28),
                                        "ndvi": ndvi, "ndbi": (built - 0.5).astype(np.float32)}))
    pd.concat(frames, ignore_index=True).to_parquet(root / "compute" / "panel.parquet")

    (root / "model").mkdir()
    models = {m: {"years": {str(y): {"r2": 0.8 + 0.01 * i, "aic": 1e5 - i} for y in YEARS},
                  "mean_r2": 0.8 + 0.01 * i, "mean_aic": 1e5 - i} for i, m in enumerate(("ols", "lag"))}
    (root / "model" / "summary.json").write_text(json.dumps({
        "y": "lst_c", "x": ["ndvi", "ndbi"], "weights": "knn:8", "models": models, "best_model": "lag",
        "best_model_criterion": "lowest mean AIC over the per-year models", "best_by_r2": "lag",
        "hotspots": {"variable": "lst_c"}}))
    last = frames[-1]["lst_c"].to_numpy(float)
    pred = pd.DataFrame({"cell": cell, "model": "lag", **{f"residual_{y}": rng.normal(0, 0.5, n) for y in YEARS}})
    hot = pd.DataFrame({"cell": cell, **{f"hotspot_{y}": np.where(built > 0.7, 3, np.where(built < 0.1, -2, 0))
                                         for y in YEARS}})
    pyogrio.write_dataframe(pred, root / "model" / "model.gpkg", layer="predictions", driver="GPKG")
    pyogrio.write_dataframe(hot, root / "model" / "model.gpkg", layer="hotspots", driver="GPKG", append=True)

    (root / "forecast").mkdir()
    fc = pd.DataFrame({"cell": cell, "lst_c_method": "holt"})
    city: dict[str, dict[str, float]] = {"forecast": {}, "lower": {}, "upper": {}}
    for h, label in ((1, "2021"), (2, "2022"), (3, "2023")):
        fc[f"lst_c_{label}"] = last + 0.1 * h
        fc[f"lst_c_{label}_lo"], fc[f"lst_c_{label}_hi"] = last + 0.1 * h - 2, last + 0.1 * h + 2
        city["forecast"][label], city["lower"][label], city["upper"][label] = 33.0 + 0.1 * h, 31.0, 35.0 + 0.1 * h
    pyogrio.write_dataframe(fc, root / "forecast" / "forecast.gpkg", layer="forecast", driver="GPKG")
    observed = {str(y): 32.0 + 0.1 * i for i, y in enumerate(YEARS)}
    (root / "forecast" / "summary.json").write_text(json.dumps({
        "step": "summer", "interval": 0.9, "forecast_steps": list(city["forecast"]),
        "city": {"lst_c": {"method": "holt", **city, "observed": observed,
                           "trend_per_step": {"ols_slope": 0.1, "holt_trend": 0.1}}},
        "rcp85": {"source": "IPCC AR5", "years": [2050, 2085], "air_warming_added_c": [1.0, 2.6],
                  "lst_per_air_k": 1.0, "lst_change_added_c": [1.0, 2.6]}}))
    return n


CHILD = """
import sys, time
from uhi.config import build_config
from uhi.report.builder import build_report
from uhi.workspace import Workspace
t0 = time.perf_counter()
build_report(build_config(), Workspace(sys.argv[1]))
print(time.perf_counter() - t0)
"""


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="uhi-bench-report-") as tmp:
        root = Path(tmp) / "ws"
        t0 = time.perf_counter()
        n = build_workspace(root)
        setup_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", CHILD, str(root)], capture_output=True, text=True, check=True)
        wall_s = time.perf_counter() - t0
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak_gb = usage.ru_maxrss * 1024 / 1e9  # Linux: KiB
        cpu_s = usage.ru_utime + usage.ru_stime  # the wall time's share of a loaded machine aside
        build_s = float(out.stdout.strip().splitlines()[-1])
        print(json.dumps({
            "bench": "report", "case": f"uhi report, {SIZE_KM:g} km city ({n // 1000}k cells)",
            "uhi_s": round(wall_s, 2), "anchor": "issue 15 target", "anchor_s": 20.0, "target": "<=20s,<=1.5GB",
            "note": f"peak {peak_gb:.2f} GB; CPU {cpu_s:.1f} s; build_report {build_s:.1f} s of the process wall; "
                    f"workspace written in {setup_s:.0f} s (gpkg tables)",
        }), flush=True)


if __name__ == "__main__":
    main()

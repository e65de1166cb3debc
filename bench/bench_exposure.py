"""`make bench` row for the exposure stage: 400k cells x 1,000 zones x 5 groups, time and peak memory.

A seeded synthetic workspace near Calgary: zoom-19 cells over a ~30 km square (GeoParquet with
the working CRS, as compute writes it), a panel of four dates of the reference year, the model
stage's ``hotspots.geojson``, 1,000 Voronoi zones with names and an income column, and 4,000
census-like Voronoi polygons with a population and five group columns (dasymetric split on the
cells' floor area). The stage runs in a child process so its own peak resident memory is
measured, not the set-up's. Target: <= 10 s and <= 2 GB on 2 cores. Prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIDE = int(os.environ.get("UHI_BENCH_EXPOSURE_SIDE", "633"))  # 633^2 = 400,689 cells
ZONES = 1000
CENSUS = 4000
GROUPS = ("age65", "under5", "low_income", "renters", "alone")
CRS = "EPSG:32611"

_CHILD = """
import json, resource, sys, time
from uhi.config import load_config
from uhi.stages.exposure import SPEC
from uhi.stages.runner import execute
from uhi.workspace import Workspace
cfg = load_config(sys.argv[1], environ={})
ws = Workspace(cfg.resolved_workdir())
t0 = time.perf_counter()
with ws.locked():
    out = execute(SPEC, cfg, ws, force=True)
s = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"seconds": s, "peak_mb": ru.ru_maxrss / 1024, "cpu_s": ru.ru_utime + ru.ru_stime,
                  "summary": out.summary}))
"""


def _voronoi(n: int, bounds: tuple[float, float, float, float], rng: np.random.Generator) -> np.ndarray:
    import shapely

    x0, y0, x1, y1 = bounds
    seeds = shapely.points(rng.uniform(x0, x1, n), rng.uniform(y0, y1, n))
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(seeds)))
    return np.asarray(shapely.intersection(cells, shapely.box(*bounds)))


def setup(root: Path) -> Path:
    import geopandas as gpd
    import mercantile
    import pandas as pd
    import pyarrow.parquet as pq
    import shapely

    from uhi.grid.cells import cell_quads, quadkeys
    from uhi.writers.geojson import write_geojson
    from uhi.writers.parquet import write_parquet

    rng = np.random.default_rng(13)
    tx0, ty0 = mercantile.tile(-114.30, 51.15, 19)[:2]
    tx, ty = np.meshgrid(np.arange(tx0, tx0 + SIDE), np.arange(ty0, ty0 + SIDE))
    tx, ty = tx.ravel().astype(np.int64), ty.ravel().astype(np.int64)
    n = tx.size
    q = cell_quads(tx, ty, 19, CRS)
    ring = np.concatenate([q, q[:, :1]], axis=1)
    proj = shapely.polygons(ring)
    cx, cy = q[..., 0].mean(axis=1), q[..., 1].mean(axis=1)
    lonlat = cell_quads(tx, ty, 19, "EPSG:4326")
    geoms = shapely.polygons(np.concatenate([lonlat, lonlat[:, :1]], axis=1))
    ids = np.array(quadkeys(tx, ty, 19), dtype=object)
    site = rng.uniform(0, 0.6, n)
    cells = gpd.GeoDataFrame({
        "cell": ids, "tile_x": tx, "tile_y": ty, "zoom": 19, "x_m": cx, "y_m": cy,
        "area_m2": shapely.area(proj) * 0.9992,  # ~ geodesic; a scale factor, as compute's would be
        "site_coverage": site, "floor_area_m2": np.where(rng.random(n) < 0.6, rng.uniform(50, 5000, n), 0.0),
    }, geometry=geoms, crs=4326)
    ws = root / "ws"
    (ws / "compute").mkdir(parents=True)
    (ws / "model").mkdir()
    cells.to_parquet(ws / "compute" / "cells.parquet")
    table = pq.read_table(ws / "compute" / "cells.parquet")
    meta = dict(table.schema.metadata or {})
    meta[b"uhi:working_crs"] = CRS.encode()
    pq.write_table(table.replace_schema_metadata(meta), ws / "compute" / "cells.parquet")
    frames = []
    base = 28 + 8 * site + 0.0002 * (cx - cx.min())
    water = rng.random(n) < 0.05
    for day in (3, 12, 19, 28):
        lst = base + rng.normal(0, 1, n)
        lst[water] = np.nan
        frames.append(pd.DataFrame({"cell": ids, "date": pd.Timestamp(2024, 7, day), "year": 2024,
                                    "lst_c": lst, "anomaly_c": lst - 30, "ndvi": rng.uniform(0, 0.8, n)}))
    pd.concat(frames, ignore_index=True).to_parquet(ws / "compute" / "panel.parquet", row_group_size=1 << 20)
    gi_z = np.where(water, np.nan, rng.normal(0, 2, n))
    klass = np.select([gi_z > 2.58, gi_z > 1.96, gi_z > 1.645, gi_z < -2.58, gi_z < -1.96, gi_z < -1.645],
                      [3, 2, 1, -3, -2, -1], 0)
    hot = gpd.GeoDataFrame({"unit": ids, "gi_z_2024": gi_z, "gi_p_2024": np.nan, "hotspot_2024": klass},
                           geometry=geoms, crs=4326)
    write_geojson(hot, ws / "model" / "hotspots.geojson")
    write_parquet(hot.drop(columns="geometry"), ws / "model" / "hotspots.parquet")  # as the model writes it
    b = (float(cx.min()) - 30, float(cy.min()) - 30, float(cx.max()) + 30, float(cy.max()) + 30)
    zones = _voronoi(ZONES, b, rng)
    zgdf = gpd.GeoDataFrame({"zone": [f"Z{i:04d}" for i in range(len(zones))],
                             "name": [f"Zone {i}" for i in range(len(zones))],
                             "income": rng.lognormal(11, 0.4, len(zones))}, geometry=zones, crs=CRS)
    zgdf.to_file(root / "zones.gpkg")
    inner = shapely.union_all(proj).buffer(-1.0)
    census = _voronoi(CENSUS, b, rng)
    census = shapely.intersection(census, inner)
    pop = rng.integers(100, 2000, len(census)).astype(float)
    cgdf = gpd.GeoDataFrame({"population": pop, **{g: np.floor(pop * rng.uniform(0, 0.3, len(pop))) for g in GROUPS}},
                            geometry=census, crs=CRS).to_crs(3857)
    cgdf.to_file(root / "census.gpkg")
    cfg = root / "config.yaml"
    cfg.write_text(
        f"workdir: {ws}\n"
        "time: {start: 2024-06-01, end: 2024-08-31}\n"
        "exposure:\n"
        f"  zones_path: {root / 'zones.gpkg'}\n"
        "  rank_col: income\n"
        f"  population_path: {root / 'census.gpkg'}\n"
        f"  groups: [{', '.join(GROUPS)}]\n"
    )
    return cfg


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="uhi-bench-exposure-") as tmp:
        t0 = time.perf_counter()
        cfg = setup(Path(tmp))
        setup_s = time.perf_counter() - t0
        env = dict(os.environ)
        proc = subprocess.run([sys.executable, "-c", _CHILD, str(cfg)], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            return proc.returncode
        res = json.loads(proc.stdout.strip().splitlines()[-1])
    n = SIDE * SIDE
    print(json.dumps({
        "bench": "exposure",
        "case": f"exposure {n // 1000}k cells x {ZONES} zones x {len(GROUPS)} groups",
        "uhi_s": round(res["seconds"], 3),
        "anchor": "target 10 s, 2 GB",
        "anchor_s": 10.0,
        "target": "<=10 s, <=2 GB",
        "note": f"peak {res['peak_mb']:.0f} MiB, process CPU {res['cpu_s']:.1f} s (with imports); {CENSUS} census polygons split by floor area; "
                f"set-up {setup_s:.0f} s not timed",
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Bench `uhi compute`: the whole stage against the read-and-decode floor; zonal statistics and
index arithmetic against their anchors.

Rows (JSON lines, see bench/run.py), all on one synthetic 30 m raster grid in UTM 12N (Calgary)
and its zoom-19 cells (>= 100k):
- uhi coverage-weighted means per reused raster vs exactextract ``mean`` (the same quantity)
  and vs rasterstats ``mean`` (centre-of-pixel rasterisation: a cheaper, different answer);
- 20 rasters end to end, uhi's matrix build included, vs exactextract called once per raster
  and vs one exactextract call over a 20-band raster;
- the full per-block index arithmetic (mask, reflectance, NDVI, NDBI, MNDWI, albedo, LST) vs a
  numpy copy of the same input bytes (the memory-bandwidth floor).

The city row (issue 19) times ``uhi compute --force`` on the demo city (default 30 km, 6 scenes
per summer x 7 summers = 42 scenes, ~389k cells) against the floor measured in the same run:
every band compute reads, of every scene, read and decoded with rasterio alone in compute's
windows (256-row bands) on compute's threads. ``ratio`` there is compute / floor (target <= 3).
A row before it times compute's scene pass alone (reads, index kernel, zonal sums, day merge,
composites) in a fresh process on the same scenes, with its ratio to the same floor.
Knobs: ``BENCH_COMPUTE_SIZE_KM`` / ``BENCH_COMPUTE_SCENES_PER_YEAR`` shrink the city for a quick
look; ``BENCH_COMPUTE_FROM=<dir>`` reuses a kept run (``<dir>/demo/config.yaml`` and the fetched
scenes in ``<dir>/ws/fetch``, e.g. ``bench_pipeline.py``'s ``BENCH_PIPELINE_KEEP`` folder), which
is linked (or copied) into a fresh workspace and never written to; without it the bench writes
its own demo and fetches it. ``--city`` runs that row alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_RASTERS = 20
SIDE_PX = 560  # 16.8 km: ~120k zoom-19 cells at 51 deg N


def _row(**kw: object) -> None:
    print(json.dumps({"bench": "compute", **kw}), flush=True)


def _best(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _setup(tmp: Path):
    import geopandas as gpd
    import rasterio
    import shapely
    from pyproj import Transformer
    from rasterio.transform import from_origin
    from shapely.geometry import box

    from uhi.grid.cells import cell_quads, tiles_for_geometry

    crs = "EPSG:32612"
    transform = from_origin(699990.0, 5665020.0, 30.0, 30.0)
    shape = (SIDE_PX, SIDE_PX)
    tr = Transformer.from_crs(crs, 4326, always_xy=True)
    left, top = transform.c, transform.f
    right, bottom = left + SIDE_PX * 30.0, top - SIDE_PX * 30.0
    w, s = tr.transform(left + 60, bottom + 60)
    e, n = tr.transform(right - 60, top - 60)
    x, y = tiles_for_geometry(box(w, s, e, n), 19)
    quads = cell_quads(x, y, 19, crs)
    rng = np.random.default_rng(0)
    rasters = []
    for _ in range(N_RASTERS):
        r = 30 + 4 * rng.standard_normal(shape)
        r[rng.random(shape) < 0.1] = np.nan
        rasters.append(r)
    path = tmp / "r1.tif"  # for rasterstats, which reads files
    with rasterio.open(path, "w", driver="GTiff", height=SIDE_PX, width=SIDE_PX, count=1,
                       dtype="float64", crs=crs, transform=transform, nodata=np.nan) as dst:
        dst.write(rasters[1], 1)
    polys = shapely.polygons(np.concatenate([quads, quads[:, :1]], axis=1))
    frame = gpd.GeoDataFrame({"id": np.arange(len(polys))}, geometry=polys, crs=crs)
    return crs, transform, shape, quads, rasters, path, frame


def _ee_source(raster: np.ndarray, transform, crs: str, name: str):
    """exactextract's in-memory raster source: its fastest input (no GDAL reads per polygon)."""
    from exactextract.raster import NumPyRasterSource
    from pyproj import CRS

    rows, cols = raster.shape
    xmin, ymax = transform.c, transform.f
    return NumPyRasterSource(
        raster, xmin, ymax + rows * transform.e, xmin + cols * transform.a, ymax,
        nodata=np.nan, name=name, srs_wkt=CRS.from_user_input(crs).to_wkt(),
    )


def bench_zonal() -> None:
    from exactextract import exact_extract

    from uhi.grid.zonal import build_coverage, zonal_means, zonal_stats

    with tempfile.TemporaryDirectory() as tmpdir:
        crs, transform, shape, quads, rasters, path, frame = _setup(Path(tmpdir))
        n_cells = len(quads)
        build_coverage(quads[:10], transform, shape)  # numba compile/cache load, not timed
        t0 = time.perf_counter()
        cov = build_coverage(quads, transform, shape)
        build_s = time.perf_counter() - t0
        zonal_means(cov, rasters[0])
        per_raster_s = _best(lambda: zonal_means(cov, rasters[1]), repeat=5)
        stats_s = _best(lambda: zonal_stats(cov, rasters[1]), repeat=3)

        t0 = time.perf_counter()
        ref = exact_extract(_ee_source(rasters[1], transform, crs, "r1"), frame, ["mean"], output="pandas")
        ee_s = time.perf_counter() - t0
        ours = zonal_means(cov, rasters[1])
        value_range = float(np.nanmax(rasters[1]) - np.nanmin(rasters[1]))
        max_diff = float(np.nanmax(np.abs(ours - ref["mean"].to_numpy())) / value_range)
        _row(case=f"zonal means per reused raster, {n_cells // 1000}k cells", uhi_s=per_raster_s,
             anchor="exactextract mean (in-memory)", anchor_s=ee_s, target=">=1000x",
             note=f"max |diff| = {max_diff:.1e} of the value range; matrix built once in {build_s:.2f} s")
        _row(case=f"zonal mean/std/min/max per raster, {n_cells // 1000}k", uhi_s=stats_s,
             anchor="exactextract mean", anchor_s=ee_s, target="", note="all four statistics + valid share")

        t0 = time.perf_counter()
        cov20 = build_coverage(quads, transform, shape)
        for r in rasters:
            zonal_means(cov20, r)
        uhi20_s = time.perf_counter() - t0
        _row(case=f"{N_RASTERS} rasters end to end (build incl.)", uhi_s=uhi20_s,
             anchor=f"exactextract x{N_RASTERS} calls", anchor_s=ee_s * N_RASTERS, target=">=5x",
             note=f"anchor = {N_RASTERS} x the measured single call ({ee_s:.1f} s)")
        t0 = time.perf_counter()
        sources = [_ee_source(r, transform, crs, f"r{i}") for i, r in enumerate(rasters)]
        exact_extract(sources, frame, ["mean"], output="pandas")
        ee_stack_s = time.perf_counter() - t0
        _row(case=f"{N_RASTERS} rasters end to end (build incl.)", uhi_s=uhi20_s,
             anchor=f"exactextract 1 call {N_RASTERS} rasters", anchor_s=ee_stack_s, target=">=5x",
             note="one call: exactextract computes each polygon's coverage once for all rasters")
        try:
            from rasterstats import zonal_stats as rs_zonal
        except ImportError:
            _row(case="zonal means per raster", anchor="rasterstats", note="rasterstats not installed")
            return
        # rasterstats loops in Python per polygon: time a 5k-cell subset and scale linearly
        sub = frame.iloc[:5000]
        t0 = time.perf_counter()
        rs_zonal(sub, str(path), stats=["mean"], nodata=np.nan)
        rs_s = (time.perf_counter() - t0) * n_cells / len(sub)
        _row(case=f"zonal means per reused raster, {n_cells // 1000}k cells", uhi_s=per_raster_s,
             anchor="rasterstats mean", anchor_s=rs_s, target="",
             note="5k-cell subset scaled to all cells; pixel-centre rasterisation, not coverage-weighted")


def bench_indices() -> None:
    from uhi.config import MaskingConfig
    from uhi.raster.indices import compute_block

    rng = np.random.default_rng(1)
    shape = (2048, 2048)
    dns = {k: rng.integers(7273, 43636, shape, dtype=np.uint16)
           for k in ("blue", "green", "red", "nir08", "swir16", "swir22")}
    dns["lwir11"] = rng.integers(40000, 50000, shape, dtype=np.uint16)
    dns["qa_pixel"] = rng.choice(np.array([21824, 21952, 22280, 1], dtype=np.uint16), shape)
    masking = MaskingConfig()
    compute_block({k: v[:64, :64] for k, v in dns.items()}, masking)  # warm-up (compile)
    ours = _best(lambda: compute_block(dns, masking), repeat=3)
    arrays = list(dns.values())
    floor = _best(lambda: [a.copy() for a in arrays], repeat=5)
    mb = sum(a.nbytes for a in arrays) / 1e6
    _row(case=f"index arithmetic, {shape[0]}x{shape[1]} px x 8 bands", uhi_s=ours,
         anchor="numpy copy of the input", anchor_s=floor, ratio=floor / ours, target=">=0.5x",
         note=f"{mb:.0f} MB of DNs; ratio = floor / uhi (1 = at memory bandwidth)")


FULL_SIDE_PX = 7680  # a whole Landsat scene is ~7,700 x 7,700 px


def _write_full_scene(folder: Path) -> dict[str, Path]:
    """Eight bands of a full-size scene (smooth DNs, so the files stay small), row band by band."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.windows import Window

    transform = from_origin(500000.0, 5700000.0, 30.0, 30.0)
    keys = ("blue", "green", "red", "nir08", "swir16", "swir22", "lwir11", "qa_pixel")
    paths = {k: folder / f"{k}.tif" for k in keys}
    profile = dict(driver="GTiff", height=FULL_SIDE_PX, width=FULL_SIDE_PX, count=1, dtype="uint16",
                   crs="EPSG:32612", transform=transform, tiled=True, blockxsize=512, blockysize=512,
                   compress="deflate")
    cols = np.arange(FULL_SIDE_PX)
    dsts = {k: rasterio.open(p, "w", **profile) for k, p in paths.items()}
    try:
        for r0 in range(0, FULL_SIDE_PX, 512):
            rows = np.arange(r0, min(FULL_SIDE_PX, r0 + 512))[:, None]
            wave = np.sin(rows / 97.0) + np.cos(cols / 131.0)
            win = Window(0, r0, FULL_SIDE_PX, len(rows))
            for i, k in enumerate(keys[:6]):
                dsts[k].write((15000 + 2000 * i + 4000 * wave).astype(np.uint16), 1, window=win)
            dsts["lwir11"].write((44000 + 1500 * wave).astype(np.uint16), 1, window=win)
            qa = np.where(wave > 1.6, 22280, 21824).astype(np.uint16)  # some cloud
            dsts["qa_pixel"].write(qa, 1, window=win)
    finally:
        for d in dsts.values():
            d.close()
    return paths


def bench_full_scene() -> None:
    """Run in a child process: peak memory of one whole scene through the windowed task."""
    import datetime as dt
    import resource

    from pyproj import Transformer
    from shapely.geometry import box

    from uhi.config import MaskingConfig
    from uhi.grid.cells import cell_quads, tiles_for_geometry
    from uhi.grid.zonal import build_coverage
    from uhi.raster.indices import SceneTask, process_scene, scene_grid
    from uhi.raster.scene import Scene

    with tempfile.TemporaryDirectory() as tmpdir:
        paths = _write_full_scene(Path(tmpdir))
        base_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        scene = Scene("LC08_L2SP_042025_20200701_20200801_02_T1", dt.date(2020, 7, 1), "L2SP", paths, {})
        crs, transform, shape = scene_grid(scene)
        tr = Transformer.from_crs(crs, 4326, always_xy=True)
        w, s = tr.transform(transform.c + 30 * 2000, transform.f - 30 * 5000)
        e, n = tr.transform(transform.c + 30 * 4000, transform.f - 30 * 3000)  # a 60 km city
        x, y = tiles_for_geometry(box(w, s, e, n), 17)
        t0 = time.perf_counter()
        cov = build_coverage(cell_quads(x, y, 17, crs), transform, shape)
        res = process_scene(SceneTask(scene, MaskingConfig(), coverage=cov, out_dir=Path(tmpdir) / "out"))
        seconds = time.perf_counter() - t0
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        in_mb = FULL_SIDE_PX * FULL_SIDE_PX * 2 * len(paths) / 1e6
        out_mb = FULL_SIDE_PX * FULL_SIDE_PX * (4 * 5 + 1) / 1e6
        _row(case=f"whole scene {FULL_SIDE_PX}x{FULL_SIDE_PX} px, {len(x) // 1000}k cells", uhi_s=seconds,
             anchor="", target="bounded memory",
             note=f"peak RSS {peak_mb:.0f} MB (before: {base_mb:.0f} MB) for {in_mb:.0f} MB of DNs in "
                  f"and {out_mb:.0f} MB of rasters out; 6 COGs written; clear px {res.clear_px / 1e6:.0f}M")


GEOJSON_CELLS = int(os.environ.get("BENCH_COMPUTE_GEOJSON_CELLS", "100000"))


def bench_geojson() -> None:
    """One per-date GeoJSON of ``outputs.geojson_max_cells`` cells (the default limit): uhi's
    writer against pyogrio (GDAL's GeoJSON driver) and the standard library's json on the same
    table; both anchors write the same features (7-decimal coordinates, 6-decimal floats)."""
    import geopandas as gpd
    import pyogrio
    import shapely

    from uhi.grid.cells import quadkeys
    from uhi.writers.geojson import geojson_geometries, write_geojson

    side = int(np.ceil(np.sqrt(GEOJSON_CELLS)))
    x0, y0 = 94_000, 171_000  # zoom-19 tiles near Calgary
    x, y = np.meshgrid(np.arange(x0, x0 + side), np.arange(y0, y0 + side))
    x, y = x.ravel()[:GEOJSON_CELLS], y.ravel()[:GEOJSON_CELLS]
    n = 2**19
    lon0, lon1 = x / n * 360 - 180, (x + 1) / n * 360 - 180
    lat = lambda t: np.degrees(np.arctan(np.sinh(np.pi * (1 - 2 * t / n))))  # noqa: E731
    polys = shapely.box(lon0, lat(y + 1), lon1, lat(y))
    rng = np.random.default_rng(3)
    cols = {"cell": quadkeys(x, y, 19), "date": "2020-07-01"}
    for name in ("lst_c", "ndvi", "ndbi", "mndwi", "albedo", "valid_share", "water_share", "water_lst_c",
                 "lst_uncertainty_k", "anomaly_c"):
        v = rng.normal(size=len(x))
        v[rng.random(len(x)) < 0.1] = np.nan
        cols[name] = v
    cols["scene_id"] = "LC08_L2SP_041025_20200701_02_T1"
    frame = gpd.GeoDataFrame(cols, geometry=polys, crs="EPSG:4326")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        geometry_json = geojson_geometries(frame)
        t0 = time.perf_counter()
        write_geojson(frame, tmp / "uhi.geojson", geometry_json=geometry_json)
        uhi_s = time.perf_counter() - t0
        size_mb = (tmp / "uhi.geojson").stat().st_size / 1e6
        t0 = time.perf_counter()
        pyogrio.write_dataframe(frame, tmp / "ogr.geojson", driver="GeoJSON",
                                layer_options={"COORDINATE_PRECISION": 7, "SIGNIFICANT_FIGURES": 15})
        ogr_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        props = frame.drop(columns="geometry")
        records = props.astype(object).where(props.notna(), None).to_dict("records")
        geoms = [json.loads(g) for g in geometry_json]
        doc = {"type": "FeatureCollection", "features": [
            {"type": "Feature", "id": r["cell"], "properties": r, "geometry": g} for r, g in zip(records, geoms, strict=True)]}
        (tmp / "json.geojson").write_text(json.dumps(doc, separators=(",", ":")))
        json_s = time.perf_counter() - t0
    _row(case=f"per-date GeoJSON, {len(x) // 1000}k cells x 12 columns", uhi_s=round(uhi_s, 3),
         anchor="pyogrio write_dataframe", anchor_s=round(ogr_s, 3), target=">=1x",
         note=f"{size_mb:.0f} MB ({size_mb * 1e6 / len(x):.0f} B a cell); geometries serialised once per city")
    _row(case=f"per-date GeoJSON, {len(x) // 1000}k cells x 12 columns", uhi_s=round(uhi_s, 3),
         anchor="stdlib json.dumps of the features", anchor_s=round(json_s, 3), target=">=1x",
         note="anchor builds one dict per feature in Python, as a plain writer would")


def _uhi() -> list[str]:
    exe = Path(sys.executable).with_name("uhi")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "uhi.cli.main"]


def _city_workspace(base: Path, size_km: float, per_year: int) -> tuple[Path, Path, float]:
    """(config, workspace with the scenes fetched, seconds spent preparing them)."""
    t0 = time.perf_counter()
    kept = os.environ.get("BENCH_COMPUTE_FROM")
    ws = base / "ws"
    # the demo city straddles UTM zones 11/12 beyond ~8 km; its scenes are in 32612
    crs = ["--set", "city.crs=EPSG:32612"]
    if kept:
        config = Path(kept) / "demo" / "config.yaml"
        source = Path(kept) / "ws"
        if not config.is_file() or not (source / "fetch" / "scenes.geojson").is_file():
            raise SystemExit(f"BENCH_COMPUTE_FROM={kept}: needs demo/config.yaml and ws/fetch/scenes.geojson")

        def link(src: str, dst: str) -> None:
            try:
                os.link(src, dst)  # compute only reads the clips: a hard link cannot change them
            except OSError:
                shutil.copy2(src, dst)

        shutil.copytree(source / "fetch", ws / "fetch", copy_function=link)
        shutil.copy2(source / "manifest.json", ws / "manifest.json")
    else:
        demo = base / "demo"
        subprocess.run([*_uhi(), "-q", "demo", str(demo), "--size-km", f"{size_km:g}",
                        "--scenes-per-year", str(per_year)], check=True, capture_output=True, text=True)
        config = demo / "config.yaml"
        subprocess.run([*_uhi(), "-q", "fetch", str(config), "--workdir", str(ws), *crs],
                       check=True, capture_output=True, text=True)
    return config, ws, time.perf_counter() - t0


def _read_floor(ws: Path) -> tuple[float, float, int, int, int]:
    """Read and decode every band compute reads, in compute's windows, on compute's threads.

    Returns (wall s, CPU s of this process, bytes decoded, scenes, threads).
    """
    from concurrent.futures import ThreadPoolExecutor

    import rasterio
    from rasterio.windows import Window

    from uhi.raster.indices import GDAL_CACHE_MB, ROWS_PER_BLOCK
    from uhi.raster.scene import load_scenes
    from uhi.workspace import Workspace

    scenes = load_scenes(Workspace(ws))  # lists the files only; the reads below are rasterio's

    def read_scene(scene) -> int:
        # compute reads every asset it lists, except lwir11 of a scene without surface temperature
        paths = [p for k, p in scene.assets.items() if k != "lwir11" or scene.has_thermal]
        decoded = 0
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB):
            handles = [rasterio.open(p) for p in paths]
            try:
                rows, cols = handles[0].shape
                for r0 in range(0, rows, ROWS_PER_BLOCK):
                    win = Window(0, r0, cols, min(ROWS_PER_BLOCK, rows - r0))
                    for h in handles:
                        decoded += h.read(1, window=win).nbytes
            finally:
                for h in handles:
                    h.close()
        return decoded

    threads = min(len(scenes), os.cpu_count() or 1, 4)  # what compute uses (uhi/stages/compute.py)
    t0, c0 = time.perf_counter(), time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        decoded = sum(pool.map(read_scene, scenes))
    return time.perf_counter() - t0, time.process_time() - c0, decoded, len(scenes), threads


def _scene_pass_child(config_path: str, workdir: str) -> None:
    """In a fresh process: compute's scene pass alone (uhi.stages.compute._scene_pass: the
    scenes read, converted, summed per cell and merged per day, the composites written), after
    the cells are built; prints its wall and CPU seconds and the peak RSS as JSON."""
    import resource

    from uhi.aoi import load_aoi
    from uhi.cli.common import build_run_config
    from uhi.grid.cells import build_cells
    from uhi.raster.scene import load_scenes
    from uhi.stages import compute
    from uhi.workspace import Workspace

    config = build_run_config(Path(config_path), workdir=Path(workdir), set_values=["city.crs=EPSG:32612"])
    ws = Workspace(Path(workdir))
    scenes = load_scenes(ws)
    aoi = load_aoi(config.city)
    cells = build_cells(aoi.geometry, config.grid.zoom, aoi.crs)
    x, y = cells["tile_x"].to_numpy(), cells["tile_y"].to_numpy()
    t0, c0 = time.perf_counter(), time.process_time()
    passed = compute._scene_pass(config, ws, scenes, cells, x, y)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(json.dumps({"wall_s": wall, "cpu_s": cpu, "days": len(passed.days),
                      "composites": len(passed.composite_paths),
                      "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))


def bench_city() -> None:
    size_km = float(os.environ.get("BENCH_COMPUTE_SIZE_KM", "30"))
    per_year = int(os.environ.get("BENCH_COMPUTE_SCENES_PER_YEAR", "6"))
    with tempfile.TemporaryDirectory(prefix="uhi-bench-compute-") as tmpdir:
        config, ws, prep_s = _city_workspace(Path(tmpdir), size_km, per_year)
        load = os.getloadavg()[0]
        _read_floor(ws)  # warm the page cache: both sides then read from memory
        floors = [_read_floor(ws) for _ in range(2)]
        floor_s, floor_cpu, decoded, n_scenes, threads = min(floors)
        child = subprocess.run([sys.executable, __file__, "--scene-pass-child", str(config), str(ws)],
                               capture_output=True, text=True)
        if child.returncode != 0:
            print(child.stderr[-3000:], file=sys.stderr)
            raise SystemExit(child.returncode)
        scene_pass = json.loads(child.stdout.strip().splitlines()[-1])
        timer = ["/usr/bin/time", "-v"] if Path("/usr/bin/time").exists() else []
        t0 = time.perf_counter()
        proc = subprocess.run(
            [*timer, *_uhi(), "-q", "compute", str(config), "--workdir", str(ws),
             "--set", "city.crs=EPSG:32612", "--force", "--json"],
            capture_output=True, text=True,
        )
        compute_s = time.perf_counter() - t0
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(proc.returncode)
        summary = json.loads(proc.stdout)
        stage = next((s for s in summary.get("stages", []) if s.get("name") == "compute"), {})
        cells = (stage.get("summary") or {}).get("cells", "?")
        cpu_s = sum(float(m.group(1)) for m in re.finditer(r"(?:User|System) time \(seconds\): ([\d.]+)", proc.stderr))
        peak = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
        peak_gb = int(peak.group(1)) / 2**20 if peak else float("nan")
        out_gb = sum(p.stat().st_size for p in (ws / "compute").rglob("*") if p.is_file()) / 1e9
        case = f"demo {size_km:g} km, {n_scenes} scenes"
        _row(case=f"{case}: read-and-decode floor", uhi_s=round(floor_s, 3), anchor="", anchor_s=None,
             target="", note=f"rasterio alone, {decoded / 1e6:.0f} MB decoded in 256-row windows on "
                             f"{threads} threads; CPU {floor_cpu:.1f} s; load {load:.1f} at start")
        _row(case=f"{case}: compute's scene pass", uhi_s=round(scene_pass["wall_s"], 2),
             anchor="read-and-decode floor", anchor_s=round(floor_s, 3),
             ratio=round(scene_pass["wall_s"] / floor_s, 2), target="",
             note=f"reads, index kernel, zonal sums, {scene_pass['days']} days merged, "
                  f"{scene_pass['composites']} composites written; CPU {scene_pass['cpu_s']:.1f} s "
                  f"(floor {floor_cpu:.1f} s); peak RSS {scene_pass['peak_gb']:.2f} GB; coverage built "
                  "inside, cells before")
        _row(case=f"{case}: uhi compute --force", uhi_s=round(compute_s, 2),
             anchor="read-and-decode floor", anchor_s=round(floor_s, 3), ratio=round(compute_s / floor_s, 2),
             target="<=3x floor",
             note=f"ratio = compute / floor; stage {stage.get('seconds', float('nan')):.1f} s of the "
                  f"process; CPU {cpu_s:.1f} s; peak RSS {peak_gb:.2f} GB; {cells} cells; compute/ "
                  f"holds {out_gb:.2f} GB; scenes ready in {prep_s:.0f} s")


if __name__ == "__main__":
    if sys.argv[1:] == ["--full-scene"]:
        bench_full_scene()
        sys.exit(0)
    if sys.argv[1:2] == ["--scene-pass-child"]:
        _scene_pass_child(*sys.argv[2:4])
        sys.exit(0)
    if sys.argv[1:] == ["--city"]:
        bench_city()
        sys.exit(0)
    if sys.argv[1:] == ["--geojson"]:
        bench_geojson()
        sys.exit(0)
    bench_geojson()
    bench_indices()
    bench_zonal()
    subprocess.run([sys.executable, __file__, "--full-scene"], check=True)
    bench_city()

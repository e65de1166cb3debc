"""The compute stage: scenes -> per-scene COGs, the cell grid, the cell x date panel, SUHI, outputs."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from uhi.config import Config
from uhi.errors import NoDataError
from uhi.panel import DatePanel
from uhi.stages.runner import StageSpec
from uhi.workspace import Workspace, remove_tree, safe_component

__all__ = ["SPEC", "run", "VARIABLE_NOTES"]

log = logging.getLogger("uhi.compute")

PANEL_VARIABLES = ("lst_c", "ndvi", "ndbi", "mndwi", "albedo")
# scenes submitted per worker thread and not yet merged into their day (bounds memory: ~80 MB
# a scene at 389k cells and 1,071 x 1,071 px)
_SCENES_AHEAD_PER_THREAD = 2
# scenes between two returns of the freed heap to the system (uhi.heap)
_TRIM_EVERY_SCENES = 8
# arrays kept for the next scenes (uhi.buffers): the ~7 scenes in circulation at 2 threads on
# the 30 km city take ~110 MB each; released when the scenes are done, before the panel
_POOL_BYTES = 768 * 2**20

VARIABLE_NOTES = {
    "cell": "quadkey of the web-mercator tile (zoom in the zoom column)",
    "date": "local solar day of the acquisition (same-day scenes merged)",
    "scene_id": "STAC item id(s) behind the row, '+'-joined when merged",
    "platform": "Landsat platform(s) behind the row (landsat-4 .. landsat-9), '+'-joined when same-day scenes of two platforms merged",
    "lst_c": "land surface temperature, degrees C: coverage-weighted mean over the cell's clear land pixels (water excluded) of USGS ST_B10 (DN x 0.00341802 + 149 - 273.15)",
    "lst_c_std": "coverage-weighted standard deviation of LST within the cell, degrees C",
    "lst_c_min": "minimum LST of the valid pixels touching the cell, degrees C",
    "lst_c_max": "maximum LST of the valid pixels touching the cell, degrees C",
    "ndvi": "NDVI (B5 - B4) / (B5 + B4) on surface reflectance (Rouse 1974)",
    "ndbi": "NDBI (B6 - B5) / (B6 + B5) (Zha et al. 2003)",
    "mndwi": "MNDWI (B3 - B6) / (B3 + B6) (Xu 2006)",
    "albedo": "broadband albedo, Liang 2001 (or Smith 2010 when indices.albedo = smith)",
    "valid_share": "share of the cell area covered by clear (unmasked) pixels, land or water, 0..1",
    "water_lst_c": "coverage-weighted mean LST of the cell's clear water pixels that date, degrees C (never in lst_c)",
    "lst_uncertainty_k": "coverage-weighted mean USGS ST_QA uncertainty of the clear land pixels behind lst_c, kelvin (DN x 0.01; NaN without ST_QA)",
    "anomaly_c": "LST minus the rural reference mean of the same date, degrees C",
    "area_m2": "geodesic cell area on the WGS 84 ellipsoid, m2",
    "water_share": "share of the cell's clear pixels flagged water (QA_PIXEL bit 7, else MNDWI > 0 on unclipped reflectance): per date in the panel, over all dates in cells.parquet",
    "urban": "cell counted as urban for the SUHI (see the suhi sheet for the rule)",
    "building_count": "buildings whose representative point lies in the cell",
    "footprint_area_m2": "built ground inside the cell: area of the union of clipped footprints (overlaps once), m2",
    "site_coverage": "footprint area / cell area (0..1): the share of the ground that is built",
    "block_coverage": "footprint area / street-block area inside the cell (needs a blocks layer)",
    "height_mean_m": "footprint-area-weighted mean building height, m",
    "height_max_m": "tallest building touching the cell, m",
    "floors_mean": "footprint-area-weighted mean number of storeys (column, else height / storey height)",
    "floor_area_m2": "sum of clipped footprint x storeys (unknown storeys count as 1), m2",
    "far": "floor area ratio: floor area / cell area (can exceed 1, unlike site coverage)",
    "landuse_entropy": "Shannon entropy -sum p ln p of land-use area shares in the cell",
    "population": "population in the cell (points summed, polygons by area share)",
}


def _inputs(config: Config, ws: Workspace) -> list[Path]:
    files = [ws.scenes_index, *ws.files_under(ws.path("fetch", "scenes"))]
    b = config.buildings
    for p in (config.city.aoi, b.path, b.blocks_path, b.landuse_path, b.population_path, b.zones_path, config.suhi.elevation_path):
        if p is not None:
            files.append(Path(p))
    return files


def run(config: Config, ws: Workspace) -> dict[str, Any]:
    """Compute LST and indices per scene, aggregate onto cells, add morphology and SUHI.

    Raises
    ------
    NoDataError
        No scene, or no clear pixel in any scene (exit 3).
    """

    from concurrent.futures import ThreadPoolExecutor

    import shapely

    from uhi.aoi import load_aoi
    from uhi.grid.cells import build_cells, cell_quads
    from uhi.heap import return_free_heap
    from uhi.morphology import cell_morphology
    from uhi.raster.scene import load_scenes

    scenes = load_scenes(ws)
    aoi = load_aoi(config.city)
    cells = build_cells(aoi.geometry, config.grid.zoom, aoi.crs)
    if len(cells) == 0:
        raise NoDataError("the area of interest covers no tile; check city.aoi / city.bbox")
    log.info("compute: %d scenes, %d cells at zoom %d", len(scenes), len(cells), config.grid.zoom)
    x, y = cells["tile_x"].to_numpy(), cells["tile_y"].to_numpy()

    stage = ws.stage_dir("compute")
    for sub in ("scenes", "outputs"):
        remove_tree(stage / sub)  # a symlinked folder is unlinked, never followed

    passed = _scene_pass(config, ws, scenes, cells, x, y)
    used, no_clear, days = passed.used, passed.no_clear, passed.days
    water_w, water_v, composite_paths = passed.water_w, passed.water_v, passed.composite_paths
    pixel_grids = passed.pixel_grids
    del passed
    return_free_heap()
    if not used:
        raise NoDataError(
            f"no clear pixel in any of the {len(scenes)} scene(s) "
            f"({', '.join(scenes[i].scene_id for i in sorted(no_clear))}): every "
            "pixel is cloud, shadow, fill or masked; widen the dates or lower search.max_cloud"
        )
    panel = _panel(cells, days)
    del days
    with np.errstate(invalid="ignore", divide="ignore"):
        water_share = np.where(water_w > 0, water_v / np.where(water_w > 0, water_w, 1), np.nan)
    quads = cell_quads(x, y, config.grid.zoom, aoi.crs)
    cell_polys = shapely.polygons(np.concatenate([quads, quads[:, :1]], axis=1))
    morph, report = cell_morphology(cell_polys, config.buildings, aoi.crs)
    for col in morph.columns:
        cells[col] = morph[col].to_numpy()
    cells["water_share"] = water_share

    classes, series = _suhi(config, cells, panel, aoi.crs)
    cells["urban"] = classes.urban
    panel.values["anomaly_c"] = series[1]
    suhi_table = series[0]
    del series  # the anomaly lives on in the panel only, and goes with it
    return_free_heap()

    # panel.parquet is encoded on a side thread (Arrow's Parquet writer runs without the GIL)
    # while this one writes the cell table and the people's outputs and takes the per cell
    # and year means from the panel. The panel (1.8 GB at 389k cells x 42 dates) is dropped
    # before the GeoPackage's layers are built and written: GDAL holds the GIL (on a thread
    # it only delayed the rest), and on top of the panel it held the 30 km city's peak
    # (3.6 GB; 3.5 with the layers built while the panel was written). Parallel writers once
    # raised that peak from 5.5 to 6.7 GB (issue 19): they converted a pandas panel to Arrow.
    with ThreadPoolExecutor(1, thread_name_prefix="uhi-panel") as panel_writer:
        panel_job = panel_writer.submit(_write_panel, ws, panel)
        _write_cells_table(ws, cells, aoi.crs, classes.method)
        outputs = _write_outputs(config, ws, cells, panel, suhi_table, composite_paths)
        return_free_heap()
        want_gpkg = "gpkg" in config.outputs.formats
        year_arrays = _cell_year_arrays(panel) if want_gpkg else None
        panel_job.result()
    dates, rows, cell_keys = panel.n_dates, panel.rows, panel.cells
    uncertainty = _uncertainty_summary(panel.flat("lst_uncertainty_k"))
    del panel
    return_free_heap()
    if year_arrays is not None:
        layers = _gpkg_layers(cells, cell_keys, year_arrays, aoi.geometry, config.city.name)
        del year_arrays
        outputs.append(_write_gpkg(ws, layers))
        del layers
        return_free_heap()
    summary: dict[str, Any] = {
        "scenes": len(scenes),
        "scenes_used": len(used),
        "scenes_no_clear": len(no_clear),
        "dates": dates,
        "cells": len(cells),
        "pixel_grids": pixel_grids,
        "rows": rows,
        "suhi_method": classes.method,
        "suhi_reference": classes.rural_report,
        "lst_uncertainty_k": uncertainty,
        "outputs": outputs,
    }
    if report is not None:
        summary["buildings"] = report.buildings
        summary["buildings_repaired"] = report.repaired
        summary["building_parts"] = report.parts
    # the per-date SUHI of the workbook's "suhi" sheet, so the report reads it, never recomputes it
    summary["suhi_series"] = _suhi_records(suhi_table)
    summary["suhi_trend"] = _suhi_trend(suhi_table)
    return summary


@dataclass
class _ScenePass:
    """What the scene pass hands the rest of the stage."""

    days: list[tuple[Any, str, str, dict[str, np.ndarray]]]  # (day, scene ids, platforms, _day_columns)
    water_w: np.ndarray  # per cell, clear weight over all dates (pixel units)
    water_v: np.ndarray  # per cell, water weight over all dates
    used: list[int]  # positions in the scene list of the scenes with clear pixels
    no_clear: list[int]  # and of those without
    composite_paths: list[str]  # the yearly composites written (workspace paths)
    pixel_grids: int


def _scene_pass(config: Config, ws: Workspace, scenes: list[Any], cells: Any, x: np.ndarray, y: np.ndarray) -> _ScenePass:
    """Every scene read, converted and summed per cell, merged per solar day; the yearly
    composites written as the years finish.

    The scenes run on worker threads (or Dask) in day order and come back in that order while
    the next ones are read: at most ``_SCENES_AHEAD_PER_THREAD`` per thread are held, so the
    main thread's day merges and composite sums overlap the reads (the former chunks of 8
    scenes left both cores idle while each chunk was reduced).
    """
    import dataclasses
    from concurrent.futures import Future, ThreadPoolExecutor

    from uhi.buffers import ArrayPool
    from uhi.grid.cells import cell_quads
    from uhi.grid.zonal import build_coverage, grid_key
    from uhi.heap import return_free_heap
    from uhi.parallel import dask_client, imap_tasks
    from uhi.progress import StageBar
    from uhi.raster.composite import YearlyMeans
    from uhi.raster.indices import ROWS_PER_BLOCK, VARIABLES, SceneTask, process_scene, scene_grid
    from uhi.raster.scene import group_by_solar_day

    stage = ws.stage_dir("compute")
    # one coverage matrix per pixel grid, shared by every scene and band on it
    coverages: dict[Any, Any] = {}
    grids: dict[Any, tuple[Any, Any]] = {}  # grid key -> (crs, transform)
    grid_of: list[Any] = []
    want_composites = "cog" in config.outputs.formats
    tasks = []
    for scene in scenes:
        crs, transform, shape = scene_grid(scene)
        key = grid_key(crs, transform, shape)
        if key not in coverages:
            coverages[key] = build_coverage(cell_quads(x, y, config.grid.zoom, crs), transform, shape)
            coverages[key].row_blocks(ROWS_PER_BLOCK)  # split once here, not in every task
            grids[key] = (crs, transform)
        grid_of.append(key)
        tasks.append(
            SceneTask(
                scene=scene,
                masking=config.masking,
                albedo_variant=config.indices.albedo,
                coverage=coverages[key],
                out_dir=(stage / "scenes" / safe_component(scene.scene_id)) if config.outputs.scene_rasters else None,
                keep_rasters=want_composites,
            )
        )
    log.info("compute: %d pixel grid(s), coverage built once each", len(coverages))

    # Each solar day is reduced to its panel columns as soon as its scenes are back: a scene's
    # accumulators take 19 float64 per cell (59 MB at 389k cells), so only the scenes in
    # flight are held, never the whole run's.
    position = {id(s): i for i, s in enumerate(scenes)}
    day_scenes = [(day, [position[id(s)] for s in group]) for day, group in group_by_solar_day(scenes).items()]
    platform_of = {s.scene_id: s.platform for s in scenes}
    threads = min(len(tasks), os.cpu_count() or 1, 4)
    out = _ScenePass([], np.zeros(len(cells)), np.zeros(len(cells)), [], [], [], len(coverages))
    # yearly composites summed as the scenes come back, in scene order (uhi.raster.composite);
    # a year is written as soon as the days have moved past it, so one year's sums are held,
    # a file per job on two threads (GDAL compresses without the GIL): the last year's five
    # files, written after the scenes, then take half the wall time
    composites = YearlyMeans()
    composite_jobs: list[Future[str]] = []
    order = [i for _, ix in day_scenes for i in ix]
    # the scenes' arrays go back to a pool once read and the next scenes take them: no fresh
    # pages to fault in per scene (uhi.buffers); threads only, Dask workers allocate their own
    pool = ArrayPool(_POOL_BYTES)
    # shares the run's client when `uhi run` opened one for the same settings (uhi.parallel)
    with dask_client(config.dask.address, config.dask.workers) as client, StageBar(
        len(tasks), desc="compute", unit="scene"
    ) as bar, ThreadPoolExecutor(2, thread_name_prefix="uhi-composites") as composite_writer:
        if client is None:
            tasks = [dataclasses.replace(task, pool=pool) for task in tasks]
        results = imap_tasks(
            process_scene, [tasks[i] for i in order], threads=threads, client=client,
            ahead=_SCENES_AHEAD_PER_THREAD * threads, bar=bar,
        )
        since_trim = 0
        for di, (day, ix) in enumerate(day_scenes):
            day_stats = []
            for i in ix:
                res = next(results)
                if res.clear_px == 0 or not (res.clear_weight > 0).any():
                    out.no_clear.append(i)
                    log.warning(
                        "scene %s: no clear pixel over the area of interest (cloud, fill or masked); skipped",
                        scenes[i].scene_id,
                    )
                    continue
                if not res.has_thermal:
                    log.warning(
                        "scene %s: no surface temperature (L2SR or no lwir11); LST skipped, indices kept",
                        scenes[i].scene_id,
                    )
                out.used.append(i)
                if res.rasters is not None:
                    composites.add(grid_of[i], scenes[i].solar_day.year, res.rasters)
                    pool.give(*res.rasters.values())
                    res.rasters = None
                day_stats.append(res)
            if day_stats:
                # same solar day, several scenes (adjacent rows of one path): pool their sums per cell
                merged = day_stats[0]
                for other in day_stats[1:]:
                    merged.merge(other)
                platforms = sorted({platform_of.get(sid) or "unknown" for sid in merged.scene_ids})
                columns = _day_columns(merged, config.compute.min_valid_share)
                out.days.append((day, "+".join(merged.scene_ids), "+".join(platforms), columns))
                out.water_w += merged.water.sum_w
                out.water_v += merged.water.sum_wv + merged.water.shift * merged.water.sum_w
                # the day's sums are read: their arrays serve the next scenes, unless a column
                # kept a view of them
                held = [a for stats in day_stats if stats.acc_set is not None for a in stats.acc_set.arrays()]
                if not any(np.may_share_memory(col, a) for col in columns.values() for a in held):
                    for stats in day_stats:
                        stats.release(pool)
                del merged
            del day_stats
            since_trim += len(ix)
            if since_trim >= _TRIM_EVERY_SCENES:
                return_free_heap()  # the scenes' arrays and accumulators (see _panel)
                since_trim = 0
            next_year = day_scenes[di + 1][0].year if di + 1 < len(day_scenes) else None
            for year in composites.years():
                if next_year is None or year < next_year:
                    composite = composites.pop(year)
                    for var in VARIABLES:
                        if composite is not None and var in composite.means:
                            composite_jobs.append(
                                composite_writer.submit(
                                    _write_composite, ws, stage / "outputs" / "composites", composite, var, grids
                                )
                            )
        results.close()  # every scene is back: the worker threads end here, not at garbage collection
        out.composite_paths = [job.result() for job in composite_jobs]
    pool.clear()
    return out


def _suhi_trend(suhi_table: Any) -> dict[str, Any] | None:
    """OLS trend per decade of the yearly mean SUHI, with its 95 % interval (uhi.stats.trend);
    None with fewer than three years."""
    from uhi.stats.trend import linear_trend, yearly_means

    years, means = yearly_means(
        suhi_table["date"].dt.year.to_numpy(), suhi_table["suhi_c"].to_numpy(dtype=np.float64)
    )
    trend = linear_trend(years, means)
    if trend is None:
        return None
    return {**trend.as_dict(), "unit": "degC per decade",
            "yearly_suhi_c": {str(int(y)): float(m) for y, m in zip(years, means, strict=True)}}


def _suhi_records(suhi_table: Any) -> list[dict[str, Any]]:
    """Per date: SUHI intensity (degrees C), urban and rural mean LST, urban and rural cell counts."""
    out = []
    for row in suhi_table.itertuples(index=False):
        rec: dict[str, Any] = {"date": f"{row.date:%Y-%m-%d}"}
        for key in ("suhi_c", "urban_lst_c", "rural_lst_c"):
            value = float(getattr(row, key))
            rec[key] = value if np.isfinite(value) else None
        rec["n_urban"], rec["n_rural"] = int(row.n_urban), int(row.n_rural)
        out.append(rec)
    return out


def _uncertainty_summary(values: np.ndarray) -> dict[str, Any] | None:
    """Median and 90th percentile of the cell-date LST uncertainties (K); None without ST_QA.

    USGS ST_QA per pixel (Laraby & Schott 2018), averaged per cell: a statement of precision,
    not of the known summer warm bias (docs/science.md), which uhi does not correct.
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return None
    return {
        "median": round(float(np.median(finite)), 4),
        "p90": round(float(np.percentile(finite, 90)), 4),
        "cell_dates": int(finite.size),
    }


def _day_columns(stats: Any, min_valid_share: float = 0.0) -> dict[str, np.ndarray]:
    """One solar day's panel columns (float64, one value per cell) from its accumulators.

    The variables are means over the cell's clear land pixels; ``water_share`` and
    ``valid_share`` count land and water alike. A cell whose ``valid_share`` is below
    ``min_valid_share`` (``compute.min_valid_share``: clouds, fill, Landsat 7 SLC-off stripes)
    gets NaN variables; its ``valid_share`` still says how much was clear.
    """
    lst = stats.accumulators["lst_c"].result()
    cols = {var: lst["mean"] if var == "lst_c" else stats.accumulators[var].mean() for var in PANEL_VARIABLES}
    cols["lst_c_std"] = lst["std"]
    cols["lst_c_min"] = lst["min"]
    cols["lst_c_max"] = lst["max"]
    with np.errstate(invalid="ignore", divide="ignore"):
        share = stats.water.sum_w / stats.cell_area_px
    cols["valid_share"] = np.clip(np.nan_to_num(share, nan=0.0), 0.0, 1.0)
    cols["water_share"] = stats.water.mean()
    cols["water_lst_c"] = stats.water_lst.mean()
    cols["lst_uncertainty_k"] = stats.uncertainty.mean()
    if min_valid_share > 0:
        too_little = cols["valid_share"] < min_valid_share
        for name, values in cols.items():
            if name != "valid_share":
                values[too_little] = np.nan
    return cols


def _panel(cells: Any, days: list[tuple[Any, str, str, dict[str, np.ndarray]]]) -> DatePanel:
    """The cell x date panel, date-major (row d of a variable is day d), from per-day columns.

    Each variable is one ``(days, cells)`` array filled day by day; no per-row key is built
    (the long pandas table of the 30 km city held 3.3 GB, mostly its key and string columns).
    Empties the per-day column dicts as it goes.
    """
    from uhi.heap import return_free_heap

    n = len(cells)
    values: dict[str, np.ndarray] = {}
    for var in list(days[0][3]):
        column = np.empty((len(days), n), dtype=np.float64)
        for d, (*_, cols) in enumerate(days):
            column[d] = cols.pop(var)
        values[var] = column
        # the day arrays just freed (3 MB each at 389k cells) sit in glibc's heap, not in
        # its mmap'd blocks: without a trim the panel's columns stack on top of them and the
        # 30 km city's compute peaked here at 5.8 GB (issue 19)
        return_free_heap()
    return DatePanel(
        cells=np.array([str(c) for c in cells["cell"].tolist()], dtype=object),
        dates=np.array([np.datetime64(day, "ns") for day, *_ in days], dtype="datetime64[ns]"),
        scene_ids=np.array([str(sid) for _, sid, _, _ in days], dtype=object),
        platforms=np.array([str(platform) for _, _, platform, _ in days], dtype=object),
        values=values,
    )


def _suhi(config: Config, cells: Any, panel: DatePanel, crs: str) -> tuple[Any, tuple[Any, np.ndarray]]:
    import warnings

    from uhi.suhi import classify_cells, sample_elevation, suhi_series

    ndbi = panel.values["ndbi"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cells never observed: NaN, no warning
        ndbi_mean = np.nanmean(ndbi, axis=0)
    have_buildings = config.buildings.path is not None
    elevation = None
    if config.suhi.elevation_path is not None:
        elevation = sample_elevation(
            Path(config.suhi.elevation_path), cells["x_m"].to_numpy(), cells["y_m"].to_numpy(), crs
        )
    classes = classify_cells(
        cells["x_m"].to_numpy(),
        cells["y_m"].to_numpy(),
        ndbi_mean,
        cells["water_share"].to_numpy(dtype=np.float64),
        cells["site_coverage"].to_numpy(dtype=np.float64) if have_buildings else None,
        config.suhi,
        elevation_m=elevation,
        tile_xy=(cells["tile_x"].to_numpy(), cells["tile_y"].to_numpy()),
        area_m2=cells["area_m2"].to_numpy(dtype=np.float64),
    )
    if classes.rural_report.get("warning"):
        log.warning("compute: %s", classes.rural_report["warning"])
    return classes, suhi_series(panel.dates, panel.values["lst_c"], classes)


def _write_cells_table(ws: Workspace, cells: Any, crs: str, suhi_method: str) -> None:
    """cells.parquet: GeoParquet with the working CRS and the SUHI rule in its metadata."""
    import pyarrow.parquet as pq
    from geopandas.io.arrow import _geopandas_to_arrow

    table = _geopandas_to_arrow(cells, index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"uhi:working_crs"] = crs.encode()
    meta[b"uhi:suhi_method"] = suhi_method.encode()
    with ws.atomic_path(ws.cells) as tmp:
        pq.write_table(table.replace_schema_metadata(meta), tmp)


def _write_panel(ws: Workspace, panel: DatePanel) -> None:
    """panel.parquet straight from the date-major arrays (uhi.writers.parquet.write_panel):
    DataFrame.to_parquet on a pandas table of the same rows converted all 16M rows of the
    30 km city to Arrow first (issue 19)."""
    from uhi.writers.parquet import write_panel

    with ws.atomic_path(ws.panel) as tmp:
        write_panel(panel, tmp)


def _write_outputs(
    config: Config,
    ws: Workspace,
    cells: Any,
    panel: DatePanel,
    suhi_table: Any,
    composite_paths: list[str],
) -> list[str]:
    """GeoJSON per date, the Excel summary and the yearly mean composites (per outputs.formats)."""
    import pandas as pd

    from uhi.writers.excel import write_workbook
    from uhi.writers.geojson import geojson_geometries, write_geojson

    out_dir = ws.path("compute", "outputs")
    formats = set(config.outputs.formats)
    written: list[str] = []
    city = config.city.name
    # the per-date water share replaces the all-dates one in a date's file
    static = [c for c in cells.columns if c not in ("tile_x", "tile_y", "zoom", "x_m", "y_m", "water_share")]
    if "geojson" in formats:
        per_date = [
            "cell", *PANEL_VARIABLES, "valid_share", "water_share", "water_lst_c", "lst_uncertainty_k",
            "anomaly_c", "scene_id",
        ]
        # the panel is date-major, n cells per date in cell order (see _panel): slices, not a
        # groupby, whose iteration takes a sorted copy of the whole panel
        n = len(cells)
        geometry_json = geojson_geometries(cells)  # the same cells every date: serialise once
        path = out_dir / f"{city}_cells.geojson"
        cell_columns = [c for c in cells.columns if c not in ("tile_x", "tile_y", "zoom", "x_m", "y_m")]
        write_geojson(cells[cell_columns], path, geometry_json=geometry_json)
        written.append(ws.relative(path))
        # the static columns live in the cells file; the wide form repeats them on every date
        on_dates = static if config.outputs.geojson_wide else ["cell", cells.geometry.name]
        max_cells = config.outputs.geojson_max_cells
        per_date_files = n <= max_cells
        if not per_date_files:
            dates = panel.n_dates
            per_date_mb = n * _GEOJSON_BYTES_PER_CELL_DATE / 1e6
            log.info(
                "compute: per-date GeoJSON not written: %d cells is above outputs.geojson_max_cells "
                "(%d); set outputs.geojson_max_cells to %d or more to write its %d files of about "
                "%.0f MB each (%.1f GB); the same values are in compute/panel.parquet and the "
                "GeoPackage (compute/compute.gpkg, <workspace>/%s.gpkg)",
                n, max_cells, n, dates, per_date_mb, per_date_mb * dates / 1e3, city,
            )
        for d in range(panel.n_dates if per_date_files else 0):
            date = pd.Timestamp(panel.dates[d])
            # a date's values are in the cells' order (see _panel): columns side by side, no join
            frame = cells[on_dates].reset_index(drop=True)
            for col in per_date[1:]:
                frame[col] = np.full(n, panel.scene_ids[d], dtype=object) if col == "scene_id" else panel.values[col][d]
            frame.insert(1, "date", date)
            path = out_dir / f"{city}_outputs_{date:%Y-%m-%d}.geojson"
            write_geojson(frame, path, geometry_json=geometry_json)
            written.append(ws.relative(path))
    if "excel" in formats:
        by_date = _by_date(panel)
        suhi = suhi_table.copy()
        notes = {k: v for k, v in VARIABLE_NOTES.items()}
        notes["suhi_c"] = "surface UHI intensity: mean LST of urban cells minus that of the rural reference cells"
        notes["suhi method"] = str(suhi["method"].iloc[0]) if len(suhi) else ""
        path = out_dir / f"{city}_summary.xlsx"
        write_workbook(path, {"city_by_date": by_date, "suhi": suhi}, notes=notes)
        written.append(ws.relative(path))
    if "cog" in formats:
        written += composite_paths  # written while the scenes were processed (run)
    return written


# size of one cell's feature in a per-date GeoJSON: 400-500 bytes measured on the 30 km demo
# city (155-195 MB a date at 389,375 cells; the lean form, 7-decimal coordinates)
_GEOJSON_BYTES_PER_CELL_DATE = 450


_YEAR_VARIABLES = (*PANEL_VARIABLES, "anomaly_c", "valid_share", "water_share")


def _cell_year_arrays(panel: DatePanel) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Per cell (in the panel's order) and year: dates with LST and the mean of each variable.

    Returns the years ascending, the ``(cells, years)`` counts of dates with an LST value and
    per variable of ``_YEAR_VARIABLES`` its ``(cells, years)`` means over the year's dates,
    NaN skipped, with the same compensated sums in date order as pandas' grouped mean, so the
    values are bit for bit ``groupby(["cell", "year"]).mean()``'s (a groupby over the 16M rows
    of the 30 km city sorted and factorised them first: ~8 % of the stage, issue 19).
    """
    from uhi.stats.grouped import compensated_column_means

    years = panel.years
    if np.any(np.diff(years) < 0):
        raise ValueError("the panel's dates must be ascending")
    uniq, first = np.unique(years, return_index=True)
    # the dates are ascending, so a year's rows are one contiguous block: views, no copies
    blocks = [slice(int(a), int(b)) for a, b in zip(first, [*first[1:], len(years)], strict=True)]
    lst = panel.values["lst_c"]
    counts = np.stack([np.count_nonzero(~np.isnan(lst[b]), axis=0) for b in blocks], axis=1).astype(np.int64)
    means = {
        var: np.stack([compensated_column_means(panel.values[var][b]) for b in blocks], axis=1)
        for var in _YEAR_VARIABLES
    }
    return uniq.astype(np.int64), counts, means


def _cell_years_table(cell_keys: np.ndarray, years: np.ndarray, counts: np.ndarray, means: dict[str, np.ndarray]) -> Any:
    """The ``cell_years`` table as Arrow, from the panel's cell keys and :func:`_cell_year_arrays`:
    ``cell``, ``year``, ``dates`` and the means, rows sorted by cell, then year, as
    ``groupby(["cell", "year"])`` orders them."""
    import pyarrow as pa

    order = np.argsort(cell_keys, kind="stable")
    n_years = len(years)
    sorted_keys = pa.array(np.asarray(cell_keys[order], dtype=object), pa.string())
    columns: dict[str, Any] = {
        "cell": sorted_keys.take(pa.array(np.repeat(np.arange(len(order), dtype=np.int32), n_years))),
        "year": pa.array(np.tile(years, len(order))),
        "dates": pa.array(counts[order].ravel()),
    }
    for var, values in means.items():
        columns[var] = pa.array(values[order].ravel(), from_pandas=True)  # NaN as null, as pandas gives it
    return pa.table(columns)


def _cell_years(panel: DatePanel) -> Any:
    """Per cell and year: the mean of every panel variable over the year's dates (the summer).

    The table ``panel.to_frame().groupby(["cell", "year"]).mean()`` gives, with ``dates`` (the
    count of LST values) first: rows sorted by cell, then year (see :func:`_cell_year_arrays`).
    """
    return _cell_years_table(panel.cells, *_cell_year_arrays(panel)).to_pandas()


def _by_date(panel: DatePanel) -> Any:
    """The workbook's ``city_by_date`` sheet: per date, the scene(s) and the city's statistics.

    The values of ``groupby("date")`` over the long table, bit for bit, one date's contiguous
    row at a time (Kahan means as pandas sums them, its grouped Welford standard deviation,
    numpy's median, which takes the same middle values), without factorising a 16M-row date
    column.
    """
    import warnings

    import pandas as pd

    from uhi.stats.grouped import compensated_column_means

    means = ("lst_c", "ndvi", "ndbi", "mndwi", "albedo", "valid_share", "water_share", "water_lst_c")
    one_group = np.zeros(panel.n_cells, dtype=np.intp)
    records = []
    for d in range(panel.n_dates):
        lst = panel.values["lst_c"][d]
        # a date's row as one (cells, 1) column: a view (stacking the variables side by side
        # took 0.9 s of strided copies at 389k cells x 42 dates)
        mean = {name: compensated_column_means(panel.values[name][d][:, None])[0] for name in means}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a date without LST: NaN, no warning
            lst_min, lst_max = np.nanmin(lst), np.nanmax(lst)
            # the mean of the two middle values for an even count, as pandas' grouped median
            uncertainty_median = np.nanmedian(panel.values["lst_uncertainty_k"][d])
        records.append({
            "date": pd.Timestamp(panel.dates[d]),
            "scene_id": panel.scene_ids[d],
            "cells_with_lst": int(np.count_nonzero(~np.isnan(lst))),
            "lst_c_mean": mean["lst_c"],
            "lst_c_std": float(pd.Series(lst).groupby(one_group).std().iloc[0]),
            "lst_c_min": lst_min,
            "lst_c_max": lst_max,
            **{f"{name}_mean": mean[name] for name in means[1:]},
            "lst_uncertainty_k_median": float(uncertainty_median),
        })
    frame = pd.DataFrame.from_records(records)
    frame["date"] = frame["date"].astype("datetime64[ns]")
    return frame.sort_values("date", kind="stable").reset_index(drop=True)


def _gpkg_layers(
    cells: Any,
    cell_keys: np.ndarray,
    year_arrays: tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]],
    aoi_geometry: Any,
    city: str,
) -> dict[str, Any]:
    """compute.gpkg's layers: ``aoi``, ``cells`` (+ the latest summer's means), ``cell_years``,
    from the cells, the panel's cell keys and :func:`_cell_year_arrays` (no panel needed)."""
    import geopandas as gpd

    years, counts, means = year_arrays
    latest = len(years) - 1
    # the cells in their own order, the latest year's means beside them (no join)
    layer = cells.assign(
        summer_year=int(years[latest]),
        dates_summer=counts[:, latest],
        **{f"{var}_summer": values[:, latest] for var, values in means.items()},
    )
    # an Arrow table straight to GDAL: no 2.7M-row DataFrame (30 km city) and no copy of it
    cell_years = _cell_years_table(cell_keys, years, counts, means)
    aoi = gpd.GeoDataFrame({"city": [city]}, geometry=[aoi_geometry], crs="EPSG:4326")
    return {"aoi": aoi, "cells": layer, "cell_years": cell_years}


def _write_gpkg(ws: Workspace, layers: dict[str, Any]) -> str:
    """compute/compute.gpkg from :func:`_gpkg_layers`."""
    from uhi.writers.gpkg import write_gpkg

    path = ws.stage_dir("compute") / "compute.gpkg"
    write_gpkg(path, layers)
    return ws.relative(path)


def _write_composite(ws: Workspace, folder: Path, year: Any, var: str, grids: dict[Any, tuple[Any, Any]]) -> str:
    """Write one variable's mean composite of one year (``<var>_<year>.tif``); its workspace path."""
    from uhi.raster.indices import write_composite

    crs, transform = grids[year.grid]
    path = folder / f"{var}_{year.year}.tif"
    write_composite(path, year.means[var], var, crs, transform)
    return ws.relative(path)


SPEC = StageSpec(
    name="compute",
    config_sections=("city", "masking", "grid", "compute", "indices", "buildings", "suhi", "outputs"),
    inputs=_inputs,
    run=run,
)

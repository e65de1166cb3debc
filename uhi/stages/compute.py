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
# pyarrow's default maximum row-group length (ParquetWriter.write_table, row_group_size=None)
_PANEL_ROW_GROUP = 1024 * 1024

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
    panel["anomaly_c"] = series[1]
    suhi_table = series[0]
    return_free_heap()

    # one writer after the other: writing the Parquet tables, the GeoPackage and the people's
    # outputs on parallel threads saved wall time but raised the 30 km demo city's peak from
    # 5.5 GB to 6.7 GB (issue 19), so they stay sequential
    _write_tables(ws, cells, panel, aoi.crs, classes.method)
    return_free_heap()
    outputs = _write_outputs(config, ws, cells, panel, suhi_table, composite_paths)
    return_free_heap()
    if "gpkg" in config.outputs.formats:
        outputs.append(_write_gpkg(ws, cells, panel, aoi.geometry, config.city.name))
    summary: dict[str, Any] = {
        "scenes": len(scenes),
        "scenes_used": len(used),
        "scenes_no_clear": len(no_clear),
        "dates": len(panel) // len(cells),
        "cells": len(cells),
        "pixel_grids": pixel_grids,
        "rows": len(panel),
        "suhi_method": classes.method,
        "suhi_reference": classes.rural_report,
        "lst_uncertainty_k": _uncertainty_summary(panel["lst_uncertainty_k"].to_numpy(dtype=np.float64)),
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


def _panel(cells: Any, days: list[tuple[Any, str, str, dict[str, np.ndarray]]]) -> Any:
    """The tidy cell x date table (date-major: day i is rows i*n..(i+1)*n) from per-day columns.

    Built column by column and left unconsolidated: one pandas block of all float columns
    would copy the whole table once more (1.3 GB at 389k cells x 42 days). Empties the
    per-day column dicts as it goes.
    """
    import pandas as pd

    from uhi.heap import return_free_heap

    n = len(cells)
    k = len(days)
    panel = pd.DataFrame({"cell": np.tile(cells["cell"].to_numpy(), k)})
    panel["date"] = np.repeat(np.array([np.datetime64(day, "ns") for day, *_ in days]), n)
    panel["year"] = np.repeat(np.array([day.year for day, *_ in days], dtype=np.int64), n)
    panel["scene_id"] = np.repeat(np.array([sid for _, sid, _, _ in days], dtype=object), n)
    panel["platform"] = np.repeat(np.array([platform for _, _, platform, _ in days], dtype=object), n)
    for var in list(days[0][3]):
        panel[var] = np.concatenate([cols.pop(var) for *_, cols in days])
        # the day arrays just freed (3 MB each at 389k cells) sit in glibc's heap, not in
        # its mmap'd blocks: without a trim the panel's columns stack on top of them and the
        # 30 km city's compute peaked here at 5.8 GB (issue 19)
        return_free_heap()
    for col in ("cell", "scene_id", "platform"):
        panel[col] = panel[col].astype(str)
    return panel


def _suhi(config: Config, cells: Any, panel: Any, crs: str) -> tuple[Any, tuple[Any, np.ndarray]]:
    import warnings

    from uhi.suhi import classify_cells, sample_elevation, suhi_series

    n = len(cells)
    cell_pos = np.tile(np.arange(n), len(panel) // n)
    ndbi = panel["ndbi"].to_numpy(dtype=np.float64).reshape(-1, n)
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
    return classes, suhi_series(panel, cell_pos, classes)


def _write_tables(ws: Workspace, cells: Any, panel: Any, crs: str, suhi_method: str) -> None:
    """cells.parquet (GeoParquet with the working CRS in its metadata) and panel.parquet."""
    import pyarrow.parquet as pq
    from geopandas.io.arrow import _geopandas_to_arrow

    table = _geopandas_to_arrow(cells, index=False)
    meta = dict(table.schema.metadata or {})
    meta[b"uhi:working_crs"] = crs.encode()
    meta[b"uhi:suhi_method"] = suhi_method.encode()
    with ws.atomic_path(ws.cells) as tmp:
        pq.write_table(table.replace_schema_metadata(meta), tmp)
    # row group by row group: DataFrame.to_parquet would convert the whole panel to Arrow first
    # (another 2.6 GB at 389k cells x 42 days); slices of pyarrow's default row-group length
    # give the same row groups, so the file is byte for byte what to_parquet writes
    import pyarrow as pa

    rows = _PANEL_ROW_GROUP
    with ws.atomic_path(ws.panel) as tmp:
        writer = None
        try:
            for start in range(0, len(panel), rows):
                part = pa.Table.from_pandas(panel.iloc[start : start + rows], preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, part.schema)
                writer.write_table(part)
        finally:
            if writer is not None:
                writer.close()


def _write_outputs(
    config: Config,
    ws: Workspace,
    cells: Any,
    panel: Any,
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
            dates = len(panel) // n if n else 0
            per_date_mb = n * _GEOJSON_BYTES_PER_CELL_DATE / 1e6
            log.info(
                "compute: per-date GeoJSON not written: %d cells is above outputs.geojson_max_cells "
                "(%d); set outputs.geojson_max_cells to %d or more to write its %d files of about "
                "%.0f MB each (%.1f GB); the same values are in compute/panel.parquet and the "
                "GeoPackage (compute/compute.gpkg, <workspace>/%s.gpkg)",
                n, max_cells, n, dates, per_date_mb, per_date_mb * dates / 1e3, city,
            )
        for start in range(0, len(panel) if per_date_files else 0, n):
            rows = panel.iloc[start : start + n]
            date = rows["date"].iloc[0]
            # the date's rows are in the cells' order (see _panel): columns side by side, no join
            frame = cells[on_dates].reset_index(drop=True)
            for col in per_date[1:]:
                frame[col] = rows[col].to_numpy()
            frame.insert(1, "date", date)
            path = out_dir / f"{city}_outputs_{date:%Y-%m-%d}.geojson"
            write_geojson(frame, path, geometry_json=geometry_json)
            written.append(ws.relative(path))
    if "excel" in formats:
        g = panel.groupby("date", sort=True)
        by_date = pd.DataFrame(
            {
                "scene_id": g["scene_id"].first(),
                "cells_with_lst": g["lst_c"].count(),
                "lst_c_mean": g["lst_c"].mean(),
                "lst_c_std": g["lst_c"].std(),
                "lst_c_min": g["lst_c"].min(),
                "lst_c_max": g["lst_c"].max(),
                "ndvi_mean": g["ndvi"].mean(),
                "ndbi_mean": g["ndbi"].mean(),
                "mndwi_mean": g["mndwi"].mean(),
                "albedo_mean": g["albedo"].mean(),
                "valid_share_mean": g["valid_share"].mean(),
                "water_share_mean": g["water_share"].mean(),
                "water_lst_c_mean": g["water_lst_c"].mean(),
                "lst_uncertainty_k_median": g["lst_uncertainty_k"].median(),
            }
        ).reset_index()
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


def _cell_years(panel: Any, n_cells: int) -> Any:
    """Per cell and year: the mean of every panel variable over the year's dates (the summer).

    The table ``panel.groupby(["cell", "year"]).mean()`` gives, computed on the date-major
    layout (day i is rows i*n..(i+1)*n, see :func:`_panel`) with the same compensated sums as
    pandas' grouped mean, so the values are bit for bit pandas' (a groupby over the 16M rows of
    the 30 km city sorted and factorised them first: ~8 % of the stage, issue 19).
    """
    import pandas as pd

    from uhi.stats.grouped import compensated_column_means

    n = n_cells
    k = len(panel) // n
    cell = panel["cell"].to_numpy()[:n]
    years = panel["year"].to_numpy()[::n]
    uniq = np.unique(years)
    order = np.argsort(cell, kind="stable")  # groupby sorts the keys: cell, then year
    out: dict[str, Any] = {
        "cell": np.repeat(cell[order], len(uniq)),
        "year": np.tile(uniq.astype(np.int64), n),
    }
    rows_of = [np.flatnonzero(years == y) for y in uniq]
    lst = panel["lst_c"].to_numpy(dtype=np.float64).reshape(k, n)
    counts = np.stack([(~np.isnan(lst[r])).sum(axis=0) for r in rows_of], axis=1)  # (n, years)
    out["dates"] = counts[order].ravel().astype("int64")
    for var in _YEAR_VARIABLES:
        values = panel[var].to_numpy(dtype=np.float64).reshape(k, n)
        means = np.stack([compensated_column_means(values[r]) for r in rows_of], axis=1)
        out[var] = means[order].ravel()
    return pd.DataFrame(out)


def _write_gpkg(ws: Workspace, cells: Any, panel: Any, aoi_geometry: Any, city: str) -> str:
    """compute/compute.gpkg: layers ``aoi``, ``cells`` (+ latest-year means), ``cell_years``."""
    import geopandas as gpd

    from uhi.writers.gpkg import write_gpkg

    years = _cell_years(panel, len(cells))
    latest = int(years["year"].max())
    last = years[years["year"] == latest].drop(columns="year").add_suffix("_summer")
    layer = cells.merge(last, left_on="cell", right_on="cell_summer", how="left")
    layer = layer.drop(columns="cell_summer")
    layer.insert(layer.columns.get_loc("dates_summer"), "summer_year", latest)
    aoi = gpd.GeoDataFrame({"city": [city]}, geometry=[aoi_geometry], crs="EPSG:4326")
    path = ws.stage_dir("compute") / "compute.gpkg"
    write_gpkg(path, {"aoi": aoi, "cells": layer, "cell_years": years})
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

"""The forecast stage: per-cell exponential smoothing, model-based LST projection, RCP8.5 long term."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from uhi.config import Config
from uhi.errors import InputError, NoDataError
from uhi.stages.runner import StageSpec
from uhi.workspace import Workspace

__all__ = ["SPEC", "run", "run_table", "read_table", "forecast_table", "per_id_frame", "validation_frame", "VariableForecast"]

log = logging.getLogger("uhi.forecast")

# Excel holds 1,048,576 rows and writing cells one by one is slow; above this many cells the
# per-cell table lives only in forecast.geojson
_MAX_EXCEL_CELLS = 100_000

# Earth circumference at the equator in EPSG:3857 metres: tile sizes and the COG grid
_WEB_MERCATOR_SPAN_M = 2 * np.pi * 6378137.0


def _inputs(config: Config, ws: Workspace) -> list[Path]:
    files = [ws.panel, ws.cells]
    if ws.model_summary.is_file():
        files.append(ws.model_summary)
    if config.forecast.rcp_table is not None:
        files.append(Path(config.forecast.rcp_table))
    return files


@dataclass(frozen=True)
class VariableForecast:
    """One variable's regular series and forecasts over the same ids.

    Attributes
    ----------
    name
        Variable (column) name.
    values, counts
        ids x steps step means and observation counts.
    result
        ``uhi.stats.ets.SeriesForecast`` of every id.
    """

    name: str
    values: np.ndarray
    counts: np.ndarray
    result: Any


def _future_labels(last_step: int, horizon: int, step: str) -> list[str]:
    from uhi.stats.series import step_labels

    return step_labels(np.arange(last_step + 1, last_step + horizon + 1), step)


def _step_year(steps: np.ndarray, step: str) -> np.ndarray:
    return steps // 12 if step == "month" else steps


def forecast_table(
    table: Any,
    *,
    id_col: str,
    time_col: str,
    value_cols: list[str],
    horizon: int,
    step: str,
    holdout: int = 2,
    coverage: float = 0.9,
    methods: tuple[str, ...] = ("simple", "holt", "damped"),
    min_points: int = 4,
    months: tuple[int, ...] = (6, 7, 8),
    horizon_name: str = "--horizon",
    align: str = "common",
) -> tuple[Any, list[VariableForecast]]:
    """Regularise a long table and forecast every (id, value column) series.

    Returns
    -------
    series, forecasts
        The ``RegularSeries`` and one ``VariableForecast`` per value column.
    """
    from uhi.stats.series import regularise

    rs = regularise(
        table, value_cols, id_col=id_col, time_col=time_col, step=step, months=months, align=align
    )
    return rs, _forecast_variables(
        rs, value_cols, horizon=horizon, holdout=holdout, coverage=coverage, methods=methods,
        min_points=min_points, horizon_name=horizon_name,
    )


def _forecast_variables(
    rs: Any,
    value_cols: list[str],
    *,
    horizon: int,
    holdout: int,
    coverage: float,
    methods: tuple[str, ...],
    min_points: int,
    horizon_name: str,
) -> list[VariableForecast]:
    """One ``VariableForecast`` per value column of a ``RegularSeries``."""
    from uhi.stats.ets import check_horizon, forecast_series

    if rs.n_steps == 0:
        raise InputError(f"no usable rows in the table (report: {rs.report}); check --time-col and the dates")
    check_horizon(horizon, rs.n_steps, name=horizon_name)
    from uhi.progress import progress

    out = []
    # one step per variable (each fits every series of the table); a terminal shows the bar
    for var in progress(value_cols, total=len(value_cols), desc="forecast", unit="variable"):
        res = forecast_series(
            rs.values[var], horizon, holdout=min(holdout, rs.n_steps - 1), coverage=coverage,
            methods=methods, min_points=min_points,
        )
        out.append(VariableForecast(var, rs.values[var], rs.counts[var], res))
    return out


def per_id_frame(rs: Any, forecasts: list[VariableForecast], id_name: str) -> Any:
    """One row per id: status, method, parameters, RMSE, forecasts and intervals per variable."""
    import pandas as pd

    from uhi.stats.series import step_labels

    last = int(rs.steps[-1])
    cols: dict[str, Any] = {id_name: rs.ids}
    per_series_end = rs.last_step is not None
    if per_series_end:
        # each series forecast from its own end: steps named h1..hH after last_step
        cols["last_step"] = [
            step_labels(np.array([s]), rs.step)[0] if np.isfinite(s) else "" for s in rs.last_step
        ]
    for vf in forecasts:
        r = vf.result
        v = vf.name
        cols[f"{v}_status"] = r.status
        cols[f"{v}_steps_observed"] = np.sum(vf.counts > 0, axis=1)
        cols[f"{v}_observations"] = vf.counts.sum(axis=1)
        cols[f"{v}_method"] = r.fit.method_names
        cols[f"{v}_alpha"] = r.fit.alpha
        cols[f"{v}_beta"] = r.fit.beta
        cols[f"{v}_phi"] = r.fit.phi
        cols[f"{v}_aicc"] = r.fit.aicc
        cols[f"{v}_rmse"] = r.rmse
        cols[f"{v}_level"] = r.fit.level
        labels = (
            [f"h{h + 1}" for h in range(r.horizon)] if per_series_end
            else _future_labels(last, r.horizon, rs.step)
        )
        for h, label in enumerate(labels):
            cols[f"{v}_{label}"] = r.mean[:, h]
            cols[f"{v}_{label}_lo"] = r.lower[:, h]
            cols[f"{v}_{label}_hi"] = r.upper[:, h]
    return pd.DataFrame(cols)


def validation_frame(forecasts: list[VariableForecast]) -> Any:
    """City summary of the hold-out validation, one row per variable."""
    import pandas as pd

    rows = []
    for vf in forecasts:
        r = vf.result
        ok = np.isfinite(r.rmse)
        rows.append(
            {
                "variable": vf.name,
                "holdout_steps": r.holdout,
                "series": int(r.status.shape[0]),
                "fitted": int(np.sum(r.status == "ok")),
                "too_few_points": int(np.sum(r.status == "too_few_points")),
                "no_data": int(np.sum(r.status == "no_data")),
                "failed": int(np.sum(r.status == "failed")),
                "validated": int(ok.sum()),
                "rmse_mean": float(np.mean(r.rmse[ok])) if ok.any() else float("nan"),
                "rmse_median": float(np.median(r.rmse[ok])) if ok.any() else float("nan"),
                "rmse_p90": float(np.percentile(r.rmse[ok], 90)) if ok.any() else float("nan"),
                **{f"method_{m}": int(np.sum(r.fit.method_names == m)) for m in ("simple", "holt", "damped")},
            }
        )
    return pd.DataFrame(rows)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# the workspace stage


def _read_inputs(
    ws: Workspace, wanted: list[str], max_water_share: float
) -> tuple[Any, np.ndarray | None, Any, list[str], dict[str, Any], int]:
    """The land cells, and their panel's id, date, clear-share and ``wanted`` columns (uhi/panel.py).

    Cells more than ``max_water_share`` water (model.max_water_share) are left out, as in the
    model stage, and so are panel rows of cells absent from cells.parquet (no geometry). The
    panel is returned whole with a mask of its rows to use (None: all): copying 16 million rows
    without the left-out ones took 1 GB on a 30 km city. Returns the panel, the row mask, the
    cells, the wanted names the panel holds, the record of the water cells left out and the
    number of rows of unknown cells.
    """
    import geopandas as gpd

    from uhi.panel import read_panel
    from uhi.stats.water import exclude_water_cells

    for needed in (ws.panel, ws.cells):
        if not needed.is_file():
            raise InputError(f"{ws.relative(needed)} is missing in {ws.root}; run uhi compute first")
    panel = read_panel(ws.panel, ["cell", "date", "valid_share", "platform", *wanted])  # those it has
    _release_arrow_memory()
    dynamic = [v for v in wanted if v in panel.columns]
    all_cells = gpd.read_parquet(ws.cells)
    cells, water = exclude_water_cells(all_cells, max_water_share)
    if water["cells_left_out_water"]:
        if water["cells_left_out_water"] == water["cells"]:
            raise NoDataError(
                f"all {water['cells']} cells are more than {max_water_share:g} water: nothing to forecast; "
                "raise model.max_water_share or choose an AOI with land"
            )
        log.info("forecast: %d water cells left out (model.max_water_share %g)",
                 water["cells_left_out_water"], max_water_share)
    orphan_rows = int((~_isin(panel["cell"], set(all_cells["cell"]))).sum())
    rows: np.ndarray | None = _isin(panel["cell"], set(cells["cell"]))
    if rows is not None and rows.all():
        rows = None
    return panel, rows, cells, dynamic, water, orphan_rows


def _release_arrow_memory() -> None:
    """Return the memory Arrow's allocator (mimalloc) keeps for reuse after a Parquet read.

    Reading a 30 km city's panel (16 million rows) left 700 MB freed but held by the pool,
    which no later step reuses: RSS 1.61 -> 0.92 GB after this call.
    """
    import pyarrow as pa

    pa.default_memory_pool().release_unused()


def _isin(column: Any, values: set[Any]) -> np.ndarray:
    """``column.isin(values)`` as a numpy mask; a categorical (the panel's cell) is tested
    category by category (389k) rather than row by row (16 million rows on a 30 km city)."""
    import pandas as pd

    if isinstance(column.dtype, pd.CategoricalDtype):
        codes = column.cat.codes.to_numpy()
        hit = column.cat.categories.isin(list(values))
        return np.where(codes >= 0, hit[codes], False)
    return np.asarray(column.isin(values).to_numpy(), dtype=bool)


# A scene enters the city series only when at least this share of the cells is clear in it:
# the mean of a few cells at a cloud's edge says little about the city (the demo city's
# truth.json applies the same 10 % rule to its expected summer means).
_MIN_CLEAR_CELL_SHARE = 0.1
# a cell counts as clear in a scene when at least half of its area had valid pixels
_MIN_VALID_SHARE = 0.5


def _scene_means(panel: Any, names: list[str], n_cells: int, rows: np.ndarray | None = None) -> Any:
    """Per scene (date), the city mean of each variable over its clear cells (valid share >= 0.5);
    NaN when fewer than 10 % of the cells are clear. Shared by the city series and the sensor check.
    ``rows`` masks the panel rows to use (None: all)."""
    import pandas as pd

    clear = np.ones(len(panel), dtype=bool) if rows is None else rows
    if "valid_share" in panel.columns:
        clear = clear & (panel["valid_share"].fillna(0).to_numpy() >= _MIN_VALID_SHARE)
    dates = panel["date"][clear]
    # one column's clear rows at a time (the panel has 16 million rows on 30 km); pandas'
    # groupby mean per column, as the frame's groupby computed it
    means, counts = {}, {}
    for name in names:
        grouped = panel[name][clear].groupby(dates, observed=True)
        means[name] = grouped.mean()
        counts[name] = grouped.count()
    mean = pd.DataFrame(means, columns=names)
    count = pd.DataFrame(counts, columns=names)
    mean.index.name = count.index.name = "date"
    return mean.where(count.ge(_MIN_CLEAR_CELL_SHARE * n_cells))


def _city_series(
    per_scene: Any, rs: Any, config: Config, holdout: int
) -> list[Any]:
    """Forecast of each variable's city mean from the per-scene means of :func:`_scene_means`.

    The city value of a step is the mean of its scenes' city means (scene first): every scene
    weighs the same whatever its cloud cover, and a cloudy scene does not pull the step toward
    the part of the city it left visible, as a mean of per-cell step means would.
    """
    import pandas as pd

    from uhi.stats.ets import forecast_series
    from uhi.stats.series import regularise

    fc = config.forecast
    names = list(per_scene.columns)
    table = per_scene.reset_index().assign(city="city")
    city_rs = regularise(
        table, names, id_col="city", time_col="date", step=rs.step, months=config.time.months
    )
    out = []
    for name in names:
        series = np.full(rs.n_steps, np.nan)
        scenes = np.zeros(rs.n_steps, dtype=np.int64)
        if city_rs.n_steps:
            pos = pd.Index(rs.steps).get_indexer(city_rs.steps)
            ok = pos >= 0
            series[pos[ok]] = city_rs.values[name][0][ok]
            scenes[pos[ok]] = city_rs.counts[name][0][ok]
        res = forecast_series(
            series[None, :], fc.horizon, holdout=holdout, coverage=fc.interval,
            methods=fc.methods, min_points=fc.min_points,
        )
        out.append((name, series, scenes, res))
    return out


def _sensor_overlap(panel: Any, per_scene: Any, rows: np.ndarray | None = None) -> dict[str, list[dict[str, Any]]]:
    """Per variable, the overlap-year comparison of sensors' scene city means (docs/forecast.md).

    Scenes enter as in the city series (``per_scene`` of :func:`_scene_means`: cells at least
    half clear, scenes with >= 10 % of the cells); a day merged from two platforms belongs to
    neither sensor and is left out.
    """
    from uhi.landsat import sensor_for
    from uhi.stats.sensors import sensor_steps

    names = list(per_scene.columns)
    if "platform" not in panel.columns or not names:
        return {}
    platform, dates = panel["platform"], panel["date"]
    if rows is not None:
        platform, dates = platform[rows], dates[rows]
    platform = platform.groupby(dates, observed=True).first().reindex(per_scene.index)
    sensors = []
    for value in platform.astype(str):
        sensor = sensor_for(platform=value) if "+" not in value else None
        sensors.append(sensor.name if sensor is not None else None)
    years = per_scene.index.year.to_numpy()
    return {name: sensor_steps(years, per_scene[name].to_numpy(dtype=float), sensors) for name in names}


def _trend_per_step(city: np.ndarray) -> dict[str, float]:
    """Warming trend of the city mean: OLS slope and Holt's fitted trend (per step)."""
    from uhi.stats.ets import fit_ets

    t = np.arange(city.shape[0], dtype=float)
    ok = np.isfinite(city)
    if ok.sum() < 3:
        return {"ols_slope": float("nan"), "holt_trend": float("nan")}
    slope = float(np.polyfit(t[ok], city[ok], 1)[0])
    holt = fit_ets(city[None, :], ("holt",), min_obs=3)
    return {"ols_slope": slope, "holt_trend": float(holt.trend[0])}


def _model_projection(
    ws: Workspace, config: Config, cells: Any, forecasts: dict[str, VariableForecast], horizon: int
) -> tuple[np.ndarray | None, dict[str, Any]]:
    """LST projected by the fitted model from forecast covariates (cells x horizon).

    projection = current LST level + model-implied change from the covariates' change between
    their current smoothed level and their forecast (uhi.scenario.predict_lst_change: dX b,
    with the (I - rho W)^-1 spill-over for lag models). Static covariates do not change.
    """
    from uhi.scenario import predict_lst_change, read_scenario_model

    if not ws.model_summary.is_file():
        log.warning("forecast: model/summary.json not found; skipping the model-based LST projection")
        return None, {"status": "skipped", "reason": "model/summary.json not found; run uhi model"}
    try:
        summary = json.loads(ws.model_summary.read_text(encoding="utf-8"))
        kind = "ols" if "ols" in summary.get("models", summary) else None
        model = read_scenario_model(summary, kind)
    except (InputError, json.JSONDecodeError, AttributeError) as exc:
        log.warning("forecast: cannot use model/summary.json (%s); skipping the model-based projection", exc)
        return None, {"status": "skipped", "reason": str(exc)}
    y = config.model.y
    if y not in forecasts:
        return None, {"status": "skipped", "reason": f"{y} is not forecast"}
    n = len(cells)
    dx = np.zeros((n, horizon, len(model.x)))
    static = []
    for i, v in enumerate(model.x):
        if v in forecasts:
            r = forecasts[v].result
            dx[:, :, i] = r.mean - r.fit.level[:, None]
        else:
            static.append(v)
    bad = ~np.isfinite(dx).all(axis=(1, 2))
    dx[bad] = 0.0
    w = None
    if model.rho is not None or model.lag_coefficients:
        w = _weights_matrix(cells, model.weights)
    level = forecasts[y].result.fit.level
    proj = np.empty((n, horizon))
    for h in range(horizon):
        _, total = predict_lst_change(dx[:, h, :], model, w)
        proj[:, h] = level + total
    proj[bad] = np.nan
    info = {
        "status": "done",
        "model": model.kind,
        "year": model.year,
        "x": list(model.x),
        "coefficients": model.coefficients,
        "rho": model.rho,
        "static_covariates": static,
        "cells_without_covariate_forecast": int(bad.sum()),
        "method": "current LST level + model-implied change from forecast covariates",
    }
    return proj, info


def _weights_matrix(cells: Any, spec: str) -> Any:
    """Row-standardised W built the way the model stage builds it (uhi.stats.weights)."""
    from uhi.stats.weights import weights_for_cells

    return weights_for_cells(cells, spec).row_standardised()


def _tile_grid(cells: Any) -> tuple[np.ndarray, np.ndarray, Any, tuple[int, int]]:
    """Row/col of each cell on the EPSG:3857 tile grid; the grid's affine transform and shape.

    Cells are web-mercator tiles, so in EPSG:3857 they are exactly the pixels of a regular
    grid at the tile resolution: no resampling is involved.
    """
    from rasterio.transform import from_origin

    zoom = int(cells["zoom"].iloc[0])
    tx = cells["tile_x"].to_numpy(np.int64)
    ty = cells["tile_y"].to_numpy(np.int64)
    size_m = _WEB_MERCATOR_SPAN_M / (1 << zoom)
    x0, y0 = int(tx.min()), int(ty.min())
    left = -_WEB_MERCATOR_SPAN_M / 2 + x0 * size_m
    top = _WEB_MERCATOR_SPAN_M / 2 - y0 * size_m
    shape = (int(ty.max() - y0 + 1), int(tx.max() - x0 + 1))
    return ty - y0, tx - x0, from_origin(left, top, size_m, size_m), shape


@dataclass(frozen=True)
class _OutputGeometry:
    """What the writers need of the cells' geometry, prepared once for all of them.

    Attributes
    ----------
    geojson
        Each cell's geometry as GeoJSON text (``uhi.writers.geojson.geojson_geometries``).
    centres
        Cell centres for the workbook's cells sheet (``uhi.writers.excel.cell_centres``).
    tile_grid
        The cells' EPSG:3857 tile grid for the COGs (:func:`_tile_grid`).
    """

    geojson: list[str | None] | None
    centres: Any
    tile_grid: tuple[np.ndarray, np.ndarray, Any, tuple[int, int]] | None


def _output_geometry(cells: Any, formats: set[str]) -> _OutputGeometry:
    import geopandas as gpd

    geo = gpd.GeoDataFrame({"cell": cells["cell"].to_numpy()}, geometry=cells.geometry.values,
                           crs=cells.crs or "EPSG:4326")
    geojson = None
    if "geojson" in formats:
        from uhi.writers.geojson import geojson_geometries

        geojson = geojson_geometries(geo)
    centres = None
    if "excel" in formats and len(cells) <= _MAX_EXCEL_CELLS:
        from uhi.writers.excel import cell_centres

        centres = cell_centres(geo)
    grid = None
    if "cog" in formats and {"tile_x", "tile_y", "zoom"} <= set(cells.columns) and cells["zoom"].nunique() == 1:
        grid = _tile_grid(cells)
    return _OutputGeometry(geojson, centres, grid)


def _write_cogs(
    ws: Workspace, tile_grid: tuple[np.ndarray, np.ndarray, Any, tuple[int, int]] | None, lst: VariableForecast,
    labels: list[str], projection: np.ndarray | None,
) -> list[str]:
    from uhi.writers import raster as raster_writer

    if tile_grid is None:
        log.warning("forecast: cells.parquet lacks one zoom's tile_x/tile_y; no forecast COGs written")
        return []
    rows, cols, transform, shape = tile_grid
    folder = ws.path("forecast", "cogs")
    written = []
    r = lst.result
    names = ["forecast", "lower", "upper"] + (["model_projection"] if projection is not None else [])
    for h, label in enumerate(labels):
        bands = [r.mean[:, h], r.lower[:, h], r.upper[:, h]]
        if projection is not None:
            bands.append(projection[:, h])
        grid = np.full((len(bands), *shape), np.nan, dtype=np.float32)
        for b, values in enumerate(bands):
            grid[b, rows, cols] = values
        path = folder / f"{lst.name}_{label}.tif"
        raster_writer.write_cog(
            path, grid, transform=transform, crs="EPSG:3857", band_names=names,
            units=["degC" if lst.name.endswith("_c") else "1"] * len(names),
            tags={"uhi:variable": lst.name, "uhi:step": label,
                  "uhi:interval": f"{r.coverage:.2f}", "uhi:units": "degC" if lst.name.endswith("_c") else ""},
        )
        written.append(ws.relative(path))
    return written


def run(config: Config, ws: Workspace) -> dict[str, Any]:
    """Forecast every cell's LST and covariates; project LST by the model; add RCP8.5 warming.

    Reads ``compute/panel.parquet``, ``compute/cells.parquet`` and (when present)
    ``model/summary.json``; writes ``forecast/forecast.geojson``, ``forecast/forecast.xlsx``,
    ``forecast/cogs/<var>_<step>.tif`` and ``forecast/summary.json``.
    """
    import pandas as pd

    from uhi.climate import load_warming_table
    from uhi.stats.series import step_labels

    fc = config.forecast
    y = config.model.y
    wanted = list(dict.fromkeys([y, *fc.variables]))
    panel, rows, cells, dynamic, water, orphan_rows = _read_inputs(ws, wanted, config.model.max_water_share)
    static = [v for v in wanted if v not in dynamic and v in cells.columns]
    unknown = [v for v in wanted if v not in dynamic and v not in cells.columns]
    if y not in dynamic:
        raise InputError(f"model.y {y!r} is not a column of compute/panel.parquet; rerun uhi compute")
    if unknown:
        log.warning("forecast: variables %s are in neither panel nor cells; skipped", unknown)
    # cells without any panel row are kept (reported as no_data), in cells.parquet order;
    # panel rows of unknown cells (no geometry) are counted and left out
    if orphan_rows:
        log.warning("forecast: %d panel rows belong to cells absent from cells.parquet; left out", orphan_rows)
    # everything the panel is read for, then the panel is let go: on a 30 km city it is 16
    # million rows, and the fits and writers after it peaked at 4.7 GB while it was kept
    per_scene = _scene_means(panel, dynamic, len(cells), rows)
    overlap = _sensor_overlap(panel, per_scene, rows)
    from uhi.stats.series import regularise

    rs = regularise(
        panel, dynamic, id_col="cell", time_col="date", step="summer" if fc.step == "summer" else "month",
        months=config.time.months, rows=rows,
    )
    del panel, rows
    _release_arrow_memory()  # the panel's columns were Arrow's buffers
    formats: set[str] = set(config.outputs.formats)
    geometry = _output_geometry(cells, formats)
    forecasts = _forecast_variables(
        rs, dynamic, horizon=fc.horizon, holdout=fc.holdout, coverage=fc.interval, methods=fc.methods,
        min_points=fc.min_points, horizon_name="forecast.horizon",
    )
    order = pd.Index(rs.ids).get_indexer(cells["cell"])
    present = order >= 0

    def align(a: np.ndarray, fill: float = np.nan) -> np.ndarray:
        out = np.full((len(cells), *a.shape[1:]), fill if a.dtype.kind == "f" else int(np.nan_to_num(fill)),
                      dtype=a.dtype)
        out[present] = a[order[present]]
        return out

    from uhi.stats.ets import SeriesForecast

    aligned: dict[str, VariableForecast] = {}
    for vf in forecasts:
        r = vf.result
        # a cell without panel rows was never fitted: method -1, no observations
        fills = {"method": -1.0, "n_obs": 0.0}
        fit = type(r.fit)(**{k: align(getattr(r.fit, k), fills.get(k, np.nan))
                             for k in r.fit.__dataclass_fields__})
        status = np.full(len(cells), "no_data", dtype=object)
        status[present] = r.status[order[present]]
        aligned[vf.name] = VariableForecast(
            vf.name, align(vf.values), align(vf.counts),
            SeriesForecast(fit, align(r.mean), align(r.lower), align(r.upper), align(r.rmse),
                           status.astype(str), r.horizon, r.holdout, r.coverage),
        )
    fit_list = [aligned[v] for v in dynamic]
    rs_cells = type(rs)(cells["cell"].to_numpy(), rs.steps, rs.step, {}, {}, rs.report)
    last = int(rs.steps[-1])
    labels = _future_labels(last, fc.horizon, rs.step)

    projection, model_info = _model_projection(ws, config, cells, aligned, fc.horizon)

    # long term: the table's RCP8.5 AIR warming, scaled to LST by the stated assumption
    # forecast.rcp_lst_per_air_k, added to each cell's current LST level
    table = load_warming_table(fc.rcp_table, region=fc.rcp_region)
    base_year = float(_step_year(np.array([last]), rs.step)[0])
    rcp_years = np.array(sorted(fc.rcp_years), dtype=float)
    air_added = table.added(base_year, rcp_years)
    added = fc.rcp_lst_per_air_k * air_added
    lst_level = aligned[y].result.fit.level

    per_cell = per_id_frame(rs_cells, fit_list, "cell")
    if projection is not None:
        for h, label in enumerate(labels):
            per_cell[f"{y}_model_{label}"] = projection[:, h]
    for yr, dc in zip(rcp_years, added, strict=True):
        per_cell[rcp_column(int(yr))] = lst_level + dc
    for v in static:
        per_cell[v] = cells[v].to_numpy()

    city = _city_series(per_scene, rs, config, min(fc.holdout, rs.n_steps - 1))
    city_rows: dict[str, Any] = {"step": step_labels(rs.steps, rs.step) + labels,
                 "kind": ["observed"] * rs.n_steps + ["forecast"] * fc.horizon}
    city_info: dict[str, Any] = {}
    for name, series, n_scenes, res in city:
        city_rows[name] = np.concatenate([series, res.mean[0]])
        city_rows[f"{name}_lo"] = np.concatenate([np.full(rs.n_steps, np.nan), res.lower[0]])
        city_rows[f"{name}_hi"] = np.concatenate([np.full(rs.n_steps, np.nan), res.upper[0]])
        city_rows[f"{name}_scenes"] = np.concatenate([n_scenes, np.zeros(fc.horizon, dtype=int)])
        city_info[name] = {
            "method": str(res.fit.method_names[0]),
            "alpha": float(res.fit.alpha[0]), "beta": float(res.fit.beta[0]), "phi": float(res.fit.phi[0]),
            "forecast": dict(zip(labels, res.mean[0].tolist(), strict=True)),
            "lower": dict(zip(labels, res.lower[0].tolist(), strict=True)),
            "upper": dict(zip(labels, res.upper[0].tolist(), strict=True)),
            "holdout_rmse": float(res.rmse[0]),
            "observed": dict(zip(step_labels(rs.steps, rs.step), series.tolist(), strict=True)),
            "observed_scenes": dict(zip(step_labels(rs.steps, rs.step), n_scenes.tolist(), strict=True)),
            "city_mean": "per step, the mean of its scenes' city means (scenes with >= 10 % of cells clear)",
            "trend_per_step": _trend_per_step(series),
            "sensor_overlap": overlap.get(name, []),
        }
    if projection is not None:
        with np.errstate(invalid="ignore"):
            city_rows[f"{y}_model"] = np.concatenate(
                [np.full(rs.n_steps, np.nan), np.nanmean(projection, axis=0)]
            )
    city_frame = pd.DataFrame(city_rows)
    city_level = float(np.nanmean(lst_level)) if np.isfinite(lst_level).any() else float("nan")
    rng = table.range_added(base_year, rcp_years)
    k_lst = fc.rcp_lst_per_air_k
    rcp_frame = pd.DataFrame(
        {
            "year": rcp_years.astype(int),
            "air_warming_added_c": air_added,
            "air_warming_added_low_c": rng[0] if rng else np.nan,
            "air_warming_added_high_c": rng[1] if rng else np.nan,
            "lst_change_added_c": added,
            "city_lst_rcp85_c": city_level + added,
        }
    )
    validation = validation_frame(fit_list)

    out_dir = ws.stage_dir("forecast")
    written: list[str] = []
    layer = None
    if {"geojson", "gpkg"} & formats:
        import geopandas as gpd

        # built once for both writers (copying 389k rows x 70 columns took seconds each time)
        layer = gpd.GeoDataFrame(per_cell, geometry=cells.geometry.values, crs=cells.crs or "EPSG:4326")
    if "geojson" in formats:
        from uhi.writers.geojson import write_geojson

        write_geojson(layer, out_dir / "forecast.geojson", geometry_json=geometry.geojson)
        written.append("forecast/forecast.geojson")
    if "excel" in formats:
        from uhi.writers.excel import write_workbook

        sheets = {"city_series": city_frame, "cells": per_cell, "validation": validation, "rcp85": rcp_frame}
        notes = _notes(config, rs.step, table.source)
        if len(per_cell) > _MAX_EXCEL_CELLS:
            del sheets["cells"]
            notes["cells"] = (f"{len(per_cell)} cells: too many for a useful sheet (limit "
                              f"{_MAX_EXCEL_CELLS}); the per-cell table is in forecast.geojson")
        centres = geometry.centres if "cells" in sheets else None
        write_workbook(out_dir / "forecast.xlsx", sheets, notes=notes, centres=centres)
        written.append("forecast/forecast.xlsx")
    if "cog" in formats:
        written += _write_cogs(ws, geometry.tile_grid, aligned[y], labels, projection)
    if "gpkg" in formats:
        from uhi.writers.gpkg import write_gpkg

        write_gpkg(out_dir / "forecast.gpkg", {"forecast": layer})
        written.append("forecast/forecast.gpkg")

    from uhi.stats.ets import STATUSES

    status_counts = {v: {s: int(np.sum(aligned[v].result.status == s)) for s in STATUSES}
                     for v in dynamic}
    summary = {
        "step": rs.step,
        "steps": step_labels(rs.steps, rs.step),
        "horizon": fc.horizon,
        "forecast_steps": labels,
        "holdout": min(fc.holdout, rs.n_steps - 1),
        "interval": fc.interval,
        "methods": list(fc.methods),
        "min_points": fc.min_points,
        "variables": dynamic,
        "static_variables": static,
        "skipped_variables": unknown,
        "cells": int(len(cells)),
        "water_cells": water,
        "status": status_counts,
        "input_report": {**rs.report, "rows_of_unknown_cells": orphan_rows},
        "validation": validation.to_dict(orient="records"),
        "city": city_info,
        "model_projection": model_info,
        "rcp85": {
            "source": table.source,
            "region": fc.rcp_region,
            "baseline_year": base_year,
            "years": rcp_years.astype(int).tolist(),
            "air_warming_added_c": air_added.tolist(),
            "lst_per_air_k": k_lst,
            "lst_change_added_c": added.tolist(),
            "city_lst_rcp85_c": (city_level + added).tolist(),
            "columns": {rcp_column(int(yr)): RCP_COLUMN_DESCRIPTION for yr in rcp_years},
            "method": "each cell's current smoothed LST level + lst_per_air_k x (delta(year) - delta(baseline "
                      "year)), delta the table's air temperature change",
            "assumption": RCP_ASSUMPTION,
        },
        "cog_grid": "EPSG:3857 at the cell (tile) resolution; bands forecast, lower, upper[, model_projection]",
        "outputs": written,
    }
    ws.write_json(out_dir / "summary.json", _jsonable(summary))
    lst_status = status_counts[y]
    return {
        "cells": int(len(cells)),
        "cells_left_out_water": water["cells_left_out_water"],
        "cells_forecast": lst_status["ok"],
        "cells_too_few_points": lst_status["too_few_points"],
        "cells_no_data": lst_status["no_data"],
        "cells_failed": lst_status["failed"],
        "horizon": fc.horizon,
        "model_projection": model_info["status"],
    }


# RCP tables give changes of near-surface AIR temperature; how much a city's clear-sky summer
# LST changes per degree of air warming is not known in general (issue 12). The factor is
# therefore an explicit, stated assumption, never silent.
RCP_ASSUMPTION = (
    "RCP8.5 warming is a change of near-surface AIR temperature (IPCC AR5 WG1 SPM Table SPM.2; "
    "regional tables likewise); adding it to LST scaled by forecast.rcp_lst_per_air_k "
    "(default 1.0, one for one) is an assumption of uhi, not a published relation: surface and "
    "air temperature differ most on clear summer afternoons, when Landsat passes"
)
RCP_COLUMN_DESCRIPTION = (
    "land surface temperature (LST, not air temperature) in that year under RCP8.5: the cell's "
    "current LST level plus the table's air warming since the last observed year times "
    "forecast.rcp_lst_per_air_k, degrees C"
)


def rcp_column(year: int) -> str:
    """Name of the per-cell RCP8.5 LST column of a target year (says LST, and the unit)."""
    return f"lst_rcp85_{year}_c"


def _notes(config: Config, step: str, rcp_source: str) -> dict[str, str]:
    fc = config.forecast
    return {
        "step": f"{step}: cell values are means of the scenes in each step ({'months ' + str(list(config.time.months)) + ' of each year' if step == 'summer' else 'calendar months'}); *_observations counts them",
        "methods": "simple, Holt linear and damped-trend exponential smoothing (statsmodels parametrisation: alpha, beta = smoothing_trend, phi); parameters and initial states by least squares over [0, 1]; the method with the smallest AICc per cell",
        "intervals": f"{int(fc.interval * 100)} % prediction intervals from the ETS(A,N,N), (A,A,N), (A,Ad,N) variance formulas (Hyndman et al. 2008, Table 6.1)",
        "validation": f"the last {fc.holdout} steps held out, forecast from a fit on the steps before them; RMSE per cell",
        "status": "ok; too_few_points (fewer observed steps than forecast.min_points, not fitted); no_data (no valid value); "
        "failed (fitted but non-finite, e.g. values near the float64 limit)",
        "model projection": "current LST level + change implied by the fitted model (model/summary.json) from the forecast covariates",
        "rcp85": f"current LST level + forecast.rcp_lst_per_air_k ({fc.rcp_lst_per_air_k:g}) x the AIR warming "
                 f"between the last observed year and the target year ({rcp_source}); {RCP_ASSUMPTION}",
        "lst_rcp85_<year>_c": RCP_COLUMN_DESCRIPTION,
    }



def read_table(path: Path) -> Any:
    """A long table from CSV or Parquet (by extension)."""
    import pandas as pd

    p = Path(path)
    if not p.is_file():
        raise InputError(f"input table not found: {p}; pass a .csv or .parquet file")
    suffix = p.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(p)
        if suffix in (".parquet", ".pq", ".geoparquet"):
            return pd.read_parquet(p)
    except (ValueError, OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read input table {p}: {exc}") from None
    raise InputError(f"input table {p} has extension {suffix!r}; pass a .csv or .parquet file")


def run_table(
    input_path: Path,
    out_dir: Path,
    *,
    id_col: str,
    time_col: str,
    value_cols: list[str],
    horizon: int,
    step: str = "auto",
    holdout: int = 2,
    coverage: float = 0.9,
    methods: tuple[str, ...] = ("simple", "holt", "damped"),
    min_points: int = 4,
) -> dict[str, Any]:
    """Forecast every series of a long table; write forecast.csv, validation.csv, summary.json.

    Parameters
    ----------
    input_path
        CSV or Parquet table with one row per (id, time) observation.
    out_dir
        Output folder (created); files are written atomically.
    step
        'auto' (integers -> each value a step; dates -> month or year by spacing), or one of
        'index', 'year', 'month', 'summer'.
    """
    from uhi.stats.ets import STATUSES
    from uhi.stats.series import infer_step

    table = read_table(input_path)
    for col, flag in ((id_col, "--id-col"), (time_col, "--time-col"), *((v, "--value-col") for v in value_cols)):
        if col not in table.columns:
            raise InputError(
                f"{flag} {col!r} is not a column of {input_path} (columns: {', '.join(map(str, table.columns))})"
            )
    if step == "auto":
        step = infer_step(table[time_col])
    rs, forecasts = forecast_table(
        table, id_col=id_col, time_col=time_col, value_cols=value_cols, horizon=horizon,
        step=step, holdout=holdout, coverage=coverage, methods=methods, min_points=min_points,
        align="end",
    )
    per_id = per_id_frame(rs, forecasts, id_col)
    validation = validation_frame(forecasts)
    ws = Workspace(out_dir)
    ws.write_text(ws.root / "forecast.csv", per_id.to_csv(index=False))
    ws.write_text(ws.root / "validation.csv", validation.to_csv(index=False))
    summary = {
        "input": str(input_path),
        "step": step,
        "longest_series_steps": rs.n_steps,
        "forecast_steps": [f"h{h + 1}" for h in range(horizon)],
        "horizon": horizon,
        "holdout": forecasts[0].result.holdout,
        "interval": coverage,
        "series": int(len(rs.ids)),
        "input_report": rs.report,
        "status": {vf.name: {s: int(np.sum(vf.result.status == s)) for s in STATUSES}
                   for vf in forecasts},
        "validation": validation.to_dict(orient="records"),
        "outputs": ["forecast.csv", "validation.csv", "summary.json"],
    }
    ws.write_json(ws.root / "summary.json", _jsonable(summary))
    return summary


SPEC = StageSpec(
    name="forecast",
    config_sections=("time", "model", "forecast", "outputs"),
    inputs=_inputs,
    run=run,
)

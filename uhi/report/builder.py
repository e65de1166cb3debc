"""Build report/report.html from a workspace: every figure and asset inlined, no URL fetched."""

from __future__ import annotations

import datetime as dt
import html
import json
import logging
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

import numpy as np

from uhi.errors import InputError

__all__ = ["build_report", "ReportSection", "MAX_INTERACTIVE_CELLS"]

log = logging.getLogger("uhi.report")

# Beyond this many cells the inlined GeoJSON passes ~15 MB and browsers crawl; the PNG maps
# still show every cell.
MAX_INTERACTIVE_CELLS = 60_000

_VARIABLE_NAMES = {"lst_c": "LST", "anomaly_c": "the SUHI anomaly", "lst": "LST", "anomaly": "the SUHI anomaly"}



@dataclass
class ReportSection:
    """One section of the page: an anchor, a heading and its HTML body."""

    anchor: str
    title: str
    body: list[str] = field(default_factory=list)

    def html(self) -> str:
        """The section's markup."""
        inner = "\n".join(self.body)
        return f'<section id="{self.anchor}">\n<h2>{html.escape(self.title)}</h2>\n{inner}\n</section>'


@dataclass
class _Inputs:
    cells: Any  # GeoDataFrame, EPSG:4326
    working_crs: Any
    panel: Any
    year: int
    per_cell: Any  # DataFrame indexed by cell: lst_c, anomaly_c of the latest year
    summary: dict[str, Any] | None
    credits: list[str]
    data: dict[str, Any] = field(default_factory=dict)  # read_report_data: the numbers the page states
    synthetic: bool = False


def _figure_tag(fig: Any, alt: str, caption: str, *, dpi: int = 100, save_to: Path | None = None, ws: Any = None) -> str:
    from uhi.report.inline import data_uri
    from uhi.writers.maps import figure_png_bytes

    png = figure_png_bytes(fig, dpi=dpi)
    if save_to is not None and ws is not None:
        ws.write_bytes(save_to, png)
    return (
        f'<figure><img alt="{html.escape(alt)}" src="{data_uri(png, "image/png")}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _missing(text: str) -> str:
    return f'<p class="missing">{html.escape(text)}</p>'


def _table(frame: Any, *, index: bool = True, digits: int = 3) -> str:
    table = frame.to_html(classes="uhi", index=index, float_format=lambda v: f"{v:.{digits}f}", na_rep="–", border=0)
    return f'<div class="table-wrap">{table}</div>'  # a wide table scrolls in its box, not the page


def _working_crs(ws: Any, cells: Any) -> Any:
    import pyarrow.parquet as pq

    meta = pq.read_schema(ws.cells).metadata or {}
    crs = meta.get(b"uhi:working_crs")
    return crs.decode() if crs else cells.estimate_utm_crs()


def _load(config: Any, ws: Any) -> _Inputs:
    import geopandas as gpd

    from uhi.panel import read_panel

    for needed in (ws.cells, ws.panel):
        if not Path(needed).is_file():
            raise InputError(f"{ws.relative(needed)} is missing from {ws.root}; run uhi compute first")
    cells = gpd.read_parquet(ws.cells)
    if cells.crs is None or cells.crs.to_epsg() != 4326:
        cells = cells.set_crs(4326, allow_override=True) if cells.crs is None else cells.to_crs(4326)
    # the columns the report draws, cell as a categorical (uhi/panel.py)
    panel = read_panel(ws.panel, ["cell", "date", "year", "lst_c", "anomaly_c", "ndvi", "ndbi"])
    if panel.empty:
        raise InputError(f"{ws.relative(ws.panel)} has no rows; rerun uhi compute with more scenes")
    year = int(panel["year"].max())
    cols = [c for c in ("lst_c", "anomaly_c", "ndvi", "ndbi") if c in panel.columns]
    per_cell = panel.loc[panel["year"] == year].groupby("cell", observed=True)[cols].mean()
    summary = None
    if Path(ws.model_summary).is_file():
        summary = json.loads(Path(ws.model_summary).read_text(encoding="utf-8"))
    from uhi.report.data import read_report_data
    from uhi.writers.maps import CREDIT_LANDSAT, CREDIT_OSM, CREDIT_SYNTHETIC

    data = read_report_data(ws)
    synthetic = bool(data["synthetic"])
    # the demo's planted pixels are no USGS product: crediting USGS would pass them off as real
    credits = [CREDIT_SYNTHETIC if synthetic else CREDIT_LANDSAT]
    buildings = config.buildings.path
    if buildings is not None and "osm" in str(buildings).lower() and not synthetic:
        credits.append(CREDIT_OSM)
    return _Inputs(cells, _working_crs(ws, cells), panel, year, per_cell, summary, credits, data, synthetic)


# -- sections ----------------------------------------------------------------------------------


def _context_layers(config: Any, ws: Any) -> list[tuple[Any, dict[str, Any]]]:
    """Vector context for maps without a basemap: the AOI outline and the exposure zones, in EPSG:3857."""
    import geopandas as gpd

    from uhi.errors import UhiError

    layers: list[tuple[Any, dict[str, Any]]] = []
    zones = ws.path("exposure", "zones.parquet")
    if zones.is_file():
        try:
            layers.append((gpd.read_parquet(zones, columns=["geometry"]).to_crs(3857),
                           {"color": "#333333", "linewidth": 0.6, "alpha": 0.8}))
        except (ValueError, OSError) as exc:  # a zones table without geometry
            log.info("report: zones not drawn on the maps (%s)", exc)
    try:
        from uhi.aoi import load_aoi

        aoi = gpd.GeoSeries([load_aoi(config.city).geometry], crs=4326).to_crs(3857)
        layers.append((aoi, {"color": "black", "linewidth": 1.0, "linestyle": "--"}))
    except UhiError as exc:
        log.info("report: AOI outline left out (%s)", exc)
    return layers


def _draw_context(ax: Any, layers: list[tuple[Any, dict[str, Any]]]) -> None:
    for frame, style in layers:
        frame.boundary.plot(ax=ax, zorder=4, **style)
    ax.set_xlabel("")  # geopandas labels projected axes; the scale bar says it better
    ax.set_ylabel("")


def _maps_section(
    inp: _Inputs, ws: Any, out_dir: Path, basemap: bool, config: Any, save_png: bool = True
) -> tuple[ReportSection, dict[str, Any]]:
    """PNG maps of LST, anomaly, hotspots, residuals, forecast, scenario; also the layer data.
    The maps are always inlined in the page; ``save_png`` also writes them as ``maps/*.png``."""
    from uhi.writers.maps import render_hotspot_map, render_value_map

    sec = ReportSection("maps", f"Maps ({inp.year})")
    # projected once; tile ids let the maps draw cells as image pixels (uhi.writers.maps._tile_raster)
    base = inp.cells[[c for c in ("cell", "tile_x", "tile_y", "zoom", "geometry") if c in inp.cells]].to_crs(3857)
    cells = base.merge(inp.per_cell, left_on="cell", right_index=True, how="left")
    extra: dict[str, Any] = {}
    # EPSG:3857: the cells are web-mercator tiles, so they stay axis-aligned under a north-up
    # arrow (in UTM they turn by the meridian convergence); the scale bar corrects for the stretch
    common: dict[str, Any] = {"working_crs": "EPSG:3857", "basemap": basemap, "credits": inp.credits}
    maps_dir = out_dir / "maps"
    figs = []
    if "lst_c" in cells:
        fig = render_value_map(cells, "lst_c", title=f"Land surface temperature, summer {inp.year}",
                               label="LST", units="°C", cmap="inferno", **common)
        places = ((inp.data.get("headline") or {}).get("hottest") or {})
        if places.get("kind") == "cells":
            _mark_places(fig.axes[0], places["places"])
        figs.append(("lst", fig, f"Mean land surface temperature of the {inp.year} scenes per cell"
                     + ("; numbers mark the hottest places named in the key findings." if places.get("kind") == "cells" else ".")))
    if "anomaly_c" in cells and cells["anomaly_c"].notna().any():
        figs.append(("anomaly", render_value_map(cells, "anomaly_c", title=f"SUHI anomaly, summer {inp.year}",
                                                 label="LST minus rural mean", units="°C", cmap="RdBu_r",
                                                 diverging=True, **common),
                     "Per-cell LST minus the rural reference mean of each date, averaged over the year."))
    hot = _hotspots(ws, inp.summary)
    if hot is not None:
        frame, column, variable = hot
        g = base.merge(frame, on="cell", how="left")
        figs.append(("hotspots", render_hotspot_map(g, column, variable=variable, **common),
                     f"Getis-Ord Gi* classes of {variable} at 90/95/99 % confidence."))
        extra["gi_bin"] = g.set_index("cell")[column]
    res = _residuals(ws, inp.summary)
    if res is not None:
        frame, column, model = res
        g = base.merge(frame, on="cell", how="left")
        figs.append(("residuals", render_value_map(g, column, title=f"Residuals of the {model}",
                                                   label="observed minus fitted LST", units="°C",
                                                   cmap="PuOr_r", diverging=True, **common),
                     f"Residuals of the {model}: where the covariates under- or over-predict LST."))
        extra["residual"] = g.set_index("cell")[column]
    fc = _forecast_cells(ws)
    if fc is not None:
        frame, column, year = fc
        g = base.merge(frame, on="cell", how="left")
        figs.append(("forecast", render_value_map(g, column, title=f"Forecast LST, {year}",
                                                  label="forecast LST", units="°C", cmap="inferno", **common),
                     f"Per-cell exponential-smoothing forecast of LST for {year}."))
        extra["forecast"] = (g.set_index("cell")[column], year)
    for name, frame, polygons in _scenarios(ws):
        g = base.merge(frame[["cell", "dlst_c"]], on="cell", how="left")
        figs.append((f"scenario_{name}", render_value_map(
            g, "dlst_c", title=f"Scenario {name}: change in LST", label="ΔLST", units="°C",
            cmap="RdBu_r", diverging=True, outlines=polygons, **common),
            f"Predicted change in LST for scenario {name}; black outlines are the changed areas."))
        extra.setdefault("scenarios", []).append((name, g.set_index("cell")["dlst_c"]))
    context = _context_layers(config, ws)
    for key, fig, _ in figs:
        if not key.startswith("scenario_"):
            _draw_context(fig.axes[0], context)
    if inp.synthetic:
        for _, fig, _ in figs:
            for ax in fig.axes[:1]:
                ax.set_title(f"{ax.get_title()}\nSYNTHETIC DATA (uhi demo)", fontsize=12)
        figs = [(key, fig, f"{caption} Synthetic data.") for key, fig, caption in figs]
    tags = [_figure_tag(fig, caption, caption, save_to=maps_dir / f"{key}.png" if save_png else None, ws=ws)
            for key, fig, caption in figs]
    sec.body.append('<div class="maps">' + "\n".join(tags) + "</div>" if tags else _missing("no map could be drawn"))
    return sec, extra


def _mark_places(ax: Any, places: list[dict[str, Any]]) -> None:
    """Numbered markers at the hottest places (lon/lat), on a map drawn in EPSG:3857."""
    from pyproj import Transformer

    to_map = Transformer.from_crs(4326, 3857, always_xy=True)
    for i, p in enumerate(places, 1):
        x, y = to_map.transform(p["lon"], p["lat"])
        ax.annotate(str(i), (x, y), xytext=(8, 8), textcoords="offset points", fontsize=11, fontweight="bold",
                    color="black", zorder=7, bbox={"boxstyle": "circle,pad=0.2", "facecolor": "white", "alpha": 0.9},
                    arrowprops={"arrowstyle": "-", "color": "black"})


def _properties(path: Path) -> Any:
    """The attribute table of a stage's cell output, without geometry (cells come from compute).

    Read from the cheapest copy there is: a GeoParquet/Parquet twin (``<stem>.parquet``), a
    GeoPackage layer of the stage (``<stage>.gpkg``, layer ``<stem>``; columns read from SQLite,
    no geometry decoded), else the GeoJSON itself. One build reads each file once.
    """
    import pandas as pd

    path = Path(path)
    if path in _READ_CACHE:
        return _READ_CACHE[path]
    twin = path.with_suffix(".parquet")
    gpkg = path.parent / f"{path.parent.name}.gpkg"
    frame = None
    if twin.is_file():
        import pyarrow.parquet as pq

        names = [n for n in pq.read_schema(twin).names if n != "geometry"]
        frame = pd.read_parquet(twin, columns=names)
    elif gpkg.is_file():
        import pyogrio

        if path.stem in {str(name) for name, _ in pyogrio.list_layers(gpkg)}:
            frame = pd.DataFrame(pyogrio.read_dataframe(gpkg, layer=path.stem, read_geometry=False, use_arrow=True))
    if frame is None:
        # plain json: ~2x faster than OGR on GeoJSON where only attributes are used (measured)
        features = json.loads(path.read_text(encoding="utf-8")).get("features") or []
        frame = pd.DataFrame([f.get("properties") or {} for f in features])
    _READ_CACHE[path] = frame
    return frame


_READ_CACHE: dict[Path, Any] = {}


def _has_table(path: Path) -> bool:
    """Whether a stage output exists as the GeoJSON, its Parquet twin or a layer of the stage's GeoPackage."""
    path = Path(path)
    if path.is_file() or path.with_suffix(".parquet").is_file():
        return True
    gpkg = path.parent / f"{path.parent.name}.gpkg"
    if not gpkg.is_file():
        return False
    import pyogrio

    return path.stem in {str(name) for name, _ in pyogrio.list_layers(gpkg)}


def _id_column(frame: Any) -> str | None:
    return "cell" if "cell" in frame.columns else None


def _latest_period_column(columns: Any, stem: str) -> tuple[str, str | None] | None:
    """``<stem>_<period>`` with the latest period (year or YYYY-MM), else plain ``<stem>``."""
    pattern = re.compile(rf"^{re.escape(stem)}_(\d{{4}}(?:-\d{{2}})?)$")
    periods = sorted(m.group(1) for c in columns if (m := pattern.match(str(c))))
    if periods:
        return f"{stem}_{periods[-1]}", periods[-1]
    return (stem, None) if stem in columns else None


def _hotspots(ws: Any, summary: dict[str, Any] | None) -> tuple[Any, str, str] | None:
    """Gi* classes (-3..3) of the latest period from model/hotspots.geojson, keyed by cell."""
    path = ws.path("model", "hotspots.geojson")
    if not _has_table(path):
        return None
    frame = _properties(path)
    ident = _id_column(frame)
    found = _latest_period_column(frame.columns, "hotspot")
    if ident is None or found is None:
        log.warning("report: %s has no cell id or hotspot column; map left out", path)
        return None
    column, period = found
    variable = str(((summary or {}).get("hotspots") or {}).get("variable") or "lst_c")
    variable = _VARIABLE_NAMES.get(variable, variable)
    out = frame[[ident, column]].rename(columns={ident: "cell", column: "gi_bin"})
    return out, "gi_bin", f"{variable} {period}" if period else variable


def _residuals(ws: Any, summary: dict[str, Any] | None) -> tuple[Any, str, str] | None:
    """Residuals of the best model in the latest period from model/predictions.geojson."""
    path = ws.path("model", "predictions.geojson")
    if not _has_table(path):
        return None
    frame = _properties(path)
    ident = _id_column(frame)
    found = _latest_period_column(frame.columns, "residual")
    if ident is None or found is None:
        return None
    column, period = found
    model = str(frame["model"].iloc[0]) if "model" in frame and len(frame) else (summary or {}).get("best_model", "")
    label = f"{model} model, {period}" if period else f"{model} model"
    return frame[[ident, column]].rename(columns={ident: "cell", column: "residual"}), "residual", label


def _forecast_columns(columns: Any, var: str = "lst_c") -> list[str]:
    """Forecast step labels present as ``<var>_<label>`` with ``_lo`` and ``_hi`` bounds."""
    pattern = re.compile(rf"^{re.escape(var)}_(\d{{4}}(?:-\d{{2}})?)$")
    labels = [m.group(1) for c in columns if (m := pattern.match(str(c)))]
    return sorted(lbl for lbl in labels if f"{var}_{lbl}_lo" in columns and f"{var}_{lbl}_hi" in columns)


def _forecast_cells(ws: Any) -> tuple[Any, str, str] | None:
    """The last forecast step's per-cell LST, from forecast/forecast.geojson."""
    path = ws.path("forecast", "forecast.geojson")
    if not _has_table(path):
        return None
    frame = _properties(path)
    labels = _forecast_columns(frame.columns)
    if "cell" not in frame or not labels:
        return None
    column = f"lst_c_{labels[-1]}"
    return frame[["cell", column]].rename(columns={column: "forecast"}), "forecast", labels[-1]


def _scenarios(ws: Any) -> list[tuple[str, Any, Any]]:
    import geopandas as gpd

    folder = ws.path("scenario")
    out = []
    for summary_path in sorted(folder.glob("*_summary.json")) if folder.is_dir() else []:
        name = summary_path.name[: -len("_summary.json")]
        cells_path = folder / f"{name}.geojson"
        if not cells_path.is_file():
            continue
        frame = _properties(cells_path)
        polygons_path = folder / f"{name}_changes.geojson"
        polygons = gpd.read_file(polygons_path) if polygons_path.is_file() else None
        out.append((name, frame, polygons))
    return out


def _r2_table(summary: dict[str, Any] | None) -> Any:
    import pandas as pd

    if not summary:
        return None
    models = summary.get("models", summary)
    rows: dict[str, dict[str, Any]] = {}
    for name, entry in models.items():
        if not isinstance(entry, dict):
            continue
        if "r2" in entry and not isinstance(entry.get("years"), dict):
            rows[name] = {"pooled": entry["r2"]}
            continue
        per_year = entry.get("years", entry)
        vals = {str(y): fit.get("r2") for y, fit in per_year.items() if isinstance(fit, dict) and "r2" in fit}
        if vals:
            rows[name] = vals
    if not rows:
        return None
    frame = pd.DataFrame.from_dict(rows, orient="index").astype(float)
    frame = frame[sorted(frame.columns, key=lambda c: (not c.isdigit(), c))]
    frame["mean"] = frame.mean(axis=1)
    frame.index.name = "model"
    return frame.sort_values("mean", ascending=False)


def _models_section(inp: _Inputs) -> ReportSection:
    from uhi.report.charts import render_r2_chart

    sec = ReportSection("models", "What explains the heat: model comparison")
    table = _r2_table(inp.summary)
    if table is None:
        sec.body.append(_missing("no model summary yet: run uhi model"))
        return sec
    summary = inp.summary or {}
    best = summary.get("best_model")
    models = (inp.data.get("models") or {}).get("models") or {}
    sec.body.append("<p>Each model explains a cell's land surface temperature by its land cover "
                    f"({html.escape(', '.join(map(str, summary.get('x', []))))}); R² is the share of the differences "
                    "between cells it explains.</p>")
    sec.body.append("<ul>" + "".join(f"<li><b>{html.escape(m)}</b>: {html.escape(_MODEL_NAMES.get(m, 'a model of uhi model'))}</li>"
                                     for m in table.index) + "</ul>")
    if best:
        criterion = summary.get("best_model_criterion") or "lowest mean AIC"
        aic = (models.get(best) or {}).get("mean_aic")
        sec.body.append(f"<p>Best model: <b>{html.escape(str(best))}</b>, chosen by the {html.escape(str(criterion))}"
                        + (f" (mean AIC {aic:,.0f})" if isinstance(aic, (int, float)) else "")
                        + ". AIC rewards fit and penalises extra parameters; lower is better. The table below is "
                        "sorted by mean R², which is why its top row can differ from the best model"
                        + (f" (highest mean R²: {html.escape(str(summary.get('best_by_r2')))})" if summary.get("best_by_r2") else "")
                        + ".</p>")
    aics = {m: (models.get(m) or {}).get("mean_aic") for m in table.index}
    if any(v is not None for v in aics.values()):
        table = table.assign(**{"mean AIC": [aics[m] for m in table.index]})
    sec.body.append(_table(table.rename(columns={"mean": "mean R²"})))
    sec.body.append(_figure_tag(render_r2_chart(_r2_table(inp.summary).drop(columns="mean")), "R-squared by model and year",
                                "R² of each model per year; the mean across years ranks the models."))
    return sec


def _suhi_series(inp: _Inputs) -> Any:
    """SUHI intensity per date: compute's series (its summary), else the urban cells' mean anomaly."""
    import pandas as pd

    recorded = inp.data.get("suhi")
    if recorded:
        frame = pd.DataFrame(recorded)
        frame["date"] = pd.to_datetime(frame["date"])
        frame = frame.dropna(subset=["suhi_c"])
        return frame[["date", "suhi_c"]] if len(frame) else None
    # a workspace computed before compute recorded its series
    if "anomaly_c" not in inp.panel or "urban" not in inp.cells:
        return None
    urban = inp.cells["urban"].astype(bool)
    if "water_share" in inp.cells:
        # docs/science.md: water is excluded from urban and rural statistics (cells over half water)
        urban &= ~(inp.cells["water_share"].fillna(0) > 0.5)
    keep = set(inp.cells.loc[urban, "cell"])
    rows = inp.panel.loc[inp.panel["cell"].isin(keep)]
    series = rows.groupby("date", as_index=False)["anomaly_c"].mean().rename(columns={"anomaly_c": "suhi_c"})
    series = series.dropna()
    return series if len(series) else None


def _suhi_section(inp: _Inputs, ws: Any) -> ReportSection:
    from uhi.report.charts import render_suhi_chart

    sec = ReportSection("suhi", "How much warmer the city is: surface urban heat island")
    series = _suhi_series(inp)
    if series is None:
        sec.body.append(_missing("no SUHI series: compute wrote no urban cells or anomalies"))
        return sec
    method = ((ws.stage_record("compute") or {}).get("summary") or {}).get("suhi_method")
    if method:
        sec.body.append(f"<p>Urban and rural reference cells: {html.escape(str(method))}.</p>")
    sec.body.append("<p>The SUHI intensity of a scene is the mean LST of the built-up cells minus that of the "
                    "rural reference cells around the city, in °C.</p>")
    trend = inp.data.get("suhi_trend")
    if trend:
        sec.body.append(f"<p>Trend of the summer mean SUHI: {_suhi_trend_sentence(trend)}. An ordinary least-squares "
                        "line through the yearly means; the interval assumes independent years.</p>")
    sec.body.append(_figure_tag(render_suhi_chart(series, trend), "SUHI series",
                                "SUHI intensity per scene date (urban cells' mean LST anomaly against the rural reference)."))
    yearly = series.groupby(series["date"].dt.year)["suhi_c"].agg(["mean", "min", "max", "count"])
    yearly.index.name = "year"
    yearly.columns = ["mean SUHI (°C)", "min (°C)", "max (°C)", "dates"]
    sec.body.append(_table(yearly, digits=1))
    return sec


def _step_x(label: str) -> float:
    """'2021' -> 2021.0, '2021-07' -> 2021.5 (a month's position on a year axis)."""
    year, _, month = label.partition("-")
    return int(year) + ((int(month) - 1) / 12 if month else 0.0)


def _observed_city(panel: Any, step: str) -> Any:
    """City mean per step: the mean over cells of each cell's mean in that step (as forecast does)."""
    import pandas as pd

    keys = ["year"] if step != "month" else ["year", panel["date"].dt.month.rename("month")]
    per_cell = panel.groupby(["cell", *keys], observed=True)["lst_c"].mean()
    city = per_cell.groupby(level=list(range(1, per_cell.index.nlevels))).mean().dropna()
    if step == "month":
        x = [y + (m - 1) / 12 for y, m in city.index]
    else:
        x = [float(y) for y in city.index]
    return pd.DataFrame({"year": x, "value": city.to_numpy()})


def _forecast_section(inp: _Inputs, ws: Any, interval: float) -> ReportSection:
    """Observed and forecast city-mean LST with intervals, the hottest cell, the RCP8.5 view."""
    import pandas as pd

    from uhi.report.charts import render_forecast_chart

    sec = ReportSection("forecast", "Where the temperature is heading: forecast")
    path = ws.path("forecast", "forecast.geojson")
    if not _has_table(path):
        sec.body.append(_missing("no forecast yet: run uhi forecast"))
        return sec
    spath = ws.path("forecast", "summary.json")
    fsum = json.loads(spath.read_text(encoding="utf-8")) if spath.is_file() else {}
    interval = float(fsum.get("interval", interval))
    frame = _properties(path)
    labels = _forecast_columns(frame.columns)
    if not labels or "cell" not in frame:
        sec.body.append(_missing("forecast.geojson holds no lst_c forecast with bounds"))
        return sec
    city = (fsum.get("city") or {}).get("lst_c") or {}
    observed = {k: v for k, v in (city.get("observed") or {}).items() if v is not None}
    if observed:
        # the series the forecast was fitted to (forecast.xlsx city_series), not a re-derivation
        history = pd.DataFrame({"year": [_step_x(str(k)) for k in observed], "value": list(observed.values())})
    else:
        history = _observed_city(inp.panel, str(fsum.get("step", "summer")))
    if all(city.get(k) for k in ("forecast", "lower", "upper")):
        fc = pd.DataFrame({"year": [_step_x(lbl) for lbl in city["forecast"]],
                           "mean": list(city["forecast"].values()),
                           "lower": [city["lower"][lbl] for lbl in city["forecast"]],
                           "upper": [city["upper"][lbl] for lbl in city["forecast"]]})
        how = f"its forecast by exponential smoothing ({city.get('method', 'ets')} method)"
    else:
        fc = pd.DataFrame({"year": [_step_x(lbl) for lbl in labels],
                           "mean": [frame[f"lst_c_{lbl}"].mean() for lbl in labels],
                           "lower": [frame[f"lst_c_{lbl}_lo"].mean() for lbl in labels],
                           "upper": [frame[f"lst_c_{lbl}_hi"].mean() for lbl in labels]})
        how = "the mean of the per-cell forecasts and of their bounds"
    sec.body.append(_figure_tag(
        render_forecast_chart(history, fc, interval=interval, title="City-mean summer LST: observed and forecast",
                              units="LST (°C)"),
        "Forecast of city-mean LST",
        f"Observed city-mean LST and {how}, with its {interval:.0%} prediction interval.",
    ))
    last = f"lst_c_{labels[-1]}"
    ranked = frame.loc[frame[last].notna()].sort_values(last, ascending=False)
    if len(ranked):
        row = ranked.iloc[0]
        cell = row["cell"]
        cell_fc = pd.DataFrame({"year": [_step_x(lbl) for lbl in labels],
                                "mean": [row[f"lst_c_{lbl}"] for lbl in labels],
                                "lower": [row[f"lst_c_{lbl}_lo"] for lbl in labels],
                                "upper": [row[f"lst_c_{lbl}_hi"] for lbl in labels]})
        cell_hist = _observed_city(inp.panel.loc[inp.panel["cell"] == cell], str(fsum.get("step", "summer")))
        pt = inp.cells.loc[inp.cells["cell"] == cell].geometry.to_crs(inp.working_crs).centroid.to_crs(4326)
        where = _lonlat_name(float(pt.x.iloc[0]), float(pt.y.iloc[0])) if len(pt) else "an unknown place"
        if len(cell_hist):
            method = row.get("lst_c_method", "")
            sec.body.append(_figure_tag(
                render_forecast_chart(cell_hist, cell_fc, interval=interval,
                                      title=f"Hottest forecast place, {where} ({method})", units="LST (°C)"),
                "Forecast of the hottest cell", f"The hottest cell in {labels[-1]}, at {where} (cell {cell}), with its "
                f"{interval:.0%} prediction interval."))
    table = fc.assign(step=[str(lbl) for lbl in (city.get("forecast") or labels)]).set_index("step")
    table = table.drop(columns="year").rename(columns={"mean": "forecast (°C)", "lower": "lower (°C)", "upper": "upper (°C)"})
    sec.body.append(_table(table, digits=1))
    rcp = fsum.get("rcp85") or {}
    if rcp.get("years"):
        k_lst = rcp.get("lst_per_air_k", 1.0)
        rows = pd.DataFrame({"year": rcp["years"], "air warming added (°C)": rcp.get("air_warming_added_c")})
        rows[f"LST change added (°C, {k_lst:g} x air)"] = rcp.get("lst_change_added_c")
        if rcp.get("city_lst_rcp85_c") is not None:
            rows["city LST, not air (°C)"] = rcp["city_lst_rcp85_c"]
        sec.body.append(
            f"<p>Long-term view under RCP8.5 ({html.escape(str(rcp.get('source', '')))}). The table's "
            f"warming is of air temperature; adding {k_lst:g} K of LST per K of air warming "
            "(<code>forecast.rcp_lst_per_air_k</code>) is an assumption, not a measured relation.</p>"
        )
        sec.body.append(_table(rows.set_index("year"), digits=1))
    return sec


# plain names of the covariates a scenario may change, for the report's sentences
_COVARIATE_NAMES = {
    "ndvi": "vegetation index (NDVI)",
    "ndbi": "built-up index (NDBI)",
    "mndwi": "water index (MNDWI)",
    "albedo": "surface reflectivity (albedo)",
    "site_coverage": "share of ground under buildings",
    "block_coverage": "share of the block under buildings",
    "far": "floor area ratio",
    "height_mean_m": "mean building height",
    "water_share": "share of water",
}


def _describe_change(kind: str, changes: Any) -> str:
    """A polygon's recorded change in words, e.g. 'vegetation index (NDVI) raised by 0.20'."""
    if isinstance(changes, str):
        try:
            changes = json.loads(changes)
        except ValueError:
            return changes
    if not isinstance(changes, dict):
        return ""
    parts = []
    for var, value in changes.items():
        name = _COVARIATE_NAMES.get(str(var), str(var))
        try:
            v = float(value)
        except (TypeError, ValueError):
            parts.append(f"{name}: {value}")
            continue
        if kind == "set":
            parts.append(f"{name} set to {v:.2f}")
        else:
            parts.append(f"{name} {'raised' if v >= 0 else 'lowered'} by {abs(v):.2f}")
    return "; ".join(parts)  # plain text: the table escapes it


def _scenario_section(ws: Any) -> ReportSection | None:
    import pandas as pd

    folder = ws.path("scenario")
    summaries = sorted(folder.glob("*_summary.json")) if folder.is_dir() else []
    if not summaries:
        return None
    sec = ReportSection("scenarios", "Scenarios")
    sec.body.append(
        "<p>A scenario changes the land cover in the areas you drew and asks the fitted model how "
        "the surface temperature of every cell would change. Negative numbers are cooling.</p>")
    for path in summaries:
        rec = json.loads(path.read_text(encoding="utf-8"))
        city = rec.get("city", {})
        model = str(rec.get("model"))
        year = rec.get("model_year") or "all years"
        mean = float(city.get("mean_dlst_c", float("nan")))
        outside = float(city.get("outside_mean_dlst_c", float("nan")))
        spill = (f" Cells outside the changed areas change by {outside:+.2f} °C on average (spill-over)."
                 if model in ("lag", "panel_fe") else "")
        sec.body.append(
            f"<h3>{html.escape(str(rec.get('scenario', path.stem)))}</h3>"
            f"<p>Predicted by the {html.escape(model)} model ({html.escape(str(year))}: "
            f"{html.escape(_MODEL_NAMES.get(model, 'a model of uhi model'))}). Over the whole city the "
            f"average surface temperature changes by {mean:+.2f} °C; {int(city.get('cells_changed', 0))} "
            f"cells are changed.{spill}</p>"
        )
        rows = []
        for poly in rec.get("polygons", []):
            rows.append({
                "Area": poly.get("name"),
                "Change": _describe_change(str(poly.get("change", "add")), poly.get("changes")),
                "Cells": int(poly.get("cells") or 0),
                "Area changed (ha)": float(poly.get("covered_area_m2") or 0.0) / 1e4,
                "Mean change inside (°C)": poly.get("mean_dlst_c"),
                "Strongest cooling (°C)": poly.get("min_dlst_c"),
            })
        if rows:
            table = pd.DataFrame(rows).set_index("Area")
            sec.body.append(_table(table, digits=2))
    return sec


def _cells_payload(inp: _Inputs, extra: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """GeoJSON of the cells with the layers the interactive map can switch between."""
    from matplotlib import colormaps

    from uhi.writers.maps import HOTSPOT_CLASSES

    n = len(inp.cells)
    tiled = {"tile_x", "tile_y", "zoom"} <= set(inp.cells.columns)
    if n > MAX_INTERACTIVE_CELLS and not tiled:
        return None, f"{n} cells exceed the interactive map's limit of {MAX_INTERACTIVE_CELLS}; see the PNG maps"
    frame = inp.cells[["cell", "geometry"]].merge(inp.per_cell, left_on="cell", right_index=True, how="left")
    layers: list[dict[str, Any]] = []

    def ramp(name: str) -> list[str]:
        cmap = colormaps[name]
        from matplotlib.colors import to_hex

        return [to_hex(cmap(t)) for t in np.linspace(0, 1, 9)]

    def continuous(key: str, values: Any, label: str, cmap: str, diverging: bool) -> None:
        v = np.asarray(values, dtype=float)
        finite = v[np.isfinite(v)]
        if not finite.size:
            return
        if diverging:
            half = float(np.max(np.abs(finite))) or 1.0
            lo, hi = -half, half
        else:
            lo, hi = (float(x) for x in np.percentile(finite, [2, 98]))
            hi = hi if hi > lo else lo + 1.0
        frame[key] = np.where(np.isfinite(v), np.round(v, 3), np.nan)
        layers.append({"key": key, "label": label, "units": "°C", "kind": "continuous",
                       "vmin": lo, "vmax": hi, "colors": ramp(cmap)})

    if "lst_c" in frame:
        continuous("lst_c", frame["lst_c"], f"LST {inp.year}", "inferno", False)
    if "anomaly_c" in frame:
        continuous("anomaly_c", frame["anomaly_c"], f"SUHI anomaly {inp.year}", "RdBu_r", True)
    if "gi_bin" in extra:
        frame["gi_bin"] = frame["cell"].map(extra["gi_bin"])
        layers.append({"key": "gi_bin", "label": "Gi* hot/cold spots", "units": "", "kind": "classes",
                       "classes": [{"value": k, "label": lbl, "color": col} for k, (lbl, col) in HOTSPOT_CLASSES.items()]})
    if "residual" in extra:
        continuous("residual", frame["cell"].map(extra["residual"]), "model residual", "PuOr_r", True)
    if "forecast" in extra:
        series, year = extra["forecast"]
        continuous("forecast", frame["cell"].map(series), f"forecast LST {year}", "inferno", False)
    for name, series in extra.get("scenarios", []):
        continuous(f"scenario_{name}", frame["cell"].map(series), f"scenario {name}: ΔLST", "RdBu_r", True)
    if not layers:
        return None, "no cell values to show"
    keys = ["cell"] + [lyr["key"] for lyr in layers]
    note = ""
    if n > MAX_INTERACTIVE_CELLS:
        frame, note = _coarsen(frame, inp.cells, keys[1:], MAX_INTERACTIVE_CELLS)
    import shapely

    features = []
    geoms = frame.geometry.to_crs(4326)
    props = frame[keys].astype(object).where(frame[keys].notna(), None).to_dict(orient="records")
    rings = shapely.get_exterior_ring(shapely.get_parts(geoms.to_numpy()))
    if len(rings) != len(frame):
        return None, "cells are not single polygons; see the PNG maps"
    counts = shapely.get_num_coordinates(rings)
    # 6 decimals of a degree ~ 0.1 m: ample for ~50 m cells, and it halves the page size
    coords = np.round(shapely.get_coordinates(rings), 6).tolist()
    starts = np.concatenate([[0], np.cumsum(counts)])
    for i, p in enumerate(props):
        clean = {k: (int(v) if k == "gi_bin" and v is not None else (float(v) if isinstance(v, (float, np.floating)) else v))
                 for k, v in p.items()}
        ring = coords[starts[i]:starts[i + 1]]
        features.append({"type": "Feature", "properties": clean, "geometry": {"type": "Polygon", "coordinates": [ring]}})
    w, s, e, nth = geoms.total_bounds
    payload = {
        "cells": {"type": "FeatureCollection", "features": features},
        "layers": layers,
        "bounds": [[s, w], [nth, e]],
        "credits": " | ".join(inp.credits),
    }
    return payload, note


def _coarsen(frame: Any, cells: Any, columns: list[str], limit: int) -> tuple[Any, str]:
    """Merge 2^k x 2^k cells into their parent tiles until at most ``limit`` remain.

    Values are the mean of the children (Gi* classes: the most frequent class), so a city of
    200k cells still gets an interactive map of light weight; the PNG maps keep every cell.
    """
    import geopandas as gpd
    import pandas as pd
    import shapely

    n = len(frame)
    levels = int(math.ceil(math.log(n / limit, 4)))
    while True:
        px = cells["tile_x"].to_numpy(np.int64) >> levels
        py = cells["tile_y"].to_numpy(np.int64) >> levels
        if len(set(zip(px.tolist(), py.tolist(), strict=True))) <= limit:
            break
        levels += 1
    zoom = int(cells["zoom"].iloc[0]) - levels
    work = pd.DataFrame(frame[columns]).assign(px=px, py=py)
    numeric = [c for c in columns if c != "gi_bin"]
    out = work.groupby(["px", "py"])[numeric].mean()
    if "gi_bin" in columns:
        counts = work.dropna(subset=["gi_bin"]).groupby(["px", "py", "gi_bin"]).size()
        mode = counts.reset_index(name="k").sort_values("k").drop_duplicates(["px", "py"], keep="last")
        out = out.join(mode.set_index(["px", "py"])["gi_bin"])
    out = out.reset_index()
    x, y = out["px"].to_numpy(np.int64), out["py"].to_numpy(np.int64)
    scale = 2.0**zoom

    def lat(row: np.ndarray) -> np.ndarray:
        return np.degrees(np.arctan(np.sinh(np.pi * (1 - 2 * row / scale))))

    geoms = shapely.box(x / scale * 360 - 180, lat(y + 1), (x + 1) / scale * 360 - 180, lat(y))
    from uhi.grid.cells import quadkeys

    out["cell"] = quadkeys(x, y, zoom)
    coarse = gpd.GeoDataFrame(out.drop(columns=["px", "py"]), geometry=geoms, crs=4326)
    note = (f"{n} cells are shown merged into {len(coarse)} zoom-{zoom} tiles (means of "
            f"{4 ** levels} cells; hotspots: the most frequent class) to keep the page light; "
            "the PNG maps show every cell.")
    return coarse, note


def _cell_size_m(inp: _Inputs) -> float:
    """Median side of a cell in metres (square root of its area in the working CRS)."""
    sample = inp.cells.geometry.iloc[:: max(1, len(inp.cells) // 2000)]  # a median needs no 400k areas
    return float(np.sqrt(np.median(sample.to_crs(inp.working_crs).area.to_numpy())))


def _embed_json(obj: Any) -> str:
    # inside <script> a literal "</" would close the element early; JSON allows "<\/"
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).replace("</", "<\\/").replace("<!--", "<\\!--")


def build_report(config: Any, ws: Any, *, basemap: bool = False) -> Path:
    """Write ``report/report.html`` (and, when ``outputs.formats`` has ``png``,
    ``report/maps/*.png``) from the workspace's artifacts.

    Parameters
    ----------
    config
        The run's Config (city name, forecast interval, buildings source for credits).
    ws
        The Workspace; needs compute's cells and panel, uses model, forecast and scenario
        outputs when present (a missing stage leaves a note in its section).
    basemap
        Draw web tiles under the PNG maps when they can be reached (never in the HTML page).

    Returns
    -------
    Path
        The HTML file.

    Raises
    ------
    StaleWorkspaceError
        A stage it reads did not finish its last run, or ran before an earlier stage last ran.
    """
    ws.require_current(("fetch", "compute", "model", "forecast", "exposure", "plan"), "uhi report")
    _READ_CACHE.clear()
    try:
        return _build(config, ws, basemap)
    finally:
        _READ_CACHE.clear()


def _build(config: Any, ws: Any, basemap: bool) -> Path:
    from uhi import __version__
    from uhi.report.inline import cell_map_js, leaflet_css, leaflet_js

    inp = _load(config, ws)
    out_dir = ws.stage_dir("report")
    save_png = "png" in config.outputs.formats
    if not save_png and (out_dir / "maps").is_dir():
        from uhi.workspace import remove_tree

        remove_tree(out_dir / "maps")  # maps of an earlier run would pass for this one's
    inp.data.setdefault("headline", {})["hottest"] = _hottest_places(inp, ws)
    headline = _headline_section(inp)
    maps, extra = _maps_section(inp, ws, out_dir, basemap, config, save_png)
    sections = [headline, _suhi_section(inp, ws), maps]
    sections += [s for s in (_exposure_section(inp, ws), _plan_section(inp)) if s is not None]
    sections += [_models_section(inp), _forecast_section(inp, ws, config.forecast.interval)]
    scen = _scenario_section(ws)
    if scen is not None:
        sections.append(scen)
    payload, why = _cells_payload(inp, extra)
    interactive = ReportSection("cell-map-section", "Interactive cell map")
    if payload is None:
        interactive.body.append(_missing(why))
        cells_json = "null"
    else:
        interactive.body.append("<p>Click a cell for its values; choose the layer top right. "
                                "No background tiles: the page works offline.</p>")
        if why:
            interactive.body.append(f"<p>{html.escape(why)}</p>")
        interactive.body.append('<div id="cell-map"></div>')
        cells_json = _embed_json(payload)
    sections.append(interactive)
    sections += [_caveats_section(inp), _glossary_section()]
    years = sorted(inp.panel["year"].unique())
    title = f"Urban heat island report: {config.city.name}"
    source = ("SYNTHETIC data written by uhi demo (not Landsat observations)" if inp.synthetic
              else "Landsat 8/9 Collection 2 Level-2 surface temperature")
    subtitle = f"{source}, {years[0]}–{years[-1]}, {len(inp.cells):,} cells of about {_cell_size_m(inp):.0f} m"
    nav = " ".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    template = Template(resources.files("uhi.report").joinpath("template.html").read_text(encoding="utf-8"))
    page = template.substitute(
        title=html.escape(title),
        subtitle=html.escape(subtitle),
        version=html.escape(__version__),
        generated=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        nav=nav,
        sections="\n".join(s.html() for s in sections),
        credits=html.escape(" | ".join(inp.credits)),
        cells_json=cells_json,
        report_json=_embed_json(inp.data),
        banner='<p class="synthetic-banner">SYNTHETIC DATA: a planted demo city, not a real place</p>' if inp.synthetic else "",
        leaflet_css=leaflet_css(),
        leaflet_js=leaflet_js(),
        cell_map_js=cell_map_js(),
    )
    target = out_dir / "report.html"
    ws.write_text(target, page)
    log.info("report: wrote %s (%.1f MB)", target, len(page.encode()) / 1e6)
    return target


# -- plain-language sections ---------------------------------------------------------------------

_MODEL_NAMES = {
    "ols": "Ordinary least squares: each cell's temperature explained by its own land cover only.",
    "slx": "Ordinary least squares that also uses the neighbours' land cover (spatially lagged covariates).",
    "lag": "Spatial lag model: a cell's temperature also depends on its neighbours' temperature, so a change "
           "in one place spills over to the cells around it.",
    "error": "Spatial error model: the part the land cover does not explain is correlated between neighbours.",
    "fe": "Zone fixed effects: each zone gets its own baseline temperature, the land-cover effects are shared.",
    "panel_fe": "Panel model over all years at once with a baseline per cell and per year, plus spill-over "
                "between neighbours.",
}

_GLOSSARY = (
    ("LST", "Land surface temperature: how hot the ground, roofs and roads are, measured by the satellite's "
            "thermal sensor. It is not the air temperature, which is usually lower on a sunny afternoon."),
    ("SUHI", "Surface urban heat island: how much warmer built-up land is than the rural land around the city, "
             "in LST."),
    ("NDVI", "Normalised difference vegetation index: from -1 to 1; above about 0.3 means green vegetation."),
    ("NDBI", "Normalised difference built-up index: higher where there are more roofs and paving."),
    ("Gi*", "Getis-Ord Gi* statistic: marks hot spots (clusters of hot cells) and cold spots that are unlikely "
            "to be chance, at 90, 95 or 99 % confidence."),
    ("R-squared", "Share of the differences in temperature between cells that a model explains (0 to 1)."),
    ("AIC", "Akaike information criterion: how well a model fits, penalised for its number of parameters; "
            "lower is better."),
    ("Spill-over", "The effect a change in one cell has on its neighbours' temperature (lag models only)."),
    ("Cell", "One square of the map grid (a web-map tile); the report's smallest unit."),
)


def _lonlat_name(lon: float, lat: float) -> str:
    """'51.0447° N, 114.0719° W': 4 decimals of a degree ~ 10 m, finer than a cell."""
    return f"{abs(lat):.4f}° {'N' if lat >= 0 else 'S'}, {abs(lon):.4f}° {'E' if lon >= 0 else 'W'}"


def _deg(value: Any, digits: int = 1, signed: bool = False) -> str:
    """A temperature (difference) in degrees C, rounded; an en dash for no value."""
    if value is None or not np.isfinite(float(value)):
        return "–"
    return f"{float(value):+.{digits}f} °C" if signed else f"{float(value):.{digits}f} °C"


def _people(value: Any) -> str:
    if value is None or not np.isfinite(float(value)):
        return "–"
    v = float(value)
    return f"{round(v, -2):,.0f}" if v >= 1000 else f"{v:,.0f}"


def _suhi_headline(data: dict[str, Any]) -> dict[str, Any] | None:
    """Mean SUHI over compute's scene dates, and the years they span."""
    rows = [r for r in data.get("suhi") or [] if r.get("suhi_c") is not None]
    if not rows:
        return None
    return {"mean_c": float(np.mean([r["suhi_c"] for r in rows])), "dates": len(rows),
            "first_year": int(rows[0]["date"][:4]), "last_year": int(rows[-1]["date"][:4])}


def _trend_per_decade(data: dict[str, Any]) -> dict[str, Any] | None:
    """OLS slope of the forecast's observed city series per decade with its 95 % interval (yearly steps)."""
    from uhi.stats.trend import linear_trend

    city = data.get("city") or {}
    fc = data.get("forecast") or {}
    observed = {k: v for k, v in (city.get("observed") or {}).items() if v is not None}
    if fc.get("step") == "month" or len(observed) < 3 or not all(str(k).isdigit() for k in observed):
        return None
    trend = linear_trend([int(k) for k in observed], list(observed.values()))
    if trend is None:
        return None
    return {"per_decade_c": trend.per_decade, "low_c": trend.low, "high_c": trend.high,
            "years": [trend.first_year, trend.last_year]}


def _suhi_trend_sentence(trend: dict[str, Any]) -> str:
    """'+0.3 °C per decade (1998–2015, 18 summers; 95 % interval ...)' from compute's suhi_trend."""
    sure = ("too few or too noisy summers to be sure of the direction" if trend["low"] < 0 < trend["high"]
            else "the direction is clear")
    return (f"<b>{_deg(trend['per_decade'], signed=True)} per decade</b> ({trend['first_year']}–{trend['last_year']}, "
            f"{trend['n_years']} summers; {round(100 * trend['confidence'])} % interval {_deg(trend['low'], signed=True)} to "
            f"{_deg(trend['high'], signed=True)}: {sure})")


def _hottest_places(inp: _Inputs, ws: Any, n: int = 3) -> dict[str, Any]:
    """The hottest zones (exposure stage) or else the hottest cells by lon/lat, in the latest year."""
    import pandas as pd

    zones_path = ws.path("exposure", "zones.parquet")
    if zones_path.is_file():
        import pyarrow.parquet as pq

        names = pq.read_schema(zones_path).names
        want = [c for c in ("zone", "name", "lst_pop_mean_c", "lst_mean_c", "population", "rank") if c in names]
        zones = pd.read_parquet(zones_path, columns=want)
        key = "lst_pop_mean_c" if "lst_pop_mean_c" in zones and zones["lst_pop_mean_c"].notna().any() else "lst_mean_c"
        if key in zones:
            top = zones.loc[zones[key].notna()].sort_values(key, ascending=False).head(n)
            return {"kind": "zones", "year": (inp.data.get("exposure") or {}).get("year", inp.year),
                    "measure": "mean LST where people live" if key == "lst_pop_mean_c" else "area-weighted mean LST",
                    "places": [
                {"name": str(r.get("name", r.get("zone"))), "lst_c": float(r[key]),
                 "population": None if pd.isna(r.get("population", np.nan)) else float(r["population"])}
                for _, r in top.iterrows()]}
    if "lst_c" not in inp.per_cell:
        return {"kind": "cells", "year": inp.year, "places": []}
    ranked = inp.per_cell["lst_c"].dropna().sort_values(ascending=False)
    candidates = ranked.index[: 50 * n]
    xy = inp.cells.set_index("cell").geometry.loc[candidates].to_crs(inp.working_crs).centroid
    # distinct places, not one hot block named n times: at least 4 cell sides apart
    gap_m = 4 * _cell_size_m(inp)
    chosen: list[Any] = []
    for cell in candidates:
        p = xy.loc[cell]
        if all(p.distance(xy.loc[c]) >= gap_m for c in chosen):
            chosen.append(cell)
        if len(chosen) == n:
            break
    top = ranked.loc[chosen]
    centre = xy.loc[chosen].to_crs(4326)
    return {"kind": "cells", "year": inp.year, "places": [
        {"name": _lonlat_name(float(lon), float(lat)),
         "lon": round(float(lon), 5), "lat": round(float(lat), 5), "cell": str(cell), "lst_c": float(v)}
        for cell, v, lon, lat in zip(top.index, top.to_numpy(), centre.x, centre.y, strict=True)]}


def _headline_section(inp: _Inputs) -> ReportSection:
    """The first screen: what a decision maker needs, in plain words, each linked to its section."""
    data = inp.data
    head = data.setdefault("headline", {})
    sec = ReportSection("key-findings", "Key findings")
    items: list[str] = []
    suhi = _suhi_headline(data)
    head["suhi"] = suhi
    if suhi:
        span = f"{suhi['first_year']}–{suhi['last_year']}" if suhi["first_year"] != suhi["last_year"] else str(suhi["first_year"])
        items.append(f'On summer days, built-up areas were <b>{_deg(suhi["mean_c"])} warmer</b> at the surface than '
                     f'the rural land around the city ({span}, mean of {suhi["dates"]} satellite scenes). '
                     '<a href="#suhi">SUHI series</a>')
    suhi_trend = data.get("suhi_trend")
    head["suhi_trend"] = suhi_trend
    if suhi and suhi_trend:
        items.append(f"The heat island changed by {_suhi_trend_sentence(suhi_trend)}. "
                     '<a href="#suhi">SUHI series</a>')
    trend = _trend_per_decade(data)
    head["trend"] = trend
    if trend:
        items.append(f"The city's mean summer surface temperature changed by <b>{_deg(trend['per_decade_c'], signed=True)} "
                     f"per decade</b> ({trend['years'][0]}–{trend['years'][1]}; 95 % interval "
                     f"{_deg(trend['low_c'], signed=True)} to {_deg(trend['high_c'], signed=True)}: "
                     f"{'too few years to be sure of the direction' if trend['low_c'] < 0 < trend['high_c'] else 'the direction is clear'}). "
                     '<a href="#forecast">Forecast</a>')
    places = head["hottest"]
    if places["places"]:
        if places["kind"] == "zones":
            named = "; ".join(f"{html.escape(p['name'])} ({_deg(p['lst_c'])}"
                              + (f", {_people(p['population'])} residents)" if p.get("population") is not None else ")")
                              for p in places["places"])
            items.append(f"Hottest neighbourhoods in {places['year']} ({places['measure']}): {named}. "
                         '<a href="#exposure">People exposed</a>')
        else:
            named = "; ".join(f"{i}. {p['name']} ({_deg(p['lst_c'])})" for i, p in enumerate(places["places"], 1))
            items.append(f"Hottest places in {places['year']} (numbered on the LST map): {named}. "
                         '<a href="#maps">Maps</a>')
    city = data.get("city") or {}
    fc = city.get("forecast") or {}
    if fc:
        last = list(fc)[-1]
        interval = (data.get("forecast") or {}).get("interval") or 0.9
        items.append(f"Forecast city-mean summer LST for {html.escape(str(last))}: <b>{_deg(fc[last])}</b> "
                     f"({interval:.0%} interval {_deg(city['lower'][last])} to {_deg(city['upper'][last])}). "
                     '<a href="#forecast">Forecast</a>')
    rcp = data.get("rcp85") or {}
    added = rcp.get("air_warming_added_c") or rcp.get("warming_added_c") or []
    if rcp.get("years") and added:
        k_lst = rcp.get("lst_per_air_k", 1.0)
        items.append(f"Long-term outlook: by {rcp['years'][-1]}, the RCP8.5 climate scenario adds "
                     f"<b>{_deg(added[-1], signed=True)}</b> of <i>air</i>-temperature warming; the report adds "
                     f"{k_lst:g} °C of surface temperature per °C of air warming, an assumption "
                     "(<code>forecast.rcp_lst_per_air_k</code>), not a measurement. <a href=\"#forecast\">Outlook</a>")
    plan = data.get("plan")
    if plan:
        items.append(f"Best plan: {html.escape(str(plan.get('intervention', '')))} on {plan.get('cells_selected', 0)} cells for "
                     f"{float(plan.get('total_cost') or 0):,.0f} {html.escape(str(plan.get('currency', '')))} cools "
                     f"by {_amount(float(plan.get('total_benefit') or 0))} {html.escape(str(plan.get('unit', '')).replace('degC', '°C'))}. "
                     '<a href="#plan">Plan</a>')
    for name, rec in (data.get("scenarios") or {}).items():
        mean = ((rec or {}).get("city") or {}).get("mean_dlst_c")
        if mean is not None:
            items.append(f"Scenario {html.escape(name)}: city-wide mean change in LST {_deg(mean, 2, signed=True)}. "
                         '<a href="#scenarios">Scenarios</a>')
    if inp.synthetic:
        items.append("<b>These are synthetic data</b> written by <code>uhi demo</code> to show how the report reads: "
                     "no figure here describes a real city.")
    sec.body.append("<ul class=\"findings\">" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"
                    if items else _missing("no stage has written figures yet"))
    return sec


def _caveats_section(inp: _Inputs) -> ReportSection:
    import pandas as pd

    sec = ReportSection("caveats", "Caveats and data")
    sec.body.append(
        "<ul><li>LST is the temperature of surfaces (roofs, roads, grass) seen by the satellite at about 10:30 "
        "local time, not the air temperature people feel; the two differ most on sunny days.</li>"
        "<li>The long-term outlook adds the RCP8.5 <i>air</i>-temperature warming of the source named with it to "
        "each cell's current surface temperature, scaled by <code>forecast.rcp_lst_per_air_k</code> (surface "
        "degrees per degree of air warming; 1 unless set). That is an assumption, not a model of surfaces.</li>"
        "<li>Clouds hide the ground: years with few clear scenes give less certain figures.</li></ul>")
    rows = inp.data.get("scenes_per_year") or []
    if rows:
        frame = pd.DataFrame(rows).set_index("year").rename(columns={
            "scenes": "scenes", "cloud_mean_pct": "mean cloud cover (%)", "cloud_max_pct": "max cloud cover (%)"})
        sec.body.append("<p>Scenes fetched per year and their cloud cover (whole scene):</p>")
        sec.body.append(_table(frame, digits=0))
    if inp.synthetic:
        sec.body.append("<p><b>Synthetic data.</b> The scenes were planted by <code>uhi demo</code> "
                        "(their STAC items carry <code>uhi:synthetic</code>); they are not Landsat observations.</p>")
    return sec


def _glossary_section() -> ReportSection:
    sec = ReportSection("glossary", "Glossary")
    sec.body.append("<dl>" + "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in _GLOSSARY) + "</dl>")
    return sec


def _exposure_section(inp: _Inputs, ws: Any) -> ReportSection | None:
    from uhi.report.inline import data_uri

    ex = inp.data.get("exposure")
    if not ex:
        return None
    sec = ReportSection("exposure", "People exposed to heat")
    if ex.get("population") is None:
        sec.body.append(_missing("the exposure stage ran without a population layer"))
    facts = [
        ("year", str(ex.get("year", "–"))),
        ("people placed on the city's cells", _people(ex.get("population"))),
        ("population-weighted mean LST", _deg(ex.get("lst_pop_mean_c"))),
        ("area-weighted mean LST", _deg(ex.get("lst_mean_c"))),
        ("people in hot spots (Gi*, 95 %)", _people(ex.get("people_hot_95"))),
        ("people in hot spots (Gi*, 99 %)", _people(ex.get("people_hot_99"))),
        (f"people where LST is above {_deg(ex.get('threshold_c'))}", _people(ex.get("people_above_threshold"))),
        ("people in cells without a land temperature", _people(ex.get("people_no_lst"))),
    ]
    sec.body.append('<table class="uhi facts">' + "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in facts)
                    + "</table>")
    places = (inp.data.get("headline") or {}).get("hottest") or {}
    if places.get("kind") == "zones":
        sec.body.append(f"<p>Hottest zones ({places['measure']}): " + ", ".join(
            f"{html.escape(p['name'])} ({_deg(p['lst_c'])})" for p in places["places"]) + ".</p>")
    png = ws.path("exposure", "exposure_map.png")
    if png.is_file():  # the exposure stage's own map: zones by population-weighted LST, hot spots outlined
        caption = "Zones coloured by the mean LST where people live; Gi* hot spots outlined (exposure stage)."
        sec.body.append(f'<figure><img alt="{html.escape(caption)}" src="{data_uri(png.read_bytes(), "image/png")}">'
                        f"<figcaption>{html.escape(caption)}</figcaption></figure>")
    return sec


def _amount(value: float) -> str:
    """A benefit for people to read: thousands separated, no exponent (4,694 not 4.69e+03)."""
    if not math.isfinite(value):
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _plan_section(inp: _Inputs) -> ReportSection | None:
    plan = inp.data.get("plan")
    if not plan:
        return None
    sec = ReportSection("plan", "Cooling plan")
    cur = html.escape(str(plan.get("currency", "")))
    unit = html.escape(str(plan.get("unit", "")).replace("degC", "°C"))
    iv = plan.get("interval") or {}
    lo, hi = iv.get("low") if isinstance(iv, dict) else None, iv.get("high") if isinstance(iv, dict) else None
    sec.body.append(
        f"<p>{html.escape(str(plan.get('intervention', '')).replace('_', ' ').capitalize())} on "
        f"{plan.get('cells_selected', 0)} of "
        f"{plan.get('cells_feasible', 0)} feasible cells, costing {float(plan.get('total_cost') or 0):,.0f} {cur} of a "
        f"budget of {float(plan.get('budget') or 0):,.0f} {cur}; it buys {float(plan.get('amount') or 0):,.0f} "
        f"{html.escape(str(plan.get('amount_unit', '')))}. Cooling ({html.escape(str(plan.get('objective', '')))}): "
        f"{_amount(float(plan.get('total_benefit') or 0))} {unit}, of which {_amount(float(plan.get('spillover_benefit') or 0))} "
        f"through spill-over to neighbours"
        + (f" (interval {_amount(float(lo))} to {_amount(float(hi))})" if lo is not None and hi is not None else "")
        + f". Model: {html.escape(str(plan.get('model', '')))}."
        + (" A person-°C is one resident cooled by 1 °C of surface temperature; the total adds them up "
           "over every cell." if "person" in unit else "") + "</p>")
    gains = {k: v for k, v in (plan.get("gain_over_naive") or {}).items() if v is not None}
    if gains:
        naive = {"hottest_cells": "greening the hottest cells first",
                 "most_populated_cells": "greening the most populated cells first"}
        sec.body.append("<p>Extra cooling over simpler plans of the same budget: " + "; ".join(
            f"{_amount(float(v))} {unit} more than {html.escape(naive.get(str(k), str(k).replace('_', ' ')))}"
            for k, v in gains.items()) + ".</p>")
    sec.body.append(f"<p class=\"note\">{html.escape(str(plan.get('costs_note', '')))}</p>")
    return sec

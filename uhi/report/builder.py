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
    return frame.to_html(classes="uhi", index=index, float_format=lambda v: f"{v:.{digits}f}", na_rep="–", border=0)


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
    from uhi.writers.maps import CREDIT_LANDSAT, CREDIT_OSM

    credits = [CREDIT_LANDSAT]
    buildings = config.buildings.path
    if buildings is not None and "osm" in str(buildings).lower():
        credits.append(CREDIT_OSM)
    return _Inputs(cells, _working_crs(ws, cells), panel, year, per_cell, summary, credits)


# -- sections ----------------------------------------------------------------------------------


def _maps_section(
    inp: _Inputs, ws: Any, out_dir: Path, basemap: bool, save_png: bool = True
) -> tuple[ReportSection, dict[str, Any]]:
    """PNG maps of LST, anomaly, hotspots, residuals, forecast, scenario; also the layer data.
    The maps are always inlined in the page; ``save_png`` also writes them as ``maps/*.png``."""
    from uhi.writers.maps import render_hotspot_map, render_value_map

    sec = ReportSection("maps", f"Maps ({inp.year})")
    cells = inp.cells[["cell", "geometry"]].merge(inp.per_cell, left_on="cell", right_index=True, how="left")
    extra: dict[str, Any] = {}
    common = {"working_crs": inp.working_crs, "basemap": basemap, "credits": inp.credits}
    maps_dir = out_dir / "maps"
    figs = []
    if "lst_c" in cells:
        figs.append(("lst", render_value_map(cells, "lst_c", title=f"Land surface temperature, summer {inp.year}",
                                             label="LST", units="°C", cmap="inferno", **common),
                     f"Mean land surface temperature of the {inp.year} scenes per cell."))
    if "anomaly_c" in cells and cells["anomaly_c"].notna().any():
        figs.append(("anomaly", render_value_map(cells, "anomaly_c", title=f"SUHI anomaly, summer {inp.year}",
                                                 label="LST minus rural mean", units="°C", cmap="RdBu_r",
                                                 diverging=True, **common),
                     "Per-cell LST minus the rural reference mean of each date, averaged over the year."))
    hot = _hotspots(ws, inp.summary)
    if hot is not None:
        frame, column, variable = hot
        g = inp.cells[["cell", "geometry"]].merge(frame, on="cell", how="left")
        figs.append(("hotspots", render_hotspot_map(g, column, variable=variable, **common),
                     f"Getis-Ord Gi* classes of {variable} at 90/95/99 % confidence."))
        extra["gi_bin"] = g.set_index("cell")[column]
    res = _residuals(ws, inp.summary)
    if res is not None:
        frame, column, model = res
        g = inp.cells[["cell", "geometry"]].merge(frame, on="cell", how="left")
        figs.append(("residuals", render_value_map(g, column, title=f"Residuals of the {model}",
                                                   label="observed minus fitted LST", units="°C",
                                                   cmap="PuOr_r", diverging=True, **common),
                     f"Residuals of the {model}: where the covariates under- or over-predict LST."))
        extra["residual"] = g.set_index("cell")[column]
    fc = _forecast_cells(ws)
    if fc is not None:
        frame, column, year = fc
        g = inp.cells[["cell", "geometry"]].merge(frame, on="cell", how="left")
        figs.append(("forecast", render_value_map(g, column, title=f"Forecast LST, {year}",
                                                  label="forecast LST", units="°C", cmap="inferno", **common),
                     f"Per-cell exponential-smoothing forecast of LST for {year}."))
        extra["forecast"] = (g.set_index("cell")[column], year)
    for name, frame, polygons in _scenarios(ws):
        g = inp.cells[["cell", "geometry"]].merge(frame[["cell", "dlst_c"]], on="cell", how="left")
        figs.append((f"scenario_{name}", render_value_map(
            g, "dlst_c", title=f"Scenario {name}: change in LST", label="ΔLST", units="°C",
            cmap="RdBu_r", diverging=True, outlines=polygons, **common),
            f"Predicted change in LST for scenario {name}; black outlines are the changed areas."))
        extra.setdefault("scenarios", []).append((name, g.set_index("cell")["dlst_c"]))
    tags = [_figure_tag(fig, caption, caption, save_to=maps_dir / f"{key}.png" if save_png else None, ws=ws)
            for key, fig, caption in figs]
    sec.body.append('<div class="maps">' + "\n".join(tags) + "</div>" if tags else _missing("no map could be drawn"))
    return sec, extra


def _properties(path: Path) -> Any:
    """The properties table of a GeoJSON file (geometry not needed: cells come from compute).

    Plain ``json`` is ~10x faster than an OGR read here, where only attributes are used.
    """
    import pandas as pd

    features = json.loads(Path(path).read_text(encoding="utf-8")).get("features") or []
    return pd.DataFrame([f.get("properties") or {} for f in features])


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
    if not path.is_file():
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
    if not path.is_file():
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
    if not path.is_file():
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

    sec = ReportSection("models", "Model comparison (R²)")
    table = _r2_table(inp.summary)
    if table is None:
        sec.body.append(_missing("no model summary yet: run uhi model"))
        return sec
    summary = inp.summary or {}
    best = summary.get("best_model")
    if best:
        sec.body.append(f"<p>Best model: <b>{html.escape(str(best))}</b> "
                        f"(y = {html.escape(str(summary.get('y', 'lst_c')))}, "
                        f"x = {html.escape(', '.join(map(str, summary.get('x', []))))}, "
                        f"weights {html.escape(str(summary.get('weights', '')))}).</p>")
    sec.body.append(_table(table))
    sec.body.append(_figure_tag(render_r2_chart(table.drop(columns="mean")), "R-squared by model and year",
                                "R² of each model per year; the mean across years ranks the models."))
    return sec


def _suhi_series(inp: _Inputs) -> Any:
    """SUHI intensity per date: mean anomaly (LST - rural mean) over urban, non-water cells."""
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

    sec = ReportSection("suhi", "Surface urban heat island series")
    series = _suhi_series(inp)
    if series is None:
        sec.body.append(_missing("no SUHI series: compute wrote no urban cells or anomalies"))
        return sec
    method = ((ws.stage_record("compute") or {}).get("summary") or {}).get("suhi_method")
    if method:
        sec.body.append(f"<p>Urban and rural reference cells: {html.escape(str(method))}.</p>")
    sec.body.append(_figure_tag(render_suhi_chart(series), "SUHI series",
                                "SUHI intensity per scene date (urban cells' mean LST anomaly against the rural reference)."))
    yearly = series.groupby(series["date"].dt.year)["suhi_c"].agg(["mean", "min", "max", "count"])
    yearly.index.name = "year"
    yearly.columns = ["mean SUHI (°C)", "min (°C)", "max (°C)", "dates"]
    sec.body.append(_table(yearly, digits=2))
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

    sec = ReportSection("forecast", "Forecast")
    path = ws.path("forecast", "forecast.geojson")
    if not path.is_file():
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
    history = _observed_city(inp.panel, str(fsum.get("step", "summer")))
    city = (fsum.get("city") or {}).get("lst_c") or {}
    if all(city.get(k) for k in ("forecast", "lower", "upper")):
        fc = pd.DataFrame({"year": [_step_x(lbl) for lbl in city["forecast"]],
                           "mean": list(city["forecast"].values()),
                           "lower": [city["lower"][lbl] for lbl in city["forecast"]],
                           "upper": [city["upper"][lbl] for lbl in city["forecast"]]})
        how = f"the city-mean series forecast by {city.get('method', 'exponential smoothing')}"
    else:
        fc = pd.DataFrame({"year": [_step_x(lbl) for lbl in labels],
                           "mean": [frame[f"lst_c_{lbl}"].mean() for lbl in labels],
                           "lower": [frame[f"lst_c_{lbl}_lo"].mean() for lbl in labels],
                           "upper": [frame[f"lst_c_{lbl}_hi"].mean() for lbl in labels]})
        how = "the mean of the per-cell forecasts and of their bounds"
    sec.body.append(_figure_tag(
        render_forecast_chart(history, fc, interval=interval, title="City-mean summer LST: observed and forecast"),
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
        if len(cell_hist):
            method = row.get("lst_c_method", "")
            sec.body.append(_figure_tag(
                render_forecast_chart(cell_hist, cell_fc, interval=interval,
                                      title=f"Hottest forecast cell {cell} ({method})"),
                "Forecast of the hottest cell", f"Cell {cell}, the hottest in {labels[-1]}, with its "
                f"{interval:.0%} prediction interval."))
    table = fc.assign(step=[str(lbl) for lbl in (city.get("forecast") or labels)]).set_index("step")
    table = table.drop(columns="year").rename(columns={"mean": "forecast (°C)", "lower": "lower (°C)", "upper": "upper (°C)"})
    sec.body.append(_table(table, digits=2))
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
        sec.body.append(_table(rows.set_index("year"), digits=2))
    return sec


def _scenario_section(ws: Any) -> ReportSection | None:
    import pandas as pd

    folder = ws.path("scenario")
    summaries = sorted(folder.glob("*_summary.json")) if folder.is_dir() else []
    if not summaries:
        return None
    sec = ReportSection("scenarios", "Scenarios")
    for path in summaries:
        rec = json.loads(path.read_text(encoding="utf-8"))
        city = rec.get("city", {})
        sec.body.append(
            f"<h3>{html.escape(str(rec.get('scenario', path.stem)))}</h3><p>Model {html.escape(str(rec.get('model')))}"
            f" ({html.escape(str(rec.get('model_year') or 'pooled'))}); city-wide mean change "
            f"{city.get('mean_dlst_c', float('nan')):.3f} °C over {city.get('cells_changed', 0)} changed cells; "
            f"mean change outside the polygons {city.get('outside_mean_dlst_c', float('nan')):.4f} °C.</p>"
        )
        polys = pd.DataFrame(rec.get("polygons", []))
        if len(polys):
            sec.body.append(_table(polys.set_index("name"), digits=3))
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
    from uhi import __version__
    from uhi.report.inline import cell_map_js, leaflet_css, leaflet_js

    ws.require_current(("fetch", "compute", "model", "forecast"), "uhi report")
    inp = _load(config, ws)
    out_dir = ws.stage_dir("report")
    save_png = "png" in config.outputs.formats
    if not save_png and (out_dir / "maps").is_dir():
        from uhi.workspace import remove_tree

        remove_tree(out_dir / "maps")  # maps of an earlier run would pass for this one's
    maps, extra = _maps_section(inp, ws, out_dir, basemap, save_png)
    sections = [maps, _models_section(inp), _suhi_section(inp, ws), _forecast_section(inp, ws, config.forecast.interval)]
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
    years = sorted(inp.panel["year"].unique())
    title = f"Urban heat island report: {config.city.name}"
    subtitle = (f"Landsat 8/9 Collection 2 Level-2 surface temperature, {years[0]}–{years[-1]}, "
                f"{len(inp.cells)} cells at zoom {config.grid.zoom}")
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
        leaflet_css=leaflet_css(),
        leaflet_js=leaflet_js(),
        cell_map_js=cell_map_js(),
    )
    target = out_dir / "report.html"
    ws.write_text(target, page)
    log.info("report: wrote %s (%.1f MB)", target, len(page.encode()) / 1e6)
    return target

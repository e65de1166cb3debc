"""Charts of the report: R-squared by model and year, the SUHI series, forecasts with intervals."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["render_r2_chart", "render_suhi_chart", "render_forecast_chart"]


def _figure(width_in: float = 8.0, height_in: float = 4.0) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.grid(True, color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    return fig, ax


def render_r2_chart(r2: Any) -> Any:
    """R-squared of each model (rows of ``r2``) across years (columns), one line per model.

    Pooled fits (a non-year column such as ``pooled``) are drawn as horizontal dashed lines.
    """
    fig, ax = _figure()
    years = [c for c in r2.columns if str(c).isdigit()]
    xs = np.array([int(c) for c in years])
    pooled = [c for c in r2.columns if not str(c).isdigit()]
    for model, row in r2.iterrows():
        if years and row[years].notna().any():
            ax.plot(xs, row[years].to_numpy(float), marker="o", label=str(model))
        for col in pooled:
            if np.isfinite(row[col]):
                ax.axhline(row[col], linestyle="--", linewidth=1.2, label=f"{model} ({col})", color="black")
    ax.set_xlabel("year")
    ax.set_ylabel("R²")
    ax.set_title("Model fit (R²) by year")
    if len(xs):
        ax.set_xticks(xs, [str(x) for x in xs])
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig


def render_suhi_chart(series: Any) -> Any:
    """SUHI intensity per acquisition date (points) and its summer mean per year (line).

    ``series`` has columns ``date`` and ``suhi_c``.
    """
    fig, ax = _figure()
    dates = series["date"]
    ax.plot(dates, series["suhi_c"], "o", color="#c0392b", alpha=0.6, label="per scene date")
    yearly = series.groupby(dates.dt.year)["suhi_c"].mean()
    import pandas as pd

    mid = pd.to_datetime([f"{y}-07-15" for y in yearly.index])
    ax.plot(mid, yearly.to_numpy(), "-", color="#7b241c", linewidth=2, label="summer mean")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("SUHI intensity (°C)")
    ax.set_title("Surface urban heat island: mean urban LST minus rural reference")
    ax.legend(fontsize=8)
    return fig


def render_forecast_chart(history: Any, forecast: Any, *, interval: float, title: str, units: str = "°C") -> Any:
    """Observed values and the forecast with its prediction interval.

    ``history`` has ``year`` and ``value``; ``forecast`` has ``year``, ``mean``, ``lower`` and
    ``upper``.
    """
    fig, ax = _figure()
    ax.plot(history["year"], history["value"], "o-", color="#34495e", label="observed")
    if len(forecast):
        years = np.concatenate([[history["year"].iloc[-1]], forecast["year"].to_numpy()])
        mean = np.concatenate([[history["value"].iloc[-1]], forecast["mean"].to_numpy(float)])
        ax.plot(years, mean, "o--", color="#c0392b", label="forecast")
        ax.fill_between(
            forecast["year"], forecast["lower"].to_numpy(float), forecast["upper"].to_numpy(float),
            color="#c0392b", alpha=0.2, label=f"{interval:.0%} prediction interval",
        )
    ax.set_xlabel("year")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.ticklabel_format(axis="x", useOffset=False, style="plain")
    ax.set_ylabel(units)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig

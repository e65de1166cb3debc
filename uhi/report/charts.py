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
    if len(xs) and xs.max() - xs.min() <= 12:
        ax.set_xticks(xs, [str(x) for x in xs])
    elif len(xs):
        _year_axis(ax, int(xs.min()), int(xs.max()), dates=False)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return fig


def _year_axis(ax: Any, first: int, last: int, *, dates: bool) -> None:
    """Year ticks that stay legible from 2 to 40+ years: every year up to 12, then every 2, 5
    or 10 years (about 6-10 labels)."""
    span = last - first
    step = next((s for s in (1, 2, 5, 10) if span / s <= 10), 20)
    if dates:
        import matplotlib.dates as mdates

        ax.xaxis.set_major_locator(mdates.YearLocator(base=step))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y"))
        if step > 1:
            ax.xaxis.set_minor_locator(mdates.YearLocator(base=1))
    else:
        from matplotlib.ticker import MultipleLocator

        ax.xaxis.set_major_locator(MultipleLocator(step))
        ax.ticklabel_format(axis="x", useOffset=False, style="plain")
        if step > 1:
            ax.xaxis.set_minor_locator(MultipleLocator(1))


def render_suhi_chart(series: Any, trend: dict[str, Any] | None = None) -> Any:
    """SUHI intensity per acquisition date (points), its summer mean per year (line) and, given
    compute's ``suhi_trend``, the OLS trend line through the yearly means.

    ``series`` has columns ``date`` and ``suhi_c``.
    """
    fig, ax = _figure()
    dates = series["date"]
    ax.plot(dates, series["suhi_c"], "o", color="#c0392b", alpha=0.6, label="per scene date")
    yearly = series.groupby(dates.dt.year)["suhi_c"].mean()
    import pandas as pd

    mid = pd.to_datetime([f"{y}-07-15" for y in yearly.index])
    ax.plot(mid, yearly.to_numpy(), "-", color="#7b241c", linewidth=2, label="summer mean")
    if trend and len(yearly) >= 2:
        # the line through the yearly means with compute's slope (OLS passes through the means)
        yrs = yearly.index.to_numpy(dtype=float)
        means = yearly.to_numpy(dtype=float)
        slope = trend["per_decade"] / 10.0
        line = means.mean() + slope * (yrs - yrs.mean())
        ax.plot(mid, line, "--", color="black", linewidth=1.2,
                label=f"trend {trend['per_decade']:+.2f} °C per decade")
    ax.axhline(0, color="black", linewidth=0.8)
    if len(yearly):
        _year_axis(ax, int(yearly.index.min()), int(yearly.index.max()), dates=True)
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
    steps = np.concatenate([np.asarray(history["year"], float), np.asarray(forecast["year"], float)])
    if steps.size and steps.max() - steps.min() > 12:
        _year_axis(ax, int(steps.min()), int(np.ceil(steps.max())), dates=False)
    else:
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.ticklabel_format(axis="x", useOffset=False, style="plain")
    ax.set_ylabel(units)
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig

"""`uhi forecast`: the forecast stage in a workspace, or any long table with --input."""

from __future__ import annotations

from pathlib import Path

import click

from uhi.cli.options import config_opt_arg, force_opt, json_opt, list_opt, set_opt, workdir_opt

__all__ = ["forecast"]

_STEPS = ("auto", "index", "year", "month", "summer")
_METHODS = ("simple", "holt", "damped")


def _interval_handler(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None and not 0 < value < 1:
        raise click.BadParameter(f"must be between 0 and 1 (exclusive), got {value}; e.g. 0.9")
    return value


@click.command("forecast")
@config_opt_arg
@workdir_opt
@set_opt
@force_opt
@json_opt
@click.option("--input", "input_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="General mode: a long table (.csv or .parquet) instead of a workspace.")
@click.option("--id-col", default=None, metavar="COL", help="General mode: series id column.")
@click.option("--time-col", default=None, metavar="COL", help="General mode: time column (dates or integers).")
@list_opt("--value-col", "value_cols", metavar="COL",
          help="General mode: value column to forecast (repeat the flag for more).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="General mode: output folder.")
@click.option("--horizon", type=click.IntRange(min=1), default=None,
              help="Steps ahead (at most half the series length); workspace default forecast.horizon.")
@click.option("--step", type=click.Choice(_STEPS), default="auto", show_default=True,
              help="General mode: aggregation step; auto = integers as steps, dates by spacing.")
@click.option("--holdout", type=click.IntRange(min=0), default=None,
              help="Last steps held out for validation (default 2).")
@click.option("--interval", type=float, default=None, callback=_interval_handler,
              help="Prediction interval coverage (default 0.9).")
@list_opt("--methods", "methods", choices=_METHODS, metavar="NAME",
          help="A candidate method among simple, holt, damped, the flag repeated for more (default all).")
@click.option("--min-points", type=click.IntRange(min=2), default=None,
              help="Series with fewer observed steps are reported, not fitted (default 4).")
def forecast(
    config: Path | None,
    workdir: Path | None,
    set_values: tuple[str, ...],
    force: bool,
    as_json: bool,
    input_path: Path | None,
    id_col: str | None,
    time_col: str | None,
    value_cols: tuple[str, ...],
    out_dir: Path | None,
    horizon: int | None,
    step: str,
    holdout: int | None,
    interval: float | None,
    methods: tuple[str, ...],
    min_points: int | None,
) -> None:
    """Forecast each cell of the workspace for CONFIG, or every series of --input.

    \b
    Workspace mode:  uhi forecast [CONFIG] [--workdir DIR] [--set K=V] [--force]
    General mode:    uhi forecast --input TABLE --id-col C --time-col C --value-col C
                                  --horizon H --out DIR
    """
    method_tuple = methods or None
    if input_path is None:
        general = {"--id-col": id_col, "--time-col": time_col, "--value-col": value_cols or None,
                   "--out": out_dir}
        given = [k for k, v in general.items() if v]
        if given or step != "auto":
            raise click.UsageError(f"{', '.join(given or ['--step'])} need(s) --input TABLE (general mode)")
        _workspace_mode(config, workdir, set_values, force, horizon, holdout, interval, method_tuple, min_points,
                        as_json=as_json)
        return
    if config is not None or workdir is not None or set_values or force:
        raise click.UsageError("--input (general mode) takes no CONFIG, --workdir, --set or --force")
    missing = [k for k, v in {"--id-col": id_col, "--time-col": time_col, "--value-col": value_cols,
                              "--horizon": horizon, "--out": out_dir}.items() if not v]
    if missing:
        raise click.UsageError(f"--input needs {', '.join(missing)}")
    from uhi.stages.forecast import run_table

    summary = run_table(
        input_path, out_dir, id_col=id_col, time_col=time_col, value_cols=list(value_cols),  # type: ignore[arg-type]
        horizon=horizon, step=step, holdout=2 if holdout is None else holdout,  # type: ignore[arg-type]
        coverage=0.9 if interval is None else interval, methods=method_tuple or _METHODS,
        min_points=4 if min_points is None else min_points,
    )
    if as_json:
        import json

        click.echo(json.dumps({"summary": summary, "output": str(out_dir)}, indent=2, default=str))
        return
    click.echo(f"series: {summary['series']} ({summary['step']} steps, longest {summary['longest_series_steps']})")
    for var, counts in summary["status"].items():
        click.echo(f"  {var}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    click.echo(f"forecast steps: {', '.join(summary['forecast_steps'])} after each series' last step")
    click.echo(f"output: {out_dir}")


def _workspace_mode(
    config: Path | None,
    workdir: Path | None,
    set_values: tuple[str, ...],
    force: bool,
    horizon: int | None,
    holdout: int | None,
    interval: float | None,
    methods: tuple[str, ...] | None,
    min_points: int | None,
    *,
    as_json: bool = False,
) -> None:
    from uhi.cli.common import build_run_config, print_outcomes, run_stages

    extra = {
        "forecast.horizon": horizon,
        "forecast.holdout": holdout,
        "forecast.interval": interval,
        "forecast.methods": list(methods) if methods else None,
        "forecast.min_points": min_points,
    }
    cfg = build_run_config(config, workdir=workdir, set_values=set_values, extra=extra)
    outcomes = run_stages(cfg, ["forecast"], force=force)
    print_outcomes(outcomes, cfg.resolved_workdir(), as_json=as_json)

"""`uhi model`: the model stage in a workspace, or the same models on any vector layer."""

from __future__ import annotations

from pathlib import Path

import click

from uhi.cli.options import config_opt_arg, force_opt, json_opt, list_opt, set_opt, workdir_opt

__all__ = ["model"]

_MODEL_NAMES = ("ols", "slx", "lag", "error", "fe", "panel_fe")


def weights_handler(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """Check a weights spec: knn:K, queen, rook or distance:D."""
    if value is None:
        return None
    kind, _, arg = value.partition(":")
    ok = (kind in ("queen", "rook") and not arg) or (kind == "knn" and arg.isdigit() and int(arg) >= 1)
    if kind == "distance":
        try:
            ok = float(arg) > 0
        except ValueError:
            ok = False
    if not ok:
        raise click.BadParameter(
            f"{value!r} is not a weights spec; use knn:K (K >= 1), queen, rook or distance:D (metres)",
            ctx=ctx,
            param=param,
        )
    return value


@click.command("model")
@config_opt_arg
@workdir_opt
@set_opt
@force_opt
@json_opt
@click.option("--input", "input_path", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="General mode: any vector layer (GeoPackage, GeoJSON, Shapefile, GeoParquet).")
@click.option("--y", "y_col", default=None, metavar="COL", help="General mode: the response column.")
@list_opt("--x", "x_cols", metavar="COL", help="General mode: a regressor column (repeat the flag for more).")
@click.option("--weights", default=None, callback=weights_handler, metavar="SPEC",
              help="knn:K, queen, rook or distance:D (metres) [default: model.weights, knn:8]; "
                   "in workspace mode it overrides model.weights.")
@list_opt("--models", "models", choices=_MODEL_NAMES, metavar="NAME",
          help="A model among ols, slx, lag, error, fe, panel_fe, the flag repeated for more (--models ols "
               "--models lag) [general mode default: ols slx lag error, plus fe with --zone-col and panel_fe "
               "with --year-col]; in workspace mode it overrides model.models.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="General mode: output folder.")
@click.option("--zone-col", default=None, metavar="COL", help="General mode: zone column for 'fe'.")
@click.option("--year-col", default=None, metavar="COL", help="General mode: period column (per-year fits, 'panel_fe').")
@click.option("--hotspot-col", default=None, metavar="COL", help="General mode: Gi* variable [default: the --y column].")
@click.option("--permutations", default=0, show_default=True, type=click.IntRange(min=0),
              help="General mode: Gi* permutations (0 = normal p-values).")
@click.option("--lag-estimator", type=click.Choice(["ml", "2sls"]), default=None,
              help="Estimator of the spatial lag model: ml (maximum likelihood) or 2sls (GM, instruments X, WX) "
                   "[default: ml]; in workspace mode it overrides model.lag_estimator.")
def model(
    config: Path | None,
    workdir: Path | None,
    set_values: tuple[str, ...],
    force: bool,
    as_json: bool,
    input_path: Path | None,
    y_col: str | None,
    x_cols: tuple[str, ...],
    weights: str | None,
    models: tuple[str, ...],
    out_dir: Path | None,
    zone_col: str | None,
    year_col: str | None,
    hotspot_col: str | None,
    permutations: int,
    lag_estimator: str | None,
) -> None:
    """Explain LST with OLS, SLX, spatial lag/error and fixed-effects models; Gi* hotspots.

    Workspace mode: `uhi model [CONFIG] [--workdir DIR]` reads compute/ and writes model/.
    General mode: `uhi model --input LAYER --y COL --x COL [--x COL ...] --out DIR` fits the
    same models on any vector layer.
    """
    if input_path is None:
        general = [f for f, v in (("--y", y_col), ("--x", x_cols), ("--out", out_dir), ("--zone-col", zone_col),
                                  ("--year-col", year_col), ("--hotspot-col", hotspot_col)) if v]
        if general:
            raise click.UsageError(f"{', '.join(general)} belong to the general mode; add --input LAYER")
        from uhi.cli.common import build_run_config, print_outcomes, run_stages

        extra: dict[str, object] = {"model.weights": weights, "model.models": list(models) if models else None}
        if permutations:
            extra["model.permutations"] = permutations
        if lag_estimator:
            extra["model.lag_estimator"] = lag_estimator
        cfg = build_run_config(config, workdir=workdir, set_values=set_values, extra=extra)
        outcomes = run_stages(cfg, ["model"], force=force)
        print_outcomes(outcomes, cfg.resolved_workdir(), as_json=as_json)
        return
    if config is not None or workdir is not None or set_values:
        raise click.UsageError("give either CONFIG/--workdir/--set (workspace mode) or --input (general mode), not both")
    for flag, value in (("--y", y_col), ("--x", x_cols), ("--out", out_dir)):
        if not value:
            raise click.UsageError(f"general mode needs {flag}; e.g. --input cells.gpkg --y lst --x ndvi --out results")
    if not models:
        models = ("ols", "slx", "lag", "error") + (("fe",) if zone_col else ()) + (("panel_fe",) if year_col else ())
    from uhi.stages.model import run_general

    assert y_col is not None and out_dir is not None
    summary = run_general(
        input_path, out_dir, y=y_col, x=x_cols, weights=weights or "knn:8", models=models, zone_col=zone_col,
        year_col=year_col, hotspot_col=hotspot_col, permutations=permutations, lag_estimator=lag_estimator or "ml",
    )
    if as_json:
        import json

        click.echo(json.dumps({"summary": summary, "outputs": str(out_dir)}, indent=2, default=str))
        return
    for key, value in sorted(summary.items()):
        click.echo(f"{key}: {value}")
    click.echo(f"outputs: {out_dir}")

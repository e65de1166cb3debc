"""`uhi scenario`: predict the LST change of land-use changes drawn as polygons."""

from __future__ import annotations

from pathlib import Path

import click

from uhi.cli.options import config_arg, set_opt, workdir_opt

__all__ = ["scenario"]

_MODELS = ("ols", "slx", "lag", "error", "fe", "panel_fe")


@click.command("scenario")
@config_arg
@click.option(
    "--changes",
    "changes",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="GeoJSON (any OGR vector) of polygons whose properties change covariates, e.g. {\"ndvi\": 0.2}.",
)
@click.option(
    "--model",
    type=click.Choice(_MODELS),
    default=None,
    help="Fitted model to predict with (default: the summary's best model).",
)
@click.option("--year", type=int, default=None, help="Year of the fit and baseline (default: the latest).")
@click.option("--name", default=None, help="Scenario name for the outputs (default: the changes file's name).")
@workdir_opt
@set_opt
def scenario(
    config: Path,
    changes: Path,
    model: str | None,
    year: int | None,
    name: str | None,
    workdir: Path | None,
    set_values: tuple[str, ...],
) -> None:
    """Apply the change polygons of --changes to the cells of CONFIG's workspace.

    Writes scenario/NAME.geojson and .xlsx (per cell before/after covariates and the
    predicted change in LST, including spatial-lag spill-over) and NAME_summary.json.
    """
    from uhi.cli.common import build_run_config
    from uhi.scenario import run_scenario
    from uhi.workspace import Workspace

    cfg = build_run_config(config, workdir=workdir, set_values=set_values)
    ws = Workspace(cfg.resolved_workdir())
    with ws.locked():
        rec = run_scenario(cfg, ws, changes, model=model, year=year, name=name)
        from uhi.pipeline import assemble_city_gpkg

        assemble_city_gpkg(cfg, ws)
    city = rec["city"]
    click.echo(f"scenario {rec['scenario']}: model {rec['model']} ({rec['model_year'] or 'pooled'}), "
               f"baseline {rec['baseline_year']}")
    click.echo(f"  cells changed: {city['cells_changed']} of {city['cells']}")
    click.echo(f"  city mean change: {city['mean_dlst_c']:+.4f} °C (outside the polygons {city['outside_mean_dlst_c']:+.4f} °C)")
    for poly in rec["polygons"]:
        click.echo(f"  {poly['name']}: mean change {poly['mean_dlst_c']:+.3f} °C over {poly['cells']} cells")
    for rel in rec["outputs"]:
        click.echo(f"  {rel}")
    click.echo(f"workspace: {ws.root}")

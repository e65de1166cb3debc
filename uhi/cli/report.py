"""`uhi report`: one self-contained HTML page of the workspace's results."""

from __future__ import annotations

from pathlib import Path

import click

from uhi.cli.options import config_arg, set_opt, workdir_opt

__all__ = ["report"]


@click.command("report")
@config_arg
@workdir_opt
@set_opt
@click.option(
    "--basemap/--no-basemap",
    default=True,
    show_default=True,
    help="Web tiles under the PNG maps when contextily is installed and tiles answer; left out otherwise.",
)
def report(config: Path, workdir: Path | None, set_values: tuple[str, ...], basemap: bool) -> None:
    """Write report/report.html for CONFIG's workspace (maps, R², SUHI series, forecasts, cell map).

    The page inlines every image, script and style sheet, so it opens offline.
    """
    from uhi.cli.common import build_run_config
    from uhi.report.builder import build_report
    from uhi.workspace import Workspace

    cfg = build_run_config(config, workdir=workdir, set_values=set_values)
    ws = Workspace(cfg.resolved_workdir())
    with ws.locked():
        path = build_report(cfg, ws, basemap=basemap)
    click.echo(str(path))

"""`uhi fetch`: run the fetch stage in a workspace."""

from __future__ import annotations

from pathlib import Path

import click

from uhi.cli.options import config_arg, force_opt, set_opt, workdir_opt

__all__ = ["fetch"]


@click.command("fetch")
@config_arg
@workdir_opt
@set_opt
@force_opt
def fetch(config: Path, workdir: Path | None, set_values: tuple[str, ...], force: bool) -> None:
    """Run the fetch stage for CONFIG."""
    from uhi.cli.common import build_run_config, print_outcomes, run_stages

    cfg = build_run_config(config, workdir=workdir, set_values=set_values)
    outcomes = run_stages(cfg, ["fetch"], force=force)
    print_outcomes(outcomes, cfg.resolved_workdir())

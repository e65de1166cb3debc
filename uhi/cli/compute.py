"""`uhi compute`: run the compute stage in a workspace."""

from __future__ import annotations

from pathlib import Path

import click

from uhi.cli.options import config_arg, dask_opts, force_opt, json_opt, set_opt, workdir_opt

__all__ = ["compute"]


@click.command("compute")
@config_arg
@workdir_opt
@set_opt
@force_opt
@dask_opts
@json_opt
def compute(
    config: Path,
    workdir: Path | None,
    set_values: tuple[str, ...],
    force: bool,
    dask_address: str | None,
    dask_workers: int | None,
    as_json: bool,
) -> None:
    """Run the compute stage for CONFIG."""
    from uhi.cli.common import build_run_config, print_outcomes, run_stages

    cfg = build_run_config(
        config, workdir=workdir, set_values=set_values,
        extra={"dask.address": dask_address, "dask.workers": dask_workers},
    )
    outcomes = run_stages(cfg, ["compute"], force=force)
    print_outcomes(outcomes, cfg.resolved_workdir(), as_json=as_json)

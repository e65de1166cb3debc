"""`uhi run`: fetch, compute, model and forecast in one workspace."""

from __future__ import annotations

from pathlib import Path

import click

from uhi.cli.options import config_arg, dask_address_opt, force_opt, set_opt, workdir_opt
from uhi.workspace import STAGES

__all__ = ["run"]


@click.command("run")
@config_arg
@workdir_opt
@set_opt
@force_opt
@dask_address_opt
@click.option("--from", "from_stage", type=click.Choice(STAGES), default=STAGES[0], help="First stage.")
@click.option("--to", "to_stage", type=click.Choice(STAGES), default=STAGES[-1], help="Last stage.")
def run(
    config: Path,
    workdir: Path | None,
    set_values: tuple[str, ...],
    force: bool,
    dask_address: str | None,
    from_stage: str,
    to_stage: str,
) -> None:
    """Run the pipeline for CONFIG; stages whose inputs did not change are skipped."""
    from uhi.cli.common import build_run_config, print_outcomes, run_stages

    i, j = STAGES.index(from_stage), STAGES.index(to_stage)
    if j < i:
        raise click.BadParameter(f"--to {to_stage} comes before --from {from_stage}", param_hint="--to")
    cfg = build_run_config(
        config, workdir=workdir, set_values=set_values, extra={"dask.address": dask_address}
    )
    outcomes = run_stages(cfg, list(STAGES[i : j + 1]), force=force)
    print_outcomes(outcomes, cfg.resolved_workdir())

"""`uhi exposure`: who lives in the heat, per cell, zone and city, in a workspace."""

from __future__ import annotations

from pathlib import Path

import click

from uhi.cli.options import config_arg, force_opt, json_opt, set_opt, workdir_opt

__all__ = ["exposure"]


@click.command("exposure")
@config_arg
@workdir_opt
@set_opt
@force_opt
@json_opt
@click.option("--year", type=int, default=None, help="Reference year [default: exposure.year, else the panel's latest].")
def exposure(
    config: Path, workdir: Path | None, set_values: tuple[str, ...], force: bool, as_json: bool, year: int | None
) -> None:
    """Join the year's LST and Gi* hot spots to population, vulnerable groups and zones.

    Reads compute/ and model/ of the workspace and the layers named under `exposure:` in
    CONFIG; writes exposure/ (cells.parquet, zones.parquet, zones.geojson, exposure.xlsx,
    summary.json, maps). Exit codes: 0 done, 2 bad config or input layer, 1 failure.
    """
    from uhi.cli.common import build_run_config, print_outcomes, run_stages

    cfg = build_run_config(config, workdir=workdir, set_values=set_values, extra={"exposure.year": year})
    outcomes = run_stages(cfg, ["exposure"], force=force)
    print_outcomes(outcomes, cfg.resolved_workdir(), as_json=as_json)

"""Options shared by several commands (rasterio's rio style: <thing>_arg / <thing>_opt)."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["config_arg", "config_opt_arg", "workdir_opt", "set_opt", "force_opt", "dask_address_opt"]

config_arg = click.argument(
    "config", type=click.Path(path_type=Path, dir_okay=False), metavar="CONFIG"
)
config_opt_arg = click.argument(
    "config", type=click.Path(path_type=Path, dir_okay=False), metavar="[CONFIG]", required=False
)
workdir_opt = click.option(
    "--workdir",
    "-w",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Workspace folder (overrides the config's workdir; default ./uhi-<city>).",
)
set_opt = click.option(
    "--set",
    "set_values",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override any config key, e.g. --set search.max_cloud=30 (repeatable).",
)
force_opt = click.option(
    "--force", is_flag=True, help="Run even if the manifest says inputs are unchanged."
)
dask_address_opt = click.option(
    "--dask-address",
    default=None,
    metavar="ADDRESS",
    help="Run scene and cell work on this Dask scheduler (e.g. tcp://host:8786).",
)

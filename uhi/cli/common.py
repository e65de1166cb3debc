"""Glue shared by the stage commands: build the config, lock the workspace, run stages."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["build_run_config", "run_stages", "print_outcomes"]

log = logging.getLogger("uhi.cli")


def build_run_config(
    config_path: Path | None,
    *,
    workdir: Path | None = None,
    set_values: Sequence[str] = (),
    extra: dict[str, Any] | None = None,
) -> Any:
    """Config from YAML < UHI_* environment < --set < named flags."""
    from uhi.config import load_config, parse_set_option

    overrides: dict[str, Any] = parse_set_option(set_values)
    overrides.update({k: v for k, v in (extra or {}).items() if v is not None})
    if workdir is not None:
        overrides["workdir"] = str(workdir)
    return load_config(config_path, overrides=overrides)


def run_stages(config: Any, names: Sequence[str], *, force: bool = False) -> list[Any]:
    """Run the named stages in order in the config's workspace, under its lock."""
    from uhi.parallel import dask_client
    from uhi.pipeline import check_run_size
    from uhi.stages import get_spec
    from uhi.stages.runner import execute
    from uhi.workspace import Workspace

    check_run_size(config, names)
    ws = Workspace(config.resolved_workdir())
    outcomes = []
    # one client for the command when --dask-address/--dask-workers ask for it (stages share it)
    with ws.locked(), dask_client(config.dask.address, config.dask.workers):
        for name in names:
            outcomes.append(execute(get_spec(name), config, ws, force=force))
        if any(not o.skipped for o in outcomes):
            from uhi.pipeline import assemble_city_gpkg

            assemble_city_gpkg(config, ws)
    return outcomes


def print_outcomes(outcomes: Sequence[Any], root: Path, *, as_json: bool = False) -> None:
    """The final summary on stdout: per stage, skipped or seconds, and what it wrote; with
    ``as_json`` one JSON document ``{"stages": [{name, skipped, seconds, summary}], "workspace"}``."""
    import click

    if as_json:
        import json

        doc = {
            "stages": [
                {"name": o.name, "skipped": o.skipped, "seconds": round(o.seconds, 3), "summary": o.summary}
                for o in outcomes
            ],
            "workspace": str(root),
        }
        click.echo(json.dumps(doc, indent=2, default=str))
        return

    for o in outcomes:
        state = "unchanged, skipped" if o.skipped else f"{o.seconds:.1f} s"
        click.echo(f"{o.name}: {state}")
        for key, value in sorted(o.summary.items()):
            if isinstance(value, (int, float, str)):
                click.echo(f"  {key}: {value}")
    click.echo(f"workspace: {root}")

"""`uhi fetch`: run the fetch stage in a workspace."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from uhi.cli.options import config_arg, dask_opts, force_opt, json_opt, set_opt, workdir_opt

__all__ = ["fetch"]


@click.command("fetch")
@config_arg
@workdir_opt
@set_opt
@force_opt
@dask_opts
@json_opt
@click.option(
    "--dry-run",
    is_flag=True,
    help="Search and plan only: scenes kept and dropped (with reasons) and the bytes the AOI "
    "windows would read; no pixel is read and nothing is written.",
)
def fetch(
    config: Path,
    workdir: Path | None,
    set_values: tuple[str, ...],
    force: bool,
    dask_address: str | None,
    dask_workers: int | None,
    as_json: bool,
    dry_run: bool,
) -> None:
    """Run the fetch stage for CONFIG (or, with --dry-run, say what it would read)."""
    from uhi.cli.common import build_run_config, print_outcomes, run_stages

    cfg = build_run_config(
        config, workdir=workdir, set_values=set_values,
        extra={"dask.address": dask_address, "dask.workers": dask_workers},
    )
    if dry_run:
        from uhi.stages.fetch import plan_fetch

        _echo_plan(plan_fetch(cfg), as_json=as_json)
        return
    outcomes = run_stages(cfg, ["fetch"], force=force)
    print_outcomes(outcomes, cfg.resolved_workdir(), as_json=as_json)


def _echo_plan(plan: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        import json

        click.echo(json.dumps(plan, indent=2, default=str))
        return
    click.echo(f"search: {plan['source']}")
    click.echo(f"scenes: {plan['found']} found, {len(plan['kept'])} kept")
    for reason, n in sorted(plan["dropped"].items()):
        click.echo(f"  dropped {n}: {reason}")
    for scene in plan["kept"]:
        size = _size(scene["bytes"]) if scene["bytes"] is not None else "size unknown"
        click.echo(f"  {scene['id']}  {scene['datetime']}  cloud {scene['cloud']}  {scene['assets']} assets  {size}")
    total = _size(plan["bytes"])
    unknown = plan["assets_unknown_size"]
    tail = f" (+ {unknown} asset(s) without projection metadata, size unknown)" if unknown else ""
    click.echo(f"to read: {plan['assets']} asset window(s), about {total} uncompressed{tail}")


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"

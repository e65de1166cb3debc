"""`uhi run`: fetch, compute, model and forecast in one workspace (also the cron entry)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from uhi.cli.options import config_arg, dask_address_opt, force_opt, set_opt, workdir_opt
from uhi.workspace import STAGES

__all__ = ["run", "echo_report"]


def echo_report(report: Any, *, as_json: bool) -> None:
    """Print a RunReport on stdout: one JSON document, or short human lines."""
    if as_json:
        import json

        click.echo(json.dumps(report.as_dict(), indent=2, default=str))
        return
    if report.nothing_new:
        click.echo("nothing new: no scene acquired after the last run")
    elif report.new_scenes:
        click.echo(f"new scenes: {len(report.new_scenes)} ({', '.join(report.new_scenes)})")
    for o in report.outcomes:
        state = "unchanged, skipped" if o.skipped else f"{o.seconds:.1f} s"
        click.echo(f"{o.name}: {state}")
    s = report.summary
    dropped_at_search = {}
    for value in (s.get("fetch_dropped") or {}).values():
        if isinstance(value, dict):
            dropped_at_search.update({str(k): v for k, v in value.items() if isinstance(v, int)})
    if "scenes_fetched" in s:
        found = s["scenes_fetched"] + sum(dropped_at_search.values())
        parts = [f"{found} found", f"{s['scenes_fetched']} fetched"]
        if "scenes_used" in s:
            parts.append(f"{s['scenes_used']} used")
        click.echo("scenes: " + ", ".join(parts))
        reasons = [f"{n} {why}" for why, n in sorted(dropped_at_search.items())]
        unused = s.get("scenes_dropped") or []
        if unused:
            reasons.append(f"{len(unused)} without a usable pixel ({', '.join(unused)})")
        if reasons:
            click.echo("  dropped: " + "; ".join(reasons))
    if "cells" in s:
        click.echo(f"cells: {s['cells']}")
    if s.get("models"):
        click.echo(f"models: {', '.join(s['models'])}")
    outputs = s.get("outputs") or []
    if outputs:
        click.echo(f"outputs ({len(outputs)} files):")
        by_folder: dict[str, list[str]] = {}
        for rel in outputs:
            folder, _, name = rel.rpartition("/")
            by_folder.setdefault(folder, []).append(name)
        for folder, names in by_folder.items():
            if len(names) > 4:  # e.g. one GeoJSON per date, one composite per year
                click.echo(f"  {folder}/ ({len(names)} files: {names[0]} ... {names[-1]})")
            else:
                for name in names:
                    click.echo(f"  {folder}/{name}" if folder else f"  {name}")
    click.echo(f"total: {report.seconds_total:.1f} s, peak memory {report.peak_rss_mb:.0f} MiB")
    click.echo(f"workspace: {report.workspace}")


@click.command("run")
@config_arg
@workdir_opt
@set_opt
@force_opt
@dask_address_opt
@click.option(
    "--dask-workers",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Start a local Dask cluster of N worker processes (same as --set dask.workers=N).",
)
@click.option(
    "--from",
    "from_stage",
    type=click.Choice(STAGES),
    default=None,
    help="Re-run from this stage: it and the stages after it run even when unchanged "
    "(default: from fetch, skipping unchanged stages).",
)
@click.option("--to", "to_stage", type=click.Choice(STAGES), default=STAGES[-1], help="Last stage.")
@click.option(
    "--incremental",
    is_flag=True,
    help="Cron mode: exit 0 at once when no scene is newer than the last run; "
    "else fetch only the new scenes and recompute what depends on them.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the final summary as JSON.")
def run(
    config: Path,
    workdir: Path | None,
    set_values: tuple[str, ...],
    force: bool,
    dask_address: str | None,
    dask_workers: int | None,
    from_stage: str,
    to_stage: str,
    incremental: bool,
    as_json: bool,
) -> None:
    """Run the pipeline for CONFIG; stages whose inputs did not change are skipped.

    Exit codes: 0 done or nothing new, 1 failure, 2 bad config, 3 no data,
    75 another run holds the workspace (cron retries next time).
    """
    first = from_stage or STAGES[0]
    i, j = STAGES.index(first), STAGES.index(to_stage)
    if j < i:
        raise click.BadParameter(f"--to {to_stage} comes before --from {first}", param_hint="--to")
    if incremental and force:
        raise click.BadParameter("--incremental cannot be combined with --force", param_hint="--force")
    from uhi.cli.common import build_run_config
    from uhi.pipeline import run_incremental, run_pipeline, stage_range

    cfg = build_run_config(
        config,
        workdir=workdir,
        set_values=set_values,
        extra={"dask.address": dask_address, "dask.workers": dask_workers},
    )
    names = stage_range(first, to_stage)
    if incremental:
        report = run_incremental(cfg, names)
    else:
        # an explicit --from asks for those stages again, not for a check that they are current
        report = run_pipeline(cfg, names, force=force or from_stage is not None)
    echo_report(report, as_json=as_json)

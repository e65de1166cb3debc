"""`uhi run`: fetch, compute, model and forecast in one workspace (also the cron entry)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from uhi.cli.options import config_arg, dask_opts, force_opt, json_opt, set_opt, workdir_opt
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
@dask_opts
@click.option(
    "--from",
    "from_stage",
    type=click.Choice(STAGES),
    default=STAGES[0],
    help="First stage; given, that stage and those after it run again even if unchanged.",
)
@click.option("--to", "to_stage", type=click.Choice(STAGES), default=STAGES[-1], help="Last stage.")
@click.option(
    "--incremental",
    is_flag=True,
    help="Cron mode: exit 0 at once when no scene is newer than the last run; "
    "else fetch only the new scenes and recompute what depends on them.",
)
@json_opt
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

    `--from STAGE` re-runs STAGE and every stage after it (up to --to) even when unchanged;
    the stages before it are not run.

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
    names = stage_range(from_stage, to_stage)
    # an explicit --from means "run again from here": without it, an unchanged stage is skipped
    ctx = click.get_current_context()
    from_given = ctx.get_parameter_source("from_stage") not in (
        click.core.ParameterSource.DEFAULT, click.core.ParameterSource.DEFAULT_MAP,
    )
    if incremental:
        report = run_incremental(cfg, names)
    else:
        report = run_pipeline(cfg, names, force=force or from_given)
    echo_report(report, as_json=as_json)

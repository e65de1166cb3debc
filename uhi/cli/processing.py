"""`uhi processing`: the SageMaker Processing container entrypoint (shards and merge)."""

from __future__ import annotations

import click

from uhi.cli.options import set_opt

__all__ = ["processing"]


@click.command("processing")
@set_opt
@click.option(
    "--merge",
    is_flag=True,
    help="Merge the shards under processing/input/shards/<host>/ and run every stage.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was done as JSON.")
def processing(set_values: tuple[str, ...], merge: bool, as_json: bool) -> None:
    """Run inside a SageMaker Processing job (root /opt/ml, or $UHI_PROCESSING_ROOT).

    Reads the one YAML file in processing/input/config/. With one instance it runs the whole
    pipeline into processing/output/. With several, each instance fetches its share of the
    scenes (config/resourceconfig.json: current_host among hosts) into
    processing/output/shards/<host>/; a one-instance job with --merge then combines the shards
    and runs every stage into processing/output/, equal to a one-machine run.
    """
    from uhi.processing import ProcessingLayout, run_processing

    layout = ProcessingLayout.from_environment()
    result = run_processing(layout, merge=merge, set_values=set_values)
    if as_json:
        import json

        click.echo(json.dumps(result, indent=2, default=str))
        return
    if result["mode"] == "shard":
        click.echo(
            f"shard of host {result['host']} ({len(result['hosts'])} hosts): "
            f"{len(result['scenes'])} scene(s) -> {result['workspace']}"
        )
        return
    if result["mode"] == "merge":
        m = result["merge"]
        click.echo(f"merged {m['shards']} shard(s): {m['scenes']} scene(s), {m['files_copied']} file(s) copied")
    for stage in result["stages"]:
        state = "unchanged, skipped" if stage["skipped"] else f"{stage['seconds']:.1f} s"
        click.echo(f"{stage['name']}: {state}")
    click.echo(f"workspace: {result['workspace']}")

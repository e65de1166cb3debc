"""`uhi validate`: check a config, its inputs and the search backend before a long run."""

from __future__ import annotations

from pathlib import Path

import click

from uhi.cli.options import config_arg, json_opt, set_opt, workdir_opt

__all__ = ["validate"]


@click.command("validate")
@config_arg
@workdir_opt
@set_opt
@json_opt
@click.option("--offline", is_flag=True, help="Check files only: do not contact the search backend.")
def validate(config: Path, workdir: Path | None, set_values: tuple[str, ...], as_json: bool, offline: bool) -> None:
    """Check CONFIG before a run: every problem is listed, none is fixed.

    Checks the config keys and values, the AOI, every input file with its layer and columns,
    that the search backend answers (unless --offline) and that credentials are present where
    the backend needs them. Reads no pixel and writes nothing.

    Exit codes: 0 all good, 2 problems (each printed on stderr, or listed in --json).
    """
    from uhi.cli.common import build_run_config
    from uhi.errors import ConfigError
    from uhi.validate import Validation, validate_config

    try:
        cfg = build_run_config(config, workdir=workdir, set_values=set_values)
    except ConfigError as exc:
        # the config itself: every unknown key and invalid value, one problem per line; the
        # other checks need a valid config, so they wait for the next validate
        result = Validation(problems=[line for line in str(exc).splitlines() if line.strip()])
    else:
        result = validate_config(cfg, online=not offline)
    if as_json:
        import json

        click.echo(json.dumps(result.as_dict(), indent=2))
    else:
        for line in result.checked:
            click.echo(f"ok: {line}")
        for line in result.notes:
            click.echo(f"note: {line}")
        for line in result.problems:
            click.echo(f"problem: {line}", err=True)
        click.echo(f"{config}: " + ("valid" if result.ok else f"{len(result.problems)} problem(s)"))
    if not result.ok:
        raise click.exceptions.Exit(2)

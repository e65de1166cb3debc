"""Options shared by several commands (rasterio's rio style: <thing>_arg / <thing>_opt)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

__all__ = [
    "config_arg",
    "config_opt_arg",
    "workdir_opt",
    "set_opt",
    "force_opt",
    "dask_address_opt",
    "dask_workers_opt",
    "dask_opts",
    "json_opt",
    "add_logging_options",
    "list_opt",
]

# Conventions every command follows (README, "Command line conventions"):
# - lists are repeatable flags (--x a --x b), never comma-separated values;
# - a stage command takes CONFIG, -w/--workdir, --set, --force and --json; --dask-address and
#   --dask-workers where the stage parallelises (fetch, compute, run);
# - -v/-q work before or after the command name: the group adds them to every subcommand
#   (add_logging_options), so a new command gets them without doing anything.

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
dask_workers_opt = click.option(
    "--dask-workers",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Start a local Dask cluster of N worker processes (same as --set dask.workers=N).",
)
json_opt = click.option("--json", "as_json", is_flag=True, help="Print the final summary as one JSON document.")


def dask_opts(f: F) -> F:
    """--dask-address and --dask-workers (both into the config's dask section)."""
    return dask_address_opt(dask_workers_opt(f))


def _apply_logging(ctx: click.Context) -> None:
    """Logging from the group's -v/-q/--log-json combined with the subcommand's -v/-q."""
    from uhi.logs import configure_logging

    root = ctx.find_root().params
    verbose = int(root.get("verbose") or 0) + int(ctx.meta.get("uhi.verbose", 0))
    quiet = bool(root.get("quiet")) or bool(ctx.meta.get("uhi.quiet", False))
    configure_logging(-1 if quiet else verbose, json_lines=bool(root.get("log_json")))


def _verbose_callback(ctx: click.Context, param: click.Parameter, value: int) -> None:
    if value:
        ctx.meta["uhi.verbose"] = value
        _apply_logging(ctx)


def _quiet_callback(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if value:
        ctx.meta["uhi.quiet"] = True
        _apply_logging(ctx)


def add_logging_options(cmd: click.Command) -> click.Command:
    """Give a subcommand -v/--verbose and -q/--quiet (same meaning as before the command name)."""
    names = {opt for p in cmd.params for opt in getattr(p, "opts", [])}
    if "-v" not in names and "--verbose" not in names:
        cmd.params.append(click.Option(["-v", "--verbose"], count=True, expose_value=False,
                                       callback=_verbose_callback, help="More log detail (repeat for more)."))
    if "-q" not in names and "--quiet" not in names:
        cmd.params.append(click.Option(["-q", "--quiet"], is_flag=True, expose_value=False,
                                       callback=_quiet_callback, help="Only warnings and errors on stderr."))
    return cmd


def list_opt(*decls: str, choices: tuple[str, ...] | None = None, **kwargs: Any) -> Callable[[F], F]:
    """A list option by the project's one convention: the flag repeated, one value each
    (``--models ols --models lag``). A comma inside a value is refused with that hint, so a list
    is never half-parsed; ``choices`` are checked and offered to shell completion."""

    def check(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[str, ...]:
        flag = param.opts[0] if param.opts else param.name
        for item in value:
            if "," in item:
                fixed = " ".join(f"{flag} {part.strip()}" for part in item.split(",") if part.strip())
                raise click.BadParameter(
                    f"{item!r}: lists are given by repeating the flag, e.g. {fixed}", ctx=ctx, param=param
                )
        if choices is not None:
            bad = [v for v in value if v not in choices]
            if bad:
                raise click.BadParameter(
                    f"unknown value(s) {', '.join(bad)}; choose from {', '.join(choices)}", ctx=ctx, param=param
                )
        return value

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
        return [c for c in choices or () if c.startswith(incomplete)]

    return click.option(*decls, multiple=True, callback=check, shell_complete=complete, **kwargs)

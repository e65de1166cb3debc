"""The `uhi` click group and the one place where errors become exit codes."""

from __future__ import annotations

import errno
import signal
import sys
import threading
from types import FrameType

import click

from uhi import __version__
from uhi.errors import EXIT_FAILURE, EXIT_USAGE, UhiError

__all__ = ["cli", "main"]

# command name -> module under uhi.cli; imported only when that command runs (fast --help)
_COMMANDS = {
    "fetch": "Find Landsat C2 L2 scenes (8/9 by default, 4-9 on request) and read only the city's pixels.",
    "compute": "Mask clouds; LST, NDVI, NDBI, MNDWI, albedo per cell; morphology; surface UHI.",
    "model": "Explain LST with OLS and spatial regressions; Gi* hotspots.",
    "exposure": "Who lives in the heat: population, vulnerable groups and zones.",
    "forecast": "Forecast each cell by exponential smoothing; RCP8.5 long term.",
    "run": "Run fetch, compute, model, exposure and forecast in one workspace.",
    "demo": "Write the synthetic demo city (and optionally run the pipeline on it).",
    "scenario": "Predict the LST change of land-use changes drawn as polygons (what-if).",
    "plan": "Where a budget of greening, trees or cool roofs cools the most people.",
    "report": "Write one self-contained HTML report: maps, model R², SUHI series, forecasts.",
    "processing": "SageMaker Processing entrypoint: shard scenes across hosts, then merge.",
    "validate": "Check a config before a run: AOI, input files and columns, search backend, credentials.",
    "presets": "List the STAC search presets and what each needs (account, cost).",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on use, so `uhi --help` stays instant."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(_COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        if name not in _COMMANDS:
            return None
        import importlib

        from uhi.cli.options import add_logging_options

        module = importlib.import_module(f"uhi.cli.{name}")
        cmd: click.Command = getattr(module, name)
        return add_logging_options(cmd)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name = args[0] if args else ""
        if name and not name.startswith("-") and self.get_command(ctx, name) is None:
            import difflib

            close = difflib.get_close_matches(name, self.list_commands(ctx), n=2, cutoff=0.6)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint} (`uhi --help` lists the commands)")
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _COMMANDS.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="uhi")
@click.option("-v", "--verbose", count=True, help="More log detail (repeat for more).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors on stderr.")
@click.option("--log-json", is_flag=True, help="Logs as JSON lines on stderr (cron, containers).")
def cli(verbose: int, quiet: bool, log_json: bool) -> None:
    """Urban heat island analysis from Landsat Collection 2 Level-2 (Landsat 8/9 by default; 4, 5 and 7 on request).

    Exit codes: 0 done, 1 runtime failure, 2 bad usage or config, 3 no data,
    75 workspace locked by another run, 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
    """
    from uhi.logs import configure_logging

    configure_logging(-1 if quiet else verbose, json_lines=log_json)
    # -v/-q given after the command name are added to every subcommand (uhi.cli.options)


EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
EXIT_TERMINATED = 143  # 128 + SIGTERM: how containers, systemd and cron's kill stop a job


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so every cleanup that runs on Ctrl-C runs too
    (temporaries removed by ``atomic_path``, the lock released by ``Workspace.locked``)."""


_TERMINATED_MESSAGE = (
    "terminated (SIGTERM): temporary files removed and the workspace lock released; "
    "run the same command again to resume"
)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


# OSError numbers a user can act on: exit code and what to do (anything else keeps its
# traceback: a bug to report, not a state of the machine)
_OS_ERRORS: dict[int, tuple[int, str]] = {
    errno.ENOSPC: (EXIT_FAILURE, "free space on that filesystem (or point workdir elsewhere) and run again"),
    errno.EDQUOT: (EXIT_FAILURE, "free space within your quota (or point workdir elsewhere) and run again"),
    errno.EROFS: (EXIT_FAILURE, "the filesystem is read-only: set workdir (or -w) to a writable folder"),
    errno.EACCES: (EXIT_FAILURE, "check that path's owner and mode (a workspace: set workdir or -w to a folder you can write)"),
    errno.EPERM: (EXIT_FAILURE, "check that path's owner and mode (a workspace: set workdir or -w to a folder you can write)"),
    errno.ENAMETOOLONG: (EXIT_USAGE, "shorten city.name or the workdir path"),
    errno.EEXIST: (EXIT_USAGE, "a file stands where uhi needs a folder: move it or set workdir (or -w) elsewhere"),
    errno.ENOTDIR: (EXIT_USAGE, "a file stands where uhi needs a folder: move it or set workdir (or -w) elsewhere"),
}


def _os_error_message(exc: OSError) -> tuple[int, str] | None:
    """The exit code and one-line message of an OSError from the machine, or None (a bug)."""
    if exc.errno not in _OS_ERRORS:
        return None
    code, fix = _OS_ERRORS[exc.errno]
    where = f": {exc.filename}" if exc.filename else ""
    return code, f"{exc.strerror or exc}{where}; {fix}"


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the group and map errors to exit codes (README, Exit codes)."""
    with_term = threading.current_thread() is threading.main_thread() and signal.getsignal(
        signal.SIGTERM
    ) in (signal.SIG_DFL, None)
    if with_term:
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        # without standalone mode click returns the code of a command's ctx.exit(N) instead of exiting
        code = cli.main(args=argv, prog_name="uhi", standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_USAGE if isinstance(exc, click.UsageError) else exc.exit_code)
    except click.exceptions.Abort as exc:
        # click turns KeyboardInterrupt (and so Terminated) into Abort, keeping it as the cause
        if isinstance(exc.__cause__, Terminated):
            click.echo(_TERMINATED_MESSAGE, err=True)
            sys.exit(EXIT_TERMINATED)
        click.echo("aborted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except UhiError as exc:
        from uhi.redact import redact_text

        # a message may quote a URL with user:password@ or a signed query (search.url, hrefs)
        click.echo(f"uhi: error: {redact_text(str(exc))}", err=True)
        sys.exit(exc.exit_code)
    except Terminated:
        click.echo(_TERMINATED_MESSAGE, err=True)
        sys.exit(EXIT_TERMINATED)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except BrokenPipeError:
        sys.exit(EXIT_FAILURE)
    except OSError as exc:
        mapped = _os_error_message(exc)
        if mapped is None:
            raise
        click.echo(f"uhi: error: {mapped[1]}", err=True)
        sys.exit(mapped[0])
    finally:
        if with_term:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()

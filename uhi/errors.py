"""The uhi exception tree and the exit code each maps to."""

from __future__ import annotations

__all__ = [
    "UhiError",
    "ConfigError",
    "NoDataError",
    "WorkspaceLockedError",
    "RemoteError",
    "InputError",
    "StaleWorkspaceError",
    "EXIT_OK",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "EXIT_NO_DATA",
    "EXIT_LOCKED",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NO_DATA = 3
EXIT_LOCKED = 75  # EX_TEMPFAIL from sysexits.h: cron retries next time


class UhiError(Exception):
    """A runtime failure the user can act on; the CLI prints the message, no traceback."""

    exit_code: int = EXIT_FAILURE


class ConfigError(UhiError):
    """Bad usage or configuration: the message names the key or flag and what it accepts."""

    exit_code = EXIT_USAGE


class InputError(ConfigError):
    """A user-supplied input file or column is missing or unusable (same exit code as config)."""


class NoDataError(UhiError):
    """No scene matched, or every pixel was masked."""

    exit_code = EXIT_NO_DATA


class WorkspaceLockedError(UhiError):
    """Another live run holds the workspace lock."""

    exit_code = EXIT_LOCKED


class RemoteError(UhiError):
    """A server (STAC API, HTTP, AWS) failed after retries; the message names the URL."""


class StaleWorkspaceError(ConfigError):
    """A reader (report, scenario) would mix outputs of different runs: a stage is out of date."""

"""A wall-clock bound on a search: per-request timeouts do not bound a server that trickles bytes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from uhi.errors import RemoteError

__all__ = ["call_within"]

T = TypeVar("T")


def call_within(fn: Callable[[], T], seconds: float, what: str, fix: str) -> T:
    """``fn()``, or RemoteError once ``seconds`` of wall-clock time have passed.

    ``fn`` runs in a daemon thread: a socket read that never returns cannot be interrupted from
    Python, but it no longer holds up the run (the caller stops, the workspace lock is released
    and the process exits; the abandoned thread dies with it). Exceptions of ``fn`` are re-raised
    in the caller.

    Parameters
    ----------
    fn
        The search, with its own per-request timeouts and retries.
    seconds
        The bound (``search.timeout_total_s``).
    what
        What is being waited for, for the message (e.g. ``STAC API https://host/v1``; redacted).
    fix
        What the operator can do.
    """
    outcome: dict[str, object] = {}

    def _target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller as is
            outcome["error"] = exc

    worker = threading.Thread(target=_target, name="uhi-search", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        raise RemoteError(f"{what} did not finish within search.timeout_total_s = {seconds:g} s; {fix}")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["value"]  # type: ignore[return-value]

"""Progress bars for people at a terminal; silent under cron, in containers, in tests, with
``-q`` and with ``--log-json`` (a bar would corrupt JSON lines on stderr)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import IO, Any, TypeVar

__all__ = ["progress", "StageBar", "set_enabled", "enabled"]

T = TypeVar("T")

_enabled = True


def set_enabled(on: bool) -> None:
    """Allow bars (the default) or silence them all; ``configure_logging`` calls this with
    False for ``-q`` and ``--log-json``."""
    global _enabled
    _enabled = bool(on)


def enabled(stream: IO[str] | None = None) -> bool:
    """True when bars are allowed and ``stream`` (stderr by default) is a terminal."""
    target = sys.stderr if stream is None else stream
    try:
        return _enabled and bool(target.isatty())
    except (AttributeError, ValueError):  # a closed or file-like stream without isatty
        return False


class StageBar:
    """One bar for a whole stage, advanced by ``update(n)``: it only grows, however the work is
    split (compute's chunks of solar days, fetch's assets). A no-op off a terminal.
    ``mininterval``: seconds between redraws (tqdm's).

    ``unit="B"`` shows bytes with binary prefixes and the throughput (e.g. ``12.3MB/s``).
    """

    def __init__(
        self,
        total: float | None = None,
        *,
        desc: str = "",
        unit: str = "it",
        stream: IO[str] | None = None,
        mininterval: float = 0.1,
    ) -> None:
        self._bar: Any = None
        self.n = 0.0
        if enabled(stream):
            from tqdm import tqdm

            scale = {"unit_scale": True, "unit_divisor": 1024} if unit == "B" else {}
            self._bar = tqdm(total=total, desc=desc, unit=unit, file=stream or sys.stderr, leave=False,
                             dynamic_ncols=True, mininterval=mininterval, **scale)
            if mininterval == 0:
                self._bar.miniters = 1  # draw every update (tests read what was drawn)

    @property
    def active(self) -> bool:
        return self._bar is not None

    def update(self, n: float = 1) -> None:
        if n <= 0:
            return
        self.n += n
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> StageBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def progress(
    items: Iterable[T],
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    bar: StageBar | None = None,
) -> Iterator[T]:
    """Iterate with a bar on stderr when it is a terminal, plainly otherwise.

    With ``bar``, each item advances that stage-wide bar instead of drawing a new one.
    """
    if bar is not None:
        for item in items:
            yield item
            bar.update(1)
        return
    if not enabled():
        yield from items
        return
    from tqdm import tqdm

    yield from tqdm(items, total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)

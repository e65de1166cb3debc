"""Hand memory the process has freed back to the operating system (glibc's ``malloc_trim``)."""

from __future__ import annotations

import functools
import sys
from typing import Any

__all__ = ["return_free_heap"]


def return_free_heap() -> None:
    """Release the free pages of the C heap to the system; does nothing without glibc.

    glibc raises its mmap threshold after a large block is freed (up to 32 MB), so numpy arrays
    of a few MB are then carved from the heap, and once freed their pages stay resident until
    ``malloc_trim`` returns them: the process's memory (RSS) keeps what it no longer uses and
    the next allocations stack on top. Only the resident size changes, never a value.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.lru_cache(maxsize=1)
def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, looked up once (``find_library`` runs ldconfig), or None."""
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # musl and others have no malloc_trim
        return None

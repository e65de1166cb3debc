"""Arrays handed back after use and handed out again, so a loop over scenes does not fault in fresh pages."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["ArrayPool"]


class ArrayPool:
    """Freed numpy arrays kept for reuse, by shape and dtype, up to ``max_bytes`` (thread-safe).

    Every scene of a city needs the same arrays (its rasters, its per-cell accumulators, its
    block buffers: ~110 MB a scene at 389k cells and 1,061 x 1,061 px). Allocated afresh, each
    one's pages are faulted in again once the freed heap is returned to the system: 40-60 ms
    of CPU a scene on the 2-core development machine, about 2 CPU-s over the 30 km demo city's
    42 scenes (issue 19). ``take`` gives an array whose contents are undefined, like
    ``np.empty``; ``give`` takes back arrays the caller no longer reads or writes.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._free: dict[tuple[tuple[int, ...], str], list[np.ndarray]] = {}
        self._held = 0
        self._lock = threading.Lock()

    @property
    def held_bytes(self) -> int:
        """Bytes of the arrays kept for reuse."""
        return self._held

    def take(self, shape: int | Sequence[int], dtype: Any) -> np.ndarray:
        """An array of ``shape`` and ``dtype`` (a kept one when there is one; contents undefined)."""
        key = (tuple(np.atleast_1d(np.asarray(shape, dtype=np.int64)).tolist()), np.dtype(dtype).str)
        with self._lock:
            free = self._free.get(key)
            if free:
                arr = free.pop()
                self._held -= arr.nbytes
                return arr
        return np.empty(key[0], dtype=dtype)

    def give(self, *arrays: np.ndarray | None) -> None:
        """Keep ``arrays`` for reuse (None skipped); views and arrays past the budget are dropped."""
        with self._lock:
            for arr in arrays:
                # only arrays that own their memory: a view would keep its base's pages alive
                if arr is None or arr.base is not None or not arr.flags.c_contiguous:
                    continue
                if self._held + arr.nbytes > self.max_bytes:
                    continue
                free = self._free.setdefault((arr.shape, arr.dtype.str), [])
                if any(kept is arr for kept in free):  # given twice: it must not be handed out twice
                    continue
                free.append(arr)
                self._held += arr.nbytes

    def clear(self) -> None:
        """Drop every kept array."""
        with self._lock:
            self._free.clear()
            self._held = 0

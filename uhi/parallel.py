"""Run independent tasks (one scene, one tile) sequentially, on threads, or on Dask.

Stages call ``map_tasks`` and never learn which executor ran them. Dask use follows the
ARCHITECTURE rule: ``client.map`` over independent tasks, never one giant graph.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from uhi.progress import progress

__all__ = ["map_tasks", "dask_client"]

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger("uhi.parallel")


@contextlib.contextmanager
def dask_client(address: str | None, workers: int | None) -> Iterator[Any]:
    """A distributed Client for ``address``, or a LocalCluster of ``workers``; None if neither."""
    if not address and not workers:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        from uhi.errors import ConfigError

        raise ConfigError(
            "dask.address / dask.workers need the dask extra: pip install 'uhi[dask]'"
        ) from None
    if address:
        with Client(address) as client:
            yield client
    else:
        with LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster, Client(cluster) as client:
            yield client


def map_tasks(
    fn: Callable[[T], R],
    items: Sequence[T] | Iterable[T],
    *,
    threads: int = 1,
    client: Any = None,
    desc: str = "",
) -> list[R]:
    """Apply ``fn`` to every item and return results in input order.

    Parameters
    ----------
    fn
        A picklable function of one argument (Dask ships it to workers).
    threads
        Thread pool size when no Dask client is given (I/O-bound work); 1 runs in this thread.
    client
        A ``distributed.Client``; when given, tasks run there with ``client.map``.
    """
    items = list(items)
    if client is not None:
        futures = client.map(fn, items, pure=False)
        from distributed import as_completed

        for _ in progress(as_completed(futures), total=len(futures), desc=desc):
            pass
        return list(client.gather(futures))
    if threads <= 1 or len(items) <= 1:
        return [fn(item) for item in progress(items, total=len(items), desc=desc)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(progress(pool.map(fn, items), total=len(items), desc=desc))

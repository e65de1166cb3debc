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

from uhi.progress import StageBar, progress

__all__ = ["map_tasks", "dask_client", "active_client"]

T = TypeVar("T")
R = TypeVar("R")
log = logging.getLogger("uhi.parallel")

# The client opened by the outermost ``dask_client`` block, keyed by (address, workers).
# Stages open ``dask_client(config.dask.address, config.dask.workers)`` themselves; when the
# pipeline already holds a client for the same settings, they share it instead of starting a
# second LocalCluster per stage (seconds each) or reconnecting to the scheduler.
_open_clients: dict[tuple[str | None, int | None], Any] = {}


def active_client() -> Any:
    """The Dask client opened by an enclosing ``dask_client`` block, or None."""
    for client in _open_clients.values():
        return client
    return None


@contextlib.contextmanager
def dask_client(
    address: str | None, workers: int | None, *, connect_timeout_s: float = 30.0
) -> Iterator[Any]:
    """A distributed Client for ``address``, or a LocalCluster of ``workers``; None if neither.

    Parameters
    ----------
    address
        Scheduler address (``tcp://host:8786``); wins over ``workers``.
    workers
        Number of single-threaded worker processes of a LocalCluster started for the block.
    connect_timeout_s
        How long to wait for the scheduler at ``address``.

    Nested blocks with the same settings share the outer block's client, which alone closes it.
    """
    if not address and not workers:
        yield None
        return
    key = (address or None, None if address else workers)
    if key in _open_clients:
        yield _open_clients[key]
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        from uhi.errors import ConfigError

        raise ConfigError(
            "dask.address / dask.workers need the dask extra: pip install 'uhi-landsat[dask]'"
        ) from None
    with contextlib.ExitStack() as stack:
        if address:
            try:
                client = stack.enter_context(Client(address, timeout=f"{connect_timeout_s}s"))
            except OSError as exc:
                from uhi.errors import RemoteError

                raise RemoteError(
                    f"cannot reach the dask scheduler at {address}: {exc}; "
                    "check dask.address / --dask-address and that the scheduler is running"
                ) from None
        else:
            cluster = stack.enter_context(
                LocalCluster(
                    n_workers=workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=None,
                )
            )
            client = stack.enter_context(Client(cluster))
        log.info("dask: %s", address or f"LocalCluster with {workers} workers")
        _open_clients[key] = client
        try:
            yield client
        finally:
            _open_clients.pop(key, None)


def map_tasks(
    fn: Callable[[T], R],
    items: Sequence[T] | Iterable[T],
    *,
    threads: int = 1,
    client: Any = None,
    desc: str = "",
    bar: StageBar | None = None,
) -> list[R]:
    """Apply ``fn`` to every item and return results in input order.

    Parameters
    ----------
    fn
        A picklable function of one argument (Dask ships it to workers).
    items
        The independent work items (scene ids, tile blocks, ...).
    threads
        Thread pool size when no Dask client is given (I/O-bound work); 1 runs in this thread.
    client
        A ``distributed.Client``; when given, tasks run there with ``client.map``.
    desc
        Label of the progress bar (shown on a terminal only).
    bar
        A stage-wide bar each finished item advances (instead of a bar of its own).

    Returns
    -------
    list
        ``[fn(item) for item in items]``, whatever ran them.
    """
    items = list(items)
    if client is not None and items:
        futures = client.map(fn, items, pure=False)
        from distributed import as_completed

        try:
            for _ in progress(as_completed(futures), total=len(futures), desc=desc, bar=bar):
                pass
            return list(client.gather(futures))
        finally:
            # a failed task must not leave its siblings running on a shared cluster
            client.cancel(futures)
    if threads <= 1 or len(items) <= 1:
        return [fn(item) for item in progress(items, total=len(items), desc=desc, bar=bar)]
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(progress(pool.map(fn, items), total=len(items), desc=desc, bar=bar))

"""Run independent tasks (one scene, one tile) sequentially, on threads, or on Dask.

Stages call ``map_tasks`` and never learn which executor ran them. Dask use follows the
ARCHITECTURE rule: ``client.map`` over independent tasks, never one giant graph.
"""

from __future__ import annotations

import collections
import contextlib
import logging
from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from uhi.progress import StageBar, progress

__all__ = ["map_tasks", "imap_tasks", "dask_client", "active_client"]

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


def imap_tasks(
    fn: Callable[[T], R],
    items: Sequence[T] | Iterable[T],
    *,
    threads: int = 1,
    client: Any = None,
    ahead: int | None = None,
    bar: StageBar | None = None,
) -> Generator[R, None, None]:
    """Yield ``fn(item)`` for every item, in input order, as the results come in.

    Unlike :func:`map_tasks`, the caller works on one result while the later items run: at
    most ``ahead`` items (default ``2 x threads``) are submitted and not yet yielded, which
    bounds the results held in memory however slow the caller is. Arguments as in
    :func:`map_tasks`; with a Dask client the items run there (``client.submit``).

    A failing item raises from the generator when its turn comes; the items still running
    are cancelled (Dask) or finished and dropped (threads) when the generator is closed.
    """
    window = max(1, ahead if ahead is not None else 2 * max(threads, 1))
    todo = iter(items)
    if client is None and threads <= 1:
        for item in todo:
            result = fn(item)
            if bar is not None:
                bar.update()
            yield result
        return
    pending: collections.deque[Any] = collections.deque()
    with contextlib.ExitStack() as stack:
        if client is not None:
            def submit(item: T) -> Any:
                return client.submit(fn, item, pure=False)

            def cancel() -> None:
                client.cancel(list(pending))
        else:
            pool = stack.enter_context(ThreadPoolExecutor(max_workers=threads))

            def submit(item: T) -> Any:
                return pool.submit(fn, item)

            def cancel() -> None:
                for future in pending:
                    future.cancel()
        try:
            for item in todo:
                pending.append(submit(item))
                if len(pending) >= window:
                    break
            while pending:
                result = pending.popleft().result()
                for item in todo:  # refill before handing the result over
                    pending.append(submit(item))
                    break
                if bar is not None:
                    bar.update()
                yield result
        finally:
            # a failed task (or a caller that stopped early) must not leave its siblings running
            cancel()

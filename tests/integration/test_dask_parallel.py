"""uhi.parallel on a real LocalCluster: ordered results, shared client, scheduler address."""

from __future__ import annotations

import os

import pytest

from uhi.errors import RemoteError
from uhi.parallel import active_client, dask_client, map_tasks


def _square_and_pid(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def test_local_cluster_results_in_order_and_nested_blocks_share_it() -> None:
    with dask_client(None, 2) as client:
        assert client is not None and len(client.scheduler_info()["workers"]) == 2
        assert active_client() is client
        with dask_client(None, 2) as inner:  # what a stage does inside `uhi run`
            assert inner is client
        out = map_tasks(_square_and_pid, list(range(40)), client=client)
        assert [v for v, _ in out] == [i * i for i in range(40)]
        assert os.getpid() not in {pid for _, pid in out}  # ran in the worker processes
    assert active_client() is None


def test_scheduler_address_connects_to_a_running_cluster() -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
        with dask_client(cluster.scheduler_address, None) as remote:  # dask.address / --dask-address
            assert remote.scheduler.address == cluster.scheduler_address
            assert [v for v, _ in map_tasks(_square_and_pid, [3, 4], client=remote)] == [9, 16]


def test_unreachable_scheduler_is_a_remote_error() -> None:
    with pytest.raises(RemoteError, match="cannot reach the dask scheduler at tcp://127.0.0.1:9"):
        with dask_client("tcp://127.0.0.1:9", None, connect_timeout_s=1):
            pass


def test_no_dask_settings_means_no_client() -> None:
    with dask_client(None, None) as client:
        assert client is None
    assert map_tasks(_square_and_pid, [2], threads=4)[0][0] == 4


def test_imap_tasks_on_a_local_cluster_yields_in_order_as_map_tasks() -> None:
    from uhi.parallel import imap_tasks

    with dask_client(None, 2) as client:
        out = list(imap_tasks(_square_and_pid, list(range(30)), client=client, ahead=3))
    assert [v for v, _ in out] == [i * i for i in range(30)]
    assert os.getpid() not in {pid for _, pid in out}

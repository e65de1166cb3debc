"""The demo city on a 2-worker LocalCluster gives the single-process results.

Per-scene and per-tile results are gathered in input order, so no float reduction changes
order on the cluster: every artifact is byte-identical except the files compare_workspaces
allows to match in content only (xlsx creation stamps, model fitting seconds).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_run_support import compare_workspaces, shared_clean_run, shared_demo, uhi


@pytest.mark.slow
def test_local_cluster_of_two_workers_matches_single_process(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    demo = shared_demo(tmp_path_factory)
    single = shared_clean_run(tmp_path_factory)
    r = uhi("run", str(demo), "--workdir", str(tmp_path / "dask"), "--dask-workers", "2", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "LocalCluster with 2 workers" in r.stderr  # the run really used the cluster
    compare_workspaces(single, tmp_path / "dask")

"""Crash safety of `uhi run` on the demo city: SIGKILL at several points, re-run, compare.

Compared with an uninterrupted run, every artifact is byte-identical except the Excel
workbooks, compared cell by cell (the xlsx writers stamp the creation time into
``docProps/core.xml``), and ``model/summary.json``, compared without its ``seconds`` block
(fitting times). ``manifest.json`` (timings) is bookkeeping, not an artifact.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_run_support import compare_workspaces, run_ok, shared_clean_run, shared_demo, start_uhi


@pytest.fixture()
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_demo(tmp_path_factory)


@pytest.fixture()
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_clean_run(tmp_path_factory)


def _recorded(ws: Path, stage: str) -> bool:
    try:
        return stage in json.loads((ws / "manifest.json").read_text())["stages"]
    except (FileNotFoundError, json.JSONDecodeError):
        return False


KILL_POINTS: dict[str, Callable[[Path], bool]] = {
    "fetch, after 3 clips": lambda ws: len(list((ws / "fetch").rglob("*.tif"))) >= 3,
    "compute, as it starts": lambda ws: _recorded(ws, "fetch"),
    "model, as it starts": lambda ws: _recorded(ws, "compute"),
}


@pytest.mark.slow
@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_and_rerun_equals_uninterrupted(demo: Path, clean: Path, tmp_path: Path, point: str) -> None:
    ws = tmp_path / "ws"
    proc = start_uhi("run", str(demo), "--workdir", str(ws))
    ready = KILL_POINTS[point]
    deadline = time.monotonic() + 120
    while not ready(ws):
        assert proc.poll() is None, f"run ended before the kill point: {proc.communicate()[1][-2000:]}"
        assert time.monotonic() < deadline
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    # whatever the kill left, no file under a final name is torn: every finished .tif opens
    import rasterio

    for tif in (ws / "fetch").rglob("*.tif"):
        if ".uhi-tmp-" not in tif.name:
            with rasterio.open(tif) as src:
                src.read(1)
    run_ok(demo, ws)
    assert not list(ws.rglob("*.uhi-tmp-*"))  # the re-run swept the killed run's temporaries
    compare_workspaces(clean, ws)

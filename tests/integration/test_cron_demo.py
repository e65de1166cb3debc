"""Cron mode on the demo city with the real CLI: incremental runs and two concurrent runs."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from test_run_support import (
    compare_workspaces,
    run_ok,
    shared_clean_run,
    shared_demo,
    start_uhi,
    uhi,
)


@pytest.fixture()
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_demo(tmp_path_factory)


@pytest.fixture()
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return shared_clean_run(tmp_path_factory)


def _catalog(config: Path) -> Path:
    from uhi.config import load_config

    path = load_config(config, environ={}).search.path
    assert path is not None
    return path / "catalog.json" if path.is_dir() else path


def _hide_latest_item(catalog: Path) -> tuple[str, str]:
    """Drop the most recent item's link from the catalog; returns (its id, the original text)."""
    original = catalog.read_text()
    data = json.loads(original)
    dated = []
    for link in data["links"]:
        if link.get("rel") == "item":
            item = json.loads((catalog.parent / link["href"]).read_text())
            dated.append((item["properties"]["datetime"], item["id"], link))
    _, latest_id, latest_link = max(dated, key=lambda t: t[0])
    data["links"] = [lk for lk in data["links"] if lk is not latest_link]
    catalog.write_text(json.dumps(data, indent=2))
    return latest_id, original


def _lock_held(ws: Path) -> bool:
    lock = ws / ".uhi.lock"
    return lock.is_file() and lock.read_text().startswith("pid=")


def _wait(pred: Any, proc: Any, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert proc.poll() is None, f"run ended too early: {proc.communicate()}"
        assert time.monotonic() < deadline
        time.sleep(0.005)


@pytest.mark.slow
def test_incremental_nothing_new_then_one_new_scene(demo: Path, clean: Path, tmp_path: Path) -> None:
    catalog = _catalog(demo)
    ws = tmp_path / "cron"
    latest_id, original = _hide_latest_item(catalog)
    try:
        first = run_ok(demo, ws, "--incremental")
        assert not first["nothing_new"] and [s["skipped"] for s in first["stages"]] == [False] * 5
        assert latest_id not in first["new_scenes"]

        quiet = uhi("--log-json", "run", str(demo), "--workdir", str(ws), "--incremental")
        assert quiet.returncode == 0, quiet.stderr
        assert "nothing new" in quiet.stdout
        logs = [json.loads(line) for line in quiet.stderr.splitlines()]  # log shippers' format
        assert logs and all({"time", "level", "logger", "message"} <= set(rec) for rec in logs)
        assert any("no scene newer than the last run" in rec["message"] for rec in logs)
        manifest_before = (ws / "manifest.json").read_bytes()
    finally:
        catalog.write_text(original)  # the archive publishes the scene
    assert (ws / "manifest.json").read_bytes() == manifest_before  # nothing new ran nothing

    newer = run_ok(demo, ws, "--incremental")
    assert newer["new_scenes"] == [latest_id] and not newer["nothing_new"]
    fetch = newer["stages"][0]
    assert fetch["name"] == "fetch" and not fetch["skipped"]
    new_files = list((ws / "fetch" / "scenes").glob(f"{latest_id}*/*.tif"))
    assert new_files and fetch["summary"]["assets_fetched"] == len(new_files)
    assert fetch["summary"]["assets_reused"] > 0  # earlier scenes were not read again
    assert [s["skipped"] for s in newer["stages"][1:]] == [False] * 4
    # the incremental result is the full run's result
    compare_workspaces(clean, ws)


@pytest.mark.slow
def test_concurrent_run_exits_75_and_a_killed_runs_lock_is_taken_over(
    demo: Path, clean: Path, tmp_path: Path
) -> None:
    ws = tmp_path / "busy"
    first = start_uhi("run", str(demo), "--workdir", str(ws))
    try:
        _wait(lambda: _lock_held(ws), first)
        second = uhi("run", str(demo), "--workdir", str(ws), "--incremental")
        assert first.poll() is None, "the first run finished before the second started"
        assert second.returncode == 75, second.stderr
        assert "locked by another run" in second.stderr and f"pid={first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        # then the holder dies mid-fetch (OOM killer, reboot): its lock file stays behind
        _wait(lambda: any((ws / "fetch").rglob("*.tif")), first)
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    assert (ws / ".uhi.lock").read_text().startswith(f"pid={first.pid}")
    third = uhi("run", str(demo), "--workdir", str(ws), "--incremental")
    assert third.returncode == 0, third.stderr  # the dead holder's lock is taken over
    compare_workspaces(clean, ws)

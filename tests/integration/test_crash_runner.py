"""Kill-and-resume of the runner itself: SIGKILL a real subprocess mid-stage, re-run, compare.

The stages here are small and slow on purpose (a pause per file) so the kill lands inside a
stage; the real stages are killed the same way on the demo city in test_crash_demo.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

N_SCENES = 6
PAUSE_S = 0.15


def _slow_write(ws: Any, target: Path, text: str) -> None:
    time.sleep(PAUSE_S)
    ws.write_text(target, text)


def _fetch(config: Any, ws: Any) -> dict[str, Any]:
    for i in range(N_SCENES):
        target = ws.scene_asset(f"S{i}", "lwir11")
        if not target.exists():
            _slow_write(ws, target, f"{i * 1.25}\n")
    return {"scenes": N_SCENES}


def _compute(config: Any, ws: Any) -> dict[str, Any]:
    for i in range(N_SCENES):
        value = float(ws.scene_asset(f"S{i}", "lwir11").read_text())
        _slow_write(ws, ws.path("compute", "scenes", f"S{i}.txt"), f"{value * 2}\n")
    total = sum(float(p.read_text()) for p in ws.files_under(ws.path("compute", "scenes")))
    ws.write_json(ws.path("compute", "total.json"), {"total": total})
    return {}


def _model(config: Any, ws: Any) -> dict[str, Any]:
    total = json.loads(ws.path("compute", "total.json").read_text())["total"]
    for k in range(4):
        _slow_write(ws, ws.path("model", f"part{k}.txt"), f"{total / (k + 1)}\n")
    ws.write_json(ws.model_summary, {"models": {"ols": total}})
    return {}


def _specs(name: str) -> Any:
    from uhi.stages.runner import StageSpec

    ins = {
        "fetch": lambda c, w: [],
        "compute": lambda c, w: w.files_under(w.path("fetch")),
        "model": lambda c, w: [w.path("compute", "total.json")],
    }
    run = {"fetch": _fetch, "compute": _compute, "model": _model}
    return StageSpec(name, ("grid",), ins[name], run[name])


def _digest_tree(root: Path) -> dict[str, str]:
    skip = {"manifest.json", ".uhi.lock"}
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in skip
    }


def _start(workdir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, str(workdir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _kill_when(proc: subprocess.Popen[str], ready: Any, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert proc.poll() is None, f"run ended before the kill point: {proc.communicate()}"
        assert time.monotonic() < deadline, "kill point never reached"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    clean = tmp_path_factory.mktemp("clean")
    assert _start(clean).wait(60) == 0
    return _digest_tree(clean)


@pytest.mark.parametrize(
    "point",
    ["fetch: 2 files", "compute: 3 files", "model: 1 file"],
)
def test_sigkill_then_rerun_matches_uninterrupted(
    tmp_path: Path, point: str, expected: dict[str, str]
) -> None:

    ws = tmp_path / "killed"
    stage, _, rest = point.partition(": ")
    n = int(rest.split()[0])
    folder = ws / ("fetch/scenes" if stage == "fetch" else stage)

    def ready() -> bool:
        return folder.is_dir() and sum(1 for p in folder.rglob("*") if p.is_file()) >= n

    _kill_when(_start(ws), ready)
    # the killed run left no stage record for the stage it was in, and no torn file under a real name
    manifest = json.loads((ws / "manifest.json").read_text()) if (ws / "manifest.json").exists() else {}
    assert stage not in manifest.get("stages", {})
    rerun = _start(ws)
    out, err = rerun.communicate(timeout=60)
    assert rerun.returncode == 0, err
    assert _digest_tree(ws) == expected  # byte-identical, temporaries swept
    # the re-run starts at the stage that was killed: finished stages are not redone
    assert json.loads(out)["ran"][0] == stage


if __name__ == "__main__":
    from uhi.config import build_config
    from uhi.pipeline import run_pipeline

    cfg = build_config({"workdir": sys.argv[1]}, environ={})
    report = run_pipeline(cfg, ["fetch", "compute", "model"], specs=_specs)
    print(json.dumps({"ran": [o.name for o in report.outcomes if not o.skipped]}))

"""Issue 18: SIGTERM like SIGINT (exit 143, cleanup), stale stages refused, demo overwrite."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from uhi.config import build_config
from uhi.errors import StaleWorkspaceError
from uhi.stages.runner import StageSpec, execute
from uhi.workspace import Workspace

# a tiny pipeline whose compute stage hangs inside an atomic write, run through the real CLI
_SLOW_RUN = textwrap.dedent(
    """
    import sys, time
    from uhi.stages.runner import StageSpec

    def compute(config, ws):
        with ws.atomic_path(ws.path("compute", "panel.parquet")) as tmp:
            tmp.write_text("half")
            print("writing", flush=True)
            time.sleep(60)
        return {}

    spec = StageSpec("compute", (), lambda c, w: [], compute)
    import uhi.stages
    uhi.stages.get_spec = lambda name: spec
    from uhi.cli.main import main
    main(["compute", sys.argv[1]])
    """
)


def test_sigterm_exits_143_with_a_message_and_cleans_up(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"workdir: {tmp_path / 'ws'}\n")
    proc = subprocess.Popen(
        [sys.executable, "-c", _SLOW_RUN, str(cfg)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "writing"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err
    assert "terminated (SIGTERM)" in err and "run the same command again" in err
    assert "Traceback" not in err
    ws = tmp_path / "ws"
    leftovers = [p.name for p in ws.rglob("*") if ".uhi-tmp-" in p.name]
    assert leftovers == []
    assert (ws / ".uhi.lock").read_text() == ""  # released: holder text cleared
    Workspace(ws).acquire_lock()  # and free


def _specs(log: list[str]) -> dict[str, StageSpec]:
    def stage(name: str, reads: list[str]) -> StageSpec:
        def run(config, ws):  # type: ignore[no-untyped-def]
            log.append(name)
            text = "+".join(ws.path(*r.split("/")).read_text() for r in reads) + f">{name}{len(log)}"
            ws.write_text(ws.path(name, "out.txt"), text)
            return {}

        return StageSpec(name, (), lambda c, w: [w.path(*r.split("/")) for r in reads], run)

    return {
        "fetch": stage("fetch", []),
        "compute": stage("compute", ["fetch/out.txt"]),
        "model": stage("model", ["compute/out.txt"]),
        "forecast": stage("forecast", ["compute/out.txt"]),
    }


def test_stale_stages_are_named_and_refused(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    cfg = build_config({}, environ={})
    log: list[str] = []
    specs = _specs(log)
    for name in ("fetch", "compute", "model", "forecast"):
        execute(specs[name], cfg, ws)
    ws.require_current(("fetch", "compute", "model", "forecast"), "uhi report")  # consistent

    # an interrupted re-run: fetch and compute ran again, model was killed inside
    execute(specs["fetch"], cfg, ws, force=True)
    execute(specs["compute"], cfg, ws, force=True)
    ws.start_stage("model")  # what the runner does before the stage's work; then SIGKILL
    stale = dict(ws.stale_stages(("fetch", "compute", "model", "forecast")))
    assert set(stale) == {"model", "forecast"}
    assert "did not finish" in stale["model"]
    assert stale["forecast"] == "it ran before compute last ran"
    with pytest.raises(StaleWorkspaceError, match=r"uhi report would mix .*model: its last run.*run `uhi run CONFIG --from model` first"):
        ws.require_current(("fetch", "compute", "model", "forecast"), "uhi report")
    # scenario reads only up to model; re-running model leaves forecast stale for the report only
    execute(specs["model"], cfg, ws)
    ws.require_current(("fetch", "compute", "model"), "uhi scenario")
    with pytest.raises(StaleWorkspaceError, match="forecast: it ran before compute"):
        ws.require_current(("fetch", "compute", "model", "forecast"), "uhi report")
    execute(specs["forecast"], cfg, ws)
    ws.require_current(("fetch", "compute", "model", "forecast"), "uhi report")
    assert "unfinished" not in json.loads((tmp_path / "manifest.json").read_text())


def test_report_cli_refuses_a_stale_workspace_with_exit_2(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.write_text(ws.path("compute", "cells.parquet"), "x")
    ws.start_stage("compute")
    (tmp_path / "c.yaml").write_text(f"workdir: {ws.root}\n")
    for cmd in (["report", "c.yaml"], ["scenario", "c.yaml", "--changes", "c.yaml"]):
        r = subprocess.run([sys.executable, "-m", "uhi.cli.main", *cmd], capture_output=True, text=True, cwd=tmp_path, timeout=120)
        assert r.returncode == 2, r.stderr
        assert "compute: its last run" in r.stderr and "--from compute" in r.stderr
        assert "Traceback" not in r.stderr


def test_demo_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "d"
    out.mkdir()
    (out / "config.yaml").write_text("# my edits\n")
    args = [sys.executable, "-m", "uhi.cli.main", "demo", str(out), "--size-km", "0.5", "--years", "2019-2019", "--scenes-per-year", "1"]
    t0 = time.perf_counter()
    r = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert f"{out} already holds config.yaml: pass --force" in r.stderr
    assert (out / "config.yaml").read_text() == "# my edits\n"
    assert time.perf_counter() - t0 < 10  # refused before planting anything


def test_demo_force_goes_through_to_the_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from click.testing import CliRunner

    import uhi.demo
    from uhi.cli.demo import demo

    out = tmp_path / "d"
    (out / "data").mkdir(parents=True)
    calls: list[Path] = []

    def fake_write(directory: Path, spec: object) -> SimpleNamespace:
        calls.append(directory)
        return SimpleNamespace(scenes=1, aoi_cells=1, root=directory, config=directory / "config.yaml", truth=directory / "truth.json")

    monkeypatch.setattr(uhi.demo, "write_demo", fake_write)
    refused = CliRunner().invoke(demo, [str(out)])
    assert refused.exit_code == 2 and "already holds data: pass --force" in refused.output
    assert calls == []
    done = CliRunner().invoke(demo, [str(out), "--force"])
    assert done.exit_code == 0, done.output
    assert calls == [out]

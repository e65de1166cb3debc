"""`uhi scenario` and `uhi report` from the shell: exit codes, messages, outputs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import test_scenario as synth
from shapely.geometry import box

UHI = [sys.executable, "-m", "uhi.cli.main"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*UHI, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def _config(tmp_path: Path, ws_root: Path) -> Path:
    cfg = tmp_path / "city.yaml"
    cfg.write_text(f"city:\n  name: synth\nworkdir: {ws_root}\n")
    return cfg


def test_scenario_and_report_commands(tmp_path: Path) -> None:
    ws, _ = synth._workspace(tmp_path)
    cfg = _config(tmp_path, ws.root)
    park = box(synth.X0 + 250, synth.Y0 + 250, synth.X0 + 350, synth.Y0 + 350)
    changes = synth._changes(tmp_path, [synth._feature(park, {"name": "park", "ndvi": 0.2})])
    r = _run("scenario", str(cfg), "--changes", str(changes), "--model", "lag", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "scenario changes: model lag (2020), baseline 2020" in r.stdout
    assert "cells changed: 4 of 144" in r.stdout
    assert "scenario/changes.geojson" in r.stdout and "scenario/changes.xlsx" in r.stdout
    r = _run("report", str(cfg), "--no-basemap", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(ws.root / "report" / "report.html")
    assert "scenario_changes" in (ws.root / "report" / "report.html").read_text()


def test_scenario_errors_exit_2_with_a_fix(tmp_path: Path) -> None:
    ws, _ = synth._workspace(tmp_path)
    cfg = _config(tmp_path, ws.root)
    r = _run("scenario", str(cfg), "--changes", "nope.geojson", cwd=tmp_path)
    assert r.returncode == 2 and "changes file not found: nope.geojson" in r.stderr
    assert "Traceback" not in r.stderr
    r = _run("scenario", str(cfg), "--changes", "x.geojson", "--model", "kriging", cwd=tmp_path)
    assert r.returncode == 2 and "--model" in r.stderr
    ws.model_summary.unlink()
    changes = synth._changes(tmp_path, [synth._feature(box(synth.X0, synth.Y0, synth.X0 + 60, synth.Y0 + 60), {"ndvi": 0.1})])
    r = _run("scenario", str(cfg), "--changes", str(changes), cwd=tmp_path)
    assert r.returncode == 2 and "model/summary.json is missing" in r.stderr and "run uhi model first" in r.stderr


def test_report_without_compute_exits_2(tmp_path: Path) -> None:
    cfg = _config(tmp_path, tmp_path / "empty")
    r = _run("report", str(cfg), "--no-basemap", cwd=tmp_path)
    assert r.returncode == 2
    assert "compute/cells.parquet is missing" in r.stderr and "run uhi compute first" in r.stderr

"""`uhi plan` from the shell: exit codes and messages, the recorded stage and its fingerprint."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
import test_plan_stage as stage  # noqa: E402

UHI = [sys.executable, "-m", "uhi.cli.main"]


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*UHI, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def _config(tmp_path: Path, root: Path) -> Path:
    cfg = tmp_path / "city.yaml"
    cfg.write_text(f"city:\n  name: synth\nworkdir: {root}\n")
    return cfg


@pytest.mark.parametrize(
    ("budget", "message"),
    [("abc", "'abc' is not a number"), ("0", "must be a positive amount"), ("-5", "must be a positive amount"),
     ("nan", "must be a positive amount")],
)
def test_bad_budget_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], budget: str, message: str) -> None:
    from uhi.cli.main import main

    root = tmp_path / "ws"
    with pytest.raises(SystemExit) as exc:
        main(["plan", str(_config(tmp_path, root)), "--budget", budget])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and message in err and "--budget" in err
    assert not root.exists()


def test_plan_command_errors_and_replay(tmp_path: Path) -> None:
    ws, _, _ = stage._workspace(tmp_path)
    cfg = str(_config(tmp_path, ws.root))
    r = _run("plan", cfg, "--budget", "5", cwd=tmp_path)
    assert r.returncode == 2 and "budget 5.00 CAD is below the cheapest change" in r.stderr
    assert "Traceback" not in r.stderr and not ws.path("plan").exists()
    r = _run("plan", cfg, "--budget", "60000", "--objective", "kids", cwd=tmp_path)
    assert r.returncode == 2 and "use people, area or group:NAME" in r.stderr
    r = _run("plan", cfg, "--budget", "60,000", "--model", "lag", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "plan: " in r.stdout and "total_benefit: " in r.stdout
    assert json.loads(ws.path("plan", "summary.json").read_text())["cells_selected"] >= 1
    # recorded: the same plan again is skipped; another budget enters the fingerprint and reruns
    r = _run("plan", cfg, "--budget", "60000", "--model", "lag", cwd=tmp_path)
    assert r.returncode == 0 and "unchanged, skipped" in r.stdout
    r = _run("plan", cfg, "--budget", "90000", cwd=tmp_path)
    assert r.returncode == 0 and "unchanged" not in r.stdout
    assert json.loads(ws.path("plan", "summary.json").read_text())["budget"] == 90000.0
    ws.model_summary.unlink()
    r = _run("plan", cfg, "--budget", "90000", "--objective", "area", cwd=tmp_path)
    assert r.returncode == 2 and "model/summary.json is missing" in r.stderr and "run uhi model first" in r.stderr

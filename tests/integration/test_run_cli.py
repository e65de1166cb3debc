"""`uhi run` and `uhi processing` usage errors: exit 2 with the flag named, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

UHI = [sys.executable, "-m", "uhi.cli.main"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--from", "model", "--to", "fetch"], "--to fetch comes before --from model"),
        (["--incremental", "--force"], "--incremental cannot be combined with --force"),
        (["--dask-workers", "0"], "--dask-workers"),
        (["--from", "report"], "--from"),
    ],
)
def test_run_usage_errors_exit_2(tmp_path: Path, args: list[str], needle: str) -> None:
    (tmp_path / "c.yaml").write_text("{}\n")
    r = subprocess.run([*UHI, "run", "c.yaml", *args], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "uhi-city").exists()  # nothing was started


def test_processing_rejects_a_bad_resourceconfig(tmp_path: Path) -> None:
    (tmp_path / "processing" / "input" / "config").mkdir(parents=True)
    (tmp_path / "processing" / "input" / "config" / "job.yaml").write_text("{}\n")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "resourceconfig.json").write_text('{"current_host": "algo-3", "hosts": ["algo-1"]}')
    env = {k: v for k, v in os.environ.items() if not k.startswith("UHI_")}
    env["UHI_PROCESSING_ROOT"] = str(tmp_path)
    r = subprocess.run([*UHI, "processing"], capture_output=True, text=True, env=env)
    assert r.returncode == 2, r.stderr
    assert "current_host 'algo-3' is not among hosts" in r.stderr and "Traceback" not in r.stderr

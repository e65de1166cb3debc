"""CLI: help speed, version, exit codes and messages for a user's mistakes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

UHI = [sys.executable, "-m", "uhi.cli.main"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*UHI, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_help_is_fast_and_lists_commands() -> None:
    run("--help")  # warm the bytecode cache
    t0 = time.perf_counter()
    r = run("--help")
    elapsed = time.perf_counter() - t0
    assert r.returncode == 0
    for cmd in ("fetch", "compute", "model", "forecast", "run", "demo"):
        assert cmd in r.stdout
    assert elapsed < 1.0, f"uhi --help took {elapsed:.2f} s"


def test_help_imports_no_heavy_modules() -> None:
    code = (
        "import sys; from uhi.cli.main import cli\n"
        "try:\n    cli.main(['--help'], standalone_mode=False)\nexcept SystemExit: pass\n"
        "heavy = [m for m in ('numpy','pandas','rasterio','geopandas','libpysal','statsmodels','boto3','dask','pydantic') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.strip().splitlines()[-1] == "HEAVY=", r.stdout


def test_version() -> None:
    r = run("--version")
    assert r.returncode == 0 and "uhi, version" in r.stdout


def test_missing_config_exits_2_naming_path(tmp_path: Path) -> None:
    r = run("run", "missing.yaml", cwd=tmp_path)
    assert r.returncode == 2
    assert "missing.yaml" in r.stderr and "Traceback" not in r.stderr


def test_misspelt_key_exits_2_naming_key(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("search:\n  max_clod: 10\n")
    r = run("run", "c.yaml", cwd=tmp_path)
    assert r.returncode == 2
    assert "search.max_clod" in r.stderr and "Traceback" not in r.stderr


def test_bad_value_exits_2_naming_key_and_range(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("search:\n  max_cloud: 140\n")
    r = run("fetch", "c.yaml", cwd=tmp_path)
    assert r.returncode == 2
    assert "search.max_cloud" in r.stderr and "100" in r.stderr and "Traceback" not in r.stderr


def test_bad_set_flag_exits_2(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("{}\n")
    r = run("run", "c.yaml", "--set", "grid.zoom=99", cwd=tmp_path)
    assert r.returncode == 2 and "grid.zoom" in r.stderr


def test_unknown_command_exits_2() -> None:
    r = run("frobnicate")
    assert r.returncode == 2 and "frobnicate" in r.stderr


@pytest.mark.parametrize("flag", ["-q", "-v", "--log-json"])
def test_global_flags_accepted(flag: str) -> None:
    assert run(flag, "--help").returncode == 0

"""Helpers for the end-to-end operations tests on the demo city (no tests of its own)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

UHI = [sys.executable, "-m", "uhi.cli.main"]
# small but complete: every stage has work, the whole pipeline runs in seconds
DEMO_ARGS = ("--size-km", "1", "--scenes-per-year", "2")
# files that legitimately differ between two runs: timings, lock holder, shard bookkeeping
NOT_COMPARED = {"manifest.json", ".uhi.lock", "shard.json"}
# artifacts equal only in content between two runs: the xlsx writers stamp the creation time
# into docProps/core.xml, and model/summary.json records each model's fitting seconds
CONTENT_ONLY = {"model/model.xlsx", "model/summary.json", "forecast/forecast.xlsx",
                "compute/outputs/demo_summary.xlsx", "exposure/exposure.xlsx", "exposure/summary.json"}


def uhi(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("UHI_")}
    full_env.update(env or {})
    return subprocess.run([*UHI, *args], capture_output=True, text=True, timeout=timeout, env=full_env)


def start_uhi(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UHI_")}
    return subprocess.Popen([*UHI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def make_demo(folder: Path) -> Path:
    """Write the small demo city; returns its config.yaml."""
    r = uhi("demo", str(folder), *DEMO_ARGS)
    assert r.returncode == 0, r.stderr
    return folder / "config.yaml"


def shared_demo(factory: Any) -> Path:
    """The small demo city, written once per test session (pytest's tmp_path_factory).

    Tests read it and never change it (test_cron_demo hides one catalog item and restores
    the exact bytes before any other test runs).
    """
    folder = factory.getbasetemp() / "ops-demo" / "city"
    config = folder / "config.yaml"
    if not config.is_file():
        make_demo(folder)
    return config


def shared_clean_run(factory: Any) -> Path:
    """The uninterrupted single-process run of the shared demo, once per session (read only)."""
    ws = factory.getbasetemp() / "ops-clean"
    if not (ws / "manifest.json").is_file():
        run_ok(shared_demo(factory), ws)
    return ws


def run_ok(config: Path, workdir: Path, *extra: str) -> dict[str, Any]:
    """`uhi run --json` that must succeed; returns the summary."""
    r = uhi("run", str(config), "--workdir", str(workdir), "--json", *extra)
    assert r.returncode == 0, r.stderr[-3000:]
    result: dict[str, Any] = json.loads(r.stdout)
    return result


def result_files(root: Path) -> dict[str, Path]:
    """Every stage artifact of a workspace, by relative path."""
    out = {}
    for stage in ("fetch", "compute", "model", "exposure", "forecast"):
        for p in sorted((root / stage).rglob("*")):
            if p.is_file() and p.name not in NOT_COMPARED:
                out[p.relative_to(root).as_posix()] = p
    return out


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _same_content(a: Path, b: Path) -> bool:
    """Content equality for formats whose bytes carry a timestamp or writer nondeterminism."""
    if a.suffix == ".xlsx":
        import openpyxl

        wa, wb = openpyxl.load_workbook(a, read_only=True), openpyxl.load_workbook(b, read_only=True)
        if wa.sheetnames != wb.sheetnames:
            return False
        for name in wa.sheetnames:
            rows_a = list(wa[name].iter_rows(values_only=True))
            rows_b = list(wb[name].iter_rows(values_only=True))
            if rows_a != rows_b:
                return False
        return True
    if a.suffix == ".parquet":
        import pandas as pd

        try:
            pd.testing.assert_frame_equal(pd.read_parquet(a), pd.read_parquet(b), check_exact=True)
        except AssertionError:
            return False
        return True
    if a.suffix == ".tif":
        import numpy as np
        import rasterio

        with rasterio.open(a) as ra, rasterio.open(b) as rb:
            return bool(
                ra.profile == rb.profile and np.array_equal(ra.read(), rb.read(), equal_nan=True)
            )
    if a.suffix in (".json", ".geojson"):
        return bool(_without_timings(json.loads(a.read_text())) == _without_timings(json.loads(b.read_text())))
    return False


def _without_timings(obj: Any) -> Any:
    """Drop wall-clock timings (``seconds`` blocks, e.g. in model/summary.json): not results."""
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if k != "seconds"}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


def compare_workspaces(expected: Path, actual: Path) -> dict[str, str]:
    """Assert two workspaces hold the same artifacts; returns how each matched.

    ``"bytes"`` for byte-identical files, ``"content"`` for files equal in content only, which
    is allowed only for the files in CONTENT_ONLY (everything else must be byte-identical).
    """
    fa, fb = result_files(expected), result_files(actual)
    assert sorted(fa) == sorted(fb), (sorted(set(fa) ^ set(fb)))
    how = {}
    for rel in fa:
        if _sha(fa[rel]) == _sha(fb[rel]):
            how[rel] = "bytes"
        else:
            assert rel in CONTENT_ONLY, f"{rel} is not byte-identical"
            assert _same_content(fa[rel], fb[rel]), f"{rel} differs"
            how[rel] = "content"
    return how

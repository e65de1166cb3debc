"""Issue 18 on the real stages: symlinks in the workspace are unlinked, never written through;
a same-size corrupted clip is detected by its recorded SHA-256 and fetched again."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from uhi.demo import DemoSpec, write_demo

UHI = [sys.executable, "-m", "uhi.cli.main"]


@pytest.mark.slow
def test_symlinks_are_not_followed_and_a_corrupted_clip_is_fetched_again(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    write_demo(root, DemoSpec(size_km=0.5, first_year=2019, last_year=2019, scenes_per_year=1))
    ws = root / "workspace"
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("someone's data")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (ws / "fetch" / "scenes").mkdir(parents=True)
    (ws / "fetch" / "scenes" / "LC08_L2SP_041025_20190601_02_T1").symlink_to(precious, target_is_directory=True)
    (ws / "compute").mkdir()
    (ws / "compute" / "outputs").symlink_to(elsewhere, target_is_directory=True)

    r = subprocess.run([*UHI, "run", str(root / "config.yaml"), "--to", "compute"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert (precious / "keep.txt").read_text() == "someone's data"  # the link's target is untouched
    assert list(elsewhere.iterdir()) == []  # nothing written through compute/outputs
    assert not (ws / "compute" / "outputs").is_symlink() and any((ws / "compute" / "outputs").iterdir())
    assert not any(p.is_symlink() for p in (ws / "fetch" / "scenes").iterdir())

    clip = sorted((ws / "fetch" / "scenes").rglob("lwir11.tif"))[0]
    original = clip.read_bytes()
    corrupted = bytearray(original)
    corrupted[len(corrupted) // 2] ^= 0xFF  # same size, one byte off: a size check passes it
    clip.write_bytes(bytes(corrupted))
    r = subprocess.run([*UHI, "run", str(root / "config.yaml"), "--to", "fetch"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "fetch: 1 output(s) changed since the stage wrote them" in r.stderr
    assert clip.read_bytes() == original

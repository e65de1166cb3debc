"""Issue 18: the workspace never reaches outside itself (sweep, nested runs, `/`, huge inputs)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from uhi.errors import ConfigError
from uhi.workspace import Workspace

UHI = [sys.executable, "-m", "uhi.cli.main"]


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*UHI, *args], capture_output=True, text=True, cwd=cwd, timeout=120,
        env={**os.environ, **(env or {})},
    )


def test_outer_sweep_spares_an_inner_run_in_progress(tmp_path: Path) -> None:
    """The probe: `-w nest` while another run works in `nest/inner` (no manifest yet)."""
    nest = tmp_path / "nest"
    inner = Workspace(nest / "inner")
    inner.acquire_lock()
    target = inner.path("compute", "ndvi.tif")
    try:
        with inner.atomic_path(target) as tmp:
            tmp.write_bytes(b"inner run's half-written file")
            # the outer run starts while the inner one is writing
            outer = Workspace(nest)
            with outer.locked():
                pass
            assert tmp.exists()
        assert target.read_bytes() == b"inner run's half-written file"
    finally:
        inner.release_lock()


def test_a_run_nested_inside_a_stage_folder_is_skipped_too(tmp_path: Path) -> None:
    outer = Workspace(tmp_path / "ws")
    theirs = tmp_path / "ws" / "compute" / "someone" / ".x.uhi-tmp-1.tif"
    theirs.parent.mkdir(parents=True)
    (theirs.parent / ".uhi.lock").write_text("")
    theirs.write_text("theirs")
    mine = tmp_path / "ws" / "compute" / ".panel.parquet.uhi-tmp-2.parquet"
    mine.write_text("mine")
    assert outer.sweep_temporaries() == 1
    assert theirs.exists() and not mine.exists()


def test_workspace_holding_another_workspace_manifest_is_refused(tmp_path: Path) -> None:
    (tmp_path / "nest" / "inner").mkdir(parents=True)
    (tmp_path / "nest" / "inner" / "manifest.json").write_text('{"stages": {}}')
    with pytest.raises(ConfigError, match=r"contains another workspace .*inner/manifest\.json"):
        Workspace(tmp_path / "nest").acquire_lock()
    assert not (tmp_path / "nest" / ".uhi.lock").exists()


def test_unrelated_and_symlinked_temporaries_survive_the_sweep(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "ws" / "compute").mkdir(parents=True)
    (tmp_path / "ws" / "mydata").mkdir()
    keep = [
        tmp_path / "ws" / "mydata" / "notes.uhi-tmp-1.txt",  # not a folder uhi writes
        tmp_path / "ws" / "results.uhi-tmp-2.csv",  # in the root but not uhi's manifest
        outside / ".a.tif.uhi-tmp-3.tif",  # reached only through a symlink
    ]
    for p in keep:
        p.write_text("someone else's")
    (tmp_path / "ws" / "compute" / "link").symlink_to(outside, target_is_directory=True)
    (tmp_path / "ws" / "fetch").symlink_to(outside, target_is_directory=True)
    swept = [
        tmp_path / "ws" / ".manifest.json.uhi-tmp-4.json",
        tmp_path / "ws" / "compute" / ".cells.parquet.uhi-tmp-5.parquet",
    ]
    for p in swept:
        p.write_text("killed run's")
    with ws.locked():
        pass
    assert all(p.exists() for p in keep)
    assert not any(p.exists() for p in swept)


def _bbox_config(folder: Path, extra: str = "") -> Path:
    cfg = folder / "c.yaml"
    cfg.write_text(
        "city:\n  name: t\n  bbox: [-114.10, 51.00, -114.09, 51.01]\n"
        "search:\n  backend: local\n  path: nowhere\n" + extra
    )
    return cfg


@pytest.mark.parametrize("where", ["root", "home"])
def test_root_and_home_are_refused_with_exit_2(tmp_path: Path, where: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    _bbox_config(tmp_path)
    workdir = "/" if where == "root" else str(home)
    r = run("run", "c.yaml", "-w", workdir, cwd=tmp_path, env={"HOME": str(home)})
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    expected = "refusing the filesystem root /" if where == "root" else f"refusing the home folder {home}"
    assert expected in r.stderr and "set workdir (or -w)" in r.stderr
    assert list(home.iterdir()) == []  # no lock file, nothing swept


def test_workdir_that_is_a_file_exits_2(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("data")
    _bbox_config(tmp_path, "workdir: afile\n")
    r = run("run", "c.yaml", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert f"workspace {tmp_path / 'afile'} is a file" in r.stderr and "Traceback" not in r.stderr
    assert (tmp_path / "afile").read_text() == "data"


def _alias_bomb(levels: int = 9) -> str:
    names = "abcdefghijklmnop"
    parts = ["&a [" + ",".join(['"lol"'] * 9) + "]"]
    for i in range(1, levels):
        parts.append(f"&{names[i]} [" + ",".join([f"*{names[i - 1]}"] * 9) + "]")
    return "model:\n  x: [" + ", ".join(parts) + "]\n"


def test_yaml_alias_bomb_exits_2_fast(tmp_path: Path) -> None:
    text = _alias_bomb()
    assert len(text) < 1024  # the probe: 1 KB expanding to 9**9 = 387 M strings
    (tmp_path / "bomb.yaml").write_text(text)
    t0 = time.perf_counter()
    r = run("run", "bomb.yaml", cwd=tmp_path)
    elapsed = time.perf_counter() - t0
    assert r.returncode == 2, r.stderr
    assert "expands to more than 100,000 values" in r.stderr and "Traceback" not in r.stderr
    assert elapsed < 5.0, f"took {elapsed:.1f} s"
    assert len(r.stderr) < 1000


def test_a_bomb_below_the_bound_is_not_echoed_whole(tmp_path: Path) -> None:
    # 9**5 = 59,049 values: under the node bound, so validation sees it; the message stays short
    (tmp_path / "c.yaml").write_text(_alias_bomb(5).replace("model:\n  x:", "city:\n  name:"))
    r = run("run", "c.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "city.name" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr) < 1000


@pytest.mark.parametrize("kind", ["dev-zero", "large"])
def test_huge_config_exits_2_without_reading_it_whole(tmp_path: Path, kind: str) -> None:
    if kind == "dev-zero":
        path = "/dev/zero"
    else:
        big = tmp_path / "big.yaml"
        with open(big, "wb") as fh:  # sparse: 200 MB on paper, nothing on disk
            fh.truncate(200 * 2**20)
        path = str(big)
    t0 = time.perf_counter()
    r = run("run", path, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert "is over 1 MiB" in r.stderr and path in r.stderr
    assert time.perf_counter() - t0 < 10


def test_country_sized_aoi_exits_2_before_any_search(tmp_path: Path) -> None:
    """The probe: a 2,000 x 420 km bbox with city.crs; no request may reach the archive."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    # lon 25 deg x lat 3.8 deg at 30-34 N: ~2,400 x 420 km
    (tmp_path / "c.yaml").write_text(
        "city:\n  name: big\n  bbox: [-100.0, 30.2, -75.0, 34.0]\n  crs: EPSG:5070\n"
        f"search:\n  url: http://127.0.0.1:{port}/\n"
    )
    try:
        r = run("run", "c.yaml", cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        assert "over grid.max_cells (2,000,000)" in r.stderr
        for fix in ("split the city", "grid.zoom: 18", "raise grid.max_cells"):
            assert fix in r.stderr
        with pytest.raises(TimeoutError):
            server.accept()  # fetch never started: nobody connected
    finally:
        server.close()
    assert not (tmp_path / "uhi-big").exists()  # no workspace, no lock


def test_the_limit_is_configurable(tmp_path: Path) -> None:
    # the small bbox of the other tests is ~1,000 cells at zoom 19
    _bbox_config(tmp_path, "grid:\n  max_cells: 100\n")
    r = run("fetch", "c.yaml", cwd=tmp_path)
    assert r.returncode == 2 and "over grid.max_cells (100)" in r.stderr
    assert "grid.zoom: 18" in r.stderr


def test_deeply_nested_yaml_is_a_config_error(tmp_path: Path) -> None:
    from uhi.config import load_config

    (tmp_path / "deep.yaml").write_text("model:\n  x: " + "[" * 5_000 + "]" * 5_000 + "\n")
    with pytest.raises(ConfigError, match="nests too deeply"):
        load_config(tmp_path / "deep.yaml", environ={})

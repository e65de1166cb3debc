"""Workspace: safe paths, atomic writes, lock, manifest and stage skipping."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from uhi.config import build_config
from uhi.errors import UhiError, WorkspaceLockedError
from uhi.stages.runner import StageSpec, execute
from uhi.workspace import Workspace, safe_component


@pytest.mark.parametrize("bad", ["../../x", "..", ".hidden", "a/b", "a\\b", "x\x00y", "é*?"])
def test_safe_component_never_escapes(tmp_path: Path, bad: str) -> None:
    ws = Workspace(tmp_path / "ws")
    name = safe_component(bad)
    assert "/" not in name and "\\" not in name and not name.startswith(".")
    d = ws.scene_dir(bad)
    assert ws.root in d.parents


def test_safe_component_keeps_good_ids_and_avoids_collisions() -> None:
    good = "LC08_L2SP_204023_20200927_20201006_02_T1"
    assert safe_component(good) == good
    assert safe_component("a/b") != safe_component("a_b")


def test_path_refuses_escape(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    with pytest.raises(UhiError, match="outside the workspace"):
        ws.path("..", "etc", "passwd")


def test_atomic_write_leaves_nothing_on_error(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    target = tmp_path / "a" / "out.json"
    ws.write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with ws.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    assert target.read_text().strip().startswith("{")
    assert [p.name for p in target.parent.iterdir()] == ["out.json"]


def test_lock_is_exclusive_across_processes_and_dies_with_holder(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys,time; from uhi.workspace import Workspace; w=Workspace(sys.argv[1]); "
         "w.acquire_lock(); print('locked', flush=True); time.sleep(60)", str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(WorkspaceLockedError, match="locked by another run"):
            ws.acquire_lock()
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the lock file stays behind
        holder.wait()
    assert (tmp_path / ".uhi.lock").exists()
    ws.acquire_lock()  # stale lock taken over
    ws.release_lock()


def test_sweep_removes_temporaries(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    (tmp_path / "compute").mkdir()
    stale = tmp_path / "compute" / ".panel.parquet.uhi-tmp-abc.parquet"
    stale.write_text("half")
    with ws.locked():
        pass
    assert not stale.exists()


def test_stage_skips_when_unchanged_and_reruns_when_config_changes(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    calls: list[int] = []

    def run(config, workspace):  # type: ignore[no-untyped-def]
        calls.append(config.grid.zoom)
        workspace.write_text(workspace.path("demo", "out.txt"), str(config.grid.zoom))
        return {"cells": 1}

    spec = StageSpec("demo", ("grid",), lambda c, w: [], run)
    cfg = build_config({}, environ={})
    assert not execute(spec, cfg, ws).skipped
    assert execute(spec, cfg, ws).skipped
    assert execute(spec, build_config({"forecast": {"horizon": 9}}, environ={}), ws).skipped
    assert not execute(spec, build_config({"grid": {"zoom": 18}}, environ={}), ws).skipped
    (tmp_path / "demo" / "out.txt").unlink()  # a missing output forces a re-run
    assert not execute(spec, build_config({"grid": {"zoom": 18}}, environ={}), ws).skipped
    assert calls == [19, 18, 18]
    rec = ws.stage_record("demo")
    assert rec and rec["outputs"] == {"demo/out.txt": 2} and rec["summary"] == {"cells": 1}


def test_stage_reruns_when_an_input_changes(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    src = tmp_path / "input.txt"
    src.write_text("a")
    spec = StageSpec(
        "s", (), lambda c, w: [src], lambda c, w: (w.write_text(w.path("s", "o"), "x"), {})[1]
    )
    cfg = build_config({}, environ={})
    execute(spec, cfg, ws)
    assert execute(spec, cfg, ws).skipped
    src.write_text("b")
    assert not execute(spec, cfg, ws).skipped


def test_corrupt_manifest_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{half")
    with pytest.raises(UhiError, match="corrupt"):
        Workspace(tmp_path).read_manifest()
    assert os.path.exists(tmp_path / "manifest.json")


def test_atomic_outputs_are_readable_by_others(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        target = Workspace(tmp_path).write_text(tmp_path / "out.txt", "x")
        assert oct(target.stat().st_mode & 0o777) == oct(0o644)
        os.umask(0o077)
        private = Workspace(tmp_path).write_text(tmp_path / "private.txt", "x")
        assert oct(private.stat().st_mode & 0o777) == oct(0o600)
    finally:
        os.umask(old)


def test_files_are_hashed_on_threads_to_the_reference_digests(tmp_path: Path) -> None:
    import hashlib

    sizes = {"empty": 0, "small": 5, "chunks": (3 << 20) + 7}  # 3 MiB + 7 crosses read chunks
    paths = []
    for name, size in sizes.items():
        p = tmp_path / name
        p.write_bytes(bytes(range(256)) * (size // 256) + bytes(size % 256))
        paths.append(p)
    got = Workspace(tmp_path).sha256_files(paths)
    assert got == {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}
    # constant written from the definition of SHA-256: the digest of no bytes
    assert got[tmp_path / "empty"] == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def test_a_settled_file_is_hashed_once_and_a_replaced_one_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    import uhi.workspace as workspace

    reads: list[Path] = []
    real = workspace.sha256_file
    monkeypatch.setattr(workspace, "sha256_file", lambda p: (reads.append(Path(p)), real(p))[1])
    monkeypatch.setattr(workspace, "_SETTLED_NS", 0)  # the file is old enough as soon as written
    ws = Workspace(tmp_path)
    p = tmp_path / "panel.parquet"
    p.write_bytes(b"abcd")
    first = ws.sha256_files([p])[p]
    assert ws.sha256_files([p])[p] == first and reads == [p]  # the second call did not read it
    tmp = tmp_path / "new"
    tmp.write_bytes(b"abce")  # same size, another inode: an atomic rewrite
    os.replace(tmp, p)
    assert ws.sha256_files([p])[p] == hashlib.sha256(b"abce").hexdigest() and reads == [p, p]


def test_a_file_changed_in_the_tick_it_was_hashed_is_read_again(tmp_path: Path) -> None:
    import hashlib

    ws = Workspace(tmp_path)
    p = tmp_path / "clip.tif"
    p.write_bytes(b"\x00\x01")
    st = p.stat()
    ws.sha256_files([p])
    with open(p, "r+b") as fh:  # same inode and size; the times put back as if in the same tick
        fh.write(b"\x00\x02")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert ws.sha256_files([p])[p] == hashlib.sha256(b"\x00\x02").hexdigest()


def test_run_summary_names_the_scenes_with_panel_rows_only(tmp_path: Path) -> None:
    import pandas as pd

    from uhi.pipeline import _scenes_used

    ws = Workspace(tmp_path)
    ws.panel.parent.mkdir(parents=True)
    # a categorical column is stored as a Parquet dictionary that also holds the unused category
    ids = pd.Categorical(["A", "B+C", None, "A"] * 3, categories=["A", "B+C", "UNUSED"])
    pd.DataFrame({"cell": ["x"] * 12, "scene_id": ids}).to_parquet(ws.panel, row_group_size=4)
    assert _scenes_used(ws) == ["A", "B", "C"]


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or __import__("platform").libc_ver()[0] != "glibc",
    reason="malloc_trim is glibc's",
)
def test_memory_a_stage_freed_is_returned_before_the_next_one() -> None:
    import numpy as np

    from uhi.pipeline import release_free_memory

    def rss_mb() -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    # 64 KB arrays live in malloc's heap (below its mmap threshold); one in fifty stays alive,
    # pinning the heap's top, so free() alone gives almost nothing back
    kept, freed = [], []
    for i in range(6000):
        (kept if i % 50 == 0 else freed).append(np.ones(8000))
    before = rss_mb()
    del freed
    release_free_memory()
    assert before - rss_mb() > 0.5 * 6000 * 49 / 50 * 8000 * 8 / 2**20  # over half of the ~360 MB

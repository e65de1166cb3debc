"""Issue 18 minor items: clear messages instead of tracebacks, containment, output integrity."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path

import pytest

from uhi.cli.main import main
from uhi.config import build_config
from uhi.errors import ConfigError, UhiError
from uhi.stages.runner import StageSpec, execute
from uhi.workspace import Workspace, remove_tree


def _main(argv: list[str]) -> int:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return int(exc.value.code or 0)


@pytest.mark.parametrize(
    ("code", "needle"),
    [
        (errno.ENOSPC, "free space on that filesystem"),
        (errno.EROFS, "the filesystem is read-only: set workdir (or -w) to a writable folder"),
    ],
)
def test_disk_full_and_read_only_exit_1_with_the_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], code: int, needle: str
) -> None:
    def refuse(*args: object, dir: str | None = None, **kwargs: object) -> tuple[int, str]:
        raise OSError(code, os.strerror(code), dir)

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # the atomic write's first step
    out = tmp_path / "demo"
    rc = _main(["demo", str(out), "--size-km", "0.5", "--years", "2019-2019", "--scenes-per-year", "1"])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert f"uhi: error: {os.strerror(code)}: {out}" in err and needle in err
    assert "Traceback" not in err


def test_unknown_os_errors_still_raise(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(*args: object, **kwargs: object) -> tuple[int, str]:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(tempfile, "mkstemp", broken)
    with pytest.raises(OSError, match="Input/output error"):  # a bug report keeps its traceback
        main(["demo", str(tmp_path / "d"), "--size-km", "0.5", "--years", "2019-2019", "--scenes-per-year", "1"])


def test_a_240_character_city_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"city\.name: must be at most 100 characters"):
        build_config({"city": {"name": "c" * 240}}, environ={})


@pytest.mark.parametrize(("text", "what"), [("[1, 2]", "a JSON list"), ('{"stages": []}', "'stages' is a list")])
def test_manifest_of_the_wrong_shape_is_a_clear_error(tmp_path: Path, text: str, what: str) -> None:
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(UhiError, match=rf"manifest\.json is corrupt \({what}.*delete it"):
        Workspace(tmp_path).stage_record("fetch")


def test_remove_tree_unlinks_a_symlink_and_keeps_its_target(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.mkdir()
    (target / "data.txt").write_text("keep")
    link = tmp_path / "link"
    link.symlink_to(target, target_is_directory=True)
    remove_tree(link)
    assert not link.exists() and not link.is_symlink()
    assert (target / "data.txt").read_text() == "keep"
    remove_tree(target)
    assert not target.exists()
    remove_tree(tmp_path / "absent")  # nothing to do


def test_atomic_write_refuses_a_folder_that_a_symlink_leads_outside(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    ws = Workspace(tmp_path / "ws")
    (tmp_path / "ws" / "compute").mkdir(parents=True)
    (tmp_path / "ws" / "compute" / "outputs").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UhiError, match=r"outside the workspace .*replace the link with a real folder"):
        ws.write_text(tmp_path / "ws" / "compute" / "outputs" / "a.geojson", "{}")
    assert list(outside.iterdir()) == []


def test_a_same_size_corruption_of_an_output_reruns_the_stage(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    calls: list[int] = []

    def run(config, workspace):  # type: ignore[no-untyped-def]
        calls.append(1)
        target = workspace.path("s", "clip.tif")
        if not target.exists():  # like fetch: a clip already there is kept
            workspace.write_bytes(target, b"\x00\x01\x02\x03")
        return {}

    spec = StageSpec("s", (), lambda c, w: [], run)
    cfg = build_config({}, environ={})
    execute(spec, cfg, ws)
    rec = ws.stage_record("s")
    # hash written in the test from the bytes above: sha256(00 01 02 03)
    assert rec and rec["output_sha256"] == {
        "s/clip.tif": "054edec1d0211f624fed0cbca9d4f9400b0e491c43742af2c5b0abebf0c990d8"
    }
    assert execute(spec, cfg, ws).skipped
    (tmp_path / "s" / "clip.tif").write_bytes(b"\x00\x01\xff\x03")  # same size, one byte off
    assert not execute(spec, cfg, ws).skipped
    assert (tmp_path / "s" / "clip.tif").read_bytes() == b"\x00\x01\x02\x03"
    assert calls == [1, 1]


def test_old_records_without_hashes_are_checked_by_size(tmp_path: Path) -> None:
    ws = Workspace(tmp_path)
    spec = StageSpec("s", (), lambda c, w: [], lambda c, w: (w.write_text(w.path("s", "o"), "ab"), {})[1])
    cfg = build_config({}, environ={})
    execute(spec, cfg, ws)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    del manifest["stages"]["s"]["output_sha256"]
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert execute(spec, cfg, ws).skipped

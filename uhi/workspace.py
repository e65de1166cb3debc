"""One folder per city run: artifact paths, atomic writes, manifest.json and the run lock."""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import hashlib
import json
import os
import re
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from uhi import __version__
from uhi.errors import UhiError, WorkspaceLockedError

__all__ = ["Workspace", "safe_component", "sha256_file", "STAGES"]

STAGES = ("fetch", "compute", "model", "exposure", "forecast")

_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_TMP_MARK = ".uhi-tmp-"


def _current_umask() -> int:
    """The process umask, read without changing it (os.umask would race with other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o022


def safe_component(name: str, *, max_len: int = 120) -> str:
    """Turn an untrusted name (a STAC item id, an asset key) into one safe path component.

    Anything but letters, digits, '.', '_' and '-' becomes '_'; leading dots are dropped so
    '..' or '.hidden' cannot appear. When the name had to change, a short hash of the original
    is appended so two different ids never collide on disk.
    """
    if not isinstance(name, str) or not name:
        raise UhiError(f"invalid identifier {name!r}: expected a non-empty string")
    cleaned = _SAFE.sub("_", name).lstrip(".")[:max_len]
    if cleaned != name or not cleaned:
        digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:10]
        cleaned = f"{cleaned or 'id'}-{digest}"
    return cleaned


def sha256_file(path: Path, *, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Workspace:
    """A run folder. Every path a stage reads or writes comes from here.

    Parameters
    ----------
    root
        The folder; created on first write.
    """

    MANIFEST = "manifest.json"
    LOCK = ".uhi.lock"

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()
        self._lock_fd: int | None = None

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    # -- paths -------------------------------------------------------------------------------

    def path(self, *parts: str) -> Path:
        """A path inside the workspace; refuses anything that would resolve outside it."""
        p = self.root.joinpath(*parts).resolve()
        if p != self.root and self.root not in p.parents:
            raise UhiError(f"refusing path outside the workspace: {'/'.join(parts)!r}")
        return p

    def stage_dir(self, stage: str) -> Path:
        """The folder a stage owns (fetch/, compute/, model/, forecast/, ...)."""
        return self.path(safe_component(stage))

    # well-known artifacts (the contract between stages; see ARCHITECTURE.md)
    @property
    def scenes_index(self) -> Path:
        """fetch -> compute: the selected scenes as a STAC ItemCollection (GeoJSON)."""
        return self.path("fetch", "scenes.geojson")

    def scene_dir(self, scene_id: str) -> Path:
        """fetch -> compute: clipped COGs of one scene, one file per canonical asset key."""
        return self.path("fetch", "scenes", safe_component(scene_id))

    def scene_asset(self, scene_id: str, asset_key: str) -> Path:
        """The clipped COG of one asset of one scene."""
        return self.scene_dir(scene_id) / f"{safe_component(asset_key)}.tif"

    @property
    def cells(self) -> Path:
        """compute -> model/forecast: one row per cell with geometry and static columns."""
        return self.path("compute", "cells.parquet")

    @property
    def panel(self) -> Path:
        """compute -> model/forecast: one row per (cell, date)."""
        return self.path("compute", "panel.parquet")

    @property
    def model_summary(self) -> Path:
        """model -> forecast/scenario: fitted coefficients, machine-readable."""
        return self.path("model", "summary.json")

    # -- atomic writes -------------------------------------------------------------------------

    @contextlib.contextmanager
    def atomic_path(self, target: Path) -> Iterator[Path]:
        """Yield a temporary path beside ``target``; on success fsync and rename it into place.

        A crash or an exception leaves no file at ``target`` (or the previous version of it);
        temporaries carry a marker so a later run sweeps them away.
        """
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}{_TMP_MARK}", suffix=target.suffix, dir=target.parent
        )
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            yield tmp
            if tmp.exists():
                # mkstemp creates 0600; outputs are for people, so honour the umask like open()
                os.chmod(tmp, 0o666 & ~_current_umask())
                with open(tmp, "rb") as fh:
                    os.fsync(fh.fileno())
                os.replace(tmp, target)
                _fsync_dir(target.parent)
            else:
                raise UhiError(f"nothing was written for {target}")
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    def write_bytes(self, target: Path, data: bytes) -> Path:
        """Atomically write bytes."""
        with self.atomic_path(target) as tmp:
            tmp.write_bytes(data)
        return target

    def write_text(self, target: Path, text: str) -> Path:
        """Atomically write UTF-8 text."""
        return self.write_bytes(target, text.encode("utf-8"))

    def write_json(self, target: Path, obj: Any) -> Path:
        """Atomically write JSON (sorted keys, stable output)."""
        return self.write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")

    def sweep_temporaries(self) -> int:
        """Remove temporaries left by a killed run; returns how many were removed."""
        if not self.root.exists():
            return 0
        n = 0
        for p in self.root.rglob(f"*{_TMP_MARK}*"):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                p.unlink()
                n += 1
        return n

    # -- lock ----------------------------------------------------------------------------------

    def acquire_lock(self) -> None:
        """Take the run lock or raise WorkspaceLockedError (exit 75).

        The lock is an advisory ``flock`` on ``.uhi.lock``: the kernel drops it when the holder
        dies, so a lock file left by a killed run is taken over without guessing from PIDs.
        """
        if self._lock_fd is not None:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / self.LOCK
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = os.pread(fd, 512, 0).decode().strip()
            os.close(fd)
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise WorkspaceLockedError(
                    f"workspace {self.root} is locked by another run ({holder or 'unknown holder'}); "
                    "wait for it to finish (cron will retry next time)"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid={os.getpid()} host={socket.gethostname()} since={_now()}\n".encode(), 0)
        self._lock_fd = fd
        self.sweep_temporaries()

    def release_lock(self) -> None:
        """Release the run lock (the lock file itself stays; it is harmless)."""
        if self._lock_fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._lock_fd, 0)
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)
        self._lock_fd = None

    @contextlib.contextmanager
    def locked(self) -> Iterator[Workspace]:
        """Hold the run lock for the duration of the block."""
        self.acquire_lock()
        try:
            yield self
        finally:
            self.release_lock()

    # -- manifest ------------------------------------------------------------------------------

    @property
    def manifest_path(self) -> Path:
        return self.root / self.MANIFEST

    def read_manifest(self) -> dict[str, Any]:
        """The manifest as a dict (an empty skeleton when there is none yet)."""
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"uhi_version": __version__, "stages": {}}
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UhiError(
                f"{self.manifest_path} is corrupt; delete it to recompute every stage"
            ) from None
        data.setdefault("stages", {})
        return data

    def record_stage(self, stage: str, record: dict[str, Any]) -> None:
        """Store one stage's record (fingerprint, inputs, outputs, timings) in the manifest."""
        manifest = self.read_manifest()
        manifest["uhi_version"] = __version__
        manifest["updated"] = _now()
        manifest["stages"][stage] = record
        self.write_json(self.manifest_path, manifest)

    def forget_stage(self, stage: str) -> None:
        """Drop a stage's record, so it runs again next time."""
        manifest = self.read_manifest()
        if manifest["stages"].pop(stage, None) is not None:
            self.write_json(self.manifest_path, manifest)

    def stage_record(self, stage: str) -> dict[str, Any] | None:
        """The manifest record of a finished stage, or None."""
        rec = self.read_manifest()["stages"].get(stage)
        return rec if isinstance(rec, dict) else None

    def relative(self, path: Path) -> str:
        """A workspace path as a POSIX string relative to the root (for the manifest)."""
        return Path(path).resolve().relative_to(self.root).as_posix()

    def checksums(self, paths: list[Path]) -> dict[str, str]:
        """SHA-256 of each existing file, keyed by its workspace-relative (or absolute) path."""
        out: dict[str, str] = {}
        for p in sorted({Path(p).resolve() for p in paths}):
            if not p.is_file():
                continue
            key = self.relative(p) if self.root in p.parents else str(p)
            out[key] = sha256_file(p)
        return out

    def files_under(self, folder: Path) -> list[Path]:
        """Every finished file below a folder (temporaries excluded), sorted."""
        if not folder.exists():
            return []
        return sorted(p for p in folder.rglob("*") if p.is_file() and _TMP_MARK not in p.name)


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX needs the directory entry flushed too)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

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
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from uhi import __version__
from uhi.errors import ConfigError, StaleWorkspaceError, UhiError, WorkspaceLockedError

__all__ = ["Workspace", "safe_component", "sha256_file", "remove_tree", "STAGES", "OWNED_FOLDERS"]

STAGES = ("fetch", "compute", "model", "exposure", "forecast")
_TMP_MARK = ".uhi-tmp-"
# every folder uhi writes below a workspace root: the only places the temporary sweep looks
OWNED_FOLDERS = (*STAGES, "report", "scenario", "plan")
# and the files it writes in the root itself (the manifest; a SageMaker shard's record)
_ROOT_TEMPORARIES = tuple(f".{name}{_TMP_MARK}" for name in ("manifest.json", "shard.json"))
# how far below a new workspace root to look for another run's manifest.json, and how many
# folders at most: enough for `-w nest` over `nest/inner`, bounded on a big data folder
_NESTED_SCAN_DEPTH = 3
_NESTED_SCAN_FOLDERS = 5000

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


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
    with open(path, "rb", buffering=0) as fh:
        buf = bytearray(chunk)
        view = memoryview(buf)
        while n := fh.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


# A digest is reused for a file whose identity and times are unchanged, but only when the file
# was last changed this long before it was hashed: file times tick coarsely (a few ms on Linux),
# so a rewrite within the same tick as the hash would keep them (git's "racily clean" rule).
_SETTLED_NS = 1_000_000_000
# hashlib and file reads release the GIL: the files of a stage are hashed on this many threads
_HASH_THREADS = 4


def _stat_key(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def remove_tree(path: Path) -> None:
    """Remove a file or folder without following symlinks: a link is unlinked, its target kept."""
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


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
        # path -> (stat key, SHA-256) of files hashed by this object: a stage's outputs are the
        # next stages' inputs, hashed once per run instead of once per reader
        self._digests: dict[Path, tuple[tuple[int, int, int, int, int], str]] = {}

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

    # well-known artifacts (the contract between stages; see docs/developing.md)
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
        target = self._contained(Path(target))
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

    def _contained(self, target: Path) -> Path:
        """``target`` with its folder resolved; refuses one that a symlink leads out of the root."""
        parent = target.parent.resolve()
        if parent != self.root and self.root not in parent.parents:
            raise UhiError(
                f"refusing to write {target}: its folder resolves to {parent}, outside the "
                f"workspace {self.root} (a symlink?); replace the link with a real folder"
            )
        return parent / target.name

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
        """Remove temporaries left by a killed run; returns how many were removed.

        Only the root's own files and the folders uhi writes (``OWNED_FOLDERS``) are looked at;
        symlinks are never followed and a folder holding another run's lock or manifest (a
        workspace nested below this one) is skipped, so another run's files are never touched.
        """
        if not self.root.is_dir():
            return 0
        n = 0
        for entry in os.scandir(self.root):
            if entry.is_file(follow_symlinks=False) and entry.name.startswith(_ROOT_TEMPORARIES):
                n += _unlink_quietly(Path(entry.path))
        for name in OWNED_FOLDERS:
            folder = self.root / name
            if folder.is_symlink() or not folder.is_dir():
                continue
            for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
                if dirpath != str(folder) and _holds_workspace(filenames):
                    dirnames.clear()
                    continue
                for fname in filenames:
                    if _TMP_MARK in fname:
                        n += _unlink_quietly(Path(dirpath) / fname)
        return n

    def check_location(self) -> None:
        """Refuse a root that is ``/``, the home folder, or that holds another workspace.

        Raises
        ------
        ConfigError
            The message names the folder and what to choose instead.
        """
        root = self.root
        if root == Path(root.anchor):
            raise ConfigError(
                f"refusing the filesystem root {root} as a workspace; "
                "set workdir (or -w) to a folder of its own, e.g. ./uhi-<city>"
            )
        with contextlib.suppress(RuntimeError, KeyError):
            if root == Path.home().resolve():
                raise ConfigError(
                    f"refusing the home folder {root} as a workspace; "
                    "set workdir (or -w) to a folder of its own, e.g. ~/uhi-<city>"
                )
        if root.exists() and not root.is_dir():
            raise ConfigError(
                f"workspace {root} is a file, not a folder; set workdir (or -w) to a folder"
            )
        nested = _find_nested_manifest(root)
        if nested is not None:
            raise ConfigError(
                f"workspace {root} contains another workspace ({nested}); "
                "give each run a folder of its own, not one that holds another run's folder"
            )

    # -- lock ----------------------------------------------------------------------------------

    def acquire_lock(self) -> None:
        """Take the run lock or raise WorkspaceLockedError (exit 75).

        The lock is an advisory ``flock`` on ``.uhi.lock``: the kernel drops it when the holder
        dies, so a lock file left by a killed run is taken over without guessing from PIDs.
        """
        if self._lock_fd is not None:
            return
        self.check_location()
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
        if not isinstance(data, dict):
            raise UhiError(
                f"{self.manifest_path} is corrupt (a JSON {type(data).__name__}, not an object); "
                "delete it to recompute every stage"
            )
        data.setdefault("stages", {})
        if not isinstance(data["stages"], dict):
            raise UhiError(
                f"{self.manifest_path} is corrupt ('stages' is a {type(data['stages']).__name__}, "
                "not an object); delete it to recompute every stage"
            )
        return data

    def record_stage(self, stage: str, record: dict[str, Any]) -> None:
        """Store one stage's record (fingerprint, inputs, outputs, timings) in the manifest."""
        manifest = self.read_manifest()
        manifest["uhi_version"] = __version__
        manifest["updated"] = _now()
        manifest["stages"][stage] = record
        _unfinished(manifest).pop(stage, None)
        if not manifest.get("unfinished"):
            manifest.pop("unfinished", None)
        self.write_json(self.manifest_path, manifest)

    def start_stage(self, stage: str) -> None:
        """Drop a stage's record and mark it unfinished until ``record_stage`` (one write).

        A run killed inside the stage leaves the mark: the stage's folder then mixes old and
        new files, which ``stale_stages`` reports to the commands that read it.
        """
        manifest = self.read_manifest()
        manifest["stages"].pop(stage, None)
        manifest["unfinished"] = {**_unfinished(manifest), stage: _now()}
        self.write_json(self.manifest_path, manifest)

    def stale_stages(self, stages: Sequence[str]) -> list[tuple[str, str]]:
        """Stages among ``stages`` whose outputs do not belong with the rest, and why.

        A stage is stale when its last run did not finish (killed or failed after it started),
        or when it recorded an input checksum that differs from what an earlier stage has
        recorded writing since (that stage ran again, this one did not). Workspaces without
        records (built by hand, or by an older uhi) have nothing to compare and are current.
        """
        manifest = self.read_manifest()
        records = {k: v for k, v in manifest["stages"].items() if isinstance(v, dict)}
        unfinished = _unfinished(manifest)
        stale: list[tuple[str, str]] = []
        for i, stage in enumerate(stages):
            if stage in unfinished:
                stale.append((stage, f"its last run (started {unfinished[stage]}) did not finish"))
                continue
            inputs = (records.get(stage) or {}).get("inputs") or {}
            for upstream in stages[:i]:
                written = (records.get(upstream) or {}).get("output_sha256") or {}
                if any(key in written and written[key] != digest for key, digest in inputs.items()):
                    stale.append((stage, f"it ran before {upstream} last ran"))
                    break
        return stale

    def require_current(self, stages: Sequence[str], reader: str) -> None:
        """Raise StaleWorkspaceError (exit 2) naming the stale stages and the command to fix it.

        Called by the commands that read several stages' outputs at once (``uhi report``,
        ``uhi scenario``), so they never combine, say, new compute outputs with an old model.
        """
        stale = self.stale_stages(stages)
        if stale:
            detail = "; ".join(f"{stage}: {why}" for stage, why in stale)
            raise StaleWorkspaceError(
                f"{reader} would mix outputs of different runs in {self.root} ({detail}); "
                f"run `uhi run CONFIG --from {stale[0][0]}` first"
            )

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
        files = [p for p in sorted({Path(p).resolve() for p in paths}) if p.is_file()]
        digests = self.sha256_files(files)
        return {(self.relative(p) if self.root in p.parents else str(p)): digests[p] for p in files}

    def sha256_files(self, paths: Sequence[Path]) -> dict[Path, str]:
        """SHA-256 of each file, hashed on a few threads; a file this object already hashed is
        not read again while its device, inode, size, modification and change times are the
        same and it had settled (unchanged for a second) when it was hashed."""
        out: dict[Path, str] = {}
        todo: list[tuple[Path, tuple[int, int, int, int, int]]] = []
        for p in paths:
            key = _stat_key(os.stat(p))
            known = self._digests.get(Path(p))
            if known is not None and known[0] == key:
                out[Path(p)] = known[1]
            else:
                todo.append((Path(p), key))
        if not todo:
            return out

        def one(item: tuple[Path, tuple[int, int, int, int, int]]) -> tuple[Path, str]:
            p, before = item
            started = time.time_ns()
            digest = sha256_file(p)
            after = _stat_key(os.stat(p))
            if after == before and max(after[3], after[4]) < started - _SETTLED_NS:
                self._digests[p] = (after, digest)
            return p, digest

        from concurrent.futures import ThreadPoolExecutor

        # largest first, so one big file does not finish alone at the end
        todo.sort(key=lambda item: -item[1][2])
        if len(todo) == 1:
            out.update([one(todo[0])])
        else:
            with ThreadPoolExecutor(max_workers=min(_HASH_THREADS, len(todo))) as pool:
                out.update(pool.map(one, todo))
        return out

    def files_under(self, folder: Path) -> list[Path]:
        """Every finished file below a folder (temporaries excluded), sorted."""
        if not folder.exists():
            return []
        return sorted(p for p in folder.rglob("*") if p.is_file() and _TMP_MARK not in p.name)


def _unfinished(manifest: dict[str, Any]) -> dict[str, str]:
    marks = manifest.get("unfinished")
    return marks if isinstance(marks, dict) else {}


def _unlink_quietly(path: Path) -> int:
    with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
        path.unlink()
        return 1
    return 0


def _holds_workspace(filenames: list[str]) -> bool:
    return Workspace.MANIFEST in filenames or Workspace.LOCK in filenames


def _find_nested_manifest(root: Path) -> Path | None:
    """The first manifest.json of another workspace below ``root`` (bounded walk, no symlinks)."""
    if not root.is_dir():
        return None
    level = [root]
    seen = 0
    for _ in range(_NESTED_SCAN_DEPTH):
        below: list[Path] = []
        for folder in level:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if not entry.is_dir(follow_symlinks=False) or entry.name.startswith("."):
                    continue
                sub = Path(entry.path)
                if sub.parent == root and entry.name == "fetch":
                    continue  # thousands of scene folders, never a workspace
                if (sub / Workspace.MANIFEST).is_file():
                    return sub / Workspace.MANIFEST
                below.append(sub)
                seen += 1
                if seen >= _NESTED_SCAN_FOLDERS:
                    return None
        level = below
    return None


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (POSIX needs the directory entry flushed too)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

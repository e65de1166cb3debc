"""SageMaker Processing entrypoint: config from /opt/ml, scenes sharded across hosts, then merged.

Layout (``/opt/ml`` is ``$UHI_PROCESSING_ROOT`` when set, so tests simulate hosts in temp folders):

``processing/input/config/*.yaml``
    The run config (exactly one YAML file); relative paths in it resolve against its folder,
    so data channels mounted under ``processing/input/<channel>`` are referenced as
    ``../<channel>/...``.
``config/resourceconfig.json``
    ``{"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}``, written by SageMaker.
``processing/output/``
    A one-host job (or the merge job) writes the whole workspace here. A host of a
    multi-host job writes only its shard, ``processing/output/shards/<host>/``.
``processing/input/shards/<host>/``
    The merge job's input: every shard of the multi-host job (one S3 prefix mounted here).
"""

from __future__ import annotations

import json
import logging
import os
import posixpath
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from uhi.config import Config, load_config
from uhi.errors import ConfigError, InputError, NoDataError
from uhi.pipeline import RunReport, check_run_size, run_pipeline
from uhi.workspace import STAGES, Workspace, safe_component, sha256_file

__all__ = [
    "ROOT_ENV",
    "DEFAULT_ROOT",
    "ProcessingLayout",
    "Hosts",
    "read_hosts",
    "shard_items",
    "load_processing_config",
    "run_shard",
    "merge_shards",
    "run_processing",
]

log = logging.getLogger("uhi.processing")

ROOT_ENV = "UHI_PROCESSING_ROOT"
DEFAULT_ROOT = Path("/opt/ml")
SHARD_RECORD = "shard.json"
# Sections that decide which scenes exist and how they are read: every shard must agree.
_SHARD_SECTIONS = ("city", "time", "search", "fetch")

# list_scenes(config) -> items with an ``id`` (pystac.Item); fetch_share(config, ws, items)
ShareFetcher = Callable[[Config, Workspace, Sequence[Any]], dict[str, Any]]
SceneLister = Callable[[Config], Sequence[Any]]


@dataclass(frozen=True)
class ProcessingLayout:
    """Where a Processing container finds its config and writes its results."""

    root: Path

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] | None = None) -> ProcessingLayout:
        """``$UHI_PROCESSING_ROOT`` (tests, other runtimes) or SageMaker's ``/opt/ml``."""
        env = os.environ if environ is None else environ
        return cls(Path(env.get(ROOT_ENV) or DEFAULT_ROOT).expanduser().resolve())

    @property
    def config_dir(self) -> Path:
        return self.root / "processing" / "input" / "config"

    @property
    def shards_input(self) -> Path:
        return self.root / "processing" / "input" / "shards"

    @property
    def output(self) -> Path:
        return self.root / "processing" / "output"

    @property
    def resource_config(self) -> Path:
        return self.root / "config" / "resourceconfig.json"

    def shard_output(self, host: str) -> Path:
        return self.output / "shards" / safe_component(host)


@dataclass(frozen=True)
class Hosts:
    """This container's place among the job's instances."""

    current: str
    hosts: tuple[str, ...]

    @property
    def index(self) -> int:
        return self.hosts.index(self.current)

    @property
    def count(self) -> int:
        return len(self.hosts)


def read_hosts(path: Path) -> Hosts:
    """Read ``resourceconfig.json``; a missing file means one host (a local run).

    Raises
    ------
    InputError
        The file is unreadable or ``current_host`` is not among ``hosts``.
    """
    if not path.is_file():
        return Hosts("algo-1", ("algo-1",))
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        current = data["current_host"]
        hosts = tuple(data["hosts"])
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise InputError(
            f"{path} is not a SageMaker resource config ({exc}); it needs "
            '{"current_host": "algo-1", "hosts": ["algo-1", ...]}'
        ) from None
    if not hosts or not all(isinstance(h, str) and h for h in hosts) or len(set(hosts)) != len(hosts):
        raise InputError(f"{path}: hosts must be distinct non-empty names, got {list(hosts)!r}")
    if current not in hosts:
        raise InputError(f"{path}: current_host {current!r} is not among hosts {list(hosts)!r}")
    return Hosts(current, hosts)


def shard_items(ids: Sequence[str], hosts: Hosts) -> list[str]:
    """This host's share of the scene ids: every ``count``-th of the sorted ids.

    Every host sorts the same list the same way, so the shares are disjoint and cover all ids
    without any coordination. Dealing round-robin over ids sorted by name (which starts with
    the acquisition date after the sensor and path/row) spreads years and sensors evenly.
    """
    ordered = sorted(set(ids))
    return ordered[hosts.index :: hosts.count]


def load_processing_config(layout: ProcessingLayout, *, workdir: Path, set_values: Sequence[str] = ()) -> Config:
    """The run config from ``processing/input/config/*.yaml`` with its workdir set."""
    from uhi.config import parse_set_option

    if not layout.config_dir.is_dir():
        raise ConfigError(
            f"no config folder {layout.config_dir}: mount the config as the 'config' processing "
            f"input (destination {layout.config_dir})"
        )
    found = sorted(p for p in layout.config_dir.iterdir() if p.suffix in (".yaml", ".yml"))
    if len(found) != 1:
        raise ConfigError(
            f"expected exactly one YAML config in {layout.config_dir}, found {len(found)} "
            f"({', '.join(p.name for p in found) or 'none'}); mount a single config file"
        )
    overrides: dict[str, Any] = parse_set_option(set_values)
    overrides["workdir"] = str(workdir)
    return load_config(found[0], overrides=overrides)


def _default_lister(config: Config) -> list[Any]:
    from uhi.search import search_scenes

    return list(search_scenes(config))


def _default_fetcher(config: Config, ws: Workspace, items: Sequence[Any]) -> dict[str, Any]:
    """Clip the items' assets exactly as the fetch stage does (same tasks, same files)."""
    from collections import Counter

    from uhi.aoi import load_aoi
    from uhi.parallel import active_client, map_tasks
    from uhi.stages.fetch import fetch_asset, plan_tasks

    aoi = load_aoi(config.city)
    tasks = plan_tasks(config, ws, list(items), aoi.geometry)
    records = map_tasks(
        fetch_asset, tasks, threads=config.fetch.workers, client=active_client(), desc="fetch shard"
    )
    status = Counter(r["status"] for r in records)
    return {"assets": len(records), **{f"assets_{k}": n for k, n in sorted(status.items())}}


def run_shard(
    config: Config,
    hosts: Hosts,
    *,
    list_scenes: SceneLister | None = None,
    fetch_share: ShareFetcher | None = None,
) -> dict[str, Any]:
    """Fetch this host's share of the scenes into the shard workspace (``config.workdir``).

    The shard is a partial workspace (``fetch/scenes/<id>/*.tif``) plus ``shard.json`` naming
    the host, all hosts, its scene ids, the checksum of every file and the hash of the config
    sections that decide the scenes, so the merge can refuse shards of a different job.
    ``shard.json`` is written last: a shard without it is unfinished.
    """
    ws = Workspace(config.resolved_workdir())
    with ws.locked():
        # a re-run host (SageMaker retry) is unfinished until it writes a fresh record
        ws.path(SHARD_RECORD).unlink(missing_ok=True)
        by_id = {item.id: item for item in (list_scenes or _default_lister)(config)}
        if not by_id:
            raise NoDataError("no Landsat scenes matched the config; nothing to shard")
        all_ids = sorted(by_id)
        share = shard_items(all_ids, hosts)
        log.info(
            "host %s (%d of %d): %d of %d scenes",
            hosts.current, hosts.index + 1, hosts.count, len(share), len(all_ids),
        )
        items = [by_id[i] for i in share]
        summary = (fetch_share or _default_fetcher)(config, ws, items) if items else {}
        files = {
            ws.relative(p): sha256_file(p)
            for p in ws.files_under(ws.path("fetch", "scenes"))
        }
        record = {
            "host": hosts.current,
            "hosts": list(hosts.hosts),
            "scene_ids": share,
            "all_scene_ids": all_ids,
            "files": files,
            "config_hash": config.section_hash(*_SHARD_SECTIONS),
            "summary": summary,
        }
        ws.write_json(ws.path(SHARD_RECORD), record)
    return record


def _copy_atomic(ws: Workspace, src: Path, target: Path) -> None:
    with ws.atomic_path(target) as tmp:
        shutil.copyfile(src, tmp)


def _is_scene_file(rel: object) -> bool:
    """``fetch/scenes/<scene>/<file>`` exactly: relative, no '..' or '.', nothing deeper.

    Checked on the normalised path: a prefix test alone passes
    ``fetch/scenes/../../report/report.html`` (issue 18).
    """
    if not isinstance(rel, str) or "\\" in rel or "\x00" in rel:
        return False
    parts = rel.split("/")
    return (
        len(parts) == 4
        and parts[:2] == ["fetch", "scenes"]
        and all(p and p not in (".", "..") for p in parts)
        and posixpath.normpath(rel) == rel
    )


def merge_shards(config: Config, shard_dirs: Sequence[Path]) -> dict[str, Any]:
    """Copy every finished shard's scene files into the merge workspace (``config.workdir``).

    Checks that the shards come from one job (same hosts, same config sections, every host
    present, checksums intact) before copying anything; a file already present with the same
    checksum is kept, so a killed merge restarts cheaply.

    Raises
    ------
    InputError
        A shard is missing, unfinished, corrupt or from another job.
    """
    records: dict[str, tuple[Path, dict[str, Any]]] = {}
    for folder in shard_dirs:
        rec_path = folder / SHARD_RECORD
        if not rec_path.is_file():
            raise InputError(f"shard {folder} has no {SHARD_RECORD}: that host did not finish; re-run it")
        try:
            rec = json.loads(rec_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise InputError(f"{rec_path} is corrupt; re-run that host") from None
        records[str(rec.get("host"))] = (folder, rec)
    if not records:
        raise InputError("no shards to merge: mount the shards as processing/input/shards/<host>/")
    expected_hash = config.section_hash(*_SHARD_SECTIONS)
    hosts = {tuple(rec.get("hosts") or ()) for _, rec in records.values()}
    if len(hosts) != 1:
        raise InputError(f"shards come from different jobs (host lists {sorted(hosts)}); merge one job's shards")
    (job_hosts,) = hosts
    missing = sorted(set(job_hosts) - set(records))
    if missing:
        raise InputError(f"shards missing for host(s) {', '.join(missing)}; wait for them or re-run them")
    # every check before the first copy: a bad shard leaves the merge workspace untouched
    plan: list[tuple[Path, str, str]] = []
    for host, (folder, rec) in sorted(records.items()):
        if rec.get("config_hash") != expected_hash:
            raise InputError(
                f"shard of host {host} was made with a different city/time/search/fetch "
                "config; merge with the config the shards were made with"
            )
        for rel, digest in sorted((rec.get("files") or {}).items()):
            if not _is_scene_file(rel):
                raise InputError(
                    f"shard of host {host} lists a path outside its scenes: {rel!r}; "
                    "a shard holds fetch/scenes/<scene>/<file> only: re-run that host"
                )
            src = (folder / rel).resolve()
            if folder.resolve() not in src.parents:
                raise InputError(f"shard of host {host} lists a path outside its scenes: {rel!r}")
            if not src.is_file() or sha256_file(src) != digest:
                raise InputError(f"shard of host {host}: {rel} is missing or corrupt; re-run that host")
            plan.append((src, rel, digest))
    all_ids = {tuple(rec.get("all_scene_ids") or ()) for _, rec in records.values()}
    dealt = sorted(i for _, rec in records.values() for i in rec.get("scene_ids") or [])
    if len(all_ids) != 1 or dealt != sorted(next(iter(all_ids))):
        raise InputError(
            "the shards' scene lists disagree (the archive changed between hosts' searches); "
            "re-run the sharded job"
        )
    ws = Workspace(config.resolved_workdir())
    copied = kept = 0
    with ws.locked():
        for src, rel, digest in plan:
            target = ws.path(*Path(rel).parts)
            if target.is_file() and sha256_file(target) == digest:
                kept += 1
                continue
            _copy_atomic(ws, src, target)
            copied += 1
    scene_ids = sorted(i for _, rec in records.values() for i in rec.get("scene_ids") or [])
    log.info("merged %d shard(s): %d scenes, %d files copied, %d kept", len(records), len(scene_ids), copied, kept)
    return {"shards": len(records), "scenes": len(scene_ids), "files_copied": copied, "files_kept": kept}


def _shard_dirs(layout: ProcessingLayout) -> list[Path]:
    found: list[Path] = []
    for base in (layout.shards_input, layout.output / "shards"):
        if base.is_dir():
            found.extend(sorted(p for p in base.iterdir() if p.is_dir()))
    return found


def run_processing(
    layout: ProcessingLayout,
    *,
    merge: bool = False,
    set_values: Sequence[str] = (),
    stages: Sequence[str] = STAGES,
    list_scenes: SceneLister | None = None,
    fetch_share: ShareFetcher | None = None,
) -> dict[str, Any]:
    """The container entrypoint's work: one-host run, one shard, or the merge.

    Parameters
    ----------
    layout
        The ``/opt/ml`` tree (or a simulated one).
    merge
        Merge the shards found under ``processing/input/shards/`` (and ``processing/output/
        shards/`` on a shared filesystem), then run ``stages`` on the merged workspace.
    set_values
        ``KEY=VALUE`` config overrides (the job's container arguments).

    Returns
    -------
    dict
        ``mode`` (``single``, ``shard`` or ``merge``) and what was done.
    """
    hosts = read_hosts(layout.resource_config)
    if merge:
        config = load_processing_config(layout, workdir=layout.output, set_values=set_values)
        merged = merge_shards(config, _shard_dirs(layout))
        report = run_pipeline(config, stages)
        return {"mode": "merge", "merge": merged, **_report(report)}
    if hosts.count == 1:
        config = load_processing_config(layout, workdir=layout.output, set_values=set_values)
        return {"mode": "single", **_report(run_pipeline(config, stages))}
    config = load_processing_config(layout, workdir=layout.shard_output(hosts.current), set_values=set_values)
    check_run_size(config, ("fetch",))
    record = run_shard(config, hosts, list_scenes=list_scenes, fetch_share=fetch_share)
    return {
        "mode": "shard",
        "host": hosts.current,
        "hosts": list(hosts.hosts),
        "scenes": record["scene_ids"],
        "workspace": str(config.resolved_workdir()),
    }


def _report(report: RunReport) -> dict[str, Any]:
    return report.as_dict()

"""Run one stage through the workspace: fingerprint, skip-if-unchanged, manifest record."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uhi import __version__
from uhi.config import Config
from uhi.workspace import Workspace

__all__ = ["StageSpec", "StageOutcome", "execute", "fingerprint"]

log = logging.getLogger("uhi.stages")


@dataclass(frozen=True)
class StageSpec:
    """What the runner needs to know about a stage.

    Attributes
    ----------
    name
        Stage name; also the folder it owns in the workspace.
    config_sections
        Config sections whose values change the stage's outputs (hashed into the fingerprint).
    inputs
        Files the stage reads, given the workspace and config (artifacts of earlier stages and
        user files such as the buildings layer). Their checksums enter the fingerprint.
    run
        ``run(config, workspace) -> dict`` doing the work; returns a JSON-able summary.
    listings
        Optional: inputs too large to checksum (a folder of scene GeoTIFFs), given as
        ``{label: text}`` where the text lists them by name, size and modification time;
        the text's hash enters the fingerprint and the manifest under the label.
    """

    name: str
    config_sections: tuple[str, ...]
    inputs: Callable[[Config, Workspace], list[Path]]
    run: Callable[[Config, Workspace], dict[str, Any]]
    listings: Callable[[Config, Workspace], dict[str, str]] | None = None


@dataclass
class StageOutcome:
    """What happened when a stage was asked to run.

    Attributes
    ----------
    name, skipped, summary, outputs
        The stage, whether the manifest let it be skipped, what it returned, its output files.
    seconds
        Wall time of the stage's own work (``run``).
    cpu_seconds
        CPU time of this process (all its threads) during ``run``; Dask workers not included.
    bookkeeping_seconds
        Wall time the runner spent around it: input checksums, then output checksums and the
        manifest record (or, when skipped, the check of the recorded outputs).
    peak_rss_mb
        Peak resident memory of this process so far, MiB, read when the stage ended: the stage
        that raises it is the one that holds the run's peak.
    """

    name: str
    skipped: bool
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    cpu_seconds: float = 0.0
    bookkeeping_seconds: float = 0.0
    peak_rss_mb: float = 0.0


def peak_rss_mb() -> float:
    """Peak resident memory of this process and of its finished children, MiB."""
    import resource
    import sys

    # ru_maxrss is KiB on Linux and bytes on macOS
    scale = 1.0 if sys.platform == "darwin" else 1024.0
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) * scale / 2**20


def fingerprint(spec: StageSpec, config: Config, ws: Workspace) -> tuple[str, dict[str, str]]:
    """Hash of the stage's config sections, package version, input checksums and listings."""
    inputs = ws.checksums(spec.inputs(config, ws))
    if spec.listings is not None:
        for label, text in spec.listings(config, ws).items():
            inputs[label] = hashlib.sha256(text.encode()).hexdigest()
    h = hashlib.sha256()
    h.update(spec.name.encode())
    h.update(__version__.encode())
    h.update(config.section_hash(*spec.config_sections).encode())
    for key in sorted(inputs):
        h.update(f"{key}={inputs[key]}\n".encode())
    return h.hexdigest(), inputs


def _changed_outputs(ws: Workspace, record: dict[str, Any]) -> list[str]:
    """Recorded outputs that are gone or whose size or SHA-256 differs from the record.

    The hash catches a same-size corruption (a flipped block in a clip) that a size check
    misses; records written before hashes were kept are checked by size only.
    """
    outputs = record.get("outputs") or {}
    hashes = record.get("output_sha256") or {}
    changed = []
    to_hash: dict[Path, str] = {}
    for rel, size in outputs.items():
        p = ws.root / rel
        if p.is_symlink() or not p.is_file() or p.stat().st_size != size:
            changed.append(rel)
        elif rel in hashes:
            to_hash[p] = rel
    digests = ws.sha256_files(list(to_hash))
    changed += [rel for p, rel in to_hash.items() if digests[p] != hashes[rel]]
    return sorted(changed)


def execute(spec: StageSpec, config: Config, ws: Workspace, *, force: bool = False) -> StageOutcome:
    """Run a stage unless the manifest shows it already ran on identical inputs.

    The caller holds the workspace lock. The stage is recorded as done only after it returned,
    so a killed run leaves no record and the stage runs again next time.
    """
    begun = time.perf_counter()
    fp, inputs = fingerprint(spec, config, ws)
    record = ws.stage_record(spec.name)
    if not force and record and record.get("fingerprint") == fp:
        changed = _changed_outputs(ws, record)
        if not changed:
            log.info("%s: inputs unchanged since %s, nothing to do", spec.name, record.get("finished"))
            return StageOutcome(
                spec.name, True, 0.0, record.get("summary", {}), list(record["outputs"]),
                bookkeeping_seconds=time.perf_counter() - begun, peak_rss_mb=peak_rss_mb(),
            )
        # an output edited or corrupted since it was written is removed, so the stage writes
        # it afresh (fetch would otherwise keep a same-size corrupted clip as valid)
        log.warning(
            "%s: %d output(s) changed since the stage wrote them (%s); running it again",
            spec.name, len(changed), ", ".join(changed[:3]) + (" ..." if len(changed) > 3 else ""),
        )
        for rel in changed:
            stale = ws.path(*Path(rel).parent.parts) / Path(rel).name  # contained, link not followed
            if stale.is_symlink() or stale.is_file():
                stale.unlink()
    ws.start_stage(spec.name)
    started = time.time()
    checked = time.perf_counter() - begun
    log.info("%s: running", spec.name)
    cpu = time.process_time()
    summary = spec.run(config, ws) or {}
    cpu = time.process_time() - cpu
    seconds = time.time() - started
    recording = time.perf_counter()
    files = ws.files_under(ws.stage_dir(spec.name))
    outputs = {ws.relative(p): p.stat().st_size for p in files}
    digests = ws.sha256_files(files)
    output_sha256 = {ws.relative(p): digests[p] for p in files}
    ws.record_stage(
        spec.name,
        {
            "fingerprint": fp,
            "config_hash": config.section_hash(*spec.config_sections),
            "inputs": inputs,
            "outputs": outputs,
            "output_sha256": output_sha256,
            "summary": summary,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(seconds, 3),
            "uhi_version": __version__,
        },
    )
    bookkeeping = checked + time.perf_counter() - recording
    log.info("%s: done in %.1f s (%.1f s CPU; %.1f s checksums)", spec.name, seconds, cpu, bookkeeping)
    return StageOutcome(
        spec.name, False, seconds, summary, sorted(outputs),
        cpu_seconds=cpu, bookkeeping_seconds=bookkeeping, peak_rss_mb=peak_rss_mb(),
    )

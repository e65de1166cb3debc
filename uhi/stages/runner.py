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
from uhi.workspace import Workspace, sha256_file

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
    """What happened when a stage was asked to run."""

    name: str
    skipped: bool
    seconds: float
    summary: dict[str, Any] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)


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
    for rel, size in outputs.items():
        p = ws.root / rel
        if p.is_symlink() or not p.is_file() or p.stat().st_size != size:
            changed.append(rel)
        elif rel in hashes and sha256_file(p) != hashes[rel]:
            changed.append(rel)
    return changed


def execute(spec: StageSpec, config: Config, ws: Workspace, *, force: bool = False) -> StageOutcome:
    """Run a stage unless the manifest shows it already ran on identical inputs.

    The caller holds the workspace lock. The stage is recorded as done only after it returned,
    so a killed run leaves no record and the stage runs again next time.
    """
    fp, inputs = fingerprint(spec, config, ws)
    record = ws.stage_record(spec.name)
    if not force and record and record.get("fingerprint") == fp:
        changed = _changed_outputs(ws, record)
        if not changed:
            log.info("%s: inputs unchanged since %s, nothing to do", spec.name, record.get("finished"))
            return StageOutcome(spec.name, True, 0.0, record.get("summary", {}), list(record["outputs"]))
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
    log.info("%s: running", spec.name)
    summary = spec.run(config, ws) or {}
    seconds = time.time() - started
    files = ws.files_under(ws.stage_dir(spec.name))
    outputs = {ws.relative(p): p.stat().st_size for p in files}
    output_sha256 = {ws.relative(p): sha256_file(p) for p in files}
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
    log.info("%s: done in %.1f s", spec.name, seconds)
    return StageOutcome(spec.name, False, seconds, summary, sorted(outputs))

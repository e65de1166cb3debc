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


def _outputs_intact(ws: Workspace, record: dict[str, Any]) -> bool:
    outputs = record.get("outputs") or {}
    for rel, size in outputs.items():
        p = ws.root / rel
        if not p.is_file() or p.stat().st_size != size:
            return False
    return True


def execute(spec: StageSpec, config: Config, ws: Workspace, *, force: bool = False) -> StageOutcome:
    """Run a stage unless the manifest shows it already ran on identical inputs.

    The caller holds the workspace lock. The stage is recorded as done only after it returned,
    so a killed run leaves no record and the stage runs again next time.
    """
    fp, inputs = fingerprint(spec, config, ws)
    record = ws.stage_record(spec.name)
    if not force and record and record.get("fingerprint") == fp and _outputs_intact(ws, record):
        log.info("%s: inputs unchanged since %s, nothing to do", spec.name, record.get("finished"))
        return StageOutcome(spec.name, True, 0.0, record.get("summary", {}), list(record["outputs"]))
    ws.forget_stage(spec.name)
    started = time.time()
    log.info("%s: running", spec.name)
    summary = spec.run(config, ws) or {}
    seconds = time.time() - started
    outputs = {ws.relative(p): p.stat().st_size for p in ws.files_under(ws.stage_dir(spec.name))}
    ws.record_stage(
        spec.name,
        {
            "fingerprint": fp,
            "config_hash": config.section_hash(*spec.config_sections),
            "inputs": inputs,
            "outputs": outputs,
            "summary": summary,
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(seconds, 3),
            "uhi_version": __version__,
        },
    )
    log.info("%s: done in %.1f s", spec.name, seconds)
    return StageOutcome(spec.name, False, seconds, summary, sorted(outputs))

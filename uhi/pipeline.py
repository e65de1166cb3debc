"""Chain the stages in one workspace: full runs, incremental (cron) runs and the run summary."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uhi import __version__
from uhi.config import Config
from uhi.errors import ConfigError, NoDataError
from uhi.parallel import dask_client
from uhi.stages.runner import StageOutcome, StageSpec, execute, peak_rss_mb
from uhi.workspace import STAGES, Workspace

__all__ = [
    "RunReport",
    "stage_range",
    "run_pipeline",
    "run_incremental",
    "known_scene_days",
    "find_new_scenes",
    "run_summary",
    "assemble_city_gpkg",
    "check_run_size",
]

log = logging.getLogger("uhi.pipeline")

SpecLookup = Callable[[str], StageSpec]

# Files people open; everything else under a stage folder is an intermediate artifact.
_OUTPUT_SUFFIXES = (".geojson", ".xlsx", ".tif", ".gpkg", ".png", ".html", ".csv")


@dataclass
class RunReport:
    """What a pipeline run did, for the final summary (text or ``--json``).

    Attributes
    ----------
    workspace
        The run folder.
    outcomes
        One ``StageOutcome`` per stage asked for, in order (skipped ones included).
    nothing_new
        True when an incremental run found no scene newer than the last run and did no work.
    new_scenes
        Ids of the scenes an incremental run found after the last known acquisition day.
    seconds_total
        Wall time of the whole run.
    gpkg_seconds
        Wall time of assembling ``<workspace>/<city>.gpkg`` after the stages (0 when not done).
    peak_rss_mb
        Peak resident memory of this process (and its finished children), MiB.
    summary
        Scenes used and dropped, cells, models and output paths read back from the artifacts.
    """

    workspace: Path
    outcomes: list[StageOutcome] = field(default_factory=list)
    nothing_new: bool = False
    new_scenes: list[str] = field(default_factory=list)
    seconds_total: float = 0.0
    gpkg_seconds: float = 0.0
    peak_rss_mb: float = 0.0
    summary: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-able view (the ``--json`` output)."""
        return {
            "workspace": str(self.workspace),
            "nothing_new": self.nothing_new,
            "new_scenes": list(self.new_scenes),
            "seconds_total": round(self.seconds_total, 3),
            "gpkg_seconds": round(self.gpkg_seconds, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "stages": [
                {
                    "name": o.name,
                    "skipped": o.skipped,
                    "seconds": round(o.seconds, 3),
                    "cpu_seconds": round(o.cpu_seconds, 3),
                    "bookkeeping_seconds": round(o.bookkeeping_seconds, 3),
                    "peak_rss_mb": round(o.peak_rss_mb, 1),
                    "summary": o.summary,
                }
                for o in self.outcomes
            ],
            **self.summary,
        }


def stage_range(from_stage: str = STAGES[0], to_stage: str = STAGES[-1]) -> list[str]:
    """The stages from ``from_stage`` to ``to_stage`` inclusive, in pipeline order."""
    for flag, name in (("--from", from_stage), ("--to", to_stage)):
        if name not in STAGES:
            raise ConfigError(f"{flag} {name!r} is not a stage; choose from {', '.join(STAGES)}")
    i, j = STAGES.index(from_stage), STAGES.index(to_stage)
    if j < i:
        raise ConfigError(f"--to {to_stage} comes before --from {from_stage}; swap them")
    return list(STAGES[i : j + 1])


def _default_specs(name: str) -> StageSpec:
    from uhi.stages import get_spec

    return get_spec(name)


def _execute_stages(
    config: Config,
    ws: Workspace,
    names: Sequence[str],
    *,
    force: bool,
    specs: SpecLookup,
    force_stages: Sequence[str] = (),
) -> tuple[list[StageOutcome], float]:
    """Run stages in order under an already-held lock, sharing one Dask client if configured.

    Returns the outcomes and the seconds spent assembling the city GeoPackage afterwards.
    """
    outcomes = []
    with dask_client(config.dask.address, config.dask.workers):
        for name in names:
            again = force or name in force_stages
            outcomes.append(execute(specs(name), config, ws, force=again))
            if not outcomes[-1].skipped:
                release_free_memory()
    started = time.perf_counter()
    if any(not o.skipped for o in outcomes) or not city_gpkg_path(config, ws).is_file():
        assemble_city_gpkg(config, ws)
    return outcomes, time.perf_counter() - started


def release_free_memory() -> None:
    """Give memory a finished stage freed back to the system before the next stage starts.

    The stages of one ``uhi run`` share a process: without this, the allocator keeps the free
    pages of compute's arrays (glibc's ``malloc_trim`` returns them), and the next stage's memory
    stacks on top of them. Does nothing where glibc is not the C library.
    """
    import gc

    from uhi.heap import return_free_heap

    gc.collect()
    return_free_heap()


def city_gpkg_path(config: Config, ws: Workspace) -> Path:
    """``<workspace>/<city>.gpkg``, the one GeoPackage people open in QGIS."""
    return ws.path(f"{config.city.name}.gpkg")


def assemble_city_gpkg(config: Config, ws: Workspace) -> Path | None:
    """Build ``<workspace>/<city>.gpkg`` from the stages' own GeoPackages (call under the lock).

    Each stage (and ``uhi scenario``) writes its layers to ``<stage>/<stage>.gpkg`` inside its
    own folder; this step, outside any stage, copies them into the city's file, so stages still
    meet only through their own artifacts. Nothing is written when ``gpkg`` is not in
    ``outputs.formats`` or no stage wrote a GeoPackage yet.
    """
    from uhi.writers.gpkg import assemble_gpkg, gpkg_sources

    if "gpkg" not in config.outputs.formats:
        return None
    order = (*STAGES, "scenario")
    return assemble_gpkg(city_gpkg_path(config, ws), gpkg_sources(ws.root, order))


def check_run_size(config: Config, stages: Sequence[str] = STAGES) -> None:
    """Refuse (ConfigError, exit 2) an AOI over ``grid.max_cells`` before any work or lock.

    Only runs that build cells or read pixels are checked, and only when an AOI is configured
    (without one the fetch stage says so itself).
    """
    if not {"fetch", "compute"} & set(stages):
        return
    if config.city.aoi is None and config.city.bbox is None:
        return
    from uhi.aoi import check_cell_budget, load_aoi

    check_cell_budget(load_aoi(config.city), config.grid.zoom, config.grid.max_cells)


def run_pipeline(
    config: Config,
    stages: Sequence[str] = STAGES,
    *,
    force: bool = False,
    specs: SpecLookup | None = None,
) -> RunReport:
    """Run ``stages`` in order in the config's workspace, under its lock.

    Parameters
    ----------
    config
        The frozen run configuration; its ``workdir`` is the workspace.
    stages
        Stage names in pipeline order (see ``stage_range``).
    force
        Run stages even when the manifest shows unchanged inputs.
    specs
        Stage name -> StageSpec (tests pass small fake stages); the real stages by default.

    Returns
    -------
    RunReport
        Outcomes, timings and the summary read back from the artifacts.

    Raises
    ------
    WorkspaceLockedError
        Another live run holds the workspace (exit 75).
    """
    started = time.perf_counter()
    check_run_size(config, stages)
    ws = Workspace(config.resolved_workdir())
    with ws.locked():
        outcomes, gpkg_s = _execute_stages(config, ws, stages, force=force, specs=specs or _default_specs)
        if specs is None:
            _report_if_asked(config, ws, stages, outcomes)
    report = RunReport(ws.root, outcomes, gpkg_seconds=gpkg_s)
    report.seconds_total = time.perf_counter() - started
    report.peak_rss_mb = peak_rss_mb()
    report.summary = run_summary(ws)
    return report


# -- incremental (cron) ------------------------------------------------------------------------


def _item_day(item: Mapping[str, Any]) -> dt.date | None:
    props = item.get("properties") or {}
    raw = props.get("uhi:solar_day") or props.get("datetime") or props.get("start_datetime")
    if not isinstance(raw, str) or len(raw) < 10:
        return None
    try:
        return dt.date.fromisoformat(raw[:10])
    except ValueError:
        return None


def known_scene_days(ws: Workspace) -> dict[str, dt.date]:
    """Scene id -> acquisition day of every scene in ``fetch/scenes.geojson`` (empty if none)."""
    try:
        collection = json.loads(ws.scenes_index.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        # a torn index cannot exist (atomic writes); an edited one means: start afresh
        log.warning("%s is not valid JSON; treating every scene as new", ws.scenes_index)
        return {}
    out: dict[str, dt.date] = {}
    for item in collection.get("features") or []:
        day = _item_day(item)
        if isinstance(item.get("id"), str) and day is not None:
            out[item["id"]] = day
    return out


def _default_search(config: Config) -> list[Any]:
    from uhi.search import search_scenes

    return list(search_scenes(config))


def find_new_scenes(
    config: Config,
    ws: Workspace,
    *,
    search: Callable[[Config], Sequence[Any]] | None = None,
) -> list[str] | None:
    """Ids of scenes acquired after the latest day already fetched.

    Returns None when the workspace has no finished fetch yet (everything is new). The search
    runs with ``time.start`` moved to the day after the latest known acquisition, so a cron run
    with nothing new costs one small search request.
    """
    known = known_scene_days(ws)
    if not known or ws.stage_record("fetch") is None:
        return None
    start = max(known.values()) + dt.timedelta(days=1)
    if start > config.time.end:
        return []
    narrowed = config.model_copy(update={"time": config.time.model_copy(update={"start": start})})
    try:
        items = (search or _default_search)(narrowed)
    except NoDataError:
        return []
    ids = []
    for item in items:
        item_id = getattr(item, "id", None) or (item.get("id") if isinstance(item, Mapping) else None)
        if isinstance(item_id, str) and item_id not in known:
            ids.append(item_id)
    return sorted(ids)


def run_incremental(
    config: Config,
    stages: Sequence[str] = STAGES,
    *,
    specs: SpecLookup | None = None,
    search: Callable[[Config], Sequence[Any]] | None = None,
) -> RunReport:
    """Cron mode: do nothing when no scene is newer than the last run, else run the stages.

    Fetch resumes and keeps valid files, so only the new scenes are read; downstream stages
    re-run because their input checksums changed. When nothing is new but a stage is not
    recorded (a run killed earlier) or was recorded with other config values or another uhi
    version, the stages run as ``uhi run`` would (the manifest skips the rest).
    """
    started = time.perf_counter()
    check_run_size(config, stages)
    ws = Workspace(config.resolved_workdir())
    lookup = specs or _default_specs
    with ws.locked():
        new = find_new_scenes(config, ws, search=search)
        if new == [] and _all_current(config, ws, stages, lookup):
            log.info("incremental: no scene newer than the last run; nothing to do")
            report = RunReport(ws.root, nothing_new=True)
        else:
            if new:
                log.info("incremental: %d new scene(s): %s", len(new), ", ".join(new))
            elif new is None:
                log.info("incremental: no finished fetch in %s yet; running everything", ws.root)
            else:
                log.info("incremental: nothing new; running stages left unfinished or whose config changed")
            # a remote archive's new scenes change no local input of fetch, so its fingerprint
            # cannot notice them: fetch is re-run explicitly (it keeps every valid clip)
            outcomes, gpkg_s = _execute_stages(
                config, ws, stages, force=False, specs=lookup, force_stages=("fetch",) if new else ()
            )
            if specs is None:
                _report_if_asked(config, ws, stages, outcomes)
            report = RunReport(ws.root, outcomes, new_scenes=new or [], gpkg_seconds=gpkg_s)
    report.seconds_total = time.perf_counter() - started
    report.peak_rss_mb = peak_rss_mb()
    report.summary = run_summary(ws)
    return report


def _report_if_asked(config: Config, ws: Workspace, stages: Sequence[str], outcomes: Sequence[Any]) -> None:
    """``outputs.formats`` with ``html``: a run that ends with forecast also writes
    ``report/report.html`` (as ``uhi report`` would, without web tiles), when a stage ran or the
    page is missing. The report's PNG maps follow ``png`` (``uhi.report.builder``)."""
    if "html" not in config.outputs.formats or not stages or stages[-1] != "forecast":
        return
    if all(o.skipped for o in outcomes) and ws.path("report", "report.html").is_file():
        return
    from uhi.report.builder import build_report

    build_report(config, ws, basemap=False)


def _all_current(config: Config, ws: Workspace, stages: Sequence[str], specs: SpecLookup) -> bool:
    """Every stage recorded, with this config's sections and this package version."""
    for name in stages:
        record = ws.stage_record(name)
        if record is None or record.get("uhi_version") != __version__:
            return False
        if record.get("config_hash") != config.section_hash(*specs(name).config_sections):
            return False
    return True


# -- summary -------------------------------------------------------------------------------


def _parquet_rows(path: Path) -> int | None:
    if not path.is_file():
        return None
    import pyarrow.parquet as pq

    return int(pq.ParquetFile(path).metadata.num_rows)


def _scenes_used(ws: Workspace) -> list[str] | None:
    if not ws.panel.is_file():
        return None
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    # a city panel has (cells x dates) rows, 16 million at 30 km: the column is read as Parquet
    # stores it (a dictionary of ids and integer codes), and only the codes in use are looked up
    column = pq.read_table(ws.panel, columns=["scene_id"], read_dictionary=["scene_id"]).column(0)
    distinct: set[str] = set()
    for chunk in column.chunks:
        if isinstance(chunk, pa.DictionaryArray):
            chunk = chunk.dictionary.take(pc.unique(chunk.indices).drop_null())
        distinct.update(v for v in pc.unique(chunk).to_pylist() if isinstance(v, str))
    used: set[str] = set()
    for joined in distinct:
        used.update(joined.split("+"))
    return sorted(used)


def run_summary(ws: Workspace) -> dict[str, Any]:
    """Scenes used and dropped, cells, models and output paths, read from the workspace.

    Counts come from the artifacts themselves (not from what a stage said), so a run whose
    stages were all skipped reports the same figures as the run that produced them.
    """
    manifest = ws.read_manifest()
    fetched = sorted(known_scene_days(ws))
    used = _scenes_used(ws)
    out: dict[str, Any] = {"scenes_fetched": len(fetched)}
    fetch_summary = (manifest["stages"].get("fetch") or {}).get("summary") or {}
    dropped_by_fetch = {
        k: v for k, v in fetch_summary.items() if "drop" in k or "reject" in k or "skip" in k
    }
    if dropped_by_fetch:
        out["fetch_dropped"] = dropped_by_fetch
    if used is not None:
        out["scenes_used"] = len(used)
        out["scenes_dropped"] = sorted(set(fetched) - set(used))
    cells = _parquet_rows(ws.cells)
    if cells is not None:
        out["cells"] = cells
    if ws.model_summary.is_file():
        try:
            models = json.loads(ws.model_summary.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            models = None
        if isinstance(models, Mapping):
            block = models.get("models", models)
            out["models"] = sorted(str(k) for k in block) if isinstance(block, Mapping) else []
    out["seconds_per_stage"] = {
        name: rec.get("seconds")
        for name, rec in manifest["stages"].items()
        if isinstance(rec, Mapping) and name in STAGES
    }
    outputs: list[str] = []
    for name in (*STAGES, "report"):
        folder = ws.path(name)
        if not folder.is_dir():
            continue
        for p in ws.files_under(folder):
            rel = ws.relative(p)
            # per-scene intermediates (fetch/scenes, compute/scenes) are not what people open
            if p.suffix in _OUTPUT_SUFFIXES and "/scenes/" not in f"/{rel}":
                outputs.append(rel)
    for p in sorted(ws.root.glob("*.gpkg")) if ws.root.is_dir() else []:
        outputs.append(ws.relative(p))
    out["outputs"] = outputs
    return out

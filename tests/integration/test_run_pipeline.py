"""uhi.pipeline with small fake stages: ranges, manifest skips, incremental mode, summary."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from uhi.config import Config, build_config
from uhi.errors import ConfigError, WorkspaceLockedError
from uhi.pipeline import (
    known_scene_days,
    run_incremental,
    run_pipeline,
    stage_range,
)
from uhi.stages.runner import StageSpec
from uhi.workspace import Workspace

CALLS: list[str] = []


def _catalog(config: Config) -> list[dict[str, Any]]:
    assert config.search.path is not None
    return json.loads(Path(config.search.path).read_text())


def _fetch(config: Config, ws: Workspace) -> dict[str, Any]:
    CALLS.append("fetch")
    items = [
        it for it in _catalog(config)
        if config.time.start <= dt.date.fromisoformat(it["day"]) <= config.time.end
    ]
    for it in items:
        target = ws.scene_asset(it["id"], "lwir11")
        if not target.exists():  # resume: a finished file is never fetched again
            ws.write_text(target, f"{it['id']}:{it['value']}\n")
    features = [
        {"type": "Feature", "id": it["id"], "properties": {"uhi:solar_day": it["day"]}}
        for it in items
    ]
    ws.write_json(ws.scenes_index, {"type": "FeatureCollection", "features": features})
    return {"scenes": len(items)}


def _compute(config: Config, ws: Workspace) -> dict[str, Any]:
    CALLS.append("compute")
    days = known_scene_days(ws)
    total = sum(
        float(ws.scene_asset(i, "lwir11").read_text().split(":")[1]) for i in sorted(days)
    )
    ws.write_json(ws.path("compute", "total.json"), {"total": total, "n": len(days)})
    return {"total": total}


def _model(config: Config, ws: Workspace) -> dict[str, Any]:
    CALLS.append("model")
    total = json.loads(ws.path("compute", "total.json").read_text())["total"]
    ws.write_json(ws.model_summary, {"models": {"ols": {"mean": total}}})
    return {}


def _exposure(config: Config, ws: Workspace) -> dict[str, Any]:
    CALLS.append("exposure")
    ws.write_json(ws.path("exposure", "summary.json"), {"from": json.loads(ws.model_summary.read_text())})
    return {}


def _forecast(config: Config, ws: Workspace) -> dict[str, Any]:
    CALLS.append("forecast")
    ws.write_text(ws.path("forecast", "forecast.geojson"), "{}\n")
    return {}


SPECS = {
    "fetch": StageSpec("fetch", ("search", "time"), lambda c, w: [Path(c.search.path)], _fetch),
    "compute": StageSpec(
        "compute", ("grid",),
        lambda c, w: [w.scenes_index, *w.files_under(w.path("fetch", "scenes"))], _compute,
    ),
    "model": StageSpec("model", ("model",), lambda c, w: [w.path("compute", "total.json")], _model),
    "exposure": StageSpec("exposure", ("exposure",), lambda c, w: [w.model_summary], _exposure),
    "forecast": StageSpec("forecast", ("forecast",), lambda c, w: [w.model_summary], _forecast),
}


def _search(config: Config) -> list[dict[str, Any]]:
    """The fake search backend: catalog items inside config.time."""
    return [
        {"id": it["id"]} for it in _catalog(config)
        if config.time.start <= dt.date.fromisoformat(it["day"]) <= config.time.end
    ]


@pytest.fixture()
def setup(tmp_path: Path) -> tuple[Config, Path]:
    CALLS.clear()
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps([
        {"id": "S1", "day": "2020-06-01", "value": 1.5},
        {"id": "S2", "day": "2020-07-03", "value": 2.5},
    ]))
    config = build_config(
        {"workdir": str(tmp_path / "ws"), "search": {"backend": "local", "path": str(catalog)},
         "time": {"start": "2020-01-01", "end": "2021-12-31"}},
        environ={},
    )
    return config, catalog


def test_stage_range_orders_and_rejects_reversed() -> None:
    assert stage_range() == ["fetch", "compute", "model", "exposure", "forecast"]
    assert stage_range("compute", "model") == ["compute", "model"]
    with pytest.raises(ConfigError, match="--to fetch comes before --from model"):
        stage_range("model", "fetch")


def test_second_run_skips_every_stage_and_summary_reads_artifacts(setup: tuple[Config, Path]) -> None:
    config, _ = setup
    first = run_pipeline(config, specs=SPECS.__getitem__)
    assert [o.skipped for o in first.outcomes] == [False] * 5
    assert CALLS == ["fetch", "compute", "model", "exposure", "forecast"]
    assert first.summary["scenes_fetched"] == 2
    assert first.summary["models"] == ["ols"]
    assert "forecast/forecast.geojson" in first.summary["outputs"]
    assert set(first.summary["seconds_per_stage"]) == {"fetch", "compute", "model", "exposure", "forecast"}
    CALLS.clear()
    second = run_pipeline(config, specs=SPECS.__getitem__)
    assert [o.skipped for o in second.outcomes] == [True] * 5 and CALLS == []
    assert second.summary["scenes_fetched"] == 2


def test_from_to_runs_only_the_range(setup: tuple[Config, Path]) -> None:
    config, _ = setup
    run_pipeline(config, stage_range("fetch", "compute"), specs=SPECS.__getitem__)
    assert CALLS == ["fetch", "compute"]
    ws = Workspace(config.resolved_workdir())
    assert ws.stage_record("model") is None and not ws.model_summary.exists()


def test_changed_input_reruns_only_downstream(setup: tuple[Config, Path]) -> None:
    config, _ = setup
    run_pipeline(config, specs=SPECS.__getitem__)
    CALLS.clear()
    ws = Workspace(config.resolved_workdir())
    ws.write_text(ws.scene_asset("S1", "lwir11"), "S1:10.0\n")  # fetch output edited
    report = run_pipeline(config, stage_range("compute"), specs=SPECS.__getitem__)
    assert CALLS == ["compute", "model", "exposure", "forecast"]
    assert report.outcomes[0].summary["total"] == 12.5


def test_incremental_nothing_new_then_one_new_scene(setup: tuple[Config, Path]) -> None:
    config, catalog = setup
    first = run_incremental(config, specs=SPECS.__getitem__, search=_search)
    assert not first.nothing_new and CALLS == ["fetch", "compute", "model", "exposure", "forecast"]
    ws = Workspace(config.resolved_workdir())
    assert known_scene_days(ws) == {"S1": dt.date(2020, 6, 1), "S2": dt.date(2020, 7, 3)}

    CALLS.clear()
    searched: list[dt.date] = []

    def spy(c: Config) -> list[dict[str, Any]]:
        searched.append(c.time.start)
        return _search(c)

    quiet = run_incremental(config, specs=SPECS.__getitem__, search=spy)
    assert quiet.nothing_new and quiet.outcomes == [] and CALLS == []
    assert searched == [dt.date(2020, 7, 4)]  # only after the latest known acquisition

    s1_mtime = ws.scene_asset("S1", "lwir11").stat().st_mtime_ns
    items = json.loads(catalog.read_text())
    catalog.write_text(json.dumps([*items, {"id": "S3", "day": "2021-06-20", "value": 4.0}]))
    newer = run_incremental(config, specs=SPECS.__getitem__, search=_search)
    assert newer.new_scenes == ["S3"] and not newer.nothing_new
    assert CALLS == ["fetch", "compute", "model", "exposure", "forecast"]
    assert ws.scene_asset("S1", "lwir11").stat().st_mtime_ns == s1_mtime  # not fetched again
    assert json.loads(ws.path("compute", "total.json").read_text()) == {"total": 8.0, "n": 3}


def test_incremental_finishes_a_run_killed_before_its_last_stage(setup: tuple[Config, Path]) -> None:
    config, _ = setup
    run_pipeline(config, stage_range("fetch", "model"), specs=SPECS.__getitem__)
    CALLS.clear()
    report = run_incremental(config, specs=SPECS.__getitem__, search=_search)
    assert not report.nothing_new and CALLS == ["exposure", "forecast"]


def test_incremental_with_nothing_new_still_applies_a_config_change(setup: tuple[Config, Path]) -> None:
    config, _ = setup
    run_pipeline(config, specs=SPECS.__getitem__)
    CALLS.clear()
    changed = config.model_copy(update={"forecast": config.forecast.model_copy(update={"horizon": 5})})
    report = run_incremental(changed, specs=SPECS.__getitem__, search=_search)
    assert not report.nothing_new and CALLS == ["forecast"]


def test_locked_workspace_raises_exit_75(setup: tuple[Config, Path]) -> None:
    config, _ = setup
    holder = Workspace(config.resolved_workdir())
    with holder.locked():
        with pytest.raises(WorkspaceLockedError) as err:
            run_incremental(config, specs=SPECS.__getitem__, search=_search)
    assert err.value.exit_code == 75 and CALLS == []


def test_cli_from_reruns_that_stage_and_the_later_ones(setup: tuple[Config, Path], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """`uhi run --from model` runs model and the stages after it again although nothing changed (README);
    without --from an unchanged pipeline is skipped whole."""
    from uhi import pipeline
    from uhi.cli.main import main

    _, catalog = setup
    monkeypatch.setattr(pipeline, "_default_specs", SPECS.__getitem__)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"search: {{backend: local, path: '{catalog}'}}\ntime: {{start: 2020-01-01, end: 2021-12-31}}\n"
                   f"workdir: '{tmp_path / 'ws'}'\n")

    def uhi(*args: str) -> int:
        with pytest.raises(SystemExit) as done:
            main(list(args))
        return int(done.value.code or 0)

    assert uhi("run", str(cfg)) == 0 and CALLS == ["fetch", "compute", "model", "exposure", "forecast"]
    CALLS.clear()
    assert uhi("run", str(cfg)) == 0 and CALLS == []
    CALLS.clear()
    assert uhi("run", str(cfg), "--from", "model", "-q") == 0
    assert CALLS == ["model", "exposure", "forecast"]
    CALLS.clear()
    # --from fetch written out is a request too: everything runs again
    assert uhi("run", str(cfg), "--from", "fetch", "--to", "compute") == 0 and CALLS == ["fetch", "compute"]
    capsys.readouterr()

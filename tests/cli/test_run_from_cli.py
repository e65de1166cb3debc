"""`uhi run --from STAGE` re-runs that stage and the ones after it (the CLI's call is checked)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from uhi.workspace import STAGES

AFTER_MODEL = list(STAGES[STAGES.index("model") :])


@pytest.mark.parametrize(
    ("args", "stages", "force"),
    [
        ([], list(STAGES), False),  # unchanged stages are skipped
        (["--from", "model"], AFTER_MODEL, True),  # asked for again: they run
        (["--from", "model", "--to", "model"], ["model"], True),
        (["--to", "compute"], ["fetch", "compute"], False),
        (["--force"], list(STAGES), True),
    ],
)
def test_from_forces_the_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], stages: list[str], force: bool
) -> None:
    import uhi.pipeline
    from uhi.cli.main import cli
    from uhi.pipeline import RunReport

    calls: list[tuple[list[str], bool]] = []

    def fake_run(config: Any, names: Any, *, force: bool = False, specs: Any = None) -> RunReport:
        calls.append((list(names), force))
        return RunReport(tmp_path)

    monkeypatch.setattr(uhi.pipeline, "run_pipeline", fake_run)
    config = tmp_path / "c.yaml"
    config.write_text("city: {name: t, bbox: [-114.1, 51.0, -114.0, 51.1]}\n")
    result = CliRunner().invoke(cli, ["run", str(config), "--workdir", str(tmp_path / "ws"), *args])
    assert result.exit_code == 0, result.output
    assert calls == [(stages, force)]

"""Command-line conventions: options after the command, typos, presets, JSON, quiet progress."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

UHI = [sys.executable, "-m", "uhi.cli.main"]


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*UHI, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture()
def offline_config(tmp_path: Path) -> Path:
    (tmp_path / "scenes").mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"city: {{bbox: [-114.1, 51.0, -114.05, 51.05]}}\nsearch: {{backend: local, path: '{tmp_path / 'scenes'}'}}\n")
    return cfg


def test_typo_suggests_the_command() -> None:
    r = run("valdate", "x.yaml")
    assert r.returncode == 2 and "No such command 'valdate'. Did you mean 'validate'?" in r.stderr
    r = run("forcast")
    assert r.returncode == 2 and "Did you mean 'forecast'?" in r.stderr
    r = run("zzzz")
    assert r.returncode == 2 and "No such command 'zzzz'." in r.stderr and "Did you mean" not in r.stderr


def test_verbosity_flags_work_after_the_command(offline_config: Path) -> None:
    plain = run("validate", str(offline_config))
    assert plain.returncode == 0, plain.stderr
    assert "INFO    validate: 2 check(s) passed, 0 problem(s)" in plain.stderr and "DEBUG" not in plain.stderr
    quiet_after = run("validate", str(offline_config), "-q")
    assert quiet_after.returncode == 0 and "INFO" not in quiet_after.stderr
    assert quiet_after.stdout == plain.stdout  # quiet silences logs, never results
    verbose_after = run("validate", str(offline_config), "-v")
    assert "DEBUG   validate: ok: search: local" in verbose_after.stderr
    # the group's --log-json still shapes the lines a subcommand's -v turns on
    js = run("--log-json", "validate", str(offline_config), "-v")
    levels = {json.loads(line)["level"] for line in js.stderr.splitlines()}
    assert levels == {"debug", "info"}


def test_validate_lists_every_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"city: {{aoi: '{tmp_path / 'nope.geojson'}'}}\n"
        f"search: {{backend: local, path: '{tmp_path / 'no-scenes'}'}}\n"
        f"buildings: {{path: '{tmp_path / 'b.gpkg'}', landuse_path: '{tmp_path / 'lu.gpkg'}'}}\n"
        f"forecast: {{rcp_table: '{tmp_path / 'rcp.csv'}'}}\n"
    )
    r = run("validate", str(cfg))
    assert r.returncode == 2
    problems = [line for line in r.stderr.splitlines() if line.startswith("problem: ")]
    assert len(problems) == 5, r.stderr
    for needle in ("city.aoi file not found", "buildings.path not found", "buildings.landuse_path not found",
                   "forecast.rcp_table not found", "search.path not found"):
        assert sum(needle in p for p in problems) == 1, needle
    assert r.stdout.strip().endswith("5 problem(s)")


def test_requester_pays_preset_without_credentials_is_a_problem(offline_config: Path, tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null", AWS_EC2_METADATA_DISABLED="true")
    cfg = tmp_path / "es.yaml"
    cfg.write_text("city: {bbox: [-114.1, 51.0, -114.05, 51.05]}\nsearch: {preset: earth-search}\n")
    r = subprocess.run([*UHI, "validate", str(cfg), "--offline"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "requester-pays" in r.stderr and "'planetary-computer' (free, no account)" in r.stderr
    # the default preset needs nothing
    default = tmp_path / "pc.yaml"
    default.write_text("city: {bbox: [-114.1, 51.0, -114.05, 51.05]}\n")
    r = subprocess.run([*UHI, "validate", str(default), "--offline"], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr


def test_presets_say_what_each_needs() -> None:
    r = run("presets", "--json")
    assert r.returncode == 0
    rows = {row["name"]: row for row in json.loads(r.stdout)}
    assert set(rows) == {"planetary-computer", "earth-search", "usgs"}
    assert [n for n, row in rows.items() if row["default"]] == ["planetary-computer"]
    assert rows["planetary-computer"]["cost"] == "free"
    assert all("requester pays" in rows[n]["cost"] for n in ("earth-search", "usgs"))
    from uhi.config import Config

    assert Config().search.preset == "planetary-computer"


def test_default_install_can_sign_planetary_computer_hrefs() -> None:
    """planetary-computer is a core dependency: the default preset must not need an extra."""
    import tomllib

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    project = pyproject["project"]
    assert project["name"] == "uhi-landsat"
    assert any(dep.startswith("planetary-computer") for dep in project["dependencies"])
    # extras refer to the distribution by its own name (a stale "uhi[...]" would pull Scikit-HEP's uhi)
    for extra in project["optional-dependencies"].values():
        assert not any(dep.startswith("uhi[") for dep in extra)


# -- progress ------------------------------------------------------------------------------------


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def _counts(text: str) -> list[int]:
    """The n of every 'n/total' a bar drew (tqdm redraws with carriage returns)."""
    import re

    return [int(m) for m in re.findall(r"(\d+)/\d+ ", text)]


def test_stage_bar_is_monotonic_across_chunks() -> None:
    from uhi.parallel import map_tasks
    from uhi.progress import StageBar, set_enabled

    set_enabled(True)
    tty = FakeTty()
    with StageBar(9, desc="compute", unit="scene", stream=tty, mininterval=0) as bar:
        for chunk in ([1, 2, 3], [4, 5], [6, 7, 8, 9]):  # three chunks, one bar
            assert map_tasks(lambda x: x * 2, chunk, threads=2, bar=bar) == [x * 2 for x in chunk]
    counts = _counts(tty.getvalue())
    assert counts and counts[-1] == 9 and counts == sorted(counts)  # never restarts at 0 after the start
    assert tty.getvalue().count("compute") >= 2 and bar.n == 9


def test_bars_are_silent_off_a_terminal_and_when_quiet() -> None:
    from uhi.logs import configure_logging
    from uhi.progress import StageBar, enabled

    pipe = io.StringIO()  # no TTY
    with StageBar(5, stream=pipe) as bar:
        bar.update(5)
    assert pipe.getvalue() == "" and not bar.active
    tty = FakeTty()
    for verbosity, json_lines in ((-1, False), (0, True)):  # -q, --log-json
        configure_logging(verbosity, json_lines=json_lines)
        assert not enabled(tty)
        with StageBar(5, stream=tty) as bar:
            bar.update(5)
        assert tty.getvalue() == ""
    configure_logging(0)
    assert enabled(tty)


def test_byte_bar_shows_bytes_and_throughput() -> None:
    from uhi.progress import StageBar, set_enabled

    set_enabled(True)
    tty = FakeTty()
    with StageBar(None, desc="fetch", unit="B", stream=tty, mininterval=0) as bar:
        bar.update(3 * 1024 * 1024)
    text = tty.getvalue()
    assert "3.00MB" in text and "B/s" in text


def test_shell_completion_offers_commands_and_choices() -> None:
    """The README's `_UHI_COMPLETE=bash_source uhi` works, and completes names and list choices."""
    import os

    def complete(words: str) -> list[str]:
        env = {**os.environ, "_UHI_COMPLETE": "bash_complete", "COMP_WORDS": words,
               "COMP_CWORD": str(len(words.split()) - 1)}
        r = subprocess.run(UHI, capture_output=True, text=True, env=env, timeout=60)
        return [line.split(",", 1)[1] for line in r.stdout.splitlines() if "," in line]

    script = subprocess.run(UHI, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "_UHI_COMPLETE": "bash_source"})
    assert "complete -o nosort -F _uhi_completion uhi" in script.stdout
    assert complete("uhi pre") == ["presets"]
    assert complete("uhi model --models s") == ["slx"]
    assert complete("uhi run c.yaml --from mo") == ["model"]


def test_validate_lists_every_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("search:\n  max_clod: 10\n  bakend: stac\ngrid:\n  zoom: 99\n")
    r = run("validate", str(cfg), "--json")
    assert r.returncode == 2
    problems = json.loads(r.stdout)["problems"]
    assert len(problems) == 3, problems
    assert problems[0].startswith("unknown config key 'search.max_clod' (did you mean 'max_cloud'?)")
    assert problems[1].startswith("unknown config key 'search.bakend' (did you mean 'backend'?)")
    assert problems[2] == "invalid config: grid.zoom: Input should be less than or equal to 22 (got 99)"
    # a run stops on the same problems, all named
    r = run("run", str(cfg), "-w", str(tmp_path / "ws"))
    assert r.returncode == 2 and "search.max_clod" in r.stderr and "search.bakend" in r.stderr and "grid.zoom" in r.stderr


def test_validate_checks_the_exposure_layers(offline_config: Path, tmp_path: Path) -> None:
    zones = tmp_path / "wards.geojson"
    zones.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"ward": "a", "name": "A"},
         "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}]}))
    cfg = tmp_path / "e.yaml"
    cfg.write_text(offline_config.read_text() + f"exposure: {{zones_path: '{zones}', population_path: '{tmp_path / 'pop.tif'}'}}\n")
    r = run("validate", str(cfg), "--json")
    problems = json.loads(r.stdout)["problems"]
    assert r.returncode == 2 and len(problems) == 2, problems
    assert "exposure.zones_path" in problems[0] and "no column 'zone'; set exposure.zone_id_col to one of: ward, name" in problems[0]
    assert problems[1].startswith("exposure.population_path not found")

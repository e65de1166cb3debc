"""`uhi demo`: exit codes and messages, with the real CLI in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

UHI = [sys.executable, "-m", "uhi.cli.main"]


def _uhi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*UHI, *args], capture_output=True, text=True, timeout=300)


def test_demo_writes_city_and_says_what_next(tmp_path: Path) -> None:
    out = tmp_path / "city"
    r = _uhi("demo", str(out), "--size-km", "1", "--years", "2019-2020", "--scenes-per-year", "1")
    assert r.returncode == 0, r.stderr
    config = out / "config.yaml"
    assert config.is_file() and (out / "truth.json").is_file()
    assert (out / "data" / "catalog" / "catalog.json").is_file()
    assert f"config: {config}" in r.stdout
    assert f"next: uhi run {config}" in r.stdout
    # the config pins the scenes' CRS, so a demo wider than ~8 km (across UTM zones 11 and 12
    # at 114 W) still has one target CRS
    import json

    from uhi.config import load_config

    assert load_config(config, environ={}).city.crs == json.loads((out / "truth.json").read_text())["crs"]


def test_size_zero_exits_2_naming_the_option(tmp_path: Path) -> None:
    r = _uhi("demo", str(tmp_path / "x"), "--size-km", "0")
    assert r.returncode == 2
    assert "--size-km" in r.stderr and "0.5-100 km" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()


def test_bad_years_exit_2(tmp_path: Path) -> None:
    r = _uhi("demo", str(tmp_path / "x"), "--years", "2020-2014")
    assert r.returncode == 2 and "--years" in r.stderr and "2020-2014" in r.stderr
    r = _uhi("demo", str(tmp_path / "x"), "--years", "recent")
    assert r.returncode == 2 and "FIRST-LAST" in r.stderr


def test_years_before_landsat_8_need_sensors_all(tmp_path: Path) -> None:
    r = _uhi("demo", str(tmp_path / "x"), "--years", "1990-2000")
    assert r.returncode == 2
    assert "--years" in r.stderr and "--sensors all" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "x").exists()
    r = _uhi("demo", str(tmp_path / "y"), "--sensors", "all", "--years", "1980-2000")
    assert r.returncode == 2 and "1984" in r.stderr and "Traceback" not in r.stderr


def test_sensors_all_writes_tm_and_etm_scenes(tmp_path: Path) -> None:
    import json

    out = tmp_path / "city"
    r = _uhi("demo", str(out), "--size-km", "0.5", "--years", "2011-2013", "--scenes-per-year", "1",
             "--sensors", "all")
    assert r.returncode == 0, r.stderr
    truth = json.loads((out / "truth.json").read_text())
    assert set(truth["sensors"]["platforms"]) == {"landsat-5", "landsat-7", "landsat-8"}
    assert truth["sensors"]["platforms"]["landsat-7"]["years"] == [2012]  # the only sensor in 2012
    assert "platforms: all" in (out / "config.yaml").read_text()


def test_too_many_scenes_per_year_exit_2(tmp_path: Path) -> None:
    r = _uhi("demo", str(tmp_path / "x"), "--scenes-per-year", "12")
    assert r.returncode == 2 and "--scenes-per-year" in r.stderr


def test_run_stops_at_the_first_missing_stage(monkeypatch: pytest.MonkeyPatch) -> None:
    from uhi.cli.demo import _stages_available

    assert _stages_available() == (["fetch", "compute", "model", "exposure", "forecast"], None)
    monkeypatch.setitem(sys.modules, "uhi.stages.model", None)  # import fails as if absent
    assert _stages_available() == (["fetch", "compute"], "model")

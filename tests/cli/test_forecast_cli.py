"""`uhi forecast`: general --input mode, workspace mode, exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

UHI = [sys.executable, "-m", "uhi.cli.main"]
SERIES_CSV = Path(__file__).parents[1] / "data" / "series" / "statsmodels_windows.csv"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*UHI, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def general(out: Path, *extra: str, table: Path = SERIES_CSV) -> subprocess.CompletedProcess[str]:
    return run("forecast", "--input", str(table), "--id-col", "series", "--time-col", "t",
               "--value-col", "value", "--out", str(out), *extra)


def test_general_mode_on_real_series(tmp_path: Path) -> None:
    r = general(tmp_path / "out", "--horizon", "5")
    assert r.returncode == 0, r.stderr
    assert "series: 102" in r.stdout
    per_id = pd.read_csv(tmp_path / "out" / "forecast.csv")
    assert len(per_id) == 102 and (per_id["value_status"] == "ok").all()
    # every series is forecast from its own last step: nile_00 ends in 1900, sunspots_00 in 1729
    last = dict(zip(per_id["series"], per_id["last_step"].astype(str), strict=True))
    assert last["nile_00"] == "1900" and last["sunspots_00"] == "1729"
    assert (per_id["value_h5_lo"] <= per_id["value_h5"]).all() and (per_id["value_h5"] <= per_id["value_h5_hi"]).all()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["validation"][0]["validated"] == 102
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["forecast.csv", "summary.json", "validation.csv"]


def test_general_mode_parquet_and_dates(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    dates = pd.date_range("2001-01-01", periods=36, freq="MS")
    df = pd.DataFrame({"id": np.repeat(["p", "q"], 36), "when": np.tile(dates, 2),
                       "y": rng.normal(0, 1, 72).cumsum()})
    df = pd.concat([df, df.iloc[[3]]])  # a duplicate timestamp
    table = tmp_path / "t.parquet"
    df.to_parquet(table)
    r = run("forecast", "--input", str(table), "--id-col", "id", "--time-col", "when", "--value-col", "y",
            "--horizon", "6", "--out", str(tmp_path / "o"), "--methods", "simple", "--methods", "holt")
    assert r.returncode == 0, r.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["step"] == "month" and summary["input_report"]["duplicate_rows"] == 2
    per_id = pd.read_csv(tmp_path / "o" / "forecast.csv")
    assert per_id["last_step"].tolist() == ["2003-12", "2003-12"]
    assert set(per_id["y_method"]) <= {"simple", "holt"}


def test_horizon_over_half_exits_2(tmp_path: Path) -> None:
    r = general(tmp_path / "out", "--horizon", "16")
    assert r.returncode == 2
    assert "--horizon 16 is more than half the series length (30 steps, so at most 15)" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--id-col", "nope"], "--id-col 'nope' is not a column"),
        (["--methods", "arima"], "unknown value(s) arima; choose from simple, holt, damped"),
        (["--methods", "simple,holt"], "--methods simple --methods holt"),
        (["--interval", "90"], "must be between 0 and 1"),
    ],
)
def test_bad_general_options_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    base = ["forecast", "--input", str(SERIES_CSV), "--id-col", "series", "--time-col", "t",
            "--value-col", "value", "--out", str(tmp_path / "o"), "--horizon", "3"]
    for i in range(0, len(args), 2):
        if args[i] in base:
            base[base.index(args[i]) + 1] = args[i + 1]
        else:
            base += args[i : i + 2]
    r = run(*base)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr


def test_epoch_second_times_exit_2_naming_the_fix(tmp_path: Path) -> None:
    # integer Unix seconds 30 days apart: read as steps they asked for a 23 M-step grid per series
    secs = 1_600_000_000 + 2_592_000 * np.arange(10)
    table = tmp_path / "epoch.csv"
    pd.DataFrame({"id": np.repeat(["a", "b"], 10), "t": np.tile(secs, 2), "v": np.arange(20.0)}).to_csv(table, index=False)
    r = run("forecast", "--input", str(table), "--id-col", "id", "--time-col", "t", "--value-col", "v",
            "--horizon", "2", "--out", str(tmp_path / "o"))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "23,328,001 index steps" in r.stderr and "Unix epoch times" in r.stderr and "to_datetime" in r.stderr
    assert not (tmp_path / "o").exists()


def test_overflowing_series_fail_and_infinite_values_are_counted(tmp_path: Path) -> None:
    years = np.arange(2000, 2012)
    clean = 20 + 0.1 * (years - 2000) + np.sin(years)
    huge = np.where(years % 2, 1e308, -1e308)  # its sums of squares overflow float64
    spiky = clean + 1.0
    spiky_inf = spiky.copy()
    spiky_inf[[3, 5]] = np.inf
    frame = pd.DataFrame({"id": np.repeat(["a", "b", "c"], 12), "t": np.tile(years, 3),
                          "v": np.concatenate([clean, huge, spiky_inf])})
    table = tmp_path / "t.csv"
    frame.to_csv(table, index=False)
    r = general_table(table, tmp_path / "o")
    assert r.returncode == 0, r.stderr
    assert "failed 1" in r.stdout and "2 infinite value(s) of 'v'" in r.stderr
    per_id = pd.read_csv(tmp_path / "o" / "forecast.csv").set_index("id")
    assert per_id["v_status"].to_dict() == {"a": "ok", "b": "failed", "c": "ok"}
    assert per_id.loc["b", ["v_h1", "v_h1_lo", "v_h1_hi", "v_rmse"]].isna().all()
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["status"]["v"] == {"ok": 2, "too_few_points": 0, "no_data": 0, "failed": 1}
    assert summary["input_report"]["infinite_values_dropped"] == {"v": 2}
    # dropping the two inf rows is exactly what happened to c: the same forecast without them
    without = frame[np.isfinite(frame["v"])]
    without.to_csv(tmp_path / "w.csv", index=False)
    assert general_table(tmp_path / "w.csv", tmp_path / "w").returncode == 0
    ref = pd.read_csv(tmp_path / "w" / "forecast.csv").set_index("id")
    assert ref.loc["c", "v_steps_observed"] == per_id.loc["c", "v_steps_observed"] == 10
    assert per_id.loc["c", "v_h1"] == ref.loc["c", "v_h1"]


def general_table(table: Path, out: Path) -> subprocess.CompletedProcess[str]:
    return run("forecast", "--input", str(table), "--id-col", "id", "--time-col", "t", "--value-col", "v",
               "--horizon", "2", "--out", str(out))


def test_modes_do_not_mix(tmp_path: Path) -> None:
    r = run("forecast", "--id-col", "x")
    assert r.returncode == 2 and "--id-col need(s) --input TABLE" in r.stderr
    r = run("forecast", "--input", str(SERIES_CSV), "--workdir", str(tmp_path))
    assert r.returncode == 2 and "takes no CONFIG, --workdir" in r.stderr
    r = run("forecast", "--input", str(SERIES_CSV), "--id-col", "series")
    assert r.returncode == 2 and "--input needs --time-col, --value-col, --horizon, --out" in r.stderr


def test_missing_input_file_exits_2(tmp_path: Path) -> None:
    r = general(tmp_path / "o", "--horizon", "2", table=tmp_path / "none.csv")
    assert r.returncode == 2 and "input table not found" in r.stderr


def test_workspace_mode(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parents[1] / "integration"))
    try:
        from test_forecast_stage import build_workspace
    finally:
        sys.path.pop(0)
    ws = build_workspace(tmp_path / "ws", nx=4, ny=3)
    r = run("forecast", "--workdir", str(ws.root), "--horizon", "2", "--set", "outputs.formats=[geojson]")
    assert r.returncode == 0, r.stderr
    assert "forecast:" in r.stdout and "cells_too_few_points: 1" in r.stdout
    summary = json.loads((ws.stage_dir("forecast") / "summary.json").read_text())
    assert summary["horizon"] == 2 and summary["outputs"] == ["forecast/forecast.geojson"]
    r = run("forecast", "--workdir", str(ws.root), "--horizon", "9")
    assert r.returncode == 2 and "forecast.horizon 9 is more than half" in r.stderr
    empty = tmp_path / "empty"
    r = run("forecast", "--workdir", str(empty))
    assert r.returncode == 2 and "run uhi compute first" in r.stderr


def test_command_module_has_no_heavy_imports() -> None:
    code = (
        "import sys, uhi.cli.forecast\n"
        "print(','.join(m for m in ('numpy', 'pandas', 'numba', 'statsmodels') if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == ""

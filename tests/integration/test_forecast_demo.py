"""The demo city end to end: fetch -> compute -> model -> forecast recovers the planted trend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from uhi.demo import DemoSpec, write_demo


@pytest.mark.slow
def test_demo_city_trend_recovered(tmp_path: Path) -> None:
    from uhi.config import load_config
    from uhi.stages import get_spec
    from uhi.stages.runner import execute
    from uhi.workspace import Workspace

    write_demo(tmp_path, DemoSpec(size_km=1.0))
    truth = json.loads((tmp_path / "truth.json").read_text())
    tol = truth["tolerances"]["end_to_end"]
    cfg = load_config(tmp_path / "config.yaml")
    ws = Workspace(cfg.resolved_workdir())
    with ws.locked():
        for stage in ("fetch", "compute", "model", "forecast"):
            execute(get_spec(stage), cfg, ws)
    summary = json.loads((ws.stage_dir("forecast") / "summary.json").read_text())
    city = summary["city"]["lst_c"]
    # the city series is the summer mean of per-scene city means, as truth.json's expectation
    # (planted warming + the east district's development + the scenes' weather offsets)
    assert abs(city["trend_per_step"]["ols_slope"] - truth["expected_trend_c_per_year"]) < tol["trend_c_per_year_abs"]
    assert summary["steps"] == [str(y) for y in truth["years"]]
    assert summary["forecast_steps"] == [str(truth["years"][-1] + h) for h in (1, 2, 3)]
    status = summary["status"]["lst_c"]
    assert sum(status.values()) == summary["cells"] and status["ok"] > 0.9 * summary["cells"]
    assert summary["model_projection"]["status"] == "done"
    assert summary["model_projection"]["x"] == ["ndvi", "ndbi", "site_coverage"]
    # every output the stage declares is there
    out = ws.stage_dir("forecast")
    for name in ("forecast.geojson", "forecast.xlsx", "summary.json", "cogs/lst_c_2021.tif"):
        assert (out / name).is_file(), name

    # equivalence on the demo city's own cell series: SSE within 1 % of statsmodels (or lower)
    # for >= 95 % of a seeded sample of cells, per method
    import warnings

    import numpy as np
    import pandas as pd
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    from uhi.stats.ets import fit_ets
    from uhi.stats.series import regularise

    rs = regularise(pd.read_parquet(ws.panel), ["lst_c"], months=cfg.time.months)
    y = rs.values["lst_c"]
    y = y[np.isfinite(y).all(axis=1)]
    sample = y[np.random.default_rng(0).choice(len(y), size=min(40, len(y)), replace=False)]
    for method in ("simple", "holt", "damped"):
        ours = fit_ets(sample, (method,)).sse
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = np.array([
                ExponentialSmoothing(s, trend=None if method == "simple" else "add",
                                     damped_trend=method == "damped",
                                     initialization_method="estimated").fit().sse
                for s in sample
            ])
        assert np.mean(ours <= 1.01 * theirs) >= 0.95, (method, np.sort(ours / theirs)[-5:])

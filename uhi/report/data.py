"""The numbers the report shows, read from the stages' artifacts (one source of truth)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from uhi.scenes_index import SYNTHETIC_PROPERTY, is_synthetic, scene_years

__all__ = ["SYNTHETIC_PROPERTY", "is_synthetic", "scene_years", "read_report_data"]

def _json(path: Path) -> dict[str, Any] | None:
    if not Path(path).is_file():
        return None
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else None


def _finite(value: Any) -> Any:
    """JSON-safe copy: NaN and infinities become null (the page's JSON allows no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _models(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    """Per model: R-squared per period, mean R-squared and mean AIC; the best model and why."""
    if not summary:
        return None
    table: dict[str, Any] = {}
    for name, entry in (summary.get("models") or {}).items():
        if not isinstance(entry, dict):
            continue
        found = entry.get("years")
        years: dict[str, Any] = found if isinstance(found, dict) else {}
        table[name] = {
            "r2": {str(p): fit.get("r2") for p, fit in years.items() if isinstance(fit, dict) and "r2" in fit},
            "mean_r2": entry.get("mean_r2"),
            "mean_aic": entry.get("mean_aic"),
        }
    return {
        "best_model": summary.get("best_model"),
        "best_model_criterion": summary.get("best_model_criterion"),
        "best_by_r2": summary.get("best_by_r2"),
        "y": summary.get("y"),
        "x": summary.get("x"),
        "weights": summary.get("weights"),
        "models": table,
    }


def read_report_data(ws: Any) -> dict[str, Any]:
    """Every figure the page states, copied from the artifacts; absent stages give null entries.

    Keys: ``synthetic``, ``scenes_per_year``, ``suhi`` (compute's per-date series),
    ``suhi_trend`` (compute's SUHI trend per decade with its 95 % interval), ``city``
    (forecast summary ``city.lst_c``: observed per step, forecast, bounds, trend), ``forecast``
    (step, interval), ``rcp85``, ``models``, ``scenarios``, ``exposure``, ``plan``.
    """
    compute = (ws.stage_record("compute") or {}).get("summary") or {}
    fsum = _json(ws.path("forecast", "summary.json"))
    city = ((fsum or {}).get("city") or {}).get("lst_c")
    scenarios = {}
    folder = ws.path("scenario")
    for path in sorted(folder.glob("*_summary.json")) if folder.is_dir() else []:
        rec = _json(path) or {}
        scenarios[path.name[: -len("_summary.json")]] = {
            "model": rec.get("model"), "model_year": rec.get("model_year"), "city": rec.get("city"),
            "polygons": rec.get("polygons"),
        }
    data = {
        "synthetic": is_synthetic(ws),
        "scenes_per_year": scene_years(ws),
        "suhi_method": compute.get("suhi_method"),
        "suhi": compute.get("suhi_series"),
        "suhi_trend": compute.get("suhi_trend"),
        "city": city,
        "forecast": None if fsum is None else {
            "step": fsum.get("step"), "interval": fsum.get("interval"), "forecast_steps": fsum.get("forecast_steps"),
        },
        "rcp85": None if fsum is None else fsum.get("rcp85"),
        "models": _models(_json(ws.model_summary)),
        "scenarios": scenarios or None,
        "exposure": _json(ws.path("exposure", "summary.json")),
        "plan": _json(ws.path("plan", "summary.json")),
    }
    return _finite(data)

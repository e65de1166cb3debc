"""The fetch stage's scene index (``fetch/scenes.geojson``) as the later stages read it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

__all__ = ["SYNTHETIC_PROPERTY", "is_synthetic", "scene_years", "scene_features"]

# item property the demo's STAC items carry (uhi/demo/catalog.py): the pixels were planted, not imaged
SYNTHETIC_PROPERTY = "uhi:synthetic"


def _json(path: Path) -> dict[str, Any] | None:
    if not Path(path).is_file():
        return None
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else None


def scene_features(ws: Any) -> list[dict[str, Any]]:
    data = _json(ws.scenes_index) or {}
    return [f for f in data.get("features") or [] if isinstance(f, dict)]


def is_synthetic(ws: Any) -> bool:
    """Whether the fetched scenes are the demo's planted data (``uhi:synthetic`` on an item)."""
    return any(bool((f.get("properties") or {}).get(SYNTHETIC_PROPERTY)) for f in scene_features(ws))


def scene_years(ws: Any) -> list[dict[str, Any]]:
    """Per year: scenes fetched and their mean and maximum scene cloud cover (%), from scenes.geojson."""
    by_year: dict[int, list[float]] = {}
    for f in scene_features(ws):
        props = f.get("properties") or {}
        when = str(props.get("datetime") or props.get("start_datetime") or "")
        if len(when) < 4 or not when[:4].isdigit():
            continue
        cloud = props.get("eo:cloud_cover")
        by_year.setdefault(int(when[:4]), []).append(float(cloud) if isinstance(cloud, (int, float)) else math.nan)
    rows = []
    for year in sorted(by_year):
        clouds = [c for c in by_year[year] if math.isfinite(c)]
        rows.append({"year": year, "scenes": len(by_year[year]),
                     "cloud_mean_pct": sum(clouds) / len(clouds) if clouds else None,
                     "cloud_max_pct": max(clouds) if clouds else None})
    return rows

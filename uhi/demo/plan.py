"""The demo's acquisition schedule: which Landsat scenes exist, their sensor, kind and weather."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from uhi.demo.sensors import DEMO_SENSORS, SLC_FAILURE, DemoSensor, sensors_in_year
from uhi.demo.spec import WRS_PATHS, WRS_ROW, DemoSpec

__all__ = ["ScenePlan", "plan_scenes", "KINDS"]

KINDS = ("clear", "regional_cloud", "full_cloud", "l2sr")

# Landsat 8 revisits a path every 16 days. The anchor is a plausible path-042 date (the brief's
# example id, 2015-07-15); the adjacent path 041 is imaged 7 days earlier in the WRS-2 cycle.
_ANCHOR = {42: dt.date(2015, 7, 15), 41: dt.date(2015, 7, 8)}
_CLOUD_CHOICES = (0.0, 0.0, 0.03, 0.08, 0.15, 0.25)
# 185 km scenes: a city-sized cloud deck can cover the AOI while the scene is mostly clear
REGIONAL_SCENE_CLOUD = 18.0
REGIONAL_AOI_CLOUD = 0.9


@dataclass(frozen=True)
class ScenePlan:
    """One synthetic scene.

    Attributes
    ----------
    product_id
        USGS product id (file name stem), e.g. LC08_L2SP_042025_20150715_20200908_02_T1.
    item_id
        STAC item id as Planetary Computer / Earth Search write it (no processing date).
    date
        Acquisition date; ``center_time`` the SCENE_CENTER_TIME (UTC, hh:mm:ss.fffffff).
    path
        WRS-2 path (row is always 025).
    kind
        clear (maybe some clouds), regional_cloud (AOI ~90 % cloud, scene metadata 18 %),
        full_cloud (every pixel cloud, metadata 100 %), l2sr (no surface temperature).
    cloud_fraction
        Share of the raster to cover with cloud.
    offset_c
        Weather offset of the whole scene's LST, degC.
    year_index, index
        Position of the year in the spec and of the scene in the plan (random stream id).
    platform
        STAC platform of the scene (``uhi.demo.sensors.DEMO_SENSORS``).
    """

    product_id: str
    item_id: str
    date: dt.date
    center_time: str
    path: int
    kind: str
    cloud_fraction: float
    offset_c: float
    year_index: int
    index: int
    platform: str = "landsat-8"

    @property
    def sensor(self) -> DemoSensor:
        return DEMO_SENSORS[self.platform]

    @property
    def slc_off(self) -> bool:
        """Landsat 7 after its Scan Line Corrector failed: the scene has striped gaps."""
        return self.platform == "landsat-7" and self.date > SLC_FAILURE

    @property
    def level(self) -> str:
        return "L2SR" if self.kind == "l2sr" else "L2SP"

    @property
    def has_thermal(self) -> bool:
        return self.kind != "l2sr"


def _dates(path: int, year: int, phase_days: int = 0) -> list[dt.date]:
    anchor = _ANCHOR[path] + dt.timedelta(days=phase_days)
    start, end = dt.date(year, 6, 1), dt.date(year, 8, 31)
    k = -((anchor - start).days // 16)
    d = anchor + dt.timedelta(days=16 * k)
    out = []
    while d <= end:
        if d >= start:
            out.append(d)
        d += dt.timedelta(days=16)
    return out


def _processed(acquired: dt.date, index: int) -> dt.date:
    """Collection 2 processing date: the 2020-2021 reprocessing for the archive, else ~9 days."""
    if acquired < dt.date(2020, 8, 1):
        return dt.date(2020, 8, 25) + dt.timedelta(days=(index * 7) % 90)
    return acquired + dt.timedelta(days=9)


def plan_scenes(spec: DemoSpec) -> list[ScenePlan]:
    """Every scene of the demo, sorted by date.

    Per summer ``scenes_per_year`` usable L2SP scenes are spread evenly over the acquisitions
    of both paths (and of every sensor of ``spec.sensors`` imaging that summer); unused dates
    carry the extras: two fully cloudy scenes and one L2SR scene.
    """
    rng = np.random.default_rng(np.random.SeedSequence([spec.seed, 4]))
    years = spec.years
    n = len(years)
    chosen: list[tuple[dt.date, int, str, str, int]] = []
    spare: dict[int, list[tuple[dt.date, int, str]]] = {}
    for yi, year in enumerate(years):
        cands = sorted(
            (d, p, s.platform)
            for s in sensors_in_year(spec.sensors, year)
            for p in WRS_PATHS
            for d in _dates(p, year, s.phase_days)
        )
        pick = sorted(
            set(np.round(np.linspace(0, len(cands) - 1, spec.scenes_per_year)).astype(int).tolist())
        )
        regional = spec.scenes_per_year >= 2 and yi == min(3, n - 1)
        for j, k in enumerate(pick):
            d, p, platform = cands[k]
            kind = "regional_cloud" if regional and j == 1 else "clear"
            chosen.append((d, p, platform, kind, yi))
        spare[yi] = [c for i, c in enumerate(cands) if i not in pick]
    extras = (("full_cloud", min(2, n - 1)), ("l2sr", min(1, n - 1)), ("full_cloud", min(5, n - 1)))
    for kind, yi in extras:
        for yj in [yi, *range(n)]:
            if spare[yj]:
                d, p, platform = spare[yj].pop(len(spare[yj]) // 2)
                chosen.append((d, p, platform, kind, yj))
                break
    chosen.sort()
    plans = []
    for i, (d, p, platform, kind, yi) in enumerate(chosen):
        level = "L2SR" if kind == "l2sr" else "L2SP"
        frac = {
            "clear": float(rng.choice(_CLOUD_CHOICES)),
            "regional_cloud": REGIONAL_AOI_CLOUD,
            "full_cloud": 1.0,
            "l2sr": float(rng.choice(_CLOUD_CHOICES)),
        }[kind]
        offset = float(np.round(rng.normal(0.0, spec.scene_offset_sd_c), 3))
        seconds = 17 * 3600 + (58 if p == 42 else 52) * 60 + float(rng.uniform(0, 30))
        hh, rem = divmod(seconds, 3600)
        mm, ss = divmod(rem, 60)
        center = f"{int(hh):02d}:{int(mm):02d}:{ss:010.7f}Z"
        stem = f"{DEMO_SENSORS[platform].id_prefix}_{level}_{p:03d}{WRS_ROW:03d}_{d:%Y%m%d}"
        plans.append(
            ScenePlan(
                product_id=f"{stem}_{_processed(d, i):%Y%m%d}_02_T1",
                item_id=f"{stem}_02_T1",
                date=d,
                center_time=center,
                path=p,
                kind=kind,
                cloud_fraction=frac,
                offset_c=offset,
                year_index=yi,
                index=i,
                platform=platform,
            )
        )
    return plans

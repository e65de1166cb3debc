"""Surface urban heat island: urban and rural reference cells, per-date intensity, per-cell anomaly."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from uhi.config import SuhiConfig

__all__ = [
    "WATER_SHARE_MAX",
    "SuhiClasses",
    "classify_cells",
    "suhi_series",
    "describe_method",
    "sample_elevation",
]

# a cell more than half water (QA_PIXEL bit 7, or MNDWI > 0) is water: excluded from both
# the urban and the rural means (docs/science.md, "water and snow excluded")
WATER_SHARE_MAX = 0.5


@dataclass(frozen=True)
class SuhiClasses:
    """Boolean masks over the cells and a sentence that says how they were chosen."""

    urban: np.ndarray
    rural: np.ndarray
    water: np.ndarray
    method: str


def describe_method(cfg: SuhiConfig, *, have_buildings: bool, have_elevation: bool) -> str:
    """One sentence stating the urban and rural definitions used (written into the outputs)."""
    urban = (
        f"urban = site coverage >= {cfg.urban_site_coverage:g}"
        if have_buildings
        else f"urban = mean NDBI > {cfg.rural_max_ndbi:g} (no buildings layer)"
    )
    if cfg.rural == "buffer":
        rural = f"rural = non-urban cells within a {cfg.buffer_m:g} m ring around the urban cells"
    else:
        rural = f"rural = non-built cells (mean NDBI < {cfg.rural_max_ndbi:g}" + (
            ", site coverage 0)" if have_buildings else ")"
        )
    elev = (
        f"; rural cells within +-{cfg.elevation_tolerance_m:g} m of the urban median elevation"
        if have_elevation
        else ""
    )
    return f"{urban}; {rural}{elev}; cells > {WATER_SHARE_MAX:g} water excluded"


def classify_cells(
    x_m: np.ndarray,
    y_m: np.ndarray,
    ndbi_mean: np.ndarray,
    water_share: np.ndarray,
    site_coverage: np.ndarray | None,
    cfg: SuhiConfig,
    *,
    elevation_m: np.ndarray | None = None,
) -> SuhiClasses:
    """Urban and rural reference cells.

    Parameters
    ----------
    x_m, y_m
        Cell centroids in the projected working CRS (metres).
    ndbi_mean
        Mean NDBI of each cell over all dates (NaN when never observed).
    water_share
        Share of the cell's clear pixels that were water.
    site_coverage
        Building footprint area / cell area, or None without a buildings layer.
    cfg
        The ``suhi`` config section.
    elevation_m
        Cell elevations for the +-tolerance filter (Chakraborty & Lee 2019), or None.
    """
    water = np.nan_to_num(water_share, nan=0.0) > WATER_SHARE_MAX
    observed = ~np.isnan(ndbi_mean)
    if site_coverage is not None:
        sc = np.nan_to_num(site_coverage, nan=0.0)
        urban = (sc >= cfg.urban_site_coverage) & ~water
    else:
        urban = observed & (np.nan_to_num(ndbi_mean, nan=-np.inf) > cfg.rural_max_ndbi) & ~water
    candidates = observed & ~urban & ~water
    if cfg.rural == "buffer":
        from scipy.spatial import cKDTree

        rural = np.zeros_like(urban)
        if urban.any():
            tree = cKDTree(np.column_stack([x_m[urban], y_m[urban]]))
            dist, _ = tree.query(np.column_stack([x_m, y_m]), k=1)
            rural = candidates & (dist <= cfg.buffer_m)
    else:
        nonbuilt = np.nan_to_num(ndbi_mean, nan=np.inf) < cfg.rural_max_ndbi
        if site_coverage is not None:
            nonbuilt &= np.nan_to_num(site_coverage, nan=0.0) == 0
        rural = candidates & nonbuilt
    if elevation_m is not None and urban.any():
        median = np.nanmedian(elevation_m[urban])
        rural &= np.abs(elevation_m - median) <= cfg.elevation_tolerance_m
    method = describe_method(
        cfg, have_buildings=site_coverage is not None, have_elevation=elevation_m is not None
    )
    return SuhiClasses(urban=urban, rural=rural, water=water, method=method)


def suhi_series(panel: Any, cell_index: np.ndarray, classes: SuhiClasses) -> tuple[Any, np.ndarray]:
    """Per-date SUHI intensity and the per-row anomaly.

    Parameters
    ----------
    panel
        DataFrame with ``date`` and ``lst_c``, one row per (cell, date).
    cell_index
        For each panel row, the integer position of its cell in the masks.
    classes
        Urban/rural masks.

    Returns
    -------
    series, anomaly_c
        DataFrame ``date, urban_lst_c, rural_lst_c, suhi_c, n_urban, n_rural, method``, and
        per panel row LST minus that date's rural mean (NaN when the date has no rural cell).
    """
    import pandas as pd

    lst = panel["lst_c"].to_numpy(dtype=np.float64)
    is_urban = classes.urban[cell_index]
    is_rural = classes.rural[cell_index]
    frame = pd.DataFrame(
        {
            "date": panel["date"].to_numpy(),
            "urban": np.where(is_urban, lst, np.nan),
            "rural": np.where(is_rural, lst, np.nan),
        }
    )
    g = frame.groupby("date", sort=True)
    series = pd.DataFrame(
        {
            "urban_lst_c": g["urban"].mean(),
            "rural_lst_c": g["rural"].mean(),
            "n_urban": g["urban"].count(),
            "n_rural": g["rural"].count(),
        }
    )
    series["suhi_c"] = series["urban_lst_c"] - series["rural_lst_c"]
    series["method"] = classes.method
    series = series.reset_index()[
        ["date", "urban_lst_c", "rural_lst_c", "suhi_c", "n_urban", "n_rural", "method"]
    ]
    rural_by_date = series.set_index("date")["rural_lst_c"]
    anomaly = lst - rural_by_date.reindex(panel["date"]).to_numpy(dtype=np.float64)
    return series, anomaly


def sample_elevation(path: Any, x_m: np.ndarray, y_m: np.ndarray, crs: str) -> np.ndarray:
    """Elevation (m) of a DEM at cell centroids given in ``crs``; NaN outside it or at nodata."""
    import rasterio
    from pyproj import Transformer

    from uhi.errors import InputError

    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"cannot read suhi.elevation_path {path}: {exc}; give a GeoTIFF DEM") from None
    with src:
        tr = Transformer.from_crs(crs, src.crs, always_xy=True)
        xs, ys = tr.transform(x_m, y_m)
        values = np.array([v[0] for v in src.sample(zip(xs, ys, strict=True), masked=True)], dtype=object)
        out = np.array([np.nan if np.ma.is_masked(v) else float(v) for v in values])
    return out

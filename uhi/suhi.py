"""Surface urban heat island: urban and rural reference cells, per-date intensity, per-cell anomaly."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from uhi.config import SuhiConfig

__all__ = [
    "WATER_SHARE_MAX",
    "SuhiClasses",
    "classify_cells",
    "urban_extent",
    "MIN_RURAL_CELLS",
    "MIN_RURAL_SHARE",
    "suhi_series",
    "describe_method",
    "sample_elevation",
]

# a cell more than half water (QA_PIXEL bit 7, or MNDWI > 0) is water: excluded from both
# the urban and the rural means (docs/science.md, "water and snow excluded")
WATER_SHARE_MAX = 0.5


@dataclass(frozen=True)
class SuhiClasses:
    """Boolean masks over the cells, a sentence on how they were chosen, and the rural figures.

    Attributes
    ----------
    urban, rural, water
        Per-cell masks: urban cells, rural reference cells, cells more than half water.
    extent
        The urban extent: urban cells with one-cell gaps closed and enclosed holes (parks,
        ponds inside the city) filled. No rural cell lies in it.
    method
        One sentence stating the urban and rural definitions (written into the outputs).
    rural_report
        ``rural_cells``, ``rural_area_m2``, ``urban_cells``, ``extent_cells``,
        ``extent_area_m2``, ``band_m`` [nearest, farthest rural cell centre from the nearest
        extent cell centre], ``ring_width_m`` (the distance limit used) and ``warning``.
    """

    urban: np.ndarray
    rural: np.ndarray
    water: np.ndarray
    method: str
    extent: np.ndarray | None = None
    rural_report: dict[str, Any] = field(default_factory=dict)


# Too few rural cells make the rural mean a few pixels' temperature: warn below 30 cells or
# below 5 % of the urban count (issue 12; a rule of thumb, not a published threshold).
MIN_RURAL_CELLS = 30
MIN_RURAL_SHARE = 0.05


def describe_method(cfg: SuhiConfig, *, have_buildings: bool, have_elevation: bool) -> str:
    """One sentence stating the urban and rural definitions used (written into the outputs)."""
    urban = (
        f"urban = site coverage >= {cfg.urban_site_coverage:g}"
        if have_buildings
        else f"urban = mean NDBI > {cfg.rural_max_ndbi:g} (no buildings layer)"
    )
    extent = "urban extent = urban cells with one-cell gaps closed and enclosed parks and ponds filled"
    if cfg.rural == "buffer":
        rural = f"rural = non-urban cells outside the urban extent within {cfg.buffer_m:g} m of it"
    else:
        rural = ("rural = non-urban cells in the ring around the urban extent whose area equals the "
                 "extent's (Peng et al. 2012)")
    elev = (
        f"; rural cells within +-{cfg.elevation_tolerance_m:g} m of the urban median elevation"
        if have_elevation
        else ""
    )
    return f"{urban}; {extent}; {rural}{elev}; cells > {WATER_SHARE_MAX:g} water excluded"


def _grid_positions(
    x_m: np.ndarray, y_m: np.ndarray, tile_xy: tuple[np.ndarray, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Row/col of each cell on its regular grid and the cell side in metres.

    uhi's cells are web-mercator tiles: ``tile_xy`` places them exactly. Without it the
    centroids are snapped to a grid of the median nearest-neighbour spacing (hand-made grids).
    """
    from scipy.spatial import cKDTree

    pts = np.column_stack([x_m, y_m])
    if len(pts) < 2:
        size = 1.0
    else:
        dist, _ = cKDTree(pts).query(pts, k=2)
        size = float(np.median(dist[:, 1]))
    if tile_xy is not None:
        tx = np.asarray(tile_xy[0], dtype=np.int64)
        ty = np.asarray(tile_xy[1], dtype=np.int64)
        return ty - ty.min(), tx - tx.min(), size
    col = np.rint((x_m - x_m.min()) / size).astype(np.int64)
    row = np.rint((y_m.max() - y_m) / size).astype(np.int64)
    return row, col, size


def urban_extent(row: np.ndarray, col: np.ndarray, urban: np.ndarray) -> np.ndarray:
    """Cells of the urban extent: urban cells, one-cell gaps closed, enclosed holes filled.

    A morphological closing with a 3 x 3 square bridges single non-urban cells between urban
    ones (a street of trees, a cell misclassified); filling holes puts every park, cemetery
    or pond enclosed by the city inside the extent, so it can never be the rural reference.
    """
    from scipy import ndimage

    pad = 2
    shape = (int(row.max()) + 1 + 2 * pad, int(col.max()) + 1 + 2 * pad)
    grid = np.zeros(shape, dtype=bool)
    grid[row[urban] + pad, col[urban] + pad] = True
    closed = ndimage.binary_closing(grid, structure=np.ones((3, 3), dtype=bool))
    filled = ndimage.binary_fill_holes(closed | grid)
    return np.asarray(filled[row + pad, col + pad], dtype=bool)


def _distance_to_extent(row: np.ndarray, col: np.ndarray, extent: np.ndarray, size_m: float) -> np.ndarray:
    """Distance (m) from each cell centre to the nearest extent cell centre (0 inside)."""
    from scipy import ndimage

    shape = (int(row.max()) + 1, int(col.max()) + 1)
    outside = np.ones(shape, dtype=bool)
    outside[row[extent], col[extent]] = False
    dist = ndimage.distance_transform_edt(outside, sampling=(size_m, size_m))
    return np.asarray(dist[row, col], dtype=np.float64)


def classify_cells(
    x_m: np.ndarray,
    y_m: np.ndarray,
    ndbi_mean: np.ndarray,
    water_share: np.ndarray,
    site_coverage: np.ndarray | None,
    cfg: SuhiConfig,
    *,
    elevation_m: np.ndarray | None = None,
    tile_xy: tuple[np.ndarray, np.ndarray] | None = None,
    area_m2: np.ndarray | None = None,
) -> SuhiClasses:
    """Urban and rural reference cells; rural cells lie outside the urban extent.

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
        The ``suhi`` config section: ``rural`` = ``buffer`` (non-urban cells within
        ``buffer_m`` of the urban extent) or ``ring`` (the ring around the extent whose area
        equals the extent's, Peng et al. 2012, Environ. Sci. Technol. 46, 696-703).
    elevation_m
        Cell elevations for the +-tolerance filter (Chakraborty & Lee 2019), or None.
    tile_xy
        The cells' tile column and row (uhi's grid); None snaps the centroids to a grid.
    area_m2
        Cell areas for the report (None: the grid spacing squared).

    Raises
    ------
    NoDataError
        No land cell (an AOI that is all water), or urban cells but no rural cell (an AOI that
        is all city): the SUHI would be NaN. Land without any urban cell is not an error: the
        masks are empty and ``rural_report['warning']`` says why there is no SUHI.
    """
    from uhi.errors import NoDataError

    water = np.nan_to_num(water_share, nan=0.0) > WATER_SHARE_MAX
    observed = ~np.isnan(ndbi_mean)
    if site_coverage is not None:
        sc = np.nan_to_num(site_coverage, nan=0.0)
        urban = (sc >= cfg.urban_site_coverage) & ~water
    else:
        urban = observed & (np.nan_to_num(ndbi_mean, nan=-np.inf) > cfg.rural_max_ndbi) & ~water
    n = len(urban)
    method = describe_method(
        cfg, have_buildings=site_coverage is not None, have_elevation=elevation_m is not None
    )
    if not urban.any():
        fix = ("check city.aoi / city.bbox covers built-up land (and suhi.urban_site_coverage / "
               "suhi.rural_max_ndbi)")
        if (water | ~observed).all():
            raise NoDataError(
                f"no urban cell among {n} cells (every observed cell is more than half water); "
                f"the SUHI needs a city: {fix}"
            )
        # land without a city (a forest, farmland): the panel is still worth writing, so the
        # SUHI is left out with a stated warning rather than stopping the run
        none = np.zeros(n, dtype=bool)
        warning = f"no urban cell among {n} cells: no SUHI (suhi_c and anomaly_c are NaN); {fix}"
        return SuhiClasses(urban=none, rural=none.copy(), water=water, method=f"{method}; no urban cell: no SUHI",
                           extent=none.copy(), rural_report={"rural_cells": 0, "urban_cells": 0, "warning": warning})
    row, col, size = _grid_positions(np.asarray(x_m, float), np.asarray(y_m, float), tile_xy)
    cell_area = np.asarray(area_m2, dtype=np.float64) if area_m2 is not None else np.full(n, size * size)
    extent = urban_extent(row, col, urban)
    dist = _distance_to_extent(row, col, extent, size)
    outside = ~extent
    truncated = False
    if cfg.rural == "buffer":
        ring = outside & (dist <= cfg.buffer_m)
        width = float(cfg.buffer_m)
    else:
        # the nearest outside cells, in order of distance (ties by position), until their area
        # equals the extent's: the ring's area matches the urban extent's within one cell
        target = float(cell_area[extent].sum())
        cand = np.flatnonzero(outside)
        order = cand[np.lexsort((cand, dist[cand]))]
        cum = np.cumsum(cell_area[order])
        take = int(np.searchsorted(cum, target - 0.5 * float(np.median(cell_area)))) + 1
        truncated = bool(cum.size == 0 or cum[-1] < target - 0.5 * float(np.median(cell_area)))
        ring = np.zeros(n, dtype=bool)
        ring[order[:take]] = True
        width = float(dist[order[:take]].max()) if take and order.size else 0.0
    candidates = observed & ~urban & ~water
    rural = candidates & ring
    if elevation_m is not None:
        median = np.nanmedian(elevation_m[urban])
        rural &= np.abs(elevation_m - median) <= cfg.elevation_tolerance_m
    if not rural.any():
        raise NoDataError(
            f"no rural reference cell: all {int((~water).sum())} land cells are inside the urban "
            f"extent or left out ({method}); enlarge city.aoi / city.bbox so it includes rural "
            "land around the city"
        )
    report: dict[str, Any] = {
        "rural_cells": int(rural.sum()),
        "rural_area_m2": float(cell_area[rural].sum()),
        "urban_cells": int(urban.sum()),
        "extent_cells": int(extent.sum()),
        "extent_area_m2": float(cell_area[extent].sum()),
        "ring_cells": int(ring.sum()),
        "ring_area_m2": float(cell_area[ring].sum()),
        "ring_width_m": width,
        "band_m": [float(dist[rural].min()), float(dist[rural].max())],
        "warning": None,
    }
    n_rural, n_urban = report["rural_cells"], report["urban_cells"]
    problems: list[str] = []
    if truncated:
        problems.append(
            f"the AOI holds only {report['ring_area_m2'] / 1e6:.2f} km2 outside the urban extent, less "
            f"than the extent's {report['extent_area_m2'] / 1e6:.2f} km2: the equal-area ring is cut by "
            "the AOI; enlarge city.aoi / city.bbox around the city"
        )
    if n_rural < MIN_RURAL_CELLS or n_rural < MIN_RURAL_SHARE * n_urban:
        problems.append(
            f"only {n_rural} rural reference cells for {n_urban} urban cells (fewer than "
            f"{MIN_RURAL_CELLS} or {MIN_RURAL_SHARE:.0%} of the urban count): the SUHI rests on few "
            "cells; enlarge city.aoi / city.bbox around the city"
            + (" or raise suhi.buffer_m" if cfg.rural == "buffer" else "")
        )
    report["warning"] = "; ".join(problems) or None
    # the figures travel with the sentence into every output that states the method
    method += (
        f"; rural reference: {n_rural} cells, {report['rural_area_m2'] / 1e6:.2f} km2, "
        f"{report['band_m'][0]:.0f}-{report['band_m'][1]:.0f} m from the urban extent"
    )
    return SuhiClasses(urban=urban, rural=rural, water=water, method=method, extent=extent,
                       rural_report=report)


def suhi_series(dates: np.ndarray, lst_c: np.ndarray, classes: SuhiClasses) -> tuple[Any, np.ndarray]:
    """Per-date SUHI intensity and the per cell and date anomaly.

    Parameters
    ----------
    dates
        The panel's dates, ascending (datetime64).
    lst_c
        LST (degrees C) date-major, shape ``(dates, cells)``: row ``d`` holds every cell on
        ``dates[d]``, in the order of the masks.
    classes
        Urban/rural masks.

    Returns
    -------
    series, anomaly_c
        DataFrame ``date, urban_lst_c, rural_lst_c, suhi_c, n_urban, n_rural, method``, and
        ``(dates, cells)`` LST minus that date's rural mean (NaN when the date has no rural
        cell). The means are those of ``groupby("date").mean()`` over the long table, bit for
        bit: NaN skipped, Kahan-compensated sums in cell order (uhi.stats.grouped), one date's
        contiguous row at a time instead of factorising a 16M-row date column.
    """
    import pandas as pd

    from uhi.stats.grouped import compensated_column_means

    lst = np.asarray(lst_c, dtype=np.float64)
    if lst.ndim != 2 or lst.shape[0] != len(dates) or lst.shape[1] != len(classes.urban):
        raise ValueError(f"lst_c has shape {lst.shape}; expected (dates, cells) = ({len(dates)}, {len(classes.urban)})")
    stats: dict[str, list[float]] = {"urban_lst_c": [], "rural_lst_c": [], "n_urban": [], "n_rural": []}
    for row in lst:
        for name, mask in (("urban", classes.urban), ("rural", classes.rural)):
            values = row[mask]
            stats[f"{name}_lst_c"].append(compensated_column_means(values[:, None])[0] if values.size else np.nan)
            stats[f"n_{name}"].append(int(np.count_nonzero(~np.isnan(values))))
    series = pd.DataFrame({
        "date": np.asarray(dates, dtype="datetime64[ns]"),
        "urban_lst_c": np.asarray(stats["urban_lst_c"], dtype=np.float64),
        "rural_lst_c": np.asarray(stats["rural_lst_c"], dtype=np.float64),
    })
    series["suhi_c"] = series["urban_lst_c"] - series["rural_lst_c"]
    series["n_urban"] = np.asarray(stats["n_urban"], dtype=np.int64)
    series["n_rural"] = np.asarray(stats["n_rural"], dtype=np.int64)
    series["method"] = classes.method
    anomaly = lst - series["rural_lst_c"].to_numpy()[:, None]
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

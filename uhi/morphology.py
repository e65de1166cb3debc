"""Building footprints (and optional blocks, land use, population, zones) -> per-cell variables."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from uhi.config import BuildingsConfig
from uhi.errors import InputError

__all__ = ["MORPHOLOGY_COLUMNS", "MorphologyReport", "cell_morphology", "read_layer", "polygons_only"]

log = logging.getLogger("uhi.morphology")

MORPHOLOGY_COLUMNS = (
    "building_count",
    "footprint_area_m2",
    "site_coverage",
    "block_coverage",
    "height_mean_m",
    "height_max_m",
    "floors_mean",
    "floor_area_m2",
    "far",
    "landuse_entropy",
    "population",
)


@dataclass(frozen=True)
class MorphologyReport:
    """What the footprints layer held: counts behind the per-cell columns (for the log/summary)."""

    buildings: int
    repaired: int
    dropped: int
    with_height: int
    with_floors: int


def read_layer(path: Path, layer: str | None, crs: str, what: str) -> Any:
    """Read any OGR layer, reproject to ``crs``; InputError with the path when unusable."""
    import geopandas as gpd
    from pyogrio.errors import DataLayerError, DataSourceError

    if not Path(path).exists():
        raise InputError(f"{what} file not found: {path}; fix buildings.* in the config")
    try:
        gdf = gpd.read_file(path, layer=layer) if layer else gpd.read_file(path)
    except (DataSourceError, DataLayerError, ValueError) as exc:
        raise InputError(f"cannot read {what} {path}: {exc}; give an OGR-readable file") from None
    if gdf.crs is None:
        raise InputError(f"{what} {path} has no CRS; set one (e.g. with ogr2ogr -a_srs)")
    return gdf.to_crs(crs)


def polygons_only(gdf: Any) -> tuple[Any, int, int]:
    """Repair invalid geometries (``make_valid``) and keep polygonal parts.

    Returns the cleaned frame (one row per input feature that kept an area), how many
    geometries were repaired and how many were dropped (no polygonal part left).
    """
    import shapely

    geoms = gdf.geometry.values
    invalid = ~shapely.is_valid(geoms) & ~shapely.is_missing(geoms)
    repaired = int(invalid.sum())
    if repaired:
        geoms = geoms.copy()
        geoms[invalid] = shapely.make_valid(geoms[invalid])
    # a repaired polygon may become a collection with lines or points: keep only areas
    parts = [
        shapely.union_all([p for p in shapely.get_parts(g) if p.geom_type in ("Polygon", "MultiPolygon")])
        if g is not None and g.geom_type == "GeometryCollection"
        else g
        for g in geoms
    ]
    out = gdf.set_geometry(np.asarray(parts, dtype=object), crs=gdf.crs)
    keep = ~out.geometry.is_empty & out.geometry.notna() & out.geometry.geom_type.isin(["Polygon", "MultiPolygon"])
    return out[keep].reset_index(drop=True), repaired, int((~keep).sum())


def _numeric(gdf: Any, col: str | None) -> np.ndarray:
    import pandas as pd

    if not col or col not in gdf.columns:
        return np.full(len(gdf), np.nan)
    # OSM tags hold text such as "12 m" or "3;4": take the leading number
    values = gdf[col]
    if not pd.api.types.is_numeric_dtype(values):
        values = values.astype("string").str.extract(r"^\s*([0-9]+(?:\.[0-9]+)?)", expand=False)
    arr = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    arr[arr <= 0] = np.nan
    return arr


def _overlay(cells: np.ndarray, layer: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cell index, layer index, intersection area) for every intersecting pair."""
    import shapely

    tree = shapely.STRtree(layer)
    ci, li = tree.query(cells, predicate="intersects")
    area = shapely.area(shapely.intersection(cells[ci], layer[li]))
    keep = area > 0
    return ci[keep], li[keep], area[keep]


def cell_morphology(cell_polygons: np.ndarray, cfg: BuildingsConfig, working_crs: str) -> tuple[Any, MorphologyReport | None]:
    """Morphology columns for cells given as polygons in the (metric) working CRS.

    Parameters
    ----------
    cell_polygons
        Shapely polygons of the cells in ``working_crs``. Ratios use these planar areas, the
        same metric as the footprint areas, so the projection's scale factor cancels.
    cfg
        The ``buildings`` config section.
    working_crs
        Projected CRS in metres.

    Returns
    -------
    frame, report
        DataFrame with :data:`MORPHOLOGY_COLUMNS` (plus ``zone`` when a zones layer is given),
        one row per cell; NaN wherever a layer that would feed a column is missing. The report
        is None without a footprints layer.
    """
    import pandas as pd
    import shapely

    n = len(cell_polygons)
    cell_area = shapely.area(cell_polygons)
    cols: dict[str, Any] = {c: np.full(n, np.nan) for c in MORPHOLOGY_COLUMNS}
    report = None
    if cfg.path is not None:
        raw = read_layer(cfg.path, cfg.layer, working_crs, "buildings")
        bld, repaired, dropped = polygons_only(raw)
        if repaired or dropped:
            log.warning("buildings: %d invalid geometries repaired, %d without area dropped", repaired, dropped)
        height = _numeric(bld, cfg.height_col)
        floors = _numeric(bld, cfg.floors_col)
        report = MorphologyReport(
            buildings=len(bld), repaired=repaired, dropped=dropped,
            with_height=int((~np.isnan(height)).sum()), with_floors=int((~np.isnan(floors)).sum()),
        )
        # floors from the column, else height / storey height; height likewise from floors
        floors_eff = np.where(np.isnan(floors), height / cfg.storey_height_m, floors)
        height_eff = np.where(np.isnan(height), floors * cfg.storey_height_m, height)
        geoms = bld.geometry.values
        ci, bi, area = _overlay(cell_polygons, np.asarray(geoms))
        fp = _union_area(cell_polygons, np.asarray(geoms), ci, bi, area, n)
        # a building counts once, in the cell holding its representative point
        pts = shapely.point_on_surface(np.asarray(geoms))
        cell_of = shapely.STRtree(cell_polygons).query(pts, predicate="within")
        count = np.bincount(cell_of[1], minlength=n).astype(np.float64)
        cols["building_count"] = count
        cols["footprint_area_m2"] = fp
        cols["site_coverage"] = fp / cell_area
        h = height_eff[bi]
        has_h = ~np.isnan(h)
        w_h = np.bincount(ci[has_h], weights=area[has_h], minlength=n)
        with np.errstate(invalid="ignore", divide="ignore"):
            cols["height_mean_m"] = np.where(
                w_h > 0, np.bincount(ci[has_h], weights=area[has_h] * h[has_h], minlength=n) / w_h, np.nan
            )
            hmax = np.full(n, -np.inf)
            np.maximum.at(hmax, ci[has_h], h[has_h])
            cols["height_max_m"] = np.where(np.isfinite(hmax), hmax, np.nan)
            f = floors_eff[bi]
            has_f = ~np.isnan(f)
            w_f = np.bincount(ci[has_f], weights=area[has_f], minlength=n)
            cols["floors_mean"] = np.where(
                w_f > 0, np.bincount(ci[has_f], weights=area[has_f] * f[has_f], minlength=n) / w_f, np.nan
            )
            # a footprint of unknown height is at least one storey: floor area is a lower bound
            cols["floor_area_m2"] = np.bincount(ci, weights=area * np.where(has_f, f, 1.0), minlength=n)
            cols["far"] = cols["floor_area_m2"] / cell_area
        if cfg.blocks_path is not None:
            blocks, _, _ = polygons_only(read_layer(cfg.blocks_path, None, working_crs, "blocks"))
            bci, _, barea = _overlay(cell_polygons, np.asarray(blocks.geometry.values))
            block_area = np.bincount(bci, weights=barea, minlength=n)
            with np.errstate(invalid="ignore", divide="ignore"):
                cols["block_coverage"] = np.where(block_area > 0, fp / block_area, np.nan)
    if cfg.landuse_path is not None:
        cols["landuse_entropy"] = _landuse_entropy(cell_polygons, cfg, working_crs)
    if cfg.population_path is not None:
        cols["population"] = _population(cell_polygons, cfg, working_crs)
    frame = pd.DataFrame(cols)
    if cfg.zones_path is not None:
        frame["zone"] = _zones(cell_polygons, cfg, working_crs)
    return frame, report


def _union_area(
    cells: np.ndarray, geoms: np.ndarray, ci: np.ndarray, bi: np.ndarray, area: np.ndarray, n: int
) -> np.ndarray:
    """Built ground per cell: the area of the union of clipped footprints, so overlapping
    polygons (OSM building parts drawn over their building) count once and coverage <= 1."""
    import shapely

    out = np.bincount(ci, weights=area, minlength=n)
    counts = np.bincount(ci, minlength=n)
    multi = np.flatnonzero(counts > 1)
    if len(multi) == 0:
        return out
    sel = np.isin(ci, multi)
    order = np.argsort(ci[sel], kind="stable")
    c_sel, b_sel = ci[sel][order], bi[sel][order]
    starts = np.flatnonzero(np.r_[True, c_sel[1:] != c_sel[:-1]])
    ends = np.r_[starts[1:], len(c_sel)]
    for s, e in zip(starts, ends, strict=True):
        c = c_sel[s]
        pieces = shapely.intersection(cells[c], geoms[b_sel[s:e]])
        merged = shapely.union_all(pieces)
        out[c] = shapely.area(merged)
    return out


def _landuse_entropy(cells: np.ndarray, cfg: BuildingsConfig, crs: str) -> np.ndarray:
    """Shannon entropy -sum p ln p of land-use area shares within each cell."""
    import pandas as pd

    lu, _, _ = polygons_only(read_layer(cfg.landuse_path, None, crs, "land use"))  # type: ignore[arg-type]
    if cfg.landuse_col not in lu.columns:
        raise InputError(
            f"land-use layer {cfg.landuse_path} has no column {cfg.landuse_col!r}; "
            f"set buildings.landuse_col to one of: {', '.join(map(str, lu.columns[:20]))}"
        )
    ci, li, area = _overlay(cells, np.asarray(lu.geometry.values))
    df = pd.DataFrame({"cell": ci, "cls": lu[cfg.landuse_col].astype(str).to_numpy()[li], "a": area})
    by = df.groupby(["cell", "cls"])["a"].sum()
    p = by / by.groupby(level=0).transform("sum")
    h = (-(p * np.log(p))).groupby(level=0).sum()
    out = np.full(len(cells), np.nan)
    out[h.index.to_numpy()] = h.to_numpy()
    return out + 0.0  # -0.0 (a single class) reads as 0


def _population(cells: np.ndarray, cfg: BuildingsConfig, crs: str) -> np.ndarray:
    """Population per cell: points summed by containing cell, polygons by area share."""
    import shapely

    pop = read_layer(cfg.population_path, None, crs, "population")  # type: ignore[arg-type]
    if cfg.population_col not in pop.columns:
        raise InputError(
            f"population layer {cfg.population_path} has no column {cfg.population_col!r}; "
            "set buildings.population_col"
        )
    value = np.nan_to_num(_numeric(pop, cfg.population_col), nan=0.0)
    geoms = np.asarray(pop.geometry.values)
    out = np.zeros(len(cells))
    is_area = np.isin(shapely.get_type_id(geoms), [3, 6])
    if (~is_area).any():
        pts = shapely.point_on_surface(geoms[~is_area])
        li, ci = shapely.STRtree(cells).query(pts, predicate="within")
        np.add.at(out, ci, value[~is_area][li])
    if is_area.any():
        area_geoms = geoms[is_area]
        ci, li, area = _overlay(cells, area_geoms)
        share = area / shapely.area(area_geoms)[li]
        np.add.at(out, ci, value[is_area][li] * share)
    return out


def _zones(cells: np.ndarray, cfg: BuildingsConfig, crs: str) -> np.ndarray:
    """The zone of the zones polygon holding each cell's centroid (None outside every zone)."""
    import shapely

    zones = read_layer(cfg.zones_path, None, crs, "zones")  # type: ignore[arg-type]
    if cfg.zone_col not in zones.columns:
        raise InputError(f"zones layer {cfg.zones_path} has no column {cfg.zone_col!r}; set buildings.zone_col")
    cell_i, zone_i = shapely.STRtree(np.asarray(zones.geometry.values)).query(
        shapely.centroid(cells), predicate="within"
    )
    out = np.full(len(cells), None, dtype=object)
    out[cell_i] = zones[cfg.zone_col].astype(str).to_numpy()[zone_i]
    return out

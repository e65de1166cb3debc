"""The exposure stage: who lives in the heat, per cell, per zone and for the city (docs/exposure.md)."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from uhi.config import Config, ExposureConfig
from uhi.errors import ConfigError, InputError
from uhi.scenes_index import is_synthetic
from uhi.stages.runner import StageSpec
from uhi.workspace import Workspace

__all__ = ["SPEC", "run", "RASTER_SUFFIXES"]

log = logging.getLogger("uhi.exposure")

RASTER_SUFFIXES = (".tif", ".tiff", ".vrt", ".img", ".asc", ".nc")
# the zone map's CRS: web-mercator cells are axis-aligned squares there, as on every uhi map
MAP_CRS = "EPSG:3857"
_CELL_COLS = ("cell", "tile_x", "tile_y", "zoom", "x_m", "y_m", "area_m2", "site_coverage", "floor_area_m2")


@dataclass
class _Zones:
    """Zones in the working CRS with their checked identifiers."""

    frame: Any  # GeoDataFrame: id, name, rank value, geometry (working CRS)
    source: str
    notes: list[str] = field(default_factory=list)


@dataclass
class _Population:
    """Counts placed on cells and how."""

    per_cell: np.ndarray  # (cells, 1 + groups): population, then each group
    method: str
    total_input: float
    placed: float
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# reading and checking the inputs (all of it before anything is written)


def _working_crs(ws: Workspace) -> str:
    import pyarrow.parquet as pq

    meta = pq.read_schema(ws.cells).metadata or {}
    raw = meta.get(b"uhi:working_crs")
    if not raw:
        raise InputError(f"{ws.cells} has no uhi:working_crs metadata; run `uhi compute` again")
    return str(raw.decode())


def _read_cells(ws: Workspace) -> Any:
    import geopandas as gpd
    import pyarrow.parquet as pq

    names = pq.read_schema(ws.cells).names
    missing = [c for c in ("cell", "tile_x", "tile_y", "zoom", "x_m", "y_m", "area_m2") if c not in names]
    if missing:
        raise InputError(f"{ws.cells} lacks column(s) {missing}; run `uhi compute` again")
    cols = [c for c in _CELL_COLS if c in names]
    geom = "geometry" if "geometry" in names else None
    cells = gpd.read_parquet(ws.cells, columns=[*cols, *([geom] if geom else [])])
    for c in ("site_coverage", "floor_area_m2"):
        if c not in cells.columns:
            cells[c] = np.nan
    return cells


def _year_values(config: Config, ws: Workspace, cells: Any) -> tuple[int, Any]:
    """Per-cell means over the reference year's panel dates (NaN dates skipped)."""
    from uhi.panel import latest_year, read_panel

    year = config.exposure.year
    if year is None:
        year = latest_year(ws.panel)
        if year is None:
            raise InputError(f"{ws.panel} has no rows; run `uhi compute` first")
    panel = read_panel(ws.panel, ["cell", "lst_c", "anomaly_c", "ndvi"], months=config.time.months, years=[year])
    if not len(panel):
        raise ConfigError(
            f"exposure.year {year} has no panel dates in months {list(config.time.months)}; "
            "choose a year the panel holds (or leave exposure.year unset for the latest)"
        )
    for c in ("lst_c", "anomaly_c", "ndvi"):
        if c not in panel.columns:
            panel[c] = np.nan
    means = panel.groupby("cell", observed=True)[["lst_c", "anomaly_c", "ndvi"]].mean()
    means.index = means.index.astype(object)
    return int(year), means.reindex(cells["cell"].to_numpy())


def _gi_classes(ws: Workspace, cells: Any, year: int) -> tuple[np.ndarray, str]:
    """The model stage's Gi* class of ``year`` per cell (NaN where Gi* had no value).

    Read from ``model/hotspots.parquet`` (the model's table without geometry), or from
    ``model/hotspots.geojson`` in a workspace written before the Parquet copy existed.
    """
    import pandas as pd

    table = ws.path("model", "hotspots.parquet")
    path = table if table.is_file() else ws.path("model", "hotspots.geojson")
    if not path.is_file():
        raise InputError(f"missing {path}; run `uhi model` first (exposure reads its Gi* classes)")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        cols = pq.read_schema(path).names
    else:
        import pyogrio

        cols = pyogrio.read_info(path)["fields"].tolist()
    klass, z = f"hotspot_{year}", f"gi_z_{year}"
    if klass not in cols and "hotspot" in cols:
        klass, z = "hotspot", "gi_z"  # a single-period model writes unsuffixed columns
    key = "cell" if "cell" in cols else "unit"  # "unit" in workspaces written before the key was "cell"
    if klass not in cols or key not in cols:
        return np.full(len(cells), np.nan), f"model/{path.name} has no Gi* of {year}: hot-spot figures are empty"
    wanted = [key, klass, *([z] if z in cols else [])]
    if path.suffix == ".parquet":
        hot = pd.read_parquet(path, columns=wanted)
    else:
        import pyogrio

        hot = pyogrio.read_dataframe(path, columns=wanted, read_geometry=False)
    cls = hot[klass].to_numpy(dtype=float)
    if z in hot.columns:
        # the model writes class 0 where a cell had no value; the missing z-score tells them apart
        cls = np.where(np.isfinite(hot[z].to_numpy(dtype=float)), cls, np.nan)
    series = pd.Series(cls, index=hot[key].astype(str).to_numpy())
    out = series.reindex(cells["cell"].astype(str).to_numpy()).to_numpy(dtype=float)
    return out, f"Gi* classes of {year} from model/{path.name} ({klass})"


def _read_vector(path: Path, layer: str | None, key: str) -> Any:
    import geopandas as gpd

    if not path.exists():
        raise InputError(f"{key} not found: {path}; give an existing file")
    try:
        frame = gpd.read_file(path, layer=layer)
    except (ValueError, OSError, RuntimeError) as exc:
        raise InputError(f"cannot read {key} {path}: {exc}") from None
    if frame.crs is None:
        raise InputError(
            f"{key} {path.name} has no CRS; assign one (e.g. ogr2ogr -a_srs EPSG:4326) and run again"
        )
    if not len(frame):
        raise InputError(f"{key} {path.name} has no features")
    return frame


def _check_counts(frame: Any, cols: list[str], path: Path, key: str) -> None:
    import pandas as pd

    missing = [c for c in cols if c not in frame.columns]
    if missing:
        have = sorted(str(c) for c in frame.columns if c != frame.geometry.name)
        raise InputError(f"{path.name} ({key}) has no column(s) {missing}; available: {have}")
    for c in cols:
        if not pd.api.types.is_numeric_dtype(frame[c]):
            raise InputError(f"column {c!r} of {path.name} is not numeric ({frame[c].dtype}); give counts of people")
        v = frame[c].to_numpy(dtype=float)
        nan = int((~np.isfinite(v)).sum())
        if nan:
            raise InputError(f"column {c!r} of {path.name} has {nan} empty (NaN) counts; fill them (0 if none live there)")
        neg = int((v < 0).sum())
        if neg:
            raise InputError(f"column {c!r} of {path.name} has {neg} negative counts (min {v.min():g}); counts must be >= 0")


def _valid_geoms(geoms: Any) -> Any:
    import shapely

    arr = np.asarray(geoms, dtype=object)
    bad = ~shapely.is_valid(arr)
    if bad.any():
        arr = arr.copy()
        arr[bad] = shapely.make_valid(arr[bad])
    return arr


def _read_zones(e: ExposureConfig, crs: str) -> _Zones:
    import pandas as pd

    assert e.zones_path is not None
    path = Path(e.zones_path)
    frame = _read_vector(path, e.zones_layer, "exposure.zones_path")
    name_col = e.zone_name_col
    notes = []
    if name_col and name_col not in frame.columns and "zone_name_col" not in e.model_fields_set:
        # the default 'name' is a guess, not a demand: zones are then labelled by their id
        notes.append(f"{path.name} has no column {name_col!r}: zones are named by {e.zone_id_col!r}")
        name_col = None
    need = [e.zone_id_col, *([name_col] if name_col else []), *([e.rank_col] if e.rank_col else [])]
    missing = [c for c in need if c not in frame.columns]
    if missing:
        have = sorted(str(c) for c in frame.columns if c != frame.geometry.name)
        raise InputError(
            f"{path.name} (exposure.zones_path) has no column(s) {missing}; available: {have}; "
            "set exposure.zone_id_col / zone_name_col / rank_col"
        )
    ids = frame[e.zone_id_col]
    if ids.isna().any():
        raise InputError(f"column {e.zone_id_col!r} of {path.name} has {int(ids.isna().sum())} empty zone ids")
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        shown = sorted({str(v) for v in dup})[:5]
        raise InputError(
            f"column {e.zone_id_col!r} of {path.name} is not unique: {len(dup)} rows share ids {shown}; "
            "give one row per zone (dissolve them) or choose another exposure.zone_id_col"
        )
    if e.rank_col and not pd.api.types.is_numeric_dtype(frame[e.rank_col]):
        raise InputError(f"column {e.rank_col!r} of {path.name} (exposure.rank_col) is not numeric")
    out = frame.to_crs(crs)
    z = pd.DataFrame({"zone": ids.astype(str).to_numpy()})
    z["name"] = frame[name_col].astype(str).to_numpy() if name_col else z["zone"]
    if e.rank_col:
        z[e.rank_col] = frame[e.rank_col].to_numpy(dtype=float)
    import geopandas as gpd

    return _Zones(gpd.GeoDataFrame(z, geometry=_valid_geoms(out.geometry), crs=crs), str(path), notes)


def _cell_quads(cells: Any, crs: str) -> np.ndarray:
    from uhi.grid.cells import cell_quads

    return cell_quads(cells["tile_x"].to_numpy(), cells["tile_y"].to_numpy(), int(cells["zoom"].iloc[0]), crs)


def _population_raster(e: ExposureConfig, cells: Any) -> _Population:
    import rasterio
    from rasterio.errors import RasterioIOError, WindowError
    from rasterio.windows import Window, from_bounds

    from uhi.grid.cells import cell_quads
    from uhi.grid.zonal import build_coverage
    from uhi.stats.exposure import raster_counts_per_cell

    assert e.population_path is not None
    path = Path(e.population_path)
    if e.groups:
        raise ConfigError(
            f"exposure.groups {list(e.groups)} need population polygons with those columns; "
            f"{path.name} is a raster"
        )
    try:
        src = rasterio.open(path)
    except RasterioIOError as exc:
        raise InputError(f"cannot read exposure.population_path {path}: {exc}") from None
    with src:
        if src.crs is None:
            raise InputError(
                f"population raster {path.name} has no CRS; assign its CRS, e.g. gdal_edit.py -a_srs EPSG:<code> {path.name}, and run again"
            )
        quads = cell_quads(cells["tile_x"].to_numpy(), cells["tile_y"].to_numpy(), int(cells["zoom"].iloc[0]), src.crs)
        # read only the window under the cells (plus a pixel), never the whole country
        xs, ys = quads[..., 0], quads[..., 1]
        pad_x, pad_y = abs(src.transform.a), abs(src.transform.e)
        win = from_bounds(xs.min() - pad_x, ys.min() - pad_y, xs.max() + pad_x, ys.max() + pad_y, src.transform)
        try:
            c0, r0 = math.floor(win.col_off), math.floor(win.row_off)
            c1, r1 = math.ceil(win.col_off + win.width), math.ceil(win.row_off + win.height)
            win = Window(c0, r0, c1 - c0, r1 - r0).intersection(Window(0, 0, src.width, src.height))
        except WindowError:
            raise InputError(f"population raster {path.name} does not overlap the AOI's cells") from None
        band = src.read(1, window=win, masked=True).astype(np.float64)
        transform = src.window_transform(win)
    counts = band.filled(np.nan)
    neg = int((counts < 0).sum())
    if neg:
        raise InputError(
            f"population raster {path.name} band 1 has {neg} negative counts (min {np.nanmin(counts):g}); "
            "counts must be >= 0 (declare the fill value as nodata)"
        )
    nodata = int(np.isnan(counts).sum())
    cov = build_coverage(quads, transform, counts.shape)
    per = raster_counts_per_cell(cov.matrix, counts)
    total = float(np.nansum(counts))
    notes = ["raster summed per cell with coverage weights (exactextract 'sum'), in the raster's own CRS"]
    if nodata:
        notes.append(f"{nodata} nodata pixels under the cells counted as 0 people")
    return _Population(per[:, None], "raster coverage-weighted sum", total, float(per.sum()), notes)


def _population_polygons(e: ExposureConfig, cells: Any, crs: str, quads: np.ndarray) -> _Population:
    from uhi.stats.exposure import split_polygons

    assert e.population_path is not None
    path = Path(e.population_path)
    frame = _read_vector(path, e.population_layer, "exposure.population_path")
    cols = [e.population_col, *e.groups]
    _check_counts(frame, cols, path, "exposure.population_path")
    polys = _valid_geoms(frame.to_crs(crs).geometry)
    counts = frame[cols].to_numpy(dtype=float)
    density = None
    fa = cells["floor_area_m2"].to_numpy(dtype=float)
    if e.dasymetric and np.isfinite(fa).any():
        density = np.where(np.isfinite(fa), fa, 0.0) / cells["area_m2"].to_numpy(dtype=float)
    res = split_polygons(quads, polys, counts, density=density)
    methods = {m: int((res.method == m).sum()) for m in ("floor_area", "area", "none")}
    if density is None:
        method = "polygons split by area (projected working CRS)"
        why = "exposure.dasymetric is off" if not e.dasymetric else "no floor area in compute/cells.parquet (set buildings.path)"
        notes = [f"areal weighting: {why}"]
    else:
        method = "polygons split by building floor area (dasymetric)"
        notes = [f"dasymetric by floor area for {methods['floor_area']} polygons; by area for {methods['area']} "
                 "polygons with no floor area under them"]
    if methods["none"]:
        notes.append(f"{methods['none']} polygons of {path.name} do not touch the cells: their people are not placed")
    partial = int(((res.share_in_cells > 0) & (res.share_in_cells < 1 - 1e-9)).sum())
    if partial:
        notes.append(f"{partial} polygons reach beyond the cells: only the share of their area over cells is placed")
    total = float(counts[:, 0].sum())
    return _Population(res.per_cell, method, total, float(res.per_cell[:, 0].sum()), notes)


# ---------------------------------------------------------------------------------------------
# figures


def _finite(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return float(v) if math.isfinite(float(v)) else None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, dict):
        return {str(k): _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    return v


def _wavg(v: np.ndarray, w: np.ndarray) -> float:
    ok = np.isfinite(v) & np.isfinite(w) & (w > 0)
    return float((v[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() and w[ok].sum() > 0 else float("nan")


def _levels(cells: Any, zones: Any | None, groups: list[str], e: ExposureConfig) -> dict[str, Any]:
    """The headline figures at cell and at zone level, side by side (the scale effect)."""
    from uhi.stats.exposure import concentration_index, hottest_quintile, representation_ratios

    out: dict[str, Any] = {}
    units = {"cell": cells}
    if zones is not None and len(zones):
        units["zone"] = zones.rename(columns={"lst_pop_mean_c": "lst_c"})
    for level, t in units.items():
        pop = np.nan_to_num(t["population"].to_numpy(dtype=float), nan=0.0)
        lst = t["lst_c"].to_numpy(dtype=float)
        valid = np.isfinite(lst)
        hot = hottest_quintile(lst)
        p_valid = pop[valid].sum()
        rec: dict[str, Any] = {
            "units": int(len(t)),
            "units_with_lst": int(valid.sum()),
            "lst_pop_mean_c": _wavg(lst, pop),
            "share_people_hottest_quintile": float(pop[hot].sum() / p_valid) if p_valid > 0 else float("nan"),
            "share_people_above_threshold": float(pop[valid & (np.where(valid, lst, -np.inf) > e.threshold_c)].sum() / p_valid)
            if p_valid > 0 else float("nan"),
            "ratio_hottest_quintile": representation_ratios(
                hot, pop, {g: t[g].to_numpy(dtype=float) for g in groups}, valid
            ),
        }
        if e.rank_col and zones is not None and e.rank_col in t.columns:
            rec["concentration_index_c"] = concentration_index(lst, t[e.rank_col].to_numpy(dtype=float), pop)
        out[level] = rec
    return out


def _city(cells: Any, zones: Any | None, pop: _Population | None, groups: list[str], e: ExposureConfig,
          year: int, notes: list[str]) -> dict[str, Any]:
    popv = np.nan_to_num(cells["population"].to_numpy(dtype=float), nan=0.0)
    lst = cells["lst_c"].to_numpy(dtype=float)
    gi = cells["gi_class"].to_numpy(dtype=float)
    has = np.isfinite(lst)
    hot95 = np.isfinite(gi) & (gi >= 2)
    hot99 = np.isfinite(gi) & (gi >= 3)
    city: dict[str, Any] = {
        "year": year,
        "threshold_c": e.threshold_c,
        "cells": int(len(cells)),
        "cells_with_lst": int(has.sum()),
        "population_method": pop.method if pop else None,
        "population_input": pop.total_input if pop else None,
        "population": float(popv.sum()) if pop else None,
        "people_no_lst": float(popv[~has].sum()) if pop else None,
        "people_no_zone": float(popv[cells["zone"].isna().to_numpy()].sum()) if pop and zones is not None else None,
        "lst_mean_c": _wavg(lst, cells["area_m2"].to_numpy(dtype=float)),
        "lst_pop_mean_c": _wavg(lst, popv) if pop else None,
        "anomaly_pop_mean_c": _wavg(cells["anomaly_c"].to_numpy(dtype=float), popv) if pop else None,
        "cells_hot_95": int(hot95.sum()),
        "cells_hot_99": int(hot99.sum()),
        "people_hot_95": float(popv[hot95].sum()) if pop else None,
        "people_hot_99": float(popv[hot99].sum()) if pop else None,
        "people_above_threshold": float(popv[has & (np.where(has, lst, -np.inf) > e.threshold_c)].sum()) if pop else None,
        "groups": {
            g: {
                "total": float(np.nansum(cells[g].to_numpy(dtype=float))),
                "hot_95": float(np.nansum(np.where(hot95, cells[g].to_numpy(dtype=float), 0.0))),
                "hot_99": float(np.nansum(np.where(hot99, cells[g].to_numpy(dtype=float), 0.0))),
            }
            for g in groups
        },
        "zones": int(len(zones)) if zones is not None else 0,
        "notes": notes,
    }
    if pop:
        city["levels"] = _levels(cells, zones, groups, e)
    return _finite(city)


def _scale_sheet(summary: dict[str, Any]) -> Any:
    import pandas as pd

    levels = summary.get("levels") or {}
    rows: dict[str, dict[str, Any]] = {}
    for level, rec in levels.items():
        for k, v in rec.items():
            if isinstance(v, dict):
                for g, x in v.items():
                    rows.setdefault(f"{k}:{g}", {})[level] = x
            else:
                rows.setdefault(k, {})[level] = v
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index.name = "figure"
    return frame


_NOTES = {
    "cells": "one row per cell: population and groups placed on it, lst_c = mean of the reference year's dates (NaN dates skipped), Gi* class from the model stage",
    "zones": "one row per zone; cells belong to the zone containing their centroid; definitions in docs/exposure.md",
    "lst_mean_c": "area-weighted mean LST over the zone's cells with a value, degC",
    "lst_pop_mean_c": "population-weighted mean LST: sum(pop x lst) / sum(pop) over cells with a value, degC",
    "people_hot_95": "people in cells of Gi* hot spots at >= 95 % confidence (classes 2 and 3)",
    "people_hot_99": "people in cells of Gi* hot spots at 99 % confidence (class 3)",
    "people_no_lst": "people in cells without a land temperature (water, no clear date): counted in totals, not in LST means",
    "scale": "the same headline figures at cell and at zone level: they differ because of the unit of aggregation (modifiable areal unit problem)",
    "ratio_hottest_quintile": "a group's share among people in the hottest fifth of units divided by its share of all people (1 = no disparity)",
    "concentration_index_c": "generalized concentration index of LST over the rank variable, degC (O'Donnell et al. 2008); negative = heat concentrated among the low-ranked",
    "bands": "people per LST band of exposure.band_width_c degrees; the last row holds people without a land temperature",
}


# ---------------------------------------------------------------------------------------------
# the stage


def _cell_table(cells: Any, values: Any, gi: np.ndarray, zones: _Zones | None, zone_idx: np.ndarray,
                pop: _Population | None, groups: list[str]) -> Any:
    """One row per cell: zone, people, groups and the year's values (cells.parquet's columns)."""
    import pandas as pd

    table = pd.DataFrame({
        "cell": cells["cell"].to_numpy(),
        "zone": zones.frame["zone"].to_numpy()[zone_idx] if zones is not None else None,
        "area_m2": cells["area_m2"].to_numpy(dtype=float),
        "population": pop.per_cell[:, 0] if pop else np.nan,
    })
    if zones is not None:
        table.loc[zone_idx < 0, "zone"] = None
    for j, g in enumerate(groups):
        table[g] = pop.per_cell[:, 1 + j] if pop is not None else np.nan
    table["lst_c"] = values["lst_c"].to_numpy(dtype=float)
    table["anomaly_c"] = values["anomaly_c"].to_numpy(dtype=float)
    table["gi_class"] = gi
    table["ndvi"] = values["ndvi"].to_numpy(dtype=float)
    table["site_coverage"] = cells["site_coverage"].to_numpy(dtype=float)
    return table


def _zone_table(table: Any, zones: _Zones, zone_idx: np.ndarray, pop: _Population | None, groups: list[str],
                e: ExposureConfig) -> Any:
    """One row per zone: the layer's ids and names, polygon area and the figures of zone_table."""
    import pandas as pd

    from uhi.stats.exposure import zone_table

    ztab = zone_table(table.assign(zone_index=zone_idx), len(zones.frame), groups=groups, threshold_c=e.threshold_c)
    if pop is None:
        # no population layer: people figures are unknown, not zero
        for c in ("population", *groups, "people_no_lst", "people_hot_95", "people_hot_99",
                  "share_people_hot_95", "share_people_hot_99", "people_above_threshold"):
            ztab[c] = np.nan
    head = zones.frame.drop(columns=zones.frame.geometry.name).reset_index(drop=True)
    head["area_km2"] = zones.frame.geometry.area.to_numpy() / 1e6
    return pd.concat([head, ztab], axis=1)


def run(config: Config, ws: Workspace) -> dict[str, Any]:
    """Join the year's LST and Gi* classes to population, groups and zones; write exposure/ outputs."""
    import geopandas as gpd
    import pandas as pd

    from uhi.grid.cells import tile_outline_segments
    from uhi.stats.exposure import assign_zones, band_counts

    t0 = time.perf_counter()
    e = config.exposure
    out_dir = ws.stage_dir("exposure")
    if e.zones_path is None and e.population_path is None:
        for stale in ws.files_under(out_dir):
            stale.unlink()
        ws.write_json(out_dir / "summary.json", {"configured": False,
                                                 "note": "set exposure.zones_path and/or exposure.population_path"})
        return {"configured": False}
    for p in (ws.cells, ws.panel):
        if not p.is_file():
            raise InputError(f"missing {p}; run `uhi compute` first")
    crs = _working_crs(ws)
    cells = _read_cells(ws)
    year, values = _year_values(config, ws, cells)
    gi, gi_note = _gi_classes(ws, cells, year)
    notes = [gi_note, f"lst_c: mean of {year}'s panel dates in months {list(config.time.months)}, NaN dates skipped"]

    zones = _read_zones(e, crs) if e.zones_path is not None else None
    if zones is not None:
        notes.extend(zones.notes)
    zone_idx = np.full(len(cells), -1, dtype=np.int64)
    if zones is not None:
        zone_idx = assign_zones(cells["x_m"].to_numpy(), cells["y_m"].to_numpy(), zones.frame.geometry.to_numpy())
        if not (zone_idx >= 0).any():
            b = zones.frame.to_crs(4326).total_bounds
            raise InputError(
                f"zones of {Path(zones.source).name} (exposure.zones_path) do not overlap the AOI: no cell centre "
                f"falls in any zone (zones span lon {b[0]:.3f}..{b[2]:.3f}, lat {b[1]:.3f}..{b[3]:.3f})"
            )
    quads = _cell_quads(cells, crs)
    pop: _Population | None = None
    groups = list(e.groups)
    if e.population_path is not None:
        path = Path(e.population_path)
        if not path.exists():
            raise InputError(f"exposure.population_path not found: {path}; give an existing file")
        if path.suffix.lower() in RASTER_SUFFIXES:
            pop = _population_raster(e, cells)
        else:
            pop = _population_polygons(e, cells, crs, quads)
        if pop.placed <= 0:
            raise InputError(f"no people of {path.name} (exposure.population_path) fall on the AOI's cells; "
                             "check that the layer covers the city")
        notes.extend(pop.notes)
    else:
        notes.append("no population layer (exposure.population_path): population figures are empty")

    table = _cell_table(cells, values, gi, zones, zone_idx, pop, groups)
    ztab = _zone_table(table, zones, zone_idx, pop, groups, e) if zones is not None else None
    summary = _city(table, ztab, pop, groups, e, year, notes)
    summary["seconds"] = {"before_writing": round(time.perf_counter() - t0, 3)}
    bands = band_counts(table["lst_c"].to_numpy(), table["population"].to_numpy(), e.band_width_c) if pop else None

    # every check has passed: only now is anything written
    cells_gdf = gpd.GeoDataFrame(table, geometry=cells.geometry.to_numpy(), crs=cells.crs)
    # nullable: a cell without a Gi* value (water, no clear date) has no class, not class 0
    cells_gdf["gi_class"] = pd.array(gi, dtype="Float64").astype("Int8")
    zones_gdf = (gpd.GeoDataFrame(ztab, geometry=zones.frame.geometry.to_numpy(), crs=crs).to_crs(4326)
                 if zones is not None and ztab is not None else None)
    hot = np.isfinite(gi) & (gi >= 2)
    # the map is drawn in web mercator, where the cells are axis-aligned squares under the north
    # arrow (in UTM they are rotated by the grid convergence)
    outline = tile_outline_segments(cells["tile_x"].to_numpy()[hot], cells["tile_y"].to_numpy()[hot],
                                    _cell_quads(cells.loc[hot], MAP_CRS))
    _write(ws, out_dir, cells_gdf, zones_gdf, summary, bands, config, outline)
    seconds = time.perf_counter() - t0
    return {"year": year, "cells": int(len(table)), "zones": int(len(zones.frame)) if zones else 0,
            "population": round(summary["population"], 1) if summary.get("population") is not None else None,
            "lst_pop_mean_c": summary.get("lst_pop_mean_c"), "seconds": round(seconds, 3)}


def _write(ws: Workspace, out_dir: Path, cells: Any, zones: Any | None, summary: dict[str, Any],
           bands: Any | None, config: Config, outline: np.ndarray) -> None:
    import pandas as pd

    from uhi.writers.excel import write_workbook
    from uhi.writers.geojson import write_geojson
    from uhi.writers.parquet import write_geoparquet

    written = [out_dir / "cells.parquet", out_dir / "exposure.xlsx", out_dir / "summary.json"]
    write_geoparquet(cells, out_dir / "cells.parquet")
    sheets: dict[str, Any] = {}
    if zones is not None:
        write_geoparquet(zones, out_dir / "zones.parquet")
        write_geojson(zones, out_dir / "zones.geojson")
        written += [out_dir / "zones.parquet", out_dir / "zones.geojson"]
        sheets["zones"] = pd.DataFrame(zones.drop(columns=zones.geometry.name))
    city = {k: v for k, v in summary.items() if not isinstance(v, (dict, list))}
    sheets["city"] = pd.DataFrame({"figure": list(city), "value": [str(v) if v is None else v for v in city.values()]})
    if summary.get("groups"):
        g = pd.DataFrame(summary["groups"]).T
        g.index.name = "group"
        sheets["groups"] = g
    if summary.get("levels"):
        sheets["scale"] = _scale_sheet(summary)
    if bands is not None:
        sheets["bands"] = bands
    sheets["notes"] = pd.DataFrame({"note": summary.get("notes", [])})
    write_workbook(out_dir / "exposure.xlsx", sheets, notes=_NOTES)
    if "png" in config.outputs.formats:
        written += _write_maps(out_dir, zones, bands, summary, config, outline, is_synthetic(ws))
    if "gpkg" in config.outputs.formats:
        from uhi.writers.gpkg import write_gpkg

        # the cells as a table joined on `cell` to the compute layer's geometry: writing 400k
        # polygons again with their spatial index cost ~2 s of the 10 s budget (bench_exposure)
        table = pd.DataFrame(cells.drop(columns=cells.geometry.name))
        layers = {"exposure_cells": table, **({"exposure_zones": zones} if zones is not None else {})}
        written.append(write_gpkg(out_dir / "exposure.gpkg", layers))
    ws.write_json(out_dir / "summary.json", summary)
    # a previous run's files this run did not write (e.g. zones, since dropped) would be
    # recorded as its outputs: remove them
    for stale in set(ws.files_under(out_dir)) - {p.resolve() for p in written}:
        stale.unlink()


def _write_maps(out_dir: Path, zones: Any | None, bands: Any | None, summary: dict[str, Any],
                config: Config, outline: np.ndarray, synthetic: bool) -> list[Path]:
    from uhi.writers.maps import (
        CREDIT_LANDSAT,
        CREDIT_SYNTHETIC,
        render_band_chart,
        render_zone_map,
        save_map,
    )

    written = []
    year = summary["year"]
    # without a population layer the zones are coloured by their area-weighted LST
    weighted = zones is not None and bool(zones["lst_pop_mean_c"].notna().any())
    column, what = ("lst_pop_mean_c", "population-weighted LST") if weighted else ("lst_mean_c", "mean LST")
    if zones is not None and zones[column].notna().any():
        fig = render_zone_map(
            zones, column, labels="name", overlay=outline,
            title=f"{config.city.name}: {what} by zone, {year}",
            label=what, units="degrees C", working_crs=MAP_CRS,
            credits=(CREDIT_SYNTHETIC,) if synthetic else (CREDIT_LANDSAT,),
            overlay_label=f"Gi* hot spots, 95 % and 99 % ({int(summary.get('cells_hot_95') or 0)} cells)",
        )
        written.append(save_map(fig, out_dir / "exposure_map.png"))
    if bands is not None:
        fig = render_band_chart(bands, title=f"{config.city.name}: people per LST band, {year}")
        written.append(save_map(fig, out_dir / "people_per_band.png"))
    return written


def _inputs(config: Config, ws: Workspace) -> list[Path]:
    e = config.exposure
    hot = ws.path("model", "hotspots.parquet")
    files = [ws.cells, ws.panel, hot if hot.is_file() else ws.path("model", "hotspots.geojson")]
    for p in (e.zones_path, e.population_path):
        if p is not None:
            files.append(Path(p))
            # a shapefile's attributes and CRS live in sidecar files
            files.extend(Path(p).with_suffix(s) for s in (".dbf", ".prj", ".shx") if Path(p).suffix.lower() == ".shp")
    return files


SPEC = StageSpec(name="exposure", config_sections=("exposure", "time", "outputs"), inputs=_inputs, run=run)

"""The model stage: per-year OLS/SLX/lag/error/FE, the panel FE lag, impacts and Gi* hotspots."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from uhi.config import Config
from uhi.errors import ConfigError, InputError, NoDataError
from uhi.stages.runner import StageSpec
from uhi.workspace import Workspace

__all__ = [
    "SPEC",
    "run",
    "ModelRequest",
    "ModelData",
    "MODELS",
    "workspace_data",
    "vector_data",
    "fit_all",
    "write_outputs",
    "run_general",
]

log = logging.getLogger("uhi.model")

MODELS = ("ols", "slx", "lag", "error", "fe", "panel_fe")
_PER_PERIOD = ("ols", "slx", "lag", "error", "fe")


@dataclass(frozen=True)
class ModelRequest:
    """What to fit, independent of where the data came from.

    Attributes
    ----------
    y, x
        Response and regressor column names.
    weights
        Weights spec (knn:K, queen, rook, distance:D).
    models
        Models to fit, from MODELS.
    zone_col
        Zone column for ``fe`` (None: no zones, ``fe`` is skipped with a note).
    hotspot_col
        Column Gi* runs on (None: the response).
    permutations, fdr
        Gi* p-values: permutations (0 = normal) and Benjamini-Hochberg correction.
    time_effects
        Year effects in ``panel_fe`` too (two-way FE), absorbing a common warming trend.
    lag_estimator
        'ml' (maximum likelihood, the default) or '2sls' (Kelejian-Prucha GM: no
        log-determinant, linear in n; consistent but less efficient) for the ``lag`` model.
    sensor_cols
        ``sensor[<name>]`` share columns of the table (uhi.stats.sensors.sensor_shares); each
        period adds the ones uhi.stats.sensors.sensor_terms picks to its per-period models'
        regressors (empty: no sensor effects).
    """

    y: str
    x: tuple[str, ...]
    weights: str = "knn:8"
    models: tuple[str, ...] = MODELS
    zone_col: str | None = None
    hotspot_col: str | None = None
    permutations: int = 0
    fdr: bool = True
    time_effects: bool = True
    lag_estimator: str = "ml"
    sensor_cols: tuple[str, ...] = ()


@dataclass
class ModelData:
    """Observations in long form plus one row per spatial unit.

    Attributes
    ----------
    table
        Columns ``unit``, ``period`` and the variables; one row per (unit, period).
    units
        GeoDataFrame indexed by unit id with ``x_m``, ``y_m`` (projected metres), geometry
        and, for uhi's own cells, ``tile_x``/``tile_y``.
    period_name
        What a period is (``year``), or None for a single cross-section.
    notes
        Things said about the input (CRS used, rows dropped), carried into summary.json.
    """

    table: Any
    units: Any
    period_name: str | None
    notes: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# reading


def _check_columns(frame_cols: Sequence[str], needed: Sequence[str], where: str) -> None:
    missing = [c for c in needed if c not in frame_cols]
    if missing:
        raise InputError(
            f"missing column(s) {missing} in {where}; available: {sorted(map(str, frame_cols))}"
        )


def _check_numeric(frame: Any, cols: Sequence[str], where: str) -> None:
    import pandas as pd

    bad = [c for c in cols if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))]
    if bad:
        kinds = {c: str(frame[c].dtype) for c in bad}
        raise InputError(f"non-numeric column(s) {kinds} in {where}; give numeric y and x columns")


def _check_numeric_schema(path: Path, cols: Sequence[str], where: str) -> None:
    """Refuse non-numeric panel columns from the Parquet schema alone (nothing read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    bad = {c: str(schema.field(c).type) for c in cols
           if not (pa.types.is_integer(schema.field(c).type) or pa.types.is_floating(schema.field(c).type)
                   or pa.types.is_boolean(schema.field(c).type))}
    if bad:
        raise InputError(f"non-numeric column(s) {bad} in {where}; give numeric y and x columns")


@dataclass
class _CellYearMeans:
    """Per (cell, year) with panel rows: the cells' ids and rows in the cells table, the years,
    each column's mean and, with a response given, each sensor's share of its valid rows."""

    cell_ids: np.ndarray
    cell_rows: np.ndarray
    years: np.ndarray
    values: dict[str, np.ndarray]
    shares: dict[str, np.ndarray]


def _fixed_width(strings: Any) -> tuple[np.ndarray, int] | None:
    """The UTF-8 bytes of an Arrow string array as (rows, width) when every string has one
    byte width and none is null, else None."""
    import pyarrow as pa

    if strings.null_count or not len(strings) or not (
            pa.types.is_string(strings.type) or pa.types.is_large_string(strings.type)):
        return None
    bufs = strings.buffers()
    kind = np.int64 if pa.types.is_large_string(strings.type) else np.int32
    offsets = np.frombuffer(bufs[1], dtype=kind)[strings.offset:strings.offset + len(strings) + 1]
    width = int(offsets[1] - offsets[0])
    if width == 0 or not np.all(np.diff(offsets) == width):
        return None
    data = np.frombuffer(bufs[2], dtype=np.uint8)[int(offsets[0]):int(offsets[-1])]
    return data.reshape(len(strings), width), width


class _CellLookup:
    """Panel cell ids to their row in cells.parquet (-1: an id not there).

    compute writes the panel date by date, every date's rows in the order of cells.parquet, so
    a row group's ids are that order from some row on, wrapping round. When a row group's id
    bytes equal that sequence exactly (checked byte for byte, a few ms per million rows), each
    row's cell follows from its index; otherwise (any other layout) the ids are looked up.
    Either gives the same rows; only the cost differs: hashing the 16M ids of the 30 km panel
    (reading them as a Parquet dictionary) took ~3 CPU-s.

    Parameters
    ----------
    layout_ids
        Every cell id in cells.parquet's order.
    """

    def __init__(self, layout_ids: np.ndarray) -> None:
        import pandas as pd
        import pyarrow as pa

        self.index = pd.Index(layout_ids)
        fixed = _fixed_width(pa.array(layout_ids, type=pa.string())) if len(layout_ids) else None
        self.layout_bytes = None if fixed is None else fixed[0].copy()

    def rows(self, column: Any) -> np.ndarray:
        """cells.parquet row of each row of an Arrow (chunked) string column."""
        parts = [self._chunk(chunk) for chunk in column.chunks]
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    def _in_layout(self, rows: np.ndarray) -> np.ndarray | None:
        """Indices into the layout when ``rows`` (ids as bytes) follow it cyclically, else None."""
        ref = self.layout_bytes
        if ref is None or rows.shape[1] != ref.shape[1]:
            return None
        first = np.flatnonzero((ref == rows[0]).all(axis=1))
        if first.size != 1:
            return None
        start, n = int(first[0]), ref.shape[0]
        at = 0
        while at < rows.shape[0]:  # compare slice by slice: the layout from start, then from 0
            take = min(n - (start + at) % n, rows.shape[0] - at)
            lo = (start + at) % n
            if not np.array_equal(rows[at:at + take], ref[lo:lo + take]):
                return None
            at += take
        return (start + np.arange(rows.shape[0], dtype=np.int64)) % n

    def _chunk(self, strings: Any) -> np.ndarray:
        import pyarrow.compute as pc

        fixed = _fixed_width(strings)
        if fixed is not None:
            found = self._in_layout(fixed[0])
            if found is not None:
                return found
        encoded = pc.dictionary_encode(strings)
        lookup = np.append(self.index.get_indexer(encoded.dictionary.to_numpy(zero_copy_only=False)), -1)
        return lookup[encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)]


def _dictionary_codes(column: Any, per_dictionary: Any) -> np.ndarray:
    """Per row of a dictionary-encoded Arrow column, ``per_dictionary(dictionary)[index]``
    (-1 for a null)."""
    parts = []
    for chunk in column.chunks:
        lookup = np.append(np.asarray(per_dictionary(chunk.dictionary), dtype=np.int64), -1)
        idx = chunk.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
        parts.append(lookup[idx])  # -1 (null) picks the appended -1
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _row_groups(f: Any, columns: list[str]) -> Any:
    """The file's row groups in order, the next one read on a thread while this one is used
    (Arrow's decoding releases the GIL, the means' kernel too)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        ahead = pool.submit(f.read_row_group, 0, columns=columns) if f.num_row_groups else None
        for i in range(f.num_row_groups):
            t = ahead.result()  # type: ignore[union-attr]
            ahead = pool.submit(f.read_row_group, i + 1, columns=columns) if i + 1 < f.num_row_groups else None
            yield t


def _panel_cell_year_means(
    path: Path, cell_ids: np.ndarray, columns: list[str], months: Sequence[int], response: str | None,
    layout_ids: np.ndarray | None = None,
) -> _CellYearMeans:
    """Per (cell, year), the mean over the panel rows of ``months`` of each column, streamed.

    Row group by row group in the file's row order, so each mean is the same compensated sum
    as pandas' ``groupby(["cell", "year"]).mean()`` of the whole panel (bit for bit;
    uhi.stats.grouped.GroupedMeans), in the order of a sorted groupby (cell id, then year), for
    the cells of ``cell_ids`` only (the panel rows of other cells, e.g. water, are skipped). The
    30 km panel (16M rows) took ~10 s read whole into pandas and grouped, about 3 s this way,
    and never holds more than one row group.

    With ``response``, each sensor's share of the (cell, year)'s rows whose response is finite
    (uhi.stats.sensors.sensor_shares), for the sensors with such a row anywhere in the panel.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from uhi.panel import year_range
    from uhi.stats.grouped import GroupedMeans
    from uhi.stats.sensors import SENSOR_ORDER, sensor_column, sensor_index

    ids = np.asarray(cell_ids, dtype=object)
    layout = ids if layout_ids is None else np.asarray(layout_ids, dtype=object)
    lookup = _CellLookup(layout)
    # groups are (cells.parquet row, year), in the panel's own row order for memory locality;
    # the modelled cells' order (sorted ids, then year) is restored at the end
    modelled = np.zeros(layout.size, dtype=bool)
    layout_of = np.asarray(lookup.index.get_indexer(ids), dtype=np.int64)
    if (layout_of < 0).any():
        raise InputError("cells to model missing from cells.parquet's ids")  # a programming error
    modelled[layout_of] = True
    names = pq.read_schema(path).names
    f = pq.ParquetFile(path, read_dictionary=["platform"] if "platform" in names else [])
    span = year_range(path)
    first, n_years = (span[0], span[1] - span[0] + 1) if span else (0, 1)
    acc = GroupedMeans(layout.size * n_years, columns)
    counts = np.zeros((len(SENSOR_ORDER), layout.size * n_years), dtype=np.int64)
    seen = np.zeros(len(SENSOR_ORDER), dtype=bool)
    month_set = pa.array(sorted({int(mo) for mo in months}), pa.int64())
    read_cols = list(dict.fromkeys(["cell", "year", *columns, *(["date"] if "date" in names else []),
                                    *(["platform"] if response else [])]))
    for t in _row_groups(f, read_cols):
        if t.num_rows == 0:
            continue
        cell = lookup.rows(t["cell"])
        year = t["year"].fill_null(first - 1).to_numpy(zero_copy_only=False).astype(np.int64) - first
        ok = (cell >= 0) & (year >= 0) & (year < n_years)
        ok[ok] = modelled[cell[ok]]
        in_months = np.ones(t.num_rows, dtype=bool)
        if "date" in names:
            in_months = pc.fill_null(pc.is_in(pc.month(t["date"]), value_set=month_set),
                                     False).to_numpy(zero_copy_only=False)
        labels = np.where(ok & in_months, cell * n_years + year, -1)
        values = {c: t[c].to_numpy(zero_copy_only=False).astype(np.float64, copy=False) for c in columns}
        acc.add(labels, values)
        if response:
            sensor = _dictionary_codes(t["platform"], lambda d: sensor_index(d.to_pylist()))
            valid = np.isfinite(values[response]) & (sensor >= 0) & in_months
            seen |= np.bincount(sensor[valid], minlength=len(SENSOR_ORDER)).astype(bool)
            valid &= labels >= 0
            for s in np.flatnonzero(np.bincount(sensor[valid], minlength=len(SENSOR_ORDER))):
                counts[s] += np.bincount(labels[valid & (sensor == s)], minlength=counts.shape[1])
    present, means = acc.result()
    # the order of a sorted groupby: cell id (code point order, as Python sorts str), then year
    cell_rows, years = present // n_years, present % n_years
    rank = np.empty(layout.size, dtype=np.int64)
    rank[np.argsort(layout.astype(str), kind="stable")] = np.arange(layout.size)
    order = np.argsort(rank[cell_rows] * n_years + years, kind="stable")
    present, cell_rows, years = present[order], cell_rows[order], years[order]
    means = {c: v[order] for c, v in means.items()}
    shares: dict[str, np.ndarray] = {}
    if response:
        # the same integer counts as sensor_shares, so the same shares; a cell-year without
        # a valid row of a known sensor has share 0 of each (as the left join filled it)
        here = counts[:, present][seen]
        total = here.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = here / total
        ratio[:, total == 0] = 0.0
        shares = {sensor_column(SENSOR_ORDER[s]): ratio[j] for j, s in enumerate(np.flatnonzero(seen))}
    year_type = f.schema_arrow.field("year").type.to_pandas_dtype()
    kept_of = np.full(layout.size, -1, dtype=np.int64)
    kept_of[layout_of] = np.arange(layout_of.size)
    kept_row = kept_of[cell_rows]  # row in the modelled cells' table
    return _CellYearMeans(cell_ids=layout[cell_rows], cell_rows=kept_row,
                          years=(years + first).astype(year_type), values=means, shares=shares)


def workspace_data(config: Config, ws: Workspace) -> tuple[ModelData, ModelRequest]:
    """Per (cell, year) summer means of the panel joined to the cells' static columns."""
    import geopandas as gpd
    import pandas as pd

    from uhi.panel import panel_columns

    for p in (ws.cells, ws.panel):
        if not p.is_file():
            raise InputError(f"missing {p}; run `uhi compute` first")
    from uhi.stats.water import exclude_water_cells

    m = config.model
    all_cells = gpd.read_parquet(ws.cells)
    layout_ids = all_cells["cell"].to_numpy()
    cells, water = exclude_water_cells(all_cells, m.max_water_share)
    del all_cells
    if water["cells_left_out_water"]:
        log.info("model: %d of %d cells are more than %g water and left out", water["cells_left_out_water"],
                 water["cells"], m.max_water_share)
    if water["cells_left_out_water"] == water["cells"]:
        raise NoDataError(
            f"all {water['cells']} cells are more than {m.max_water_share:g} water: nothing to model; "
            "raise model.max_water_share or choose an AOI with land"
        )
    panel_cols = panel_columns(ws.panel)
    hot = "anomaly_c" if m.hotspot_variable == "anomaly" else "lst_c"
    needed = [m.y, *m.x]
    available = set(panel_cols) | set(cells.columns)
    _check_columns(sorted(available), needed, "compute/panel.parquet and compute/cells.parquet")
    from_panel = [c for c in dict.fromkeys([*needed, hot]) if c in panel_cols and c not in ("cell", "year")]
    with_platform = m.sensor_effects and "platform" in panel_cols and m.y in from_panel
    _check_numeric_schema(ws.panel, [c for c in from_panel if c in needed], "compute/panel.parquet")
    from_cells = [c for c in needed if c not in from_panel]
    _check_numeric(cells, from_cells, "compute/cells.parquet")
    # the summer composite of each year: the mean over that year's dates (docs/science.md,
    # forecasting), with the sensor shares of its observations, streamed from the panel
    means = _panel_cell_year_means(ws.panel, cells["cell"].to_numpy(), from_panel, config.time.months,
                                   m.y if with_platform else None, layout_ids)
    keep_cells = [*from_cells]
    zone_col = m.zone_col if m.zone_col in cells.columns else None
    if zone_col and zone_col not in keep_cells:
        keep_cells.append(zone_col)
    static = cells[keep_cells].iloc[means.cell_rows].reset_index(drop=True)
    sensor_cols = list(means.shares) if len(means.shares) > 1 else []
    table = pd.concat([
        pd.DataFrame({"unit": means.cell_ids, "period": means.years, **means.values,
                      **{c: means.shares[c] for c in sensor_cols}}),
        static,
    ], axis=1)
    if hot not in table.columns:
        hot = m.y
    units = cells.set_index("cell")
    cols = [c for c in ("x_m", "y_m", "tile_x", "tile_y") if c in units.columns]
    units = units[[*cols, units.geometry.name]]
    if "x_m" not in units.columns:
        units = _project(units)
    req = ModelRequest(
        y=m.y,
        x=tuple(m.x),
        weights=m.weights,
        models=tuple(m.models),
        zone_col=zone_col,
        hotspot_col=hot,
        permutations=m.permutations,
        fdr=m.fdr,
        lag_estimator=m.lag_estimator,
        sensor_cols=tuple(sensor_cols),
    )
    notes = {"hotspot_variable": hot, "months": list(config.time.months), "water": water}
    if "fe" in m.models and zone_col is None:
        notes["fe_skipped"] = f"no zone column {m.zone_col!r} in cells.parquet (set buildings.zones_path)"
    return ModelData(table=table, units=units, period_name="year", notes=notes), req


def _project(units: Any) -> Any:
    """Add x_m, y_m: centroids in a projected CRS (the layer's own, else its local UTM zone)."""
    out = units.copy()
    if out.crs is None:
        geoms = out.geometry
        note = "no CRS: coordinates taken as projected metres"
    elif out.crs.is_geographic:
        utm = out.estimate_utm_crs()
        geoms = out.geometry.to_crs(utm)
        note = f"lon/lat input projected to {utm.to_string()} for the weights"
    else:
        geoms = out.geometry
        note = f"weights on the layer's projected CRS {out.crs.to_string()}"
    cen = geoms.centroid
    out["x_m"] = cen.x.to_numpy()
    out["y_m"] = cen.y.to_numpy()
    out.attrs["uhi_crs_note"] = note
    return out


def vector_data(
    path: Path, y: str, x: Sequence[str], *, zone_col: str | None = None, year_col: str | None = None
) -> ModelData:
    """Any vector layer (GeoPackage, GeoJSON, Shapefile, GeoParquet) as model input.

    With ``year_col`` the layer is a long panel: rows with identical geometry are one unit.
    """
    import geopandas as gpd
    import pandas as pd

    path = Path(path)
    if not path.exists():
        raise InputError(f"input layer not found: {path}; pass an existing --input file")
    try:
        if path.suffix.lower() in (".parquet", ".geoparquet"):
            gdf = gpd.read_parquet(path)
        else:
            gdf = gpd.read_file(path)
    except (ValueError, OSError, RuntimeError) as exc:
        raise InputError(f"cannot read --input {path}: {exc}") from None
    where = f"--input {path.name}"
    needed = [y, *x, *([zone_col] if zone_col else []), *([year_col] if year_col else [])]
    _check_columns(list(gdf.columns), needed, where)
    _check_numeric(gdf, [y, *x], where)
    if gdf.geometry.isna().any() or gdf.geometry.is_empty.any():
        raise InputError(f"{int((gdf.geometry.isna() | gdf.geometry.is_empty).sum())} rows of {where} have no geometry; drop them")
    wkb = gdf.geometry.to_wkb()
    codes, _ = pd.factorize(wkb)
    if year_col is None and len(np.unique(codes)) < len(codes):
        codes = np.arange(len(gdf))
    unit_ids = np.asarray(codes, dtype=np.int64)
    table = pd.DataFrame({"unit": unit_ids})
    table["period"] = gdf[year_col].to_numpy() if year_col else "all"
    for c in dict.fromkeys([y, *x, *([zone_col] if zone_col else [])]):
        table[c] = gdf[c].to_numpy()
    if year_col and table.duplicated(["unit", "period"]).any():
        raise InputError(
            f"{where} has several rows for the same geometry and {year_col}; give one row per unit and year"
        )
    first = ~pd.Series(unit_ids).duplicated().to_numpy()
    units = gdf.loc[first, [gdf.geometry.name]].copy()
    units.index = unit_ids[first]
    units = _project(units)
    notes = {"crs": units.attrs.get("uhi_crs_note", ""), "input": str(path)}
    _check_locations(units, where, notes)
    return ModelData(table=table, units=units, period_name=year_col, notes=notes)


def _check_locations(units: Any, where: str, notes: dict[str, Any]) -> None:
    """Refuse units that all sit at one point; warn (and note) when some share a location.

    Spatial weights tell neighbours apart by distance: at one point every unit is every other's
    nearest neighbour, and which k of them a KNN keeps is an arbitrary tie-break.
    """
    xy = units[["x_m", "y_m"]].to_numpy(dtype=float)
    distinct = len(np.unique(xy, axis=0))
    if len(xy) > 1 and distinct == 1:
        raise InputError(
            f"all {len(xy)} units of {where} lie at one point ({xy[0, 0]:g}, {xy[0, 1]:g}): spatial "
            "weights cannot tell neighbours apart; give each row its own geometry"
        )
    shared = len(xy) - distinct
    if shared:
        log.warning("model: %d of %d units of %s share their centroid with another; ties among "
                    "their neighbours are broken arbitrarily", shared, len(xy), where)
        notes["colocated_units"] = shared


# ---------------------------------------------------------------------------------------------
# fitting


@dataclass
class _Fitted:
    fits: dict[str, dict[Any, Any]] = field(default_factory=dict)  # model -> period -> ModelFit
    units: dict[str, dict[Any, np.ndarray]] = field(default_factory=dict)  # model -> period -> unit ids
    observed: dict[str, dict[Any, np.ndarray]] = field(default_factory=dict)
    hotspots: dict[Any, tuple[np.ndarray, Any]] = field(default_factory=dict)  # period -> (ids, result)
    rows: dict[Any, dict[str, int]] = field(default_factory=dict)
    weights_info: dict[Any, dict[str, int]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    x_used: list[str] = field(default_factory=list)
    sensor_terms: dict[Any, str] = field(default_factory=dict)  # period -> what sensor_terms decided


class _WeightsCache:
    """Weights for a set of units, built once per distinct set (years often share cells).

    With each weights matrix it keeps what depends on W alone, so that every year and model on
    the same cells shares it: the log-determinant and its power traces (also the variance and
    impacts traces), W's own traces for the LM and Moran tests, and Gi*'s star weights.
    """

    def __init__(self, units: Any, spec: str, *, prefetch_traces: bool = False) -> None:
        self.units = units
        self.spec = spec
        # the power traces of each new W start on a thread while the main thread goes on
        # (the other periods' weights, Gi*): scipy's sparse products and numpy's sums release
        # the GIL, so they use the second core; the values are the same, computed once
        self._prefetch: Any = None
        if prefetch_traces:
            from concurrent.futures import ThreadPoolExecutor

            self._prefetch = ThreadPoolExecutor(1)
        self._cache: dict[bytes, Any] = {}
        self._logdets: dict[int, Any] = {}
        self._moments: dict[int, Any] = {}
        self._stars: dict[int, Any] = {}
        self._info: dict[int, Any] = {}
        self._lean_units: Any = None

    def logdet(self, sw: Any) -> Any:
        """One log-determinant (and its traces) per weights matrix, shared across models/years."""
        from uhi.stats.diagnostics import WeightsMoments
        from uhi.stats.spatial import LogDeterminant

        key = id(sw)
        if key not in self._logdets:
            if len(self._logdets) > 4:
                self._logdets.clear()
                self._moments.clear()
            w = sw.row_standardised()
            moments = WeightsMoments(w)
            # tr(WW) is the log-determinant's second trace and the LM tests' too: summed once
            ld = LogDeterminant(w, trace_ww=lambda: moments.tr_ww)
            self._logdets[key] = (sw, ld)
            self._moments[key] = moments
            if self._prefetch is not None and ld.method == "traces":
                self._prefetch.submit(lambda: ld.traces)
        return self._logdets[key][1]

    def close(self) -> None:
        """Wait for traces still being computed ahead and let their thread go."""
        if self._prefetch is not None:
            self._prefetch.shutdown(wait=True, cancel_futures=True)
            self._prefetch = None

    def moments(self, sw: Any) -> Any:
        """W's traces for the LM and residual Moran tests, once per weights matrix."""
        self.logdet(sw)
        return self._moments[id(sw)]

    def info(self, sw: Any) -> dict[str, int]:
        """Islands, connected components and size of a weights matrix, once per matrix."""
        key = id(sw)
        if key not in self._info:
            self._info[key] = (sw, {"islands": int(sw.islands.size), "components": sw.components(), "n": sw.n})
        return dict(self._info[key][1])

    def _lean(self) -> Any:
        """The units' table without geometries when the weights do not need them.

        KNN and distance weights use x_m/y_m, queen and rook the tile indices when present:
        selecting 384k shapely geometries per cell set cost about as much as the KNN itself.
        """
        from uhi.stats.weights import parse_weights_spec

        if self._lean_units is None:
            kind, _ = parse_weights_spec(self.spec)
            tiles = {"tile_x", "tile_y"} <= set(self.units.columns)
            needs_geometry = kind in ("queen", "rook") and not tiles
            geometry = getattr(getattr(self.units, "geometry", None), "name", None)
            lean = needs_geometry or geometry not in self.units.columns
            self._lean_units = self.units if lean else self.units.drop(columns=geometry)
        return self._lean_units

    def star(self, sw: Any) -> Any:
        """Gi*'s star weights of the binary matrix, once per weights matrix."""
        from uhi.stats.hotspots import GiStarWeights

        key = id(sw)
        if key not in self._stars:
            if len(self._stars) > 4:
                self._stars.clear()
            self._stars[key] = (sw, GiStarWeights.of(sw.binary))
        return self._stars[key][1]

    def get(self, ids: np.ndarray) -> Any:
        from uhi.stats.weights import weights_for_cells

        key = np.ascontiguousarray(ids).tobytes()
        if key in self._cache:
            return self._cache[key]
        sw = weights_for_cells(self._lean().loc[ids], self.spec)
        if len(self._cache) > 4:
            self._cache.clear()
        self._cache[key] = sw
        return sw


def _validate(req: ModelRequest) -> None:
    unknown = [m for m in req.models if m not in MODELS]
    if unknown:
        raise ConfigError(f"unknown model(s) {unknown}; choose from {', '.join(MODELS)}")
    if not req.x:
        raise ConfigError("no x variables given; pass at least one --x COLUMN")
    if req.y in req.x:
        raise ConfigError(f"y column {req.y!r} is also an x column; remove it from x")
    if req.lag_estimator not in ("ml", "2sls"):
        raise ConfigError(f"unknown lag estimator {req.lag_estimator!r}; use ml or 2sls")


@dataclass
class _PeriodJob:
    """One period's rows ready to fit: response, regressors, cells, weights and their caches."""

    period: Any
    ids: np.ndarray
    y: np.ndarray
    x: np.ndarray
    names: list[str]
    sw: Any
    zones: np.ndarray | None
    logdet: Any
    moments: Any
    estimates: dict[str, Any] = field(default_factory=dict)  # lag/error ML point estimates
    seconds: dict[str, float] = field(default_factory=dict)
    design_checked: bool = False  # [1, x] passed check_design (once for ols, lag and error)


def _estimate_spatial(jobs: Sequence[_PeriodJob], models: Sequence[str], lag_estimator: str) -> None:
    """The ML lag and error point estimates of every period, then their variance traces shared.

    The standard errors of rho and lambda need tr((W A^-1)'(W A^-1)) at each fit's own value;
    with every value known first, the fits on one weights matrix (the years on the same cells)
    get them from one pass of W's powers instead of one Neumann solve each (15 solves of 16
    probes on the 30 km city, 3 passes now; values equal at float32 rounding).
    """
    from uhi.stats.regression import check_design
    from uhi.stats.spatial import estimate_error_ml, estimate_lag_ml

    wanted = [m for m in ("lag", "error") if m in models and not (m == "lag" and lag_estimator == "2sls")]
    by_logdet: dict[int, tuple[Any, list[_PeriodJob]]] = {}
    for job in jobs:
        w = job.logdet.w
        if wanted:
            # ols, lag and error share the design [1, x]: it is checked once for the three
            check_design(np.column_stack([np.ones(len(job.y)), job.x]), ["const", *job.names])
            job.design_checked = True
        for name in wanted:
            t0 = time.perf_counter()
            fn = estimate_lag_ml if name == "lag" else estimate_error_ml
            job.estimates[name] = fn(job.y, job.x, job.names, w, logdet=job.logdet, design_checked=True)
            job.seconds[name] = time.perf_counter() - t0
        by_logdet.setdefault(id(job.logdet), (job.logdet, []))[1].append(job)
    for ld, sharing in by_logdet.values():
        t0 = time.perf_counter()
        ld.share_variance_traces([est.param for job in sharing for est in job.estimates.values()])
        # the shared pass is charged to the fits that share it, in equal parts
        each = (time.perf_counter() - t0) / max(sum(len(job.estimates) for job in sharing), 1)
        for job in sharing:
            for name in job.estimates:
                job.seconds[name] += each


def _fit_period(
    models: Sequence[str],
    y: np.ndarray,
    x: np.ndarray,
    names: list[str],
    sw: Any,
    zones: np.ndarray | None,
    logdet: Any,
    lag_estimator: str = "ml",
    moments: Any = None,
    estimates: dict[str, Any] | None = None,
    design_checked: bool = False,
) -> tuple[dict[str, Any], dict[str, float], dict[str, str]]:
    from uhi.stats.diagnostics import lm_tests, moran_residuals, moran_value
    from uhi.stats.impacts import lag_impacts
    from uhi.stats.regression import fit_fe, fit_ols, fit_slx
    from uhi.stats.spatial import fit_error_ml, fit_lag_gm, fit_lag_ml

    w = logdet.w
    out: dict[str, Any] = {}
    secs: dict[str, float] = {}
    skipped: dict[str, str] = {}
    est = estimates or {}
    for name in models:
        t0 = time.perf_counter()
        if name == "ols":
            fit = fit_ols(y, x, names, design_checked=design_checked)
            xc = np.column_stack([np.ones(len(y)), x])
            fit.diagnostics.update(lm_tests(y, xc, fit.residuals, w, moments=moments))
            fit.diagnostics.update(moran_residuals(fit.residuals, xc, w, moments=moments))
        elif name == "slx":
            fit = fit_slx(y, x, names, w)
            fit.diagnostics["moran_i"] = moran_value(fit.residuals, w, moments=moments)
        elif name == "lag":
            if lag_estimator == "2sls":
                fit = fit_lag_gm(y, x, names, w)
            else:
                fit = est["lag"].finish() if "lag" in est else fit_lag_ml(y, x, names, w, logdet=logdet)
            fit.impacts = lag_impacts(fit.rho or 0.0, fit.coefficients, fit.names, w, logdet=logdet)
            fit.diagnostics["moran_i"] = moran_value(fit.residuals, w, moments=moments)
        elif name == "error":
            fit = est["error"].finish() if "error" in est else fit_error_ml(y, x, names, w, logdet=logdet)
            innovations = fit.residuals - (fit.lam or 0.0) * np.asarray(w @ fit.residuals)
            fit.diagnostics["moran_i"] = moran_value(innovations, w, moments=moments)
        elif name == "fe":
            if zones is None:
                continue
            fit = fit_fe(y, x, names, zones)
            fit.diagnostics["moran_i"] = moran_value(fit.residuals, w, moments=moments)
        else:
            continue
        fit.diagnostics["weights"] = sw.spec
        out[name] = fit
        secs[name] = time.perf_counter() - t0
    return out, secs, skipped


def fit_all(data: ModelData, req: ModelRequest) -> _Fitted:
    """Fit every requested model per period (and the panel across periods), plus Gi*."""


    _validate(req)
    table = data.table
    res = _Fitted()
    names = list(req.x)
    cols = [req.y, *names]
    periods = sorted(table["period"].dropna().unique().tolist())
    if not periods:
        raise NoDataError("no observations to model: the input table is empty")
    empty = [c for c in cols if not np.isfinite(table[c].to_numpy(dtype=float)).any()]
    if req.y in empty or len(empty) == len(cols) - 1:
        raise InputError(
            f"column(s) {empty} have no values at all; give y and at least one x with data "
            "(e.g. provide buildings.path for site_coverage)"
        )
    y_all = table[req.y].to_numpy(dtype=float)
    y_all = y_all[np.isfinite(y_all)]
    if y_all.size > 1 and y_all.min() == y_all.max():
        raise InputError(
            f"y column {req.y!r} has the same value ({y_all[0]:g}) in all {y_all.size} rows: a "
            "regression has nothing to explain; choose a y that varies"
        )
    if empty:
        # e.g. site_coverage without a buildings layer: compute writes NaN, never zeros; the
        # models go on without it rather than failing a whole cron run
        log.warning("model: x column(s) %s have no values (no layer feeds them) and were left out", empty)
        res.skipped["x"] = f"{empty} have no values (e.g. no buildings layer for site_coverage): left out"
        names = [c for c in names if c not in empty]
        cols = [req.y, *names]
        req = replace(req, x=tuple(names))
    res.x_used = list(names)
    cache = _WeightsCache(data.units, req.weights,
                          prefetch_traces=any(m in req.models for m in ("lag", "error", "panel_fe")))
    try:
        return _fit_with(data, req, res, table, names, cols, periods, cache)
    finally:
        cache.close()


def _fit_with(data: ModelData, req: ModelRequest, res: _Fitted, table: Any, names: list[str], cols: list[str],
              periods: list[Any], cache: _WeightsCache) -> _Fitted:
    import pandas as pd

    from uhi.stats.hotspots import hotspots

    per_period = [m for m in req.models if m in _PER_PERIOD]
    if "fe" in req.models and req.zone_col is None:
        res.skipped["fe"] = data.notes.get("fe_skipped", "no zone column given (--zone-col)")
    total_used = 0
    jobs: list[_PeriodJob] = []
    from uhi.progress import progress

    # one step per period (its rows, weights and Gi*; the fits follow once every period is ready,
    # so the fits on one weights matrix share their work); a terminal shows the bar
    column = _TableColumns(table)
    for period in progress(periods, total=len(periods), desc="model", unit=data.period_name or "fit"):
        # the period's rows as positions into the table's columns (no sub-table copied per period)
        sel = np.flatnonzero(column("period") == period)
        values = np.column_stack([column(c, float)[sel] for c in cols])
        ok = np.isfinite(values).all(axis=1)
        zones = None
        if req.zone_col is not None and "fe" in req.models:
            ok &= np.asarray(pd.notna(column(req.zone_col)[sel]), dtype=bool)
        dropped = int(sel.size - ok.sum())
        res.rows[period] = {"rows": int(sel.size), "used": int(ok.sum()), "dropped_nan": dropped}
        if dropped:
            log.warning("model: %s %s: %d of %d rows have NaN in %s and were dropped", data.period_name or "data", period, dropped, sel.size, cols)
        n_ok = int(ok.sum())
        if n_ok < len(names) + 3:
            res.skipped[f"period {period}"] = f"{n_ok} complete rows for {len(names) + 1} coefficients"
            continue
        if np.ptp(values[ok, 0]) == 0:
            res.skipped[f"period {period}"] = f"y {req.y!r} is constant ({values[ok, 0][0]:g}) in its {n_ok} rows"
            log.warning("model: %s %s: y %r is the same in every row; period not fitted", data.period_name or "data", period, req.y)
            continue
        x_ok = values[ok, 1:]
        names_p = names
        if req.sensor_cols:
            from uhi.stats.sensors import sensor_terms

            terms, why = sensor_terms({c: column(c, float)[sel][ok] for c in req.sensor_cols})
            res.sensor_terms[period] = why
            if terms and n_ok >= len(names) + len(terms) + 3:
                x_ok = np.column_stack([x_ok, *(column(c, float)[sel][ok] for c in terms)])
                names_p = [*names, *terms]
            elif terms:
                res.sensor_terms[period] = f"{why}; too few rows ({n_ok}) for the sensor terms: left out"
        total_used += n_ok
        ids = column("unit")[sel][ok]
        sw = cache.get(ids)
        res.weights_info[period] = cache.info(sw)
        if sw.islands.size:
            log.warning("model: %s: %d observations have no neighbour under %s (islands)", period, sw.islands.size, req.weights)
        if req.zone_col is not None:
            zones = column(req.zone_col)[sel][ok]
        jobs.append(_PeriodJob(period, ids, values[ok, 0], x_ok, names_p, sw, zones, cache.logdet(sw),
                               cache.moments(sw)))
        if req.hotspot_col is not None:
            hv = column(req.hotspot_col, float)[sel]
            hok = np.isfinite(hv)
            if hok.sum() >= 3:
                hids = column("unit")[sel][hok]
                hs = cache.get(hids)
                res.hotspots[period] = (hids, hotspots(hv[hok], hs.binary, permutations=req.permutations, fdr=req.fdr,
                                                                star=cache.star(hs)))
    # every period's spatial point estimates first, so the fits on one W share their variance traces
    _estimate_spatial(jobs, per_period, req.lag_estimator)
    for job in jobs:
        fits, secs, _ = _fit_period(per_period, job.y, job.x, job.names, job.sw, job.zones, job.logdet,
                                    req.lag_estimator, job.moments, job.estimates, job.design_checked)
        job.estimates = {}  # their residual vectors are in the fits now
        for m, fit in fits.items():
            res.fits.setdefault(m, {})[job.period] = fit
            res.units.setdefault(m, {})[job.period] = job.ids
            res.observed.setdefault(m, {})[job.period] = job.y
            res.seconds[m] = res.seconds.get(m, 0.0) + secs[m] + job.seconds.get(m, 0.0)
    if total_used == 0:
        why = "; ".join(f"{k}: {v}" for k, v in res.skipped.items() if k.startswith("period "))
        raise NoDataError(
            f"no period has enough complete rows of {cols} to fit a model ({why}); check the input for NaN"
        )
    if req.hotspot_col is not None and len(periods) > 1:
        from uhi.stats.grouped import grouped_means

        # each unit's mean over the periods, as table.groupby("unit")[col].mean() computes it
        # (bit for bit), without pandas' grouping of the 2.7M string ids
        unit_ids, codes = column.unit_codes()
        present, means = grouped_means(codes, unit_ids.size, {"v": column(req.hotspot_col, float)})
        comp_ids, comp = unit_ids[present], means["v"]
        keep = np.isfinite(comp)
        comp_ids, comp = comp_ids[keep], comp[keep]
        if len(comp) >= 3:
            hids = comp_ids
            hs = cache.get(hids)
            res.hotspots["all"] = (hids, hotspots(comp, hs.binary, permutations=req.permutations,
                                                  fdr=req.fdr, star=cache.star(hs)))
    if "panel_fe" in req.models:
        _fit_panel(column, req, periods, res, cache)
    return res


class _TableColumns:
    """The model table's columns as numpy arrays, each converted once, and its unit codes.

    The per-period loop selects rows by position from these instead of filtering the
    2.7M-row table (with its string columns) once per period.
    """

    def __init__(self, table: Any) -> None:
        self.table = table
        self._arrays: dict[tuple[str, Any], np.ndarray] = {}
        self._codes: tuple[np.ndarray, np.ndarray] | None = None

    def __call__(self, name: str, dtype: Any = None) -> np.ndarray:
        key = (name, dtype)
        if key not in self._arrays:
            self._arrays[key] = self.table[name].to_numpy(dtype=dtype)
        return self._arrays[key]

    def unit_codes(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted distinct unit ids and each row's position among them (-1 for a missing id)."""
        import pandas as pd

        if self._codes is None:
            codes, uniques = pd.factorize(self("unit"), sort=True, use_na_sentinel=True)
            self._codes = np.asarray(uniques), np.asarray(codes, dtype=np.int64)
        return self._codes


def _wide_by_period(column: _TableColumns, periods: list[Any], cols: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Each column as a (units, periods) array: the sorted unit ids, NaN where a unit lacks a period.

    For the units with a row in ``periods`` (and possibly others, all NaN) what
    ``table.pivot_table(index="unit", columns="period", values=cols, aggfunc="first",
    dropna=False)`` gives for a table with one row per (unit, period), as ModelData has,
    without pandas' grouping (3.3 s at 2.7M rows on the 30 km city, this ~0.3 s).
    """
    import pandas as pd

    unit_ids, codes = column.unit_codes()
    col = pd.Index(periods).get_indexer(column("period"))
    ok = (codes >= 0) & (col >= 0)
    wide: dict[str, np.ndarray] = {}
    for c in cols:
        out = np.full((unit_ids.size, len(periods)), np.nan)
        out[codes[ok], col[ok]] = column(c, float)[ok]
        wide[c] = out
    return unit_ids, wide


def _fit_panel(column: _TableColumns, req: ModelRequest, periods: list[Any], res: _Fitted, cache: _WeightsCache) -> None:
    from uhi.stats.impacts import lag_impacts
    from uhi.stats.panel import fit_panel_fe_lag

    if len(periods) < 2:
        res.skipped["panel_fe"] = "needs at least two periods (years)"
        return
    cols = [req.y, *req.x]
    unit_ids, wide = _wide_by_period(column, periods, [*cols, *req.sensor_cols])
    complete = np.isfinite(np.column_stack([wide[c] for c in cols])).all(axis=1)
    ids = unit_ids[complete]
    if ids.size < len(req.x) + 3:
        res.skipped["panel_fe"] = f"only {ids.size} units are complete in every period (balanced panel needed)"
        return
    varying = [c for c in req.x if np.ptp(wide[c][complete], axis=1).max() > 0]
    dropped = [c for c in req.x if c not in varying]
    if not varying:
        res.skipped["panel_fe"] = f"no x variable changes over time ({list(req.x)} are static)"
        return
    t0 = time.perf_counter()
    # time-major stacking: period blocks of the same unit order (spreg's panel layout)
    y = np.concatenate([wide[req.y][complete, j] for j in range(len(periods))])
    x = np.column_stack([np.concatenate([wide[c][complete, j] for j in range(len(periods))]) for c in varying])
    names = list(varying)
    sensor_note = None
    if req.sensor_cols:
        from uhi.stats.sensors import panel_sensor_terms

        shares = {c: np.concatenate([np.where(np.isnan(v := wide[c][complete, j]), 0.0, v) for j in range(len(periods))])
                  for c in req.sensor_cols}
        terms, sensor_note = panel_sensor_terms(shares, x, ids.size, len(periods), time_effects=req.time_effects)
        if terms:
            x = np.column_stack([x, *(shares[c] for c in terms)])
            names += terms
    sw = cache.get(ids)
    ld = cache.logdet(sw)
    w = ld.w
    fit = fit_panel_fe_lag(y, x, names, w, len(periods), logdet=ld, time_effects=req.time_effects)
    fit.impacts = lag_impacts(fit.rho or 0.0, fit.coefficients, fit.names, w, logdet=ld)
    n_units = ids.size
    by_period = {
        str(p): float(np.corrcoef(y[i * n_units:(i + 1) * n_units], fit.fitted[i * n_units:(i + 1) * n_units])[0, 1] ** 2)
        for i, p in enumerate(periods)
    }
    fit.diagnostics.update(
        r2_by_period=by_period,
        weights=sw.spec, balanced_units=int(ids.size), units_dropped_unbalanced=int((~complete).sum()),
        x_dropped_time_invariant=dropped,
    )
    if sensor_note is not None:
        fit.diagnostics["sensor_terms"] = sensor_note
    res.fits["panel_fe"] = {"pooled": fit}
    res.units["panel_fe"] = {"pooled": np.tile(ids, len(periods))}
    res.observed["panel_fe"] = {"pooled": y}
    res.seconds["panel_fe"] = time.perf_counter() - t0


# ---------------------------------------------------------------------------------------------
# outputs


def _finite(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_finite(x) for x in v]
    return v


def _summary(data: ModelData, req: ModelRequest, res: _Fitted) -> dict[str, Any]:
    models: dict[str, Any] = {}
    for m, per in res.fits.items():
        years: dict[str, Any] = {}
        for period, fit in per.items():
            rec = fit.to_summary()
            rec["weights"] = req.weights
            # sensor offsets are nuisance terms, not interventions: not in "x" (scenario, plan)
            rec["x"] = [n for n in fit.names if n != "const" and not n.startswith("W_") and not n.startswith("sensor[")]
            years[str(period)] = rec
        r2s = [f.r2 for f in per.values()]
        if m == "panel_fe":
            r2s = list(next(iter(per.values())).diagnostics["r2_by_period"].values())
        aics = [f.aic for f in per.values()]
        models[m] = {"years": years, "mean_r2": float(np.mean(r2s)), "mean_aic": float(np.mean(aics))}
        if m == "panel_fe":
            # one pooled fit: its record also sits at the model level, for readers that take
            # a model's coefficients directly (scenario)
            models[m] = {**years["pooled"], **models[m]}
    ranked: tuple[str, ...] = _PER_PERIOD
    criterion = ("lowest mean AIC over the per-year models (ols, slx, lag, error, fe), which share their rows; "
                 "panel_fe has a different sample and likelihood")
    if req.lag_estimator == "2sls":
        # 2SLS has no likelihood: its Gaussian log-likelihood of residuals lacks ln|I - rho W|,
        # so an AIC from it is not comparable with the ML models' and would flatter the lag
        ranked = tuple(m for m in _PER_PERIOD if m != "lag")
        criterion = ("lowest mean AIC over ols, slx, error and fe (the 2SLS lag model has no likelihood and is "
                     "not ranked by AIC; compare it by R-squared)")
    per_period = {m: v for m, v in models.items() if m in ranked}
    best_aic = min(per_period, key=lambda m: per_period[m]["mean_aic"]) if per_period else None
    best_r2 = max(models, key=lambda m: models[m]["mean_r2"]) if models else None
    hot_counts = {
        str(p): {str(k): int((r.klass == k).sum()) for k in range(-3, 4)} for p, (_, r) in res.hotspots.items()
    }
    return _finite(
        {
            "y": req.y,
            "x": res.x_used or list(req.x),
            "weights": req.weights,
            "period": data.period_name,
            "models": models,
            "best_model": best_aic or best_r2,
            "best_model_criterion": criterion,
            "lag_estimator": req.lag_estimator,
            "best_by_r2": best_r2,
            "rows": {str(k): v for k, v in res.rows.items()},
            "weights_info": {str(k): v for k, v in res.weights_info.items()},
            "skipped": res.skipped,
            "sensor_effects": {
                "columns": list(req.sensor_cols),
                "per_period": {str(k): v for k, v in res.sensor_terms.items()},
            },
            "hotspots": {"variable": req.hotspot_col, "fdr": req.fdr, "permutations": req.permutations, "classes": hot_counts},
            "notes": data.notes,
            "seconds": {k: round(v, 3) for k, v in res.seconds.items()},
        }
    )


def _workbook_sheets(summary: dict[str, Any], res: _Fitted) -> dict[str, Any]:
    import pandas as pd

    r2 = {m: {p: rec["r2"] for p, rec in v["years"].items()} for m, v in summary["models"].items()}
    if "panel_fe" in r2:
        # per-period R-squared of the pooled fit, so the row compares with the yearly models
        r2["panel_fe"] = summary["models"]["panel_fe"]["years"]["pooled"]["diagnostics"]["r2_by_period"]
    r2_frame = pd.DataFrame(r2).T
    r2_frame["mean"] = r2_frame.mean(axis=1)
    r2_frame.index.name = "model"
    coef_rows, diag_rows, imp_rows = [], [], []
    for m, per in res.fits.items():
        for period, fit in per.items():
            for n, b, s, p in zip(fit.names, fit.coefficients, fit.std_errors, fit.p_values, strict=True):
                coef_rows.append({"model": m, "period": str(period), "variable": n, "coefficient": b, "std_error": s, "p_value": p})
            for label, val, se, pv in (("rho", fit.rho, fit.rho_se, fit.rho_p), ("lambda", fit.lam, fit.lam_se, fit.lam_p)):
                if val is not None:
                    coef_rows.append({"model": m, "period": str(period), "variable": label, "coefficient": val, "std_error": se, "p_value": pv})
            d = {"model": m, "period": str(period), "n": fit.n, "k": fit.k, "r2": fit.r2, "loglik": fit.loglik, "aic": fit.aic, "sigma2": fit.sigma2, "rho": fit.rho, "lambda": fit.lam}
            d.update({k: v for k, v in fit.diagnostics.items() if isinstance(v, (int, float, str, bool))})
            diag_rows.append(d)
            for var, im in (fit.impacts or {}).items():
                imp_rows.append({"model": m, "period": str(period), "variable": var, **im})
    rows = pd.DataFrame([{"period": k, **v} for k, v in summary["rows"].items()])
    hot = pd.DataFrame(summary["hotspots"]["classes"]).T
    if len(hot):
        from uhi.stats.hotspots import CLASS_LABELS

        hot = hot.rename(columns={str(k): v for k, v in CLASS_LABELS.items()})
        hot.index.name = "period"
    return {
        "r2": r2_frame,
        "coefficients": pd.DataFrame(coef_rows),
        "diagnostics": pd.DataFrame(diag_rows),
        "impacts": pd.DataFrame(imp_rows, columns=["model", "period", "variable", "direct", "indirect", "total"]),
        "rows": rows,
        "hotspots": hot,
    }


_NOTES = {
    "r2": "R-squared per model and period (pseudo R-squared, squared correlation of y and fitted, for lag/error/panel_fe) and their mean: the comparison the GeoBox blog draws",
    "ols": "ordinary least squares with intercept",
    "slx": "OLS on X and W X (spatially lagged x, names W_<x>)",
    "lag": "spatial lag (SAR) y = rho W y + X b + e by maximum likelihood; log-determinant exact (sparse LU) up to 2,000 rows, Barry-Pace stochastic traces above",
    "error": "spatial error (SEM) y = X b + u, u = lambda W u + e by maximum likelihood",
    "fe": "zone fixed effects per period (within transform); AIC counts the zone effects",
    "panel_fe": "spatial lag with cell and year fixed effects across periods (Elhorst 2003), balanced cells only; time-invariant x are absorbed and dropped",
    "impacts": "direct, indirect and total effects of lag models (LeSage & Pace 2009); the lag coefficients themselves are not marginal effects",
    "diagnostics": "LM lag/error tests and robust forms on OLS residuals (Anselin et al. 1996); moran_i of each model's residuals (innovations for error)",
    "hotspots": "Getis-Ord Gi* (star, binary weights), two-sided p-values, Benjamini-Hochberg FDR, classes at 90/95/99 %",
    "weights": "row-standardised for regressions, binary for Gi*; islands have no neighbours",
}


def _geo_outputs(data: ModelData, summary: dict[str, Any], res: _Fitted) -> tuple[Any, Any]:
    """Predictions and Gi* hot spots per cell (key ``cell``), one column per period."""
    import geopandas as gpd
    import pandas as pd

    from uhi.stats.hotspots import CLASS_LABELS

    units = data.units
    # the join key is "cell" in every output (the model's internal table calls it "unit")
    geom = gpd.GeoDataFrame({"cell": units.index.to_numpy()}, geometry=units.geometry.to_numpy(), crs=units.crs)
    if geom.crs is None:
        geom = geom.set_crs(4326, allow_override=True)
    idx = pd.Index(units.index)
    found: dict[bytes, np.ndarray] = {}

    def positions(ids: np.ndarray) -> np.ndarray:
        # periods that share their cells share the lookup (384k string ids cost ~0.3 s each)
        key = np.ascontiguousarray(ids).tobytes()
        if key not in found:
            found[key] = idx.get_indexer(ids)
        return found[key]

    best = summary.get("best_model")
    pred = geom.copy()
    pred["model"] = best or ""
    if best and best in res.fits:
        for period, fit in res.fits[best].items():
            pos = positions(res.units[best][period])
            suffix = "" if data.period_name is None else f"_{period}"
            for name, vals in (("y", res.observed[best][period]), ("fitted", fit.fitted), ("residual", fit.residuals)):
                col = np.full(len(pred), np.nan)
                col[pos] = vals
                pred[f"{name}{suffix}"] = col
    hot = geom.copy()
    for period, (ids, r) in res.hotspots.items():
        pos = positions(ids)
        suffix = "" if data.period_name is None else f"_{period}"
        for name, vals, fill in (("gi_z", r.z, np.nan), ("gi_p", r.q, np.nan), ("hotspot", r.klass, 0)):
            col = np.full(len(hot), fill, dtype=float)
            col[pos] = vals
            hot[f"{name}{suffix}"] = col.astype(int) if name == "hotspot" else col
        hot[f"hotspot_label{suffix}"] = hot[f"hotspot{suffix}"].map(CLASS_LABELS)
    return pred, hot


def write_outputs(
    data: ModelData, req: ModelRequest, res: _Fitted, out_dir: Path, *, gpkg: bool = True
) -> dict[str, Any]:
    """model.xlsx, summary.json, predictions/hotspots .geojson, hotspots.parquet and model.gpkg into out_dir."""
    from uhi.writers.excel import write_workbook
    from uhi.writers.geojson import geojson_geometries, write_geojson
    from uhi.writers.gpkg import write_gpkg
    from uhi.writers.parquet import write_parquet

    out_dir = Path(out_dir)
    ws = Workspace(out_dir)
    summary = _summary(data, req, res)
    ws.write_json(out_dir / "summary.json", summary)
    write_workbook(out_dir / "model.xlsx", _workbook_sheets(summary, res), notes=_NOTES)
    pred, hot = _geo_outputs(data, summary, res)

    def tables(pred: Any, hot: Any) -> None:
        # the same table without geometry, for machines: reading 400k GeoJSON features back
        # took 15-20 s in the exposure stage (bench_exposure), the Parquet columns a fraction of
        # a second
        write_parquet(hot.drop(columns=hot.geometry.name), out_dir / "hotspots.parquet")
        if gpkg:
            write_gpkg(out_dir / "model.gpkg", {"predictions": pred, "hotspots": hot})

    # Arrow and GDAL write on a second thread while pandas serialises the GeoJSON text (which
    # holds the GIL): at 389k cells that hides the GeoPackage's ~5 s behind the GeoJSON's
    # ~8 s on 2 cores. The thread gets its own copies, so no pandas object is shared.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        side = pool.submit(tables, pred.copy(), hot.copy())
        # both files carry the same cells: their geometries are serialised once
        geometry_json = geojson_geometries(pred)
        write_geojson(pred, out_dir / "predictions.geojson", geometry_json=geometry_json)
        write_geojson(hot, out_dir / "hotspots.geojson", geometry_json=geometry_json)
        side.result()
    return summary


def _stage_summary(summary: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"best_model": summary.get("best_model") or "", "models": len(summary["models"])}
    water = summary.get("notes", {}).get("water")
    if water:
        out["cells_left_out_water"] = water["cells_left_out_water"]
    for m, v in summary["models"].items():
        out[f"{m}_mean_r2"] = round(v["mean_r2"], 4)
    return out


def run(config: Config, ws: Workspace) -> dict[str, Any]:
    """Fit the configured models on the workspace's panel; write model/ outputs."""
    data, req = workspace_data(config, ws)
    res = fit_all(data, req)
    summary = write_outputs(data, req, res, ws.stage_dir("model"), gpkg="gpkg" in config.outputs.formats)
    return _stage_summary(summary)


def run_general(
    input_path: Path,
    out_dir: Path,
    *,
    y: str,
    x: Sequence[str],
    weights: str = "knn:8",
    models: Sequence[str] = ("ols", "slx", "lag", "error"),
    zone_col: str | None = None,
    year_col: str | None = None,
    hotspot_col: str | None = None,
    permutations: int = 0,
    fdr: bool = True,
    lag_estimator: str = "ml",
) -> dict[str, Any]:
    """The model stage on any vector layer: the same fits and outputs, written into out_dir."""
    from uhi.stats.weights import parse_weights_spec

    parse_weights_spec(weights)
    models = tuple(models)
    if "fe" in models and zone_col is None:
        raise ConfigError("model 'fe' needs --zone-col naming the zone column")
    if "panel_fe" in models and year_col is None:
        raise ConfigError("model 'panel_fe' needs --year-col naming the period column")
    req = ModelRequest(
        y=y, x=tuple(x), weights=weights, models=models, zone_col=zone_col,
        hotspot_col=hotspot_col or y, permutations=permutations, fdr=fdr, lag_estimator=lag_estimator,
    )
    _validate(req)
    data = vector_data(input_path, y, x, zone_col=zone_col, year_col=year_col)
    res = fit_all(data, req)
    ws = Workspace(out_dir)
    with ws.locked():
        summary = write_outputs(data, req, res, ws.root)
    return _stage_summary(summary)


def _inputs(config: Config, ws: Workspace) -> list[Path]:
    return [ws.cells, ws.panel]


SPEC = StageSpec(name="model", config_sections=("model", "time"), inputs=_inputs, run=run)

"""PNG maps of cell values: colour bar or legend, units, scale bar, north arrow, data credits."""

from __future__ import annotations

import functools
import io
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CREDIT_LANDSAT",
    "CREDIT_OSM",
    "CREDIT_SYNTHETIC",
    "HOTSPOT_CLASSES",
    "render_value_map",
    "render_class_map",
    "render_hotspot_map",
    "render_zone_map",
    "render_band_chart",
    "nice_scale_length_m",
    "map_scale_factor",
    "figure_png_bytes",
    "save_map",
]

log = logging.getLogger("uhi.maps")

CREDIT_LANDSAT = "Landsat data: USGS"
CREDIT_OSM = "Buildings: (c) OpenStreetMap contributors"
CREDIT_SYNTHETIC = "SYNTHETIC data (uhi demo): not Landsat observations"

# ArcGIS Hot Spot Analysis bins (Gi_Bin): +-3 at 99 %, +-2 at 95 %, +-1 at 90 % confidence
HOTSPOT_CLASSES: dict[int, tuple[str, str]] = {
    3: ("hot spot, 99 %", "#b2182b"),
    2: ("hot spot, 95 %", "#ef8a62"),
    1: ("hot spot, 90 %", "#fddbc7"),
    0: ("not significant", "#e0e0e0"),
    -1: ("cold spot, 90 %", "#d1e5f0"),
    -2: ("cold spot, 95 %", "#67a9cf"),
    -3: ("cold spot, 99 %", "#2166ac"),
}

_FIGSIZE_IN = (8.0, 8.0)


def nice_scale_length_m(extent_m: float, fraction: float = 0.25) -> float:
    """A round scale-bar length (1, 2 or 5 x 10^k metres) close to ``fraction`` of the extent."""
    if not math.isfinite(extent_m) or extent_m <= 0:
        raise ValueError(f"map extent must be a positive number of metres, got {extent_m!r}")
    target = extent_m * fraction
    power = 10.0 ** math.floor(math.log10(target))
    best = power
    for step in (1.0, 2.0, 5.0, 10.0):
        if step * power <= target:
            best = step * power
    return best


def _format_length(length_m: float) -> str:
    if length_m >= 1000:
        km = length_m / 1000
        return f"{km:g} km"
    return f"{length_m:g} m"


def _projected(gdf: Any, working_crs: Any | None) -> Any:
    """The frame in metres: the working CRS when known, else its UTM zone."""
    if gdf.crs is None:
        raise ValueError("cells have no CRS; set one before mapping")
    crs = working_crs if working_crs is not None else (gdf.crs if gdf.crs.is_projected else gdf.estimate_utm_crs())
    return gdf.to_crs(crs)


def _new_axes(title: str) -> tuple[Any, Any]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=_FIGSIZE_IN, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=12)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    return fig, ax


def _draw_cells(ax: Any, geoms: Any, zorder: int, **style: Any) -> Any:
    """Draw polygons as one PolyCollection built from their exterior rings' coordinates.

    geopandas' ``plot`` builds one matplotlib Patch per polygon (~0.45 ms each, measured: 90 s
    for a 200k-cell city per map); one collection from the coordinate arrays draws the same
    cells in about a second. Cells have no holes; multipolygons are split into their parts.
    """
    import shapely
    from matplotlib.collections import PolyCollection

    arr = np.asarray(geoms)
    parts, index = shapely.get_parts(arr, return_index=True)
    rings = shapely.get_exterior_ring(parts)
    counts = shapely.get_num_coordinates(rings)
    coords = shapely.get_coordinates(rings)
    if counts.size and (counts == counts[0]).all():
        verts: Any = coords.reshape(len(counts), int(counts[0]), 2)  # quads: one array, no split
    else:
        verts = np.split(coords, np.cumsum(counts)[:-1])
    values = style.pop("array", None)
    coll = PolyCollection(verts, zorder=zorder, **style)
    if values is not None:
        coll.set_array(np.asarray(values, dtype=float)[index])
    ax.add_collection(coll)
    return coll


def map_scale_factor(crs: Any, x: float, y: float) -> float:
    """Map units per ground metre at (x, y) of a projected CRS (its point scale factor k).

    Web Mercator stretches ground lengths by 1 / cos(latitude) (k = 1.47 at 47 degrees N);
    UTM by 0.9996 to 1.001. A scale bar drawn ``k * L`` map units long spans ``L`` metres.
    """
    from pyproj import CRS, Proj, Transformer

    crs = CRS.from_user_input(crs)
    lon, lat = Transformer.from_crs(crs, 4326, always_xy=True).transform(x, y)
    # conformal projections: the meridional and parallel scales are equal
    return float(Proj(crs).get_factors(lon, lat).meridional_scale)


# Web Mercator's half circumference (m): tile x of zoom z spans 2 * this / 2^z metres of EPSG:3857
_MERC_HALF_M = 20037508.342789244
_MAX_RASTER_PX = 4096 * 4096
# no-data cells drawn as pixels (no hatching): darker than "not significant" (#e0e0e0)
_NO_DATA_PIXEL = "#a6a6a6"


def _tile_raster(proj: Any) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float, float]] | None:
    """Row/column of each cell in a north-up image of its tiles, the image shape and extent.

    Only for web-mercator tiles (``tile_x``, ``tile_y``, one ``zoom``) drawn in EPSG:3857, where a
    tile is exactly one axis-aligned image pixel: ``imshow`` then draws 400k cells in about a
    second and a few MB, where polygons take minutes and GBs (bench/bench_report.py).
    """
    if not {"tile_x", "tile_y", "zoom"} <= set(proj.columns) or proj.crs is None or proj.crs.to_epsg() != 3857:
        return None
    zoom = proj["zoom"].to_numpy()
    if len(zoom) == 0 or (zoom != zoom[0]).any():
        return None
    tx, ty = proj["tile_x"].to_numpy(np.int64), proj["tile_y"].to_numpy(np.int64)
    x0, y0 = int(tx.min()), int(ty.min())
    width, height = int(tx.max()) - x0 + 1, int(ty.max()) - y0 + 1
    if width * height > _MAX_RASTER_PX:
        return None
    size = 2 * _MERC_HALF_M / 2.0 ** int(zoom[0])
    extent = (-_MERC_HALF_M + x0 * size, -_MERC_HALF_M + (x0 + width) * size,
              _MERC_HALF_M - (y0 + height) * size, _MERC_HALF_M - y0 * size)
    return ty - y0, tx - x0, (height, width, *extent)  # type: ignore[return-value]


def _imshow_cells(ax: Any, raster: Any, values: np.ndarray, zorder: int, **style: Any) -> Any:
    """Draw per-cell values (floats, or RGBA rows) as one image; pixels without a cell stay clear."""
    rows, cols, (height, width, *extent) = raster
    if values.ndim == 1:
        img = np.full((int(height), int(width)), np.nan)
        img[rows, cols] = values
        img = np.ma.masked_invalid(img)
    else:
        img = np.zeros((int(height), int(width), 4))
        img[rows, cols] = values
    return ax.imshow(img, extent=extent, origin="upper", interpolation="nearest", zorder=zorder, **style)


def _add_scale_bar(ax: Any, units_per_m: float = 1.0) -> None:
    """Alternating black/white bar in the lower left; ``units_per_m`` converts ground metres to map units."""
    from matplotlib.patches import Rectangle

    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    width, height = x1 - x0, y1 - y0
    length = nice_scale_length_m(width / units_per_m) * units_per_m
    bar_h = height * 0.012
    left, bottom = x0 + width * 0.05, y0 + height * 0.05
    ax.add_patch(
        Rectangle(
            (left - width * 0.015, bottom - height * 0.015), length + width * 0.03, height * 0.065,
            facecolor="white", edgecolor="none", alpha=0.75, zorder=5,
        )
    )
    halves = 2
    for i in range(halves):
        ax.add_patch(
            Rectangle(
                (left + i * length / halves, bottom),
                length / halves,
                bar_h,
                facecolor="black" if i % 2 == 0 else "white",
                edgecolor="black",
                linewidth=0.8,
                zorder=5,
                gid="scale-bar",
            )
        )
    ax.text(
        left + length / 2, bottom + bar_h * 1.6, _format_length(round(length / units_per_m, 6)), ha="center", va="bottom",
        fontsize=9, zorder=5, gid="scale-bar-label",
        bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1},
    )


def _add_north_arrow(ax: Any) -> None:
    # The report draws in EPSG:3857, where north is straight up everywhere (and the cells,
    # web-mercator tiles, are axis-aligned). In a UTM working CRS grid north differs from true
    # north by the meridian convergence (under ~2 degrees near a zone's centre).
    ax.annotate(
        "N", xy=(0.94, 0.95), xytext=(0.94, 0.85), xycoords="axes fraction",
        ha="center", va="center", fontsize=12, fontweight="bold", zorder=6, gid="north-arrow",
        bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
        arrowprops={"facecolor": "black", "edgecolor": "white", "width": 4, "headwidth": 11, "headlength": 10},
    )


def _add_credits(fig: Any, credits: Sequence[str]) -> None:
    fig.text(0.99, 0.005, " | ".join(credits), ha="right", va="bottom", fontsize=7, color="#444444", gid="credits")


@functools.lru_cache(maxsize=1)
def _contextily() -> Any:
    """The contextily module, or None (said once per process, not once per map)."""
    try:
        import contextily
    except ImportError:
        log.info("basemap left out: contextily is not installed (pip install contextily)")
        return None
    return contextily


@functools.lru_cache(maxsize=4)
def _tiles_reachable(url: str, timeout_s: float = 3.0) -> bool:
    """Whether the tile server accepts a TCP connection; asked once per process.

    contextily's downloads carry no timeout, so an offline machine whose DNS or firewall
    drops packets would hang on every map; a 3 s connect probe decides up front.
    """
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "", port), timeout=timeout_s):
            return True
    except OSError as exc:
        log.info("basemap left out: %s is unreachable (%s)", parts.hostname, type(exc).__name__)
        return False


def _add_basemap(ax: Any, crs: Any) -> str | None:
    """Web tiles under the cells when contextily is installed and the tiles answer; else None."""
    ctx = _contextily()
    if ctx is None:
        return None
    source = ctx.providers.CartoDB.Positron
    if not _tiles_reachable(source.build_url(x=0, y=0, z=0)):
        return None
    try:
        ctx.add_basemap(ax, crs=crs, source=source, attribution=False, zorder=0)
    except (OSError, ValueError) as exc:  # requests' errors derive from OSError (IOError)
        log.info("basemap left out: tiles could not be reached (%s)", type(exc).__name__)
        return None
    return "Basemap: (c) OpenStreetMap contributors (c) CARTO"


def _finish(fig: Any, ax: Any, proj: Any, credits: Sequence[str], basemap: bool, outlines: Any) -> Any:
    if outlines is not None and len(outlines):
        outlines.to_crs(proj.crs).boundary.plot(ax=ax, color="black", linewidth=1.2, zorder=4)
    ax.set_xlabel("")  # geopandas labels projected axes; the scale bar says it better
    ax.set_ylabel("")
    xmin, ymin, xmax, ymax = proj.total_bounds
    pad = 0.03 * max(xmax - xmin, ymax - ymin, 1.0)
    ax.set_xlim(xmin - pad, xmax + pad)
    ax.set_ylim(ymin - pad, ymax + pad)
    all_credits = list(credits)
    if basemap:
        extra = _add_basemap(ax, proj.crs)
        if extra:
            all_credits.append(extra)
    _add_scale_bar(ax, map_scale_factor(proj.crs, (xmin + xmax) / 2, (ymin + ymax) / 2) if proj.crs.is_projected else 1.0)
    _add_north_arrow(ax)
    _add_credits(fig, all_credits)
    return fig


def render_value_map(
    cells: Any,
    column: str,
    *,
    title: str,
    label: str,
    units: str,
    cmap: str = "inferno",
    diverging: bool = False,
    limits: tuple[float, float] | None = None,
    credits: Sequence[str] = (CREDIT_LANDSAT,),
    working_crs: Any | None = None,
    basemap: bool = False,
    outlines: Any | None = None,
) -> Any:
    """A map of one numeric cell column with a colour bar.

    Parameters
    ----------
    cells
        GeoDataFrame of cell polygons (any CRS) holding ``column``.
    column
        Values to colour; NaN cells are drawn hatched grey as "no data".
    title, label, units
        Figure title; colour-bar label and its unit (e.g. "LST", "degrees C").
    cmap
        Matplotlib colour map; for ``diverging`` maps the limits are symmetric around zero.
    limits
        Colour limits; by default the 2nd and 98th percentiles so outliers do not wash the map out.
    credits
        Data credits printed along the bottom.
    working_crs
        Projected CRS (metres) to draw in; the cells' UTM zone when None.
    basemap
        Put web tiles underneath when they can be reached (needs contextily and the network).
    outlines
        Optional polygons (e.g. scenario changes) drawn as black outlines.

    Returns
    -------
    matplotlib.figure.Figure
        Not yet saved: pass it to ``save_map`` or ``figure_png_bytes``.
    """
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    if column not in cells.columns:
        raise ValueError(f"column {column!r} is not in the cells; have {list(cells.columns)}")
    proj = _projected(cells, working_crs)
    values = proj[column].to_numpy(dtype=float)
    finite = values[np.isfinite(values)]
    if limits is not None:
        vmin, vmax = limits
    elif diverging:
        half = float(np.nanmax(np.abs(finite))) if finite.size else 1.0
        half = half if half > 0 else 1.0
        vmin, vmax = -half, half
    elif finite.size:
        vmin, vmax = (float(v) for v in np.percentile(finite, [2, 98]))
    else:
        vmin, vmax = 0.0, 1.0
    if vmax <= vmin:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    norm = Normalize(vmin=vmin, vmax=vmax)
    fig, ax = _new_axes(title)
    has = np.isfinite(values)
    raster = _tile_raster(proj)
    if raster is not None:
        from matplotlib.colors import to_rgba

        if (~has).any():
            _imshow_cells(ax, raster, np.where(has[:, None], 0.0, np.array(to_rgba(_NO_DATA_PIXEL))), 2)
        if has.any():
            _imshow_cells(ax, raster, np.where(has, values, np.nan), 3, cmap=cmap, norm=norm)
    else:
        geoms = proj.geometry.to_numpy()
        if (~has).any():
            _draw_cells(ax, geoms[~has], 2, facecolor="#f0f0f0", edgecolor="#bbbbbb", hatch="///", linewidth=0.2)
        if has.any():
            _draw_cells(ax, geoms[has], 3, array=values[has], cmap=cmap, norm=norm, edgecolor="face", linewidth=0.3)
    bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.7, extend="both")
    bar.set_label(f"{label} ({units})")
    bar.ax.set_gid("colorbar")
    return _finish(fig, ax, proj, credits, basemap, outlines)


def render_class_map(
    cells: Any,
    column: str,
    classes: Mapping[Any, tuple[str, str]],
    *,
    title: str,
    legend_title: str,
    credits: Sequence[str] = (CREDIT_LANDSAT,),
    working_crs: Any | None = None,
    basemap: bool = False,
    outlines: Any | None = None,
) -> Any:
    """A map of a categorical cell column with a legend of the classes present.

    ``classes`` maps each value to (label, colour); values not listed are drawn as "no data".
    """
    from matplotlib.patches import Patch

    if column not in cells.columns:
        raise ValueError(f"column {column!r} is not in the cells; have {list(cells.columns)}")
    proj = _projected(cells, working_crs)
    fig, ax = _new_axes(title)
    from matplotlib.colors import to_rgba

    handles = []
    values = proj[column]
    raster = _tile_raster(proj)
    geoms = proj.geometry.to_numpy() if raster is None else None
    rgba = np.zeros((len(proj), 4))
    for value, (label, colour) in classes.items():
        mask = (values == value).to_numpy()
        if mask.any() and geoms is not None:
            # edges in the face colour close the hairline gaps antialiasing leaves between cells
            _draw_cells(ax, geoms[mask], 3, facecolor=colour, edgecolor=colour, linewidth=0.3)
        rgba[mask] = to_rgba(colour)
        handles.append(Patch(facecolor=colour, edgecolor="#666666", label=f"{label} ({int(mask.sum())})"))
    other = ~values.isin(list(classes)).to_numpy()
    if other.any():
        if geoms is not None:
            _draw_cells(ax, geoms[other], 2, facecolor="#f0f0f0", edgecolor="#bbbbbb", hatch="///", linewidth=0.2)
        rgba[other] = to_rgba(_NO_DATA_PIXEL)
        handles.append(Patch(facecolor=_NO_DATA_PIXEL if geoms is None else "#f0f0f0", edgecolor="#bbbbbb",
                             hatch=None if geoms is None else "///", label=f"no data ({int(other.sum())})"))
    if raster is not None:
        _imshow_cells(ax, raster, rgba, 3)
    legend = ax.legend(handles=handles, title=legend_title, loc="lower right", fontsize=8, title_fontsize=9, framealpha=0.85)
    legend.set_gid("legend")
    legend.set_zorder(7)
    return _finish(fig, ax, proj, credits, basemap, outlines)


def render_hotspot_map(cells: Any, column: str = "gi_bin", *, variable: str = "LST", **kwargs: Any) -> Any:
    """Getis-Ord Gi* hot and cold spots at 90/95/99 % confidence (ArcGIS-style bins -3..3)."""
    return render_class_map(
        cells,
        column,
        HOTSPOT_CLASSES,
        title=kwargs.pop("title", f"Hot and cold spots of {variable} (Getis-Ord Gi*)"),
        legend_title=kwargs.pop("legend_title", "Gi* class (cells)"),
        **kwargs,
    )


def render_zone_map(
    zones: Any,
    column: str,
    *,
    labels: str | None,
    overlay: np.ndarray | None,
    overlay_label: str,
    title: str,
    label: str,
    units: str,
    cmap: str = "inferno",
    credits: Sequence[str] = (CREDIT_LANDSAT,),
    working_crs: Any | None = None,
    basemap: bool = False,
) -> Any:
    """Zones coloured by ``column`` with their names, and an outline (e.g. of hot spots) on top.

    The zone map of the exposure stage: a value map of zone polygons (colour bar, scale bar,
    north arrow, credits as every uhi map), each zone labelled at a point inside it, and
    ``overlay`` line segments ((m, 2, 2), in ``working_crs``; e.g. the outline of Gi* hot-spot
    cells from ``uhi.grid.cells.tile_outline_segments``) listed in a legend.
    """
    import shapely
    from matplotlib.patches import Patch

    fig = render_value_map(
        zones, column, title=title, label=label, units=units, cmap=cmap, credits=credits,
        working_crs=working_crs, basemap=basemap,
    )
    ax = fig.axes[0]
    proj = _projected(zones, working_crs)
    # zone borders over the fill so neighbouring zones of similar values stay apart
    _draw_cells(ax, proj.geometry.to_numpy(), 4, facecolor="none", edgecolor="white", linewidth=0.8)
    handles = []
    if overlay is not None and len(overlay):
        from matplotlib.patches import PathPatch
        from matplotlib.path import Path as MplPath

        # one path of move-to/line-to pairs: a LineCollection builds a Path per segment (4 s
        # for 200k segments) and hatching each cell took ~100 s per map at 400k cells
        segs = np.asarray(overlay, dtype=float).reshape(-1, 2)
        codes = np.tile(np.array([MplPath.MOVETO, MplPath.LINETO], dtype=np.uint8), len(segs) // 2)
        patch = PathPatch(MplPath(segs, codes), facecolor="none", edgecolor="#00e5ff", linewidth=1.0,
                          zorder=5, gid="overlay", transform=ax.transData)
        # add_artist, not add_patch: the map's limits are set, and add_patch walks every
        # segment to update them (30 s for 200k segments)
        ax.add_artist(patch)
        handles.append(Patch(facecolor="none", edgecolor="#00e5ff", label=overlay_label))
    if labels is not None and labels in proj.columns and len(proj) <= 200:
        # more than ~200 names would cover the map; the zone table carries them all
        points = shapely.point_on_surface(proj.geometry.to_numpy())
        for pt, name in zip(points, proj[labels].astype(str), strict=True):
            ax.text(pt.x, pt.y, name, ha="center", va="center", fontsize=7, zorder=6, gid="zone-label",
                    bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 0.8})
    if handles:
        legend = ax.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.85)
        legend.set_gid("legend")
        legend.set_zorder(7)
    return fig


def render_band_chart(bands: Any, *, title: str) -> Any:
    """A bar chart of people per LST band (``label``, ``population`` rows; the last may be 'no land temperature')."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    labels = bands["label"].astype(str).tolist()
    values = bands["population"].to_numpy(dtype=float)
    colours = ["#bbbbbb" if np.isnan(lo) else "#d6604d" for lo in bands["band_low_c"].to_numpy(dtype=float)]
    ax.bar(range(len(values)), values, color=colours, edgecolor="#444444", linewidth=0.5, gid="bars")
    ax.set_xticks(range(len(values)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_xlabel("land surface temperature band (degrees C)")
    ax.set_ylabel("people")
    ax.set_title(title, fontsize=12)
    ax.grid(axis="y", alpha=0.3)
    _add_credits(fig, (CREDIT_LANDSAT,))
    return fig


def figure_png_bytes(fig: Any, *, dpi: int = 110) -> bytes:
    """The figure as PNG bytes (for inlining in the HTML report)."""
    buf = io.BytesIO()
    # zlib level 4: within a few % of the default size, encodes about twice as fast
    fig.savefig(buf, format="png", dpi=dpi, pil_kwargs={"compress_level": 4})
    return buf.getvalue()


def save_map(fig: Any, path: Path, *, dpi: int = 150) -> Path:
    """Write the figure as a PNG file, atomically."""
    from uhi.workspace import Workspace

    path = Path(path)
    return Workspace(path.parent).write_bytes(path, figure_png_bytes(fig, dpi=dpi))

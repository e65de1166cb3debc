"""Paint and write one synthetic Landsat C2 L2 scene: DN-encoded COGs, QA bits, MTL.txt."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pyproj import Transformer

from uhi.demo.encoding import SR_FILL, ST_FILL, ST_QA_FILL, sr_dn, st_dn, st_qa_dn
from uhi.demo.landscape import Landscape, tile_xy
from uhi.demo.mtl import mtl_text
from uhi.demo.plan import ScenePlan
from uhi.demo.spec import PIXEL_SIZE_M, UTM_EPSG

__all__ = [
    "PixelGrid",
    "SceneRecord",
    "pixel_grid",
    "cell_reflectance",
    "write_scene",
    "QA_VALUES",
    "SR_KEYS",
    "qa_values",
    "slc_off_gaps",
]

SR_KEYS = ("blue", "green", "red", "nir08", "swir16", "swir22")

# Typical real QA_PIXEL values (LSDS-1619 Table 6-3; the confidences in bits 8-15 as USGS sets
# them): clear land 21824 = bit 6 + low cloud/shadow/snow/cirrus confidence; clear water 21952 =
# bit 7 on top; high-confidence cloud 22280 = bit 3 + cloud confidence 3 (never bit 6);
# dilated cloud 21762 = bit 1, no bit 6; high-confidence shadow 23888 = bit 4 + shadow
# confidence 3 WITH bit 6 (clear does not exclude shadow); fill 1 = bit 0.
QA_VALUES: dict[str, int] = {
    "fill": 1,
    "clear": 21824,
    "water": 21952,
    "cloud": 22280,
    "dilated": 21762,
    "shadow": 23888,
    "shadow_water": 23888 | (1 << 7),
}
# TM/ETM+ QA_PIXEL (LSDS-1618): the same bits, but no cirrus band, so the cirrus confidence
# (bits 14-15, "low" = 1 << 14 in every OLI value above) is never set: clear land 5440, clear
# water 5504, high-confidence cloud 5896 as in real Landsat 4-7 C2 products
_CIRRUS_LOW = 1 << 14


def qa_values(cirrus_confidence: bool) -> dict[str, int]:
    """QA_PIXEL value per pixel class, for a sensor with or without a cirrus band."""
    if cirrus_confidence:
        return dict(QA_VALUES)
    return {k: (v & ~_CIRRUS_LOW if k != "fill" else v) for k, v in QA_VALUES.items()}


# Landsat 7 SLC-off gaps (USGS, "SLC-off Products: Background"): each 16-line ETM+ scan leaves a
# wedge-shaped gap, zero wide at the scene's centre line and ~14 pixels at its east and west
# edges, ~22 % of a scene. Over a city of a few km the wedge's width changes by well under a
# pixel, so the demo approximates it by parallel stripes of constant width: one every
# 16 rows (one scan), 4 pixels wide (a city ~ a quarter of the swath off-centre), along the scan
# direction (perpendicular to the ground track, i.e. tilted like the scene edges).
_SLC_PERIOD_PX = 16.0
_SLC_GAP_PX = 4.0


def slc_off_gaps(grid: PixelGrid, rng: np.random.Generator) -> np.ndarray:
    """(height, width) True in the scan-line gaps of an SLC-off Landsat 7 scene."""
    rows, cols = np.mgrid[0 : grid.height, 0 : grid.width] + 0.5
    along = rows + np.tan(np.radians(_EDGE_TILT_DEG)) * cols  # distance across the stripes
    phase = float(rng.uniform(0.0, _SLC_PERIOD_PX))
    return np.mod(along + phase, _SLC_PERIOD_PX) < _SLC_GAP_PX


# path 041 scenes end in the west of the AOI: Landsat scene edges run ~12 deg off north at 51 N
_EDGE_TILT_DEG = 12.0
_SHADOW_SHIFT_PX = (-12, -18)  # rows, cols: sun in the south-east, shadows to the north-west


@dataclass(frozen=True)
class PixelGrid:
    """A 30 m scene raster on the USGS grid and the planted cell under each pixel centre.

    Attributes
    ----------
    transform
        rasterio Affine of the raster (origin at a pixel edge, 15 m off a multiple of 30 m).
    width, height
        Raster size in pixels.
    cell
        (height, width) flat index of the planted cell holding each pixel centre.
    fill
        (height, width) True outside the scene's imaged swath (slanted edge) for this path.
    """

    transform: Any
    width: int
    height: int
    cell: np.ndarray
    fill: np.ndarray

    def centres(self) -> tuple[np.ndarray, np.ndarray]:
        """UTM x, y of every pixel centre, (height, width) each."""
        cols = np.arange(self.width) + 0.5
        rows = np.arange(self.height) + 0.5
        x = self.transform.c + cols * self.transform.a
        y = self.transform.f + rows * self.transform.e
        return np.meshgrid(x, y)


def pixel_grid(land: Landscape, path: int) -> PixelGrid:
    """The raster of one WRS path: path 042 covers the whole AOI; path 041 sits 3 pixels east
    and 2 north (another extent on the same grid) with a slanted fill edge across the west."""
    from rasterio.transform import Affine

    x0, y0, x1, y1 = land.raster_bounds_utm
    dx, dy = (0.0, 0.0) if path == 42 else (3 * PIXEL_SIZE_M, 2 * PIXEL_SIZE_M)
    width = round((x1 - x0) / PIXEL_SIZE_M)
    height = round((y1 - y0) / PIXEL_SIZE_M)
    transform = Affine(PIXEL_SIZE_M, 0.0, x0 + dx, 0.0, -PIXEL_SIZE_M, y1 + dy)
    grid = PixelGrid(transform, width, height, np.empty(0), np.empty(0))
    x, y = grid.centres()
    lon, lat = Transformer.from_crs(UTM_EPSG, 4326, always_xy=True).transform(x, y)
    cell = land.grid.index_of(*tile_xy(lon, lat)).astype(np.int64)
    if (cell < 0).any():
        raise AssertionError(
            "a demo pixel fell outside the planted cells"
        )  # a bug, not a user error
    fill = np.zeros(cell.shape, dtype=bool)
    if path != 42:
        ax0, ay0, ax1, ay1 = land.aoi_utm
        edge_x = (
            ax0
            + 0.15 * (ax1 - ax0)
            + math.tan(math.radians(_EDGE_TILT_DEG)) * (y - (ay0 + ay1) / 2)
        )
        fill = x < edge_x
    return PixelGrid(transform, width, height, cell, fill)


def reflectance(
    red: np.ndarray,
    ndvi: np.ndarray,
    ndbi: np.ndarray,
    mndwi: np.ndarray,
    water: np.ndarray,
    water_rho: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Surface reflectance per band, solved from the planted indices (cells or pixels alike).

    red is planted; nir08 = red (1 + ndvi) / (1 - ndvi) gives NDVI; swir16 = nir08 (1 + ndbi) /
    (1 - ndbi) gives NDBI; green = swir16 (1 + mndwi) / (1 - mndwi) gives MNDWI (Xu 2006).
    blue and swir22 follow typical spectra and enter only albedo. Where ``water`` is set the
    planted water spectra are written as they are (NIR and SWIR near zero, some negative).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        nir = red * (1 + ndvi) / (1 - ndvi)
        swir16 = nir * (1 + ndbi) / (1 - ndbi)
        green = swir16 * (1 + mndwi) / (1 - mndwi)
    out = {
        "blue": 0.75 * red + 0.01,
        "green": green,
        "red": red,
        "nir08": nir,
        "swir16": swir16,
        "swir22": 0.75 * swir16,
    }
    return {k: np.where(water, water_rho[k], v) for k, v in out.items()}


def cell_reflectance(land: Landscape, year_index: int) -> dict[str, np.ndarray]:
    """Surface reflectance per planted cell and band (``reflectance`` of the cell values)."""
    i = year_index
    return reflectance(
        land.red[i], land.ndvi[i], land.ndbi[i], land.mndwi[i], land.water, land.water_rho
    )


@dataclass(frozen=True)
class SceneRecord:
    """What was written for one scene (feeds the STAC item and truth.json)."""

    plan: ScenePlan
    folder: Path
    files: dict[str, str]
    transform: tuple[float, ...]
    shape: tuple[int, int]
    footprint_lonlat: list[tuple[float, float]]
    cloud_cover: float
    cloud_cover_land: float
    aoi_cloud_share: float
    clear_aoi_cells: int
    expected_aoi_mean_lst_c: float | None
    expected_suhi_c: float | None
    expected_water_lst_c: dict[str, float | None]
    slc_gap_share: float = 0.0


def _shift(mask: np.ndarray, rows: int, cols: int) -> np.ndarray:
    out = np.zeros_like(mask)
    h, w = mask.shape
    src = mask[max(0, -rows) : h - max(0, rows), max(0, -cols) : w - max(0, cols)]
    out[max(0, rows) : max(0, rows) + src.shape[0], max(0, cols) : max(0, cols) + src.shape[1]] = (
        src
    )
    return out


def _clouds(plan: ScenePlan, valid: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A cloud mask covering ``plan.cloud_fraction`` of the valid pixels: smoothed noise
    thresholded at its quantile, so clouds are blobs of a few hundred metres."""
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(rng.standard_normal(valid.shape), sigma=6.0, mode="reflect")
    if plan.cloud_fraction >= 1.0:
        return valid.copy()
    if plan.cloud_fraction <= 0.0 or not valid.any():
        return np.zeros(valid.shape, dtype=bool)
    threshold = np.quantile(field[valid], 1.0 - plan.cloud_fraction)
    return (field > threshold) & valid


def write_scene(
    plan: ScenePlan,
    grid: PixelGrid,
    land: Landscape,
    lst_cell_c: np.ndarray,
    scenes_dir: Path,
    seed: int,
    pixel_noise_sd_c: float,
    suhi_classes: tuple[np.ndarray, np.ndarray],
    fields: dict[str, np.ndarray],
) -> SceneRecord:
    """Paint one scene from the planted cells and write its COGs and MTL.txt.

    ``fields`` holds the year's unmixed pixel values (``ndvi``, ``ndbi``, ``mndwi``,
    ``lst_c``; (height, width) each, ``uhi.demo.unmix``): the coverage-weighted mean of a cell's
    land pixels is its planted value. Reflectance is solved from them (exact up to DN rounding),
    LST = the pixel's value + the scene's weather offset + iid pixel noise. Clouds are cold and bright, their 3-pixel dilation ring is half contaminated, and
    shadows (the cloud mask displaced north-west) are dark and cool. ``suhi_classes`` are the
    planted (urban, rural) cell masks the scene's expected SUHI is taken over.
    """
    from scipy.ndimage import binary_dilation, distance_transform_edt

    from uhi.writers.raster import write_cog

    rng = np.random.default_rng(np.random.SeedSequence([seed, 1000 + plan.index]))
    sensor = plan.sensor
    fill = grid.fill
    if plan.slc_off:
        # its own stream, so the clouds and noise of the scene do not depend on the gaps
        gap_rng = np.random.default_rng(np.random.SeedSequence([seed, 3000 + plan.index]))
        fill = fill | slc_off_gaps(grid, gap_rng)
    valid = ~fill
    cloud = _clouds(plan, valid, rng)
    dilated = binary_dilation(cloud, iterations=3) & ~cloud & valid
    shadow = _shift(cloud, *_SHADOW_SHIFT_PX) & ~cloud & ~dilated & valid
    water = land.water[grid.cell] & ~cloud & ~dilated

    values = qa_values(sensor.cirrus_confidence)
    qa = np.full(grid.cell.shape, values["clear"], dtype=np.uint16)
    qa[water] = values["water"]
    qa[shadow] = values["shadow"]
    qa[shadow & water] = values["shadow_water"]
    qa[dilated] = values["dilated"]
    qa[cloud] = values["cloud"]
    qa[fill] = values["fill"]

    i, c = plan.year_index, grid.cell
    bands = reflectance(
        land.red[i][c],
        fields["ndvi"],
        fields["ndbi"],
        fields["mndwi"],
        land.water[c],
        {k: v[c] for k, v in land.water_rho.items()},
    )
    cloud_rho = 0.45 + 0.03 * rng.standard_normal(grid.cell.shape)
    arrays: dict[str, np.ndarray] = {}
    for key in SR_KEYS:
        rho = bands[key]
        bright = cloud_rho * (0.7 if key.startswith("swir") else 1.0)
        rho = np.where(cloud, bright, rho)
        rho = np.where(dilated, 0.6 * rho + 0.4 * bright, rho)
        rho = np.where(shadow, 0.45 * rho, rho)
        dn = sr_dn(rho)
        dn[fill] = SR_FILL
        arrays[key] = dn

    if plan.has_thermal:
        lst = (
            fields["lst_c"]
            + plan.offset_c
            + rng.normal(0.0, pixel_noise_sd_c, grid.cell.shape)
        )
        lst = np.where(cloud, -8.0 + 2.0 * rng.standard_normal(grid.cell.shape), lst)
        lst = np.where(dilated, lst - 3.0, lst)
        lst = np.where(shadow, lst - 4.0, lst)
        st = st_dn(lst)
        st[fill] = ST_FILL
        arrays["lwir11"] = st
        # ST uncertainty grows near clouds (LSDS-1619: ST_QA is worse close to cloud)
        dist_px = distance_transform_edt(~cloud) if cloud.any() else np.full(cloud.shape, 1e3)
        unc_k = 1.2 + 0.4 * land.water[grid.cell] + 5.0 * np.exp(-dist_px / 5.0)
        unc_k = np.where(cloud, 12.0, unc_k)
        st_qa = st_qa_dn(unc_k)
        st_qa[fill] = ST_QA_FILL
        arrays["qa"] = st_qa
    arrays["qa_pixel"] = qa

    folder = scenes_dir / plan.product_id
    crs = f"EPSG:{UTM_EPSG}"
    files: dict[str, str] = {}
    nodata: dict[str, int | float | None] = {"qa_pixel": 1, "qa": ST_QA_FILL}
    for key, arr in arrays.items():
        name = f"{plan.product_id}_{sensor.band_files[key]}.TIF"
        write_cog(folder / name, arr, transform=grid.transform, crs=crs, nodata=nodata.get(key, 0))
        files[key] = name

    n_valid = max(1, int(valid.sum()))
    cloudy = cloud | dilated
    land_px = valid & ~land.water[grid.cell]
    aoi = _aoi_pixels(grid, land)
    cover = 100.0 * cloudy[valid].sum() / n_valid
    cover_land = 100.0 * cloudy[land_px].sum() / max(1, int(land_px.sum()))
    aoi_share = float(cloudy[aoi & valid].sum() / max(1, int((aoi & valid).sum())))
    if plan.kind == "regional_cloud":
        # the item describes the whole 185 km scene, mostly clear around the city's cloud deck
        from uhi.demo.plan import REGIONAL_SCENE_CLOUD

        cover, cover_land = REGIONAL_SCENE_CLOUD, REGIONAL_SCENE_CLOUD + 1.0

    # what a pipeline should find for this scene, over AOI cells that are at least half clear
    # (by pixel centre): the mean planted land LST + the scene's offset (water cells have no
    # land LST), the urban-minus-rural difference and each water body's mean temperature
    n_cells = land.grid.n
    clear_px = valid & ~cloud & ~dilated & ~shadow
    per_cell = np.bincount(grid.cell.ravel(), minlength=n_cells)
    clear_cell = np.bincount(grid.cell.ravel(), weights=clear_px.ravel(), minlength=n_cells)
    ok_cells = land.grid.in_aoi & (per_cell > 0) & (clear_cell >= 0.5 * np.maximum(per_cell, 1))
    ok_land = ok_cells & ~land.water
    thermal = plan.has_thermal

    def _mean(mask: np.ndarray, offset: float = 0.0) -> float | None:
        return round(float(lst_cell_c[mask].mean() + offset), 4) if thermal and mask.any() else None

    expected = _mean(ok_land, plan.offset_c)
    urban_c, rural_c = _mean(ok_land & suhi_classes[0]), _mean(ok_land & suhi_classes[1])
    expected_suhi = (
        round(urban_c - rural_c, 4) if urban_c is not None and rural_c is not None else None
    )
    expected_water = {
        "river": _mean(ok_cells & land.river, plan.offset_c),
        "lake": _mean(ok_cells & land.lake, plan.offset_c),
    }

    footprint = _footprint(grid)
    to_ll = Transformer.from_crs(UTM_EPSG, 4326, always_xy=True)
    t = grid.transform
    ul = (t.c + t.a / 2, t.f + t.e / 2)
    lr = (t.c + t.a * (grid.width - 0.5), t.f + t.e * (grid.height - 0.5))
    corners = {
        name: to_ll.transform(cx, cy)
        for name, cx, cy in (
            ("UL", ul[0], ul[1]),
            ("UR", lr[0], ul[1]),
            ("LL", ul[0], lr[1]),
            ("LR", lr[0], lr[1]),
        )
    }
    text = mtl_text(
        plan,
        utm_zone=UTM_EPSG - 32600,
        ul_centre=ul,
        lr_centre=lr,
        lines=grid.height,
        samples=grid.width,
        corners_lonlat=corners,
        cloud_cover=round(cover, 2),
        cloud_cover_land=round(cover_land, 2),
    )
    from uhi.workspace import Workspace

    mtl_name = f"{plan.product_id}_MTL.txt"
    Workspace(folder).write_text(folder / mtl_name, text)
    files["mtl.txt"] = mtl_name
    return SceneRecord(
        plan=plan,
        folder=folder,
        files=files,
        transform=(t.a, t.b, t.c, t.d, t.e, t.f),
        shape=(grid.height, grid.width),
        footprint_lonlat=footprint,
        cloud_cover=round(cover, 2),
        cloud_cover_land=round(cover_land, 2),
        aoi_cloud_share=round(aoi_share, 4),
        clear_aoi_cells=int(ok_cells.sum()),
        expected_aoi_mean_lst_c=expected,
        expected_suhi_c=expected_suhi,
        expected_water_lst_c=expected_water,
        slc_gap_share=round(float((fill & ~grid.fill)[aoi].mean()), 4) if plan.slc_off else 0.0,
    )


def _aoi_pixels(grid: PixelGrid, land: Landscape) -> np.ndarray:
    return land.grid.in_aoi[grid.cell]


def _footprint(grid: PixelGrid) -> list[tuple[float, float]]:
    """The imaged area (raster minus the slanted fill) as a lon/lat ring, counter-clockwise."""
    import shapely

    t = grid.transform
    x0, x1 = t.c, t.c + t.a * grid.width
    y1, y0 = t.f, t.f + t.e * grid.height
    poly = shapely.box(x0, y0, x1, y1)
    if grid.fill.any():
        rows, cols = np.nonzero(~grid.fill)
        # the fill edge is straight: the valid area is the hull of valid pixel corners
        xs = np.concatenate([t.c + cols * t.a, t.c + (cols + 1) * t.a])
        ys = np.concatenate([t.f + rows * t.e, t.f + (rows + 1) * t.e])
        poly = shapely.MultiPoint(np.column_stack([xs, ys])).convex_hull.intersection(poly)
    poly = shapely.segmentize(shapely.orient_polygons(poly), 500.0)
    to_ll = Transformer.from_crs(UTM_EPSG, 4326, always_xy=True)
    xs, ys = np.asarray(poly.exterior.coords).T
    lon, lat = to_ll.transform(xs, ys)
    return [(round(float(a), 7), round(float(b), 7)) for a, b in zip(lon, lat, strict=True)]

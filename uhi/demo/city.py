"""Write the whole demo city: scenes, catalog, layers, config, truth.json and truth_cells."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from uhi.demo.buildings import Buildings, build_buildings
from uhi.demo.catalog import write_catalog
from uhi.demo.landscape import (
    LAND_CLASSES,
    WATER_CLASSES,
    ZONES,
    Landscape,
    build_landscape,
    zone_polygons,
)
from uhi.demo.plan import ScenePlan, plan_scenes
from uhi.demo.scenes import PixelGrid, SceneRecord, pixel_grid, write_scene
from uhi.demo.spec import CENTRE_LAT, CENTRE_LON, UTM_EPSG, ZOOM, DemoSpec
from uhi.demo.truth import (
    WEIGHTS_K,
    PlantedLst,
    SuhiReference,
    measure_blur,
    ols_r_squared,
    plant_lst,
    suhi_reference,
)

__all__ = ["DemoResult", "write_demo"]

log = logging.getLogger("uhi.demo")

# GeoPackages stamp the write time into gpkg_contents; GDAL honours this fixed date instead,
# so two runs with one seed give byte-identical files (GDAL GPKG driver, OGR_CURRENT_DATE).
_FIXED_DATE = "2000-01-01T00:00:00.000Z"
# a scene enters the expected summer mean when at least this share of AOI cells is clear: the
# mean of a handful of cells at a cloud's edge is dominated by the pixel blur
_MIN_CLEAR_SHARE = 0.1
# half width of each year's expected R-squared band around the planted OLS R-squared (measured
# end to end, docs/demo.md)
R2_BAND_HALF_WIDTH = 0.05
# suhi.urban_site_coverage written into the demo's config (uhi's default): urban cells
URBAN_SITE_COVERAGE = 0.05
# what real studies at 30-100 m report for an OLS of LST on NDVI/NDBI-type covariates, roughly
# (issue 12; e.g. Chen et al. 2006, Remote Sens. Environ. 104, 133-146): the demo's lies here
REALISTIC_R2 = (0.4, 0.8)


@dataclass(frozen=True)
class DemoResult:
    """Where the demo was written and what it holds."""

    root: Path
    config: Path
    catalog: Path
    truth: Path
    scenes: int
    cells: int
    aoi_cells: int


@dataclass(frozen=True)
class _SceneJob:
    plan: ScenePlan
    grid: PixelGrid
    land: Landscape
    lst_c: np.ndarray
    scenes_dir: Path
    seed: int
    pixel_noise_sd_c: float
    suhi_classes: tuple[np.ndarray, np.ndarray]
    fields: dict[str, np.ndarray]


def _write_scene_job(job: _SceneJob) -> SceneRecord:
    return write_scene(
        job.plan,
        job.grid,
        job.land,
        job.lst_c,
        job.scenes_dir,
        job.seed,
        job.pixel_noise_sd_c,
        job.suhi_classes,
        job.fields,
    )


@contextlib.contextmanager
def _fixed_gpkg_date() -> Iterator[None]:
    import pyogrio

    old = pyogrio.get_gdal_config_option("OGR_CURRENT_DATE")
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": _FIXED_DATE})
    try:
        yield
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": old})


def _write_gpkg(gdf: Any, path: Path, layer: str) -> None:
    from uhi.workspace import Workspace

    with _fixed_gpkg_date(), Workspace(path.parent).atomic_path(path) as tmp:
        tmp.unlink()  # GDAL refuses to create a GeoPackage over an existing (empty) file
        gdf.to_file(tmp, driver="GPKG", layer=layer, engine="pyogrio")


def _write_layers(root: Path, spec: DemoSpec, land: Landscape, bld: Buildings) -> None:
    import geopandas as gpd
    import shapely

    from uhi.workspace import Workspace

    crs = f"EPSG:{UTM_EPSG}"
    buildings = gpd.GeoDataFrame(
        {"height": bld.height_m, "floors": bld.floors}, geometry=bld.geometry, crs=crs
    )
    _write_gpkg(buildings, root / "data" / "buildings.gpkg", "buildings")

    g = land.grid
    extent = shapely.box(g.x_m.min() - 50, g.y_m.min() - 50, g.x_m.max() + 50, g.y_m.max() + 50)
    polys = zone_polygons(*_centre_utm(), spec.half_size_m)
    zones = gpd.GeoDataFrame(
        {"zone": list(ZONES)}, geometry=[polys[z].intersection(extent) for z in ZONES], crs=crs
    )
    _write_gpkg(zones, root / "data" / "zones.gpkg", "zones")

    w, s, e, n = land.aoi_lonlat
    aoi = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": "uhi demo city (synthetic, Calgary-like)", "synthetic": True},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]],
                },
            }
        ],
    }
    Workspace(root).write_json(root / "data" / "aoi.geojson", aoi)


def _centre_utm() -> tuple[float, float]:
    from pyproj import Transformer

    x, y = Transformer.from_crs(4326, UTM_EPSG, always_xy=True).transform(CENTRE_LON, CENTRE_LAT)
    return float(x), float(y)


def _write_truth_cells(root: Path, spec: DemoSpec, land: Landscape, planted: PlantedLst) -> Path:
    import pandas as pd

    from uhi.workspace import Workspace

    g = land.grid
    keys = np.asarray(g.quadkeys(), dtype=object)
    frames = []
    for i, year in enumerate(spec.years):
        frames.append(
            pd.DataFrame(
                {
                    "cell": keys,
                    "year": np.full(g.n, year, dtype=np.int64),
                    "tile_x": g.tile_x,
                    "tile_y": g.tile_y,
                    "zoom": np.full(g.n, ZOOM, dtype=np.int64),
                    "x_m": g.x_m,
                    "y_m": g.y_m,
                    "in_aoi": g.in_aoi,
                    "zone": land.zone.astype(str),
                    "water": land.water,
                    "land_class": land.land_class.astype(str),
                    "ndvi": land.ndvi[i],
                    "ndbi": land.ndbi[i],
                    "mndwi": land.mndwi[i],
                    "site_coverage": planted.site_coverage,
                    "xb_c": planted.xb_c[i],
                    "u_c": planted.u_c,
                    "e_c": planted.e_c[i],
                    "lst_c": planted.lst_c[i],
                }
            )
        )
    df = pd.concat(frames, ignore_index=True)
    path = root / "truth_cells.parquet"
    with Workspace(root).atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)
    return path


def _slope(x: list[int], y: list[float]) -> float:
    return (
        float(np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)[0]) if len(x) > 1 else 0.0
    )


_FIELDS = ("ndvi", "ndbi", "mndwi", "lst_c")


def _pixel_fields(
    land: Landscape, planted: PlantedLst, grid: PixelGrid
) -> list[dict[str, np.ndarray]]:
    """Per year, the unmixed pixel values of one raster grid (``uhi.demo.unmix``)."""
    from uhi.demo.unmix import build_unmixer

    unmixer = build_unmixer(land, grid.transform, grid.width, grid.height, ~grid.fill, grid.cell)
    n_years = planted.lst_c.shape[0]
    cells = np.concatenate(
        [land.ndvi, land.ndbi, land.mndwi, planted.lst_c]
    )  # (4 * years, cells), variable-major
    cells = np.nan_to_num(cells)  # water cells (NaN indices possible) are not constrained
    start = cells[:, grid.cell.ravel()]
    # bounds keep every land pixel's reflectance inside [0, 1] (uhi masks values outside it):
    # NIR = red (1 + ndvi) / (1 - ndvi) <= 0.8 and SWIR1 = NIR (1 + ndbi) / (1 - ndbi) <= 0.9
    red = land.red[:, grid.cell.ravel()]
    ndvi_hi = (0.8 - red) / (0.8 + red)
    def const(v: float) -> np.ndarray:
        return np.full((n_years, start.shape[1]), v)

    lower = np.concatenate([const(0.0), const(-0.7), const(-0.8), const(-np.inf)])
    upper = np.concatenate([ndvi_hi, const(0.7), const(-0.05), const(np.inf)])
    pixels = unmixer.unmix(cells, start, lower, upper)
    pixels = pixels.reshape(len(_FIELDS), n_years, grid.height, grid.width)
    return [{name: pixels[k, i] for k, name in enumerate(_FIELDS)} for i in range(n_years)]


def _oracle_se(
    spec: DemoSpec, land: Landscape, planted: PlantedLst, *, aoi_only: bool = False
) -> dict[str, float]:
    """Standard errors of b when rho is known: OLS of (I - rho W)(y - c_t) on X (first year,
    land cells; with ``aoi_only`` the AOI land cells, a sample as large as uhi's)."""
    w = planted.weights
    on = planted.land
    z = planted.lst_c[0, on] - spec.base_c
    lhs = z - spec.rho * (w @ z)
    if aoi_only:
        keep = land.grid.in_aoi[on]
        on = on & land.grid.in_aoi
        lhs = lhs[keep]
    x = np.column_stack(
        [np.ones(int(on.sum())), land.ndvi[0, on], land.ndbi[0, on], planted.site_coverage[on]]
    )
    beta, *_ = np.linalg.lstsq(x, lhs, rcond=None)
    resid = lhs - x @ beta
    sigma2 = resid @ resid / (len(lhs) - x.shape[1])
    se = np.sqrt(np.diag(sigma2 * np.linalg.inv(x.T @ x)))
    return {"ndvi": float(se[1]), "ndbi": float(se[2]), "site_coverage": float(se[3])}


def _park_cell(land: Landscape, ref: SuhiReference) -> str | None:
    """The AOI park cell farthest from any non-park cell: a park cell inside the city that a
    rural reference must never contain."""
    from scipy.spatial import cKDTree

    g = land.grid
    park = g.in_aoi & land.park
    if not park.any():
        return None
    other = ~land.park
    dist, _ = cKDTree(np.column_stack([g.x_m[other], g.y_m[other]])).query(
        np.column_stack([g.x_m[park], g.y_m[park]])
    )
    return str(np.asarray(g.quadkeys(), dtype=object)[park][int(np.argmax(dist))])


def _r_squared(
    spec: DemoSpec, land: Landscape, planted: PlantedLst, width: float
) -> dict[str, Any]:
    """OLS R-squared of planted LST on the planted covariates per year (AOI land cells)."""
    m = land.grid.in_aoi & ~land.water
    planted_r2 = {}
    for i, y in enumerate(spec.years):
        x = np.column_stack([land.ndvi[i, m], land.ndbi[i, m], planted.site_coverage[m]])
        planted_r2[str(y)] = round(ols_r_squared(planted.lst_c[i, m], x), 4)
    return {
        "realistic_range": list(REALISTIC_R2),
        "planted_ols": planted_r2,
        "band_half_width": width,
        "expected_band": {
            y: [round(max(0.0, v - width), 4), round(min(1.0, v + width), 4)]
            for y, v in planted_r2.items()
        },
        "note": "OLS of LST on ndvi, ndbi, site_coverage with an intercept over the AOI land "
        "cells of truth_cells.parquet; the model stage's per-year OLS r2 on the panel's summer "
        "means should fall in expected_band (docs/demo.md)",
    }


def _truth(
    spec: DemoSpec,
    land: Landscape,
    bld: Buildings,
    planted: PlantedLst,
    records: list[SceneRecord],
    grids: dict[int, PixelGrid],
    ref: SuhiReference,
    fields: dict[int, list[dict[str, np.ndarray]]],
) -> dict[str, Any]:
    g = land.grid
    aoi = g.in_aoi
    aoi_land = aoi & ~land.water
    years = spec.years
    usable = [r for r in records if r.plan.kind in ("clear", "regional_cloud")]
    city_mean = {
        str(y): round(float(planted.lst_c[i, aoi_land].mean()), 4) for i, y in enumerate(years)
    }
    offsets = {
        str(y): round(
            float(np.mean([r.plan.offset_c for r in usable if r.plan.year_index == i] or [0.0])), 4
        )
        for i, y in enumerate(years)
    }
    enough = [
        r
        for r in usable
        if r.expected_aoi_mean_lst_c is not None and r.clear_aoi_cells >= _MIN_CLEAR_SHARE * aoi.sum()
    ]
    expected = {}
    for i, y in enumerate(years):
        means = [r.expected_aoi_mean_lst_c for r in enough if r.plan.year_index == i]
        expected[str(y)] = round(float(np.mean(means)), 4) if means else None  # type: ignore[arg-type]
    east = aoi & (land.developing > 0.5)
    cov_trend = (
        {
            var: round(
                _slope(
                    years, [float(getattr(land, var)[i, east].mean()) for i in range(len(years))]
                ),
                5,
            )
            for var in ("ndvi", "ndbi")
        }
        if east.any()
        else {}
    )
    g42 = grids[42]
    mid = len(years) // 2
    f42 = fields[42][mid]
    blur_lst = measure_blur(
        land, g42.transform, g42.width, g42.height, planted.lst_c[mid], f42["lst_c"]
    )
    blur_ndvi = measure_blur(land, g42.transform, g42.width, g42.height, land.ndvi[mid], f42["ndvi"])
    nearest_lst = measure_blur(land, g42.transform, g42.width, g42.height, planted.lst_c[mid])
    se = _oracle_se(spec, land, planted)
    classes: dict[str, dict[str, float | None]] = {}
    for cls in (*LAND_CLASSES, *WATER_CLASSES):
        mask = aoi & (land.land_class == cls)
        classes[cls] = {
            str(y): round(float(planted.lst_c[i, mask].mean()), 4) if mask.any() else None
            for i, y in enumerate(years)
        }
    suhi_planted = {
        str(y): round(
            float(planted.lst_c[i, ref.urban].mean() - planted.lst_c[i, ref.rural].mean()), 4
        )
        if ref.urban.any() and ref.rural.any()
        else None
        for i, y in enumerate(years)
    }
    n_urban, n_rural = int(ref.urban.sum()), int(ref.rural.sum())
    return {
        "name": "uhi demo city (synthetic, Calgary-like)",
        "synthetic": True,
        "seed": spec.seed,
        "size_km": spec.size_km,
        "centre_lonlat": [CENTRE_LON, CENTRE_LAT],
        "aoi_bbox_lonlat": list(land.aoi_lonlat),
        "crs": f"EPSG:{UTM_EPSG}",
        "zoom": ZOOM,
        "years": years,
        "cells": {
            "planted": int(g.n),
            "aoi": int(aoi.sum()),
            "water_aoi": int((land.water & aoi).sum()),
            "by_class_aoi": {
                cls: int((aoi & (land.land_class == cls)).sum())
                for cls in (*LAND_CLASSES, *WATER_CLASSES)
            },
        },
        "scenes": [
            {
                "id": r.plan.item_id,
                "product_id": r.plan.product_id,
                "date": r.plan.date.isoformat(),
                "year": r.plan.date.year,
                "wrs_path": r.plan.path,
                "level": r.plan.level,
                "kind": r.plan.kind,
                "cloudy": r.plan.kind in ("full_cloud", "regional_cloud"),
                "eo_cloud_cover": r.cloud_cover,
                "aoi_cloud_share": r.aoi_cloud_share,
                "offset_c": r.plan.offset_c,
                "clear_aoi_cells": r.clear_aoi_cells,
                "expected_aoi_mean_lst_c": r.expected_aoi_mean_lst_c,
                "expected_suhi_c": r.expected_suhi_c,
                "expected_water_lst_c": r.expected_water_lst_c,
            }
            for r in sorted(records, key=lambda r: r.plan.date)
        ],
        "lst_model": {
            "form": "land: y_t = (I - rho W)^-1 (X_t b + u + e_t) + base_c + warming_c_per_year * "
            "(year - first_year); water: river_lst_c or lake_lst_c + warming + noise",
            "base_c": spec.base_c,
            "intercept_sar_c": round((1 - spec.rho) * spec.base_c, 6),
            "coefficients": dict(spec.coefficients),
            "rho": spec.rho,
            "weights": f"knn:{WEIGHTS_K}",
            "weights_detail": "libpysal KNN on UTM cell centres (EPSG:32612), row-standardised, over "
            "all planted LAND cells (in_aoi or not, water = False) of truth_cells.parquet",
            "noise_sd_c": spec.noise_sd_c,
            "cell_noise_sd_c": spec.cell_noise_sd_c,
            "pixel_noise_sd_c": spec.pixel_noise_sd_c,
            "scene_offset_sd_c": spec.scene_offset_sd_c,
            "zone_effects_c": {z: 0.0 for z in ZONES},
        },
        "water": {
            "river_lst_c": spec.river_lst_c,
            "lake_lst_c": spec.lake_lst_c,
            "noise_sd_c": spec.water_noise_sd_c,
            "qa_pixel": "bit 7 (water) with bit 6 (clear): 21952; under a shadow 24016",
            "spectra": "per-cell surface reflectance around blue 0.055, green 0.062 (lake "
            "0.072), red 0.035, nir08 0.007 (lake 0.011), swir16 0.003, swir22 0.002; NIR and "
            "SWIR slightly negative on some cells, MNDWI > 0 everywhere",
        },
        "class_mean_lst_c": classes,
        "suhi": {
            "urban": f"AOI land cells with planted site coverage >= {ref.urban_site_coverage:g}",
            "extent": "urban cells, 3 x 3 closing on the tile grid, enclosed holes filled",
            "rural": "AOI land cells, not urban, outside the extent, centre within "
            f"{ref.buffer_m:g} m of an extent cell centre",
            "extent_cells": int(ref.extent.sum()),
            "buffer_m": ref.buffer_m,
            "urban_site_coverage": ref.urban_site_coverage,
            "urban_cells": n_urban,
            "rural_cells": n_rural,
            "rural_share_of_urban": round(n_rural / max(1, n_urban), 4),
            "park_cells_aoi": int((aoi & land.park).sum()),
            "park_cells_rural": int((ref.rural & land.park).sum()),
            "park_cell": _park_cell(land, ref),
            "planted_c": suhi_planted,
            "note": "planted SUHI = mean planted land LST of urban minus rural cells per year; "
            "per scene, scenes[].expected_suhi_c over the cells at least half clear",
        },
        "r_squared": _r_squared(spec, land, planted, R2_BAND_HALF_WIDTH),
        "warming_c_per_year": spec.warming_c_per_year,
        "city_mean_lst_c": city_mean,
        "scene_offset_mean_c": offsets,
        "expected_summer_mean_lst_c": expected,
        "planted_trend_c_per_year": round(_slope(years, list(city_mean.values())), 5),
        "expected_trend_c_per_year": round(
            _slope(
                [y for y in years if expected[str(y)] is not None],
                [v for v in expected.values() if v is not None],
            ),
            5,
        ),
        "covariate_trend_per_year_developing_district": cov_trend,
        "blur": {
            "method": "coverage-weighted mean of the written 30 m land pixels before noise (6x6 "
            "sub-pixel coverage) vs planted land cell value; nearest_cell_lst_c: the same for "
            "pixels painted with the value of the cell under their centre (no unmixing)",
            "year": years[mid],
            "nearest_cell_lst_c": {
                k: round(v, 4) if isinstance(v, float) else v for k, v in nearest_lst.items()
            },
            "lst_c": {k: round(v, 4) if isinstance(v, float) else v for k, v in blur_lst.items()},
            "ndvi": {k: round(v, 5) if isinstance(v, float) else v for k, v in blur_ndvi.items()},
        },
        "buildings": {
            "count": int(len(bld.geometry)),
            "invalid": int(len(bld.invalid)),
            "repair": "shapely.make_valid (a bow-tie keeps half its rectangle's area)",
            "site_coverage": "area of repaired footprints / cell area, both in EPSG:32612; "
            "footprints never cross a cell edge",
        },
        "zones": list(ZONES),
        "tolerances": _tolerances(spec, se, _oracle_se(spec, land, planted, aoi_only=True)),
        "files": {
            "config": "config.yaml",
            "catalog": "data/catalog/catalog.json",
            "buildings": "data/buildings.gpkg",
            "zones": "data/zones.gpkg",
            "aoi": "data/aoi.geojson",
            "truth_cells": "truth_cells.parquet",
        },
    }


def _tolerances(
    spec: DemoSpec, se: dict[str, float], se_aoi: dict[str, float]
) -> dict[str, Any]:
    """Recovery tolerances; the end-to-end ones measured over seeds 3, 7, 11 and 42 on the
    2 km city (docs/demo.md, "Recovery tolerances")."""
    return {
        "estimator": {
            "note": "fitting the true model on truth_cells.parquet (exact planted X and y, all "
            "planted land cells), one year: 4 oracle standard errors (rho known), at least 2 %",
            "coefficient_abs": {
                k: round(max(4 * v, 0.02 * abs(spec.coefficients[k])), 4) for k, v in se.items()
            },
            "rho_abs": 0.05,
            "oracle_se_one_year": {k: round(v, 5) for k, v in se.items()},
            "oracle_se_aoi_one_year": {k: round(v, 5) for k, v in se_aoi.items()},
        },
        "end_to_end": {
            "note": "through fetch/compute/model; the pixels are unmixed, so what is left is "
            "pixel noise, clouds and scene offsets (a cell seen on one date of two carries that "
            "date's offset) on top of the estimator's sampling error. 'oracle' = the same lag "
            "model fitted (spreg ML_Lag) on the planted AOI land cells of the same years: the "
            "pipeline must reproduce it closely; the planted values are recovered within the "
            "sampling error of ~1,700 cells with R-squared ~0.65 (3 x oracle_se_aoi_one_year). "
            "Measured maxima and margins in docs/demo.md",
            "scene_mean_lst_c_abs": 0.15,
            "summer_mean_lst_c_abs": 0.1,
            "trend_c_per_year_abs": 0.02,
            "site_coverage_abs": 0.001,
            "suhi_c_abs": 0.15,
            "lst_ndvi_slope_rel": 0.04,
            "r2_band_half_width": R2_BAND_HALF_WIDTH,
            "lag_rho_abs": 0.08,
            "lag_coefficient_abs": {k: round(3 * v, 3) for k, v in se_aoi.items()},
            "oracle_rho_abs": 0.07,
            "oracle_coefficient_abs": {"ndvi": 0.5, "ndbi": 1.0, "site_coverage": 1.2},
            "total_impact": {
                k: round(v / (1 - spec.rho), 4) for k, v in spec.coefficients.items()
            },
        },
    }


def _platforms_text(spec: DemoSpec) -> str:
    if spec.sensors == ("landsat-8",):
        return "[landsat-8]"
    # Landsat 5 (TM), 7 (ETM+) and 8: the documented one-line switch to every platform
    return "all"


def _sensor_truth(
    spec: DemoSpec, records: list[SceneRecord], suhi_planted: dict[str, Any]
) -> dict[str, Any]:
    """truth.json's account of a multi-sensor demo: which summers and scenes each sensor
    covers, the SLC-off scenes, and the SUHI and LST trends per decade to recover."""
    from uhi.demo.sensors import DEMO_SENSORS, SLC_FAILURE

    usable = [r for r in records if r.plan.kind in ("clear", "regional_cloud")]
    per: dict[str, Any] = {}
    for platform in spec.sensors:
        mine = [r for r in records if r.plan.platform == platform]
        sensor = DEMO_SENSORS[platform]
        per[platform] = {
            "sensor": sensor.sensor_id,
            "band_files": dict(sensor.band_files),
            "stac_thermal_asset": sensor.thermal_asset,
            "years": sorted({r.plan.date.year for r in mine}),
            "usable_years": sorted({r.plan.date.year for r in usable if r.plan.platform == platform}),
            "scenes": [r.plan.item_id for r in sorted(mine, key=lambda r: r.plan.date)],
            "planted_offset_c": 0.0,
        }
    slc = [r for r in sorted(records, key=lambda r: r.plan.date) if r.plan.slc_off]
    years = [y for y, v in suhi_planted.items() if v is not None]
    expected: dict[str, float] = {}
    for y in spec.years:
        vals = [
            r.expected_suhi_c
            for r in usable
            if r.plan.date.year == y and r.expected_suhi_c is not None
        ]
        if vals:
            expected[str(y)] = round(float(np.mean(vals)), 4)  # type: ignore[arg-type]
    return {
        "platforms": per,
        "slc_off": {
            "after": SLC_FAILURE.isoformat(),
            "scenes": [r.plan.item_id for r in slc],
            "gap_share_aoi": {r.plan.item_id: r.slc_gap_share for r in slc},
            "approximation": "parallel stripes of constant width (4 px every 16 rows, tilted "
            "12 deg like the scene edges) for the real wedge-shaped gaps, whose width changes "
            "by under a pixel across a few-km city (uhi.demo.scenes.slc_off_gaps)",
        },
        "suhi_trend": {
            "planted_c_per_decade": round(
                10 * _slope([int(y) for y in years], [suhi_planted[y] for y in years]), 4
            ),
            "expected_yearly_c": expected,
            "expected_c_per_decade": round(
                10 * _slope([int(y) for y in expected], list(expected.values())), 4
            ),
            "note": "planted: OLS slope of suhi.planted_c (all urban and rural cells); "
            "expected: OLS slope of the yearly mean of scenes[].expected_suhi_c (the cells "
            "each usable scene sees at least half clear)",
        },
        "note": "no sensor offset is planted: every sensor sees the same surface; the demo "
        "writes each sensor's own band numbering, STAC asset keys and QA values. Thermal is "
        "written at 30 m for every sensor (the L2 product's grid); the coarser native thermal "
        "resolution (TM 120 m, ETM+ 60 m) is not simulated",
    }


def _config_text(spec: DemoSpec) -> str:
    return f"""# uhi config of the SYNTHETIC demo city written by `uhi demo` (seed {spec.seed}).
# Relative paths resolve against this file's folder. Run: uhi run config.yaml
city:
  name: demo
  aoi: data/aoi.geojson
  # the scenes' UTM zone; a demo wider than ~8 km straddles zones 11 and 12 at 114 W
  crs: EPSG:{UTM_EPSG}
time:
  start: {spec.first_year}-06-01
  end: {spec.last_year}-08-31
  months: [6, 7, 8]
search:
  backend: local
  path: data/catalog/catalog.json
  # the fully cloudy scenes (eo:cloud_cover 100) are dropped here; one scene with 18 % scene
  # cloud but ~90 % over the city passes and is masked pixel by pixel in compute
  max_cloud: 60
  platforms: {_platforms_text(spec)}
grid:
  zoom: {ZOOM}
suhi:
  # urban = site coverage >= this; rural = non-urban land cells outside the urban extent
  # (urban cells, gaps closed, parks filled) within buffer_m of it: here every field in the AOI
  rural: buffer
  urban_site_coverage: {URBAN_SITE_COVERAGE}
  buffer_m: {spec.rural_buffer_m:g}
model:
  weights: knn:{WEIGHTS_K}
  zone_col: zone
  # cells more than half water (the river, the lake) are left out of the models
  max_water_share: 0.5
buildings:
  path: data/buildings.gpkg
  height_col: height
  floors_col: floors
  zones_path: data/zones.gpkg
  zone_col: zone
forecast:
  horizon: 3
  holdout: 2
workdir: workspace
"""


def write_demo(root: Path, spec: DemoSpec, *, threads: int = 2) -> DemoResult:
    """Write the demo city into ``root`` (created if needed); deterministic for a given spec.

    Parameters
    ----------
    root
        Output folder: ``data/`` (scenes, catalog, layers), ``config.yaml``, ``truth.json``
        and ``truth_cells.parquet`` go there. The ``workspace/`` of a later run is left alone.
    spec
        Seed, size, years and the planted parameters.
    threads
        Scenes painted and written concurrently (each holds one raster's arrays).
    """
    from uhi.parallel import map_tasks
    from uhi.workspace import Workspace

    root = Path(root).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    log.info("demo: planting %.1f km city (seed %d)", spec.size_km, spec.seed)
    land = build_landscape(spec)
    bld = build_buildings(spec, land)
    log.info(
        "demo: %d cells planted (%d in the AOI), %d footprints",
        land.grid.n,
        int(land.grid.in_aoi.sum()),
        len(bld.geometry),
    )
    planted = plant_lst(spec, land, bld.site_coverage)
    ref = suhi_reference(
        land, bld.site_coverage, buffer_m=spec.rural_buffer_m, urban_site_coverage=URBAN_SITE_COVERAGE
    )
    plans = plan_scenes(spec)
    log.info("demo: SAR temperature solved; writing %d scenes", len(plans))
    grids = {path: pixel_grid(land, path) for path in sorted({p.path for p in plans} | {42})}
    fields = {path: _pixel_fields(land, planted, grid) for path, grid in grids.items()}
    scenes_dir = root / "data" / "scenes"
    jobs = [
        _SceneJob(
            p,
            grids[p.path],
            land,
            planted.lst_c[p.year_index],
            scenes_dir,
            spec.seed,
            spec.pixel_noise_sd_c,
            (ref.urban, ref.rural),
            fields[p.path][p.year_index],
        )
        for p in plans
    ]
    records = map_tasks(_write_scene_job, jobs, threads=threads, desc="demo scenes")
    catalog = write_catalog(records, root / "data" / "catalog")
    log.info("demo: scenes and catalog written; writing layers and truth")
    _write_layers(root, spec, land, bld)
    _write_truth_cells(root, spec, land, planted)
    from uhi.demo.population import exposure_config_text, write_population

    people = write_population(root, spec, land, planted.lst_c, planted.site_coverage)
    ws = Workspace(root)
    truth = root / "truth.json"
    body = _truth(spec, land, bld, planted, records, grids, ref, fields)
    if spec.sensors != ("landsat-8",):
        # the default (Landsat 8) demo's truth.json stays byte for byte what it was
        by_id = {r.plan.item_id: r for r in records}
        for scene in body["scenes"]:
            rec = by_id[scene["id"]]
            scene["platform"] = rec.plan.platform
            scene["slc_off"] = rec.plan.slc_off
        body["sensors"] = _sensor_truth(spec, records, body["suhi"]["planted_c"])
    ws.write_json(truth, {**body, "exposure": people.as_dict()})
    config = root / "config.yaml"
    ws.write_text(config, _config_text(spec) + exposure_config_text())
    return DemoResult(
        root, config, catalog, truth, len(records), land.grid.n, int(land.grid.in_aoi.sum())
    )

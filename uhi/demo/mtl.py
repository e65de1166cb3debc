"""A minimal but real-format Collection 2 Level-2 MTL.txt (ODL groups as USGS writes them)."""

from __future__ import annotations

from uhi.demo.encoding import SR_ADD, SR_MULT, ST_ADD_K, ST_MULT
from uhi.demo.plan import ScenePlan
from uhi.demo.sensors import DEMO_SENSORS

__all__ = ["mtl_text", "BAND_FILES"]

# file suffix per canonical asset key of Landsat 8 (LSDS-1619 file naming); every sensor's in
# uhi.demo.sensors
BAND_FILES: dict[str, str] = DEMO_SENSORS["landsat-8"].band_files
_SR_KEYS = ("blue", "green", "red", "nir08", "swir16", "swir22")


def _group(name: str, rows: list[tuple[str, str]], indent: int = 1) -> list[str]:
    pad = "  " * indent
    return [
        f"{pad}GROUP = {name}",
        *(f"{pad}  {k} = {v}" for k, v in rows),
        f"{pad}END_GROUP = {name}",
    ]


def mtl_text(
    plan: ScenePlan,
    *,
    utm_zone: int,
    ul_centre: tuple[float, float],
    lr_centre: tuple[float, float],
    lines: int,
    samples: int,
    corners_lonlat: dict[str, tuple[float, float]],
    cloud_cover: float,
    cloud_cover_land: float,
) -> str:
    """The MTL.txt of one scene: PRODUCT_CONTENTS, IMAGE_ATTRIBUTES, PROJECTION_ATTRIBUTES and
    the LEVEL2_SURFACE_* parameter groups that ``uhi.landsat.scales_from_mtl`` reads.

    Corner projection coordinates are pixel centres, as in real products (the raster origin is
    the UL centre minus half a pixel).
    """
    pid = plan.product_id
    sensor = plan.sensor
    sr_bands = [sensor.band_files[k] for k in _SR_KEYS]
    thermal = sensor.band_files["lwir11"]
    files = [(f"FILE_NAME_BAND_{b[-1]}", f'"{pid}_{b}.TIF"') for b in sr_bands]
    if plan.has_thermal:
        files += [
            (f"FILE_NAME_BAND_{thermal}", f'"{pid}_{thermal}.TIF"'),
            ("FILE_NAME_QUALITY_L2_SURFACE_TEMPERATURE", f'"{pid}_ST_QA.TIF"'),
        ]
    files += [
        ("FILE_NAME_QUALITY_L1_PIXEL", f'"{pid}_QA_PIXEL.TIF"'),
        ("FILE_NAME_METADATA_ODL", f'"{pid}_MTL.txt"'),
    ]
    product = [
        ("ORIGIN", '"SYNTHETIC uhi demo city (not USGS data)"'),
        ("LANDSAT_PRODUCT_ID", f'"{pid}"'),
        ("PROCESSING_LEVEL", f'"{plan.level}"'),
        ("COLLECTION_NUMBER", "02"),
        ("COLLECTION_CATEGORY", '"T1"'),
        ("OUTPUT_FORMAT", '"GEOTIFF"'),
        *files,
    ]
    image = [
        ("SPACECRAFT_ID", f'"{sensor.spacecraft}"'),
        ("SENSOR_ID", f'"{sensor.sensor_id}"'),
        ("WRS_TYPE", "2"),
        ("WRS_PATH", str(plan.path)),
        ("WRS_ROW", "25"),
        ("DATE_ACQUIRED", plan.date.isoformat()),
        ("SCENE_CENTER_TIME", f'"{plan.center_time}"'),
        ("CLOUD_COVER", f"{cloud_cover:.2f}"),
        ("CLOUD_COVER_LAND", f"{cloud_cover_land:.2f}"),
    ]
    proj = [
        ("MAP_PROJECTION", '"UTM"'),
        ("DATUM", '"WGS84"'),
        ("ELLIPSOID", '"WGS84"'),
        ("UTM_ZONE", str(utm_zone)),
        ("GRID_CELL_SIZE_REFLECTIVE", "30.00"),
        ("GRID_CELL_SIZE_THERMAL", "30.00"),
        ("REFLECTIVE_LINES", str(lines)),
        ("REFLECTIVE_SAMPLES", str(samples)),
        ("THERMAL_LINES", str(lines)),
        ("THERMAL_SAMPLES", str(samples)),
        ("ORIENTATION", '"NORTH_UP"'),
    ]
    for corner in ("UL", "UR", "LL", "LR"):
        lon, lat = corners_lonlat[corner]
        proj += [
            (f"CORNER_{corner}_LAT_PRODUCT", f"{lat:.5f}"),
            (f"CORNER_{corner}_LON_PRODUCT", f"{lon:.5f}"),
        ]
    xs = {"UL": ul_centre[0], "UR": lr_centre[0], "LL": ul_centre[0], "LR": lr_centre[0]}
    ys = {"UL": ul_centre[1], "UR": ul_centre[1], "LL": lr_centre[1], "LR": lr_centre[1]}
    for corner in ("UL", "UR", "LL", "LR"):
        proj += [
            (f"CORNER_{corner}_PROJECTION_X_PRODUCT", f"{xs[corner]:.3f}"),
            (f"CORNER_{corner}_PROJECTION_Y_PRODUCT", f"{ys[corner]:.3f}"),
        ]
    refl: list[tuple[str, str]] = []
    # OLI: bands 1-7 (coastal included); TM/ETM+: 1-5 and 7 (band 6 is the thermal one)
    numbers = range(1, 8) if sensor.platform == "landsat-8" else [int(b[-1]) for b in sr_bands]
    for band in numbers:
        refl += [
            (f"REFLECTANCE_MULT_BAND_{band}", f"{SR_MULT:.2e}"),
            (f"REFLECTANCE_ADD_BAND_{band}", f"{SR_ADD}"),
        ]
    lines_out = ["GROUP = LANDSAT_METADATA_FILE"]
    lines_out += _group("PRODUCT_CONTENTS", product)
    lines_out += _group("IMAGE_ATTRIBUTES", image)
    lines_out += _group("PROJECTION_ATTRIBUTES", proj)
    lines_out += _group("LEVEL2_SURFACE_REFLECTANCE_PARAMETERS", refl)
    if plan.has_thermal:
        lines_out += _group(
            "LEVEL2_SURFACE_TEMPERATURE_PARAMETERS",
            [
                (f"TEMPERATURE_MULT_BAND_{thermal}", f"{ST_MULT}"),
                (f"TEMPERATURE_ADD_BAND_{thermal}", f"{ST_ADD_K}"),
            ],
        )
    lines_out += ["END_GROUP = LANDSAT_METADATA_FILE", "END"]
    return "\n".join(lines_out) + "\n"

"""The demo's own table of the Landsat sensors it can write (deliberately not uhi.landsat's).

The demo writes each sensor's files with the band numbering below and uhi reads them through
``uhi.landsat.SENSORS``: a wrong number on either side shows up in the end-to-end tests as a
wrong index or temperature instead of cancelling out.

Sources: USGS LSDS-1618 (Landsat 4-7 Collection 2 Level-2 Science Product Guide): TM/ETM+
SR_B1 blue, SR_B2 green, SR_B3 red, SR_B4 NIR, SR_B5 SWIR1, SR_B7 SWIR2, ST_B6 thermal, the
same scale factors as Landsat 8-9 (LSDS-1619), QA_PIXEL bits 0-7 as on Landsat 8-9 with bit 2
(cirrus) and the cirrus confidence (bits 14-15) unused. STAC shapes (asset key ``lwir``,
``eo:bands`` names TM_B1 / ETM_B1, wavelengths, instruments ``tm`` / ``etm+``) follow the
stactools-packages/landsat example items in tests/data/stac/stactools-examples.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

__all__ = ["DemoSensor", "DEMO_SENSORS", "SENSOR_CHOICES", "SLC_FAILURE", "sensors_in_year"]

# Landsat 7's Scan Line Corrector failed on 2003-05-31; every ETM+ scene after it has the
# wedge-shaped gaps (USGS, "Landsat 7 ETM+ SLC-off products").
SLC_FAILURE = dt.date(2003, 5, 31)


@dataclass(frozen=True)
class DemoSensor:
    """One Landsat platform as the demo writes it.

    Attributes
    ----------
    platform
        STAC ``platform`` (landsat-5).
    id_prefix
        Product id prefix (LT05), ``scene_prefix`` the old-style scene id one (LT5).
    spacecraft, sensor_id
        MTL IMAGE_ATTRIBUTES SPACECRAFT_ID and SENSOR_ID.
    instruments
        STAC ``instruments``.
    band_files
        Canonical asset key -> file suffix (SR_B1 ..., ST_B6, QA_PIXEL, ST_QA).
    thermal_asset
        STAC asset key of the surface temperature band (``lwir`` on TM/ETM+, ``lwir11`` on TIRS).
    eo_bands
        Canonical key -> (eo:bands name, centre wavelength um, FWHM um).
    thermal_gsd_m
        Native thermal resolution (the L2 product is delivered resampled to 30 m).
    first_summer, last_summer
        Summers (June-August) the demo gives this platform.
    phase_days
        Days added to the Landsat 8 acquisition dates of a path: the 16-day cycles of Landsat 5
        and 8 share a phase and Landsat 7 runs 8 days from both (Landsat 8 was placed 8 days
        from Landsat 7, as Landsat 5 had been).
    cirrus_confidence
        Whether QA_PIXEL bits 14-15 (cirrus confidence) are set: OLI has a cirrus band, TM/ETM+
        do not.
    """

    platform: str
    id_prefix: str
    scene_prefix: str
    spacecraft: str
    sensor_id: str
    instruments: tuple[str, ...]
    band_files: dict[str, str]
    thermal_asset: str
    eo_bands: dict[str, tuple[str, float, float]]
    thermal_gsd_m: int
    first_summer: int
    last_summer: int
    phase_days: int
    cirrus_confidence: bool


_TM_ETM_FILES = {
    "blue": "SR_B1",
    "green": "SR_B2",
    "red": "SR_B3",
    "nir08": "SR_B4",
    "swir16": "SR_B5",
    "swir22": "SR_B7",
    "lwir11": "ST_B6",
    "qa_pixel": "QA_PIXEL",
    "qa": "ST_QA",
}
_OLI_FILES = {
    "blue": "SR_B2",
    "green": "SR_B3",
    "red": "SR_B4",
    "nir08": "SR_B5",
    "swir16": "SR_B6",
    "swir22": "SR_B7",
    "lwir11": "ST_B10",
    "qa_pixel": "QA_PIXEL",
    "qa": "ST_QA",
}

LANDSAT_5 = DemoSensor(
    platform="landsat-5",
    id_prefix="LT05",
    scene_prefix="LT5",
    spacecraft="LANDSAT_5",
    sensor_id="TM",
    instruments=("tm",),
    band_files=_TM_ETM_FILES,
    thermal_asset="lwir",
    eo_bands={
        "blue": ("TM_B1", 0.49, 0.07),
        "green": ("TM_B2", 0.56, 0.08),
        "red": ("TM_B3", 0.66, 0.06),
        "nir08": ("TM_B4", 0.83, 0.14),
        "swir16": ("TM_B5", 1.65, 0.2),
        "swir22": ("TM_B7", 2.22, 0.27),
        "lwir11": ("TM_B6", 11.45, 2.1),
    },
    thermal_gsd_m=120,
    # TM imaged from 1984 until November 2011 (USGS Landsat 5 mission page)
    first_summer=1984,
    last_summer=2011,
    phase_days=0,
    cirrus_confidence=False,
)
LANDSAT_7 = DemoSensor(
    platform="landsat-7",
    id_prefix="LE07",
    scene_prefix="LE7",
    spacecraft="LANDSAT_7",
    sensor_id="ETM",
    instruments=("etm+",),
    band_files=_TM_ETM_FILES,
    thermal_asset="lwir",
    eo_bands={
        "blue": ("ETM_B1", 0.48, 0.07),
        "green": ("ETM_B2", 0.56, 0.08),
        "red": ("ETM_B3", 0.66, 0.06),
        "nir08": ("ETM_B4", 0.84, 0.13),
        "swir16": ("ETM_B5", 1.65, 0.2),
        "swir22": ("ETM_B7", 2.2, 0.28),
        "lwir11": ("ETM_B6", 11.34, 2.05),
    },
    thermal_gsd_m=60,
    # launched April 1999; its orbit drifted to an earlier crossing time from 2017 and it left
    # the WRS-2 path in 2022: the demo gives it the summers 1999-2021
    first_summer=1999,
    last_summer=2021,
    phase_days=8,
    cirrus_confidence=False,
)
LANDSAT_8 = DemoSensor(
    platform="landsat-8",
    id_prefix="LC08",
    scene_prefix="LC8",
    spacecraft="LANDSAT_8",
    sensor_id="OLI_TIRS",
    instruments=("oli", "tirs"),
    band_files=_OLI_FILES,
    thermal_asset="lwir11",
    eo_bands={
        "blue": ("OLI_B2", 0.48, 0.06),
        "green": ("OLI_B3", 0.56, 0.06),
        "red": ("OLI_B4", 0.65, 0.04),
        "nir08": ("OLI_B5", 0.87, 0.03),
        "swir16": ("OLI_B6", 1.61, 0.09),
        "swir22": ("OLI_B7", 2.2, 0.19),
        "lwir11": ("TIRS_B10", 10.9, 0.59),
    },
    thermal_gsd_m=100,
    first_summer=2013,
    last_summer=2100,
    phase_days=0,
    cirrus_confidence=True,
)
DEMO_SENSORS: dict[str, DemoSensor] = {s.platform: s for s in (LANDSAT_5, LANDSAT_7, LANDSAT_8)}
# what `uhi demo --sensors` accepts: Landsat 8 alone (the default demo) or all three
SENSOR_CHOICES: dict[str, tuple[str, ...]] = {
    "landsat-8": ("landsat-8",),
    "all": ("landsat-5", "landsat-7", "landsat-8"),
}


def sensors_in_year(platforms: tuple[str, ...], year: int) -> list[DemoSensor]:
    """The demo sensors among ``platforms`` that image the summer of ``year``."""
    return [
        DEMO_SENSORS[p]
        for p in platforms
        if DEMO_SENSORS[p].first_summer <= year <= DEMO_SENSORS[p].last_summer
    ]

"""What the demo city is: its parameters, planted coefficients and fixed geographic facts."""

from __future__ import annotations

from dataclasses import dataclass, field

from uhi.demo.sensors import DEMO_SENSORS
from uhi.errors import ConfigError

__all__ = [
    "DemoSpec",
    "CENTRE_LON",
    "CENTRE_LAT",
    "UTM_EPSG",
    "ZOOM",
    "PIXEL_SIZE_M",
    "WRS_PATHS",
    "WRS_ROW",
]

# Calgary, Alberta. Real Calgary scenes (WRS-2 path 042 / 041, row 025) are delivered by USGS in
# UTM zone 12N although the city lies just west of the zone 11/12 boundary (-114 deg): the
# product's zone follows the scene centre, so the demo uses EPSG:32612 too.
CENTRE_LON = -114.07
CENTRE_LAT = 51.05
UTM_EPSG = 32612
ZOOM = 19
PIXEL_SIZE_M = 30.0
WRS_PATHS = (42, 41)  # 41 is the adjacent path east; Calgary sits in their sidelap
WRS_ROW = 25


@dataclass(frozen=True)
class DemoSpec:
    """Parameters of one synthetic city; every choice that changes the written bytes is here.

    Attributes
    ----------
    seed
        Seed of every random stream (numpy SeedSequence children, one per purpose).
    size_km
        Side of the square area of interest, kilometres.
    first_year, last_year
        Summers (June-August) covered, inclusive.
    scenes_per_year
        Usable (not fully cloudy) Landsat 8 L2SP scenes per summer.
    coefficients
        Planted regression coefficients on ndvi, ndbi and site_coverage, degC per unit.
    rho
        Planted spatial autoregressive parameter of the SAR data-generating process.
    base_c
        Planted base LST (degC) added outside the spatial filter.
    warming_c_per_year
        Planted linear warming, degC per year since the first year.
    noise_sd_c
        Standard deviation of the iid cell-year innovation e_t, degC.
    cell_noise_sd_c
        Standard deviation of the persistent cell innovation u (the same every year: materials,
        irrigation, roof colour that no covariate sees), degC. With ``noise_sd_c`` it sets how
        much of the LST the covariates explain (OLS R-squared ~0.6, as real 30-100 m studies).
    river_lst_c, lake_lst_c
        Planted surface temperature of the river and the lake in the first year (they warm by
        ``warming_c_per_year`` too), degC: cooler than every land class.
    water_noise_sd_c
        Standard deviation of the iid cell-year noise of water temperatures, degC.
    pixel_noise_sd_c
        Standard deviation of the iid per-pixel LST noise of each scene, degC.
    scene_offset_sd_c
        Standard deviation of the per-scene weather offset, degC.
    sensors
        STAC platforms written (``uhi.demo.sensors``): ``("landsat-8",)`` (the default demo)
        or Landsat 5, 7 and 8, each over the summers it imaged (TM to 2011, ETM+ 1999-2021
        with scan-line gaps after 2003-05-31, OLI/TIRS from 2013).
    """

    seed: int = 42
    size_km: float = 4.0
    first_year: int = 2014
    last_year: int = 2020
    scenes_per_year: int = 3
    coefficients: dict[str, float] = field(
        default_factory=lambda: {"ndvi": -6.0, "ndbi": 8.0, "site_coverage": 4.0}
    )
    rho: float = 0.45
    base_c: float = 42.0
    warming_c_per_year: float = 0.08
    noise_sd_c: float = 1.6
    cell_noise_sd_c: float = 2.2
    river_lst_c: float = 17.0
    lake_lst_c: float = 21.0
    water_noise_sd_c: float = 0.3
    pixel_noise_sd_c: float = 0.25
    scene_offset_sd_c: float = 1.5
    sensors: tuple[str, ...] = ("landsat-8",)

    def __post_init__(self) -> None:
        if not 0.5 <= self.size_km <= 100:
            raise ConfigError(
                f"demo size must be 0.5-100 km, got {self.size_km}; pass e.g. --size-km 4"
            )
        unknown = [p for p in self.sensors if p not in DEMO_SENSORS]
        if unknown or not self.sensors:
            raise ConfigError(
                f"demo sensors must be among {sorted(DEMO_SENSORS)}, got {list(self.sensors)}"
            )
        earliest = min(DEMO_SENSORS[p].first_summer for p in self.sensors)
        if not earliest <= self.first_year <= self.last_year <= 2100:
            hint = "" if earliest < 2013 else " (earlier summers need --sensors all)"
            raise ConfigError(
                f"demo years must be a range like 2014-2020 from {earliest} on, got "
                f"{self.first_year}-{self.last_year}{hint}"
            )
        if not 1 <= self.scenes_per_year <= 8:
            raise ConfigError(
                f"scenes per year must be 1-8, got {self.scenes_per_year}; Landsat 8 sees Calgary "
                "about 11 times per summer from two paths, a few kept for cloudy extras"
            )
        if not 0 <= self.rho < 1:
            raise ConfigError(f"rho must be in [0, 1), got {self.rho}")

    @property
    def years(self) -> list[int]:
        """The summers covered, in order."""
        return list(range(self.first_year, self.last_year + 1))

    @property
    def half_size_m(self) -> float:
        """Half the side of the area of interest, metres."""
        return self.size_km * 500.0

    @property
    def rural_buffer_m(self) -> float:
        """``suhi.buffer_m`` written into the demo's config: the half side, so every AOI cell
        outside the urban extent (the fields, r > ~0.75) is within it and rural."""
        return self.half_size_m

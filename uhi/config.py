"""Typed, validated, frozen configuration: defaults < YAML < UHI_* environment < flags."""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import os
import reprlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from uhi.errors import ConfigError

__all__ = [
    "Config",
    "CityConfig",
    "TimeConfig",
    "SearchConfig",
    "SageMakerConfig",
    "FetchConfig",
    "MaskingConfig",
    "GridConfig",
    "ComputeConfig",
    "IndicesConfig",
    "BuildingsConfig",
    "SuhiConfig",
    "ModelConfig",
    "PlanConfig",
    "ForecastConfig",
    "ExposureConfig",
    "OutputsConfig",
    "DaskConfig",
    "load_config",
    "build_config",
    "ENV_PREFIX",
]

ENV_PREFIX = "UHI_"

# A config is a few KB; these bounds make a hostile or mistaken file (a 200 MB file, /dev/zero,
# a YAML alias bomb: 1 KB expanding to ~387 M values, issue 18) an error instead of a hang.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_NODES = 100_000

# city.name becomes part of file names (uhi-<name>, <name>_summary.xlsx, scenario names)
_MAX_NAME_CHARS = 100

# values echoed in messages are shortened: a config value can be as large as the bounds above
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxtuple, _SHORT.maxdict = 2, 6, 6, 6
_SHORT.maxstring, _SHORT.maxother = 80, 80


class _Section(BaseModel):
    """Base of every section: unknown keys rejected, values frozen once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class CityConfig(_Section):
    """The city and its area of interest (AOI)."""

    name: str = Field("city", description="short name used in output file names")
    aoi: Path | None = Field(None, description="GeoJSON/GeoPackage/any OGR file with the AOI polygon(s)")
    bbox: tuple[float, float, float, float] | None = Field(
        None, description="AOI as west, south, east, north in degrees (EPSG:4326)"
    )
    crs: str | None = Field(
        None,
        description="explicit target CRS (e.g. EPSG:32612) when the AOI spans two UTM zones",
    )

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        ok = v and all(c.isalnum() or c in "-_." for c in v) and not v.startswith(".")
        if not ok:
            raise ValueError("must be letters, digits, '-', '_' or '.', e.g. 'calgary'")
        if len(v) > _MAX_NAME_CHARS:
            raise ValueError(
                f"must be at most {_MAX_NAME_CHARS} characters (it names files and the default "
                "workdir, and a file name has at most 255 bytes), e.g. 'calgary'"
            )
        return v

    @field_validator("bbox")
    @classmethod
    def _valid_bbox(cls, v: tuple[float, float, float, float] | None) -> Any:
        if v is None:
            return v
        w, s, e, n = v
        if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
            raise ValueError(
                "must be [west, south, east, north] in degrees with west < east and south < north"
            )
        return v

    @model_validator(mode="after")
    def _one_aoi(self) -> CityConfig:
        if self.aoi is not None and self.bbox is not None:
            raise ValueError("give either city.aoi (a file) or city.bbox, not both")
        return self


class TimeConfig(_Section):
    """Date range and the months kept within each year."""

    start: dt.date = Field(dt.date(2014, 1, 1), description="first acquisition date (inclusive)")
    end: dt.date = Field(dt.date(2020, 12, 31), description="last acquisition date (inclusive)")
    months: tuple[int, ...] = Field((6, 7, 8), description="months kept (1-12); summer by default")

    @field_validator("months")
    @classmethod
    def _months(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(m < 1 or m > 12 for m in v):
            raise ValueError("must be a non-empty list of month numbers 1-12")
        return tuple(sorted(set(v)))

    @model_validator(mode="after")
    def _order(self) -> TimeConfig:
        if self.end < self.start:
            raise ValueError(f"time.end ({self.end}) is before time.start ({self.start})")
        return self


class SageMakerConfig(_Section):
    """Amazon SageMaker geospatial search settings (optional backend)."""

    collection_arn: str | None = Field(
        None, description="Landsat collection ARN; looked up with ListRasterDataCollections if unset"
    )
    region: str = Field("us-west-2", description="the service runs in us-west-2 only")
    profile: str | None = Field(None, description="AWS profile name (else the standard chain)")


class SearchConfig(_Section):
    """Where scenes are found."""

    backend: Literal["stac", "sagemaker", "local"] = Field(
        "stac", description="stac (a STAC API), sagemaker (SageMaker geospatial) or local (files on disk)"
    )
    preset: Literal["earth-search", "planetary-computer", "usgs"] | None = Field(
        "planetary-computer",
        description="STAC API preset (planetary-computer needs no account; `uhi presets`); ignored when url is set",
    )
    url: str | None = Field(None, description="any STAC API root URL (overrides preset)")
    collection: str | None = Field(None, description="STAC collection id (preset default if unset)")
    path: Path | None = Field(None, description="local backend: scene folder or static STAC catalog")
    max_cloud: float = Field(20.0, ge=0, le=100, description="maximum eo:cloud_cover, percent")
    max_cloud_land: float | None = Field(
        None, ge=0, le=100, description="maximum landsat:cloud_cover_land, percent"
    )
    platforms: tuple[Literal["landsat-4", "landsat-5", "landsat-7", "landsat-8", "landsat-9"], ...] = Field(
        ("landsat-8", "landsat-9"),
        description="Landsat platforms to keep (landsat-4, -5, -7, -8, -9), or 'all' for all five",
    )
    require_thermal: bool = Field(True, description="keep only L2SP scenes (with surface temperature)")
    max_items: int = Field(2000, ge=1, description="stop searching after this many items")
    timeout_total_s: float = Field(
        600.0, gt=0, description="wall-clock bound on the whole search (every page and retry), seconds"
    )
    sagemaker: SageMakerConfig = SageMakerConfig()

    @field_validator("platforms", mode="before")
    @classmethod
    def _all_platforms(cls, value: Any) -> Any:
        # `platforms: all` (or [all]) is the documented one-line switch to Landsat 4-9
        if value == "all" or (isinstance(value, (list, tuple)) and list(value) == ["all"]):
            return ("landsat-4", "landsat-5", "landsat-7", "landsat-8", "landsat-9")
        if isinstance(value, str):
            return (value,)
        return value

    @field_validator("platforms")
    @classmethod
    def _some_platform(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("search.platforms is empty; name at least one of landsat-4/5/7/8/9 or 'all'")
        return value

    @model_validator(mode="after")
    def _backend_needs(self) -> SearchConfig:
        if self.backend == "local" and self.path is None:
            raise ValueError("search.backend 'local' needs search.path (a scene folder or catalog.json)")
        if self.backend == "stac" and self.url is None and self.preset is None:
            raise ValueError("search.backend 'stac' needs search.preset or search.url")
        return self


class FetchConfig(_Section):
    """How clipped windows are read."""

    margin_m: float = Field(300.0, ge=0, description="margin around the AOI, metres")
    workers: int = Field(4, ge=1, le=64, description="concurrent reads")
    retries: int = Field(3, ge=0, le=20, description="retries per read with exponential backoff")
    timeout_s: float = Field(60.0, gt=0, description="HTTP timeout per request, seconds")
    assets: tuple[str, ...] = Field(
        ("blue", "green", "red", "nir08", "swir16", "swir22", "lwir11", "qa_pixel", "qa"),
        description="canonical asset keys to read",
    )
    allow_local_hrefs: bool = Field(
        False, description="let a remote catalog point at local files (file://); off for safety"
    )


class MaskingConfig(_Section):
    """Per-pixel masking (QA_PIXEL bits per USGS LSDS-1619; ST_QA and ST_CDIST thresholds)."""

    reject_bits: tuple[int, ...] = Field(
        (0, 1, 2, 3, 4, 5), description="QA_PIXEL bits that reject a pixel (0 fill .. 5 snow)"
    )
    water_bit: bool = Field(True, description="treat QA_PIXEL bit 7 (water) as its own class")
    max_st_uncertainty_k: float | None = Field(
        None, gt=0, description="reject pixels whose ST_QA uncertainty exceeds this, kelvin"
    )
    min_cloud_distance_km: float | None = Field(
        None, ge=0, description="reject pixels closer to cloud than this (ST_CDIST), km"
    )
    clip_reflectance: bool = Field(
        False,
        description="clip reflectance outside the valid range [0, 1] into it (True) instead of "
        "masking it (False, default); the water test always reads unclipped values",
    )

    @field_validator("reject_bits")
    @classmethod
    def _bits(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(b < 0 or b > 15 for b in v):
            raise ValueError("must be QA_PIXEL bit numbers 0-15")
        return tuple(sorted(set(v)))


class GridConfig(_Section):
    """The web-mercator tile grid cells are aggregated onto."""

    zoom: int = Field(19, ge=10, le=22, description="tile zoom: 19 ~ 48 m, 18 ~ 96 m at Calgary")
    max_cells: int = Field(
        2_000_000,
        ge=1,
        description="refuse an AOI estimated to hold more cells than this at grid.zoom (a 30 km "
        "city is ~400,000 cells at zoom 19 and its run peaks near 5 GB)",
    )


class ComputeConfig(_Section):
    """How pixels become cell values."""

    min_valid_share: float = Field(
        0.0,
        ge=0,
        le=1,
        description="a cell-date whose clear share (valid_share) is below this gets NaN variables "
        "(0: any clear pixel counts; e.g. 0.5 against Landsat 7 SLC-off stripes)",
    )


class IndicesConfig(_Section):
    """Spectral index variants."""

    albedo: Literal["liang", "smith"] = Field(
        "liang", description="Liang 2001 broadband albedo, or Smith 2010 (divided by 1.016)"
    )


class BuildingsConfig(_Section):
    """Building footprints and related layers for morphology."""

    path: Path | None = Field(None, description="footprints layer, any OGR format and CRS")
    layer: str | None = Field(None, description="layer of the footprints file (else its first)")
    height_col: str | None = Field("height", description="height column, metres")
    floors_col: str | None = Field("floors", description="floors (storeys) column")
    storey_height_m: float = Field(3.0, gt=0, description="storey height when floors are unknown")
    blocks_path: Path | None = Field(None, description="street-block polygons for block coverage")
    landuse_path: Path | None = Field(None, description="land-use polygons for Shannon entropy")
    landuse_col: str = Field("landuse", description="land-use class column of the land-use layer")
    population_path: Path | None = Field(None, description="population points or polygons")
    population_col: str = Field("population", description="population column of the population layer")
    zones_path: Path | None = Field(None, description="zones (districts) for fixed effects")
    zone_col: str = Field("zone", description="zone id column of the zones layer")


class SuhiConfig(_Section):
    """Surface urban heat island reference."""

    rural: Literal["buffer", "ring"] = Field(
        "buffer",
        description="rural reference outside the urban extent: cells within buffer_m of it ('buffer'), "
        "or the ring of equal area to it ('ring', Peng et al. 2012)",
    )
    buffer_m: float = Field(2000.0, gt=0, description="buffer ring width around the urban extent, metres")
    urban_site_coverage: float = Field(
        0.05, ge=0, le=1, description="cells with at least this site coverage are urban"
    )
    rural_max_ndbi: float = Field(0.0, description="non-built rural cells have NDBI below this")
    elevation_path: Path | None = Field(None, description="DEM for the +-elevation filter")
    elevation_tolerance_m: float = Field(50.0, gt=0, description="Chakraborty & Lee 2019: +-50 m")

    @field_validator("rural", mode="before")
    @classmethod
    def _rural_removed(cls, v: Any) -> Any:
        if v == "nonbuilt":
            raise ValueError(
                "'nonbuilt' was removed (it counted parks inside the city as rural); use 'buffer' "
                "(cells within suhi.buffer_m of the urban extent) or 'ring' (equal-area ring)"
            )
        return v


class ModelConfig(_Section):
    """Spatial regression and hotspots."""

    y: str = Field("lst_c", description="dependent variable (a panel column)")
    x: tuple[str, ...] = Field(
        ("ndvi", "ndbi", "site_coverage"), description="explanatory variables (panel or cell columns)"
    )
    weights: str = Field("knn:8", description="knn:K, queen, rook or distance:D (metres)")
    models: tuple[Literal["ols", "slx", "lag", "error", "fe", "panel_fe"], ...] = Field(
        ("ols", "slx", "lag", "error", "fe", "panel_fe"), description="models fitted per year"
    )
    zone_col: str = Field("zone", description="column of zones for the 'fe' model")
    lag_estimator: Literal["ml", "2sls"] = Field(
        "ml", description="spatial lag model by maximum likelihood or by 2SLS (GM, instruments X and WX)"
    )
    hotspot_variable: Literal["lst", "anomaly"] = Field(
        "lst", description="Gi* on LST or on its anomaly from the rural mean"
    )
    permutations: int = Field(0, ge=0, description="Gi* permutations; 0 uses normal p-values")
    fdr: bool = Field(True, description="correct hotspot p-values for multiple tests (FDR)")
    max_water_share: float = Field(
        0.5,
        ge=0,
        le=1,
        description="cells whose water_share (cells.parquet) is above this are left out of the "
        "regressions, weights, Gi*, forecast and scenario",
    )
    sensor_effects: bool = Field(
        True,
        description="add each older sensor's share of a cell-year's observations as a regressor "
        "in the years more than one Landsat sensor contributed (their offsets; docs/model.md)",
    )

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: str) -> str:
        kind, _, arg = v.partition(":")
        if kind in ("queen", "rook") and not arg:
            return v
        if kind == "knn" and arg.isdigit() and int(arg) >= 1:
            return v
        if kind == "distance":
            try:
                if float(arg) > 0:
                    return v
            except ValueError:
                pass
        raise ValueError("must be knn:K (K >= 1), queen, rook or distance:D (D > 0 metres)")


class ForecastConfig(_Section):
    """Per-cell exponential smoothing."""

    step: Literal["summer", "month"] = Field(
        "summer", description="one step per summer (the months of time.months) or per month"
    )
    horizon: int = Field(
        3, ge=1,
        description="steps ahead; at most half the series' steps (7 summers: 3; 35 summers: 17), checked "
                    "when the series is read",
    )
    holdout: int = Field(2, ge=0, description="last steps held out for validation")
    interval: float = Field(0.9, gt=0, lt=1, description="prediction interval coverage")
    min_points: int = Field(4, ge=3, description="cells with fewer steps are reported, not fitted")
    variables: tuple[str, ...] = Field(
        ("lst_c", "ndvi", "ndbi", "site_coverage"), description="variables forecast per cell"
    )
    methods: tuple[Literal["simple", "holt", "damped"], ...] = Field(
        ("simple", "holt", "damped"), description="exponential smoothing methods; the lowest AICc wins per cell"
    )
    rcp_table: Path | None = Field(None, description="CSV of year, delta_c (else the shipped table)")
    rcp_years: tuple[int, ...] = Field((2050, 2085), description="years of the long-term warming projection")
    rcp_region: str = Field(
        "global",
        description="region rows of the warming table: 'global' or 'canada' (an upper bound) in the "
        "shipped one; any value of a user table's region column",
    )
    rcp_lst_per_air_k: float = Field(
        1.0,
        ge=0,
        le=5,
        description="K of LST change per K of the table's AIR warming: an assumption (1.0 = one for one), "
        "see docs/forecast.md",
    )


# columns of exposure/cells.parquet that a group column must not overwrite
_EXPOSURE_CELL_COLUMNS = frozenset(
    {"cell", "zone", "area_m2", "population", "lst_c", "anomaly_c", "gi_class", "ndvi", "site_coverage", "geometry"}
)


class ExposureConfig(_Section):
    """Who lives in the heat: population, vulnerable groups and neighbourhoods (docs/exposure.md)."""

    zones_path: Path | None = Field(None, description="neighbourhoods, wards or census units (any OGR format, any CRS)")
    zones_layer: str | None = Field(None, description="layer of a multi-layer zones file")
    zone_id_col: str = Field("zone", description="unique zone identifier column")
    zone_name_col: str | None = Field("name", description="zone name column (labels on the map)")
    rank_col: str | None = Field(
        None, description="zone column ranking people for the concentration index (e.g. median income)"
    )
    population_path: Path | None = Field(
        None, description="population: a count raster (GeoTIFF, any CRS) or polygons with population_col"
    )
    population_layer: str | None = Field(None, description="layer of a multi-layer population file")
    population_col: str = Field("population", description="count column of population polygons")
    groups: tuple[str, ...] = Field((), description="count columns of vulnerable groups in the population polygons")
    dasymetric: bool = Field(
        True, description="split polygons by building floor area when compute has it (buildings.path), else by area"
    )
    year: int | None = Field(None, description="reference year (default: the latest year in the panel)")
    threshold_c: float = Field(35.0, description="people in cells whose LST is above this, degC")
    band_width_c: float = Field(1.0, gt=0, description="LST band width of the people-per-band chart, degC")

    @model_validator(mode="after")
    def _groups_need_polygons(self) -> ExposureConfig:
        if len(set(self.groups)) != len(self.groups):
            raise ValueError(f"exposure.groups has duplicates: {list(self.groups)}")
        if self.population_col in self.groups:
            raise ValueError(f"exposure.groups repeats the population column {self.population_col!r}")
        clash = sorted(set(self.groups) & _EXPOSURE_CELL_COLUMNS)
        if clash:
            raise ValueError(f"exposure.groups {clash} clash with output columns; rename them in the layer")
        return self


class PlanConfig(_Section):
    """Where to spend a budget on greening, trees or cool roofs (docs/plan.md).

    Costs are illustrative defaults of the right order of magnitude (sources and caveats in
    docs/plan.md); set the city's own contract prices.
    """

    budget: float | None = Field(None, gt=0, description="money to spend, in plan.currency (--budget)")
    currency: str = Field("CAD", description="unit of budget and costs (a label only)")
    intervention: Literal["greening", "cool_roofs", "trees"] = Field(
        "greening", description="greening raises NDVI of open ground; trees raise NDVI per tree; cool_roofs raise albedo"
    )
    objective: str = Field(
        "people", pattern=r"^(people|area|group:.+)$",
        description="people (person-degC), area (area-weighted mean degC) or group:NAME (an exposure.groups column)",
    )
    model: Literal["ols", "slx", "lag", "error", "fe", "panel_fe"] | None = Field(
        None, description="fitted model to plan with (default: model/summary.json's best model)"
    )
    whole_cells: bool = Field(False, description="buy each cell's change whole (0-1) instead of in part")
    open_share: float = Field(
        0.5, gt=0, le=1, description="share of a cell's open ground (not built, not water) that can be greened or planted"
    )
    greening_ndvi: float = Field(0.6, gt=-1, le=1, description="NDVI of greened ground (irrigated grass, shrubs)")
    greening_cost_per_m2: float = Field(30.0, gt=0, description="cost per m2 greened")
    tree_ndvi: float = Field(0.8, gt=-1, le=1, description="NDVI under a tree's crown")
    tree_crown_m2: float = Field(30.0, gt=0, description="crown area of one planted tree, m2")
    tree_spacing_m2: float = Field(50.0, gt=0, description="plantable ground per tree, m2")
    tree_cost: float = Field(500.0, gt=0, description="cost per tree planted (stock, planting, establishment care)")
    max_ndvi_increase: float = Field(0.3, gt=0, le=2, description="cap on a cell's NDVI increase")
    roof_albedo: float = Field(0.6, gt=0, le=1, description="albedo of a cool roof")
    cool_roof_cost_per_m2: float = Field(20.0, gt=0, description="cost per m2 of roof coated")
    max_albedo_increase: float = Field(0.3, gt=0, le=1, description="cap on a cell's albedo increase")
    interval: float = Field(0.95, gt=0, lt=1, description="coverage of the total benefit's interval")


class OutputsConfig(_Section):
    """What is written for people."""

    formats: tuple[Literal["geojson", "excel", "cog", "gpkg", "png", "html"], ...] = Field(
        ("geojson", "excel", "cog", "gpkg", "png"),
        description="what is written for people: GeoJSON, Excel workbooks, COGs, one GeoPackage "
        "<workspace>/<city>.gpkg, PNG maps, HTML report",
    )
    geojson_wide: bool = Field(
        False,
        description="repeat the cells' static columns (area, urban, water share, morphology) on "
        "every per-date GeoJSON (the old wide form); by default they are only in <city>_cells.geojson",
    )
    geojson_max_cells: int = Field(
        100_000,
        ge=0,
        description="write the per-date <city>_outputs_<date>.geojson files only for cities of at most "
        "this many cells (about 450 bytes per cell and date: 100,000 cells ~ 45 MB a date); raise it "
        "to the city's cell count to write them at any size, 0 never writes them. The same values "
        "are in compute/panel.parquet and the GeoPackage",
    )
    scene_rasters: bool = Field(
        False,
        description="also write the per-scene COGs compute/scenes/<scene>/<var>.tif (lst_c ndvi ndbi "
        "mndwi albedo valid, about 21 bytes a pixel per scene before compression); the yearly "
        "composites are written either way",
    )


class DaskConfig(_Section):
    """Distributed execution; none of it set means one process (threads for I/O)."""

    address: str | None = Field(None, description="scheduler address, e.g. tcp://10.0.0.5:8786")
    workers: int | None = Field(None, ge=1, description="start a LocalCluster with this many workers")


class Config(_Section):
    """The whole run configuration."""

    city: CityConfig = CityConfig()
    time: TimeConfig = TimeConfig()
    search: SearchConfig = SearchConfig()
    fetch: FetchConfig = FetchConfig()
    masking: MaskingConfig = MaskingConfig()
    grid: GridConfig = GridConfig()
    compute: ComputeConfig = ComputeConfig()
    indices: IndicesConfig = IndicesConfig()
    buildings: BuildingsConfig = BuildingsConfig()
    suhi: SuhiConfig = SuhiConfig()
    model: ModelConfig = ModelConfig()
    forecast: ForecastConfig = ForecastConfig()
    exposure: ExposureConfig = ExposureConfig()
    plan: PlanConfig = PlanConfig()
    outputs: OutputsConfig = OutputsConfig()
    dask: DaskConfig = DaskConfig()
    workdir: Path | None = Field(None, description="workspace folder (default: ./uhi-<city>)")

    def section_hash(self, *sections: str) -> str:
        """Stable hash of the named sections (all when none), used to decide stage re-runs."""
        data = self.model_dump(mode="json")
        if sections:
            data = {k: data[k] for k in sections}
        blob = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()

    def resolved_workdir(self) -> Path:
        """The workspace folder: the configured one, else ./uhi-<city.name>."""
        return self.workdir if self.workdir is not None else Path.cwd() / f"uhi-{self.city.name}"


# ---------------------------------------------------------------------------------------------
# building


def _section_keys(model: type[BaseModel]) -> dict[str, Any]:
    return dict(model.model_fields)


def _suggest(key: str, options: Sequence[str]) -> str:
    close = difflib.get_close_matches(key, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _unknown_keys(data: Mapping[str, Any], model: type[BaseModel], prefix: str = "") -> list[str]:
    """One message per unknown key, by its dotted name, with a suggestion."""
    fields = _section_keys(model)
    problems: list[str] = []
    for key, value in data.items():
        dotted = f"{prefix}{_SHORT.repr(str(key))[1:-1]}"
        if key not in fields:
            allowed = ", ".join(sorted(fields))
            problems.append(
                f"unknown config key '{dotted}'{_suggest(str(key), list(fields))}; "
                f"allowed here: {allowed}"
            )
            continue
        annotation = fields[key].annotation
        if isinstance(value, Mapping) and isinstance(annotation, type) and issubclass(
            annotation, BaseModel
        ):
            problems.extend(_unknown_keys(value, annotation, prefix=f"{dotted}."))
    return problems


def _format_validation(err: ValidationError, *, skip_extra: bool = False) -> str:
    parts = []
    errors = err.errors(include_url=False, include_context=False, include_input=True)
    if skip_extra:  # unknown keys are reported by _unknown_keys, with a suggestion
        errors = [e for e in errors if e["type"] != "extra_forbidden"]
    if not errors:
        return ""
    for e in errors[:10]:
        loc = ".".join(str(p) for p in e["loc"] if not isinstance(p, int)) or "config"
        msg = e["msg"].removeprefix("Value error, ")
        value = e.get("input")
        shown = "" if isinstance(value, Mapping) else f" (got {_SHORT.repr(value)})"
        parts.append(f"{_SHORT.repr(loc)[1:-1]}: {msg}{shown}")
    return "invalid config: " + "; ".join(parts)


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = data
    for p in parts[:-1]:
        child = node.get(p)
        if not isinstance(child, dict):
            child = {}
            node[p] = child
        node = child
    node[parts[-1]] = value


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """How many nodes ``node`` stands for once every alias is expanded (a DAG walk, memoised)."""
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = 1  # a recursive alias counts once here; the sum below stays finite
    total = 1
    if isinstance(node, yaml.SequenceNode):
        total += sum(_expanded_size(child, memo) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        total += sum(_expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value)
    memo[key] = min(total, MAX_CONFIG_NODES + 1)
    return memo[key]


def _safe_load_bounded(text: str, what: str) -> Any:
    """``yaml.safe_load`` that refuses a document expanding to more than MAX_CONFIG_NODES values.

    PyYAML shares an anchored node among its aliases, so composing a bomb is cheap; the harm is
    in whatever walks the result (validation, repr). The expanded size is counted on the node
    graph before any Python value is built.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_CONFIG_NODES:
            raise ConfigError(
                f"{what} expands to more than {MAX_CONFIG_NODES:,} values (YAML anchors and aliases?); "
                "write the values out: a uhi config holds a few dozen"
            )
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _parse_scalar(text: str) -> Any:
    """Environment and --set values are YAML scalars or flow lists: '30', 'true', '[6, 7]'."""
    try:
        return _safe_load_bounded(text, "a UHI_* or --set value")
    except (yaml.YAMLError, RecursionError):
        return text


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """UHI_SEARCH__MAX_CLOUD=30 -> {'search': {'max_cloud': 30}}; other UHI_* names are ignored."""
    sections = set(Config.model_fields)
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        dotted = name[len(ENV_PREFIX):].lower().replace("__", ".")
        if dotted.split(".")[0] not in sections:
            continue  # e.g. UHI_PROCESSING_ROOT belongs to the container entrypoint
        _set_dotted(out, dotted, _parse_scalar(raw))
    return out


_PATH_KEYS = (
    ("city", "aoi"),
    ("search", "path"),
    ("buildings", "path"),
    ("buildings", "blocks_path"),
    ("buildings", "landuse_path"),
    ("buildings", "population_path"),
    ("buildings", "zones_path"),
    ("suhi", "elevation_path"),
    ("forecast", "rcp_table"),
    ("exposure", "zones_path"),
    ("exposure", "population_path"),
    ("workdir",),
)


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    """Relative paths in a YAML file are relative to that file's folder."""
    for keys in _PATH_KEYS:
        node: Any = data
        for k in keys[:-1]:
            node = node.get(k) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(keys[-1]), str):
            p = Path(node[keys[-1]]).expanduser()
            node[keys[-1]] = str(p if p.is_absolute() else (base / p).resolve())


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML config file into a dict, with path values resolved against its folder."""
    if not path.exists():
        raise ConfigError(f"config file not found: {path}; pass the path of a YAML config")
    if path.is_dir():
        raise ConfigError(f"config path is a folder, not a file: {path}")
    with open(path, "rb") as fh:
        raw = fh.read(MAX_CONFIG_BYTES + 1)  # never the whole of /dev/zero or a 200 MB file
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"config file {path} is over {MAX_CONFIG_BYTES // 2**20} MiB; "
            "a uhi config is a few KB of YAML: check the path"
        )
    try:
        data = _safe_load_bounded(raw.decode("utf-8"), f"config file {path}") or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(
            f"config file {path} nests too deeply to be a uhi config; write it out flat"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping of sections, got {type(data).__name__}")
    _resolve_paths(data, path.parent.resolve())
    return data


def build_config(
    data: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Build a frozen Config from a mapping, the environment and dotted-key flag overrides.

    Parameters
    ----------
    data
        Values as read from YAML (already path-resolved), or None for defaults.
    environ
        Environment to read ``UHI_*`` variables from (``os.environ`` when None).
    overrides
        Dotted keys from command-line flags, e.g. ``{"workdir": "out", "search.max_cloud": 30}``.
    """
    merged: dict[str, Any] = dict(data or {})
    merged = _merge(merged, _env_overrides(os.environ if environ is None else environ))
    flag_data: dict[str, Any] = {}
    for dotted, value in (overrides or {}).items():
        if value is not None:
            _set_dotted(flag_data, dotted, value)
    _resolve_paths(flag_data, Path.cwd())
    merged = _merge(merged, flag_data)
    # every problem at once (uhi validate lists them): unknown keys, one per line, then the values
    problems = _unknown_keys(merged, Config)
    try:
        config = Config.model_validate(merged)
    except ValidationError as exc:
        values = _format_validation(exc, skip_extra=True)
        raise ConfigError("\n".join([*problems, values] if values else problems)) from None
    if problems:
        raise ConfigError("\n".join(problems))
    return config


def load_config(
    path: Path | str | None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Read a YAML file (or nothing) and build the Config with environment and flag overrides."""
    data = read_yaml(Path(path)) if path is not None else {}
    return build_config(data, environ=environ, overrides=overrides)


def parse_set_option(items: Sequence[str]) -> dict[str, Any]:
    """Turn ``--set key.path=value`` strings into dotted overrides."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, e.g. search.max_cloud=30; got {item!r}")
        out[key.strip()] = _parse_scalar(value)
    return out

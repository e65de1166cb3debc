"""Check a configuration before a long run: every problem found, not only the first.

``uhi validate`` calls :func:`validate_config`; it reads no pixel and writes nothing. The checks
(docs/operations.md, "Validate before cron"):

- the AOI loads (file, polygons, CRS) and its cell count is within ``grid.max_cells``;
- every input file exists and opens, with its layer and the columns the config names;
- the search backend: the local folder or catalog exists; a STAC API answers its landing page
  (unless ``online=False``); SageMaker geospatial answers ``ListRasterDataCollections``;
- credentials where the backend needs them: AWS credentials for ``earth-search`` and ``usgs``
  (requester-pays pixels) and for SageMaker.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from uhi.config import Config
from uhi.errors import UhiError
from uhi.redact import redact_text, redact_url

__all__ = ["Validation", "validate_config"]

log = logging.getLogger("uhi.validate")


@dataclass
class Validation:
    """What was checked, the problems (each makes ``uhi validate`` exit 2) and notes."""

    checked: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "problems": self.problems, "notes": self.notes}


def validate_config(config: Config, *, online: bool = True) -> Validation:
    """Run every check on ``config`` and collect what fails (never raises for a failed check).

    Parameters
    ----------
    config
        A loaded configuration (its own errors are raised by ``load_config`` before this).
    online
        Contact the search backend (STAC landing page, SageMaker list call); off: files only.
    """
    v = Validation()
    _check_aoi(config, v)
    _check_inputs(config, v)
    _check_search(config, v, online=online)
    for line in v.checked:
        log.debug("validate: ok: %s", line)
    log.info("validate: %d check(s) passed, %d problem(s)", len(v.checked), len(v.problems))
    return v


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return redact_text(text.splitlines()[0][:400] if text else type(exc).__name__)


def _check_aoi(config: Config, v: Validation) -> None:
    from uhi.aoi import check_cell_budget, load_aoi

    try:
        aoi = load_aoi(config.city)
        cells = check_cell_budget(aoi, config.grid.zoom, config.grid.max_cells)
    except UhiError as exc:
        v.problems.append(_short(exc))
        return
    v.checked.append(f"AOI: {config.city.aoi or 'city.bbox'} (about {cells} cells at zoom {config.grid.zoom})")


def _layer_fields(path: Path, layer: str | None, key: str, v: Validation) -> list[str] | None:
    """The field names of ``path`` (``layer``), or None after recording why it cannot be read."""
    import pyogrio
    from pyogrio.errors import DataLayerError, DataSourceError

    if not path.exists():
        v.problems.append(f"{key} not found: {path}; give an existing file (relative paths are from the current folder)")
        return None
    try:
        if layer is not None:
            names = [str(n) for n in pyogrio.list_layers(path)[:, 0]]
            if layer not in names:
                v.problems.append(f"{key} {path} has no layer {layer!r}; its layers: {', '.join(names[:20])}")
                return None
        info = pyogrio.read_info(path, layer=layer)
    except (DataSourceError, DataLayerError, ValueError, OSError) as exc:
        v.problems.append(f"{key} cannot be read: {path} ({_short(exc)}); give a file GDAL/OGR opens")
        return None
    return [str(f) for f in info["fields"]]


def _check_inputs(config: Config, v: Validation) -> None:
    b = config.buildings
    if b.path is not None:
        fields = _layer_fields(b.path, b.layer, "buildings.path", v)
        if fields is not None:
            v.checked.append(f"buildings.path: {b.path} ({len(fields)} columns)")
            heights = [c for c in (b.height_col, b.floors_col) if c]
            if heights and not any(c in fields for c in heights):
                v.notes.append(
                    f"buildings.path {b.path} has neither {' nor '.join(repr(c) for c in heights)}: building "
                    "heights (and volume, frontal area) will be missing; set buildings.height_col/floors_col"
                )
    layers = (
        ("buildings.blocks_path", b.blocks_path, None, None),
        ("buildings.landuse_path", b.landuse_path, "buildings.landuse_col", b.landuse_col),
        ("buildings.population_path", b.population_path, "buildings.population_col", b.population_col),
        ("buildings.zones_path", b.zones_path, "buildings.zone_col", b.zone_col),
    )
    for key, path, col_key, col in layers:
        if path is None:
            continue
        fields = _layer_fields(path, None, key, v)
        if fields is None:
            continue
        if col is not None and col not in fields:
            v.problems.append(f"{key} {path} has no column {col!r}; set {col_key} to one of: {', '.join(fields[:20])}")
            continue
        v.checked.append(f"{key}: {path}" + (f" (column {col!r})" if col else ""))
    _check_exposure(config, v)
    if config.suhi.elevation_path is not None:
        _check_raster(config.suhi.elevation_path, "suhi.elevation_path", v)
    if config.forecast.rcp_table is not None:
        _check_rcp_table(config.forecast.rcp_table, v)


def _check_exposure(config: Config, v: Validation) -> None:
    """exposure.zones_path with its id/name/rank columns; exposure.population_path as a raster
    (.tif) or polygons with population_col and every group column."""
    e = getattr(config, "exposure", None)
    if e is None:
        return
    if e.zones_path is not None:
        fields = _layer_fields(e.zones_path, e.zones_layer, "exposure.zones_path", v)
        if fields is not None:
            wanted = [("exposure.zone_id_col", e.zone_id_col), ("exposure.zone_name_col", e.zone_name_col),
                      ("exposure.rank_col", e.rank_col)]
            missing = [(k, c) for k, c in wanted if c and c not in fields]
            for key, col in missing:
                v.problems.append(f"exposure.zones_path {e.zones_path} has no column {col!r}; set {key} to one of: "
                                  f"{', '.join(fields[:20])}")
            if not missing:
                v.checked.append(f"exposure.zones_path: {e.zones_path}")
    if e.population_path is not None:
        if e.population_path.suffix.lower() in (".tif", ".tiff", ".vrt"):
            _check_raster(e.population_path, "exposure.population_path", v)
            return
        fields = _layer_fields(e.population_path, e.population_layer, "exposure.population_path", v)
        if fields is None:
            return
        missing_cols = [c for c in (e.population_col, *e.groups) if c not in fields]
        if missing_cols:
            v.problems.append(
                f"exposure.population_path {e.population_path} has no column(s) {', '.join(map(repr, missing_cols))}; "
                f"set exposure.population_col / exposure.groups to its columns: {', '.join(fields[:20])}"
            )
        else:
            v.checked.append(f"exposure.population_path: {e.population_path}")


def _check_raster(path: Path, key: str, v: Validation) -> None:
    import rasterio
    from rasterio.errors import RasterioIOError

    if not path.exists():
        v.problems.append(f"{key} not found: {path}; give an existing raster")
        return
    try:
        with rasterio.open(path) as src:
            if src.crs is None:
                v.problems.append(f"{key} {path} has no CRS; assign one (gdal_edit.py -a_srs)")
                return
    except RasterioIOError as exc:
        v.problems.append(f"{key} cannot be read: {path} ({_short(exc)})")
        return
    v.checked.append(f"{key}: {path}")


def _check_rcp_table(path: Path, v: Validation) -> None:
    if not path.exists():
        v.problems.append(f"forecast.rcp_table not found: {path}; give a CSV or unset it (the shipped table)")
        return
    try:
        header = path.read_text(encoding="utf-8").splitlines()[0]
    except (OSError, UnicodeDecodeError, IndexError) as exc:
        v.problems.append(f"forecast.rcp_table cannot be read: {path} ({_short(exc)})")
        return
    columns = [c.strip() for c in header.split(",")]
    missing = [c for c in ("year", "delta_c") if c not in columns]
    if missing:
        v.problems.append(f"forecast.rcp_table {path} lacks column(s) {', '.join(missing)}; it has {', '.join(columns)}")
        return
    v.checked.append(f"forecast.rcp_table: {path}")


def _aws_credentials(profile: str | None = None) -> bool:
    """True when the standard AWS chain finds credentials (botocore when installed, else env)."""
    try:
        import botocore.session
        from botocore.exceptions import BotoCoreError
    except ImportError:
        return bool(os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")) or bool(
            os.environ.get("AWS_PROFILE")
        )
    try:
        session = botocore.session.Session(profile=profile)
        return session.get_credentials() is not None
    except BotoCoreError:
        return False


def _check_search(config: Config, v: Validation, *, online: bool) -> None:
    s = config.search
    if s.backend == "local":
        assert s.path is not None  # the config validator guarantees it
        if not s.path.exists():
            v.problems.append(f"search.path not found: {s.path}; give a scene folder or a catalog.json")
        else:
            v.checked.append(f"search: local {s.path}")
        return
    if s.backend == "sagemaker":
        _check_sagemaker(config, v, online=online)
        return
    from uhi.search.stac import resolve_endpoint

    try:
        endpoint = resolve_endpoint(config)
    except UhiError as exc:
        v.problems.append(_short(exc))
        return
    shown = redact_url(endpoint.url)
    if s.url is None and endpoint.aws_credentials and not _aws_credentials():
        v.problems.append(
            f"search.preset {s.preset!r} reads pixels from a requester-pays S3 bucket and needs AWS credentials "
            "(none found in the standard AWS chain); configure them, or use the default preset "
            "'planetary-computer' (free, no account)"
        )
    if not online:
        v.notes.append(f"search: STAC API {shown} not contacted (--offline)")
        return
    _check_stac_api(endpoint.url, endpoint.collections, config, v)


def _check_stac_api(url: str, collections: tuple[str, ...], config: Config, v: Validation) -> None:
    import requests

    shown = redact_url(url)
    timeout = config.fetch.timeout_s
    try:
        r = requests.get(url, timeout=timeout, headers={"Accept": "application/json"})
        r.raise_for_status()
        landing = r.json()
        if not isinstance(landing, dict):
            raise ValueError("the landing page is not a JSON object")
    except (requests.RequestException, ValueError) as exc:
        v.problems.append(
            f"search: STAC API {shown} is not reachable or not a STAC API ({_short(exc)}); check search.url "
            "or search.preset and your connection (or validate with --offline)"
        )
        return
    missing = []
    for name in collections:
        try:
            c = requests.get(f"{url.rstrip('/')}/collections/{name}", timeout=timeout)
        except requests.RequestException as exc:
            v.problems.append(f"search: STAC API {shown} did not answer for collection {name!r} ({_short(exc)})")
            return
        if c.status_code == 404:
            missing.append(name)
    if missing:
        v.problems.append(
            f"search: STAC API {shown} has no collection {', '.join(repr(m) for m in missing)}; set search.collection"
        )
        return
    v.checked.append(f"search: STAC API {shown} answers, collection(s) {', '.join(collections)}")


def _check_sagemaker(config: Config, v: Validation, *, online: bool) -> None:
    from uhi.search.sagemaker import make_client

    try:
        client = make_client(config)
    except UhiError as exc:
        v.problems.append(_short(exc))
        return
    if not _aws_credentials(config.search.sagemaker.profile):
        v.problems.append(
            "search.backend 'sagemaker' needs AWS credentials (none found in the standard AWS chain); "
            "set AWS_PROFILE or search.sagemaker.profile"
        )
        return
    if not online:
        v.notes.append("search: SageMaker geospatial not contacted (--offline)")
        return
    from botocore.exceptions import BotoCoreError, ClientError

    endpoint = getattr(getattr(client, "meta", None), "endpoint_url", "SageMaker geospatial")
    try:
        # one page of the cheapest call: it proves the endpoint, the credentials and the permission
        client.list_raster_data_collections(MaxResults=1)
    except ClientError as exc:
        err = exc.response.get("Error", {})
        v.problems.append(
            f"search: SageMaker geospatial at {endpoint} refused ListRasterDataCollections "
            f"({err.get('Code', '')}: {err.get('Message', '')}); check the IAM permissions and region "
            "(the service is us-west-2 only and closed to new customers: search.backend 'stac' is the default)"
        )
        return
    except BotoCoreError as exc:
        v.problems.append(f"search: SageMaker geospatial at {endpoint} is not reachable ({_short(exc)})")
        return
    v.checked.append(f"search: SageMaker geospatial at {endpoint} answers")

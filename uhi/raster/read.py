"""Windowed reads of remote or local COGs: GDAL settings, href safety, signing, retries, AOI window."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from uhi.errors import RemoteError, UhiError
from uhi.redact import redact_text, redact_url, strip_query

__all__ = [
    "ReadOptions",
    "ClipResult",
    "gdal_env_options",
    "resolve_href",
    "source_key",
    "source_tag",
    "window_for_grid",
    "read_clip",
    "source_crs",
    "clip_is_valid",
]

log = logging.getLogger("uhi.raster")

_PC_HOST_SUFFIX = ".blob.core.windows.net"


@dataclass(frozen=True)
class ReadOptions:
    """How windows are read.

    Attributes
    ----------
    retries
        Attempts after the first one, with exponential backoff (0.5 s, 1 s, 2 s, ...).
    timeout_s
        HTTP timeout per request, seconds.
    allow_local
        Whether hrefs may name local files (true only for the local backend or when the user
        set ``fetch.allow_local_hrefs``): a remote catalog must not make uhi read local files.
    backoff_s
        First backoff delay, seconds.
    """

    retries: int = 3
    timeout_s: float = 60.0
    allow_local: bool = False
    backoff_s: float = 0.5


@dataclass(frozen=True)
class ClipResult:
    """The pixels of one window of one asset, on the source grid (no resampling)."""

    data: np.ndarray
    transform: Any
    crs: Any
    nodata: float | int | None
    window: tuple[int, int, int, int]  # col_off, row_off, width, height on the source grid
    source_shape: tuple[int, int]  # rows, cols of the whole source file


def gdal_env_options(opts: ReadOptions) -> dict[str, Any]:
    """GDAL configuration for range reads of COGs over HTTP(S)/S3.

    Follows GDAL's "Cloud Optimized GeoTIFF" and ``/vsicurl/`` docs: no directory listing on
    open, only .tif extensions probed, consecutive ranges merged, HTTP/2 multiplexing, GDAL's
    own retry of 429/5xx answers, and requester-pays for the ``usgs-landsat`` bucket.
    """
    return {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff,.TIFF",
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        "GDAL_HTTP_MULTIPLEX": "YES",
        "GDAL_HTTP_VERSION": "2",
        "GDAL_HTTP_TIMEOUT": str(max(1, int(math.ceil(opts.timeout_s)))),
        "GDAL_HTTP_CONNECTTIMEOUT": str(max(1, int(math.ceil(min(opts.timeout_s, 30))))),
        "GDAL_HTTP_MAX_RETRY": str(opts.retries),
        "GDAL_HTTP_RETRY_DELAY": str(opts.backoff_s),
        "GDAL_INGESTED_BYTES_AT_OPEN": "32768",
        "VSI_CACHE": "TRUE",
        "AWS_REQUEST_PAYER": "requester",
    }


def _is_local(href: str) -> bool:
    scheme = urlparse(href).scheme.lower()
    return scheme in ("", "file") or (len(scheme) == 1 and href[1:3] in (":\\", ":/"))


def source_key(href: str) -> str:
    """The href without userinfo and query string (signatures change; the source does not);
    also what messages and files show of a remote href."""
    if "://" in href and not _is_local(href):
        return strip_query(href)
    return href.split("?", 1)[0]


def source_tag(href: str) -> str:
    """How a clip names its source in its tags: remote hrefs without their query string; a local
    file only by its name and a hash of its absolute path (no local path in a shared file)."""
    import hashlib

    key = source_key(href)
    if not _is_local(key):
        return key
    local = Path(key.removeprefix("file://")).expanduser().resolve()
    digest = hashlib.sha256(str(local).encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return f"local:{local.name}:{digest}"


def resolve_href(href: str, opts: ReadOptions) -> str:
    """The path GDAL should open for an asset href, after the safety checks and signing.

    - ``http(s)://`` hrefs are read with range requests (``/vsicurl/``); Planetary Computer blob
      hrefs are signed with the ``planetary-computer`` package (SAS tokens expire, so signing
      happens at read time, never at search time).
    - ``s3://`` hrefs are read through GDAL's ``/vsis3/`` with requester-pays.
    - local paths and ``file://`` only when ``opts.allow_local``.

    Raises
    ------
    UhiError
        A local href from a remote catalog, or a scheme uhi does not read.
    """
    if not isinstance(href, str) or not href:
        raise UhiError(f"asset href is empty or not a string: {href!r}")
    parsed = urlparse(href)
    scheme = parsed.scheme.lower()
    if _is_local(href) or href.startswith("/vsi"):
        if not opts.allow_local:
            raise UhiError(
                f"refusing to read a local file named by a remote catalog: {href!r}; "
                "use search.backend 'local' for files on disk (or set fetch.allow_local_hrefs)"
            )
        if href.startswith("/vsi"):
            raise UhiError(f"refusing GDAL virtual path in an asset href: {href!r}")
        return parsed.path if scheme == "file" else href
    if scheme in ("http", "https"):
        host = (parsed.hostname or "").lower()
        if host.endswith(_PC_HOST_SUFFIX) and "sig=" not in parsed.query:
            return _sign_planetary_computer(href)
        return href
    if scheme == "s3":
        return href
    raise UhiError(
        f"unsupported asset href scheme {scheme!r} in {redact_url(href)!r}; uhi reads http(s), s3 and local files"
    )


def _sign_planetary_computer(href: str) -> str:
    try:
        import planetary_computer
    except ImportError:
        raise UhiError(
            "Planetary Computer hrefs need signing: pip install planetary-computer"
        ) from None
    try:
        return str(planetary_computer.sign(href))
    except Exception as exc:  # noqa: BLE001 - the SDK raises requests and pydantic errors alike
        raise RemoteError(
            f"could not sign the Planetary Computer href {source_key(href)} ({type(exc).__name__}: {exc}); "
            "check the connection (PC_SDK_SAS_URL / PC_SDK_SUBSCRIPTION_KEY)"
        ) from None


@contextlib.contextmanager
def _rasterio_env(path: str, opts: ReadOptions) -> Iterator[None]:
    import rasterio

    options = gdal_env_options(opts)
    session = None
    if path.startswith("s3://"):
        with contextlib.suppress(ImportError):
            from rasterio.session import AWSSession

            # usgs-landsat is a requester-pays bucket in us-west-2 (USGS Landsat on AWS docs)
            session = AWSSession(requester_pays=True, region_name=options.get("AWS_REGION", "us-west-2"))
    with rasterio.Env(session=session, **options) if session else rasterio.Env(**options):
        yield


def window_for_grid(
    transform: Any, width: int, height: int, crs: Any, aoi_geometry: Any, margin_m: float
) -> tuple[int, int, int, int] | None:
    """The pixel window (col_off, row_off, width, height) covering the AOI plus a margin.

    The window is snapped outward to whole source pixels and clipped to the grid; None when
    the AOI does not touch the grid. ``aoi_geometry`` is in EPSG:4326.
    """
    from rasterio.warp import transform_geom
    from rasterio.windows import from_bounds
    from shapely.geometry import mapping, shape

    local = shape(transform_geom("EPSG:4326", crs, mapping(aoi_geometry)))
    xmin, ymin, xmax, ymax = local.buffer(margin_m).bounds if margin_m > 0 else local.bounds
    win = from_bounds(xmin, ymin, xmax, ymax, transform=transform)
    col0 = max(0, math.floor(win.col_off + 1e-9))
    row0 = max(0, math.floor(win.row_off + 1e-9))
    col1 = min(width, math.ceil(win.col_off + win.width - 1e-9))
    row1 = min(height, math.ceil(win.row_off + win.height - 1e-9))
    if col1 <= col0 or row1 <= row0:
        return None
    return (col0, row0, col1 - col0, row1 - row0)


def read_clip(
    href: str, aoi_geometry: Any, margin_m: float, opts: ReadOptions, *, default_nodata: float | int | None = None
) -> ClipResult | None:
    """Read the AOI window (plus margin) of one asset, retrying with exponential backoff.

    Returns None when the AOI misses the raster. Raises RemoteError naming the URL once the
    retries are spent.
    """
    import rasterio
    from rasterio.errors import RasterioIOError
    from rasterio.windows import Window

    path = resolve_href(href, opts)
    # a local file does not fail transiently: one attempt
    attempts = 1 if _is_local(href) else opts.retries + 1
    last: Exception | None = None
    for attempt in range(attempts):
        try:
            with _rasterio_env(path, opts), rasterio.open(path) as src:
                win = window_for_grid(src.transform, src.width, src.height, src.crs, aoi_geometry, margin_m)
                if win is None:
                    return None
                window = Window(*win)
                data = src.read(window=window)
                nodata = src.nodata if src.nodata is not None else default_nodata
                return ClipResult(
                    data=data,
                    transform=src.window_transform(window),
                    crs=src.crs,
                    nodata=nodata,
                    window=win,
                    source_shape=(src.height, src.width),
                )
        except RasterioIOError as exc:
            last = exc
            if attempt + 1 < attempts:
                delay = opts.backoff_s * (2**attempt)
                log.warning("read of %s failed (%s); retry %d/%d in %.1f s", source_key(href), redact_text(str(exc)), attempt + 1, opts.retries, delay)
                time.sleep(delay)
    if _is_local(href):
        raise UhiError(f"cannot read {href}: {last}; check the file")
    hint = "check the connection and the server (or raise fetch.retries)"
    if href.startswith("s3://"):
        hint = (
            "s3://usgs-landsat is requester-pays: set AWS credentials (AWS_PROFILE or keys), or use "
            "search.preset planetary-computer, which needs no AWS account"
        )
    raise RemoteError(f"cannot read {source_key(href)} after {opts.retries} retries: {redact_text(str(last))}; {hint}")


def source_crs(href: str, opts: ReadOptions) -> str | None:
    """The CRS label of an asset's file (its header only), or None when it declares none.

    Raises RemoteError / UhiError as :func:`read_clip` does when the file cannot be opened.
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    path = resolve_href(href, opts)
    try:
        with _rasterio_env(path, opts), rasterio.open(path) as src:
            return src.crs.to_string() if src.crs else None
    except RasterioIOError as exc:
        raise RemoteError(f"cannot read {source_key(href)}: {redact_text(str(exc))}") from None


def clip_is_valid(
    path: Path,
    *,
    source: str | None = None,
    shape: tuple[int, int] | None = None,
    tags: dict[str, str] | None = None,
) -> bool:
    """True when ``path`` is a finished clip: it opens, every pixel decodes, and it was cut from
    ``source`` with the expected ``shape`` (rows, cols) and carries ``tags`` when those are given."""
    import rasterio
    from rasterio.errors import RasterioError

    if not Path(path).is_file():
        return False
    try:
        with rasterio.open(path) as src:
            found_tags = src.tags()
            if source is not None and found_tags.get("uhi_source") != source_tag(source):
                return False
            if shape is not None and (src.height, src.width) != tuple(shape):
                return False
            if tags and any(found_tags.get(k) != v for k, v in tags.items()):
                return False
            src.read()  # a truncated file fails here, tile by tile
    except (RasterioError, OSError):
        return False
    return True

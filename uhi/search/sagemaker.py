"""Search Amazon SageMaker geospatial's Landsat collection and turn the results into STAC items."""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable, Iterator
from typing import Any

import pystac

from uhi.config import Config
from uhi.errors import ConfigError, RemoteError
from uhi.redact import redact_url
from uhi.search.deadline import call_within

__all__ = [
    "DEFAULT_LANDSAT_ARN",
    "make_client",
    "landsat_collection_arn",
    "build_query",
    "search_sagemaker",
    "item_from_sagemaker",
]

log = logging.getLogger("uhi.search")

# The ARN used in AWS's SageMaker geospatial Landsat examples; only a fallback when
# ListRasterDataCollections is not allowed or finds nothing.
DEFAULT_LANDSAT_ARN = (
    "arn:aws:sagemaker-geospatial:us-west-2:378778860802:raster-data-collection/public/gmqa64dcu2g9ayx1"
)
# SageMaker geospatial's AOI is a GeoJSON polygon in the request body; a city outline with
# thousands of vertices is sent as its convex hull (the exact AOI filters results client-side).
_MAX_AOI_VERTICES = 500
# Paging caps: a server that keeps handing out new tokens stops here. ListRasterDataCollections
# lists a handful of collections; a search stops at search.max_items (2000 by default), which
# even pages of 5 items reach in 400 pages.
MAX_LIST_PAGES = 50
MAX_SEARCH_PAGES = 1000

_PROPERTY_MAP = {
    "EoCloudCover": "eo:cloud_cover",
    "LandsatCloudCoverLand": "landsat:cloud_cover_land",
    "Platform": "platform",
    "ViewOffNadir": "view:off_nadir",
    "ViewSunAzimuth": "view:sun_azimuth",
    "ViewSunElevation": "view:sun_elevation",
}


def make_client(config: Config) -> Any:
    """A ``sagemaker-geospatial`` boto3 client honouring profile, region and the AWS env settings.

    ``AWS_ENDPOINT_URL_SAGEMAKER_GEOSPATIAL`` (or ``AWS_ENDPOINT_URL``) is applied by botocore
    itself; throttling and 5xx answers are retried with exponential backoff by botocore's
    ``standard`` retry mode.
    """
    try:
        import boto3
        from botocore.config import Config as BotoConfig
        from botocore.exceptions import ProfileNotFound
    except ImportError:
        raise ConfigError(
            "search.backend 'sagemaker' needs boto3: pip install 'uhi-landsat[sagemaker]'"
        ) from None
    sm = config.search.sagemaker
    try:
        session = boto3.Session(profile_name=sm.profile, region_name=sm.region)
    except ProfileNotFound:
        raise ConfigError(
            f"search.sagemaker.profile not found: {sm.profile!r}; check ~/.aws/config or unset it"
        ) from None
    boto_config = BotoConfig(
        retries={"max_attempts": config.fetch.retries + 1, "mode": "standard"},
        connect_timeout=config.fetch.timeout_s,
        read_timeout=config.fetch.timeout_s,
    )
    return session.client("sagemaker-geospatial", config=boto_config)


def _explain(exc: Any, what: str, client: Any) -> RemoteError:
    from botocore.exceptions import ClientError

    endpoint = _endpoint(client)
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        message = exc.response.get("Error", {}).get("Message", "")
        if code in ("AccessDeniedException", "AccessDenied", "UnrecognizedClientException"):
            return RemoteError(
                f"SageMaker geospatial {what} was denied at {endpoint} ({code}: {message}); the service "
                "needs IAM permission sagemaker-geospatial:SearchRasterDataCollection in us-west-2 and is "
                "closed to new AWS customers: use search.backend 'stac' (the default) instead"
            )
        return RemoteError(f"SageMaker geospatial {what} failed at {endpoint} ({code}: {message})")
    return RemoteError(f"SageMaker geospatial {what} failed at {endpoint}: {exc}; check the network and region")


def landsat_collection_arn(client: Any) -> str:
    """The Landsat C2 L2 collection ARN from ListRasterDataCollections (every page).

    Falls back to :data:`DEFAULT_LANDSAT_ARN` when the listing is denied or names no Landsat
    collection (a warning says so).

    Raises
    ------
    RemoteError
        The service repeats a NextToken or pages beyond :data:`MAX_LIST_PAGES`.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        for page in _pages(client.list_raster_data_collections, {}, MAX_LIST_PAGES, "ListRasterDataCollections",
                           client):
            for summary in page.get("RasterDataCollectionSummaries") or []:
                if not isinstance(summary, dict) or not summary.get("Arn"):
                    continue
                text = f"{summary.get('Name', '')} {summary.get('Description', '')}".lower()
                if "landsat" in text:
                    log.info("SageMaker geospatial Landsat collection: %s (%s)", summary["Arn"], summary.get("Name"))
                    return str(summary["Arn"])
    except (ClientError, BotoCoreError) as exc:
        log.warning("ListRasterDataCollections failed (%s); using the documented Landsat ARN", exc)
        return DEFAULT_LANDSAT_ARN
    log.warning("ListRasterDataCollections named no Landsat collection; using the documented Landsat ARN")
    return DEFAULT_LANDSAT_ARN


def _pages(
    call: Callable[..., dict[str, Any]], kwargs: dict[str, Any], max_pages: int, what: str, client: Any
) -> Iterator[dict[str, Any]]:
    """Every page of a NextToken-paged call, the last one included.

    A server that hands back a token it already gave (``{"Items": [], "NextToken": "again"}``)
    or pages without end would keep the run, and the workspace lock, forever: both stop with a
    RemoteError.
    """
    seen: set[str] = set()
    token: str | None = None
    for _ in range(max_pages):
        page = call(**kwargs, **({"NextToken": token} if token else {}))
        yield page
        # AWS's own sample loop exits as soon as NextToken is missing and drops that last page:
        # the page is handed out first, then the loop stops
        token = page.get("NextToken") or None
        if token is None:
            return
        if token in seen:
            raise RemoteError(
                f"SageMaker geospatial {what} at {_endpoint(client)} returned the NextToken {str(token)[:40]!r} "
                "twice; the service is misbehaving: retry later or use search.backend 'stac'"
            )
        seen.add(str(token))
    raise RemoteError(
        f"SageMaker geospatial {what} at {_endpoint(client)} was still paging after {max_pages} pages; "
        "narrow time.start/time.end or the AOI, or use search.backend 'stac'"
    )


def _endpoint(client: Any) -> str:
    return redact_url(str(getattr(getattr(client, "meta", None), "endpoint_url", "sagemaker-geospatial")))


def _rings(polygon: Any) -> list[list[list[float]]]:
    rings = [polygon.exterior, *polygon.interiors]
    return [[[float(x), float(y)] for x, y, *_ in ring.coords] for ring in rings]


def build_query(config: Config, aoi_geometry: Any) -> dict[str, Any]:
    """The ``RasterDataCollectionQuery`` of a search, exactly as botocore's model defines it."""
    import shapely

    geom = aoi_geometry
    if len(shapely.get_coordinates(geom)) > _MAX_AOI_VERTICES:
        geom = geom.convex_hull
    aoi: dict[str, Any]
    if geom.geom_type == "Polygon":
        aoi = {"PolygonGeometry": {"Coordinates": _rings(geom)}}
    else:
        aoi = {"MultiPolygonGeometry": {"Coordinates": [_rings(p) for p in geom.geoms]}}
    start = dt.datetime.combine(config.time.start, dt.time.min, tzinfo=dt.UTC)
    end = dt.datetime.combine(config.time.end, dt.time(23, 59, 59), tzinfo=dt.UTC)
    props: list[dict[str, Any]] = [
        {"Property": {"EoCloudCover": {"LowerBound": 0.0, "UpperBound": float(config.search.max_cloud)}}}
    ]
    if config.search.max_cloud_land is not None:
        props.append(
            {"Property": {"LandsatCloudCoverLand": {"LowerBound": 0.0, "UpperBound": float(config.search.max_cloud_land)}}}
        )
    # PropertyFilters only combine with AND: one platform can be asked for, two are filtered here
    if len(config.search.platforms) == 1:
        props.append({"Property": {"Platform": {"Value": config.search.platforms[0], "ComparisonOperator": "EQUALS"}}})
    return {
        "AreaOfInterest": {"AreaOfInterestGeometry": aoi},
        "TimeRangeFilter": {"StartTime": start, "EndTime": end},
        "PropertyFilters": {"Properties": props, "LogicalOperator": "AND"},
    }


def item_from_sagemaker(raw: dict[str, Any]) -> pystac.Item:
    """A STAC item from one ``Items[]`` entry of SearchRasterDataCollection.

    A footprint shapely cannot build (a ring of fewer than four points, non-numeric
    coordinates) gives an item without bbox: the scene filter then drops it as "invalid
    geometry", as it does a STAC API's item with a broken footprint.

    Raises
    ------
    KeyError, TypeError, ValueError, AttributeError
        The entry lacks its Id or DateTime, or is not an object.
    """
    from shapely.errors import GEOSException
    from shapely.geometry import shape

    geometry_in = raw.get("Geometry") or {}
    geometry = {"type": geometry_in.get("Type", "Polygon"), "coordinates": geometry_in.get("Coordinates")}
    try:
        bbox: list[float] | None = list(shape(geometry).bounds)
        if not all(math.isfinite(v) for v in bbox or ()):
            bbox = None
    except (GEOSException, ValueError, TypeError, IndexError, AttributeError) as exc:
        log.debug("SageMaker item %s: footprint unusable (%s)", raw.get("Id"), exc)
        bbox = None
    when = raw["DateTime"]
    if isinstance(when, str):
        when = dt.datetime.fromisoformat(when.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    props_in = raw.get("Properties") or {}
    properties = {stac_key: props_in[key] for key, stac_key in _PROPERTY_MAP.items() if props_in.get(key) is not None}
    item = pystac.Item(str(raw["Id"]), geometry, bbox, when, properties)
    for key, value in (raw.get("Assets") or {}).items():
        href = value.get("Href") if isinstance(value, dict) else None
        if href:
            item.add_asset(str(key), pystac.Asset(href=str(href)))
    return item


def _item_or_raise(raw: Any, client: Any) -> pystac.Item:
    """An item, or a RemoteError naming the service when the entry is not one (as the STAC
    backend treats an item that is not STAC)."""
    try:
        return item_from_sagemaker(raw)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise RemoteError(
            f"SageMaker geospatial at {_endpoint(client)} returned an invalid item "
            f"({type(exc).__name__}: {str(exc)[:200]}); retry later or use search.backend 'stac'"
        ) from None


def search_sagemaker(
    config: Config, aoi_geometry: Any, *, client_factory: Callable[[Config], Any] = make_client
) -> list[pystac.Item]:
    """Search SageMaker geospatial for Landsat scenes; every page, the last one included.

    Raises
    ------
    RemoteError
        Access denied (explained), validation errors, a service failure after retries, a
        repeated NextToken, more than :data:`MAX_SEARCH_PAGES` pages, or a search longer than
        ``search.timeout_total_s``.
    """
    return call_within(
        lambda: _search(config, aoi_geometry, client_factory),
        config.search.timeout_total_s,
        "the SageMaker geospatial search",
        "check the network, raise search.timeout_total_s, or use search.backend 'stac'",
    )


def _search(config: Config, aoi_geometry: Any, client_factory: Callable[[Config], Any]) -> list[pystac.Item]:
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    client = client_factory(config)
    arn = config.search.sagemaker.collection_arn or landsat_collection_arn(client)
    query = build_query(config, aoi_geometry)
    items: list[pystac.Item] = []
    pages = 0
    try:
        kwargs: dict[str, Any] = {"Arn": arn, "RasterDataCollectionQuery": query}
        for page in _pages(client.search_raster_data_collection, kwargs, MAX_SEARCH_PAGES,
                           "SearchRasterDataCollection", client):
            pages += 1
            items.extend(_item_or_raise(raw, client) for raw in page.get("Items") or [])
            if len(items) >= config.search.max_items:
                break
    except NoCredentialsError:
        raise ConfigError(
            "no AWS credentials for SageMaker geospatial; set AWS_PROFILE or search.sagemaker.profile"
        ) from None
    except (ClientError, BotoCoreError) as exc:
        raise _explain(exc, "SearchRasterDataCollection", client) from None
    log.info("SageMaker geospatial returned %d item(s) in %d page(s)", len(items), pages)
    return items[: config.search.max_items]

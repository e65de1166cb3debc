"""Search a STAC API (Earth Search, Planetary Computer, USGS landsatlook, or any URL) with pystac-client."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, replace
from typing import Any

import pystac

from uhi.config import Config
from uhi.errors import ConfigError, RemoteError
from uhi.redact import redact_text, redact_url
from uhi.search.deadline import call_within

__all__ = ["StacPreset", "PRESETS", "resolve_endpoint", "search_stac", "prefer_s3_hrefs"]

log = logging.getLogger("uhi.search")


@dataclass(frozen=True)
class StacPreset:
    """A known STAC API.

    Attributes
    ----------
    url
        API root.
    collections
        Collection ids searched (landsatlook splits SR and ST into two).
    account, cost, pixels
        What a user needs to read the pixels, what it costs them, and where the pixels come
        from (shown by ``uhi presets``; docs/fetch.md).
    aws_credentials
        True when the pixels are in a requester-pays S3 bucket (``uhi validate`` checks that
        AWS credentials are present).
    """

    url: str
    collections: tuple[str, ...]
    account: str = ""
    cost: str = ""
    pixels: str = ""
    aws_credentials: bool = False


PRESETS: dict[str, StacPreset] = {
    "planetary-computer": StacPreset(
        "https://planetarycomputer.microsoft.com/api/stac/v1",
        ("landsat-c2-l2",),
        account="none (a PC_SDK_SUBSCRIPTION_KEY raises rate limits)",
        cost="free",
        pixels="Azure blob storage, https hrefs signed at read time (planetary-computer package)",
    ),
    "earth-search": StacPreset(
        "https://earth-search.aws.element84.com/v1",
        ("landsat-c2-l2",),
        account="AWS credentials (standard AWS chain)",
        cost="requester pays: your AWS account is billed for the bytes read",
        pixels="s3://usgs-landsat (requester pays, us-west-2)",
        aws_credentials=True,
    ),
    "usgs": StacPreset(
        "https://landsatlook.usgs.gov/stac-server",
        ("landsat-c2l2-sr", "landsat-c2l2-st"),
        account="AWS credentials (standard AWS chain)",
        cost="requester pays: your AWS account is billed for the bytes read",
        pixels="s3://usgs-landsat via alternate.s3 (landsatlook's https links need an EROS login)",
        aws_credentials=True,
    ),
}


def resolve_endpoint(config: Config) -> StacPreset:
    """The API URL and collections the config asks for (``search.url`` overrides the preset)."""
    s = config.search
    preset = PRESETS.get(s.preset) if s.preset else None
    if s.url is not None:
        if not s.url.startswith(("http://", "https://")):
            raise ConfigError(f"search.url must be an http(s) STAC API root, got {redact_url(s.url)!r}")
        collections = (s.collection,) if s.collection else (preset.collections if preset else ("landsat-c2-l2",))
        return StacPreset(s.url.rstrip("/"), collections)
    if preset is None:
        raise ConfigError("search.backend 'stac' needs search.preset or search.url")
    return replace(preset, collections=(s.collection,)) if s.collection else preset


def _retry(retries: int) -> Any:
    from urllib3.util.retry import Retry

    # POST /search is idempotent: retry it too (urllib3 skips POST by default)
    return Retry(
        total=retries,
        backoff_factor=0.5,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=None,
        raise_on_status=False,
    )


def search_stac(config: Config, aoi_geojson: dict[str, Any]) -> list[pystac.Item]:
    """Search a STAC API for Landsat C2 L2 items over the AOI and date range.

    Cloud cover is sent as a ``query`` only when the server declares the query extension; the
    caller re-applies every filter client-side anyway, since servers may ignore it silently.
    Every request is bounded by ``fetch.timeout_s`` (connect and each read) and retried
    ``fetch.retries`` times; the whole search (all pages) by ``search.timeout_total_s``.

    Raises
    ------
    RemoteError
        The API is unreachable, failed after ``fetch.retries`` retries, or the search took longer
        than ``search.timeout_total_s`` (the URL is named, without its userinfo).
    """
    endpoint = resolve_endpoint(config)
    shown = redact_url(endpoint.url)
    return call_within(
        lambda: _search(config, aoi_geojson, endpoint),
        config.search.timeout_total_s,
        f"the search of STAC API {shown}",
        "check the server, raise search.timeout_total_s, or narrow time.start/time.end",
    )


def _search(config: Config, aoi_geojson: dict[str, Any], endpoint: StacPreset) -> list[pystac.Item]:
    from pystac_client import Client
    from pystac_client.conformance import ConformanceClasses
    from pystac_client.exceptions import APIError
    from pystac_client.stac_api_io import StacApiIO
    from pystac_client.warnings import PystacClientWarning
    from requests.exceptions import RequestException

    shown = redact_url(endpoint.url)
    timeout = config.fetch.timeout_s
    io = StacApiIO(timeout=timeout, max_retries=_retry(config.fetch.retries))
    datetime_range = f"{config.time.start.isoformat()}T00:00:00Z/{config.time.end.isoformat()}T23:59:59Z"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PystacClientWarning)
            # Client.open(stac_io=io) calls io.update(timeout=timeout), which sets None when the
            # argument is left out (pystac-client 0.9): pass it, and set it again after opening
            client = Client.open(endpoint.url, stac_io=io, timeout=timeout)
            io.timeout = timeout
            params: dict[str, Any] = {
                "collections": list(endpoint.collections),
                "intersects": aoi_geojson,
                "datetime": datetime_range,
                "max_items": config.search.max_items,
                "limit": 100,
            }
            if client.conforms_to(ConformanceClasses.QUERY):
                params["query"] = {"eo:cloud_cover": {"lte": config.search.max_cloud}}
            search = client.search(**params)
            items = list(search.items())
    except (APIError, RequestException, pystac.STACError, OSError) as exc:
        detail = _short(exc)
        if "timed out" in detail.lower() or "timeout" in detail.lower():
            fix = (f"the server did not answer within fetch.timeout_s = {timeout:g} s; check that it is up, "
                   "or raise fetch.timeout_s")
        else:
            fix = "check the URL and your connection, or try another search.preset"
        raise RemoteError(
            f"STAC API {shown} failed after {config.fetch.retries} retries: {detail}; {fix}"
        ) from None
    except (KeyError, TypeError, ValueError, AttributeError, pystac.STACTypeError) as exc:
        # anything from a server is untrusted: an item that is not STAC stops here, named
        raise RemoteError(
            f"STAC API {shown} returned an invalid item ({type(exc).__name__}: {_short(exc)}); "
            "check search.url and search.collection"
        ) from None
    finally:
        io.session.close()
    log.info("STAC API %s returned %d item(s) from %s", shown, len(items), ", ".join(endpoint.collections))
    if config.search.url is None and config.search.preset == "usgs":
        prefer_s3_hrefs(items)
    return items


def prefer_s3_hrefs(items: list[pystac.Item]) -> list[pystac.Item]:
    """Point assets at their ``alternate.s3.href`` (landsatlook's https hrefs need an EROS login;
    the requester-pays ``s3://usgs-landsat`` copy does not). The https href stays as
    ``alternate.https``. Items are modified in place and returned."""
    for item in items:
        for asset in item.assets.values():
            alternate = asset.extra_fields.get("alternate")
            s3 = alternate.get("s3") if isinstance(alternate, dict) else None
            href = s3.get("href") if isinstance(s3, dict) else None
            if isinstance(href, str) and href.startswith("s3://") and isinstance(alternate, dict):
                alternate["https"] = {"href": asset.href}
                asset.href = href
    return items


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return redact_text(text[:300])

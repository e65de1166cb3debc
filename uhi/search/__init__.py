"""Find Landsat 4-9 C2 L2 scenes: one interface over the STAC, SageMaker geospatial and local backends."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from uhi.errors import NoDataError

if TYPE_CHECKING:
    import pystac

    from uhi.aoi import Aoi
    from uhi.config import Config

__all__ = ["search_scenes"]

log = logging.getLogger("uhi.search")


def search_scenes(config: Config, aoi: Aoi | None = None) -> pystac.ItemCollection:
    """Search the configured backend and return the selected scenes.

    Every backend's items get canonical asset keys and the ``uhi:level``, ``uhi:solar_day`` and
    ``uhi:scales`` properties; landsatlook's split SR/ST items are merged; then AOI overlap,
    dates, months, platforms, cloud cover and (for LST work) L2SP are re-applied client-side,
    and the reasons scenes were dropped are logged with counts and recorded in the collection's
    ``uhi:dropped`` field.

    Parameters
    ----------
    config
        The run configuration (sections city, time, search, fetch).
    aoi
        The area of interest; loaded from ``config.city`` when not given.

    Raises
    ------
    NoDataError
        No scene passed the filters (the message lists them; exit 3).
    ConfigError, RemoteError
        From the AOI or the backend.
    """
    import pystac

    from uhi.aoi import load_aoi
    from uhi.search.normalize import SceneFilter, canonicalize_item, filter_items, merge_split_items

    if aoi is None:
        aoi = load_aoi(config.city)
    backend = config.search.backend
    if backend == "stac":
        from uhi.search.stac import search_stac

        raw = search_stac(config, aoi.geojson())
        items = [canonicalize_item(item) for item in merge_split_items(raw)]
        from uhi.redact import redact_url

        where = redact_url(config.search.url) if config.search.url else config.search.preset
    elif backend == "sagemaker":
        from uhi.search.sagemaker import search_sagemaker

        items = [canonicalize_item(item) for item in search_sagemaker(config, aoi.geometry)]
        where = "SageMaker geospatial"
    else:
        from uhi.search.local import search_local

        assert config.search.path is not None  # the config validator guarantees it
        items = merge_split_items(search_local(config.search.path))
        where = str(config.search.path)
    scene_filter = SceneFilter.from_config(config, aoi.geometry)
    kept, dropped = filter_items(items, scene_filter)
    if not kept:
        why = "; ".join(f"{n} {reason}" for reason, n in sorted(dropped.items())) or "the search returned nothing"
        if not items and backend != "local":
            # the server filters by the AOI (intersects) and dates: nothing found means no scene
            # of the catalogue overlaps this AOI in those dates; clouds are not the reason
            w, s_, e, n = (round(v, 4) for v in aoi.bounds)
            raise NoDataError(
                f"{where} found no scene overlapping the AOI (lon {w}..{e}, lat {s_}..{n}) between "
                f"{config.time.start} and {config.time.end} (a server that filters clouds also applied "
                f"cloud <= {config.search.max_cloud:g} %); check city.aoi/city.bbox ([west, south, east, north] "
                "in degrees, longitude first) and the dates, or raise search.max_cloud"
            )
        if items and set(dropped) == {"no overlap"}:
            # every scene found misses the AOI: dates and clouds are not the problem
            raise NoDataError(
                f"the AOI overlaps none of the {len(items)} scene(s) from {where}; check city.aoi/city.bbox "
                "(longitude before latitude, degrees) and, for search.backend 'local', that search.path "
                "holds scenes of this city"
            )
        raise NoDataError(
            f"no Landsat scenes for the AOI from {where} with {scene_filter.describe()} "
            f"({len(items)} found, dropped: {why}); widen time.start/time.end or time.months, "
            "or raise search.max_cloud"
        )
    log.info("selected %d of %d scene(s) from %s", len(kept), len(items), where)
    return pystac.ItemCollection(kept, extra_fields={"uhi:dropped": dict(dropped)})

"""STAC backend: presets, URL override, and a server that answers with something that is not STAC."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from uhi.config import Config
from uhi.errors import ConfigError, RemoteError
from uhi.search import search_scenes
from uhi.search.stac import PRESETS, resolve_endpoint


def test_presets_and_url_override() -> None:
    cfg = Config.model_validate({"search": {"preset": "planetary-computer"}})
    assert resolve_endpoint(cfg) == PRESETS["planetary-computer"]
    cfg = Config.model_validate({"search": {"preset": "usgs"}})
    assert resolve_endpoint(cfg).collections == ("landsat-c2l2-sr", "landsat-c2l2-st")
    cfg = Config.model_validate({"search": {"url": "http://127.0.0.1:9/stac/", "collection": "mine"}})
    endpoint = resolve_endpoint(cfg)
    assert endpoint.url == "http://127.0.0.1:9/stac" and endpoint.collections == ("mine",)
    with pytest.raises(ConfigError, match="http"):
        resolve_endpoint(Config.model_validate({"search": {"url": "file:///etc"}}))


class _BadApi(BaseHTTPRequestHandler):
    body: dict[str, Any] = {}

    def log_message(self, *args: Any) -> None:
        pass

    def _json(self, obj: dict[str, Any]) -> None:
        data = json.dumps(obj).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        if self.path.startswith("/search"):
            self._json(self.body)
            return
        self._json({
            "type": "Catalog", "id": "bad", "description": "bad", "stac_version": "1.0.0",
            "conformsTo": ["https://api.stacspec.org/v1.0.0/core", "https://api.stacspec.org/v1.0.0/item-search"],
            "links": [{"rel": "self", "href": base + "/"}, {"rel": "root", "href": base + "/"},
                      {"rel": "search", "href": base + "/search", "method": "GET"},
                      {"rel": "search", "href": base + "/search", "method": "POST"}],
        })

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self._json(self.body)


@pytest.fixture()
def bad_api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _BadApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_item_that_is_not_stac_is_a_remote_error(bad_api: str) -> None:
    _BadApi.body = {"type": "FeatureCollection", "features": [{"type": "Feature", "id": "x", "properties": {}}],
                    "links": []}
    cfg = Config.model_validate({"city": {"bbox": [-3.1, 53.4, -3.0, 53.5]}, "search": {"url": bad_api},
                                 "fetch": {"retries": 0}})
    with pytest.raises(RemoteError) as err:
        search_scenes(cfg)
    assert bad_api in str(err.value) and "invalid item" in str(err.value)


def test_item_with_broken_footprint_is_dropped_not_crashing(bad_api: str) -> None:
    bowtie = [[-3.2, 53.3], [-2.9, 53.6], [-2.9, 53.3], [-3.2, 53.6], [-3.2, 53.3]]
    _BadApi.body = {"type": "FeatureCollection", "links": [], "features": [{
        "type": "Feature", "stac_version": "1.0.0", "id": "LC08_L2SP_204023_20200927_20201006_02_T1",
        "geometry": {"type": "Polygon", "coordinates": [bowtie]}, "bbox": [-3.2, 53.3, -2.9, 53.6],
        "properties": {"datetime": "2020-09-27T11:05:00Z", "eo:cloud_cover": 1.0},
        "assets": {"lwir11": {"href": "https://example.invalid/x_ST_B10.TIF"}}, "links": []}]}
    cfg = Config.model_validate({"city": {"bbox": [-3.1, 53.4, -3.0, 53.5]}, "search": {"url": bad_api},
                                 "time": {"start": "2020-01-01", "end": "2020-12-31", "months": [9]},
                                 "fetch": {"retries": 0}})
    # a self-intersecting footprint is repaired (buffer 0) before the overlap test
    collection = search_scenes(cfg)
    assert [i.id for i in collection] == ["LC08_L2SP_204023_20200927_20201006_02_T1"]


def test_landsatlook_assets_use_the_requester_pays_s3_copy() -> None:
    from pathlib import Path

    import pystac

    from uhi.search.stac import prefer_s3_hrefs

    path = Path(__file__).parents[1] / "data" / "stac" / "usgs-landsatlook" / "LC09_L2SP_092068_20230607_20230609_02_T1_SR.json"
    item = pystac.Item.from_file(str(path))
    https = item.assets["red"].href
    [out] = prefer_s3_hrefs([item])
    assert https.startswith("https://landsatlook.usgs.gov/")
    assert out.assets["red"].href == (
        "s3://usgs-landsat/collection02/level-2/standard/oli-tirs/2023/092/068/"
        "LC09_L2SP_092068_20230607_20230609_02_T1/LC09_L2SP_092068_20230607_20230609_02_T1_SR_B4.TIF"
    )
    assert out.assets["red"].extra_fields["alternate"]["https"]["href"] == https
    assert out.assets["index"].href.startswith("https://")  # no s3 alternate: unchanged

"""SageMaker geospatial backend: botocore Stubber (paging, filters, errors) and one real HTTP round trip."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from shapely.geometry import box

from uhi.config import Config
from uhi.errors import ConfigError, RemoteError
from uhi.search import search_scenes
from uhi.search.normalize import canonicalize_item
from uhi.search.sagemaker import (
    DEFAULT_LANDSAT_ARN,
    build_query,
    item_from_sagemaker,
    landsat_collection_arn,
    search_sagemaker,
)

DATA = Path(__file__).parents[1] / "data" / "sagemaker"
LANDSAT_ARN = "arn:aws:sagemaker-geospatial:us-west-2:378778860802:raster-data-collection/public/abc123landsat"
AOI = box(148.0, -43.5, 148.5, -43.0)  # inside the synthetic item's footprint (Tasmania)


def _synthetic() -> dict[str, Any]:
    return json.loads((DATA / "search_landsat_response_SYNTHETIC.json").read_text())


def _raw_item(i: int, day: int = 17, cloud: float = 10.0) -> dict[str, Any]:
    raw = copy.deepcopy(_synthetic()["Items"][0])
    raw["Id"] = f"LC09_L2SP_089090_202404{day:02d}_02_T1_{i}"
    raw["DateTime"] = dt.datetime(2024, 4, day, 23, 46, 20, tzinfo=dt.UTC)
    raw["Properties"]["EoCloudCover"] = cloud
    raw["Properties"]["LandsatCloudCoverLand"] = cloud
    return raw


def _config(**search: Any) -> Config:
    return Config.model_validate(
        {
            "city": {"name": "hobart", "bbox": list(AOI.bounds)},
            "time": {"start": "2024-04-01", "end": "2024-04-30", "months": [4]},
            "search": {"backend": "sagemaker", "max_cloud": 30, **search},
            "fetch": {"retries": 2, "timeout_s": 10},
        }
    )


@pytest.fixture()
def client(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return boto3.Session(region_name="us-west-2").client("sagemaker-geospatial")


def test_query_matches_the_botocore_model() -> None:
    query = build_query(_config(max_cloud_land=40, platforms=["landsat-9"]), AOI)
    ring = query["AreaOfInterest"]["AreaOfInterestGeometry"]["PolygonGeometry"]["Coordinates"][0]
    assert box(*AOI.bounds).equals(box(min(p[0] for p in ring), min(p[1] for p in ring),
                                       max(p[0] for p in ring), max(p[1] for p in ring)))
    props = query["PropertyFilters"]["Properties"]
    assert {"Property": {"EoCloudCover": {"LowerBound": 0.0, "UpperBound": 30.0}}} in props
    assert {"Property": {"LandsatCloudCoverLand": {"LowerBound": 0.0, "UpperBound": 40.0}}} in props
    assert {"Property": {"Platform": {"Value": "landsat-9", "ComparisonOperator": "EQUALS"}}} in props
    assert query["TimeRangeFilter"] == {
        "StartTime": dt.datetime(2024, 4, 1, tzinfo=dt.UTC),
        "EndTime": dt.datetime(2024, 4, 30, 23, 59, 59, tzinfo=dt.UTC),
    }
    # botocore validates the request against its service model: no ParamValidationError
    from botocore.validate import validate_parameters

    model = boto3.Session(region_name="us-west-2").client("sagemaker-geospatial").meta.service_model
    shape = model.operation_model("SearchRasterDataCollection").input_shape
    validate_parameters({"Arn": LANDSAT_ARN, "RasterDataCollectionQuery": query}, shape)


def test_multipolygon_aoi() -> None:
    from shapely.geometry import MultiPolygon

    multi = MultiPolygon([box(148.0, -43.5, 148.1, -43.4), box(148.3, -43.2, 148.4, -43.1)])
    query = build_query(_config(), multi)
    coords = query["AreaOfInterest"]["AreaOfInterestGeometry"]["MultiPolygonGeometry"]["Coordinates"]
    assert len(coords) == 2 and len(coords[0][0]) == 5


def test_paging_keeps_the_last_page_and_looks_up_the_arn(client: Any) -> None:
    cfg = _config()
    query = build_query(cfg, AOI)
    with Stubber(client) as stub:
        stub.add_response(
            "list_raster_data_collections",
            {"RasterDataCollectionSummaries": [
                {"Arn": "arn:aws:sagemaker-geospatial:us-west-2:1:raster-data-collection/public/s2", "Name": "Sentinel 2 L2A COGs",
                 "Description": "Sentinel-2a and Sentinel-2b imagery", "SupportedFilters": [], "Type": "PUBLIC"}],
             "NextToken": "p2"},
            {},
        )
        stub.add_response(
            "list_raster_data_collections",
            {"RasterDataCollectionSummaries": [
                {"Arn": LANDSAT_ARN, "Name": "Landsat Collection 2 Level-2 Science Products",
                 "Description": "Landsat 8/9 C2 L2", "SupportedFilters": [], "Type": "PUBLIC"}]},
            {"NextToken": "p2"},
        )
        pages = [[_raw_item(0), _raw_item(1)], [_raw_item(2)], [_raw_item(3), _raw_item(4)]]
        for n, page in enumerate(pages):
            response: dict[str, Any] = {"ApproximateResultCount": 5, "Items": page}
            expected: dict[str, Any] = {"Arn": LANDSAT_ARN, "RasterDataCollectionQuery": query}
            if n < len(pages) - 1:
                response["NextToken"] = f"t{n + 1}"
            if n > 0:
                expected["NextToken"] = f"t{n}"
            stub.add_response("search_raster_data_collection", response, expected)
        items = search_sagemaker(cfg, AOI, client_factory=lambda _cfg: client)
        stub.assert_no_pending_responses()
    assert [i.id for i in items] == [f"LC09_L2SP_089090_20240417_02_T1_{k}" for k in range(5)]


def test_access_denied_is_explained(client: Any) -> None:
    with Stubber(client) as stub:
        stub.add_client_error("search_raster_data_collection", service_error_code="AccessDeniedException",
                              service_message="User is not authorized", http_status_code=403)
        with pytest.raises(RemoteError) as err:
            search_sagemaker(_config(sagemaker={"collection_arn": LANDSAT_ARN}), AOI, client_factory=lambda _cfg: client)
    msg = str(err.value)
    assert "denied" in msg and "sagemaker-geospatial:SearchRasterDataCollection" in msg and "search.backend 'stac'" in msg


def test_validation_error_and_arn_fallback(client: Any) -> None:
    with Stubber(client) as stub:
        stub.add_client_error("list_raster_data_collections", service_error_code="AccessDeniedException", http_status_code=403)
        assert landsat_collection_arn(client) == DEFAULT_LANDSAT_ARN
        stub.add_client_error("search_raster_data_collection", service_error_code="ValidationException",
                              service_message="TimeRangeFilter is invalid", http_status_code=400)
        with pytest.raises(RemoteError, match="ValidationException: TimeRangeFilter is invalid"):
            search_sagemaker(_config(sagemaker={"collection_arn": LANDSAT_ARN}), AOI, client_factory=lambda _cfg: client)


@pytest.mark.parametrize("style", ["stac", "usgs", "short", "suffix-only"])
def test_asset_keys_become_canonical(style: str) -> None:
    raw = _raw_item(0)
    hrefs = {k: v["Href"] for k, v in raw["Assets"].items()}
    usgs_names = {k: re.search(r"_((?:SR|ST)_B\d+|QA_PIXEL|QA_RADSAT|SR_QA_AEROSOL)\.TIF$", h).group(1)
                  for k, h in hrefs.items()}
    if style == "usgs":  # SR_B4, ST_B10, QA_PIXEL
        raw["Assets"] = {usgs_names[k]: {"Href": h} for k, h in hrefs.items()}
    elif style == "short":  # B4, B10 (band numbers), QA_PIXEL
        raw["Assets"] = {re.sub(r"^S[RT]_(B\d+)$", r"\1", usgs_names[k]): {"Href": h} for k, h in hrefs.items()}
    elif style == "suffix-only":  # meaningless keys: only the file names tell
        raw["Assets"] = {f"asset{n}": {"Href": h} for n, h in enumerate(hrefs.values())}
    item = canonicalize_item(item_from_sagemaker(raw))
    for key in ("blue", "green", "red", "nir08", "swir16", "swir22", "lwir11", "qa_pixel"):
        assert item.assets[key].href == hrefs[key], (style, key)
    assert item.properties["eo:cloud_cover"] == raw["Properties"]["EoCloudCover"]
    assert item.properties["platform"] == "landsat-9"
    assert item.properties["uhi:level"] == "L2SP"


# OLI file band -> the TM/ETM+ file band of the same canonical key (LSDS-1618/1619 band designations)
_OLI_TO_TM = {"SR_B2": "SR_B1", "SR_B3": "SR_B2", "SR_B4": "SR_B3", "SR_B5": "SR_B4", "SR_B6": "SR_B5",
              "SR_B7": "SR_B7", "ST_B10": "ST_B6"}


@pytest.mark.parametrize("style", ["usgs", "short", "suffix-only"])
@pytest.mark.parametrize(("prefix", "platform"), [("LT05", "landsat-5"), ("LE07", "landsat-7")])
def test_tm_etm_asset_keys_become_canonical_by_their_own_numbering(style: str, prefix: str, platform: str) -> None:
    """A SageMaker item of a TM/ETM+ scene (files ..._SR_B1.TIF = blue, ..._ST_B6.TIF): read with
    OLI numbering, SR_B1 would be `coastal` and SR_B4 `red`."""
    raw = _raw_item(0)
    raw["Id"] = raw["Id"].replace("LC09", prefix)
    raw["Properties"]["Platform"] = platform
    hrefs: dict[str, str] = {}
    for key, asset in list(raw["Assets"].items()):
        band = re.search(r"_((?:SR|ST)_B\d+)\.TIF$", asset["Href"])
        if key == "coastal" or (band and band.group(1) not in _OLI_TO_TM):
            continue
        href = asset["Href"].replace("LC09", prefix)
        if band:
            href = href.replace(f"_{band.group(1)}.TIF", f"_{_OLI_TO_TM[band.group(1)]}.TIF")
        hrefs[key] = href
    names = {k: re.search(r"_((?:SR|ST)_B\d+|QA_PIXEL|QA_RADSAT|SR_QA_AEROSOL)\.TIF$", h).group(1)
             for k, h in hrefs.items()}
    if style == "usgs":
        raw["Assets"] = {names[k]: {"Href": h} for k, h in hrefs.items()}
    elif style == "short":
        raw["Assets"] = {re.sub(r"^S[RT]_(B\d+)$", r"\1", names[k]): {"Href": h} for k, h in hrefs.items()}
    else:
        raw["Assets"] = {f"asset{n}": {"Href": h} for n, h in enumerate(hrefs.values())}
    item = canonicalize_item(item_from_sagemaker(raw))
    for key in ("blue", "green", "red", "nir08", "swir16", "swir22", "lwir11", "qa_pixel"):
        assert item.assets[key].href == hrefs[key], (style, key)
    assert item.assets["blue"].href.endswith("_SR_B1.TIF") and item.assets["lwir11"].href.endswith("_ST_B6.TIF")
    assert "coastal" not in item.assets
    assert item.properties["platform"] == platform


# -- one round trip through botocore's real HTTP stack --------------------------------------------


class _FakeGeospatial(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]] = []
    fail_first_search = True

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # ListRasterDataCollections
        self.requests.append({"method": "GET", "path": self.path, "auth": self.headers.get("Authorization", "")})
        self._reply(200, {"RasterDataCollectionSummaries": [
            {"Arn": LANDSAT_ARN, "Name": "Landsat Collection 2 Level-2 Science Products", "Description": "landsat",
             "SupportedFilters": [], "Type": "PUBLIC"}]})

    def do_POST(self) -> None:  # SearchRasterDataCollection
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append({"method": "POST", "path": self.path, "body": body,
                              "auth": self.headers.get("Authorization", "")})
        if type(self).fail_first_search:
            type(self).fail_first_search = False
            self._reply(503, {"message": "slow down"})
            return
        items = [_raw_item(0, day=17, cloud=10.0), _raw_item(1, day=18, cloud=80.0)]
        for it in items:
            it["DateTime"] = it["DateTime"].timestamp()
        token = body.get("NextToken")
        if token is None:
            self._reply(200, {"ApproximateResultCount": 2, "Items": items[:1], "NextToken": "page2"})
        else:
            self._reply(200, {"ApproximateResultCount": 2, "Items": items[1:]})


def test_real_http_round_trip_with_endpoint_env(monkeypatch: pytest.MonkeyPatch) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeGeospatial)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _FakeGeospatial.requests = []
    _FakeGeospatial.fail_first_search = True
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_GEOSPATIAL", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFAKE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        collection = search_scenes(_config())
    finally:
        server.shutdown()
        server.server_close()
    # the second page's item is dropped client-side for cloud (80 > 30): the page was read
    assert [i.id for i in collection] == ["LC09_L2SP_089090_20240417_02_T1_0"]
    assert collection.extra_fields["uhi:dropped"] == {"cloud": 1}
    posts = [r for r in _FakeGeospatial.requests if r["method"] == "POST"]
    assert len(posts) == 3  # a 503, its retry, then page 2
    assert posts[0]["path"] == "/search-raster-data-collection"
    assert posts[1]["body"]["Arn"] == LANDSAT_ARN and posts[2]["body"]["NextToken"] == "page2"
    query = posts[1]["body"]["RasterDataCollectionQuery"]
    assert query["PropertyFilters"]["Properties"][0] == {"Property": {"EoCloudCover": {"LowerBound": 0.0, "UpperBound": 30.0}}}
    assert "PolygonGeometry" in query["AreaOfInterest"]["AreaOfInterestGeometry"]
    assert all(r["auth"].startswith("AWS4-HMAC-SHA256 Credential=AKIDFAKE/") for r in _FakeGeospatial.requests)
    assert "/us-west-2/sagemaker-geospatial/" in posts[0]["auth"]
    item = collection.items[0]
    assert item.assets["lwir11"].href.endswith("_ST_B10.TIF")
    assert item.properties["uhi:solar_day"] == "2024-04-18"


def test_unknown_profile_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    with pytest.raises(ConfigError, match="profile not found"):
        search_scenes(_config(sagemaker={"profile": "nobody-has-this"}))


# -- a misbehaving endpoint: repeated or endless NextTokens, broken footprints ---------------------


class _PagingGeospatial(BaseHTTPRequestHandler):
    """GET lists collections, POST searches; ``mode`` chooses how each pages."""

    mode = "repeat"
    gets = 0
    posts = 0

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        type(self).gets += 1
        if type(self).mode == "list-repeat":
            self._reply({"RasterDataCollectionSummaries": [], "NextToken": "again"})
            return
        self._reply({"RasterDataCollectionSummaries": [
            {"Arn": LANDSAT_ARN, "Name": "Landsat Collection 2 Level-2", "Description": "landsat",
             "SupportedFilters": [], "Type": "PUBLIC"}]})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        type(self).posts += 1
        if type(self).mode == "endless":
            self._reply({"Items": [], "NextToken": f"t{type(self).posts}"})
        elif type(self).mode == "degenerate":
            good, bad = _raw_item(0), _raw_item(1)
            bad["Geometry"]["Coordinates"] = [[[148.0, -43.0], [148.1, -43.1]]]  # a 2-point ring
            for it in (good, bad):
                it["DateTime"] = it["DateTime"].timestamp()
            self._reply({"Items": [good, bad]})
        elif type(self).mode == "no-id":
            raw = _raw_item(0)
            raw["DateTime"] = raw["DateTime"].timestamp()
            del raw["Id"]
            self._reply({"Items": [raw]})
        else:
            self._reply({"Items": [], "NextToken": "again"})


@pytest.fixture()
def paging_endpoint(monkeypatch: pytest.MonkeyPatch) -> Any:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PagingGeospatial)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _PagingGeospatial.gets = _PagingGeospatial.posts = 0
    env = {"AWS_ENDPOINT_URL_SAGEMAKER_GEOSPATIAL": f"http://127.0.0.1:{server.server_port}",
           "AWS_ACCESS_KEY_ID": "AKIDFAKE", "AWS_SECRET_ACCESS_KEY": "fake-secret",
           "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    yield server
    server.shutdown()
    server.server_close()


def test_repeated_next_token_exits_1_after_two_requests(paging_endpoint: Any, tmp_path: Path) -> None:
    import subprocess
    import sys

    _PagingGeospatial.mode = "repeat"
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"city: {{name: hobart, bbox: {list(AOI.bounds)}}}\n"
        "time: {start: 2024-04-01, end: 2024-04-30, months: [4]}\n"
        "search: {backend: sagemaker}\nfetch: {retries: 0, timeout_s: 5}\n"
    )
    r = subprocess.run([sys.executable, "-m", "uhi.cli.main", "fetch", str(cfg), "--workdir", str(tmp_path / "ws")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r.stderr
    assert "SearchRasterDataCollection" in r.stderr and "returned the NextToken 'again' twice" in r.stderr
    assert "Traceback" not in r.stderr
    # the first page, then the page asked for with 'again' that handed 'again' back
    assert (_PagingGeospatial.gets, _PagingGeospatial.posts) == (1, 2)


def test_repeated_token_while_listing_collections(paging_endpoint: Any) -> None:
    _PagingGeospatial.mode = "list-repeat"
    with pytest.raises(RemoteError, match="ListRasterDataCollections .* returned the NextToken 'again' twice"):
        search_sagemaker(_config(), AOI)
    assert _PagingGeospatial.gets == 2 and _PagingGeospatial.posts == 0


def test_endless_new_tokens_stop_at_the_page_cap(paging_endpoint: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import uhi.search.sagemaker as sm

    monkeypatch.setattr(sm, "MAX_SEARCH_PAGES", 7)
    _PagingGeospatial.mode = "endless"
    with pytest.raises(RemoteError, match="still paging after 7 pages"):
        search_sagemaker(_config(sagemaker={"collection_arn": LANDSAT_ARN}), AOI)
    assert _PagingGeospatial.posts == 7


def test_degenerate_footprint_is_dropped_as_invalid_geometry(paging_endpoint: Any) -> None:
    _PagingGeospatial.mode = "degenerate"
    collection = search_scenes(_config(sagemaker={"collection_arn": LANDSAT_ARN}))
    assert [i.id for i in collection] == ["LC09_L2SP_089090_20240417_02_T1_0"]
    assert collection.extra_fields["uhi:dropped"] == {"invalid geometry": 1}


def test_item_without_id_is_a_remote_error(paging_endpoint: Any) -> None:
    _PagingGeospatial.mode = "no-id"
    with pytest.raises(RemoteError, match="returned an invalid item \\(KeyError: 'Id'\\)"):
        search_sagemaker(_config(sagemaker={"collection_arn": LANDSAT_ARN}), AOI)


# -- uhi validate against the same real HTTP stack -------------------------------------------------


class _DeniedGeospatial(_FakeGeospatial):
    def do_GET(self) -> None:
        self.requests.append({"method": "GET", "path": self.path, "auth": self.headers.get("Authorization", "")})
        self.send_response(403)
        data = json.dumps({"message": "User is not authorized"}).encode()
        self.send_header("Content-Type", "application/json")
        self.send_header("x-amzn-ErrorType", "AccessDeniedException")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.mark.parametrize("handler", [_FakeGeospatial, _DeniedGeospatial])
def test_validate_calls_the_endpoint_with_credentials(monkeypatch: pytest.MonkeyPatch, handler: Any) -> None:
    from uhi.validate import validate_config

    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    handler.requests = []
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_GEOSPATIAL", f"http://127.0.0.1:{server.server_port}")
        monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(var, raising=False)
        monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
        # no credentials: a problem, and the endpoint is not called
        missing = validate_config(_config())
        assert missing.problems == [
            "search.backend 'sagemaker' needs AWS credentials (none found in the standard AWS chain); "
            "set AWS_PROFILE or search.sagemaker.profile"
        ]
        assert handler.requests == []
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFAKE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "fake-secret")
        result = validate_config(_config())
    finally:
        server.shutdown()
        server.server_close()
    # one signed ListRasterDataCollections request, never a search
    assert [r["method"] for r in handler.requests] == ["GET"]
    assert handler.requests[0]["auth"].startswith("AWS4-HMAC-SHA256 Credential=AKIDFAKE/")
    if handler is _FakeGeospatial:
        assert result.ok, result.problems
        assert result.checked[-1] == f"search: SageMaker geospatial at http://127.0.0.1:{server.server_port} answers"
    else:
        assert len(result.problems) == 1
        assert "refused ListRasterDataCollections (AccessDeniedException: User is not authorized)" in result.problems[0]

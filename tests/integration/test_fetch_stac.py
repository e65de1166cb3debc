"""Fetch through a real STAC API (rustac serve on 127.0.0.1) and COGs from a local HTTP range server."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from conftest import missing
from pyproj import Transformer
from rasterio.transform import Affine
from rasterio.windows import Window

from uhi.config import Config
from uhi.errors import RemoteError, UhiError
from uhi.raster.read import ReadOptions, resolve_href
from uhi.search import search_scenes
from uhi.stages.fetch import AssetTask, fetch_asset
from uhi.stages.runner import execute
from uhi.workspace import Workspace

DATA = Path(__file__).parents[1] / "data"
FULL = DATA / "landsat" / "fullbands-LC08-008059-cloudy81"
PRODUCT = "LC08_L2SP_008059_20191201_20200825_02_T1"
BAND_FILES = {
    "blue": "SR_B2", "green": "SR_B3", "red": "SR_B4", "nir08": "SR_B5", "swir16": "SR_B6",
    "swir22": "SR_B7", "lwir11": "ST_B10", "qa_pixel": "QA_PIXEL", "qa": "ST_QA",
}
RUSTAC = Path(sys.executable).with_name("rustac")
# scene-b's hrefs carry an Azure SAS token, its mtl.txt an S3 presigned query (both fake)
SAS_QUERY = "sv=2021-06-08&se=2099-01-01T00%3A00%3A00Z&sp=r&sr=b&sig=FAKESASSIGNATURE"
MTL_PRESIGNED = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDFAKE&X-Amz-Signature=deadbeefcafe"
TILES = 3  # the real 512 x 512 scene is tiled 3 x 3 into a 1536 x 1536 COG at 30 m
PIXEL_M = 30.0
TM_ITEM = "LT05_L2SP_010067_19860424_02_T2"
ETM_ITEM = "LE07_L2SP_021030_20100109_02_T1"


# -- a COG server that honours Range and counts what it serves ------------------------------------


@dataclass
class RangeLog:
    """Bytes and requests served per URL path; ``fail`` makes every request a 503."""

    bytes_by_path: Counter[str] = field(default_factory=Counter)
    requests_by_path: Counter[str] = field(default_factory=Counter)
    full_gets: Counter[str] = field(default_factory=Counter)
    headers: list[dict[str, str]] = field(default_factory=list)
    fail: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def reset(self) -> None:
        with self.lock:
            self.bytes_by_path.clear()
            self.requests_by_path.clear()
            self.full_gets.clear()
            self.headers.clear()


def range_handler(root: Path, log: RangeLog) -> type[SimpleHTTPRequestHandler]:
    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

        def _file(self) -> Path | None:
            p = Path(self.translate_path(self.path))
            return p if p.is_file() else None

        def do_HEAD(self) -> None:
            with log.lock:
                log.requests_by_path[self.path.split("?", 1)[0]] += 1
            if log.fail:
                self.send_error(503)
                return
            f = self._file()
            if f is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(f.stat().st_size))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            with log.lock:
                log.requests_by_path[path] += 1
                log.headers.append({"path": path, **{k.lower(): v for k, v in self.headers.items()}})
            if log.fail:
                self.send_error(503)
                return
            f = self._file()
            if f is None:
                self.send_error(404)
                return
            size = f.stat().st_size
            header = self.headers.get("Range")
            start, end = 0, size - 1
            if header:
                spec = header.removeprefix("bytes=")
                assert "," not in spec, f"multi-range request not expected: {header}"
                a, _, b = spec.partition("-")
                start, end = int(a), min(int(b) if b else size - 1, size - 1)
                if start >= size:
                    self.send_error(416)
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            else:
                with log.lock:
                    log.full_gets[path] += 1
                self.send_response(200)
            length = end - start + 1
            self.send_header("Content-Length", str(length))
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Type", "image/tiff")
            self.end_headers()
            with open(f, "rb") as fh:
                fh.seek(start)
                self.wfile.write(fh.read(length))
            with log.lock:
                log.bytes_by_path[path] += length

    return Handler


@dataclass
class Served:
    stac_url: str
    cog_url: str
    cog_root: Path
    log: RangeLog
    aoi_bbox: tuple[float, float, float, float]
    crs: str
    source_transform: Affine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _make_scene_cogs(folder: Path) -> tuple[str, Affine]:
    """Real DNs of the full-band scene, tiled 3 x 3 onto a 30 m grid, written as USGS-named COGs."""
    from rasterio.io import MemoryFile
    from rasterio.shutil import copy as rio_copy

    folder.mkdir(parents=True)
    crs, transform = "", Affine.identity()
    for _key, band in BAND_FILES.items():
        with rasterio.open(FULL / f"{PRODUCT}_{band}.TIF") as src:
            arr = np.tile(src.read(1), (TILES, TILES))
            crs = src.crs.to_string()
            transform = Affine(PIXEL_M, 0, src.transform.c, 0, -PIXEL_M, src.transform.f)
            nodata = src.nodata
        profile = {"driver": "GTiff", "height": arr.shape[0], "width": arr.shape[1], "count": 1,
                   "dtype": arr.dtype, "crs": crs, "transform": transform, "nodata": nodata}
        with MemoryFile() as mem:
            with mem.open(**profile) as dst:
                dst.write(arr, 1)
            with mem.open() as src:
                rio_copy(src, folder / f"{PRODUCT}_{band}.TIF", driver="COG", compress="deflate",
                         blocksize=256, overview_resampling="nearest")
    return crs, transform


def _item(template: dict[str, Any], item_id: str, when: str, cloud: float, level: str, base_url: str,
          crs: str, transform: Affine, size: int, keys: tuple[str, ...] = tuple(BAND_FILES),
          query: str = "") -> dict[str, Any]:
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    x0, y1 = transform.c, transform.f
    x1, y0 = x0 + size * transform.a, y1 + size * transform.e
    corners = [to_ll.transform(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0))]
    lons, lats = [c[0] for c in corners], [c[1] for c in corners]
    item = json.loads(json.dumps(template))
    item["id"] = item_id
    item["geometry"] = {"type": "Polygon", "coordinates": [[list(c) for c in corners]]}
    item["bbox"] = [min(lons), min(lats), max(lons), max(lats)]
    item["links"] = []
    props = item["properties"]
    props.update({"datetime": when, "eo:cloud_cover": cloud, "landsat:cloud_cover_land": cloud,
                  "landsat:correction": level, "platform": "landsat-8", "proj:epsg": int(crs.split(":")[1]),
                  "proj:shape": [size, size], "proj:transform": list(transform)[:6]})
    assets = {}
    for key in keys:
        asset = dict(template["assets"].get(key) or template["assets"]["red"])
        asset["href"] = f"{base_url}/{PRODUCT}_{BAND_FILES[key]}.TIF{query}"
        assets[key] = asset
    if query:
        # an asset uhi does not fetch, presigned the way S3 presigns: it must not be stored signed
        assets["mtl.txt"] = {"href": f"{base_url}/{PRODUCT}_MTL.txt?{MTL_PRESIGNED}", "type": "text/plain",
                             "roles": ["metadata"]}
    item["assets"] = assets
    return item


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    if not RUSTAC.exists():
        missing(f"rustac's server ({RUSTAC})", "pip install 'uhi-landsat[test]'")
    root = tmp_path_factory.mktemp("cogs")
    crs, transform = _make_scene_cogs(root / "master")
    # each item reads its own URL paths, so bytes are counted per scene
    for name in ("scene-a", "scene-b", "scene-evil"):
        (root / name).symlink_to(root / "master", target_is_directory=True)
    log = RangeLog()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), range_handler(root, log))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    cog_url = f"http://127.0.0.1:{httpd.server_port}"
    # GDAL keeps /vsicurl/ blocks for the life of the process; the tests count and break what
    # the server sends, so this server's files are read afresh on every open
    previous_non_cached = os.environ.get("CPL_VSIL_CURL_NON_CACHED")
    os.environ["CPL_VSIL_CURL_NON_CACHED"] = f"/vsicurl/{cog_url}"

    real = json.loads((DATA / "stac" / "planetary-computer" / "landsat-c2-l2-items-stackstac.json").read_text())
    template = next(i for i in real if i["id"] == "LC09_L2SP_089084_20231008_02_T1")
    size = 512 * TILES
    items = [
        _item(template, "LC08_L2SP_008059_20190710_20200825_02_T1", "2019-07-10T15:20:00Z", 5.0, "L2SP",
              f"{cog_url}/scene-a", crs, transform, size),
        _item(template, "LC08_L2SP_008059_20190811_20200825_02_T1", "2019-08-11T15:20:00Z", 12.0, "L2SP",
              f"{cog_url}/scene-b", crs, transform, size, query=f"?{SAS_QUERY}"),
        _item(template, "../../evil id\u00e9", "2019-08-27T15:20:00Z", 1.0, "L2SP",
              f"{cog_url}/scene-evil", crs, transform, size),
        _item(template, "LC08_L2SP_008059_20190726_20200825_02_T1", "2019-07-26T15:20:00Z", 90.0, "L2SP",
              f"{cog_url}/scene-a", crs, transform, size),
        _item(template, "LC08_L2SR_008059_20190603_20200825_02_T1", "2019-06-03T15:20:00Z", 3.0, "L2SR",
              f"{cog_url}/scene-a", crs, transform, size, keys=("blue", "green", "red", "nir08", "swir16", "swir22", "qa_pixel")),
        _item(template, "LC08_L2SP_008059_20191201_20200825_02_T1", "2019-12-01T15:20:00Z", 2.0, "L2SP",
              f"{cog_url}/scene-a", crs, transform, size),
    ]
    # real Landsat 5 (TM) and 7 (ETM+) items of the landsat-c2-l2 collection, moved over the scene
    # and re-dated: the default platforms (8, 9) drop the L7 one; `all` keeps both
    for name, when in ((TM_ITEM, "2011-07-12T15:20:00Z"), (ETM_ITEM, "2019-07-18T15:20:00Z")):
        old = json.loads((DATA / "stac" / "stactools-examples" / f"{name}.json").read_text())
        moved = _item(template, name, when, 4.0, "L2SP", "", crs, transform, size)
        old.update({"geometry": moved["geometry"], "bbox": moved["bbox"], "links": []})
        old["properties"]["datetime"] = when
        old["properties"]["eo:cloud_cover"] = 4.0
        for asset in old["assets"].values():
            asset["href"] = f"{cog_url}/scene-old/{asset['href'].rsplit('/', 1)[-1]}"  # never read
        items.append(old)
    ndjson = root / "items.ndjson"
    ndjson.write_text("\n".join(json.dumps(i) for i in [*items, *real]) + "\n")
    port = _free_port()
    proc = subprocess.Popen([str(RUSTAC), "serve", "--create-collections", "-a", f"127.0.0.1:{port}", str(ndjson)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stac_url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            urllib.request.urlopen(f"{stac_url}/collections", timeout=1).read()
            break
        except OSError:
            if time.time() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail(f"rustac serve did not start: {proc.stderr.read().decode() if proc.stderr else ''}")
            time.sleep(0.1)
    # a ~2 km AOI near the middle of the scene (pixel row/col ~700)
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    cx, cy = transform @ (700, 700)
    w, s = to_ll.transform(cx - 1000, cy - 1000)
    e, n = to_ll.transform(cx + 1000, cy + 1000)
    try:
        yield Served(stac_url, cog_url, root, log, (w, s, e, n), crs, transform)
    finally:
        if previous_non_cached is None:
            os.environ.pop("CPL_VSIL_CURL_NON_CACHED", None)
        else:
            os.environ["CPL_VSIL_CURL_NON_CACHED"] = previous_non_cached
        proc.terminate()
        proc.wait(timeout=10)
        httpd.shutdown()
        httpd.server_close()


def _config(served: Served, ws: Path, **over: Any) -> Config:
    data: dict[str, Any] = {
        "city": {"name": "testcity", "bbox": list(served.aoi_bbox)},
        "time": {"start": "2019-01-01", "end": "2019-12-31", "months": [6, 7, 8]},
        "search": {"backend": "stac", "url": served.stac_url, "collection": "landsat-c2-l2", "max_cloud": 20},
        "fetch": {"retries": 1, "timeout_s": 10, "workers": 4, "margin_m": 300},
        "workdir": str(ws),
    }
    for section, values in over.items():
        data.setdefault(section, {}).update(values)
    return Config.model_validate(data)


def _run_fetch(cfg: Config) -> tuple[Workspace, Any]:
    from uhi.stages.fetch import SPEC

    ws = Workspace(cfg.resolved_workdir())
    with ws.locked():
        outcome = execute(SPEC, cfg, ws, force=True)
    return ws, outcome


SELECTED = {"LC08_L2SP_008059_20190710_20200825_02_T1", "LC08_L2SP_008059_20190811_20200825_02_T1", "../../evil id\u00e9"}


def test_search_selects_and_logs_why_scenes_were_dropped(served: Served, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="uhi")
    collection = search_scenes(_config(served, tmp_path / "ws"))
    assert {i.id for i in collection} == SELECTED
    # rustac declares no query extension: cloud, L2SR and months are all client-side here
    assert collection.extra_fields["uhi:dropped"] == {"cloud": 1, "L2SR (no thermal)": 1, "months": 1, "platform": 1}
    text = caplog.text
    assert "dropped 1 scene(s): cloud (LC08_L2SP_008059_20190726" in text
    assert "dropped 1 scene(s): L2SR (no thermal)" in text and "dropped 1 scene(s): months" in text
    # the real Planetary Computer items in the same API are elsewhere: the server's intersects dropped them
    assert all(i.properties["uhi:level"] == "L2SP" for i in collection)


def test_search_filters_platforms_and_reads_tm_etm_items(served: Served, tmp_path: Path) -> None:
    """Real L5/L7 items served by rustac: `platforms` selects them, and their TM/ETM+ assets
    (`lwir` = ST_B6, SR_B1 = blue) come out under the same canonical keys as an L8 item's."""
    only7 = search_scenes(_config(served, tmp_path / "a", search={"platforms": ["landsat-7"]}))
    assert [i.id for i in only7] == [ETM_ITEM]
    assert only7.extra_fields["uhi:dropped"]["platform"] == 5  # every L8 item of June-August
    every = search_scenes(_config(served, tmp_path / "b", search={"platforms": "all"},
                                  time={"start": "2011-01-01", "end": "2019-12-31"}))
    ids = {i.id for i in every}
    assert {TM_ITEM, ETM_ITEM} <= ids and SELECTED <= ids
    l8 = next(i for i in every if i.id == "LC08_L2SP_008059_20190710_20200825_02_T1")
    for item in (i for i in every if i.id in (TM_ITEM, ETM_ITEM)):
        assert {"blue", "green", "red", "nir08", "swir16", "swir22", "lwir11", "qa_pixel", "qa"} <= set(item.assets)
        assert item.assets["lwir11"].href.endswith("_ST_B6.TIF")
        assert item.assets["blue"].href.endswith("_SR_B1.TIF")
        assert item.assets["nir08"].href.endswith("_SR_B4.TIF")
    assert l8.assets["blue"].href.endswith("_SR_B2.TIF")


def test_fetch_reads_only_the_window_and_writes_exact_pixels(served: Served, tmp_path: Path) -> None:
    served.log.reset()
    cfg = _config(served, tmp_path / "ws")
    ws, outcome = _run_fetch(cfg)
    assert outcome.summary["scenes"] == 3 and outcome.summary["assets_fetched"] == 27

    # 1. only a small fraction of each COG went over the wire, and never a whole-file GET
    for key, band in BAND_FILES.items():
        path = f"/scene-a/{PRODUCT}_{band}.TIF"
        size = (served.cog_root / "master" / f"{PRODUCT}_{band}.TIF").stat().st_size
        served_bytes = served.log.bytes_by_path[path]
        assert 0 < served_bytes < 0.25 * size, (key, served_bytes, size)
    assert not served.log.full_gets

    # 2. each clip holds exactly the source pixels under it (same grid, no resampling)
    index = json.loads(ws.scenes_index.read_text())
    assert {f["id"] for f in index["features"]} == SELECTED
    feature = next(f for f in index["features"] if f["id"] == "LC08_L2SP_008059_20190710_20200825_02_T1")
    to_crs = Transformer.from_crs("EPSG:4326", served.crs, always_xy=True)
    w, s, e, n = served.aoi_bbox
    xs, ys = zip(*[to_crs.transform(x, y) for x, y in ((w, s), (e, s), (e, n), (w, n))], strict=True)
    for key, band in BAND_FILES.items():
        rel = feature["assets"][key]["href"]
        assert rel == f"scenes/LC08_L2SP_008059_20190710_20200825_02_T1/{key}.tif"
        clip_path = ws.stage_dir("fetch") / rel
        assert clip_path == ws.scene_asset(feature["id"], key)
        with rasterio.open(clip_path) as clip, rasterio.open(served.cog_root / "master" / f"{PRODUCT}_{band}.TIF") as src:
            assert clip.crs == src.crs and clip.dtypes == src.dtypes
            # a plain tiled ZSTD GeoTIFF (docs/fetch.md): 256 px tiles, lossless, no overviews
            assert clip.profile["tiled"] and clip.block_shapes == [(256, 256)]
            assert clip.profile["compress"] == "zstd" and clip.overviews(1) == []
            # the source's nodata; QA_PIXEL declares none and gets the USGS fill, DN 1
            assert clip.nodata == (src.nodata if src.nodata is not None else 1)
            # pixel-aligned: the clip origin lies on the source grid
            col0 = (clip.transform.c - src.transform.c) / PIXEL_M
            row0 = (src.transform.f - clip.transform.f) / PIXEL_M
            assert col0 == int(col0) and row0 == int(row0)
            col0, row0 = int(col0), int(row0)
            full = src.read(1)
            assert np.array_equal(clip.read(1), full[row0:row0 + clip.height, col0:col0 + clip.width])
            # and the same window read by GDAL from the source, dtype and all
            window = src.read(1, window=Window(col0, row0, clip.width, clip.height))
            assert clip.read(1).dtype == window.dtype and np.array_equal(clip.read(1), window)
            # covers the AOI plus the 300 m margin, and at most one pixel more on each side
            left, bottom, right, top = clip.bounds
            assert left <= min(xs) - 300 < left + PIXEL_M and right - PIXEL_M < max(xs) + 300 <= right
            assert bottom <= min(ys) - 300 < bottom + PIXEL_M and top - PIXEL_M < max(ys) + 300 <= top
    props = feature["properties"]
    assert props["uhi:level"] == "L2SP" and props["uhi:solar_day"] == "2019-07-10"
    assert props["uhi:scales"]["lwir11"] == [0.00341802, 149.0, 0]
    assert feature["assets"]["red"]["alternate"]["source"]["href"].endswith("/scene-a/" + PRODUCT + "_SR_B4.TIF")

    # 3. the malicious id stays inside the workspace, under a sanitised folder name
    evil = next(f for f in index["features"] if f["id"] == "../../evil id\u00e9")
    evil_clip = (ws.stage_dir("fetch") / evil["assets"]["red"]["href"]).resolve()
    assert ws.stage_dir("fetch") / "scenes" in evil_clip.parents and evil_clip.is_file()
    assert ".." not in evil["assets"]["red"]["href"].split("/")
    assert not any("evil" in p.name for p in tmp_path.iterdir())
    assert not list(tmp_path.parent.glob("evil*"))

    # 4. a second run fetches nothing: every finished file is reused
    served.log.reset()
    ws, outcome = _run_fetch(cfg)
    assert outcome.summary["assets_reused"] == 27 and outcome.summary["assets_fetched"] == 0
    assert sum(served.log.bytes_by_path.values()) == 0


def test_truncated_clip_is_fetched_again(served: Served, tmp_path: Path) -> None:
    cfg = _config(served, tmp_path / "ws")
    ws, _ = _run_fetch(cfg)
    scene = "LC08_L2SP_008059_20190811_20200825_02_T1"
    red = ws.scene_asset(scene, "red")
    with rasterio.open(red) as clip:
        before = clip.read(1)
    red.write_bytes(red.read_bytes()[: red.stat().st_size // 2])
    served.log.reset()
    ws, outcome = _run_fetch(cfg)
    assert outcome.summary["assets_fetched"] == 1 and outcome.summary["assets_reused"] == 26
    assert set(served.log.bytes_by_path) == {f"/scene-b/{PRODUCT}_SR_B4.TIF"}
    with rasterio.open(red) as clip:
        assert np.array_equal(clip.read(1), before)


def test_remote_catalog_cannot_read_local_files(tmp_path: Path) -> None:
    local_tif = FULL / f"{PRODUCT}_SR_B4.TIF"
    from shapely.geometry import box

    target = tmp_path / "ws" / "fetch" / "scenes" / "x" / "red.tif"
    for href in (str(local_tif), local_tif.as_uri(), f"/vsizip/{local_tif}"):
        task = AssetTask("x", "red", href, str(target), box(-75.5, 1.0, -75.4, 1.1).wkb, 0.0,
                         ReadOptions(retries=0, allow_local=False))
        with pytest.raises(UhiError, match="refusing"):
            fetch_asset(task)
        assert not target.exists()
    with pytest.raises(UhiError, match="unsupported asset href scheme"):
        resolve_href("ftp://example.org/x.tif", ReadOptions())


def test_stac_server_down_retries_then_names_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    cfg = Config.model_validate({
        "city": {"bbox": [-75.5, 1.0, -75.4, 1.1]},
        "search": {"backend": "stac", "url": url},
        "fetch": {"retries": 1, "timeout_s": 2},
    })
    with pytest.raises(RemoteError) as err:
        search_scenes(cfg)
    assert url in str(err.value) and "after 1 retries" in str(err.value)
    yaml_cfg = tmp_path / "c.yaml"
    yaml_cfg.write_text(
        f"city: {{name: down, bbox: [-75.5, 1.0, -75.4, 1.1]}}\nsearch: {{backend: stac, url: '{url}'}}\n"
        "fetch: {retries: 1, timeout_s: 2}\n"
    )
    r = subprocess.run([sys.executable, "-m", "uhi.cli.main", "fetch", str(yaml_cfg), "--workdir", str(tmp_path / "ws")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and url in r.stderr and "Traceback" not in r.stderr


def test_cog_server_down_retries_then_names_the_cog_url(served: Served, tmp_path: Path) -> None:
    cfg = _config(served, tmp_path / "ws", fetch={"workers": 1})
    served.log.reset()
    served.log.fail = True
    try:
        with pytest.raises(RemoteError) as err:
            _run_fetch(cfg)
    finally:
        served.log.fail = False
    msg = str(err.value)
    assert msg.startswith(f"cannot read {served.cog_url}/scene-") and "after 1 retries" in msg
    # our retry on top of GDAL's own: the same URL was asked for more than once
    assert max(served.log.requests_by_path.values()) >= 2


def test_empty_result_exits_3_with_the_filters(served: Served, tmp_path: Path) -> None:
    yaml_cfg = tmp_path / "c.yaml"
    w, s, e, n = served.aoi_bbox
    yaml_cfg.write_text(
        f"city: {{name: empty, bbox: [{w}, {s}, {e}, {n}]}}\n"
        "time: {start: 2019-01-01, end: 2019-12-31, months: [1, 2]}\n"
        f"search: {{backend: stac, url: '{served.stac_url}', collection: landsat-c2-l2, max_cloud: 20}}\n"
    )
    r = subprocess.run([sys.executable, "-m", "uhi.cli.main", "fetch", str(yaml_cfg), "--workdir", str(tmp_path / "ws")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    assert "no Landsat scenes for the AOI" in r.stderr and "months 1,2" in r.stderr and "cloud <= 20 %" in r.stderr
    assert "7 months" in r.stderr  # the seven nearby 2019 items (six L8, one L7) were all outside January-February


def test_planetary_computer_hrefs_are_signed_at_read_time(monkeypatch: pytest.MonkeyPatch) -> None:
    from planetary_computer import sas, settings

    calls: list[str] = []

    class TokenHandler(SimpleHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            calls.append(self.path)
            body = json.dumps({"msft:expiry": "2099-01-01T00:00:00Z", "token": "sv=2021&sig=FAKE"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), TokenHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("PC_SDK_SAS_URL", f"http://127.0.0.1:{httpd.server_port}/api/sas/v1/token")
        settings.Settings.get.cache_clear()
        sas.TOKEN_CACHE.clear()
        href = ("https://landsateuwest.blob.core.windows.net/landsat-c2/level-2/standard/oli-tirs/2023/089/084/"
                "LC09_L2SP_089084_20231008_20231009_02_T1/LC09_L2SP_089084_20231008_20231009_02_T1_SR_B4.TIF")
        signed = resolve_href(href, ReadOptions())
    finally:
        httpd.shutdown()
        httpd.server_close()
        settings.Settings.get.cache_clear()
        sas.TOKEN_CACHE.clear()
    assert signed == f"{href}?sv=2021&sig=FAKE"
    assert calls == ["/api/sas/v1/token/landsateuwest/landsat-c2"]
    # an already signed href is left alone
    assert resolve_href(signed, ReadOptions()) == signed


def test_s3_hrefs_pass_through_for_requester_pays() -> None:
    from uhi.raster.read import gdal_env_options

    href = "s3://usgs-landsat/collection02/level-2/standard/oli-tirs/2024/089/090/x/x_SR_B4.TIF"
    assert resolve_href(href, ReadOptions()) == href
    opts = gdal_env_options(ReadOptions(retries=2, timeout_s=30))
    assert opts["AWS_REQUEST_PAYER"] == "requester" and opts["GDAL_HTTP_MAX_RETRY"] == "2"
    assert opts["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    assert os.environ.get("AWS_REQUEST_PAYER") is None  # set per read, never process-wide


def test_s3_reads_are_signed_ranged_and_requester_pays(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    """GDAL's /vsis3/ against the range server standing in for S3 (path-style, plain HTTP)."""
    from shapely.geometry import box

    from uhi.raster.read import read_clip

    key_dir = served.cog_root / "usgs-landsat" / "collection02" / "level-2"
    if not key_dir.exists():
        key_dir.parent.mkdir(parents=True)
        key_dir.symlink_to(served.cog_root / "master", target_is_directory=True)
    host = served.cog_url.removeprefix("http://")
    for name, value in {"AWS_S3_ENDPOINT": host, "AWS_HTTPS": "NO", "AWS_VIRTUAL_HOSTING": "FALSE",
                        "AWS_ACCESS_KEY_ID": "AKIDFAKE", "AWS_SECRET_ACCESS_KEY": "fake-secret",
                        "AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    served.log.reset()
    href = f"s3://usgs-landsat/collection02/level-2/{PRODUCT}_SR_B4.TIF"
    clip = read_clip(href, box(*served.aoi_bbox), 300.0, ReadOptions(retries=0))
    assert clip is not None
    with rasterio.open(served.cog_root / "master" / f"{PRODUCT}_SR_B4.TIF") as src:
        col, row, width, height = clip.window
        assert np.array_equal(clip.data[0], src.read(1)[row:row + height, col:col + width])
    gets = [h for h in served.log.headers if h["path"] == f"/usgs-landsat/collection02/level-2/{PRODUCT}_SR_B4.TIF"]
    assert gets and all(h["x-amz-request-payer"] == "requester" for h in gets)
    assert all(h["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDFAKE/") for h in gets)
    assert all("/us-west-2/s3/aws4_request" in h["authorization"] for h in gets)
    assert all(h.get("range", "").startswith("bytes=") for h in gets)


def test_no_secret_reaches_stderr_or_the_workspace(served: Served, tmp_path: Path) -> None:
    """Userinfo in search.url and signed hrefs: redacted in the log, absent from every file written."""
    password = "s3cretPW-7f3a"
    w, s, e, n = served.aoi_bbox
    secret_url = served.stac_url.replace("http://", f"http://bob:{password}@")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"city: {{name: secret, bbox: [{w}, {s}, {e}, {n}]}}\n"
        "time: {start: 2019-01-01, end: 2019-12-31, months: [6, 7, 8]}\n"
        f"search: {{backend: stac, url: '{secret_url}', collection: landsat-c2-l2, max_cloud: 20}}\n"
        "fetch: {retries: 1, timeout_s: 10}\n"
    )
    ws_dir = tmp_path / "ws"
    r = subprocess.run([sys.executable, "-m", "uhi.cli.main", "-v", "fetch", str(cfg), "--workdir", str(ws_dir)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert password not in r.stderr and "FAKESASSIGNATURE" not in r.stderr
    assert "http://***@127.0.0.1" in r.stderr  # the log names the API, without the password
    written = [p for p in ws_dir.rglob("*") if p.is_file()]
    assert len(written) > 27  # the clips, scenes.geojson, manifest.json
    for path in written:
        blob = path.read_bytes()
        for secret in (password, "FAKESASSIGNATURE", "deadbeefcafe", "AKIDFAKE"):
            assert secret.encode() not in blob, (path, secret)
    text = (ws_dir / "fetch" / "scenes.geojson").read_text()
    for query in ("sig=", "se=", "X-Amz-Signature", "?"):
        assert query not in text, query
    index = json.loads(text)
    scene_b = next(f for f in index["features"] if f["id"] == "LC08_L2SP_008059_20190811_20200825_02_T1")
    assert scene_b["assets"]["mtl.txt"]["href"] == f"{served.cog_url}/scene-b/{PRODUCT}_MTL.txt"
    assert scene_b["assets"]["red"]["alternate"]["source"]["href"] == f"{served.cog_url}/scene-b/{PRODUCT}_SR_B4.TIF"

    # a failing read names the signed COG without its signature
    bad = cfg.read_text().replace(secret_url, served.stac_url)
    cfg.write_text(bad + "workdir: " + str(tmp_path / "ws2") + "\n")
    served.log.fail = True
    try:
        r = subprocess.run([sys.executable, "-m", "uhi.cli.main", "fetch", str(cfg)],
                           capture_output=True, text=True, timeout=120)
    finally:
        served.log.fail = False
    assert r.returncode == 1 and "cannot read" in r.stderr, r.stderr
    assert "FAKESASSIGNATURE" not in r.stderr and "deadbeefcafe" not in r.stderr


# -- check before you run: fetch --dry-run and validate against the same servers -------------------


def _yaml(served: Served, path: Path, extra: str = "", collection: str = "landsat-c2-l2") -> Path:
    w, s, e, n = served.aoi_bbox
    path.write_text(
        f"city: {{name: dry, bbox: [{w}, {s}, {e}, {n}]}}\n"
        "time: {start: 2019-01-01, end: 2019-12-31, months: [6, 7, 8]}\n"
        f"search: {{backend: stac, url: '{served.stac_url}', collection: {collection}, max_cloud: 20}}\n"
        "fetch: {retries: 1, timeout_s: 10, margin_m: 300}\n" + extra
    )
    return path


def _uhi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "uhi.cli.main", *args], capture_output=True, text=True, timeout=120)


def test_dry_run_reads_no_pixel_and_estimates_the_windows(served: Served, tmp_path: Path) -> None:
    served.log.reset()
    cfg_path = _yaml(served, tmp_path / "c.yaml")
    r = _uhi("fetch", str(cfg_path), "--workdir", str(tmp_path / "ws"), "--dry-run", "--json")
    assert r.returncode == 0, r.stderr
    # not one request reached the COG server: no header, no tile, no HEAD
    assert sum(served.log.requests_by_path.values()) == 0 and sum(served.log.bytes_by_path.values()) == 0
    assert not (tmp_path / "ws").exists()  # nothing written
    plan = json.loads(r.stdout)
    assert {s["id"] for s in plan["kept"]} == SELECTED
    assert plan["dropped"] == {"cloud": 1, "L2SR (no thermal)": 1, "months": 1, "platform": 1}
    assert plan["found"] == 7 and plan["assets"] == 27 and plan["assets_unknown_size"] == 0
    # the estimate equals the windows the real fetch then reads: 2 bytes per pixel (uint16/int16)
    ws, _ = _run_fetch(_config(served, tmp_path / "ws2"))
    fetched = 0
    for scene in plan["kept"]:
        for key in BAND_FILES:
            with rasterio.open(ws.scene_asset(scene["id"], key)) as clip:
                fetched += clip.width * clip.height * 2
    assert plan["bytes"] == fetched
    text = _uhi("fetch", str(cfg_path), "--dry-run")
    assert text.returncode == 0 and "scenes: 7 found, 3 kept" in text.stdout and "dropped 1: cloud" in text.stdout


def test_aoi_that_overlaps_no_scene_says_so(served: Served, tmp_path: Path) -> None:
    cfg = tmp_path / "far.yaml"
    cfg.write_text(
        "city: {name: far, bbox: [10.0, 45.0, 10.05, 45.05]}\n"  # northern Italy: no scene of this catalogue
        "time: {start: 2019-01-01, end: 2019-12-31}\n"
        f"search: {{backend: stac, url: '{served.stac_url}', collection: landsat-c2-l2}}\n"
    )
    r = _uhi("fetch", str(cfg), "--dry-run")
    assert r.returncode == 3
    assert "found no scene overlapping the AOI (lon 10.0..10.05, lat 45.0..45.05)" in r.stderr
    assert "check city.aoi/city.bbox" in r.stderr


def test_validate_against_the_stac_server(served: Served, tmp_path: Path) -> None:
    good = _yaml(served, tmp_path / "good.yaml")
    r = _uhi("validate", str(good))
    assert r.returncode == 0, r.stderr
    assert f"ok: search: STAC API {served.stac_url} answers, collection(s) landsat-c2-l2" in r.stdout
    served.log.reset()
    # three independent problems: all are listed, not only the first
    (tmp_path / "zones.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"district": "a"},
         "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}}]}))
    bad = _yaml(served, tmp_path / "bad.yaml", collection="no-such-collection",
                extra=f"buildings: {{path: {tmp_path / 'missing.gpkg'}, zones_path: {tmp_path / 'zones.geojson'}}}\n")
    r = _uhi("validate", str(bad), "--json")
    assert r.returncode == 2
    report = json.loads(r.stdout)
    assert not report["ok"] and len(report["problems"]) == 3, report
    joined = "\n".join(report["problems"])
    assert "buildings.path not found" in joined and "missing.gpkg" in joined
    assert "has no column 'zone'; set buildings.zone_col to one of: district" in joined
    assert "has no collection 'no-such-collection'" in joined
    assert sum(served.log.requests_by_path.values()) == 0  # validate reads no pixel either


def test_validate_offline_does_not_contact_the_server(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens here
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"city: {{bbox: [-75.5, 1.0, -75.4, 1.1]}}\nsearch: {{backend: stac, url: '{url}'}}\nfetch: {{timeout_s: 2}}\n")
    assert _uhi("validate", str(cfg), "--offline").returncode == 0
    r = _uhi("validate", str(cfg))
    assert r.returncode == 2 and f"STAC API {url} is not reachable" in r.stderr

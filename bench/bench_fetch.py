"""Bench `uhi fetch`: AOI-window range reads over HTTP versus downloading whole files.

Rows (JSON lines, see bench/run.py):
- the demo city's scenes served by a local HTTP range server and searched through `rustac serve`:
  seconds and bytes of the fetch stage versus GETting every needed file whole;
- one Landsat-sized COG (7680 x 7680 px, real DNs tiled): a 4 km AOI window versus the whole file.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FULL_BAND = ROOT / "tests" / "data" / "landsat" / "fullbands-LC08-008059-cloudy81"
PRODUCT = "LC08_L2SP_008059_20191201_20200825_02_T1"


def _range_server(root: Path) -> tuple[ThreadingHTTPServer, Counter[str]]:
    """A static file server that honours single Range requests and counts the bytes it sends."""
    served: Counter[str] = Counter()
    lock = threading.Lock()

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            f = Path(self.translate_path(self.path))
            if not f.is_file():
                self.send_error(404)
                return
            size = f.stat().st_size
            start, end = 0, size - 1
            header = self.headers.get("Range")
            if header:
                a, _, b = header.removeprefix("bytes=").partition("-")
                start, end = int(a), min(int(b) if b else size - 1, size - 1)
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            else:
                self.send_response(200)
            self.send_header("Content-Length", str(end - start + 1))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            with open(f, "rb") as fh:
                fh.seek(start)
                self.wfile.write(fh.read(end - start + 1))
            with lock:
                served["bytes"] += end - start + 1
                served["requests"] += 1

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd, served


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _whole_get(urls: list[str]) -> tuple[float, int]:
    t0 = time.perf_counter()
    total = 0
    for url in urls:
        with urllib.request.urlopen(url) as resp:
            total += len(resp.read())
    return time.perf_counter() - t0, total


def bench_demo(tmp: Path) -> list[dict[str, Any]]:
    from uhi.config import load_config
    from uhi.demo import DemoSpec, write_demo
    from uhi.search.local import items_from_catalog
    from uhi.stages.fetch import SPEC
    from uhi.stages.runner import execute
    from uhi.workspace import Workspace

    demo = tmp / "demo"
    write_demo(demo, DemoSpec(), threads=2)
    httpd, served = _range_server(demo)
    base = f"http://127.0.0.1:{httpd.server_port}"
    items = items_from_catalog(demo / "data" / "catalog" / "catalog.json")
    wanted = ("blue", "green", "red", "nir08", "swir16", "swir22", "lwir11", "qa_pixel", "qa")
    for item in items:
        for asset in item.assets.values():
            if asset.href.startswith("/"):
                asset.href = base + "/" + Path(asset.href).relative_to(demo).as_posix()
        item.clear_links()
        item.collection_id = "landsat-c2-l2"  # the demo's static catalog has no collection
    ndjson = tmp / "demo.ndjson"
    ndjson.write_text("\n".join(json.dumps(i.to_dict(transform_hrefs=False)) for i in items) + "\n")
    port = _free_port()
    rustac = Path(sys.executable).with_name("rustac")
    proc = subprocess.Popen([str(rustac), "serve", "--create-collections", "-a", f"127.0.0.1:{port}", str(ndjson)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/collections", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        collection = "landsat-c2-l2"
        cfg = load_config(demo / "config.yaml", overrides={
            "workdir": str(tmp / "ws"),
            "search": {"backend": "stac", "url": f"http://127.0.0.1:{port}", "collection": collection, "path": None},
        })
        ws = Workspace(cfg.resolved_workdir())
        served.clear()
        t0 = time.perf_counter()
        with ws.locked():
            outcome = execute(SPEC, cfg, ws, force=True)
        uhi_s = time.perf_counter() - t0
        uhi_bytes = served["bytes"]
        index = json.loads(ws.scenes_index.read_text())
        urls = [f["assets"][k]["alternate"]["source"]["href"] for f in index["features"] for k in wanted
                if k in f["assets"]]
        served.clear()
        anchor_s, anchor_bytes = _whole_get(urls)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        httpd.shutdown()
    case = f"demo {outcome.summary['scenes']} scenes x 9 bands"
    note = (f"{uhi_bytes / 1e6:.2f} MB range-read vs {anchor_bytes / 1e6:.2f} MB whole; demo scenes are "
            "barely larger than the AOI, so this row shows overhead, not savings")
    return [
        {"bench": "fetch", "case": case + " (seconds)", "uhi_s": round(uhi_s, 3), "anchor": "GET whole files (no write)",
         "anchor_s": round(anchor_s, 3), "target": "n/a",
         "note": "uhi time includes the STAC search and writing + verifying every clip (tiled ZSTD GeoTIFF)"},
        {"bench": "fetch", "case": case + " (bytes)", "ratio": round(anchor_bytes / max(uhi_bytes, 1), 2),
         "anchor": "GET whole files", "target": ">=1x", "note": note},
    ]


def bench_scene_sized(tmp: Path) -> list[dict[str, Any]]:
    import rasterio
    from pyproj import Transformer
    from rasterio.io import MemoryFile
    from rasterio.shutil import copy as rio_copy
    from rasterio.transform import Affine
    from shapely.geometry import box

    from uhi.raster.read import ReadOptions, read_clip

    folder = tmp / "big"
    folder.mkdir()
    with rasterio.open(FULL_BAND / f"{PRODUCT}_SR_B4.TIF") as src:
        arr = np.tile(src.read(1), (15, 15))  # 7680 x 7680: the size of a Landsat scene
        crs = src.crs
        transform = Affine(30.0, 0, src.transform.c, 0, -30.0, src.transform.f)
    target = folder / f"{PRODUCT}_SR_B4.TIF"
    profile = {"driver": "GTiff", "height": arr.shape[0], "width": arr.shape[1], "count": 1, "dtype": arr.dtype,
               "crs": crs, "transform": transform, "nodata": 0}
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(arr, 1)
        with mem.open() as src:
            rio_copy(src, target, driver="COG", compress="deflate", blocksize=512, overview_resampling="nearest")
    httpd, served = _range_server(folder)
    url = f"http://127.0.0.1:{httpd.server_port}/{target.name}"
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    cx, cy = transform @ (3800, 3800)
    w, s = to_ll.transform(cx - 2000, cy - 2000)
    e, n = to_ll.transform(cx + 2000, cy + 2000)
    try:
        served.clear()
        t0 = time.perf_counter()
        clip = read_clip(url, box(w, s, e, n), 300.0, ReadOptions(retries=0))
        uhi_s = time.perf_counter() - t0
        uhi_bytes = served["bytes"]
        served.clear()
        anchor_s, anchor_bytes = _whole_get([url])
    finally:
        httpd.shutdown()
    assert clip is not None
    case = "7680 px COG, 4 km AOI + 300 m, 1 band"
    return [
        {"bench": "fetch", "case": case + " (seconds)", "uhi_s": round(uhi_s, 4), "anchor": "GET whole file",
         "anchor_s": round(anchor_s, 4), "target": ">=5x", "note": f"window {clip.data.shape[1]}x{clip.data.shape[2]} px"},
        {"bench": "fetch", "case": case + " (bytes)", "ratio": round(anchor_bytes / max(uhi_bytes, 1), 1),
         "anchor": "GET whole file", "target": ">=20x",
         "note": f"{uhi_bytes / 1e6:.2f} MB range-read vs {anchor_bytes / 1e6:.1f} MB whole"},
    ]


def main() -> int:
    import os

    # GDAL caches /vsicurl/ blocks per process: measure the network, not the cache
    os.environ["CPL_VSIL_CURL_NON_CACHED"] = "/vsicurl/http://127.0.0.1"
    with tempfile.TemporaryDirectory(prefix="uhi-bench-fetch-") as tmp_name:
        tmp = Path(tmp_name)
        rows = [*bench_scene_sized(tmp), *bench_demo(tmp)]
    for row in rows:
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())

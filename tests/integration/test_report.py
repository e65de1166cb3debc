"""The HTML report: self-contained offline page, checked statically and in headless Chromium.

The browser is driven over the DevTools protocol (tornado's websocket client on 127.0.0.1), so
console errors, uncaught exceptions, failed loads and every requested URL are seen directly.
CI needs Debian's Chromium: ``apt-get install -y chromium`` (``.ci/run`` does it as root).
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from shapely.geometry import box

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
import test_scenario as synth  # noqa: E402  (the synthetic workspace of the scenario tests)

from uhi.config import build_config  # noqa: E402
from uhi.report.builder import build_report  # noqa: E402
from uhi.scenario import run_scenario  # noqa: E402
from uhi.stages import get_spec  # noqa: E402
from uhi.stages.runner import execute  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# XML namespace names inside Leaflet: identifiers passed to createElementNS, never fetched
_NAMESPACES = ("http://www.w3.org/2000/svg",)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    tmp = tmp_path_factory.mktemp("report")
    ws, _ = synth._workspace(tmp, years=tuple(range(2015, 2021)))
    # the real model stage writes the artifacts the report reads; the forecast outputs follow
    # the forecast stage's layout (the real stage runs in test_report_demo.py, marked slow)
    ws.model_summary.unlink()
    cfg = build_config(overrides={"model": {"models": ["ols", "lag", "panel_fe"]}, "forecast": {"horizon": 2}})
    execute(get_spec("model"), cfg, ws)
    _forecast_outputs(ws)
    park = box(synth.X0 + 5 * synth.CELL_M, synth.Y0 + 5 * synth.CELL_M, synth.X0 + 7 * synth.CELL_M, synth.Y0 + 7 * synth.CELL_M)
    changes = synth._changes(tmp, [synth._feature(park, {"name": "park", "ndvi": 0.2})])
    run_scenario(cfg, ws, changes, model="lag", name="park")
    return build_report(cfg, ws), ws


def _forecast_outputs(ws: Any) -> None:
    """forecast/forecast.geojson and summary.json in the forecast stage's layout."""
    import geopandas as gpd
    import pandas as pd

    from uhi.writers.geojson import write_geojson

    cells = gpd.read_parquet(ws.cells)
    panel = pd.read_parquet(ws.panel)
    last = panel.loc[panel["year"] == 2020].groupby("cell")["lst_c"].mean()
    frame = gpd.GeoDataFrame({"cell": cells["cell"], "lst_c_method": "holt"}, geometry=cells.geometry, crs=cells.crs)
    city: dict[str, dict[str, float]] = {"forecast": {}, "lower": {}, "upper": {}}
    for h, label in ((1, "2021"), (2, "2022")):
        mean = cells["cell"].map(last).to_numpy() + 0.1 * h
        half = 1.645 * 0.5 * np.sqrt(h)
        frame[f"lst_c_{label}"], frame[f"lst_c_{label}_lo"], frame[f"lst_c_{label}_hi"] = mean, mean - half, mean + half
        city["forecast"][label] = float(mean.mean())
        city["lower"][label] = float(mean.mean() - half / 3)
        city["upper"][label] = float(mean.mean() + half / 3)
    write_geojson(frame, ws.path("forecast", "forecast.geojson"))
    ws.write_json(ws.path("forecast", "summary.json"), {
        "step": "summer", "interval": 0.9, "forecast_steps": ["2021", "2022"],
        "city": {"lst_c": {"method": "holt", **city}},
        "rcp85": {"source": "IPCC AR5 WG1 SPM Table SPM.2", "years": [2050, 2085],
                  "warming_added_c": [1.0, 2.6], "city_lst_c": [30.0, 31.6]},
    })


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for key, value in attrs:
            if key in ("src", "href", "srcset", "poster", "data") and value is not None:
                self.refs.append(value)
            if key == "id" and value:
                self.ids.add(value)


def test_report_is_self_contained(report: tuple[Path, Any]) -> None:
    path, ws = report
    page = path.read_text(encoding="utf-8")
    parser = _Refs()
    parser.feed(page)
    # every reference is inline data or an anchor on the page itself
    for ref in parser.refs:
        assert ref.startswith("data:") or (ref.startswith("#") and ref[1:] in parser.ids), ref[:80]
    for url in re.findall(r"url\(\s*['\"]?([^'\")]+)", page):
        assert url.startswith(("data:", "#")), url[:80]
    assert "sourceMappingURL" not in page and "@import" not in page
    leftover = [m for m in re.findall(r"https?://[^\s\"'<>)]+", page) if m not in _NAMESPACES]
    assert leftover == []
    for anchor in ("maps", "models", "suhi", "forecast", "scenarios", "cell-map-section"):
        assert f'id="{anchor}"' in page
    # the R² table carries the summary's numbers; the cell data hold every cell
    summary = json.loads(ws.model_summary.read_text())
    for name, entry in summary["models"].items():
        assert f"<th>{name}</th>" in page
        for period, fit in entry["years"].items():
            assert f"{fit['r2']:.3f}" in page, (name, period)
    data = json.loads(re.search(r'<script type="application/json" id="uhi-cells">(.*?)</script>', page, re.S).group(1))
    assert len(data["cells"]["features"]) == synth.SIDE**2
    assert {lyr["key"] for lyr in data["layers"]} == {"lst_c", "anomaly_c", "gi_bin", "residual", "forecast", "scenario_park"}
    maps = sorted(p.name for p in (ws.root / "report" / "maps").iterdir())
    assert maps == ["anomaly.png", "forecast.png", "hotspots.png", "lst.png", "residuals.png", "scenario_park.png"]
    # the forecast table shows the city forecast of forecast/summary.json with its bounds
    city = json.loads((ws.root / "forecast" / "summary.json").read_text())["city"]["lst_c"]
    for label, value in city["forecast"].items():
        assert f"<th>{label}</th>" in page and f"{value:.2f}" in page and f"{city['upper'][label]:.2f}" in page


# -- headless Chromium over the DevTools protocol ---------------------------------------------


# paper sizes in inches, as Page.printToPDF takes them
PAPERS = {"A4": (8.27, 11.69), "Letter": (8.5, 11.0)}


async def _inspect(url: str, width: int = 1280, height: int = 2400, *, mobile: bool = False,
                   papers: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load ``url`` in headless Chromium; collect errors, requests, a screenshot, page facts and PDFs."""
    import urllib.request

    from tornado.websocket import websocket_connect

    profile = tempfile.mkdtemp(prefix="uhi-chromium-")
    proc = subprocess.Popen(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         f"--user-data-dir={profile}", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        port = None
        for line in proc.stderr:  # "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/..."
            m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
                break
        assert port, "chromium did not open its DevTools port"
        targets = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10).read())
        ws_url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
        conn = await websocket_connect(ws_url, max_message_size=64 * 1024 * 1024)
        next_id = 0
        events: list[dict[str, Any]] = []

        async def call(method: str, **params: Any) -> dict[str, Any]:
            nonlocal next_id
            next_id += 1
            my_id = next_id
            await conn.write_message(json.dumps({"id": my_id, "method": method, "params": params}))
            while True:
                msg = json.loads(await asyncio.wait_for(conn.read_message(), 30))
                if msg.get("id") == my_id:
                    assert "error" not in msg, msg
                    return msg.get("result", {})
                events.append(msg)

        for domain in ("Runtime", "Log", "Network", "Page"):
            await call(f"{domain}.enable")
        await call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=mobile)
        await call("Page.navigate", url=url)
        while not any(e.get("method") == "Page.loadEventFired" for e in events):
            events.append(json.loads(await asyncio.wait_for(conn.read_message(), 30)))
        await asyncio.sleep(1.0)  # let Leaflet draw its canvas after load
        facts = await call("Runtime.evaluate", returnByValue=True, expression="""({
            canvases: document.querySelectorAll('#cell-map canvas').length,
            cells: document.getElementById('cell-map') ? document.getElementById('cell-map').dataset.cells : null,
            images: document.images.length,
            brokenImages: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).length,
            leaflet: typeof L !== 'undefined' ? L.version : null,
            scrollWidth: document.documentElement.scrollWidth,
            clientWidth: document.documentElement.clientWidth,
            wideElements: Array.from(document.querySelectorAll('body *')).filter(
                e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1
                     && !e.closest('.table-wrap') && !e.closest('.leaflet-container')).length
        })""")
        interaction: dict[str, Any] = {}
        rect = (await call("Runtime.evaluate", returnByValue=True, expression="""(() => {
            const m = document.getElementById('cell-map'); if (!m) return null;
            m.scrollIntoView(); const r = m.getBoundingClientRect();
            return {x: r.left + r.width / 2, y: r.top + r.height / 2}; })()"""))["result"].get("value")
        if rect:
            # click the middle cell: Leaflet opens its popup
            for kind in ("mousePressed", "mouseReleased"):
                await call("Input.dispatchMouseEvent", type=kind, x=rect["x"], y=rect["y"], button="left", clickCount=1)
            await asyncio.sleep(0.3)
            interaction = (await call("Runtime.evaluate", returnByValue=True, expression="""(() => {
                const popup = document.querySelector('.leaflet-popup-content');
                const select = document.getElementById('cell-layer');
                const legends = [];
                for (let i = 0; i < select.options.length; i++) {
                    select.value = String(i); select.dispatchEvent(new Event('change'));
                    legends.push(document.querySelector('.uhi-legend').textContent);
                }
                return {popup: popup ? popup.textContent : null, legends: legends}; })()"""))["result"]["value"]
            await call("Runtime.evaluate", expression="window.scrollTo(0, 0)")
        shot = await call("Page.captureScreenshot", format="png")
        pdfs = {}
        for paper in papers:
            w_in, h_in = PAPERS[paper]
            printed = await call("Page.printToPDF", paperWidth=w_in, paperHeight=h_in, printBackground=True,
                                 displayHeaderFooter=False)
            pdfs[paper] = base64.b64decode(printed["data"])
        conn.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
    errors = []
    requests = []
    for e in events:
        method, params = e.get("method"), e.get("params", {})
        if method == "Runtime.exceptionThrown":
            errors.append(params["exceptionDetails"].get("exception", {}).get("description") or params["exceptionDetails"]["text"])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(" ".join(str(a.get("value", a.get("description"))) for a in params.get("args", [])))
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            errors.append(params["entry"]["text"])
        elif method == "Network.loadingFailed":
            errors.append(f"load failed: {params.get('errorText')}")
        elif method == "Network.requestWillBeSent":
            requests.append(params["request"]["url"])
    return {"errors": errors, "requests": requests, "facts": facts["result"]["value"], "interaction": interaction,
            "screenshot": base64.b64decode(shot["data"]), "pdfs": pdfs}


def _run(url: str, **kwargs: Any) -> dict[str, Any]:
    pytest.importorskip("tornado", reason="the DevTools client uses tornado's websocket")
    return asyncio.run(_inspect(url, **kwargs))


def _print_to_pdf(url: str, target: Path) -> bytes:
    """The page printed by ``chromium --headless --print-to-pdf`` (its default paper, no header/footer)."""
    profile = tempfile.mkdtemp(prefix="uhi-chromium-")
    try:
        subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", f"--user-data-dir={profile}",
                        "--no-pdf-header-footer", "--virtual-time-budget=3000", f"--print-to-pdf={target}", url],
                       check=True, capture_output=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return target.read_bytes()


def pdf_page_fill(pdf: bytes) -> list[float]:
    """Per page, how far down its content reaches: the lowest non-white row / the page height.

    Pages are rendered at 40 dpi with pypdfium2; a pixel darker than 245 of 255 is content.
    """
    pdfium = pytest.importorskip("pypdfium2", reason="pypdfium2 renders the PDF pages (test extra)")
    doc = pdfium.PdfDocument(pdf)
    fills = []
    for page in doc:
        img = np.asarray(page.render(scale=40 / 72).to_pil().convert("L"), dtype=np.uint8)
        rows = np.flatnonzero((img < 245).any(axis=1))
        fills.append(float((rows[-1] + 1) / img.shape[0]) if rows.size else 0.0)
    return fills


needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (CI: apt-get install -y chromium)"
)


@pytest.mark.browser
@needs_chromium
def test_harness_catches_broken_pages(tmp_path: Path) -> None:
    """The browser check can fail: a missing image, a script error and a remote URL are all seen."""
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><h1>x</h1><img src="missing.png"><link rel="stylesheet" '
                   'href="http://127.0.0.1:9/none.css"><script>console.error("boom"); nope();</script></body></html>')
    out = _run(bad.as_uri())
    joined = " | ".join(out["errors"])
    assert "boom" in joined and "nope is not defined" in joined
    assert any("load failed" in e for e in out["errors"])
    assert any(u.startswith("http://127.0.0.1:9/") for u in out["requests"])
    assert out["facts"]["brokenImages"] == 1


@pytest.mark.browser
@needs_chromium
def test_report_renders_offline_in_chromium(report: tuple[Path, Any], tmp_path: Path) -> None:
    from PIL import Image

    path, _ = report
    out = _run(path.as_uri())
    assert out["errors"] == []
    # nothing but the page itself and inline data was requested
    assert all(u.startswith(("file:", "data:")) for u in out["requests"]), [u[:60] for u in out["requests"]]
    facts = out["facts"]
    assert facts["leaflet"]  # Debian's 1.7.1~dfsg build reports L.version "1.6.0"
    assert facts["canvases"] >= 1 and facts["cells"] == str(synth.SIDE**2)
    assert facts["images"] >= 5 and facts["brokenImages"] == 0
    # clicking a cell opens its popup; every layer of the chooser redraws and relabels the legend
    popup = out["interaction"]["popup"]
    assert popup and popup.startswith("cell c") and "LST 2020" in popup
    legends = out["interaction"]["legends"]
    assert len(legends) == 6 and len(set(legends)) == 6
    assert any("hot spot, 99 %" in lg for lg in legends) and any("scenario park" in lg for lg in legends)
    img = Image.open(io.BytesIO(out["screenshot"])).convert("RGB")
    (tmp_path / "report.png").write_bytes(out["screenshot"])
    pixels = np.asarray(img, dtype=float)
    assert img.size == (1280, 2400)
    assert pixels.std() > 20  # not blank
    assert len(np.unique(pixels.reshape(-1, 3)[::7], axis=0)) > 200  # maps and charts, not flat colour


def test_large_cities_get_merged_tiles_on_the_cell_map(report: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    import pandas as pd

    from uhi.report import builder

    _, ws = report
    monkeypatch.setattr(builder, "MAX_INTERACTIVE_CELLS", 100)
    inp = builder._load(build_config(), ws)
    payload, note = builder._cells_payload(inp, {})
    features = payload["cells"]["features"]
    assert len(features) == 36 and "144 cells are shown merged into 36 zoom-18 tiles" in note
    # a parent tile holds the mean of its four children (tile_x, tile_y >> 1)
    cells = inp.cells.set_index("cell")
    lst = inp.per_cell["lst_c"].round(3)
    kids = cells.index[(cells["tile_x"] // 2 == 2) & (cells["tile_y"] // 2 == 3)]
    from uhi.grid.cells import quadkeys

    parent = next(f for f in features if f["properties"]["cell"] == quadkeys([2], [3], 18)[0])
    assert len(kids) == 4
    assert parent["properties"]["lst_c"] == pytest.approx(float(pd.Series(lst[kids]).mean()), abs=1e-9)

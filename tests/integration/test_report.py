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
from conftest import require_module, require_program  # noqa: E402

from uhi.config import build_config  # noqa: E402
from uhi.report.builder import build_report  # noqa: E402
from uhi.scenario import run_scenario  # noqa: E402
from uhi.stages import get_spec  # noqa: E402
from uhi.stages.runner import execute  # noqa: E402

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
    # the forecast's own city series, 0.5 C off the mean of cell means: the report must draw this one
    by_year = panel.groupby(["cell", "year"])["lst_c"].mean().groupby("year").mean()
    observed = {str(y): float(v) + 0.5 for y, v in by_year.items()}
    ws.write_json(ws.path("forecast", "summary.json"), {
        "step": "summer", "interval": 0.9, "forecast_steps": ["2021", "2022"],
        "city": {"lst_c": {"method": "holt", **city, "observed": observed,
                           "trend_per_step": {"ols_slope": 0.1, "holt_trend": 0.1}}},
        "rcp85": {"source": "IPCC AR5 WG1 SPM Table SPM.2", "years": [2050, 2085],
                  "air_warming_added_c": [1.0, 2.6], "lst_per_air_k": 1.0,
                  "lst_change_added_c": [1.0, 2.6], "city_lst_rcp85_c": [30.0, 31.6]},
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
    for anchor in ("key-findings", "maps", "models", "suhi", "forecast", "scenarios", "cell-map-section", "caveats",
                   "glossary"):
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
        assert f"<th>{label}</th>" in page and f"{value:.1f}" in page and f"{city['upper'][label]:.1f}" in page


def report_data(page: str) -> dict[str, Any]:
    """The JSON block of the numbers the page states."""
    block = re.search(r'<script type="application/json" id="uhi-report-data">(.*?)</script>', page, re.S)
    assert block, "no uhi-report-data block"
    return json.loads(block.group(1))


def visible_text(page: str) -> str:
    """The page without its scripts and styles (what a reader sees, roughly)."""
    return re.sub(r"<(script|style)\b.*?</\1>", "", page, flags=re.S | re.I)


def test_data_block_is_the_artifacts(report: tuple[Path, Any]) -> None:
    """Every number block equals the stage artifact it comes from, and real data keep the USGS credit."""
    path, ws = report
    page = path.read_text(encoding="utf-8")
    data = report_data(page)
    summary = json.loads(ws.model_summary.read_text())
    fsum = json.loads((ws.root / "forecast" / "summary.json").read_text())
    assert data["models"]["best_model"] == summary["best_model"]
    assert data["models"]["best_model_criterion"] == summary["best_model_criterion"]
    for name, entry in summary["models"].items():
        assert data["models"]["models"][name]["mean_aic"] == entry["mean_aic"]
        assert data["models"]["models"][name]["r2"] == {p: fit["r2"] for p, fit in entry["years"].items()}
    assert data["city"] == fsum["city"]["lst_c"] and data["rcp85"] == fsum["rcp85"]
    scen = json.loads((ws.root / "scenario" / "park_summary.json").read_text())
    assert data["scenarios"]["park"]["city"] == scen["city"]
    # stages that did not run: null, and no section pretends otherwise
    assert data["exposure"] is None and data["plan"] is None
    assert 'id="exposure"' not in page and 'id="plan"' not in page
    # the page says how the best model was chosen, in the model stage's words
    assert html_escape(summary["best_model_criterion"]) in page and "AIC" in page
    # real data (no uhi:synthetic item): the USGS credit, and no "synthetic" anywhere a reader sees
    assert data["synthetic"] is False
    text = visible_text(page)
    assert "Landsat data: USGS" in text and "synthetic" not in text.lower()


def html_escape(text: str) -> str:
    import html

    return html.escape(text)


def test_forecast_chart_draws_the_forecast_stage_series(report: tuple[Path, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The observed line is forecast/summary.json's city series (what the forecast was fitted to)."""
    from uhi.report import charts

    _, ws = report
    seen = []
    real = charts.render_forecast_chart

    def spy(history: Any, forecast: Any, **kw: Any) -> Any:
        seen.append(history)
        return real(history, forecast, **kw)

    monkeypatch.setattr(charts, "render_forecast_chart", spy)
    build_report(build_config(), ws)
    observed = json.loads((ws.root / "forecast" / "summary.json").read_text())["city"]["lst_c"]["observed"]
    city = seen[0]
    assert city["year"].tolist() == [float(y) for y in observed]
    assert city["value"].tolist() == list(observed.values())


def _zones_and_plan(ws: Any) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """Hand-written exposure and plan artifacts in the shapes of docs/exposure.md and the plan stage."""
    import pandas as pd

    zones = pd.DataFrame({"zone": ["z1", "z2", "z3", "z4"], "name": ["Riverside", "Old Town", "Hillcrest", "Parkview"],
                          "lst_pop_mean_c": [36.2, 38.9, 33.1, float("nan")], "lst_mean_c": [36.0, 38.5, 33.0, 31.0],
                          "population": [1200.0, 5400.0, 800.0, 0.0], "rank": [2, 1, 3, None]})
    ws.path("exposure").mkdir(parents=True, exist_ok=True)
    zones.to_parquet(ws.path("exposure", "zones.parquet"))
    exposure = {"year": 2020, "threshold_c": 35.0, "cells": 144, "cells_with_lst": 140, "zones": 4,
                "population": 7400.0, "people_no_lst": 0.0, "lst_mean_c": 34.9, "lst_pop_mean_c": 37.6,
                "people_hot_95": 2600.0, "people_hot_99": 900.0, "people_above_threshold": 6600.0}
    ws.write_json(ws.path("exposure", "summary.json"), exposure)
    plan = {"intervention": "greening", "objective": "people", "unit": "person-°C", "currency": "CAD",
            "budget": 1e6, "total_cost": 998000.0, "total_benefit": 512.3, "spillover_benefit": 101.2,
            "interval": {"estimate": 512.3, "se": 40.0, "low": 446.5, "high": 578.1, "level": 0.9},
            "gain_over_naive": {"hottest_cells": 120.5, "uniform": None}, "cells_selected": 12, "cells_feasible": 130,
            "amount": 25000.0, "amount_unit": "m2 greened", "model": "lag", "costs_note": "illustrative default costs"}
    ws.write_json(ws.path("plan", "summary.json"), plan)
    return exposure, plan, zones


def test_sections_follow_the_stages_that_ran(report: tuple[Path, Any], tmp_path: Path) -> None:
    """Exposure and plan appear with their files' numbers; a missing forecast leaves null, not stale figures."""
    from uhi.workspace import Workspace

    _, ws0 = report
    root = tmp_path / "ws"
    shutil.copytree(ws0.root, root)
    ws = Workspace(root)
    exposure, plan, zones = _zones_and_plan(ws)
    shutil.rmtree(root / "forecast")
    shutil.rmtree(root / "report")
    page = build_report(build_config(), ws).read_text(encoding="utf-8")
    data = report_data(page)
    assert data["exposure"] == exposure and data["plan"] == plan
    assert data["city"] is None and data["forecast"] is None and data["rcp85"] is None
    assert 'id="exposure"' in page and 'id="plan"' in page and "no forecast yet" in page
    # the hottest neighbourhoods by name (population-weighted LST, NaN zone left out), with residents
    hottest = data["headline"]["hottest"]
    assert hottest["kind"] == "zones"
    assert [p["name"] for p in hottest["places"]] == ["Old Town", "Riverside", "Hillcrest"]
    assert [p["population"] for p in hottest["places"]] == [5400.0, 1200.0, 800.0]
    findings = page[page.index('id="key-findings"'):page.index("</section>", page.index('id="key-findings"'))]
    assert "Old Town (38.9 °C, 5,400 residents)" in findings and "Forecast city-mean" not in findings
    assert "998,000 CAD" in findings and 'href="#plan"' in findings and 'href="#exposure"' in findings
    assert "7,400" in page and "37.6 °C" in page and "446 to 578" in page


def test_scenario_section_speaks_plainly(report: tuple[Path, Any]) -> None:
    """The scenario is told in words with rounded °C, not as column names or JSON."""
    path, ws = report
    page = path.read_text(encoding="utf-8")
    start = page.index('id="scenarios"')
    section = page[start:page.index("</section>", start)]
    scen = json.loads((ws.root / "scenario" / "park_summary.json").read_text())
    assert "vegetation index (NDVI) raised by 0.20" in section
    assert f"changes by {scen['city']['mean_dlst_c']:+.2f} °C" in section
    assert f"{scen['polygons'][0]['mean_dlst_c']:.2f}" in section
    for jargon in ("mean_dlst_c", "dlst", "{&quot;ndvi", '{"ndvi', "outside_mean"):
        assert jargon not in section, jargon


def test_headline_names_places_by_coordinates_without_zones(report: tuple[Path, Any]) -> None:
    """Without zones the hottest places are the hottest cells, by lon/lat, distinct, never a bare quadkey."""
    path, ws = report
    page = path.read_text(encoding="utf-8")
    hottest = report_data(page)["headline"]["hottest"]
    assert hottest["kind"] == "cells" and len(hottest["places"]) == 3
    from uhi.report import builder

    inp = builder._load(build_config(), ws)
    lst = inp.per_cell["lst_c"]
    assert hottest["places"][0]["lst_c"] == pytest.approx(float(lst.max()))
    cells = inp.cells.set_index("cell").to_crs(synth.UTM)
    centres = [cells.loc[p["cell"]].geometry.centroid for p in hottest["places"]]
    assert min(a.distance(b) for i, a in enumerate(centres) for b in centres[i + 1:]) >= 4 * synth.CELL_M - 1e-6
    findings = page[page.index('id="key-findings"'):page.index("</section>", page.index('id="key-findings"'))]
    for p in hottest["places"]:
        assert p["name"] in findings and p["cell"] not in findings
        assert re.fullmatch(r"\d+\.\d{4}° [NS], \d+\.\d{4}° [EW]", p["name"])


# -- headless Chromium over the DevTools protocol ---------------------------------------------


# paper sizes in inches, as Page.printToPDF takes them
PAPERS = {"A4": (8.27, 11.69), "Letter": (8.5, 11.0)}


async def _inspect(chromium: str, url: str, width: int = 1280, height: int = 2400, *, mobile: bool = False,
                   papers: tuple[str, ...] = ()) -> dict[str, Any]:
    """Load ``url`` in headless Chromium; collect errors, requests, a screenshot, page facts and PDFs."""
    import urllib.request

    from tornado.websocket import websocket_connect

    profile = tempfile.mkdtemp(prefix="uhi-chromium-")
    proc = subprocess.Popen(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
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


def _chromium() -> str:
    """Chromium's path: skipped locally without it, a failure under CI."""
    return require_program(
        "chromium", "chromium-browser", fix="apt-get install -y chromium (Debian's package; .ci/run installs it)"
    )


def _run(url: str, **kwargs: Any) -> dict[str, Any]:
    """Inspect ``url`` in headless Chromium: skipped locally without it, a failure under CI."""
    chromium = _chromium()
    # the DevTools client uses tornado's websocket
    require_module("tornado", fix="pip install 'uhi-landsat[test]'")
    return asyncio.run(_inspect(chromium, url, **kwargs))


def _print_to_pdf(url: str, target: Path) -> bytes:
    """The page printed by ``chromium --headless --print-to-pdf`` (its default paper, no header/footer)."""
    chromium = _chromium()
    profile = tempfile.mkdtemp(prefix="uhi-chromium-")
    try:
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
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
    pdfium = require_module("pypdfium2", fix="pip install 'uhi-landsat[test]'")
    doc = pdfium.PdfDocument(pdf)
    fills = []
    for page in doc:
        img = np.asarray(page.render(scale=40 / 72).to_pil().convert("L"), dtype=np.uint8)
        rows = np.flatnonzero((img < 245).any(axis=1))
        fills.append(float((rows[-1] + 1) / img.shape[0]) if rows.size else 0.0)
    return fills


@pytest.mark.browser
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
def test_report_renders_offline_in_chromium(report: tuple[Path, Any], tmp_path: Path) -> None:
    from PIL import Image

    path, _ = report
    out = _run(path.as_uri(), width=1400)
    assert out["errors"] == []
    # nothing wider than the window, at desktop width and on a 390 px phone
    assert out["facts"]["scrollWidth"] <= out["facts"]["clientWidth"] and out["facts"]["wideElements"] == 0
    phone = _run(path.as_uri(), width=390, height=844, mobile=True)
    assert phone["errors"] == [] and phone["facts"]["brokenImages"] == 0
    assert phone["facts"]["clientWidth"] == 390
    assert phone["facts"]["scrollWidth"] <= 390 and phone["facts"]["wideElements"] == 0, phone["facts"]
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
    assert img.size == (1400, 2400)
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


def test_outputs_formats_without_png_writes_no_map_files(report: tuple[Path, Any]) -> None:
    """`outputs.formats` decides the PNG files: the page keeps its inlined maps either way."""
    path, ws = report
    maps = path.parent / "maps"
    assert sorted(p.name for p in maps.glob("*.png"))  # the default formats have png
    cfg = build_config(overrides={"model": {"models": ["ols", "lag", "panel_fe"]}, "forecast": {"horizon": 2},
                                  "outputs": {"formats": ["geojson", "html"]}})
    try:
        again = build_report(cfg, ws)
        assert not maps.exists()
        assert again.read_text(encoding="utf-8").count('src="data:image/png;base64,') >= 3
    finally:
        build_report(build_config(overrides={"model": {"models": ["ols", "lag", "panel_fe"]},
                                             "forecast": {"horizon": 2}}), ws)
    assert sorted(p.name for p in maps.glob("*.png"))


def test_a_run_ending_with_forecast_writes_the_report_when_html_is_asked(report: tuple[Path, Any]) -> None:
    from uhi.pipeline import _report_if_asked
    from uhi.stages.runner import StageOutcome

    path, ws = report
    overrides: dict[str, Any] = {"model": {"models": ["ols", "lag", "panel_fe"]}, "forecast": {"horizon": 2}}
    ran = [StageOutcome("forecast", skipped=False, seconds=0.0)]
    before = path.stat().st_mtime_ns
    _report_if_asked(build_config(overrides=overrides), ws, ["model", "forecast"], ran)  # no html
    _report_if_asked(build_config(overrides={**overrides, "outputs": {"formats": ["html", "png"]}}), ws, ["model"], ran)
    assert path.stat().st_mtime_ns == before  # html not asked, or the run stopped before forecast
    _report_if_asked(build_config(overrides={**overrides, "outputs": {"formats": ["html", "png"]}}), ws,
                     ["model", "forecast"], ran)
    assert path.stat().st_mtime_ns > before and "<html" in path.read_text(encoding="utf-8").lower()

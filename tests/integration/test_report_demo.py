"""End to end on the demo city: greening scenario against the planted model, then the report."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import box

sys.path.insert(0, str(Path(__file__).resolve().parent))

pytestmark = pytest.mark.slow

HALF_M = 150.0  # the greened park is 300 m x 300 m around the city centre


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any, dict[str, Any]]:
    from uhi.cli.common import build_run_config, run_stages
    from uhi.demo import DemoSpec, write_demo
    from uhi.workspace import Workspace

    root = tmp_path_factory.mktemp("demo-scenario") / "city"
    result = write_demo(root, DemoSpec(size_km=1.5, scenes_per_year=2))
    cfg = build_run_config(result.config, set_values=["model.models=[ols, lag]"])
    run_stages(cfg, ["fetch", "compute", "model", "forecast", "exposure"])
    return cfg, Workspace(cfg.resolved_workdir()), json.loads(result.truth.read_text())


def _park(ws: Any, tmp: Path, props: dict[str, Any]) -> tuple[Path, Any]:
    import pyarrow.parquet as pq

    cells = gpd.read_parquet(ws.cells)
    crs = pq.read_schema(ws.cells).metadata[b"uhi:working_crs"].decode()
    cx, cy = cells["x_m"].mean(), cells["y_m"].mean()
    park = box(cx - HALF_M, cy - HALF_M, cx + HALF_M, cy + HALF_M)
    geom = gpd.GeoSeries([park], crs=crs).to_crs(4326).iloc[0]
    path = tmp / f"{props.get('name', 'park')}.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": props, "geometry": geom.__geo_interface__}]}))
    return path, (cx, cy)


def test_greening_matches_the_planted_model(demo: tuple[Any, Any, dict[str, Any]], tmp_path: Path) -> None:
    import scipy.sparse as sp
    from libpysal.weights import KNN
    from scipy.sparse.linalg import spsolve

    from uhi.scenario import run_scenario

    cfg, ws, truth = demo
    path, (cx, cy) = _park(ws, tmp_path, {"name": "park", "ndvi": 0.2})
    lag = run_scenario(cfg, ws, path, model="lag", name="park_lag")
    ols = run_scenario(cfg, ws, path, model="ols", name="park_ols")
    out = gpd.read_file(ws.root / "scenario" / "park_lag.geojson")
    cells = gpd.read_parquet(ws.cells).set_index("cell").loc[out["cell"]]
    dist_m = np.maximum(np.abs(cells["x_m"].to_numpy() - cx), np.abs(cells["y_m"].to_numpy() - cy))

    # reference: the planted SAR (truth.json) applied to the same NDVI change, with libpysal's W
    planted = truth["lst_model"]
    d_ndvi = (out["ndvi_after"] - out["ndvi_before"]).to_numpy()
    w = KNN(np.column_stack([cells["x_m"], cells["y_m"]]), k=8)
    w.transform = "r"
    # a sparse solve: n is thousands, so no dense reference matrix
    ref = spsolve(sp.csc_matrix(sp.identity(w.n) - planted["rho"] * w.sparse), planted["coefficients"]["ndvi"] * d_ndvi)
    inside = out["share_changed"].to_numpy() > 0.99
    ours_in, ref_in = out.loc[inside, "dlst_c"].mean(), ref[inside].mean()
    assert ours_in < -1.0
    print(f"in-park change: predicted {ours_in:.3f} C, planted model {ref_in:.3f} C")
    # the park's own change is the NDVI total impact (b / (1 - rho)) at work: the fitted b can
    # be off the planted one by its sampling error (R-squared ~0.65 on ~1,000 cells), so the
    # relative tolerance is truth.json's 3-SE tolerance on b_ndvi over |b_ndvi|
    tol = truth["tolerances"]["end_to_end"]["lag_coefficient_abs"]["ndvi"]
    tolerance = tol / abs(planted["coefficients"]["ndvi"])
    assert abs(ours_in - ref_in) / abs(ref_in) < tolerance, (ours_in, ref_in, tolerance)
    # spill-over: a ring just outside the park cools a little, far cells hardly at all
    ring = (dist_m > HALF_M + 30) & (dist_m < HALF_M + 120)
    far = dist_m > HALF_M + 400
    assert out.loc[ring, "dlst_c"].mean() < -0.05
    assert out.loc[ring, "dlst_c"].mean() > ours_in / 3
    assert np.abs(out.loc[far, "dlst_c"]).max() < 0.05 * abs(ours_in)
    assert np.sign(ref[ring].mean()) == -1
    # OLS has no spill-over: exactly zero outside the park
    ols_out = gpd.read_file(ws.root / "scenario" / "park_ols.geojson")
    assert (ols_out.loc[ols_out["share_changed"] == 0, "dlst_c"] == 0).all()
    # the lag multiplier deepens the park's own cooling beyond its direct effect
    assert lag["polygons"][0]["mean_dlst_c"] < lag["polygons"][0]["mean_dlst_direct_c"] < 0
    assert ols["city"]["outside_mean_dlst_c"] == 0


def test_no_op_on_the_demo_is_exactly_zero(demo: tuple[Any, Any, dict[str, Any]], tmp_path: Path) -> None:
    from uhi.scenario import run_scenario

    cfg, ws, _ = demo
    path, _ = _park(ws, tmp_path, {"name": "noop", "ndvi": 0.0, "site_coverage": 0.0})
    rec = run_scenario(cfg, ws, path, model="lag", name="noop")
    out = gpd.read_file(ws.root / "scenario" / "noop.geojson")
    assert (out["dlst_c"] == 0).all() and rec["city"]["mean_dlst_c"] == 0


def test_report_on_the_demo(demo: tuple[Any, Any, dict[str, Any]], tmp_path: Path) -> None:
    from scipy import stats

    from uhi.report.builder import build_report

    cfg, ws, _ = demo
    path = build_report(cfg, ws)
    page = path.read_text(encoding="utf-8")
    maps = sorted(p.stem for p in (ws.root / "report" / "maps").iterdir())
    assert {"lst", "anomaly", "hotspots", "residuals", "forecast"} <= set(maps)
    import test_report as browser

    # one set of numbers: the data block is the artifacts, field for field
    data = browser.report_data(page)
    compute = ws.stage_record("compute")["summary"]
    fsum = json.loads((ws.root / "forecast" / "summary.json").read_text())
    msum = json.loads(ws.model_summary.read_text())
    assert data["suhi"] == compute["suhi_series"] and len(data["suhi"]) == compute["dates"]
    assert data["city"] == fsum["city"]["lst_c"] and data["rcp85"] == fsum["rcp85"]
    assert data["models"]["best_model"] == msum["best_model"]
    for name, entry in msum["models"].items():
        assert data["models"]["models"][name]["r2"] == {p: fit["r2"] for p, fit in entry["years"].items()}
    # the exposure stage ran: its summary verbatim, its neighbourhoods named with their residents
    assert data["exposure"] == json.loads((ws.root / "exposure" / "summary.json").read_text())
    zones = gpd.read_parquet(ws.root / "exposure" / "zones.parquet")
    top = zones.dropna(subset=["lst_pop_mean_c"]).sort_values("lst_pop_mean_c", ascending=False).head(3)
    hottest = data["headline"]["hottest"]
    assert hottest["kind"] == "zones" and [p["name"] for p in hottest["places"]] == top["name"].tolist()
    assert [p["population"] for p in hottest["places"]] == top["population"].tolist()
    assert 'id="exposure"' in page and data["plan"] is None and 'id="plan"' not in page
    assert sum(r["scenes"] for r in data["scenes_per_year"]) == len(
        json.loads(ws.scenes_index.read_text())["features"])
    # the headline figures, against independent computations on those artifacts
    head = data["headline"]
    suhi = [r["suhi_c"] for r in compute["suhi_series"] if r["suhi_c"] is not None]
    assert head["suhi"]["mean_c"] == pytest.approx(float(np.mean(suhi)), abs=1e-12)
    observed = fsum["city"]["lst_c"]["observed"]
    ref = stats.linregress([int(y) for y in observed], list(observed.values()))
    half = stats.t.ppf(0.975, len(observed) - 2) * ref.stderr
    assert head["trend"]["per_decade_c"] == pytest.approx(10 * ref.slope, rel=1e-9)
    assert head["trend"]["per_decade_c"] == pytest.approx(10 * fsum["city"]["lst_c"]["trend_per_step"]["ols_slope"], rel=1e-9)
    assert head["trend"]["low_c"] == pytest.approx(10 * (ref.slope - half), rel=1e-9)
    findings = page[page.index('id="key-findings"'):page.index("</section>", page.index('id="key-findings"'))]
    assert f"{head['suhi']['mean_c']:.1f} °C warmer" in findings
    assert f"{hottest['places'][0]['name']} ({hottest['places'][0]['lst_c']:.1f} °C" in findings
    for anchor in ("#suhi", "#forecast", "#exposure"):
        assert f'href="{anchor}"' in findings
    # synthetic data said in the header, on every map and in the caveats; no USGS credit
    text = browser.visible_text(page)
    assert data["synthetic"] is True
    header = text[text.index("<header>"):text.index("</header>")]
    assert "SYNTHETIC" in header
    captions = re.findall(r"<figcaption>(.*?)</figcaption>", page[page.index('id="maps"'):])
    assert captions and all("Synthetic data." in c for c in captions[: len(maps)])
    assert "USGS" not in text
    n_cells = len(gpd.read_parquet(ws.cells))
    wide = browser._run(path.as_uri(), width=1400, papers=("A4", "Letter"))
    phone = browser._run(path.as_uri(), width=390, height=844, mobile=True)
    for result in (wide, phone):
        assert result["errors"] == []
        assert all(u.startswith(("file:", "data:")) for u in result["requests"])
        facts = result["facts"]
        assert facts["cells"] == str(n_cells) and facts["brokenImages"] == 0
        assert facts["scrollWidth"] <= facts["clientWidth"] and facts["wideElements"] == 0, facts
    (tmp_path / "report-1400.png").write_bytes(wide["screenshot"])
    (tmp_path / "report-390.png").write_bytes(phone["screenshot"])
    # printed: few pages, none left half empty before the last (the cell map is left out of print)
    pdfs = dict(wide["pdfs"], cli=browser._print_to_pdf(path.as_uri(), tmp_path / "report.pdf"))
    for paper, pdf in pdfs.items():
        fills = browser.pdf_page_fill(pdf)
        print(paper, len(fills), "pages; content reaches", [round(f, 2) for f in fills])
        assert 3 <= len(fills) <= 8, (paper, fills)
        assert min(fills[:-1]) >= 0.55, (paper, fills)


def test_city_geopackage_holds_every_stage(demo: tuple[Any, Any, dict[str, Any]], tmp_path: Path) -> None:
    """<workspace>/<city>.gpkg: every stage's layers, listed by Debian's ogrinfo."""
    import subprocess

    import pyogrio
    from conftest import require_program

    from uhi.pipeline import assemble_city_gpkg
    from uhi.scenario import run_scenario

    ogrinfo = require_program("ogrinfo", fix="apt-get install -y gdal-bin (.ci/run installs it)")
    cfg, ws, _ = demo
    path, _ = _park(ws, tmp_path, {"name": "gpkg-park", "ndvi": 0.2})
    run_scenario(cfg, ws, path, model="lag", name="gpkg-park")
    with ws.locked():
        city = assemble_city_gpkg(cfg, ws)
    assert city == ws.root / f"{cfg.city.name}.gpkg"
    listing = subprocess.run([ogrinfo, "-ro", "-so", "-al", str(city)], capture_output=True, text=True, check=True).stdout
    layers = [line.split(":", 1)[1].strip() for line in listing.splitlines() if line.startswith("Layer name:")]
    stages = {"aoi", "cells", "cell_years", "predictions", "hotspots", "forecast"}
    assert stages | {"scenario_gpkg_park", "scenario_gpkg_park_changes"} <= set(layers)
    # the other layers are the earlier tests' scenarios and the exposure stage's (the fixture runs it)
    own = ws.root / "exposure" / "exposure.gpkg"
    exposure = {str(n) for n, _ in pyogrio.list_layers(own)} if own.is_file() else set()
    assert all(name.startswith("scenario_") for name in set(layers) - stages - exposure)
    assert pyogrio.read_info(city, layer="cells")["features"] == len(gpd.read_parquet(ws.cells))
    # the model and forecast leave mostly-water cells out: their layers match their own files
    for layer, geojson in (("predictions", "model/predictions.geojson"), ("hotspots", "model/hotspots.geojson"),
                           ("forecast", "forecast/forecast.geojson")):
        features = json.loads((ws.root / geojson).read_text())["features"]
        assert pyogrio.read_info(city, layer=layer)["features"] == len(features)
    hot = pyogrio.read_dataframe(city, layer="hotspots", read_geometry=False)
    latest = max(c for c in hot.columns if c.startswith("hotspot_") and c[-4:].isdigit() and "label" not in c)
    labels = hot[latest.replace("hotspot_", "hotspot_label_")]
    assert set(labels) <= {"hot 99%", "hot 95%", "hot 90%", "not significant", "cold 90%", "cold 95%", "cold 99%"}
    assert (labels[hot[latest] == 0] == "not significant").all()

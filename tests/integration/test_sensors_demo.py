"""The demo city with Landsat 5, 7 and 8 over 18 summers: each sensor's own files, SLC-off gaps
that never leak as values, and the planted trends recovered over the longer record (issue 17)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

from uhi.config import load_config
from uhi.demo import DemoSpec, write_demo
from uhi.stages import get_spec
from uhi.stages.runner import execute
from uhi.stats.trend import linear_trend
from uhi.workspace import Workspace

# written in the test, not imported from uhi: the C2 L2 ST encoding (LSDS-1618 / LSDS-1619)
ST_ADD_K = 149.0
KELVIN_C = 273.15
MIN_VALID_SHARE = 0.5


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("sensors")
    spec = DemoSpec(
        seed=42,
        size_km=1.5,
        first_year=1998,
        last_year=2015,
        scenes_per_year=2,
        sensors=("landsat-5", "landsat-7", "landsat-8"),
    )
    result = write_demo(root, spec)
    cfg = load_config(result.config, environ={}, overrides={"compute.min_valid_share": MIN_VALID_SHARE})
    assert cfg.compute.min_valid_share == MIN_VALID_SHARE
    ws = Workspace(cfg.resolved_workdir())
    with ws.locked():
        execute(get_spec("fetch"), cfg, ws)
        outcome = execute(get_spec("compute"), cfg, ws)
    truth = json.loads(Path(result.truth).read_text())
    return root, ws, outcome, truth, pd.read_parquet(ws.panel), cfg


def test_each_sensor_is_written_with_its_own_band_numbering(demo_run):
    root, _, _, truth, panel, _ = demo_run
    platforms = truth["sensors"]["platforms"]
    assert set(platforms) == {"landsat-5", "landsat-7", "landsat-8"}
    # TM alone before 1999, TM and ETM+ overlap, ETM+ alone in 2012, ETM+ and OLI overlap
    assert min(platforms["landsat-5"]["usable_years"]) == 1998
    assert 2012 in platforms["landsat-7"]["usable_years"]
    assert 2012 not in platforms["landsat-5"]["years"] + platforms["landsat-8"]["years"]
    assert set(platforms["landsat-7"]["usable_years"]) & set(platforms["landsat-8"]["usable_years"])
    assert set(platforms["landsat-5"]["usable_years"]) & set(platforms["landsat-7"]["usable_years"])
    expected_files = {
        "LT05": {"SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7", "ST_B6", "ST_QA", "QA_PIXEL"},
        "LE07": {"SR_B1", "SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B7", "ST_B6", "ST_QA", "QA_PIXEL"},
        "LC08": {"SR_B2", "SR_B3", "SR_B4", "SR_B5", "SR_B6", "SR_B7", "ST_B10", "ST_QA", "QA_PIXEL"},
    }
    platform_of = {"LT05": "landsat-5", "LE07": "landsat-7", "LC08": "landsat-8"}
    thermal_key = {"LT05": "lwir", "LE07": "lwir", "LC08": "lwir11"}
    catalog = root / "data" / "catalog"
    for scene in truth["scenes"]:
        if scene["level"] != "L2SP":
            continue
        prefix = scene["id"][:4]
        assert scene["platform"] == platform_of[prefix]
        folder = root / "data" / "scenes" / scene["product_id"]
        bands = {p.name[len(scene["product_id"]) + 1 : -4] for p in folder.glob("*.TIF")}
        assert bands == expected_files[prefix], scene["id"]
        item = json.loads((catalog / scene["id"] / f"{scene['id']}.json").read_text())
        assert item["properties"]["platform"] == platform_of[prefix]
        assert thermal_key[prefix] in item["assets"]
        mtl = (folder / f"{scene['product_id']}_MTL.txt").read_text()
        assert f'SPACECRAFT_ID = "LANDSAT_{prefix[-1]}"' in mtl
    # the panel records each date's platform as truth.json does
    seen = panel.drop_duplicates("scene_id").set_index("scene_id")["platform"]
    by_id = {s["id"]: s["platform"] for s in truth["scenes"]}
    for scene_id, platform in seen.items():
        assert platform == by_id[scene_id]


def test_tm_and_etm_qa_have_no_cirrus_confidence(demo_run):
    root, _, _, truth, _, _ = demo_run
    for scene in truth["scenes"]:
        if scene["kind"] != "clear":
            continue
        folder = root / "data" / "scenes" / scene["product_id"]
        with rasterio.open(folder / f"{scene['product_id']}_QA_PIXEL.TIF") as src:
            qa = src.read(1)
        cirrus_conf = (qa >> 14) & 3
        if scene["platform"] == "landsat-8":
            assert (cirrus_conf[qa != 1] == 1).all()  # OLI: "low" cirrus confidence
        else:
            assert (cirrus_conf == 0).all()  # LSDS-1618: bits 14-15 unused on TM/ETM+
            assert (qa == 5440).any()  # clear land as real Landsat 4-7 products write it


def test_slc_off_gaps_are_fill_in_the_files(demo_run):
    root, _, _, truth, _, _ = demo_run
    slc = truth["sensors"]["slc_off"]
    assert slc["scenes"], "a Landsat 7 scene after 2003-05-31 must be striped"
    for scene in truth["scenes"]:
        if scene["platform"] != "landsat-7" or scene["level"] != "L2SP":
            continue
        folder = root / "data" / "scenes" / scene["product_id"]
        with rasterio.open(folder / f"{scene['product_id']}_QA_PIXEL.TIF") as src:
            qa = src.read(1)
        with rasterio.open(folder / f"{scene['product_id']}_ST_B6.TIF") as src:
            st = src.read(1)
        fill_rows = (qa == 1).all(axis=1)
        assert ((qa == 1) == (st == 0)).all()  # fill in QA_PIXEL exactly where ST is fill
        if scene["slc_off"]:
            assert scene["date"] > "2003-05-31"
            # 4 of every 16 rows are gap, tilted: ~25 % of the pixels, no row wholly fill
            assert 0.2 < (qa == 1).mean() < 0.45, scene["id"]
            assert not fill_rows[2:-2].any()
            assert slc["gap_share_aoi"][scene["id"]] == pytest.approx(0.25, abs=0.05)
        else:
            assert scene["date"] <= "2003-05-31"
            assert scene["id"] not in slc["scenes"]


def test_slc_off_gaps_never_leak_as_values(demo_run):
    _, _, outcome, truth, panel, _ = demo_run
    slc_ids = set(truth["sensors"]["slc_off"]["scenes"])
    assert slc_ids & set(panel["scene_id"])
    # decoding fill (DN 0) would give 149 K = -124.15 C, a zero would give 0 C or -273.15 C: the
    # planted surface is never below ~10 C (river 17 C, clouds are masked)
    fill_values = (0.0, -KELVIN_C, ST_ADD_K - KELVIN_C)
    for col in ("lst_c", "lst_c_min", "lst_c_max", "water_lst_c"):
        v = panel[col].to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        for bad in fill_values:
            assert not np.any(np.isclose(v, bad, atol=1e-3)), (col, bad)
    for col in ("lst_c", "lst_c_min", "water_lst_c"):
        assert np.nanmin(panel[col]) > 5.0, col
    # a -124 or -273 degC cell would stand out by more than 100 degC from the cell's summer mean
    assert np.nanmax(np.abs(panel["anomaly_c"])) < 40.0
    # SR fill decodes to reflectance -0.2 in every band: NDVI 0 exactly, albedo < 0
    assert np.nanmin(panel["albedo"]) > 0.0
    for suhi in outcome.summary["suhi_series"]:
        assert suhi["suhi_c"] is None or 0.0 < suhi["suhi_c"] < 15.0
    # the striped cells carry a lower valid share: over a cloud-free scene the AOI mean share is
    # that of a gap-free scene of the same path (1, or less by path 041's edge fill) minus the
    # share of AOI pixels in the gaps (truth.json)
    gap = truth["sensors"]["slc_off"]["gap_share_aoi"]
    mean_share = panel.groupby("scene_id")["valid_share"].mean()
    cloud_free = [s for s in truth["scenes"] if s["kind"] == "clear" and s["aoi_cloud_share"] == 0]
    reference = {
        path: mean_share[[s["id"] for s in cloud_free if not s["slc_off"] and s["wrs_path"] == path]].mean()
        for path in (41, 42)
    }
    checked = 0
    for s in cloud_free:
        if s["slc_off"]:
            assert mean_share[s["id"]] == pytest.approx(reference[s["wrs_path"]] - gap[s["id"]], abs=0.01)
            checked += 1
    assert checked >= 2 and reference[42] == pytest.approx(1.0)
    # ... and below compute.min_valid_share a cell-date is NaN in every variable
    low = panel["valid_share"] < MIN_VALID_SHARE
    assert low[panel["scene_id"].isin(slc_ids)].mean() > 0.1
    for col in ("lst_c", "ndvi", "ndbi", "mndwi", "albedo", "lst_c_min", "lst_c_max"):
        assert panel.loc[low, col].isna().all(), col
    ok = ~low & (panel["water_share"].fillna(0) <= 0.5)
    assert panel.loc[ok, "lst_c"].notna().all()


def test_long_record_trends_recovered(demo_run):
    """The planted warming and SUHI trends over 18 summers of three sensors."""
    _, _, outcome, truth, panel, _ = demo_run
    tol = truth["tolerances"]["end_to_end"]
    n_aoi = truth["cells"]["aoi"]
    # city mean LST per summer as test_compute_demo measures it (cells at least half clear, at
    # most half water, scenes with 10 % of the AOI clear), its OLS slope against truth.json's
    # expected one (the same scenes' planted values): trend_c_per_year_abs = 0.02 degC/yr, the
    # measured end-to-end tolerance of the Landsat 8 demo (docs/demo.md)
    by_year: dict[int, list[float]] = {}
    for scene in truth["scenes"]:
        if scene.get("expected_aoi_mean_lst_c") is None or scene["clear_aoi_cells"] < 0.1 * n_aoi:
            continue
        rows = panel[
            (panel["scene_id"] == scene["id"])
            & (panel["valid_share"] >= 0.5)
            & (panel["water_share"] <= 0.5)
        ]
        by_year.setdefault(int(scene["date"][:4]), []).append(float(rows["lst_c"].mean()))
    years = sorted(by_year)
    assert len(years) == 18
    means = [np.mean(by_year[y]) for y in years]
    slope = np.polyfit(years, means, 1)[0]
    assert abs(slope - truth["expected_trend_c_per_year"]) < tol["trend_c_per_year_abs"]
    # the planted city trend (warming + development, no weather) inside the 95 % interval of
    # the measured one, whose width comes from the scene weather offsets (1.5 degC sd)
    lst_trend = linear_trend(years, means)
    assert lst_trend is not None
    assert lst_trend.low <= 10 * truth["planted_trend_c_per_year"] <= lst_trend.high

    # SUHI trend per decade from compute's summary against the planted yearly SUHI of the same
    # scenes (truth.json sensors.suhi_trend). Tolerance, per year: 0.2 degC (measured max 0.16
    # with this seed): truth's per-scene suhi_c_abs of 0.15 was measured on gap-free Landsat 8;
    # an SLC-off scene loses a quarter of its pixels, and a partly gapped cell's remaining pixels
    # are not its coverage-weighted mean (measured scene errors up to 0.26 degC). Per-year errors
    # within e bound the OLS slope's error by e sum|dx| / sum(dx^2) (dx = year - mean year):
    # 0.022 degC/yr = 0.22 degC per decade over 18 years. The planted trend (all urban and rural
    # cells, no clouds) must fall in the reported 95 % interval.
    trend = outcome.summary["suhi_trend"]
    expected = truth["sensors"]["suhi_trend"]
    per_year_abs = 0.2
    for year, value in expected["expected_yearly_c"].items():
        assert trend["yearly_suhi_c"][year] == pytest.approx(value, abs=per_year_abs), year
    dx = np.arange(18) - 8.5
    bound = 10 * per_year_abs * np.abs(dx).sum() / (dx @ dx)
    assert trend["n_years"] == 18 and (trend["first_year"], trend["last_year"]) == (1998, 2015)
    assert abs(trend["per_decade"] - expected["expected_c_per_decade"]) < bound
    assert trend["low"] <= expected["planted_c_per_decade"] <= trend["high"]


def test_report_states_the_suhi_trend_per_decade(demo_run):
    from uhi.report.builder import build_report

    _, ws, outcome, _, _, cfg = demo_run
    page = build_report(cfg, ws).read_text()
    trend = outcome.summary["suhi_trend"]
    stated = (f"<b>{trend['per_decade']:+.1f} °C per decade</b> (1998–2015, 18 summers; 95 % interval "
              f"{trend['low']:+.1f} °C to {trend['high']:+.1f} °C")
    assert page.count(stated) == 2  # the key findings and the SUHI section

"""Fetch from scenes on disk: the real Liverpool, Momotombo and Manaus clips, the full-band scenes, the demo catalog."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform_bounds

from uhi.config import Config
from uhi.errors import InputError, NoDataError
from uhi.search import search_scenes
from uhi.stages.fetch import SPEC
from uhi.stages.runner import execute
from uhi.workspace import Workspace

LANDSAT = Path(__file__).parents[1] / "data" / "landsat"


def _config(ws: Path, bbox: tuple[float, float, float, float], start: str, end: str, months: list[int],
            **search: Any) -> Config:
    return Config.model_validate({
        "city": {"name": "clip", "bbox": list(bbox)},
        "time": {"start": start, "end": end, "months": months},
        "search": {"backend": "local", "path": str(LANDSAT), **search},
        "fetch": {"workers": 2, "margin_m": 60},
        "workdir": str(ws),
    })


def _run(cfg: Config) -> tuple[Workspace, Any]:
    ws = Workspace(cfg.resolved_workdir())
    with ws.locked():
        return ws, execute(SPEC, cfg, ws)


def _inner_bbox(tif: Path, shrink: float = 0.3) -> tuple[float, float, float, float]:
    """A lon/lat box well inside a clip (its middle 40 %)."""
    with rasterio.open(tif) as src:
        w, s, e, n = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    dx, dy = (e - w) * shrink, (n - s) * shrink
    return (w + dx, s + dy, e - dx, n - dy)


def _assert_same_pixels(clip_path: Path, source: Path) -> tuple[np.ndarray, np.ndarray]:
    """The clip holds exactly the source pixels at the same grid position; returns both arrays."""
    with rasterio.open(clip_path) as clip, rasterio.open(source) as src:
        assert clip.crs == src.crs
        res = src.transform.a
        col0 = (clip.transform.c - src.transform.c) / res
        row0 = (clip.transform.f - src.transform.f) / src.transform.e
        assert col0 == int(col0) and row0 == int(row0) and col0 >= 0 and row0 >= 0
        expected = src.read(1)[int(row0):int(row0) + clip.height, int(col0):int(col0) + clip.width]
        got = clip.read(1)
        assert got.shape == expected.shape and np.array_equal(got, expected)
        return got, expected


def test_liverpool_clip_warns_about_missing_qa_pixel(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="uhi")
    folder = LANDSAT / "liverpool-LC08-20200927"
    product = "LC08_L2SP_204023_20200927_20201006_02_T1"
    cfg = _config(tmp_path / "ws", _inner_bbox(folder / f"{product}_SR_B4.TIF"), "2020-01-01", "2020-12-31", [9])
    ws, outcome = _run(cfg)
    assert outcome.summary["scenes"] == 1 and outcome.summary["assets_fetched"] == 7
    assert f"{product}: no QA_PIXEL band: clouds, shadows and snow cannot be masked" in caplog.text
    # the other four real scenes are elsewhere or in other months, and the log says so
    assert "dropped 4 scene(s): no overlap" in caplog.text
    for key, band in (("red", "SR_B4"), ("lwir11", "ST_B10"), ("swir22", "SR_B7")):
        _assert_same_pixels(ws.scene_asset(product, key), folder / f"{product}_{band}.TIF")
    feature = json.loads(ws.scenes_index.read_text())["features"][0]
    assert sorted(feature["assets"]["red"]) >= ["alternate", "href"]
    mtl = (folder / f"{product}_MTL.txt").read_text()
    assert feature["properties"]["eo:cloud_cover"] == float(mtl.split("CLOUD_COVER = ")[1].split()[0])
    assert feature["properties"]["uhi:solar_day"] == "2020-09-27"


def test_momotombo_keeps_st_fill_pixels_as_nodata(tmp_path: Path) -> None:
    folder = LANDSAT / "momotombo-LC08-20151205"
    product = "LC08_L2SP_017051_20151205_20200908_02_T1"
    with rasterio.open(folder / f"{product}_ST_B10.TIF") as src:
        w, s, e, n = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    # the whole clip: its 48 fill pixels must arrive as fill, flagged by nodata
    cfg = _config(tmp_path / "ws", (w, s, e, n), "2015-01-01", "2015-12-31", [12], max_cloud=80)
    ws, outcome = _run(cfg)
    assert outcome.summary["scenes"] == 1
    got, expected = _assert_same_pixels(ws.scene_asset(product, "lwir11"), folder / f"{product}_ST_B10.TIF")
    assert int((got == 0).sum()) == int((expected == 0).sum()) == 48
    with rasterio.open(ws.scene_asset(product, "lwir11")) as clip:
        assert clip.nodata == 0
        # self-describing: band name, unit, and the USGS ST scale/offset (LSDS-1619) to kelvin
        assert clip.descriptions == ("lwir11",) and clip.units == ("kelvin",)
        assert clip.scales == (0.00341802,) and clip.offsets == (149.0,)
        # the local source is named, not its absolute path (clips are shared with others)
        tags = clip.tags()
        assert tags["uhi_source"].startswith(f"local:{product}_ST_B10.TIF:")
        assert str(tmp_path) not in json.dumps(tags) and str(LANDSAT) not in json.dumps(tags)


def test_manaus_without_thermal_band(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="uhi")
    folder = LANDSAT / "manaus-LC09-20230723"
    product = "LC09_L2SP_231062_20230723_20230802_02_T1"
    bbox = _inner_bbox(folder / f"{product}_SR_B4.TIF")
    with pytest.raises(NoDataError) as err:
        search_scenes(_config(tmp_path / "ws", bbox, "2023-01-01", "2023-12-31", [7]))
    assert "1 no thermal band" in str(err.value) and err.value.exit_code == 3
    cfg = _config(tmp_path / "ws", bbox, "2023-01-01", "2023-12-31", [7], require_thermal=False)
    ws, outcome = _run(cfg)
    assert outcome.summary["assets_fetched"] == 6
    assert f"{product}: no thermal band (ST_B10): no land surface temperature" in caplog.text
    assert not ws.scene_asset(product, "lwir11").exists()
    # southern hemisphere on a north-zone grid (negative northing): pixels still line up
    _assert_same_pixels(ws.scene_asset(product, "nir08"), folder / f"{product}_SR_B5.TIF")


@pytest.mark.parametrize(
    ("folder", "product", "start", "month"),
    [
        ("fullbands-LC08-008059-cloudy81", "LC08_L2SP_008059_20191201_20200825_02_T1", "2019-01-01", 12),
        ("fullbands-LC08-017036-cloudy100", "LC08_L2SP_017036_20130419_20200913_02_T2", "2013-01-01", 4),
    ],
)
def test_full_band_scenes_fetch_all_nine_assets(tmp_path: Path, folder: str, product: str, start: str,
                                                month: int) -> None:
    src_dir = LANDSAT / folder
    bbox = _inner_bbox(src_dir / f"{product}_SR_B4.TIF", shrink=0.45)
    cfg = _config(tmp_path / "ws", bbox, start, start[:4] + "-12-31", [month], max_cloud=100)
    ws, outcome = _run(cfg)
    assert outcome.summary["assets_fetched"] == 9
    for key, band in (("qa_pixel", "QA_PIXEL"), ("qa", "ST_QA"), ("lwir11", "ST_B10"), ("blue", "SR_B2")):
        _assert_same_pixels(ws.scene_asset(product, key), src_dir / f"{product}_{band}.TIF")
    with rasterio.open(ws.scene_asset(product, "qa")) as clip:
        assert clip.nodata == -9999
    # the default cloud limit drops them with the reason in the message
    with pytest.raises(NoDataError, match="1 cloud"):
        search_scenes(_config(tmp_path / "ws2", bbox, start, start[:4] + "-12-31", [month]))


def test_folder_without_landsat_files(tmp_path: Path) -> None:
    cfg = _config(tmp_path / "ws", (-3.1, 53.4, -3.0, 53.5), "2020-01-01", "2020-12-31", [9])
    cfg = cfg.model_copy(update={"search": cfg.search.model_copy(update={"path": tmp_path})})
    with pytest.raises(InputError, match="no Landsat Collection 2 Level-2 files"):
        search_scenes(cfg)


@pytest.fixture(scope="module")
def demo_city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from uhi.demo import DemoSpec, write_demo

    root = tmp_path_factory.mktemp("demo")
    write_demo(root, DemoSpec(size_km=2.0, first_year=2019, last_year=2020), threads=2)
    return root


def test_demo_catalog_fetch_matches_truth(demo_city: Path, tmp_path: Path) -> None:
    from uhi.config import load_config

    cfg = load_config(demo_city / "config.yaml", overrides={"workdir": str(tmp_path / "ws")})
    truth = json.loads((demo_city / "truth.json").read_text())
    ws, outcome = _run(cfg)
    expected = {
        s["id"] for s in truth["scenes"]
        if s["level"] == "L2SP" and s["eo_cloud_cover"] <= cfg.search.max_cloud
    }
    index = json.loads(ws.scenes_index.read_text())
    assert {f["id"] for f in index["features"]} == expected
    assert outcome.summary["assets_fetched"] == 9 * len(expected)
    feature = index["features"][0]
    source = Path(feature["assets"]["red"]["alternate"]["source"]["href"])
    assert source.is_file()
    _assert_same_pixels(ws.stage_dir("fetch") / feature["assets"]["red"]["href"], source)
    # a second run is a no-op for the runner (manifest fingerprint unchanged)
    ws, again = _run(cfg)
    assert again.skipped


def test_qa_pixel_clip_declares_the_usgs_fill(tmp_path: Path) -> None:
    folder = LANDSAT / "fullbands-LC08-008059-cloudy81"
    product = "LC08_L2SP_008059_20191201_20200825_02_T1"
    with rasterio.open(folder / f"{product}_QA_PIXEL.TIF") as src:
        assert src.nodata is None  # the source declares none
    bbox = _inner_bbox(folder / f"{product}_SR_B4.TIF", shrink=0.45)
    ws, _ = _run(_config(tmp_path / "ws", bbox, "2019-01-01", "2019-12-31", [12], max_cloud=100))
    with rasterio.open(ws.scene_asset(product, "qa_pixel")) as clip:
        assert clip.nodata == 1  # fill = bit 0 only (LSDS-1619)


def test_changed_margin_refetches_even_without_proj_metadata(tmp_path: Path) -> None:
    from shapely.geometry import box

    from uhi.raster.read import ReadOptions
    from uhi.stages.fetch import AssetTask, fetch_asset

    folder = LANDSAT / "liverpool-LC08-20200927"
    href = str(folder / "LC08_L2SP_204023_20200927_20201006_02_T1_SR_B4.TIF")
    aoi = box(*_inner_bbox(Path(href)))
    target = tmp_path / "red.tif"

    def task(margin_m: float) -> AssetTask:
        return AssetTask("s", "red", href, str(target), aoi.wkb, margin_m, ReadOptions(allow_local=True))

    first = fetch_asset(task(0.0))
    assert first["status"] == "fetched"
    assert fetch_asset(task(0.0))["status"] == "reused"
    wider = fetch_asset(task(90.0))
    assert wider["status"] == "fetched"
    # three more 30 m pixels on every side
    assert wider["shape"] == [first["shape"][0] + 6, first["shape"][1] + 6]


def test_scene_folder_changes_make_fetch_run_again(tmp_path: Path) -> None:
    """A scene copied into a local folder is noticed by `uhi run` without --force; an unrelated
    file is not (the folder enters the fingerprint by name, size and mtime of its scene files)."""
    import shutil

    src = LANDSAT / "liverpool-LC08-20200927"
    product = "LC08_L2SP_204023_20200927_20201006_02_T1"
    folder = tmp_path / "scenes"
    shutil.copytree(src, folder / src.name)
    cfg = _config(tmp_path / "ws", _inner_bbox(src / f"{product}_SR_B4.TIF"), "2020-01-01", "2020-12-31", [9])
    cfg = cfg.model_copy(update={"search": cfg.search.model_copy(update={"path": folder})})
    ws, first = _run(cfg)
    assert not first.skipped and first.summary["scenes"] == 1
    (folder / "notes.md").write_text("field notes")
    assert _run(cfg)[1].skipped
    # a second scene arrives (here the Momotombo clip: elsewhere, so dropped, but searched)
    shutil.copytree(LANDSAT / "momotombo-LC08-20151205", folder / "momotombo")
    ws, again = _run(cfg)
    assert not again.skipped and again.summary["assets_fetched"] == 0  # the clips it had are kept
    labels = [k for k in (ws.stage_record("fetch") or {})["inputs"] if k.startswith("listing of")]
    assert labels == [f"listing of {folder.resolve()}"]
    assert _run(cfg)[1].skipped


def test_catalog_item_edit_makes_fetch_run_again(demo_city: Path, tmp_path: Path) -> None:
    import shutil

    from uhi.config import load_config

    data = tmp_path / "data"
    shutil.copytree(demo_city / "data", data)
    cfg = load_config(demo_city / "config.yaml", overrides={
        "workdir": str(tmp_path / "ws"), "search": {"path": str(data / "catalog" / "catalog.json")},
        "city": {"aoi": str(data / "aoi.geojson")},
    })
    assert not _run(cfg)[1].skipped
    assert _run(cfg)[1].skipped
    first = json.loads(_run(cfg)[0].scenes_index.read_text())["features"][0]["id"]
    item = next(p for p in (data / "catalog").rglob("*.json") if p.stem == first)
    doc = json.loads(item.read_text())
    doc["properties"]["eo:cloud_cover"] = 99.0  # now over max_cloud: the scene must be dropped
    item.write_text(json.dumps(doc))
    ws, again = _run(cfg)
    assert not again.skipped
    index = json.loads(ws.scenes_index.read_text())
    assert doc["id"] not in {f["id"] for f in index["features"]}


FULL_SCENE = "LC08_L2SP_008059_20191201_20200825_02_T1"


def _relabelled_scene(folder: Path, band: str, epsg: int) -> Path:
    """A copy of the full-band scene whose ``band`` file claims another CRS (pixels untouched)."""
    import shutil

    from rasterio.crs import CRS

    shutil.copytree(LANDSAT / "fullbands-LC08-008059-cloudy81", folder)
    with rasterio.open(folder / f"{FULL_SCENE}_{band}.TIF", "r+") as ds:
        ds.crs = CRS.from_epsg(epsg)
    return folder


def test_band_with_another_crs_label_drops_the_scene_naming_band_and_crs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from uhi.cli.main import main

    # SR_B4 gives the scene its footprint; nir08 (SR_B5) is the odd one out
    scenes = _relabelled_scene(tmp_path / "scenes", "SR_B5", 32619)
    w, s, e, n = _inner_bbox(scenes / f"{FULL_SCENE}_SR_B2.TIF", shrink=0.45)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        f"city: {{name: crs, bbox: [{w}, {s}, {e}, {n}]}}\n"
        "time: {start: 2019-01-01, end: 2019-12-31, months: [12]}\n"
        f"search: {{backend: local, path: '{scenes}', max_cloud: 100}}\n"
    )
    with pytest.raises(SystemExit) as done:
        main(["fetch", str(cfg), "--workdir", str(tmp_path / "ws")])
    err = capsys.readouterr().err
    # before: fetched without a word, then compute said "missing reflectance assets red ... add
    # them to fetch.assets"; now the scene is dropped with the band, its label and the siblings'
    assert done.value.code == 3, err
    assert f"dropped {FULL_SCENE}: band nir08 is labelled EPSG:32619 while its other bands are EPSG:32618" in err
    assert "1 with bands in different CRSs" in err and "fetch.assets" not in err
    assert not (tmp_path / "ws" / "fetch" / "scenes.geojson").exists()


def test_crs_mismatch_names_every_label_on_a_tie() -> None:
    from uhi.stages.fetch import crs_mismatch

    assert crs_mismatch({"red": {"crs": "EPSG:32618"}, "blue": {"crs": "EPSG:32618"}}) is None
    assert crs_mismatch({"red": {"crs": "EPSG:32618"}, "blue": {"crs": None}}) is None
    assert crs_mismatch({"red": {"crs": "EPSG:32619"}, "blue": {"crs": "EPSG:32618"}}) == (
        "its bands are labelled with different CRSs (blue EPSG:32618, red EPSG:32619)"
    )


def test_clip_relabelled_after_fetch_is_refused_by_compute(tmp_path: Path) -> None:
    from rasterio.crs import CRS

    from uhi.raster.scene import load_scenes

    src_dir = LANDSAT / "fullbands-LC08-008059-cloudy81"
    bbox = _inner_bbox(src_dir / f"{FULL_SCENE}_SR_B4.TIF", shrink=0.45)
    ws, _ = _run(_config(tmp_path / "ws", bbox, "2019-01-01", "2019-12-31", [12], max_cloud=100))
    assert [s.scene_id for s in load_scenes(ws)] == [FULL_SCENE]
    with rasterio.open(ws.scene_asset(FULL_SCENE, "nir08"), "r+", IGNORE_COG_LAYOUT_BREAK="YES") as ds:
        ds.crs = CRS.from_epsg(32619)
    with pytest.raises(InputError, match=f"scene {FULL_SCENE}: band nir08 is labelled EPSG:32619, its red band "
                                         "EPSG:32618; .*uhi fetch --force"):
        load_scenes(ws)

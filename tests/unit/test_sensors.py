"""Landsat 4/5/7 TM and ETM+ beside 8/9: one band table, real L5/L7 items, ids, MTL scales, config."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pystac
import pytest
from shapely.geometry import box

from uhi import landsat
from uhi.config import build_config
from uhi.errors import ConfigError
from uhi.search.normalize import SceneFilter, canonicalize_item, filter_items, merge_split_items

STAC = Path(__file__).parents[1] / "data" / "stac"
# The USGS band numbers behind each canonical key, written here from LSDS-1618 (TM/ETM+) and
# LSDS-1619 (OLI/TIRS), band designations, independently of uhi.landsat.
TM_ETM_FILES = {
    "blue": "_SR_B1.TIF", "green": "_SR_B2.TIF", "red": "_SR_B3.TIF", "nir08": "_SR_B4.TIF",
    "swir16": "_SR_B5.TIF", "swir22": "_SR_B7.TIF", "lwir11": "_ST_B6.TIF",
    "qa_pixel": "_QA_PIXEL.TIF", "qa": "_ST_QA.TIF", "cdist": "_ST_CDIST.TIF",
}
OLI_FILES = {
    "blue": "_SR_B2.TIF", "green": "_SR_B3.TIF", "red": "_SR_B4.TIF", "nir08": "_SR_B5.TIF",
    "swir16": "_SR_B6.TIF", "swir22": "_SR_B7.TIF", "lwir11": "_ST_B10.TIF",
    "qa_pixel": "_QA_PIXEL.TIF", "qa": "_ST_QA.TIF", "cdist": "_ST_CDIST.TIF",
}


def _item(path: Path) -> pystac.Item:
    return pystac.Item.from_dict(json.loads(path.read_text()))


@pytest.mark.parametrize(
    ("name", "platform", "sensor"),
    [
        ("LT05_L2SP_010067_19860424_02_T2.json", "landsat-5", "TM"),
        ("LE07_L2SP_021030_20100109_02_T1.json", "landsat-7", "ETM+"),
    ],
)
def test_real_l5_and_l7_items_normalise_to_the_l8_canonical_assets(name: str, platform: str, sensor: str) -> None:
    """Catches an OLI-only key table (no `lwir`), or TM bands read with OLI numbering."""
    item = canonicalize_item(_item(STAC / "stactools-examples" / name))
    l8 = canonicalize_item(_item(STAC / "stactools-examples" / "LC08_L2SP_047027_20201204_02_T1.json"))
    for key, suffix in TM_ETM_FILES.items():
        assert item.assets[key].href.endswith(suffix), key
        assert l8.assets[key].href.endswith(OLI_FILES[key]), key
    assert item.properties["platform"] == platform
    assert item.properties["uhi:sensor"] == sensor
    assert item.properties["uhi:level"] == "L2SP"
    # the collection's own raster:bands carry the same scale as LSDS-1618 states
    assert item.properties["uhi:scales"]["lwir11"] == [0.00341802, 149.0, 0]
    assert item.properties["uhi:scales"]["blue"] == [2.75e-05, -0.2, 0]
    assert "coastal" not in item.assets  # TM/ETM+ have no coastal band


def test_le07_usgs_sidecars_without_a_platform_read_band_numbers_as_etm() -> None:
    """The LE07 SR sidecar (STAC 0.7) has keys SR_B1.TIF ..; with its platform removed only the
    id tells the numbering. Read with OLI numbering SR_B1 would become `coastal` and SR_B4 `red`."""
    folder = STAC / "usgs-sidecars"
    sr = pystac.Item.from_file(str(folder / "LE07_L2SP_021030_20100109_20200911_02_T1_SR_stac.json"))
    st = pystac.Item.from_file(str(folder / "LE07_L2SP_021030_20100109_20200911_02_T1_ST_stac.json"))
    assert "SR_B1.TIF" in sr.assets
    for it in (sr, st):
        it.properties.pop("platform", None)
    [merged] = merge_split_items([sr, st])
    item = canonicalize_item(merged)
    for key, suffix in TM_ETM_FILES.items():
        assert item.assets[key].href.endswith(suffix), key
    assert item.properties["platform"] == "landsat-7"


def test_lt05_usgs_sidecars_merge_into_one_tm_item() -> None:
    folder = STAC / "usgs-sidecars"
    items = [
        pystac.Item.from_file(str(folder / f"LT05_L2SP_010067_19860424_20200918_02_T2_{kind}_stac.json"))
        for kind in ("SR", "ST")
    ]
    [merged] = merge_split_items(items)
    item = canonicalize_item(merged)
    for key, suffix in TM_ETM_FILES.items():
        assert item.assets[key].href.endswith(suffix), key
    assert item.properties["platform"] == "landsat-5"


def test_mss_scene_is_dropped_with_its_reason() -> None:
    """A real Landsat 5 MSS item (Level-1 only) names its bands green/red/nir08 like an L2 item:
    it must be dropped as MSS, not kept or dropped for the wrong reason."""
    mss = canonicalize_item(_item(STAC / "usgs-sidecars" / "LM05_L1GS_001001_19850524_20210918_02_T2_stac.json"))
    tm = canonicalize_item(_item(STAC / "stactools-examples" / "LT05_L2SP_010067_19860424_02_T2.json"))
    world = box(-180, -90, 180, 90)
    cfg = build_config({"search": {"platforms": "all"}, "time": {"start": "1980-01-01", "end": "2020-12-31",
                                                                  "months": list(range(1, 13))}})
    filt = SceneFilter.from_config(cfg, world)
    filt = SceneFilter(**{**filt.__dict__, "max_cloud": 100.0})
    kept, dropped = filter_items([mss, tm], filt)
    assert [k.id for k in kept] == [tm.id]
    assert dropped == {"MSS (no Level-2 product)": 1}
    assert landsat.sensor_for("landsat-5", mss.id) is None


@pytest.mark.parametrize(
    ("scene_id", "platform", "sensor"),
    [
        ("LT04_L2SP_002026_19830110_20200918_02_T1", "landsat-4", "TM"),
        ("LT05_L2SP_010067_19860424_20200918_02_T2", "landsat-5", "TM"),
        ("LE07_L2SP_021030_20100109_20200911_02_T1", "landsat-7", "ETM+"),
        ("LC09_L2SP_010065_20220129_20220131_02_T1", "landsat-9", "OLI/TIRS"),
    ],
)
def test_scene_ids_of_every_sensor_parse(scene_id: str, platform: str, sensor: str) -> None:
    parsed = landsat.parse_scene_id(scene_id)
    assert parsed is not None and parsed.platform == platform and parsed.level == "L2SP"
    found = landsat.sensor_for(scene_id=scene_id)
    assert found is not None and found.name == sensor


def test_mtl_scales_follow_the_sensor_numbering() -> None:
    """REFLECTANCE_MULT_BAND_1 is blue on TM/ETM+ (coastal on OLI); TM thermal is ST_B6."""
    text = """GROUP = LANDSAT_METADATA_FILE
  GROUP = PRODUCT_CONTENTS
    LANDSAT_PRODUCT_ID = "LT05_L2SP_010067_19860424_20200918_02_T2"
  END_GROUP = PRODUCT_CONTENTS
  GROUP = IMAGE_ATTRIBUTES
    SPACECRAFT_ID = "LANDSAT_5"
  END_GROUP = IMAGE_ATTRIBUTES
  GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS
    REFLECTANCE_MULT_BAND_1 = 1.1E-05
    REFLECTANCE_ADD_BAND_1 = -0.1
    REFLECTANCE_MULT_BAND_3 = 2.75E-05
    REFLECTANCE_ADD_BAND_3 = -0.2
  END_GROUP = LEVEL2_SURFACE_REFLECTANCE_PARAMETERS
  GROUP = LEVEL2_SURFACE_TEMPERATURE_PARAMETERS
    TEMPERATURE_MULT_BAND_ST_B6 = 0.00341802
    TEMPERATURE_ADD_BAND_ST_B6 = 149.0
  END_GROUP = LEVEL2_SURFACE_TEMPERATURE_PARAMETERS
END_GROUP = LANDSAT_METADATA_FILE
END
"""
    scales = landsat.scales_from_mtl(landsat.parse_mtl(text))
    assert scales["blue"] == landsat.BandScale(1.1e-05, -0.1, 0)
    assert scales["red"] == landsat.BandScale(2.75e-05, -0.2, 0)
    assert scales["lwir11"] == landsat.BandScale(0.00341802, 149.0, 0)
    assert "coastal" not in scales


def test_platforms_default_all_and_listed() -> None:
    assert build_config({}).search.platforms == ("landsat-8", "landsat-9")
    assert build_config({"search": {"platforms": "all"}}).search.platforms == (
        "landsat-4", "landsat-5", "landsat-7", "landsat-8", "landsat-9"
    )
    assert build_config({"search": {"platforms": ["landsat-5", "landsat-7"]}}).search.platforms == (
        "landsat-5", "landsat-7"
    )
    with pytest.raises(ConfigError, match="landsat-4', 'landsat-5', 'landsat-7', 'landsat-8' or 'landsat-9'"):
        build_config({"search": {"platforms": ["landsat-3"]}})


def test_unknown_platform_exits_2_naming_the_allowed_values(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("search:\n  platforms: [landsat-8, sentinel-2]\n")
    r = subprocess.run([sys.executable, "-m", "uhi.cli.main", "run", "c.yaml"], capture_output=True, text=True,
                       cwd=tmp_path, timeout=120)
    assert r.returncode == 2
    assert "search.platforms" in r.stderr and "sentinel-2" in r.stderr and "landsat-4" in r.stderr
    assert "Traceback" not in r.stderr


def test_filter_keeps_only_the_asked_platforms() -> None:
    tm = canonicalize_item(_item(STAC / "stactools-examples" / "LT05_L2SP_010067_19860424_02_T2.json"))
    etm = canonicalize_item(_item(STAC / "stactools-examples" / "LE07_L2SP_021030_20100109_02_T1.json"))
    cfg = build_config({"search": {"platforms": ["landsat-7"], "max_cloud": 100},
                        "time": {"start": "1980-01-01", "end": "2020-12-31", "months": list(range(1, 13))}})
    kept, dropped = filter_items([tm, etm], SceneFilter.from_config(cfg, box(-180, -90, 180, 90)))
    assert [k.id for k in kept] == [etm.id] and dropped == {"platform": 1}
    assert dt.date.fromisoformat(kept[0].properties["uhi:solar_day"]).year == 2010

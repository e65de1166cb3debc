"""Canonical items: asset keys, USGS split items, solar day, scales, client-side filters on real items."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pystac
import pytest
from shapely.geometry import box, shape

from uhi import landsat
from uhi.config import Config
from uhi.search.normalize import (
    SceneFilter,
    canonicalize_item,
    filter_items,
    merge_split_items,
    normalize_platform,
    solar_day,
)

STAC = Path(__file__).parents[1] / "data" / "stac"
CANONICAL_BANDS = ("blue", "green", "red", "nir08", "swir16", "swir22", "lwir11", "qa_pixel", "qa")


def _pc_items() -> list[pystac.Item]:
    raw = json.loads((STAC / "planetary-computer" / "landsat-c2-l2-items-stackstac.json").read_text())
    return [pystac.Item.from_dict(d) for d in raw]


def test_platform_names() -> None:
    assert normalize_platform("LANDSAT_9") == "landsat-9"
    assert normalize_platform("landsat-8") == "landsat-8"
    assert normalize_platform("Landsat 8") == "landsat-8"
    assert normalize_platform(None) is None


def test_old_usgs_sidecars_merge_into_one_canonical_item() -> None:
    folder = STAC / "usgs-sidecars"
    sr = pystac.Item.from_file(str(folder / "LC08_L2SP_047027_20201204_20210313_02_T1_SR_stac.json"))
    st = pystac.Item.from_file(str(folder / "LC08_L2SP_047027_20201204_20210313_02_T1_ST_stac.json"))
    [merged] = merge_split_items([sr, st])
    item = canonicalize_item(merged)
    assert set(CANONICAL_BANDS) <= set(item.assets)
    # the canonical key points at the file USGS named for that band
    assert item.assets["red"].href.endswith("_SR_B4.TIF")
    assert item.assets["lwir11"].href.endswith("_ST_B10.TIF")
    assert item.assets["qa"].href.endswith("_ST_QA.TIF")
    assert item.properties["platform"] == "landsat-8"
    assert item.properties["uhi:level"] == "L2SP"


def test_landsatlook_sr_and_st_items_merge_per_scene() -> None:
    sr = pystac.Item.from_file(str(STAC / "usgs-landsatlook" / "LC09_L2SP_092068_20230607_20230609_02_T1_SR.json"))
    # landsatlook's ST item: same scene, its own id suffix and thermal assets
    st = sr.clone()
    st.id = sr.id.removesuffix("_SR") + "_ST"
    st.assets = {}
    href = sr.assets["red"].href.replace("_SR_B4.TIF", "_ST_B10.TIF")
    st.add_asset("lwir11", pystac.Asset(href=href))
    st.properties["eo:cloud_cover"] = 99.0  # the SR item's properties lead
    [merged] = merge_split_items([st, sr])
    item = canonicalize_item(merged)
    assert item.id == "LC09_L2SP_092068_20230607_20230609_02_T1"
    assert {"red", "lwir11"} <= set(item.assets)
    assert item.properties["eo:cloud_cover"] == 24.51
    assert item.properties["platform"] == "landsat-9"


def test_solar_day_is_the_local_date_of_a_morning_overpass() -> None:
    raw = json.loads((STAC / "planetary-computer" / "landsat-c2-l2-pc.json").read_text())
    features = raw["features"] if isinstance(raw, dict) else raw
    item = canonicalize_item(pystac.Item.from_dict(features[0]))
    when = item.datetime
    lon = shape(item.geometry).centroid.x
    assert when.hour >= 23  # Tasmania: late evening UTC ...
    local_hours = (when.hour + when.minute / 60 + lon / 15) % 24
    assert 9.0 < local_hours < 11.0  # ... is Landsat's ~10:00 descending-node morning overpass
    assert item.properties["uhi:solar_day"] == (when.date() + dt.timedelta(days=1)).isoformat()
    assert solar_day(dt.datetime(2020, 9, 27, 11, 5, tzinfo=dt.UTC), -3.1) == dt.date(2020, 9, 27)


def test_scales_come_from_raster_bands_and_agree_with_lsds_1619() -> None:
    for raw_item in _pc_items():
        item = canonicalize_item(raw_item)
        scales = item.properties["uhi:scales"]
        for key, (scale, offset, fill) in scales.items():
            rb = raw_item.assets[key].extra_fields["raster:bands"][0]
            documented = landsat.scale_for(key)
            if "scale" in rb:
                assert (scale, offset) == (rb["scale"], rb.get("offset", 0.0))
                assert fill == rb.get("nodata", documented.fill)
            documented = landsat.scale_for(key)
            assert scale == pytest.approx(documented.scale, rel=1e-9)
            assert offset == pytest.approx(documented.offset, abs=1e-12)


def test_mtl_scales_used_when_no_raster_bands(data_dir: Path) -> None:
    from uhi.search.local import items_from_folder

    [item] = items_from_folder(data_dir / "landsat" / "liverpool-LC08-20200927")
    mtl = (data_dir / "landsat" / "liverpool-LC08-20200927" / f"{item.id}_MTL.txt").read_text()
    mult = float(re.search(r"REFLECTANCE_MULT_BAND_4 = (\S+)", mtl).group(1))
    add = float(re.search(r"REFLECTANCE_ADD_BAND_4 = (\S+)", mtl).group(1))
    tmult = float(re.search(r"TEMPERATURE_MULT_BAND_ST_B10 = (\S+)", mtl).group(1))
    assert item.properties["uhi:scales"]["red"] == [mult, add, 0]
    assert item.properties["uhi:scales"]["lwir11"][0] == tmult


def test_client_side_filters_on_real_planetary_computer_items() -> None:
    raw = _pc_items()
    items = [canonicalize_item(i) for i in raw]
    aoi = box(100, -80, 170, -10)
    cfg = Config.model_validate(
        {"time": {"start": "2023-10-01", "end": "2023-10-31", "months": [10]}, "search": {"max_cloud": 50}}
    )
    kept, dropped = filter_items(items, SceneFilter.from_config(cfg, aoi))
    # independent reference straight from the JSON: L2SR by id, then cloud among L2SP
    l2sr = [i for i in raw if "_L2SR_" in i.id]
    l2sp = [i for i in raw if "_L2SP_" in i.id]
    cloudy = [i for i in raw if i.properties["eo:cloud_cover"] > 50]
    assert dropped["cloud"] == len(cloudy)
    assert dropped["L2SR (no thermal)"] == len([i for i in l2sr if i.properties["eo:cloud_cover"] <= 50])
    assert sorted(i.id for i in kept) == sorted(i.id for i in l2sp if i.properties["eo:cloud_cover"] <= 50)
    assert all("lwir11" in i.assets for i in kept)
    assert len(kept) > 0


def test_months_dates_platform_and_overlap_filters() -> None:
    items = [canonicalize_item(i) for i in _pc_items()]
    sp = [i for i in items if i.properties["uhi:level"] == "L2SP"]
    cfg = Config.model_validate({"time": {"start": "2023-01-01", "end": "2023-12-31", "months": [6, 7, 8]},
                                 "search": {"max_cloud": 100}})
    kept, dropped = filter_items(sp, SceneFilter.from_config(cfg, box(100, -80, 170, -10)))
    assert not kept and dropped == {"months": len(sp)}
    cfg = Config.model_validate({"time": {"start": "2023-10-01", "end": "2023-10-31", "months": [10]},
                                 "search": {"max_cloud": 100, "platforms": ["landsat-8"]}})
    kept, dropped = filter_items(sp, SceneFilter.from_config(cfg, box(100, -80, 170, -10)))
    assert not kept and dropped == {"platform": len(sp)}
    cfg = Config.model_validate({"time": {"start": "2024-01-01", "end": "2024-12-31"}})
    kept, dropped = filter_items(sp, SceneFilter.from_config(cfg, box(100, -80, 170, -10)))
    assert dropped == {"dates": len(sp)}
    kept, dropped = filter_items(sp, SceneFilter.from_config(cfg, box(-10, 50, -9, 51)))
    assert dropped == {"no overlap": len(sp)}


def test_describe_lists_the_filters() -> None:
    cfg = Config.model_validate({"time": {"start": "2020-06-01", "end": "2020-08-31"}, "search": {"max_cloud": 20}})
    text = SceneFilter.from_config(cfg, box(0, 0, 1, 1)).describe()
    assert "2020-06-01/2020-08-31" in text and "cloud <= 20 %" in text and "months 6,7,8" in text

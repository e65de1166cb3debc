"""One scene, windowed: row bands of any height give the same statistics and rasters."""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pytest
import rasterio
from rasterio.warp import transform_bounds
from shapely.geometry import box

from uhi.config import MaskingConfig
from uhi.errors import InputError
from uhi.grid.cells import cell_quads, tiles_for_geometry
from uhi.grid.zonal import build_coverage, zonal_stats
from uhi.landsat import canonical_asset_key
from uhi.raster.indices import SceneTask, process_scene, scene_grid
from uhi.raster.scene import Scene


@pytest.fixture(scope="module")
def cloudy81(tmp_path_factory, data_dir):
    folder = data_dir / "landsat" / "fullbands-LC08-008059-cloudy81"
    out = tmp_path_factory.mktemp("scene")
    assets = {}
    for f in folder.glob("*.TIF"):
        key = canonical_asset_key(f.name, f.name)
        if key:
            assets[key] = out / f"{key}.tif"
            shutil.copy(f, assets[key])
    scene = Scene("LC08_L2SP_008059_20191201_20200825_02_T1", dt.date(2019, 12, 1), "L2SP", assets, {})
    crs, transform, shape = scene_grid(scene)
    with rasterio.open(assets["red"]) as src:
        w, s, e, n = transform_bounds(src.crs, 4326, *src.bounds)
    x, y = tiles_for_geometry(box(w, s, e, n), 13)
    cov = build_coverage(cell_quads(x, y, 13, crs), transform, shape)
    return scene, cov, out


def test_row_bands_do_not_change_the_result(cloudy81, tmp_path):
    scene, cov, _ = cloudy81
    whole = process_scene(SceneTask(scene, MaskingConfig(), coverage=cov, out_dir=tmp_path / "a", rows_per_block=4096))
    banded = process_scene(SceneTask(scene, MaskingConfig(), coverage=cov, out_dir=tmp_path / "b", rows_per_block=37))
    assert whole.clear_px == banded.clear_px > 0
    # only LST keeps its spread and extremes (the panel's lst_c_std/min/max); the rest are means
    assert [v for v, acc in whole.accumulators.items() if acc.has_moments] == ["lst_c"]
    for var, acc in whole.accumulators.items():
        a, b = acc.result(), banded.accumulators[var].result()
        assert set(a) == ({"mean", "std", "min", "max", "weight"} if var == "lst_c" else {"mean", "weight"})
        for key in set(a) - {"std"}:
            np.testing.assert_allclose(a[key], b[key], rtol=1e-9, atol=1e-12, equal_nan=True)
    for var in ("lst_c", "ndvi", "valid"):
        with rasterio.open(whole.cogs[var]) as s1, rasterio.open(banded.cogs[var]) as s2:
            np.testing.assert_array_equal(s1.read(1), s2.read(1))
            assert s1.profile["blockxsize"] == 256  # tiled COG


def test_scene_statistics_equal_zonal_stats_of_its_own_raster(cloudy81, tmp_path):
    scene, cov, _ = cloudy81
    res = process_scene(SceneTask(scene, MaskingConfig(), coverage=cov, out_dir=tmp_path / "c", rows_per_block=100))
    with rasterio.open(res.cogs["lst_c"]) as src:
        lst = src.read(1).astype(np.float64)
    with rasterio.open(res.cogs["valid"]) as src:
        valid = src.read(1)
    # the valid raster agrees with the LST mask; the COG keeps water pixels' LST
    np.testing.assert_array_equal(valid > 0, ~np.isnan(lst))
    assert (valid == 2).sum() > 0 and (valid == 1).sum() > 0
    # cell means over land pixels only (valid == 1), water's LST apart (valid == 2)
    land_ref = zonal_stats(cov, np.where(valid == 1, lst, np.nan))
    water_ref = zonal_stats(cov, np.where(valid == 2, lst, np.nan))
    got = res.accumulators["lst_c"].result()
    np.testing.assert_allclose(got["mean"], land_ref["mean"], rtol=1e-9, equal_nan=True)
    np.testing.assert_allclose(res.water_lst.result()["mean"], water_ref["mean"], rtol=1e-9, equal_nan=True)
    assert np.isfinite(res.water_lst.result()["mean"]).any()
    assert res.has_thermal


def test_missing_reflectance_asset_is_an_input_error(cloudy81, tmp_path):
    scene, cov, _ = cloudy81
    partial = Scene(scene.scene_id, scene.solar_day, scene.level, {k: v for k, v in scene.assets.items() if k != "swir22"}, {})
    with pytest.raises(InputError, match="missing reflectance assets swir22"):
        process_scene(SceneTask(partial, MaskingConfig(), coverage=cov))


def test_assets_on_different_grids_are_an_input_error(cloudy81, tmp_path):
    scene, cov, out = cloudy81
    odd = tmp_path / "red.tif"
    with rasterio.open(scene.assets["red"]) as src:
        profile = src.profile | {"height": src.height - 1}
        data = src.read(1)[:-1]
    with rasterio.open(odd, "w", **profile) as dst:
        dst.write(data, 1)
    broken = Scene(scene.scene_id, scene.solar_day, scene.level, {**scene.assets, "red": odd}, {})
    with pytest.raises(InputError, match="refetch the scene"):
        process_scene(SceneTask(broken, MaskingConfig(), coverage=cov))

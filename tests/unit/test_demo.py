"""The demo city: files decode like real Landsat C2 L2, and the planted truth holds in them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mercantile
import numpy as np
import pandas as pd
import pytest
import rasterio

from uhi import landsat
from uhi.demo import DemoSpec, write_demo

SR_FILES = {
    "blue": "SR_B2",
    "green": "SR_B3",
    "red": "SR_B4",
    "nir08": "SR_B5",
    "swir16": "SR_B6",
    "swir22": "SR_B7",
}


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("demo") / "city"
    write_demo(root, DemoSpec(seed=7, size_km=2.0, scenes_per_year=2))
    return root


@pytest.fixture(scope="module")
def truth(city: Path) -> dict[str, Any]:
    return json.loads((city / "truth.json").read_text())


@pytest.fixture(scope="module")
def cells(city: Path) -> pd.DataFrame:
    return pd.read_parquet(city / "truth_cells.parquet")


def _scene_dir(city: Path, scene: dict[str, Any]) -> Path:
    return city / "data" / "scenes" / scene["product_id"]


def _read(city: Path, scene: dict[str, Any], suffix: str) -> tuple[np.ndarray, Any]:
    path = _scene_dir(city, scene) / f"{scene['product_id']}_{suffix}.TIF"
    with rasterio.open(path) as src:
        return src.read(1), src


def _clear_scene(truth: dict[str, Any]) -> dict[str, Any]:
    """The path-042 scene with the most clear sky (no fill edge, plenty of pixels)."""
    clear = [s for s in truth["scenes"] if s["kind"] == "clear" and s["wrs_path"] == 42]
    return min(clear, key=lambda s: (s["aoi_cloud_share"], s["date"]))


def test_scene_files_are_real_format_cogs(city: Path, truth: dict[str, Any]) -> None:
    assert len(truth["scenes"]) == 7 * 2 + 3
    for scene in truth["scenes"]:
        folder = _scene_dir(city, scene)
        pid = scene["product_id"]
        thermal = scene["level"] == "L2SP"
        expected = {f"{pid}_{s}.TIF" for s in [*SR_FILES.values(), "QA_PIXEL"]} | {f"{pid}_MTL.txt"}
        if thermal:
            expected |= {f"{pid}_ST_B10.TIF", f"{pid}_ST_QA.TIF"}
        assert {p.name for p in folder.iterdir()} == expected
        for name in expected - {f"{pid}_MTL.txt"}:
            with rasterio.open(folder / name) as src:
                assert src.crs.to_epsg() == 32612
                assert src.res == (30.0, 30.0)
                # USGS grid: pixel edges 15 m off a multiple of 30 m (centres on multiples of 30)
                assert src.transform.c % 30 == 15 and src.transform.f % 30 == 15
                assert src.profile["tiled"] and src.profile["compress"].lower() == "deflate"
                kind = name.rsplit("_", 1)[-1]
                if name.endswith("ST_QA.TIF"):
                    assert src.dtypes[0] == "int16" and src.nodata == -9999
                elif name.endswith("QA_PIXEL.TIF"):
                    assert src.dtypes[0] == "uint16" and src.nodata == 1
                else:
                    assert src.dtypes[0] == "uint16" and src.nodata == 0, kind
        mtl = landsat.read_mtl_file(folder / f"{pid}_MTL.txt")
        assert mtl["PRODUCT_CONTENTS"]["LANDSAT_PRODUCT_ID"] == pid
        assert landsat.product_level(mtl["PRODUCT_CONTENTS"]) == scene["level"]
        assert mtl["IMAGE_ATTRIBUTES"]["DATE_ACQUIRED"] == scene["date"]
        scales = landsat.scales_from_mtl(mtl)
        for key in SR_FILES:
            assert (
                scales[key].scale == landsat.SR_SCALE.scale
                and scales[key].offset == landsat.SR_SCALE.offset
            )
        if thermal:
            assert scales["lwir11"].scale == landsat.ST_SCALE.scale
            assert scales["lwir11"].offset == landsat.ST_SCALE.offset
        else:
            assert "lwir11" not in scales
        with rasterio.open(folder / f"{pid}_SR_B4.TIF") as src:
            proj = mtl["PROJECTION_ATTRIBUTES"]
            # MTL corners are pixel centres: origin = UL centre - half a pixel
            assert float(proj["CORNER_UL_PROJECTION_X_PRODUCT"]) - 15 == src.transform.c
            assert float(proj["CORNER_UL_PROJECTION_Y_PRODUCT"]) + 15 == src.transform.f
            assert int(proj["REFLECTIVE_LINES"]) == src.height


def test_one_l2sr_and_two_fully_cloudy_scenes(truth: dict[str, Any]) -> None:
    kinds = [s["kind"] for s in truth["scenes"]]
    assert kinds.count("l2sr") == 1 and kinds.count("full_cloud") == 2
    assert kinds.count("regional_cloud") == 1
    for s in truth["scenes"]:
        if s["kind"] == "full_cloud":
            assert s["eo_cloud_cover"] == 100.0 and s["aoi_cloud_share"] == 1.0
        if s["kind"] == "regional_cloud":
            assert s["eo_cloud_cover"] < 60 and s["aoi_cloud_share"] > 0.8


def test_catalog_loads_and_matches_files(city: Path, truth: dict[str, Any]) -> None:
    import pystac

    catalog = pystac.Catalog.from_file(str(city / "data" / "catalog" / "catalog.json"))
    items = list(catalog.get_items(recursive=True))
    assert sorted(i.id for i in items) == sorted(s["id"] for s in truth["scenes"])
    by_id = {s["id"]: s for s in truth["scenes"]}
    raw = json.loads((city / "data" / "catalog" / "catalog.json").read_text())
    assert all(not link["href"].startswith("/") for link in raw["links"])  # self-contained
    for item in items:
        scene = by_id[item.id]
        d = item.to_dict()
        # structural validation offline: a dict round trip through pystac is lossless
        assert pystac.Item.from_dict(d).to_dict() == d
        props = item.properties
        assert props["landsat:correction"] == scene["level"]
        assert props["proj:code"] == "EPSG:32612"
        on_disk = json.loads(Path(item.get_self_href()).read_text())["properties"]
        assert on_disk["proj:epsg"] == 32612  # for readers of projection v1.x
        assert props["eo:cloud_cover"] == scene["eo_cloud_cover"]
        assert (
            props["landsat:wrs_path"] == f"{scene['wrs_path']:03d}"
            and props["landsat:wrs_row"] == "025"
        )
        assert props["platform"] == "landsat-8"
        assert str(item.datetime.date()) == scene["date"]
        keys = set(item.assets)
        base = {"blue", "green", "red", "nir08", "swir16", "swir22", "qa_pixel", "mtl.txt"}
        assert keys == (base | {"lwir11", "qa"} if scene["level"] == "L2SP" else base)
        for key, asset in item.assets.items():
            assert not Path(d["assets"][key]["href"]).is_absolute()
            href = Path(asset.get_absolute_href())
            assert href.is_file(), href
            assert landsat.canonical_asset_key(key, str(href)) == key
            if key in ("mtl.txt", "qa_pixel"):
                continue
            scale = landsat.scale_from_raster_bands(asset.to_dict())
            assert scale == landsat.scale_for(key)
            with rasterio.open(href) as src:
                assert list(src.transform)[:6] == props["proj:transform"]
                assert [src.height, src.width] == props["proj:shape"]


def _pixel_cells(src: Any, rows: np.ndarray, cols: np.ndarray, cells: pd.DataFrame) -> np.ndarray:
    """Row of ``cells`` holding each pixel centre, found with mercantile (not the demo's code)."""
    from pyproj import Transformer

    xs, ys = rasterio.transform.xy(src.transform, rows, cols)
    lon, lat = Transformer.from_crs(32612, 4326, always_xy=True).transform(xs, ys)
    keys = [mercantile.quadkey(mercantile.tile(a, b, 19)) for a, b in zip(lon, lat, strict=True)]
    index = pd.Series(np.arange(len(cells)), index=cells["cell"].to_numpy())
    return index.loc[keys].to_numpy()


def test_planted_indices_hold_up_to_dn_quantisation(
    city: Path, truth: dict[str, Any], cells: pd.DataFrame
) -> None:
    scene = _clear_scene(truth)
    year_cells = cells[cells["year"] == scene["year"]].reset_index(drop=True)
    qa, _ = _read(city, scene, "QA_PIXEL")
    rho = {}
    for key, suffix in SR_FILES.items():
        dn, _ = _read(city, scene, suffix)
        rho[key] = landsat.reflectance(dn).astype(np.float64)
    good = ~landsat.qa_reject_mask(qa)
    rows, cols = np.nonzero(good)
    pick = np.random.default_rng(0).choice(rows.size, size=min(1500, rows.size), replace=False)
    rows, cols = rows[pick], cols[pick]
    with rasterio.open(_scene_dir(city, scene) / f"{scene['product_id']}_SR_B4.TIF") as src:
        idx = _pixel_cells(src, rows, cols, year_cells)
    half_dn = landsat.SR_SCALE.scale / 2
    for name, (a, b) in {
        "ndvi": ("nir08", "red"),
        "ndbi": ("swir16", "nir08"),
        "mndwi": ("green", "swir16"),
    }.items():
        ra, rb = rho[a][rows, cols], rho[b][rows, cols]
        index = (ra - rb) / (ra + rb)
        # |d((a-b)/(a+b))| <= 2 * half_dn / (a + b) for rounding errors up to half a DN in each
        bound = 2 * half_dn / (ra + rb) * 1.01 + 1e-6
        err = np.abs(index - year_cells[name].to_numpy()[idx])
        assert np.all(err <= bound), (name, float(err.max()))
        assert err.max() > 0  # the DNs really are rounded, not a copy of the truth


def test_planted_lst_in_pixels(city: Path, truth: dict[str, Any], cells: pd.DataFrame) -> None:
    scene = _clear_scene(truth)
    year_cells = cells[cells["year"] == scene["year"]].reset_index(drop=True)
    qa, _ = _read(city, scene, "QA_PIXEL")
    st, _ = _read(city, scene, "ST_B10")
    lst = landsat.lst_celsius(st).astype(np.float64)
    good = ~landsat.qa_reject_mask(qa) & ~landsat.qa_bit_set(qa, 4)
    rows, cols = np.nonzero(good)
    pick = np.random.default_rng(1).choice(rows.size, size=min(3000, rows.size), replace=False)
    rows, cols = rows[pick], cols[pick]
    with rasterio.open(_scene_dir(city, scene) / f"{scene['product_id']}_ST_B10.TIF") as src:
        idx = _pixel_cells(src, rows, cols, year_cells)
    resid = lst[rows, cols] - year_cells["lst_c"].to_numpy()[idx] - scene["offset_c"]
    sd = truth["lst_model"]["pixel_noise_sd_c"]
    assert abs(resid.mean()) < 4 * sd / np.sqrt(resid.size)
    assert 0.9 * sd < resid.std() < 1.1 * sd


def test_qa_bits_are_consistent(city: Path, truth: dict[str, Any], cells: pd.DataFrame) -> None:
    seen_cloud = seen_shadow = False
    for scene in truth["scenes"]:
        qa, _ = _read(city, scene, "QA_PIXEL")
        fill, dilated = landsat.qa_bit_set(qa, 0), landsat.qa_bit_set(qa, 1)
        cloud, shadow = landsat.qa_bit_set(qa, 3), landsat.qa_bit_set(qa, 4)
        clear = landsat.qa_bit_set(qa, 6)
        assert not (clear & (cloud | dilated | fill)).any()  # bit 6 never with cloud or fill
        assert np.all(clear | cloud | dilated | fill)
        assert np.all(((qa[cloud] >> 8) & 3) == 3)  # high cloud confidence
        assert np.all(((qa[shadow] >> 10) & 3) == 3)
        assert not (shadow & cloud).any() and not (landsat.qa_bit_set(qa, 7) & cloud).any()
        red, _ = _read(city, scene, "SR_B4")
        assert np.array_equal(red == 0, fill)
        if scene["level"] == "L2SP":
            st, _ = _read(city, scene, "ST_B10")
            st_qa, _ = _read(city, scene, "ST_QA")
            assert np.array_equal(st == 0, fill) and np.array_equal(st_qa == -9999, fill)
        if scene["kind"] == "full_cloud":
            assert np.all(cloud | fill)
        if cloud.any() and shadow.any() and scene["kind"] == "clear":
            # shadows are the clouds displaced to the north-west: the pixel south-east of
            # every shadow pixel, by the displacement, is cloud
            from uhi.demo.scenes import _SHADOW_SHIFT_PX

            dr, dc = _SHADOW_SHIFT_PX
            assert dr < 0 and dc < 0
            sr, sc = np.nonzero(shadow)
            assert cloud[sr - dr, sc - dc].all()
            seen_shadow = True
        seen_cloud |= bool(cloud.any() and scene["kind"] == "clear")
        if scene["wrs_path"] == 41:
            assert fill.any()  # the slanted scene edge of the adjacent path
    assert seen_cloud and seen_shadow


def test_water_bit_marks_the_river(city: Path, truth: dict[str, Any], cells: pd.DataFrame) -> None:
    scene = _clear_scene(truth)
    year_cells = cells[cells["year"] == scene["year"]].reset_index(drop=True)
    qa, _ = _read(city, scene, "QA_PIXEL")
    ok = ~landsat.qa_reject_mask(qa)
    rows, cols = np.nonzero(ok)
    with rasterio.open(_scene_dir(city, scene) / f"{scene['product_id']}_QA_PIXEL.TIF") as src:
        idx = _pixel_cells(src, rows, cols, year_cells)
    water = landsat.qa_bit_set(qa, 7)[rows, cols]
    assert water.any()
    assert np.array_equal(water, year_cells["water"].to_numpy()[idx])
    assert np.all(year_cells["mndwi"].to_numpy()[idx][water] > 0)


def test_truth_cells_follow_the_sar_model(truth: dict[str, Any], cells: pd.DataFrame) -> None:
    from libpysal.weights import KNN

    model = truth["lst_model"]
    first = cells[cells["year"] == truth["years"][0]]
    w = KNN.from_array(first[["x_m", "y_m"]].to_numpy(), k=8)
    w.transform = "r"
    wm = w.sparse
    b = model["coefficients"]
    for year, grp in cells.groupby("year"):
        grp = grp.reset_index(drop=True)
        assert (grp["cell"] == first["cell"].to_numpy()).all()
        c = model["base_c"] + truth["warming_c_per_year"] * (year - truth["years"][0])
        z = grp["lst_c"].to_numpy() - c
        lhs = z - model["rho"] * (wm @ z)
        xb = (
            b["ndvi"] * grp["ndvi"]
            + b["ndbi"] * grp["ndbi"]
            + b["site_coverage"] * grp["site_coverage"]
        )
        np.testing.assert_allclose(lhs, xb.to_numpy() + grp["e_c"].to_numpy(), atol=1e-9)
        np.testing.assert_allclose(grp["xb_c"], xb, atol=1e-12)
    e = cells["e_c"].to_numpy()
    assert abs(e.std() - model["noise_sd_c"]) < 0.05 * model["noise_sd_c"]
    means = cells[cells["in_aoi"]].groupby("year")["lst_c"].mean()
    for year, value in means.items():
        assert truth["city_mean_lst_c"][str(year)] == pytest.approx(value, abs=1e-4)


def test_site_coverage_comes_from_the_footprints(city: Path, cells: pd.DataFrame) -> None:
    import geopandas as gpd
    import shapely

    bld = gpd.read_file(city / "data" / "buildings.gpkg")
    assert bld.crs.to_epsg() == 32612 and {"height", "floors"} <= set(bld.columns)
    assert (~bld.geometry.is_valid).sum() >= 3  # bow-ties for compute to repair
    repaired = bld.geometry.make_valid()
    one = cells[cells["year"] == cells["year"].min()].set_index("cell")
    sample = one[one["site_coverage"] > 0].sample(200, random_state=0)
    tiles = [mercantile.quadkey_to_tile(q) for q in sample.index]
    polys = (
        gpd.GeoSeries([shapely.box(*mercantile.bounds(t)) for t in tiles], crs=4326)
        .to_crs(32612)
        .segmentize(2.0)
    )  # densified: the tile's edges are straight in mercator
    tree = shapely.STRtree(repaired.to_numpy())
    for cell, poly in zip(sample.index, polys, strict=True):
        hits = tree.query(poly, predicate="intersects")
        area = sum(shapely.intersection(repaired.iloc[i], poly).area for i in hits)
        assert area / poly.area == pytest.approx(one.loc[cell, "site_coverage"], abs=2e-4)
    assert one.loc[one["water"], "site_coverage"].max() == 0


def test_layers_and_config_load(city: Path, truth: dict[str, Any]) -> None:
    import geopandas as gpd

    from uhi.config import load_config

    cfg = load_config(city / "config.yaml", environ={})
    assert cfg.city.name == "demo" and cfg.search.backend == "local"
    for p in (cfg.city.aoi, cfg.search.path, cfg.buildings.path, cfg.buildings.zones_path):
        assert p is not None and p.is_file() and p.is_relative_to(city)
    assert cfg.workdir == city / "workspace"
    years = truth["years"]
    assert (cfg.time.start.year, cfg.time.end.year) == (years[0], years[-1])
    for s in truth["scenes"]:
        assert (s["eo_cloud_cover"] <= cfg.search.max_cloud) == (s["kind"] != "full_cloud")
    zones = gpd.read_file(city / "data" / "zones.gpkg")
    assert 4 <= len(zones) <= 9 and set(zones["zone"]) == set(truth["zones"])
    aoi = gpd.read_file(city / "data" / "aoi.geojson")
    assert list(np.round(aoi.total_bounds, 6)) == truth["aoi_bbox_lonlat"]


def test_truth_json_documents_the_plant(truth: dict[str, Any], cells: pd.DataFrame) -> None:
    for key in (
        "seed",
        "size_km",
        "crs",
        "zoom",
        "years",
        "scenes",
        "lst_model",
        "warming_c_per_year",
        "city_mean_lst_c",
        "expected_summer_mean_lst_c",
        "tolerances",
        "blur",
    ):
        assert key in truth
    assert set(truth["lst_model"]) >= {"base_c", "coefficients", "rho", "weights", "noise_sd_c"}
    assert truth["lst_model"]["weights"] == "knn:8"
    # the blur is small next to the planted spread but not zero
    blur = truth["blur"]["lst_c"]
    assert 0 < blur["rmse"] < 0.2 * blur["planted_sd"]
    assert truth["cells"]["aoi"] == int(cells[cells["year"] == truth["years"][0]]["in_aoi"].sum())
    aoi_tiles = list(mercantile.tiles(*truth["aoi_bbox_lonlat"], 19))
    assert truth["cells"]["aoi"] == len(aoi_tiles)


def test_tile_index_matches_mercantile() -> None:
    from uhi.demo.landscape import tile_xy

    rng = np.random.default_rng(3)
    lon = rng.uniform(-114.2, -113.9, 2000)
    lat = rng.uniform(50.9, 51.2, 2000)
    x, y = tile_xy(lon, lat)
    ref = [mercantile.tile(a, b, 19) for a, b in zip(lon, lat, strict=True)]
    assert x.tolist() == [t.x for t in ref] and y.tolist() == [t.y for t in ref]


def test_developing_district_drifts(truth: dict[str, Any]) -> None:
    trend = truth["covariate_trend_per_year_developing_district"]
    assert trend["ndvi"] < -0.01 and trend["ndbi"] > 0.01


def test_spatial_filter_matches_a_sparse_direct_solve() -> None:
    import scipy.sparse as sp
    from scipy.sparse.linalg import spsolve

    from uhi.demo.truth import knn_weights, spatial_filter

    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 2000, size=(2500, 2))
    w = knn_weights(xy[:, 0], xy[:, 1])
    rhs = rng.normal(size=(3, 2500))
    for rho in (0.0, 0.45, 0.9):
        ref = spsolve((sp.identity(2500, format="csc") - rho * w).tocsc(), rhs.T).T
        np.testing.assert_allclose(spatial_filter(w, rho, rhs), ref, rtol=0, atol=1e-10)

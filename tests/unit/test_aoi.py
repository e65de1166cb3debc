"""AOI loading: bbox and files, validation, target CRS, the two-UTM-zone refusal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from uhi.aoi import load_aoi, utm_crs, utm_zone
from uhi.config import CityConfig
from uhi.errors import ConfigError, InputError


def _write_geojson(path: Path, geometry: dict, crs: str | None = None) -> Path:
    fc: dict = {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": geometry}]}
    if crs:
        fc["crs"] = {"type": "name", "properties": {"name": crs}}
    path.write_text(json.dumps(fc))
    return path


@pytest.mark.parametrize(
    ("lon", "lat", "expected"),
    [
        (-3.0, 53.4, "EPSG:32630"),  # Liverpool
        (-60.02, -3.1, "EPSG:32720"),  # Manaus (its clip is in EPSG:32620 north-zone numbers; the AOI CRS is south)
        (-114.07, 51.05, "EPSG:32611"),  # Calgary centre is just west of -114
        (-113.9, 51.05, "EPSG:32612"),
        (180.0, 0.0, "EPSG:32660"),
        (-180.0, 0.0, "EPSG:32601"),
    ],
)
def test_utm_crs_matches_the_zone_formula(lon: float, lat: float, expected: str) -> None:
    assert utm_crs(lon, lat) == expected


def test_utm_zone_edges() -> None:
    # zone n covers [-180 + 6 (n-1), -180 + 6 n)
    assert utm_zone(-114.0000001) == 11
    assert utm_zone(-114.0) == 12


def test_bbox_gives_polygon_and_utm_crs() -> None:
    aoi = load_aoi(CityConfig(bbox=(-3.10, 53.46, -3.03, 53.50)))
    assert aoi.crs == "EPSG:32630"
    assert aoi.bounds == pytest.approx((-3.10, 53.46, -3.03, 53.50))
    assert aoi.geojson()["type"] == "Polygon"


def test_aoi_across_two_utm_zones_is_refused_unless_crs_set() -> None:
    calgary = (-114.32, 50.84, -113.86, 51.21)
    with pytest.raises(ConfigError) as err:
        load_aoi(CityConfig(bbox=calgary))
    msg = str(err.value)
    assert "spans UTM zones 11 and 12" in msg and "city.crs" in msg
    aoi = load_aoi(CityConfig(bbox=calgary, crs="EPSG:32612"))
    assert aoi.crs == "EPSG:32612"


def test_geographic_city_crs_is_refused() -> None:
    with pytest.raises(ConfigError, match="must be projected"):
        load_aoi(CityConfig(bbox=(-3.1, 53.4, -3.0, 53.5), crs="EPSG:4326"))


def test_file_in_web_mercator_is_reprojected(tmp_path: Path) -> None:
    from pyproj import Transformer

    t = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    (x0, y0), (x1, y1) = t.transform(-3.10, 53.46), t.transform(-3.03, 53.50)
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    path = _write_geojson(tmp_path / "aoi.geojson", {"type": "Polygon", "coordinates": [ring]}, "EPSG:3857")
    aoi = load_aoi(CityConfig(aoi=path))
    assert aoi.bounds == pytest.approx((-3.10, 53.46, -3.03, 53.50), abs=1e-9)
    assert aoi.crs == "EPSG:32630"


def test_invalid_geometry_is_refused_with_the_reason(tmp_path: Path) -> None:
    bowtie = [[-3.1, 53.4], [-3.0, 53.5], [-3.0, 53.4], [-3.1, 53.5], [-3.1, 53.4]]
    path = _write_geojson(tmp_path / "bad.geojson", {"type": "Polygon", "coordinates": [bowtie]})
    with pytest.raises(InputError) as err:
        load_aoi(CityConfig(aoi=path))
    assert "invalid geometry" in str(err.value) and "Self-intersection" in str(err.value)
    assert err.value.exit_code == 2


def test_points_are_refused(tmp_path: Path) -> None:
    path = _write_geojson(tmp_path / "pt.geojson", {"type": "Point", "coordinates": [-3.0, 53.4]})
    with pytest.raises(InputError, match="must hold polygons"):
        load_aoi(CityConfig(aoi=path))


def test_missing_file_and_missing_aoi(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        load_aoi(CityConfig(aoi=tmp_path / "nope.geojson"))
    with pytest.raises(ConfigError, match="no area of interest"):
        load_aoi(CityConfig())


def test_cli_fetch_across_zones_exits_2(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "city: {name: calgary, bbox: [-114.32, 50.84, -113.86, 51.21]}\n"
        f"search: {{backend: local, path: {tmp_path}}}\n"
    )
    r = subprocess.run(
        [sys.executable, "-m", "uhi.cli.main", "fetch", str(cfg), "--workdir", str(tmp_path / "ws")],
        capture_output=True, text=True, timeout=120,
    )
    assert r.returncode == 2, r.stderr
    assert "spans UTM zones 11 and 12" in r.stderr
    assert "Traceback" not in r.stderr

"""Map PNGs: structure (size, non-uniform pixels, colour bar or legend, scale bar, credits)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
from PIL import Image
from shapely.geometry import box

from uhi.writers.maps import (
    CREDIT_LANDSAT,
    figure_png_bytes,
    nice_scale_length_m,
    render_hotspot_map,
    render_value_map,
    save_map,
)

UTM = "EPSG:32612"


def _cells(side: int = 20, cell_m: float = 50.0) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(7)
    geoms, values = [], []
    for j in range(side):
        for i in range(side):
            x, y = 700000 + i * cell_m, 5650000 + j * cell_m
            geoms.append(box(x, y, x + cell_m, y + cell_m))
            values.append(25 + 0.3 * i + rng.normal(0, 0.5))
    g = gpd.GeoDataFrame({"lst_c": values}, geometry=geoms, crs=UTM).to_crs(4326)
    g.loc[3, "lst_c"] = np.nan
    g["gi_bin"] = np.clip(np.round((g["lst_c"].fillna(30) - 28) / 1.5), -3, 3).astype(int)
    return g


def _texts(fig) -> list[str]:
    out = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        out += [t.get_text() for t in ax.texts]
        out.append(ax.get_ylabel())
        out.append(ax.get_title())
    return out


def _by_gid(fig, gid: str) -> list:
    return [a for a in fig.findobj() if getattr(a, "get_gid", lambda: None)() == gid]


@pytest.mark.parametrize(("extent", "expected"), [(600.0, 100.0), (3100.0, 500.0), (9000.0, 2000.0), (42000.0, 10000.0)])
def test_nice_scale_length(extent: float, expected: float) -> None:
    assert nice_scale_length_m(extent) == expected


def test_value_map_structure_and_png(tmp_path: Path) -> None:
    cells = _cells()
    fig = render_value_map(cells, "lst_c", title="Land surface temperature, 2020", label="LST", units="°C")
    colorbars = _by_gid(fig, "colorbar")
    assert len(colorbars) == 1 and colorbars[0].get_ylabel() == "LST (°C)"
    texts = _texts(fig)
    assert CREDIT_LANDSAT in texts and "N" in texts
    # the scale bar is drawn in metres: its two halves add up to the length on its label
    bar = _by_gid(fig, "scale-bar")
    label = _by_gid(fig, "scale-bar-label")[0].get_text()
    assert label == "200 m"  # 20 cells x 50 m = 1000 m (+ padding) -> a quarter rounds to 200 m
    # 200 ground metres are 200 k map metres, k the UTM point scale factor at the centre:
    # k = k0 (1 + x^2 / (2 k0^2 R^2)), x the distance from the central meridian (Snyder 1987, eq. 8-11
    # to first order), k0 = 0.9996, R = 6371 km; ~1.0000936 at 200.5 km east of it
    ax = fig.axes[0]
    x = (ax.get_xlim()[0] + ax.get_xlim()[1]) / 2 - 500000
    k = 0.9996 * (1 + x**2 / (2 * 0.9996**2 * 6_371_000**2))
    assert sum(p.get_width() for p in bar) == pytest.approx(200.0 * k, rel=1e-5)
    assert abs(k - 1) > 5e-5  # the correction is larger than the tolerance: leaving it out fails
    assert 1000 < ax.get_xlim()[1] - ax.get_xlim()[0] < 1100  # metres, not degrees
    path = save_map(fig, tmp_path / "lst.png", dpi=100)
    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape == (800, 800, 3)
    assert img.reshape(-1, 3).std(axis=0).min() > 10  # not a blank image
    # the colour bar is a gradient: many distinct colours in a column through its middle
    bbox = colorbars[0].get_window_extent()
    col = int((bbox.x0 + bbox.x1) / 2)
    rows = slice(800 - int(bbox.y1) + 2, 800 - int(bbox.y0) - 2)
    strip = img[rows, col]
    assert len({tuple(p) for p in strip}) > 50


def test_diverging_limits_symmetric() -> None:
    cells = _cells()
    cells["d"] = np.linspace(-0.5, 2.0, len(cells))
    fig = render_value_map(cells, "d", title="Change", label="ΔLST", units="°C", cmap="RdBu_r", diverging=True)
    bar = _by_gid(fig, "colorbar")[0]
    lo, hi = bar.get_ylim()
    assert lo == pytest.approx(-2.0) and hi == pytest.approx(2.0)


def test_hotspot_map_legend(tmp_path: Path) -> None:
    cells = _cells()
    fig = render_hotspot_map(cells, "gi_bin")
    legends = _by_gid(fig, "legend")
    assert len(legends) == 1
    labels = [t.get_text() for t in legends[0].get_texts()]
    assert any(lbl.startswith("hot spot, 99 %") for lbl in labels)
    assert any(lbl.startswith("cold spot, 99 %") for lbl in labels)
    counts = sum(int(lbl.rsplit("(", 1)[1].rstrip(")")) for lbl in labels)
    assert counts == len(cells)
    png = figure_png_bytes(fig, dpi=60)
    img = Image.open(io.BytesIO(png))
    assert img.size == (480, 480)
    assert np.asarray(img.convert("L")).std() > 10


def test_basemap_left_out_cleanly_offline(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_contextily(name, *args, **kwargs):
        if name == "contextily":
            raise ImportError("no contextily here")
        return real_import(name, *args, **kwargs)

    from uhi.writers import maps

    maps._contextily.cache_clear()
    monkeypatch.setattr(builtins, "__import__", no_contextily)
    with caplog.at_level(logging.INFO, logger="uhi.maps"):
        fig = render_value_map(_cells(), "lst_c", title="t", label="LST", units="°C", basemap=True)
        render_value_map(_cells(), "lst_c", title="t", label="LST", units="°C", basemap=True)
    assert caplog.text.count("basemap left out") == 1  # said once, not once per map
    assert not any("Basemap" in t for t in _texts(fig))
    maps._contextily.cache_clear()


def test_missing_column_message() -> None:
    with pytest.raises(ValueError, match="column 'nope' is not in the cells"):
        render_value_map(_cells(), "nope", title="t", label="x", units="u")


def test_tile_probe_on_loopback(caplog: pytest.LogCaptureFixture) -> None:
    import socket

    from uhi.writers.maps import _tiles_reachable

    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert _tiles_reachable(f"http://127.0.0.1:{port}/0/0/0.png")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        dead = closed.getsockname()[1]  # bound, never listening: connections are refused
        with caplog.at_level(logging.INFO, logger="uhi.maps"):
            assert not _tiles_reachable(f"http://127.0.0.1:{dead}/0/0/0.png")
    assert "is unreachable" in caplog.text


def test_web_mercator_map_keeps_tiles_square_and_the_scale_bar_true() -> None:
    """In EPSG:3857 a ground metre is 1 / cos(latitude) map units: the bar is stretched by that."""
    from pyproj import Transformer

    cells = _cells()
    fig = render_value_map(cells, "lst_c", title="LST", label="LST", units="°C", working_crs="EPSG:3857")
    ax = fig.axes[0]
    label = _by_gid(fig, "scale-bar-label")[0].get_text()
    width = sum(p.get_width() for p in _by_gid(fig, "scale-bar"))
    cx, cy = (ax.get_xlim()[0] + ax.get_xlim()[1]) / 2, (ax.get_ylim()[0] + ax.get_ylim()[1]) / 2
    lat = Transformer.from_crs(3857, 4326, always_xy=True).transform(cx, cy)[1]
    stretch = 1 / np.cos(np.radians(lat))  # Web Mercator's scale factor (spherical, as EPSG:3857 is)
    assert stretch > 1.5  # ~51 degrees N
    metres = float(label.removesuffix(" m").removesuffix(" km")) * (1000 if label.endswith("km") else 1)
    assert width == pytest.approx(metres * stretch, rel=1e-9)
    # about a quarter of the map's ground width, whatever the stretch
    ground_width = (ax.get_xlim()[1] - ax.get_xlim()[0]) / stretch
    assert 0.1 * ground_width < metres <= 0.25 * ground_width


def _tiles(side: int = 24, zoom: int = 19) -> gpd.GeoDataFrame:
    """Web-mercator tiles near Calgary with values and a few NaN cells, in EPSG:3857."""
    import shapely

    rng = np.random.default_rng(3)
    n = 2.0**zoom
    ty, tx = np.meshgrid(np.arange(side) + 177000, np.arange(side) + 96000, indexing="ij")
    tx, ty = tx.ravel(), ty.ravel()
    half = 20037508.342789244  # EPSG:3857 half circumference
    size = 2 * half / n
    geoms = shapely.box(-half + tx * size, half - (ty + 1) * size, -half + (tx + 1) * size, half - ty * size)
    values = 30 + 0.2 * (tx - tx.min()) + 0.3 * (ty - ty.min()) - 3 + rng.normal(0, 0.5, tx.size)
    values[::37] = np.nan
    g = gpd.GeoDataFrame({"tile_x": tx, "tile_y": ty, "zoom": zoom, "lst_c": values}, geometry=geoms, crs=3857)
    g["gi_bin"] = np.where(np.isnan(values), np.nan, np.clip(np.round((values - 32) / 1.5), -3, 3))
    return g


@pytest.mark.parametrize("kind", ["value", "class"])
def test_tiles_drawn_as_pixels_match_the_polygons(kind: str) -> None:
    """The image fast path for web-mercator tiles draws what the polygon path draws, pixel for pixel
    away from the cell edges (the reference: the same cells without tile ids, as PolyCollection)."""
    from uhi.writers.maps import render_hotspot_map

    tiles = _tiles()
    polys = tiles.drop(columns=["tile_x", "tile_y", "zoom"])

    def draw(frame: gpd.GeoDataFrame) -> np.ndarray:
        if kind == "value":
            fig = render_value_map(frame, "lst_c", title="t", label="LST", units="°C", working_crs="EPSG:3857",
                                   limits=(28.0, 36.0))
        else:
            fig = render_hotspot_map(frame, "gi_bin", working_crs="EPSG:3857")
        return np.asarray(Image.open(io.BytesIO(figure_png_bytes(fig, dpi=60))).convert("RGB"), dtype=int)

    fast, ref = draw(tiles), draw(polys)
    assert fast.shape == ref.shape
    differs = np.abs(fast - ref).max(axis=2) > 40
    # cell edges (antialiasing, hatching of no-data cells in the polygon path) differ, cells do not
    assert differs.mean() < 0.06, differs.mean()
    # and the picture is not empty: the map holds many colours
    assert len(np.unique(fast.reshape(-1, 3), axis=0)) > 20

"""`make bench` rows for maps and scenarios: cell maps vs geopandas.plot, spill-over solve vs dense.

Maps: a seeded square of zoom-19-sized cells (48 m quads in UTM) rendered to PNG by
``uhi.writers.maps.render_value_map`` and, as the anchor, by ``GeoDataFrame.plot`` with the
same colour map and size. Scenario: the lag model's spill-over (I - rho W)^-1 dX b by uhi's
sparse LU against a dense ``numpy.linalg.solve`` (what a dense inverse would cost at best) at
4k cells, and uhi's Neumann series against scipy's sparse LU at 200k cells, on knn:8 weights. Prints one JSON line per row (see bench/run.py).
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

MAP_CELLS_SIDE = int(os.environ.get("UHI_BENCH_MAP_SIDE", "200"))  # 200 x 200 = 40k cells
DENSE_N = 4000
SPARSE_N = 200_000


def row(**kw: object) -> None:
    print(json.dumps({"bench": "maps", **kw}), flush=True)


def cells(side: int, cell_m: float = 48.0):  # noqa: ANN201
    import geopandas as gpd
    import shapely

    rng = np.random.default_rng(7)
    i, j = np.meshgrid(np.arange(side), np.arange(side))
    x0 = 700000 + i.ravel() * cell_m
    y0 = 5650000 + j.ravel() * cell_m
    geoms = shapely.box(x0, y0, x0 + cell_m, y0 + cell_m)
    values = 30 + 0.01 * i.ravel() + rng.normal(0, 1, i.size)
    return gpd.GeoDataFrame({"lst_c": values}, geometry=geoms, crs="EPSG:32612")


def bench_maps() -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from uhi.writers.maps import figure_png_bytes, render_value_map

    gdf = cells(MAP_CELLS_SIDE)
    t0 = time.perf_counter()
    fig = render_value_map(gdf, "lst_c", title="LST", label="LST", units="°C", working_crs="EPSG:32612")
    figure_png_bytes(fig)
    uhi_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    fig = Figure(figsize=(8, 8))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    gdf.plot(ax=ax, column="lst_c", cmap="inferno", legend=True, linewidth=0)
    figure_png_bytes(fig)
    anchor_s = time.perf_counter() - t0
    row(case=f"value map, {len(gdf) // 1000}k cells to PNG", uhi_s=round(uhi_s, 3),
        anchor="geopandas GeoDataFrame.plot", anchor_s=round(anchor_s, 3), target=">=5x",
        note="uhi adds scale bar, north arrow, credits, no-data hatching")


def bench_scenario() -> None:
    from uhi.scenario import ScenarioModel, predict_lst_change
    from uhi.stats.weights import build_weights

    rng = np.random.default_rng(3)
    model = ScenarioModel("lag", 2020, ("ndvi",), {"ndvi": -6.0}, {}, 0.5, "knn:8")
    for n, dense in ((DENSE_N, True), (SPARSE_N, False)):
        side = int(np.sqrt(n))
        xy = np.column_stack([np.repeat(np.arange(side), side), np.tile(np.arange(side), side)]) * 48.0
        xy = xy + rng.normal(0, 1, xy.shape)
        w = build_weights(xy, "knn:8").row_standardised()
        dx = np.zeros((xy.shape[0], 1))
        dx[rng.choice(xy.shape[0], xy.shape[0] // 50, replace=False), 0] = 0.2
        t0 = time.perf_counter()
        _, total = predict_lst_change(dx, model, w)
        uhi_s = time.perf_counter() - t0
        if dense:
            t0 = time.perf_counter()
            ref = np.linalg.solve(np.eye(xy.shape[0]) - 0.5 * w.toarray(), dx[:, 0] * -6.0)
            anchor_s = time.perf_counter() - t0
            err = float(np.abs(ref - total).max())
            row(case=f"lag spill-over n={xy.shape[0]}", uhi_s=round(uhi_s, 4), anchor="numpy dense solve",
                anchor_s=round(anchor_s, 3), target=">=10x", note=f"max abs diff {err:.1e} C")
        else:
            t0 = time.perf_counter()
            ref = predict_lst_change(dx, model, w, exact_max_n=xy.shape[0])[1]  # sparse LU
            anchor_s = time.perf_counter() - t0
            gb = xy.shape[0] ** 2 * 8 / 1e9
            err = float(np.abs(ref - total).max())
            row(case=f"lag spill-over n={xy.shape[0]}", uhi_s=round(uhi_s, 3), anchor="scipy splu (sparse LU)",
                anchor_s=round(anchor_s, 3), target=">=10x",
                note=f"Neumann series; max abs diff {err:.1e} C; a dense I - rho W would need {gb:.0f} GB")


if __name__ == "__main__":
    bench_maps()
    bench_scenario()

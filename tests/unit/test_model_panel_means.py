"""The model stage's per (cell, year) summer means, streamed from the panel row group by row
group, against pandas reading the whole panel and grouping it: equal bit for bit."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from shapely.geometry import box

from uhi.config import build_config
from uhi.stages.model import workspace_data
from uhi.stats.sensors import sensor_shares
from uhi.workspace import Workspace

N = 90  # cells


def _workspace(root: Path, layout: str) -> Workspace:
    rng = np.random.default_rng(5)
    ids = np.array([f"021{i:05d}" for i in rng.permutation(N)], dtype=object)  # cells.parquet not sorted
    if layout == "mixed-width":
        ids[::7] = [f"{x}9" for x in ids[::7]]  # ids of two lengths: the layout check cannot apply
    water = np.where(rng.random(N) < 0.1, 0.9, 0.0)  # ~9 cells left out as water
    cells = gpd.GeoDataFrame(
        {"cell": ids, "x_m": np.arange(N) % 10 * 30.0, "y_m": np.arange(N) // 10 * 30.0,
         "site_coverage": rng.random(N), "water_share": water, "zone": (np.arange(N) % 4).astype(str)},
        geometry=[box(i, 0, i + 1, 1) for i in range(N)], crs=32612)
    frames = []
    for year in (2014, 2015, 2017):  # a gap: 2016 has no rows
        for day, month in ((3, 5), (9, 6), (19, 7), (2, 8), (20, 9)):  # May and September are not summer
            lst = rng.normal(30.0, 1e6, N) + rng.normal(0, 1e-9, N)  # compensation matters
            lst[rng.random(N) < 0.2] = np.nan
            plat = np.where(rng.random(N) < 0.4, "landsat-7", "landsat-8").astype(object)
            frames.append(pd.DataFrame({
                "cell": ids, "date": pd.Timestamp(year, month, day), "year": year, "lst_c": lst,
                "ndvi": rng.random(N), "ndbi": rng.normal(size=N), "anomaly_c": lst - 30.0, "platform": plat}))
    panel = pd.concat(frames, ignore_index=True)
    if layout == "shuffled":  # rows in no particular order: every id is looked up
        panel = panel.iloc[rng.permutation(len(panel))].reset_index(drop=True)
    ws = Workspace(root)
    ws.stage_dir("compute").mkdir(parents=True)
    cells.to_parquet(ws.cells)
    # small row groups that start mid-date, as compute's 1M-row groups do on a city
    pq.write_table(pa.Table.from_pandas(panel, preserve_index=False), ws.panel, row_group_size=173)
    return ws


def _expected(ws: Workspace, sensors: bool) -> pd.DataFrame:
    # the independent reference: the whole panel in pandas, grouped, the shares' left join and
    # the cells' inner join (what the stage did before it streamed the panel)
    cells = gpd.read_parquet(ws.cells)
    cells = cells[~(cells["water_share"] > 0.5)].reset_index(drop=True)
    panel = pd.read_parquet(ws.panel)
    panel = panel[panel["date"].dt.month.isin([6, 7, 8])]
    cols = ["lst_c", "ndvi", "ndbi"]
    yearly = panel.groupby(["cell", "year"], sort=True)[cols].mean().reset_index()
    if sensors:
        shares = sensor_shares(panel["cell"].to_numpy(), panel["year"].to_numpy(), panel["platform"].to_numpy(),
                               np.isfinite(panel["lst_c"].to_numpy()))
        yearly = yearly.merge(shares, on=["cell", "year"], how="left")
        yearly[["sensor[ETM+]", "sensor[OLI/TIRS]"]] = yearly[["sensor[ETM+]", "sensor[OLI/TIRS]"]].fillna(0.0)
    table = yearly.merge(cells[["cell", "site_coverage", "zone"]], on="cell", how="inner")
    return table.rename(columns={"cell": "unit", "year": "period"})


@pytest.mark.parametrize("layout", ["date-blocks", "shuffled", "mixed-width"])
@pytest.mark.parametrize("sensors", [False, True])
def test_streamed_summer_means_equal_pandas_groupby_bit_for_bit(tmp_path: Path, layout: str, sensors: bool) -> None:
    ws = _workspace(tmp_path, layout)
    config = build_config({"workdir": str(tmp_path), "model": {
        "x": ["ndvi", "ndbi", "site_coverage"], "sensor_effects": sensors, "zone_col": "zone"}})
    data, req = workspace_data(config, ws)
    expected = _expected(ws, sensors)
    assert req.sensor_cols == (("sensor[ETM+]", "sensor[OLI/TIRS]") if sensors else ())
    assert len(data.table) > 0 and data.table["period"].nunique() == 3
    pd.testing.assert_frame_equal(data.table, expected, check_exact=True)

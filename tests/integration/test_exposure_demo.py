"""The demo city's planted people and their heat recovered end to end by `uhi run --to exposure`."""

from __future__ import annotations

import json
from pathlib import Path

import geopandas as gpd
import pytest
from conftest import uhi_exit_code as uhi

from uhi.demo import DemoSpec, write_demo


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("demo")
    write_demo(root, DemoSpec(seed=11, size_km=2.0, first_year=2019, last_year=2020, scenes_per_year=2))
    # 2019: both scenes clear over the city, so every cell's mean carries the same weather
    # offset (in 2020 a 93 %-cloudy scene makes the offset differ from cell to cell)
    code = uhi("run", str(root / "config.yaml"), "--to", "exposure", "--set", "model.models=[ols]",
               "--set", "exposure.year=2019")
    assert code == 0
    return root, json.loads((root / "truth.json").read_text())


def test_planted_population_and_heat_per_neighbourhood_recovered(demo_run: tuple[Path, dict]) -> None:
    root, truth = demo_run
    planted = truth["exposure"]["zones"]
    zones = gpd.read_parquet(root / "workspace" / "exposure" / "zones.parquet").set_index("zone")
    summary = json.loads((root / "workspace" / "exposure" / "summary.json").read_text())
    year = str(summary["year"])
    assert year == "2019"
    offset = truth["scene_offset_mean_c"][year]  # the scenes' shared weather offset of that year
    assert sorted(zones.index) == sorted(planted)
    for zid, rec in planted.items():
        z = zones.loc[zid]
        assert z["name"] == rec["name"]
        # whole tiles in a raster of 4 x 4 pixels per tile, in another CRS: exact up to float
        assert z["population"] == pytest.approx(rec["population"], rel=1e-6)
        # measured LST = planted + scene offset, blurred by 30 m pixels (truth.json's blur) and
        # pixel noise: 0.3 degC on a neighbourhood mean (measured |error| <= 0.15 with seed 11)
        assert abs(z["lst_pop_mean_c"] - (rec["lst_pop_mean_c"][year] + offset)) <= 0.3, zid
    assert summary["population"] == pytest.approx(truth["exposure"]["population_total"], rel=1e-6)


def test_census_blocks_give_the_planted_group_counts(demo_run: tuple[Path, dict]) -> None:
    root, truth = demo_run
    group = truth["exposure"]["group"]
    code = uhi("exposure", str(root / "config.yaml"), "--set", f"exposure.population_path={root / 'data' / 'census.gpkg'}",
               "--set", f"exposure.groups=[{group}]")
    assert code == 0
    zones = gpd.read_parquet(root / "workspace" / "exposure" / "zones.parquet").set_index("zone")
    for zid, rec in truth["exposure"]["zones"].items():
        # census blocks nest in the neighbourhoods: splitting them over cells keeps the totals
        assert zones.loc[zid, "population"] == pytest.approx(rec["population"], rel=1e-6)
        assert zones.loc[zid, group] == pytest.approx(rec[group], rel=1e-6)
    summary = json.loads((root / "workspace" / "exposure" / "summary.json").read_text())
    assert "dasymetric" in summary["population_method"]

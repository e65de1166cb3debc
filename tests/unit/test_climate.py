"""RCP8.5 warming table: shipped AR5 values, interpolation, baseline, user CSV."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from uhi.climate import load_warming_table
from uhi.errors import InputError


def test_shipped_table_holds_ar5_spm2_values() -> None:
    t = load_warming_table()
    # IPCC AR5 WG1 SPM Table SPM.2, RCP8.5: 2.0 (1.4-2.6) in 2046-2065, 3.7 (2.6-4.8) in 2081-2100
    assert t.at(2055.5) == pytest.approx(2.0) and t.at(2090.5) == pytest.approx(3.7)
    assert t.low_c is not None and t.high_c is not None
    assert t.low_c.tolist() == [0.0, 1.4, 2.6] and t.high_c.tolist() == [0.0, 2.6, 4.8]
    assert "SPM.2" in t.source
    assert "air temperature" in t.source
    canada = load_warming_table(region="canada")
    assert canada.at(2090.5) == pytest.approx(2 * 3.7)
    assert canada.source.startswith("UPPER BOUND, not a regional projection")


def test_interpolation_and_baseline() -> None:
    t = load_warming_table()
    assert t.at(2073.0) == pytest.approx(2.0 + 1.7 * 17.5 / 35)
    assert t.at(2200.0) == pytest.approx(3.7)  # held flat after the last point
    added = t.added(2020, np.array([2020, 2050]))
    assert added[0] == 0.0
    assert added[1] == pytest.approx(2.0 * (2050 - 2020) / 60)


def test_user_csv(tmp_path: Path) -> None:
    p = tmp_path / "cmip.csv"
    p.write_text("year,delta_c\n2100,5.0\n2000,0.0\n")
    t = load_warming_table(p)
    assert t.years.tolist() == [2000.0, 2100.0] and t.at(2050) == pytest.approx(2.5)
    assert t.low_c is None and t.range_added(2020, np.array([2050])) is None


@pytest.mark.parametrize(
    "text, match",
    [
        ("yr,dc\n2000,1\n", "needs columns year,delta_c"),
        ("year,delta_c\n2000,warm\n", "non-numeric"),
        ("year,delta_c\n2000,1\n2000,2\n", "repeats a year"),
    ],
)
def test_bad_user_csv(tmp_path: Path, text: str, match: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(InputError, match=match):
        load_warming_table(p)


def test_missing_file_and_region(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="warming table not found"):
        load_warming_table(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="region 'mars'"):
        load_warming_table(region="mars")
    p = tmp_path / "city.csv"
    p.write_text("year,delta_c\n2000,0\n2100,4\n")
    assert load_warming_table(p, region="global").at(2100) == pytest.approx(4.0)
    with pytest.raises(InputError, match="no region column, so forecast.rcp_region 'canada'"):
        load_warming_table(p, region="canada")

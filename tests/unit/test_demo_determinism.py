"""The demo is a pure function of its seed and size: same seed, same bytes; new seed, new city."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from uhi.demo import DemoSpec, write_demo
from uhi.errors import ConfigError


def _hashes(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path) -> None:
    small = {"size_km": 1.0, "first_year": 2015, "last_year": 2016, "scenes_per_year": 1}
    a = write_demo(tmp_path / "a", DemoSpec(seed=3, **small))
    b = write_demo(tmp_path / "b", DemoSpec(seed=3, **small))
    c = write_demo(tmp_path / "c", DemoSpec(seed=4, **small))
    ha, hb, hc = _hashes(a.root), _hashes(b.root), _hashes(c.root)
    assert len(ha) > 40 and ha == hb
    assert set(ha) == set(hc)  # same schedule and files ...
    for name in ("truth.json", "truth_cells.parquet", "data/buildings.gpkg"):
        assert ha[name] != hc[name]  # ... other values
    changed = [k for k in ha if k.endswith("_ST_B10.TIF") and ha[k] != hc[k]]
    assert len(changed) == sum(k.endswith("_ST_B10.TIF") for k in ha)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"size_km": 0.0}, "size must be 0.5-100 km"),
        ({"first_year": 2020, "last_year": 2014}, "2020-2014"),
        ({"scenes_per_year": 0}, "scenes per year must be 1-8"),
    ],
)
def test_bad_spec_is_a_config_error(kwargs: dict[str, float], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        DemoSpec(**kwargs)  # type: ignore[arg-type]

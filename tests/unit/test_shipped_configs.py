"""Every example config shipped in configs/ validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from uhi.config import load_config

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_example_config_validates(path: Path) -> None:
    cfg = load_config(path, environ={})
    assert cfg.city.name
    assert cfg.workdir is not None and cfg.workdir.is_absolute()


def test_there_are_examples_for_each_backend() -> None:
    backends = {load_config(p, environ={}).search.backend for p in CONFIGS}
    assert {"stac", "sagemaker", "local"} <= backends


@pytest.mark.parametrize(
    "path", [p for p in CONFIGS if "bbox" in p.read_text()], ids=lambda p: p.name
)
def test_bbox_examples_have_a_usable_aoi_and_crs(path: Path) -> None:
    from uhi.aoi import load_aoi

    aoi = load_aoi(load_config(path, environ={}).city)
    assert aoi is not None

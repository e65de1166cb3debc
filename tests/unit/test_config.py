"""Config: precedence, unknown keys, value errors, path resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from uhi.config import build_config, load_config, parse_set_option
from uhi.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "c.yaml"
    p.write_text(text)
    return p


def test_defaults_are_valid_and_frozen() -> None:
    cfg = build_config({}, environ={})
    assert cfg.grid.zoom == 19
    assert cfg.time.months == (6, 7, 8)
    assert cfg.masking.reject_bits == (0, 1, 2, 3, 4, 5)
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="frozen"):
        cfg.grid.zoom = 18  # type: ignore[misc]


def test_precedence_yaml_env_flags(tmp_path: Path) -> None:
    p = write(tmp_path, "search:\n  max_cloud: 10\n  max_cloud_land: 5\ngrid:\n  zoom: 18\n")
    env = {"UHI_SEARCH__MAX_CLOUD": "30", "UHI_GRID__ZOOM": "17", "UHI_PROCESSING_ROOT": "/x"}
    cfg = load_config(p, environ=env, overrides={"grid.zoom": 16})
    assert cfg.search.max_cloud == 30  # env beats YAML
    assert cfg.search.max_cloud_land == 5  # YAML beats default
    assert cfg.grid.zoom == 16  # flag beats env


def test_unknown_key_named_with_suggestion(tmp_path: Path) -> None:
    p = write(tmp_path, "search:\n  max_clod: 10\n")
    with pytest.raises(ConfigError, match=r"unknown config key 'search.max_clod'.*did you mean 'max_cloud'"):
        load_config(p, environ={})


def test_unknown_section(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown config key 'serch'"):
        load_config(write(tmp_path, "serch: {}\n"), environ={})


def test_out_of_range_value_names_key_and_range(tmp_path: Path) -> None:
    p = write(tmp_path, "search:\n  max_cloud: 140\n")
    with pytest.raises(ConfigError, match=r"search\.max_cloud: .*less than or equal to 100.*140"):
        load_config(p, environ={})


def test_bad_weights_spec() -> None:
    with pytest.raises(ConfigError, match=r"model\.weights: must be knn:K"):
        build_config({"model": {"weights": "knn:x"}}, environ={})


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml", environ={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "a: [1,\n"), environ={})
    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_config(write(tmp_path, "- 1\n- 2\n"), environ={})


def test_relative_paths_resolve_against_the_config_file(tmp_path: Path) -> None:
    sub = tmp_path / "cfg"
    sub.mkdir()
    p = sub / "c.yaml"
    p.write_text("search:\n  backend: local\n  path: scenes\nworkdir: out\n")
    cfg = load_config(p, environ={})
    assert cfg.search.path == (sub / "scenes").resolve()
    assert cfg.workdir == (sub / "out").resolve()


def test_local_backend_needs_path() -> None:
    with pytest.raises(ConfigError, match="needs search.path"):
        build_config({"search": {"backend": "local"}}, environ={})


def test_time_order_and_months() -> None:
    with pytest.raises(ConfigError, match="before time.start"):
        build_config({"time": {"start": "2020-01-01", "end": "2019-01-01"}}, environ={})
    with pytest.raises(ConfigError, match="time.months"):
        build_config({"time": {"months": [0, 13]}}, environ={})


def test_set_option_parsing() -> None:
    assert parse_set_option(["search.max_cloud=30", "time.months=[6, 7]"]) == {
        "search.max_cloud": 30,
        "time.months": [6, 7],
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_set_option(["oops"])


def test_section_hash_changes_only_with_its_section() -> None:
    a = build_config({}, environ={})
    b = build_config({"forecast": {"horizon": 5}}, environ={})
    assert a.section_hash("grid", "masking") == b.section_hash("grid", "masking")
    assert a.section_hash("forecast") != b.section_hash("forecast")

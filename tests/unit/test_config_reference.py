"""The README's configuration table lists exactly the config model's keys, with their defaults."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from uhi.config import Config
from uhi.config_reference import END, START, markdown_table

README = Path(__file__).resolve().parents[2] / "README.md"
ROW = re.compile(r"^\| `(?P<key>[^`]+)` \| `(?P<default>[^`]*)` \| (?P<meaning>.*) \|$")


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _yaml_text(value: Any) -> str:
    # how a default reads in YAML; written here, not taken from uhi.config_reference
    if value is None:
        return "-"
    if value is True or value is False:
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_text(v) for v in value) + "]"
    return str(value)


def _readme_rows() -> dict[str, tuple[str, str]]:
    text = README.read_text(encoding="utf-8")
    assert START in text and END in text, "README lost its config-reference markers"
    block = text.split(START, 1)[1].split(END, 1)[0]
    rows: dict[str, tuple[str, str]] = {}
    for line in block.strip().splitlines()[2:]:
        m = ROW.match(line)
        assert m, f"README config row not in the `key` | `default` | meaning form: {line!r}"
        assert m["key"] not in rows, f"{m['key']} is listed twice"
        rows[m["key"]] = (m["default"], m["meaning"])
    return rows


def test_readme_lists_every_key_with_its_default() -> None:
    # the defaults of a Config built from nothing, as pydantic dumps them (an independent walk
    # of the model: new sections and keys appear here without any change to this test)
    expected = {k: _yaml_text(v) for k, v in _flatten(Config().model_dump(mode="json")).items()}
    rows = _readme_rows()
    missing = sorted(set(expected) - set(rows))
    extra = sorted(set(rows) - set(expected))
    assert not missing and not extra, f"README lacks {missing}, lists unknown {extra}: run make readme-config"
    wrong = {k: (rows[k][0], expected[k]) for k in expected if rows[k][0] != expected[k]}
    assert not wrong, f"README defaults differ from the code (README, code): {wrong}"
    assert all(meaning.strip() for _, meaning in rows.values()), "every key needs a meaning"


def test_readme_table_is_the_generated_one() -> None:
    block = README.read_text(encoding="utf-8").split(START, 1)[1].split(END, 1)[0]
    assert block.strip() == markdown_table(), "README's config table is stale: run make readme-config"

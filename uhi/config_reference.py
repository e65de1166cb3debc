"""The configuration reference (every key, its default and meaning) rendered from the Config model.

``make readme-config`` (``update_readme``) rewrites the table between the README's
``<!-- config-reference:start -->`` and ``<!-- config-reference:end -->`` markers;
``tests/unit/test_config_reference.py`` fails when the README and the model disagree.
"""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from uhi.config import Config

__all__ = ["config_keys", "default_text", "markdown_table", "update_readme", "START", "END"]

START = "<!-- config-reference:start -->"
END = "<!-- config-reference:end -->"


def config_keys(model: type[BaseModel] = Config, prefix: str = "") -> Iterator[tuple[str, Any, str]]:
    """Every leaf key of ``model`` as (dotted name, default, description), in declaration order."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from config_keys(annotation, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", field.default, field.description or ""


def default_text(value: Any) -> str:
    """A default as written in YAML: ``-`` for none, ``true``, ``[6, 7, 8]``, ``2014-01-01``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(default_text(v) for v in value) + "]"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _choices(annotation: Any) -> list[str]:
    """The allowed values of a ``Literal`` annotation (inside Optional or tuple too)."""
    if typing.get_origin(annotation) is typing.Literal:
        return [str(a) for a in typing.get_args(annotation)]
    for arg in typing.get_args(annotation):
        found = _choices(arg)
        if found:
            return found
    return []


def _annotation(key: str) -> Any:
    model: Any = Config
    *sections, leaf = key.split(".")
    for name in sections:
        model = model.model_fields[name].annotation
    return model.model_fields[leaf].annotation


def markdown_table() -> str:
    """The reference as a Markdown table: key, default, meaning (with the allowed values)."""
    lines = ["| key | default | meaning |", "|---|---|---|"]
    for key, default, description in config_keys():
        meaning = description
        choices = _choices(_annotation(key))
        if choices:
            meaning = f"{meaning}; one of {', '.join(choices)}" if meaning else f"one of {', '.join(choices)}"
        for char in "|<>":  # Markdown table cell and HTML-tag characters
            meaning = meaning.replace(char, "\\" + char)
        lines.append(f"| `{key}` | `{default_text(default)}` | {meaning} |")
    return "\n".join(lines)


def update_readme(path: Path) -> bool:
    """Rewrite the table between the markers of ``path``; True when the file changed."""
    text = Path(path).read_text(encoding="utf-8")
    if START not in text or END not in text:
        raise ValueError(f"{path} has no {START} ... {END} block")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{markdown_table()}\n{END}{tail}"
    if new == text:
        return False
    Path(path).write_text(new, encoding="utf-8")
    return True


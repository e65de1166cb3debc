"""Shared fixtures: paths to the real test data shipped in tests/data, and honest skips."""

from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

DATA = Path(__file__).parent / "data"


def uhi_exit_code(*args: str) -> int:
    """Run the ``uhi`` command in this process (click's main) and return its exit code."""
    from uhi.cli.main import main

    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def under_ci() -> bool:
    """Whether the run is CI's (``CI=true``, as GitHub Actions, GitLab and .ci/run set it)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def missing(what: str, fix: str) -> NoReturn:
    """A test cannot run without ``what``: skip it locally, fail it under CI.

    Every test that needs an optional tool goes through here (tests import it with
    ``from conftest import ...``), so a CI run never passes by silently skipping what it was
    meant to check. ``fix`` says how to install the tool.
    """
    if under_ci():
        pytest.fail(f"{what} is missing under CI (CI=true), so this test cannot run: {fix}", pytrace=False)
    pytest.skip(f"{what} is missing: {fix}")


def require_module(name: str, fix: str) -> ModuleType:
    """The imported module ``name``; :func:`missing` when it cannot be imported."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"the Python module {name!r}", fix)


def require_program(*names: str, fix: str) -> str:
    """Path of the first of ``names`` found on PATH; :func:`missing` when none is."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    missing(f"the program {' or '.join(repr(n) for n in names)}", fix)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """tests/data: real Landsat clips, STAC items, footprints (see tests/data/PROVENANCE.md)."""
    return DATA


@pytest.fixture(autouse=True)
def _no_uhi_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never inherit UHI_* settings from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("UHI_"):
            monkeypatch.delenv(name, raising=False)

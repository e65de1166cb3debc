"""Shared fixtures: paths to the real test data shipped in tests/data."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """tests/data: real Landsat clips, STAC items, footprints (see tests/data/PROVENANCE.md)."""
    return DATA


@pytest.fixture(autouse=True)
def _no_uhi_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never inherit UHI_* settings from the developer's shell."""
    import os

    for name in list(os.environ):
        if name.startswith("UHI_"):
            monkeypatch.delenv(name, raising=False)

"""tests/conftest.py's skip helpers: a missing tool skips locally and fails under CI."""

from __future__ import annotations

import pytest
from conftest import require_module, require_program


@pytest.mark.parametrize("ci", ["true", "1", "TRUE"])
def test_missing_tools_fail_under_ci(monkeypatch: pytest.MonkeyPatch, ci: str) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.fail.Exception, match="missing under CI.*apt-get install nope"):
        require_program("uhi-no-such-program", fix="apt-get install nope")
    with pytest.raises(pytest.fail.Exception, match="'uhi_no_such_module' is missing under CI"):
        require_module("uhi_no_such_module", fix="pip install nope")


@pytest.mark.parametrize("ci", [None, "", "false", "0"])
def test_missing_tools_skip_locally(monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    with pytest.raises(pytest.skip.Exception, match="is missing: pip install nope"):
        require_module("uhi_no_such_module", fix="pip install nope")


def test_present_tools_are_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert require_module("json", fix="").dumps(1) == "1"
    assert require_program("uhi-no-such-program", "sh", fix="").endswith("sh")

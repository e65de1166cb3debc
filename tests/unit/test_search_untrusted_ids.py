"""Item ids come from servers: whatever they are, their clips land inside fetch/scenes/, one folder each."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from uhi.workspace import Workspace

WS = Workspace(Path("/tmp/uhi-untrusted-ids-ws"))
SCENES = WS.path("fetch", "scenes")


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1, max_size=200), st.text(min_size=1, max_size=200))
def test_any_id_stays_inside_the_scenes_folder(a: str, b: str) -> None:
    pa, pb = WS.scene_asset(a, "red"), WS.scene_asset(b, "red")
    for p in (pa, pb):
        assert p.parent.parent == SCENES and p.name == "red.tif"
        assert p.parent.name not in (".", "..") and "/" not in p.parent.name
    if a != b:
        assert pa != pb


def test_known_attacks() -> None:
    for bad in ("../../x", "..", ".", "/etc/passwd", "a/../../b", "..\\..\\x", "x\x00y", "~root"):
        p = WS.scene_asset(bad, "red")
        assert p.parent.parent == SCENES, bad

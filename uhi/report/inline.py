"""The report's offline assets: Leaflet's JS and CSS read from the package, images as data URIs."""

from __future__ import annotations

import base64
import re
from importlib import resources

__all__ = ["leaflet_js", "leaflet_css", "cell_map_js", "data_uri"]

_URL = re.compile(r"url\((['\"]?)(images/[A-Za-z0-9_.-]+\.png)\1\)")


def _asset(*parts: str) -> bytes:
    node = resources.files("uhi.report").joinpath("assets")
    for part in parts:
        node = node.joinpath(part)
    return node.read_bytes()


def data_uri(payload: bytes, mime: str) -> str:
    """A ``data:`` URI of the bytes (base64)."""
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def leaflet_js() -> str:
    """Leaflet 1.7.1 (vendored, BSD-2; see assets/README.md)."""
    return _asset("leaflet.js").decode("utf-8")


def leaflet_css() -> str:
    """Leaflet's stylesheet with its image references replaced by data URIs.

    Leaflet points at ``images/*.png`` relative to the stylesheet, which would be a broken
    reference in a single-file page; the vendored images are inlined instead.
    """
    css = _asset("leaflet.css").decode("utf-8")
    return _URL.sub(lambda m: f"url({data_uri(_asset(*m.group(2).split('/')), 'image/png')})", css)


def cell_map_js() -> str:
    """uhi's own script that draws the cells on a Leaflet map (no tiles: offline)."""
    return resources.files("uhi.report").joinpath("cellmap.js").read_text(encoding="utf-8")

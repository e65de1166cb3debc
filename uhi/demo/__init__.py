"""A synthetic Calgary-like city written exactly like Landsat C2 L2 data, with planted truth."""

from __future__ import annotations

from uhi.demo.city import DemoResult, write_demo
from uhi.demo.spec import DemoSpec

__all__ = ["DemoSpec", "DemoResult", "write_demo"]

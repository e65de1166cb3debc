"""Pipeline stages: each a plain ``run(config, workspace)`` with a StageSpec for the runner."""

from __future__ import annotations

import importlib

from uhi.errors import ConfigError
from uhi.stages.runner import StageSpec
from uhi.workspace import STAGES

__all__ = ["get_spec", "STAGES"]


def get_spec(name: str) -> StageSpec:
    """The StageSpec of a stage by name (imports the stage module lazily)."""
    if name not in STAGES:
        raise ConfigError(f"unknown stage {name!r}; choose from {', '.join(STAGES)}")
    module = importlib.import_module(f"uhi.stages.{name}")
    spec: StageSpec = module.SPEC
    return spec

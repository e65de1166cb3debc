"""Spatial statistics: weights, regressions, panel models, impacts, hotspots, diagnostics."""

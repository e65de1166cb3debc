"""Raster work on fetched scenes: masking, indices, LST and per-scene outputs."""

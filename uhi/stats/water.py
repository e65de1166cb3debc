"""Water cells: which cells the models, Gi*, forecast and scenario leave out."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["exclude_water_cells"]


def exclude_water_cells(cells: Any, max_water_share: float) -> tuple[Any, dict[str, Any]]:
    """The cells at most ``max_water_share`` water, and a record of those left out.

    A cell's LST over a lake or the sea is the water's temperature, driven by the water body
    and not by the cell's vegetation or buildings; mixed into a regression on NDVI and NDBI it
    reverses the vegetation coefficient (issue 12: on the Liverpool clip b_NDVI is +2.73 with
    all cells, -1.46 with cells at most half water). Cells without a ``water_share`` value
    (never observed) are kept: they carry no data to mislead.

    Parameters
    ----------
    cells
        Frame with a ``water_share`` column (0..1); without one nothing is left out.
    max_water_share
        Cells whose water share is above this are left out.

    Returns
    -------
    kept, record
        The kept rows (same order, index reset) and ``max_water_share``, ``cells``,
        ``cells_left_out_water`` and ``reason``.
    """
    record: dict[str, Any] = {"max_water_share": float(max_water_share), "cells": int(len(cells))}
    if "water_share" not in cells.columns:
        record.update(cells_left_out_water=0, reason="no water_share column: no cell left out")
        return cells, record
    share = cells["water_share"].to_numpy(dtype=np.float64)
    water = np.nan_to_num(share, nan=0.0) > max_water_share
    record.update(
        cells_left_out_water=int(water.sum()),
        reason=f"cells more than {max_water_share:g} water (cells.parquet water_share) are left out: "
        "their LST is the water's, not the land's (model.max_water_share)",
    )
    if not water.any():
        return cells, record
    return cells.loc[~water].reset_index(drop=True), record

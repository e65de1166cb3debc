"""Yearly per-pixel mean composites, summed in memory as the scenes are processed."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

import numba
import numpy as np

__all__ = ["YearComposite", "YearlyMeans"]


@dataclass
class _Sums:
    """float64 sums and valid counts of one (pixel grid, year), per variable."""

    total: dict[str, np.ndarray] = field(default_factory=dict)
    count: dict[str, np.ndarray] = field(default_factory=dict)
    scenes: int = 0


@dataclass(frozen=True)
class YearComposite:
    """One year's means (float32, NaN where no scene saw the pixel clear) on one pixel grid."""

    year: int
    grid: Hashable
    scenes: int
    means: dict[str, np.ndarray]  # only the variables with at least one valid pixel


class YearlyMeans:
    """Per pixel grid and year, the pixel-wise mean of float rasters (NaN ignored).

    Scenes are added one at a time, in the order the mean should sum them (the scene order),
    so the result is what summing the per-scene rasters read back from disk gave: the same
    float64 additions in the same order, then the same division and cast to float32. A year
    lives on the grid that most of its scenes share (the first such grid on a tie); a year's
    sums take 10 bytes per pixel and variable (float64 sum, uint16 count) until it is popped.
    """

    def __init__(self) -> None:
        self._sums: dict[tuple[Hashable, int], _Sums] = {}

    def add(self, grid: Hashable, year: int, rasters: Mapping[str, np.ndarray]) -> None:
        """Add one scene's rasters (same shape on ``grid``; NaN = masked) to ``year``'s sums."""
        sums = self._sums.setdefault((grid, int(year)), _Sums())
        for var, values in rasters.items():
            block = np.asarray(values)
            if var not in sums.total:
                sums.total[var] = np.zeros(block.shape)
                sums.count[var] = np.zeros(block.shape, dtype=np.uint16)
            if block.shape != sums.total[var].shape:
                raise ValueError(f"{var}: raster of shape {block.shape} added to sums of {sums.total[var].shape}")
            # one pass, no float64 copy or mask of the raster: total + float64(v) where v is not NaN
            _add_valid(np.ascontiguousarray(block).reshape(-1), sums.total[var].reshape(-1), sums.count[var].reshape(-1))
        sums.scenes += 1

    def years(self) -> list[int]:
        """Years with at least one scene added and not yet popped, ascending."""
        return sorted({year for _, year in self._sums})

    def pop(self, year: int) -> YearComposite | None:
        """The year's means on its most common grid (its sums on every grid are dropped)."""
        keys = [key for key in self._sums if key[1] == year]
        if not keys:
            return None
        best = max(keys, key=lambda k: self._sums[k].scenes)  # first inserted wins a tie
        sums = self._sums[best]
        for key in keys:
            del self._sums[key]
        means: dict[str, np.ndarray] = {}
        for var, total in sums.total.items():
            mean = np.empty(total.shape, dtype=np.float32)
            # float64 sum / count, then float32; NaN where no scene saw the pixel
            if _means(total.reshape(-1), sums.count[var].reshape(-1), mean.reshape(-1)):
                means[var] = mean
        return YearComposite(year=year, grid=best[0], scenes=sums.scenes, means=means)


@numba.njit(cache=True, nogil=True)
def _add_valid(values: np.ndarray, total: np.ndarray, count: np.ndarray) -> None:  # pragma: no cover - compiled
    for i in range(values.shape[0]):
        x = np.float64(values[i])
        if x == x:  # not NaN
            total[i] += x
            count[i] += 1


@numba.njit(cache=True, nogil=True)
def _means(total: np.ndarray, count: np.ndarray, out: np.ndarray) -> bool:  # pragma: no cover - compiled
    seen = False
    for i in range(total.shape[0]):
        if count[i] > 0:
            out[i] = np.float32(total[i] / np.float64(count[i]))
            seen = True
        else:
            out[i] = np.float32(np.nan)
    return seen

"""GeoTIFFs written atomically: Cloud-Optimized (GDAL's COG driver) or plain tiled (fetch clips)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["write_cog", "write_array_cog", "write_tiled_gtiff"]


def write_cog(
    path: Path,
    data: np.ndarray,
    *,
    transform: Any,
    crs: Any,
    nodata: float | int | None = None,
    band_names: list[str] | None = None,
    units: list[str] | None = None,
    scales: list[float] | None = None,
    offsets: list[float] | None = None,
    tags: dict[str, str] | None = None,
    compress: str = "deflate",
    blocksize: int = 256,
) -> Path:
    """Write a 2-D (or bands x rows x cols) array as a tiled, compressed COG, atomically.

    Float data gets NaN as nodata unless another value is given; overviews are built by the
    COG driver when the raster is larger than one block.

    ``band_names`` become the band descriptions and ``units`` the band units (UDUNITS-style
    strings: ``degC``, ``kelvin``, ``1`` for unitless); ``scales`` and ``offsets`` tell a
    reader how to turn stored values into physical ones (value = stored * scale + offset),
    as GDAL and QGIS apply them. Tags must not hold absolute local paths (files are shared).
    """
    import rasterio
    from rasterio.io import MemoryFile
    from rasterio.shutil import copy as rio_copy

    from uhi.workspace import Workspace

    arr, profile = _gtiff_profile(data, transform=transform, crs=crs, nodata=nodata)
    height, width = arr.shape[1:]
    predictor = 3 if np.issubdtype(arr.dtype, np.floating) else 2
    ws = Workspace(Path(path).parent)
    with ws.atomic_path(Path(path)) as tmp:
        with MemoryFile() as mem:
            with mem.open(**profile) as dst:
                dst.write(arr)
                _describe(dst, band_names, units, scales, offsets, tags)
            with mem.open() as src:
                rio_copy(
                    src,
                    tmp,
                    driver="COG",
                    compress=compress,
                    predictor=predictor,
                    blocksize=blocksize,
                    overview_resampling="average",
                )
        with rasterio.open(tmp) as check:  # a COG that cannot be reopened is never renamed in
            check.read(1, window=((0, min(1, height)), (0, min(1, width))))
    return Path(path)


def write_array_cog(
    path: Path,
    data: np.ndarray,
    *,
    transform: Any,
    crs: Any,
    nodata: float | int | None,
    band_name: str | None = None,
    unit: str | None = None,
    compress: str = "deflate",
    level: int | None = None,
    predictor: int | None = None,
    overview_resampling: str | None = None,
    blocksize: int = 256,
) -> Path:
    """Write one 2-D array as a COG straight from memory, atomically.

    The array is wrapped in a GDAL ``MEM`` dataset and handed to the COG driver, which tiles,
    compresses and builds the overviews from it: no compressed intermediate is written and
    read back (what :func:`write_cog` does through an in-memory GTiff). ``overview_resampling``
    None keeps the COG driver's default; ``level`` None keeps the codec's default level.
    """
    import rasterio
    from rasterio.shutil import copy as rio_copy

    from uhi.workspace import Workspace

    arr = np.asarray(data)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D array, got shape {arr.shape}")
    options: dict[str, Any] = {"compress": compress, "blocksize": blocksize}
    if level is not None:
        options["level"] = level
    if predictor is not None:
        options["predictor"] = predictor
    if overview_resampling is not None:
        options["overview_resampling"] = overview_resampling
    ws = Workspace(Path(path).parent)
    with ws.atomic_path(Path(path)) as tmp:
        with rasterio.open(
            "uhi-array", "w", driver="MEM", height=arr.shape[0], width=arr.shape[1], count=1,
            dtype=arr.dtype, crs=crs, transform=transform, nodata=nodata,
        ) as mem:
            mem.write(arr, 1)
            _describe(mem, None if band_name is None else [band_name], None if unit is None else [unit])
            rio_copy(mem, tmp, driver="COG", **options)
    return Path(path)


def write_tiled_gtiff(
    path: Path,
    data: np.ndarray,
    *,
    transform: Any,
    crs: Any,
    nodata: float | int | None = None,
    band_names: list[str] | None = None,
    units: list[str] | None = None,
    scales: list[float] | None = None,
    offsets: list[float] | None = None,
    tags: dict[str, str] | None = None,
    zstd_level: int = 1,
    blocksize: int = 256,
) -> Path:
    """Write a 2-D (or bands x rows x cols) array as a tiled ZSTD GeoTIFF, atomically.

    No overviews and no COG reordering: one pass of GDAL's GTiff driver straight into the file,
    for rasters that only uhi reads back at full resolution (the fetch stage's clips). The
    pixels are stored losslessly (ZSTD; horizontal differencing predictor for integers,
    floating-point predictor for floats); metadata as in :func:`write_cog`.

    Measured on 27 clips of the 30 km demo city (uint16/int16 DNs, ~1,000 x 1,000 px, one
    process, A/B back to back): this writer 9.6 ms CPU and 1.17 MB a clip; the COG of
    :func:`write_cog` (deflate, overviews, in-memory GTiff then COG driver) 73 ms and 1.65 MB;
    tiled GTiff with deflate level 6 31 ms / 1.19 MB, deflate 1 20 ms / 1.19 MB, ZSTD 3 11 ms /
    1.18 MB. ZSTD 1 is both the cheapest and the smallest of them.
    """
    import rasterio

    from uhi.workspace import Workspace

    arr, profile = _gtiff_profile(data, transform=transform, crs=crs, nodata=nodata)
    height, width = arr.shape[1:]
    profile.update({
        "tiled": True,
        "blockxsize": blocksize,
        "blockysize": blocksize,
        "compress": "zstd",
        "zstd_level": zstd_level,
        "predictor": 3 if np.issubdtype(arr.dtype, np.floating) else 2,
        "interleave": "band",
    })
    ws = Workspace(Path(path).parent)
    with ws.atomic_path(Path(path)) as tmp:
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(arr)
            _describe(dst, band_names, units, scales, offsets, tags)
        with rasterio.open(tmp) as check:  # a file that cannot be reopened is never renamed in
            check.read(1, window=((0, min(1, height)), (0, min(1, width))))
    return Path(path)


def _gtiff_profile(data: np.ndarray, *, transform: Any, crs: Any, nodata: float | int | None) -> tuple[np.ndarray, dict[str, Any]]:
    """The array as (bands, rows, cols) and its GTiff profile; float data gets NaN as nodata by default."""
    arr = np.asarray(data)
    if arr.ndim == 2:
        arr = arr[np.newaxis]
    if arr.ndim != 3:
        raise ValueError(f"expected a 2-D or 3-D array, got shape {arr.shape}")
    if nodata is None and np.issubdtype(arr.dtype, np.floating):
        nodata = float("nan")
    count, height, width = arr.shape
    profile = {"driver": "GTiff", "height": height, "width": width, "count": count, "dtype": arr.dtype,
               "crs": crs, "transform": transform, "nodata": nodata}
    return arr, profile


def _describe(
    dst: Any,
    band_names: list[str] | None,
    units: list[str] | None,
    scales: list[float] | None = None,
    offsets: list[float] | None = None,
    tags: dict[str, str] | None = None,
) -> None:
    """Band descriptions, units, scales and offsets, and dataset tags, on an open dataset."""
    for i, name in enumerate(band_names or [], start=1):
        dst.set_band_description(i, name)
    for i, unit in enumerate(units or [], start=1):
        dst.set_band_unit(i, unit)
    if scales is not None:
        dst.scales = tuple(float(v) for v in scales)
    if offsets is not None:
        dst.offsets = tuple(float(v) for v in offsets)
    if tags:
        dst.update_tags(**tags)

"""The SUHI reference on the real Liverpool clip: an AOI of open water is refused, not a NaN SUHI."""

from __future__ import annotations

import pytest
from rasterio.windows import Window
from test_compute_stage import LIVERPOOL, _config, inner_bbox, place_scene

from uhi.errors import NoDataError
from uhi.stages import compute
from uhi.stages.runner import execute
from uhi.workspace import Workspace


def test_an_aoi_of_open_water_exits_with_the_cause(tmp_path, data_dir):
    ws = Workspace(tmp_path / "ws")
    # the clip's north-west 200 x 200 pixels are Liverpool Bay (MNDWI > 0 on every pixel)
    _, bounds = place_scene(ws, data_dir / "landsat" / LIVERPOOL, window=Window(0, 0, 200, 200))
    cfg = _config(tmp_path, inner_bbox(bounds), grid={"zoom": 17})
    with pytest.raises(NoDataError, match=r"no urban cell among \d+ cells \(every observed cell is more than half water\)"):
        execute(compute.SPEC, cfg, ws)

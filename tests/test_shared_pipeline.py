"""Every camera RAW in ../shared/data through the whole product path:
profile extraction -> LibRaw render -> JPEG -> analytic convert with that profile -> DNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rawpy
from PIL import Image

from rawback import camera
from rawback.convert import ConvertOptions, convert_file
from rawback.io.exif import exif_from_raw, to_jpeg_exif
from rawback.io.raw import CAMERA_WB_RENDER, camera_wb_neutral, read_raw, render_raw
from rawback.isp.bayer import pattern_from_codes
from tests.conftest import shared_raw_files


@pytest.mark.shared_data
@pytest.mark.slow
@pytest.mark.parametrize("path", shared_raw_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_render_convert_reopen(path: Path, tmp_path: Path) -> None:
    raw = read_raw(path)
    profile = camera.profile_from_raw(path)
    render = render_raw(path, **CAMERA_WB_RENDER)
    # The half-size shortcut reads the same white balance, LibRaw's fallbacks included (D30, DC120).
    assert np.array_equal(camera_wb_neutral(path), render.neutral)
    jpeg = tmp_path / f"{path.stem}.jpg"
    Image.fromarray(render.rgb).save(jpeg, quality=90, exif=to_jpeg_exif(exif_from_raw(raw)))
    dng = tmp_path / f"{path.stem}.dng"
    # The analytic method: this test is about geometry and levels of every file, not the model.
    result = convert_file(jpeg, dng, ConvertOptions(method="analytic", camera=str(path), transfer="bt709"))
    assert result.profile == profile.name
    with rawpy.imread(str(dng)) as out:
        assert out.raw_image_visible.shape == render.rgb.shape[:2]
        assert pattern_from_codes(out.raw_pattern, out.color_desc.decode()) == raw.pattern
        assert out.white_level == profile.white_level
        per_site = [out.black_level_per_channel[int(i)] for i in out.raw_pattern.reshape(-1)]
        assert np.allclose(per_site, profile.black_level)
        assert out.raw_image_visible.max() <= profile.white_level

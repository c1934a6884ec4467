"""The synthetic sample chart: content, determinism, and the JPEG that the demo converts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rawback.errors import OutputError
from rawback.io.image import read_image
from rawback.samplechart import (
    COLOR_CHECKER_SRGB,
    HIGHLIGHT_COLORS,
    WEDGE_STEPS,
    make_sample_chart,
    write_sample_jpeg,
)


@pytest.fixture(scope="module")
def chart() -> np.ndarray:
    return make_sample_chart()


@pytest.fixture(scope="module")
def counts(chart: np.ndarray) -> dict[tuple[int, int, int], int]:
    """How many pixels have each colour."""
    packed = (chart[..., 0].astype(np.int32) << 16) | (chart[..., 1].astype(np.int32) << 8) | chart[..., 2]
    keys, numbers = np.unique(packed, return_counts=True)
    return {
        (int(k >> 16), int(k >> 8 & 255), int(k & 255)): int(n) for k, n in zip(keys, numbers, strict=True)
    }


def test_shape_and_type(chart: np.ndarray) -> None:
    assert chart.shape == (1024, 1536, 3) and chart.dtype == np.uint8
    assert make_sample_chart(400, 300).shape == (300, 400, 3)


def test_deterministic() -> None:
    assert np.array_equal(make_sample_chart(320, 200), make_sample_chart(320, 200))


def test_every_color_checker_patch_is_there(counts: dict) -> None:
    assert len(COLOR_CHECKER_SRGB) == 24
    for color in COLOR_CHECKER_SRGB:
        assert counts.get(color, 0) > 3000, color  # a patch is about 95x85 pixels at full size


def test_grey_wedge_has_every_step(counts: dict) -> None:
    for step in range(WEDGE_STEPS):
        level = step * 255 // (WEDGE_STEPS - 1)
        assert counts.get((level, level, level), 0) > 2000, level


def test_clipped_highlights(chart: np.ndarray, counts: dict) -> None:
    assert counts[(255, 255, 255)] > 10_000  # pure white, as a blown sky or lamp
    for color in HIGHLIGHT_COLORS:
        assert counts.get(color, 0) > 1000, color
    at_255 = (chart == 255).sum(axis=-1)
    one_clipped = (at_255 == 1) & (chart.min(axis=-1) < 200)
    assert one_clipped.sum() > 5000  # colours with a single clipped channel


def test_smooth_gradients_use_every_level(chart: np.ndarray) -> None:
    greys = chart[(chart[..., 0] == chart[..., 1]) & (chart[..., 1] == chart[..., 2])][:, 0]
    assert len(np.unique(greys)) == 256
    hues = {tuple(c) for c in chart[chart.max(axis=-1) - chart.min(axis=-1) > 200][::7]}
    assert len(hues) > 300  # a hue sweep, not a few flat colours


def test_fine_detail_reaches_nyquist(chart: np.ndarray) -> None:
    # One-pixel line pairs: neighbours that differ by the full range, both ways.
    assert np.abs(np.diff(chart[..., 1].astype(int), axis=1)).max() == 255
    assert np.abs(np.diff(chart[..., 1].astype(int), axis=0)).max() == 255
    spectrum = np.abs(np.fft.rfft2(chart[..., 1].astype(float) - chart[..., 1].mean()))
    high = spectrum[spectrum.shape[0] // 4 : -spectrum.shape[0] // 4, spectrum.shape[1] // 2 :]
    assert high.sum() > 0.01 * spectrum.sum()


@pytest.mark.parametrize("size", [(64, 64), (64, 300), (300, 64), (97, 131)])
def test_small_and_odd_sizes(size: tuple[int, int]) -> None:
    width, height = size
    assert make_sample_chart(width, height).shape == (height, width, 3)


def test_too_small_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 64x64"):
        make_sample_chart(32, 32)


def test_write_sample_jpeg_reads_back_with_exif(tmp_path: Path) -> None:
    path = write_sample_jpeg(tmp_path / "sample.jpg", width=384, height=256, quality=90)
    assert path == tmp_path / "sample.jpg"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample.jpg"]  # no temporary left
    image = read_image(path)
    assert image.rgb.shape == (256, 384, 3)
    assert image.jpeg_bytes is not None  # baseline JPEG
    exif = image.exif
    assert (exif.make, exif.model, exif.orientation) == ("rawback", "sample chart", 1)
    assert exif.datetime is not None and exif.warnings == []
    assert exif.exif[33434] == (1, 125) and exif.exif[33437] == (8, 1) and exif.exif[34855] == 100
    reference = make_sample_chart(384, 256).astype(np.float32) / 255
    assert np.abs(image.rgb - reference).mean() < 0.03  # JPEG at quality 90


def test_write_sample_jpeg_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "sample.jpg"
    path.write_bytes(b"old")
    write_sample_jpeg(path, width=64, height=64)  # the CLI has checked --overwrite already
    assert path.read_bytes()[:2] == b"\xff\xd8"
    with pytest.raises(OutputError, match="already exists"):
        write_sample_jpeg(path, width=64, height=64, overwrite=False)

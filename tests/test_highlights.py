"""Clipped highlights (rawback.isp.highlights): where the photo is blown, every CFA site of the mosaic
is at the white level, as a saturated sensor's would be, so that raw editors see the clipping."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rawback.isp.highlights import blown_pixels, restore_clipping, whole_quads


def photo(shape: tuple[int, int] = (40, 48), seed: int = 0) -> np.ndarray:
    """A mid-grey photo with a little noise, sRGB in [0, 1]."""
    rng = np.random.default_rng(seed)
    return np.clip(0.45 + rng.normal(0, 0.01, (*shape, 3)), 0, 1).astype(np.float32)


def jpeg_roundtrip(rgb: np.ndarray, quality: int = 85) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(np.rint(rgb * 255).astype(np.uint8)).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer), dtype=np.float32) / 255


def analytic_like(rgb: np.ndarray) -> np.ndarray:
    """A stand-in for a method's mosaic: what the analytic inverse gives a white photo, R and B
    below the white level (RGGB)."""
    mosaic = np.empty(rgb.shape[:2], np.float32)
    mosaic[0::2, 0::2] = 0.5 * rgb[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = rgb[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = rgb[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = 0.7 * rgb[1::2, 1::2, 2]
    return mosaic


def test_a_blown_area_reads_as_a_saturated_sensor_at_every_cfa_site() -> None:
    rgb = photo()
    rgb[4:20, 6:30] = 1.0  # a blown sky, through JPEG compression: 250-255 at its edges
    rgb = jpeg_roundtrip(rgb)
    mosaic = analytic_like(rgb)
    result = restore_clipping(mosaic, rgb)
    assert (result.mosaic[4:20, 6:30] == 1.0).all()  # red, both greens and blue
    outside = np.ones(mosaic.shape, bool)
    outside[2:22, 4:32] = False  # the blown area and the quads along its edge
    assert np.array_equal(result.mosaic[outside], mosaic[outside])
    assert result.clipped == pytest.approx(16 * 24 / (40 * 48), abs=0.02)


def test_a_single_saturated_channel_is_a_colour_and_stays() -> None:
    rgb = photo()
    rgb[4:20, 4:20] = (1.0, 0.12, 0.10)  # a red flower: red at 255
    rgb[20:36, 4:20] = (1.0, 1.0, 0.6)  # a yellow lamp shade: red and green at 255
    rgb[4:20, 24:40] = (0.9, 0.95, 1.0)  # bright, not blown: 230-255
    mosaic = analytic_like(rgb)
    result = restore_clipping(mosaic, rgb)
    assert np.array_equal(result.mosaic, mosaic) and result.clipped == 0.0 and result.notes == ()


def test_a_near_white_surface_without_a_blown_core_stays() -> None:
    """A chart's white patch or paper sits at 245-253 with noise: a stray 254 inside it must not
    flood it, as the JPEG is not clipped there."""
    rng = np.random.default_rng(1)
    rgb = photo()
    rgb[4:36, 4:44] = rng.integers(249, 254, (32, 40, 3)) / 255
    rgb[20, 20] = 254 / 255
    rgb[10:12, 10:12] = 1.0  # a 2x2 speck at 255: smaller than a seed
    assert not blown_pixels(rgb).any()


def test_the_blown_area_grows_through_the_jpeg_noise_around_its_core() -> None:
    rgb = photo()
    rgb[4:36, 4:44] = 252 / 255  # a fringe at 250-253, connected to the core
    rgb[10:30, 10:38] = 1.0
    mask = blown_pixels(rgb)
    assert mask[4:36, 4:44].all() and not mask[:4].any() and not mask[:, :4].any()


def test_whole_quads_clip_every_site_of_a_quad_and_no_other() -> None:
    mask = np.zeros((7, 9), bool)
    mask[3, 4] = True  # in the quad of rows 2-3, columns 4-5
    mask[6, 8] = True  # the trailing odd row and column: a partial quad
    expected = np.zeros_like(mask)
    expected[2:4, 4:6] = True
    expected[6, 8] = True
    assert np.array_equal(whole_quads(mask), expected)


def test_reconstructed_values_are_kept_and_the_rest_set_to_white() -> None:
    rgb = photo()
    rgb[4:20, 4:20] = 1.0
    mosaic = analytic_like(rgb)
    mosaic[4:20:2, 4:20:2] = 0.8  # the model restored red above the photo's 0.5
    reconstructed = np.zeros(mosaic.shape, bool)
    reconstructed[4:20:2, 4:20:2] = True
    result = restore_clipping(mosaic, rgb, reconstructed)
    assert (result.mosaic[4:20:2, 4:20:2] == 0.8).all()
    others = np.ones((16, 16), bool)
    others[::2, ::2] = False
    assert (result.mosaic[4:20, 4:20][others] == 1.0).all()
    assert result.kept == pytest.approx(0.25)
    assert "25% of those sites keep the model's reconstruction" in result.notes[0]
    # outside the blown area a reconstruction flag changes nothing
    far = np.zeros_like(reconstructed)
    far[30:, 30:] = True
    assert np.array_equal(restore_clipping(mosaic, rgb, far).mosaic, restore_clipping(mosaic, rgb).mosaic)


def test_the_note_says_how_much_was_clipped() -> None:
    rgb = photo((40, 40))
    rgb[:10] = 1.0
    (note,) = restore_clipping(analytic_like(rgb), rgb).notes
    assert note == "highlights: 25.0% of the photo clipped, set to the white level"


def test_sizes_must_match() -> None:
    with pytest.raises(ValueError, match="differ in size"):
        restore_clipping(np.zeros((4, 4), np.float32), np.zeros((4, 6, 3), np.float32))


def test_convert_sets_a_blown_sky_to_the_white_level(tmp_path: Path) -> None:
    """Through `convert`: the analytic method's counts in a blown area are all at the white level;
    elsewhere they are what the method gave, and -v says how much was clipped."""
    from rawback.convert import ConvertOptions, invert_image
    from rawback.inverse import InverseRequest
    from rawback.io.image import read_image
    from rawback.isp.unprocess import to_counts
    from rawback.methods import get_method

    rgb = photo((64, 80))
    rgb[:24] = 1.0
    path = tmp_path / "sky.jpg"
    Image.fromarray(np.rint(rgb * 255).astype(np.uint8)).save(path, quality=90)
    image = read_image(path)
    inversion = invert_image(image, ConvertOptions(method="analytic"))
    white = inversion.profile.white_level
    assert (inversion.counts[:22] == white).all()
    assert any(note.startswith("highlights: ") for note in inversion.notes)
    before = get_method("analytic")(InverseRequest(rgb=image.rgb, bit_depth=8, profile=inversion.profile))
    plain = to_counts(before.mosaic, inversion.profile)
    assert (plain[:22] < white).any()  # red and blue stopped below it
    assert np.array_equal(inversion.counts[28:], plain[28:])


def test_a_12_megapixel_photo_takes_a_fraction_of_a_second() -> None:
    rgb = np.full((3000, 4000, 3), 0.4, np.float32)
    rgb[:900] = 1.0  # a blown sky over a quarter of the frame
    mosaic = np.full((3000, 4000), 0.3, np.float32)
    start = time.perf_counter()
    result = restore_clipping(mosaic, rgb)
    assert time.perf_counter() - start < 2.0  # about 0.2 s on a 2-core machine
    assert result.clipped == pytest.approx(0.3)


@pytest.mark.parametrize("lift", [0.3, 0.02])
def test_the_learned_method_keeps_what_it_reconstructs_above_the_photo(
    tiny_weights: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, lift: float
) -> None:
    """A residual that lifts red well above the analytic prior in a blown area is a reconstruction and
    stays; a lift within the residual's own spread (3 sigma_data) is noise and the site goes to white."""
    import torch

    from rawback import inference
    from rawback.camera import builtin_profiles
    from rawback.convert import ConvertOptions, invert_image
    from rawback.diffusion_settings import DiffusionSettings
    from rawback.io.image import read_image

    def red_lift(model, cond, *args, **kwargs):  # (1, 4, h, w) packed RGGB residual
        residual = torch.zeros((1, 4, *cond.shape[2:]), dtype=torch.float64)
        residual[:, 0] = lift
        return residual

    monkeypatch.setattr(inference, "sample_residual", red_lift)
    rgb = photo((48, 64))
    rgb[:20] = 1.0
    path = tmp_path / "sky.png"
    Image.fromarray(np.rint(rgb * 255).astype(np.uint8)).save(path)
    image = read_image(path)
    settings = DiffusionSettings(
        weights=tiny_weights, sampler="euler", steps=1, tile=64, overlap=16, residual="full"
    )
    inversion = invert_image(image, ConvertOptions(diffusion=settings))
    assert inversion.profile.cfa_pattern == builtin_profiles()["generic"].cfa_pattern == "RGGB"
    white, counts = inversion.profile.white_level, inversion.counts[:18]
    red = counts[0::2, 0::2]
    assert (counts[0::2, 1::2] == white).all() and (counts[1::2, 1::2] == white).all()
    if lift > 0.09:
        assert (red < white).all() and any("keep the model's reconstruction" in n for n in inversion.notes)
    else:
        assert (red == white).all()

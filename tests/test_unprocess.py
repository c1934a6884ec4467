"""The analytic inverse ISP against a forward model with a known answer, and against LibRaw."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rawback import camera, metrics
from rawback.isp import bayer, color
from rawback.isp.unprocess import (
    UnprocessSettings,
    inverse_smoothstep,
    neutral_for_illuminant,
    to_counts,
    unprocess,
    white_balance_scale,
)
from tests.conftest import colour_profile

S40 = colour_profile("canon-powershot-s40")
GOPRO = camera.builtin_profiles()["gopro-hero8-black"]


def forward_isp(
    raw_rgb: np.ndarray, profile: camera.CameraProfile, neutral: np.ndarray, curve: str
) -> np.ndarray:
    """LibRaw's rendering of per-pixel camera RGB: white balance, clip, rgb_cam, transfer curve."""
    balanced = np.clip(raw_rgb * white_balance_scale(neutral), 0, 1)
    linear = balanced @ profile.srgb_from_camera().T
    return color.from_linear(np.clip(linear, 0, 1), curve)


def smooth_scene(h: int = 64, w: int = 96, seed: int = 0) -> np.ndarray:
    """Smooth linear-sRGB gradients inside the gamut (a real ISP clips out-of-gamut colours)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    base = np.stack([0.2 + 0.3 * x, 0.25 + 0.2 * y, 0.15 + 0.2 * (x + y) / 2], axis=-1)
    return np.clip(base * rng.uniform(0.8, 1.2, size=3), 0, 1)


def camera_scene(profile: camera.CameraProfile, neutral: np.ndarray, **kw: int) -> np.ndarray:
    """Per-pixel camera RGB (normalised raw) whose render is `smooth_scene`."""
    balanced = smooth_scene(**kw) @ np.linalg.inv(profile.srgb_from_camera()).T
    raw_rgb = balanced / white_balance_scale(neutral)
    assert raw_rgb.min() >= 0 and raw_rgb.max() <= 1
    return raw_rgb


@pytest.mark.parametrize(
    "profile", [S40, GOPRO, camera.builtin_profiles()["kodak-dc50"]], ids=lambda p: p.name
)
@pytest.mark.parametrize("curve", ["srgb", "bt709"])
def test_inverts_the_forward_model_exactly(profile: camera.CameraProfile, curve: str) -> None:
    neutral = profile.daylight_neutral() * np.array([1.1, 1.0, 0.9])
    raw_rgb = camera_scene(profile, neutral)
    display = forward_isp(raw_rgb, profile, neutral, curve)
    # Full precision in: use 16-bit codes so quantisation is negligible.
    mosaic = unprocess(display, profile, neutral, UnprocessSettings(transfer=curve), bit_depth=16)
    expected = bayer.mosaic_rgb(raw_rgb, profile.cfa_pattern)
    assert np.max(np.abs(mosaic - expected)) < 2e-4


def test_eight_bit_input_is_close() -> None:
    neutral = S40.daylight_neutral()
    raw_rgb = camera_scene(S40, neutral)
    display8 = np.rint(forward_isp(raw_rgb, S40, neutral, "srgb") * 255) / 255
    mosaic = unprocess(display8.astype(np.float32), S40, neutral)
    assert metrics.psnr(mosaic, bayer.mosaic_rgb(raw_rgb, "RGGB")) > 45


def test_wrong_white_balance_is_a_per_channel_scale() -> None:
    true = S40.daylight_neutral() * np.array([1.3, 1.0, 0.8])
    raw_rgb = camera_scene(S40, true)
    display = forward_isp(raw_rgb, S40, true, "srgb")
    guess = unprocess(display, S40, S40.daylight_neutral(), bit_depth=16)
    packed_truth = bayer.pack_rggb(bayer.mosaic_rgb(raw_rgb, "RGGB"), "RGGB")
    packed_guess = bayer.pack_rggb(guess, "RGGB")
    assert metrics.psnr(packed_guess, packed_truth) < 35
    assert metrics.wb_oracle_psnr(packed_guess, packed_truth) > 60


def test_inverse_smoothstep() -> None:
    x = np.linspace(0, 1, 101)
    assert np.allclose(inverse_smoothstep(3 * x**2 - 2 * x**3), x, atol=1e-7)


def test_tone_curve_is_undone_before_the_transfer_curve() -> None:
    neutral = S40.daylight_neutral()
    raw_rgb = camera_scene(S40, neutral)
    display = forward_isp(raw_rgb, S40, neutral, "srgb")
    toned = 3 * display**2 - 2 * display**3
    mosaic = unprocess(toned, S40, neutral, UnprocessSettings(tone_curve="smoothstep"), bit_depth=16)
    assert np.max(np.abs(mosaic - bayer.mosaic_rgb(raw_rgb, "RGGB"))) < 1e-3


def test_neutral_for_illuminant() -> None:
    assert np.allclose(neutral_for_illuminant(S40, 6504), S40.daylight_neutral())
    tungsten, daylight = neutral_for_illuminant(GOPRO, 2850), neutral_for_illuminant(GOPRO, 6504)
    # Under tungsten a camera sees much more red than blue.
    assert tungsten[0] / tungsten[2] > 2 * daylight[0] / daylight[2]
    mid = neutral_for_illuminant(GOPRO, 4000)
    assert daylight[0] < mid[0] < tungsten[0]


def test_counts_respect_per_site_levels() -> None:
    profile = camera.builtin_profiles()["canon-eos-d30"]  # black 127 on red sites, 128 elsewhere
    counts = to_counts(np.zeros((4, 4), np.float32), profile)
    assert counts.dtype == np.uint16
    assert counts[0, 0] == 127 and counts[0, 1] == 128 and counts[1, 1] == 128
    assert np.all(to_counts(np.ones((4, 4), np.float32), profile) == profile.white_level)


def test_bad_neutral_is_refused() -> None:
    with pytest.raises(ValueError, match="three positive values"):
        white_balance_scale(np.array([1.0, 0.0, 1.0]))


def test_consistent_with_libraw_through_a_dng(tmp_path: Path) -> None:
    """Write a known mosaic as a DNG, let LibRaw render it, invert the render: near-exact."""
    from rawback.io.dng import write_dng
    from rawback.io.raw import CAMERA_WB_RENDER, render_raw

    neutral = np.array([0.45, 1.0, 0.8])
    raw_rgb = camera_scene(S40, neutral, h=256, w=384)
    truth = bayer.mosaic_rgb(raw_rgb, S40.cfa_pattern).astype(np.float32)
    dng = tmp_path / "known.dng"
    write_dng(dng, to_counts(truth, S40), sensor=S40.dng_sensor(), as_shot_neutral=neutral)
    render = render_raw(dng, **CAMERA_WB_RENDER)
    assert np.allclose(render.neutral, neutral, rtol=1e-3)
    guess = unprocess(render.rgb.astype(np.float32) / 255, S40, render.neutral, UnprocessSettings("bt709"))
    inner = (slice(8, -8), slice(8, -8))  # demosaicking differs at the borders
    # 10-bit truth, 8-bit render: about 45 dB is the quantisation limit.
    assert metrics.psnr(guess[inner], truth[inner]) > 42


@pytest.mark.parametrize(
    ("cct", "xy"), [(5003, (0.3457, 0.3585)), (6504, (0.3127, 0.3290)), (7504, (0.2990, 0.3149))]
)
def test_the_daylight_locus_meets_the_cie_illuminants(cct: float, xy: tuple[float, float]) -> None:
    """D50, D65 and D75 (CIE 15:2004). The locus took Kim's Planckian x below 7000 K and the
    4000-7000 K daylight polynomial above it."""
    from rawback.isp.unprocess import _blackbody_xyz

    xyz = _blackbody_xyz(cct)
    assert np.allclose(xyz[:2] / xyz.sum(), xy, atol=6e-4)

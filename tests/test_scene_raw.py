"""rawback.isp.scene_raw: a synthetic camera RAW from an sRGB photo (illuminant, matrix, headroom,
Bayer phase, Brooks et al.'s noise, levels)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rawback.camera import CameraProfile
from rawback.isp import color
from rawback.isp.bayer import channel_index, mosaic_rgb
from rawback.isp.color import neutral_angle_degrees
from rawback.isp.scene_raw import (
    BAYER_PHASES,
    D65_WHITE,
    SceneRawSettings,
    _xyz_to_uv,
    bradford,
    illuminant_xyz,
    sample_capture,
    synthesize_raw,
)
from rawback.isp.unprocess import neutral_for_illuminant

# A 12-bit camera with a pedestal, like many in the library (matrix: LibRaw's Canon EOS 350D).
CAMERA = CameraProfile(
    name="test-12bit",
    make="Test",
    model="Twelve",
    cfa_pattern="RGGB",
    black_level=(256.0, 256.0, 256.0, 256.0),
    white_level=4095,
    bits=12,
    color_matrix_1=(0.6018, -0.0617, -0.0965, -0.8645, 1.5881, 0.2975, -0.1530, 0.1719, 0.7642),
)
QUIET = SceneRawSettings(noise=False)


def grey(level: int, size: int = 32) -> np.ndarray:
    return np.full((size, size, 3), level, dtype=np.uint8)


@pytest.mark.parametrize("seed", range(6))
def test_a_grey_scene_gives_camera_values_proportional_to_the_illuminants_neutral(seed: int) -> None:
    raw = synthesize_raw(grey(150), CAMERA, np.random.default_rng(seed), QUIET)
    capture = raw.capture
    assert 2500 <= capture.cct <= 9000 and abs(capture.tint) <= 0.006
    ratios = raw.clean.reshape(-1, 3) / raw.clean.reshape(-1, 3)[:, 1:2]
    np.testing.assert_allclose(ratios, np.tile(capture.light_neutral, (ratios.shape[0], 1)), rtol=1e-5)
    assert capture.neutral[1] == capture.light_neutral[1] == 1.0
    # It is the camera's response to the illuminant's white; without tint, within a degree of the
    # neutral the rest of rawback computes for that colour temperature (its locus differs slightly).
    white = CAMERA.rendering_matrix() @ illuminant_xyz(capture.cct, capture.tint)
    np.testing.assert_allclose(capture.light_neutral, white / white[1], rtol=1e-9)
    untinted = sample_capture(
        CAMERA, np.random.default_rng(seed), dataclasses.replace(QUIET, tint_range=(0, 0))
    )
    assert neutral_angle_degrees(untinted.light_neutral, neutral_for_illuminant(CAMERA, untinted.cct)) < 1.0
    # The as-shot neutral is the camera's white balance: between the light and mean daylight.
    as_shot = CAMERA.rendering_matrix() @ illuminant_xyz(capture.as_shot_cct, capture.tint)
    np.testing.assert_allclose(capture.neutral, as_shot / as_shot[1], rtol=1e-9)
    lo, hi = sorted((1e6 / capture.cct, 1e6 / 5500.0))
    assert lo - 1e-9 <= 1e6 / capture.as_shot_cct <= hi + 1e-9
    # The mosaic holds, at each site, the channel its CFA colour names (up to the 12-bit step).
    sites = channel_index(raw.profile.cfa_pattern)
    for dy in (0, 1):
        for dx in (0, 1):
            want = raw.clean[dy::2, dx::2, sites[dy, dx]]
            np.testing.assert_allclose(raw.mosaic[dy::2, dx::2], want, atol=0.6 / (4095 - 256))


def test_the_light_goes_with_its_exposure_value_and_a_camera_leaves_part_of_its_colour() -> None:
    captures = [sample_capture(CAMERA, np.random.default_rng(s), QUIET) for s in range(400)]
    indoor = [c for c in captures if c.indoor]
    outdoor = [c for c in captures if not c.indoor]
    assert 0.25 < len(indoor) / len(captures) < 0.45
    assert all(c.cct <= 4500 + 1e-6 and 3 <= c.exposure_value <= 10 for c in indoor)
    assert all(c.cct >= 4500 - 1e-6 and 9 <= c.exposure_value <= 15.5 for c in outdoor)
    # Under a warm light the as-shot neutral is cooler than the light's (the photo stays warm).
    assert all(c.as_shot_cct >= c.cct - 1e-6 for c in indoor)
    assert np.mean([c.as_shot_cct - c.cct for c in indoor]) > 100


def test_without_adaptation_the_scene_is_lit_by_d65() -> None:
    raw = synthesize_raw(grey(200), CAMERA, np.random.default_rng(0), dataclasses.replace(QUIET, adapt=False))
    np.testing.assert_allclose(raw.neutral, CAMERA.daylight_neutral(), rtol=1e-6)


def test_every_bayer_phase_is_drawn_and_the_profile_states_it() -> None:
    phases = {sample_capture(CAMERA, np.random.default_rng(s)).profile.cfa_pattern for s in range(40)}
    assert phases == set(BAYER_PHASES)


def test_illuminants_lie_on_the_locus_and_the_tint_moves_them_off_it_by_duv() -> None:
    for cct in (2500.0, 3200.0, 5000.0, 6504.0, 10000.0):
        on = _xyz_to_uv(illuminant_xyz(cct))
        off = _xyz_to_uv(illuminant_xyz(cct, 0.005))
        assert np.linalg.norm(off - on) == pytest.approx(0.005, rel=1e-6)
        assert off[1] > on[1]  # positive Duv: above the locus, greener
    d65 = illuminant_xyz(6504.0)
    np.testing.assert_allclose(d65 / d65[1], D65_WHITE / D65_WHITE[1], atol=2e-3)
    warm = illuminant_xyz(2856.0)  # CIE illuminant A: x = 0.4476, y = 0.4074
    assert warm[0] / warm.sum() == pytest.approx(0.4476, abs=2e-3)
    assert warm[1] / warm.sum() == pytest.approx(0.4074, abs=2e-3)
    np.testing.assert_allclose(bradford(D65_WHITE, warm) @ D65_WHITE, warm, rtol=1e-9)


def test_levels_and_bit_depth_are_the_cameras() -> None:
    dark_and_bright = np.concatenate([grey(0), grey(255)], axis=0)
    raw = synthesize_raw(dark_and_bright, CAMERA, np.random.default_rng(3))
    assert raw.counts.dtype == np.uint16 and raw.counts.max() <= 4095
    assert raw.mosaic.dtype == np.float32 and raw.mosaic.min() >= 0.0 and raw.mosaic.max() <= 1.0
    np.testing.assert_array_equal(raw.mosaic, np.clip((raw.counts.astype(np.float32) - 256) / 3839, 0, 1))
    dark = raw.counts[:32]
    assert dark.min() < 256 < dark.max()  # read noise swings around the black level, as in a real RAW
    # Headroom: the brightest camera value sits at 50-95 % of the white level, never above it.
    assert 0.5 <= raw.clean.max() <= 0.95


def test_noise_variance_grows_with_signal_as_brooks_model_says() -> None:
    shot = 4e-3
    settings = SceneRawSettings(shot_range=(shot, shot), read_sigma=0.0, headroom=(0.9, 0.9), adapt=False)
    deep = dataclasses.replace(CAMERA, black_level=(0.0,) * 4, white_level=65535, bits=16)
    levels = (20, 60, 120, 200, 255)
    scene = np.concatenate([grey(v, 128) for v in levels], axis=1)
    raw = synthesize_raw(scene, deep, np.random.default_rng(1), settings)
    read = np.exp(2.18 * np.log(shot) + 1.20)  # Brooks et al.'s line, with no scatter
    assert raw.capture.read == pytest.approx(read) and raw.capture.iso == pytest.approx(4000)
    signal = mosaic_rgb(raw.clean, raw.profile.cfa_pattern)
    residual = raw.mosaic - signal
    for i in range(len(levels)):
        block = (slice(None), slice(128 * i, 128 * (i + 1)))
        s = signal[block]
        assert s.max() < 0.95  # no clipping at white
        for value in np.unique(np.round(s, 6)):  # one value per CFA channel
            where = np.abs(s - value) < 1e-6
            if value < 0.01:
                continue  # clipped at 0 below black: the variance is not the model's there
            assert residual[block][where].var() == pytest.approx(shot * value + read, rel=0.12)


def test_brooks_read_noise_follows_the_log_linear_relation() -> None:
    captures = [sample_capture(CAMERA, np.random.default_rng(s)) for s in range(400)]
    shots = np.array([c.shot for c in captures])
    assert shots.min() >= 1e-4 and shots.max() <= 1.2e-2
    offsets = np.log([c.read for c in captures]) - 2.18 * np.log(shots)
    assert offsets.mean() == pytest.approx(1.20, abs=0.05)
    assert offsets.std() == pytest.approx(0.26, abs=0.04)


def test_the_whole_image_sets_the_exposure_of_a_window() -> None:
    scene = np.concatenate([grey(40, 64), grey(255, 64)], axis=1)
    whole = synthesize_raw(scene, CAMERA, np.random.default_rng(5), QUIET)
    part = synthesize_raw(scene, CAMERA, np.random.default_rng(5), QUIET, window=(slice(0, 64), slice(0, 64)))
    np.testing.assert_allclose(part.clean, whole.clean[:, :64])
    with pytest.raises(ValueError, match="even sides"):
        synthesize_raw(scene, CAMERA, np.random.default_rng(5), window=(slice(0, 63), slice(0, 64)))


def test_colour_outside_the_cameras_gamut_never_goes_negative() -> None:
    pure = np.zeros((16, 16, 3), np.uint8)
    pure[..., 2] = 255  # sRGB blue: negative in some cameras' red
    raw = synthesize_raw(pure, CAMERA, np.random.default_rng(2), QUIET)
    assert raw.clean.min() >= 0.0
    assert color.srgb_to_linear(np.array([1.0])) == pytest.approx(1.0)

"""The training simulator: members, determinism, and that what it reports is what it applied."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rawback.isp import bayer
from rawback.isp.simulate import (
    SUBSAMPLING_NAMES,
    TONE_CURVES,
    TRANSFERS,
    WB_MODES,
    Simulated,
    SimulatorSettings,
    simulate,
)
from rawback.isp.unprocess import UnprocessSettings, unprocess, white_balance_scale
from tests.conftest import colour_profile

S40 = colour_profile("canon-powershot-s40")
NEUTRAL = np.array([0.55, 1.0, 0.75])  # a tungsten-ish as-shot white balance

# Only the camera's white balance, matrix and transfer curve: the steps `unprocess` inverts.
PLAIN = SimulatorSettings(
    libraw_weight=0.0,
    wb_modes=(("as-shot", 1.0),),
    exposure_prob=0.0,
    tone_curves=(("none", 1.0),),
    saturation_prob=0.0,
    denoise_prob=0.0,
    local_contrast_prob=0.0,
    sharpen_prob=0.0,
    jpeg_prob=0.0,
)


def scene(h: int = 64, w: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A smooth, mildly coloured scene: (camera RGB as a RAW holds it, its linear sRGB)."""
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    srgb = np.stack([0.05 + 0.5 * x, 0.08 + 0.4 * y, 0.06 + 0.3 * x * y + 0.1 * y], -1)
    balanced = srgb @ np.linalg.inv(S40.srgb_from_camera()).T
    return (balanced / white_balance_scale(NEUTRAL)).astype(np.float32), srgb


def test_shapes_dtypes_and_fields() -> None:
    linear, _ = scene(48, 80)
    out = simulate(linear, S40, NEUTRAL, np.random.default_rng(0))
    assert isinstance(out, Simulated)
    assert out.rgb8.shape == (48, 80, 3) and out.rgb8.dtype == np.uint8
    assert out.neutral.shape == (3,) and out.neutral[1] == pytest.approx(1.0)
    assert out.transfer in TRANSFERS and out.exposure > 0
    assert out.params["member"] == "parametric"  # no LibRaw render given


def test_same_seed_same_output() -> None:
    linear, _ = scene()
    libraw = np.full(linear.shape, 120, dtype=np.uint8)
    for seed in range(8):
        a = simulate(linear, S40, NEUTRAL, np.random.default_rng(seed), libraw_rgb8=libraw)
        b = simulate(linear, S40, NEUTRAL, np.random.default_rng(seed), libraw_rgb8=libraw)
        assert np.array_equal(a.rgb8, b.rgb8)
        assert a.params == b.params and np.array_equal(a.neutral, b.neutral)


def test_grey_under_the_as_shot_light_renders_grey() -> None:
    ramp = np.linspace(0.02, 0.6, 64, dtype=np.float32)
    linear = (ramp[None, :, None] * NEUTRAL[None, None, :] * np.ones((8, 1, 1))).astype(np.float32)
    out = simulate(linear, S40, NEUTRAL, np.random.default_rng(0), settings=PLAIN)
    assert np.allclose(out.neutral, NEUTRAL)
    spread = out.rgb8.max(axis=-1).astype(int) - out.rgb8.min(axis=-1).astype(int)
    assert spread.max() <= 1


@pytest.mark.parametrize("transfer", TRANSFERS)
@pytest.mark.parametrize("stops", [0.0, 0.5])
def test_analytic_inverse_recovers_the_scene(transfer: str, stops: float) -> None:
    linear, _ = scene()
    settings = dataclasses.replace(
        PLAIN, transfers=((transfer, 1.0),), exposure_prob=1.0, exposure_stops=(stops, stops)
    )
    out = simulate(linear, S40, NEUTRAL, np.random.default_rng(1), settings=settings)
    assert out.transfer == transfer and out.exposure == pytest.approx(2.0**stops)
    mosaic = unprocess(out.rgb8 / 255.0, S40, out.neutral, UnprocessSettings(transfer=out.transfer))
    truth = bayer.mosaic_rgb(out.exposure * linear, S40.cfa_pattern)
    unclipped = (out.rgb8 < 255).all(axis=-1) & (out.rgb8 > 0).all(axis=-1)
    assert unclipped.mean() > 0.9
    err = np.abs(mosaic - truth)[unclipped]
    # Half an 8-bit code through the inverse curve and the camera matrix: measured 0.003 at most.
    assert err.max() < 0.006 and err.mean() < 0.0015


def test_libraw_member_passes_its_render_through() -> None:
    linear, _ = scene()
    libraw = np.random.default_rng(5).integers(0, 256, linear.shape, dtype=np.uint8)
    settings = dataclasses.replace(PLAIN, libraw_weight=1.0)
    out = simulate(linear, S40, 2 * NEUTRAL, np.random.default_rng(0), libraw_rgb8=libraw, settings=settings)
    assert out.params["member"] == "libraw"
    assert np.array_equal(out.rgb8, libraw)
    assert np.allclose(out.neutral, NEUTRAL) and out.exposure == 1.0 and out.transfer == "bt709"
    # With the JPEG stage on, the render is compressed, not replaced.
    settings = dataclasses.replace(settings, jpeg_prob=1.0, jpeg_quality=(95, 95))
    smooth = np.repeat(np.linspace(0, 255, 64).astype(np.uint8)[None, :, None], 64, 0).repeat(3, 2)
    out = simulate(linear, S40, NEUTRAL, np.random.default_rng(0), libraw_rgb8=smooth, settings=settings)
    assert out.params["jpeg"]["quality"] == 95
    assert np.abs(out.rgb8.astype(int) - smooth).mean() < 2


def test_every_member_and_family_is_reachable() -> None:
    linear, _ = scene(32, 32)
    libraw = np.full(linear.shape, 100, dtype=np.uint8)
    seen: dict[str, set] = {"member": set(), "wb_mode": set(), "tone_curve": set(), "transfer": set()}
    jpeg: set = set()
    rng = np.random.default_rng(0)
    for _ in range(300):
        out = simulate(linear, S40, NEUTRAL, rng, libraw_rgb8=libraw)
        for key in seen:
            if key in out.params:
                seen[key].add(out.params[key])
        jpeg.add(out.params["jpeg"]["subsampling"] if out.params["jpeg"] else None)
        if out.params["jpeg"]:
            assert 60 <= out.params["jpeg"]["quality"] <= 100
    assert seen["member"] == {"libraw", "parametric"}
    assert seen["wb_mode"] == set(WB_MODES)
    assert seen["tone_curve"] == set(TONE_CURVES)
    assert seen["transfer"] == set(TRANSFERS)
    assert jpeg == {*SUBSAMPLING_NAMES.values(), None}


@pytest.mark.parametrize("tone", TONE_CURVES)
def test_tone_curves_are_monotone_and_keep_black_and_white(tone: str) -> None:
    ramp = np.linspace(0.0, 1.0, 64, dtype=np.float32)  # grey from black to the white level
    linear = (ramp[None, :, None] * NEUTRAL[None, None, :] * np.ones((4, 1, 1))).astype(np.float32)
    settings = dataclasses.replace(
        PLAIN, tone_curves=((tone, 1.0),), exposure_prob=1.0, exposure_stops=(0.0, 0.7)
    )
    for seed in range(5):
        out = simulate(linear, S40, NEUTRAL, np.random.default_rng(seed), settings=settings)
        green = out.rgb8[0, :, 1].astype(int)
        assert green[0] <= 1 and green[-1] >= 254, (tone, out.params)
        assert np.all(np.diff(green) >= 0), (tone, out.params)


def test_white_balance_modes_report_what_they_applied() -> None:
    linear, _ = scene(32, 32)
    for mode in ("jitter", "cct"):
        settings = dataclasses.replace(PLAIN, wb_modes=((mode, 1.0),))
        out = simulate(linear, S40, NEUTRAL, np.random.default_rng(3), settings=settings)
        assert out.neutral[1] == pytest.approx(1.0) and np.allclose(out.params["neutral"], out.neutral)
        assert not np.allclose(out.neutral, NEUTRAL)
        if mode == "cct":
            assert 2500 <= out.params["cct"] <= 10000


def test_bad_inputs_are_refused() -> None:
    linear, _ = scene(16, 16)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError):
        simulate(linear[..., :2], S40, NEUTRAL, rng)
    with pytest.raises(ValueError):
        simulate(linear, S40, np.array([1.0, 0.0, 1.0]), rng)
    with pytest.raises(ValueError):
        simulate(linear, S40, NEUTRAL, rng, libraw_rgb8=np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError):
        SimulatorSettings(tone_curves=(("curvy", 1.0),))

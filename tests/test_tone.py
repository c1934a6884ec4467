"""The finish's inverse tone curve: its knots, the simulator's response it inverts, and where the
model uses it (the analytic estimate, the head's targets, `convert`'s exposure rule)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import rawpy
import torch
from typer.testing import CliRunner

from rawback.cli import app
from rawback.diffusion_settings import DiffusionSettings
from rawback.inference import GlobalEstimate, analytic_prior
from rawback.isp import bayer, color, tone
from rawback.isp.simulate import TONE_CURVES, TRANSFERS, simulate, tone_response
from rawback.isp.unprocess import UnprocessSettings, unprocess
from rawback.model.config import preset
from rawback.model.denoiser import RawbackModel
from rawback.model.heads import GLOBAL_OUTPUTS
from rawback.weights import save_weights
from tests.helpers import small_jpeg
from tests.test_simulate import NEUTRAL, PLAIN, S40, scene


def test_an_exposure_gain_is_a_constant_log_gain_and_round_trips() -> None:
    curve = tone.inverse_log_gains(lambda x: np.minimum(1.0, 1.5 * x), 16)
    assert np.allclose(curve, -np.log(1.5), atol=1e-4)
    assert np.allclose(curve, tone.exposure_only(16, 1.5), atol=1e-4)
    x = np.linspace(0.0, 0.6, 200)
    assert np.abs(tone.apply_inverse(1.5 * x, curve) - x).max() < 1e-4


def test_no_curve_is_the_identity() -> None:
    y = np.linspace(0.0, 1.0, 256)
    assert np.allclose(tone.apply_inverse(y, tone.identity(8)), y, atol=1e-7)


def test_a_predicted_curve_that_bends_back_is_made_monotone() -> None:
    wiggly = np.array([0.5, -1.5, 0.8, -2.0, 0.0, 0.3], dtype=np.float32)
    out = tone.apply_inverse(np.linspace(0.0, 1.0, 256), wiggly)
    assert np.all(np.diff(out) >= 0.0)


def random_finish_params(tone_curve: str, transfer: str, seed: int) -> dict:
    """The parameters the simulator samples for one finish of the given family and transfer."""
    settings = dataclasses.replace(
        PLAIN,
        tone_curves=((tone_curve, 1.0),),
        transfers=((transfer, 1.0),),
        exposure_prob=1.0,
    )
    linear, _ = scene(8, 8)
    return simulate(linear, S40, NEUTRAL, np.random.default_rng(seed), settings=settings).params


@pytest.mark.parametrize("tone_curve", TONE_CURVES)
@pytest.mark.parametrize("transfer", TRANSFERS)
def test_tone_response_is_what_the_simulator_renders(tone_curve: str, transfer: str) -> None:
    """On a grey ramp with no other stage, the photo read back with the finish's transfer curve is
    the response of the linear values the camera matrix gives: the head's targets describe the
    photos it sees."""
    ramp = np.linspace(0.0, 1.0, 256, dtype=np.float32)
    linear = (ramp[None, :, None] * NEUTRAL[None, None, :] * np.ones((2, 1, 1))).astype(np.float32)
    settings = dataclasses.replace(
        PLAIN, tone_curves=((tone_curve, 1.0),), transfers=((transfer, 1.0),), exposure_prob=1.0
    )
    for seed in range(3):
        out = simulate(linear, S40, NEUTRAL, np.random.default_rng(seed), settings=settings)
        read_back = color.to_linear(out.rgb8[0, :, 1] / 255.0, transfer)
        expected = tone_response(out.params, ramp)  # grey: linear sRGB equals the ramp
        # Within half an 8-bit code, through the transfer curve at its steepest (bright end).
        step = np.gradient(color.to_linear(np.arange(256) / 255.0, transfer))
        assert np.all(np.abs(read_back - expected) <= 0.5 * step[out.rgb8[0, :, 1]] + 1e-3), out.params


@pytest.mark.parametrize("tone_curve", TONE_CURVES)
def test_the_knots_undo_every_family_of_the_simulator(tone_curve: str) -> None:
    x = np.linspace(0.02, 0.85, 300)
    for seed in range(4):
        params = random_finish_params(tone_curve, "srgb", seed)
        curve = tone.inverse_log_gains(lambda v, p=params: tone_response(p, v), 16)
        y = tone_response(params, x)
        keep = y < 0.98  # values a finish pushed into white cannot come back
        back = tone.apply_inverse(y[keep], curve)
        # 16 knots: exact for exposure; a few per cent at the sharpest toes and shoulders.
        assert np.mean(np.abs(back - x[keep]) / x[keep]) < 0.03, params


def test_the_libraw_member_needs_no_curve() -> None:
    curve = tone.inverse_log_gains(lambda v: tone_response({"member": "libraw"}, v), 16)
    assert np.allclose(curve, 0.0, atol=1e-6)


def test_unprocess_with_a_curve_undoes_it() -> None:
    linear, _ = scene(32, 32)
    settings = dataclasses.replace(
        PLAIN, tone_curves=(("sigmoid", 1.0),), exposure_prob=1.0, exposure_stops=(0.3, 0.3)
    )
    out = simulate(linear, S40, NEUTRAL, np.random.default_rng(3), settings=settings)
    params = out.params
    curve = tone.inverse_log_gains(lambda v: tone_response(params, v), 16)
    truth = bayer.mosaic_rgb(linear, S40.cfa_pattern)
    plain = unprocess(out.rgb8 / 255.0, S40, out.neutral, UnprocessSettings()) / out.exposure
    undone = unprocess(out.rgb8 / 255.0, S40, out.neutral, UnprocessSettings(), curve=curve)
    assert np.abs(undone - truth).mean() < 0.3 * np.abs(plain - truth).mean()


def applied(estimate: GlobalEstimate, **settings: bool) -> GlobalEstimate:
    """The estimate with the finish `convert` would undo under these --undo-* settings."""
    return estimate.with_learned_finish(DiffusionSettings(**settings))


def test_the_curve_is_used_only_when_asked_and_keeps_the_exposure_by_default() -> None:
    curve = np.array([0.4, 0.1, -0.2, -0.3], dtype=np.float32)
    estimate = GlobalEstimate(np.ones(3), 2.0, torch.zeros(1, 4), True, curve=curve)
    default = applied(estimate)
    assert default.curve is None and default.exposure == 1.0
    shape = applied(estimate, undo_tone_curve=True)
    assert shape.exposure == 1.0
    assert np.allclose(shape.curve, curve + np.log(2.0))  # the shape, the brightness left alone
    full = applied(estimate, undo_tone_curve=True, undo_exposure=True)
    assert np.array_equal(full.curve, curve)
    exposure_only = applied(estimate, undo_exposure=True)
    assert exposure_only.curve is None and exposure_only.exposure == 2.0


def test_the_prior_applies_the_curve_instead_of_the_exposure() -> None:
    rgb = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    rgb = np.rint(rgb * 255) / 255
    profile = dataclasses.replace(S40, cfa_pattern="RGGB")
    neutral = np.array([0.5, 1.0, 0.7])
    estimate = GlobalEstimate(neutral, 1.5, torch.zeros(1, 4), True, curve=tone.exposure_only(8, 1.5))
    gain = applied(estimate, undo_exposure=True)  # no curve: divided by 1.5
    curve = applied(estimate, undo_exposure=True, undo_tone_curve=True)
    assert gain.curve is None and curve.exposure == 1.0
    a = analytic_prior(rgb, profile, gain, UnprocessSettings(), 8)
    b = analytic_prior(rgb, profile, curve, UnprocessSettings(), 8)
    assert np.abs(a - b).max() < 2e-4  # the curve carries the same exposure; not divided twice


def test_undo_tone_curve_darkens_a_photo_whose_curve_brightened_it(tmp_path) -> None:
    """A head that says "this finish doubled every value" makes `--undo-tone-curve` halve the
    estimate (and `-v` say so); without the option the same weights ignore the curve."""
    torch.manual_seed(0)
    model = RawbackModel(preset("tiny"))
    knots = model.config.global_head.tone_knots
    with torch.no_grad():  # the last layer starts at zero: set the curve's biases, -ln 2 each
        model.global_head.mlp[-1].bias[GLOBAL_OUTPUTS : GLOBAL_OUTPUTS + knots] = -np.log(2.0)
        model.global_head.mlp[-1].bias[2] = 0.0  # no separate exposure: the curve is all exposure
    weights = tmp_path / "w.pt"
    save_weights(model, weights)
    jpeg = small_jpeg(tmp_path / "photo.jpg", seed=0, size=(96, 64))
    common = ["--weights", str(weights), "--method", "diffusion", "--tile", "64", "--overlap", "16"]
    plain = CliRunner().invoke(app, ["convert", str(jpeg), "-o", str(tmp_path / "a.dng"), *common, "-q"])
    undone = CliRunner().invoke(
        app, ["convert", str(jpeg), "-o", str(tmp_path / "b.dng"), *common, "--undo-tone-curve", "-v"]
    )
    assert plain.exit_code == 0 and undone.exit_code == 0, plain.output + undone.output
    assert "tone curve of the finish estimated by the model and undone" in undone.output
    with rawpy.imread(str(tmp_path / "a.dng")) as a, rawpy.imread(str(tmp_path / "b.dng")) as b:
        black = float(np.mean(a.black_level_per_channel))
        ratio = (b.raw_image_visible.mean() - black) / (a.raw_image_visible.mean() - black)
    # With the exposure left alone, the shift by ln(exposure) = 0 keeps the curve: about half.
    assert 0.4 < ratio < 0.6

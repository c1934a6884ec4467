"""The residual gate: its clip mask, its composition, its fit, and `rawback calibrate` end to end."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import rawpy
import torch
from PIL import Image
from typer.testing import CliRunner

from rawback.camera import builtin_profiles
from rawback.cli import app
from rawback.diffusion_settings import DiffusionSettings
from rawback.inference import estimate_global, reconstruct_packed
from rawback.isp.unprocess import UnprocessSettings
from rawback.model.config import preset
from rawback.model.denoiser import RawbackModel
from rawback.model.heads import ResidualGate, clipped_blocks, gated_residual
from rawback.train.calibrate import GateSamples, fit_gate, gate_report
from rawback.weights import load_weights, save_weights, weights_meta
from tests.helpers import small_jpeg, write_synthetic_dng


def test_clipped_blocks_marks_the_block_and_grows_it_by_two() -> None:
    photo = torch.zeros(1, 3, 20, 20)
    photo[0, 1, 9, 12] = 1.0  # green of pixel (9, 12): packed block (4, 6)
    photo[0, 0, 0, 0] = 0.97  # below 250/255: not clipped
    mask = clipped_blocks(photo)[0, 0]
    expected = torch.zeros(10, 10)
    expected[2:7, 4:9] = 1.0
    assert torch.equal(mask, expected)


def test_gated_residual_is_whole_where_clipped_and_scaled_elsewhere() -> None:
    residual = torch.ones(2, 4, 3, 3)
    clipped = torch.zeros(2, 1, 3, 3)
    clipped[:, :, 1, 1] = 1.0
    out = gated_residual(residual, torch.tensor([0.25, 1.0]), clipped)
    assert out[0, :, 1, 1].eq(1.0).all() and out[0, :, 0, 0].eq(0.25).all()
    assert out[1].eq(1.0).all()


def _synthetic_samples(n: int, seed: int) -> GateSamples:
    """Half the photos have a bright thumbnail and a residual that removes most of the prior's
    error (the best trust is 1); the other half a dark thumbnail and a residual of pure noise
    (the best is 0)."""
    g = torch.Generator().manual_seed(seed)
    config = preset("tiny").global_head
    helpful = torch.arange(n) % 2 == 0
    thumb = torch.where(helpful[:, None, None, None], 0.8, -0.8) + 0.1 * torch.randn(
        n, 6, config.thumb_size, config.thumb_size, generator=g
    )
    values = 100
    a = torch.ones(n, dtype=torch.float64)  # sum of residual^2
    b = torch.where(helpful, 1.0, 0.0).double()  # helpful: the error is the residual (+ a little)
    c = torch.where(helpful, 1.05, 0.1).double()  # the prior's own error
    return GateSamples(
        thumb=thumb, camera=torch.zeros(n, 12), exif=torch.zeros(n, 2),
        finish=torch.zeros(n, config.finish_channels), a=a, b=b, c=c, values=values,
    )  # fmt: skip


def test_the_fit_learns_when_to_trust_the_residual() -> None:
    torch.manual_seed(0)
    gate = ResidualGate(preset("tiny").global_head)
    samples = _synthetic_samples(64, seed=1)
    fit_gate(gate, samples, steps=300, seed=0)
    with torch.no_grad():
        trust = torch.sigmoid(gate(samples.thumb, samples.camera, samples.exif, samples.finish))
    assert trust[0::2].min() > 0.9 and trust[1::2].max() < 0.1
    report = gate_report(gate, _synthetic_samples(32, seed=2))  # unseen items
    assert report["psnr_gate"] > report["psnr_full_residual"] + 3
    assert report["psnr_gate"] > report["psnr_prior_only"] + 3


def test_a_distrusting_gate_keeps_the_prior_except_where_clipped() -> None:
    torch.manual_seed(0)
    ungated = RawbackModel(preset("tiny")).eval()
    with torch.no_grad():  # a network whose residual is far from zero
        ungated.denoiser.unet.out.bias.fill_(0.05)
    gated = RawbackModel(dataclasses.replace(preset("tiny"), residual_gate=True)).eval()
    gated.load_state_dict(ungated.state_dict(), strict=False)
    with torch.no_grad():
        gated.gate.mlp[-1].weight.zero_()
        gated.gate.mlp[-1].bias.fill_(-40.0)  # trust 0
    profile = dataclasses.replace(builtin_profiles()["generic"], cfa_pattern="RGGB")
    rgb = np.full((40, 48, 3), 0.4, dtype=np.float32)
    rgb[:6, :6] = 1.0  # a clipped corner
    outputs = []
    for model in (ungated, gated):
        estimate = estimate_global(model, rgb, profile, "srgb", None)
        packed, prior, _ = reconstruct_packed(
            model, rgb, profile, estimate=estimate, settings=UnprocessSettings(), bit_depth=8,
            diffusion=DiffusionSettings(tile=64, overlap=16), seed=0,
        )  # fmt: skip
        outputs.append((estimate, packed, prior))
    (_, full, prior), (estimate, kept, _) = outputs
    assert estimate.trust < 1e-6
    clipped = clipped_blocks(torch.from_numpy(rgb).permute(2, 0, 1)[None])[0, 0].numpy() > 0
    assert not np.allclose(full, prior, atol=1e-3)  # the residual matters in this test
    np.testing.assert_allclose(kept[~clipped], prior[~clipped], atol=1e-6)
    np.testing.assert_allclose(kept[clipped], full[clipped], atol=1e-6)


@pytest.fixture(scope="module")
def calibration_data(tmp_path_factory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("cal")
    raws = root / "raws"
    raws.mkdir()
    for index in range(2):
        write_synthetic_dng(raws / f"{index}.dng", seed=index)
    torch.manual_seed(0)
    weights = root / "tiny.pt"
    save_weights(RawbackModel(preset("tiny")), weights, meta={"trained": "for this test"})
    return raws, weights, root / "cache"


def test_cli_calibrate_adds_a_gate_and_leaves_the_rest_alone(calibration_data, tmp_path) -> None:
    raws, weights, cache = calibration_data
    out = tmp_path / "calibrated.pt"
    args = ["calibrate", "--data", str(raws), "--weights", str(weights), "--out", str(out), "--include",
            "0.dng", "--samples", "40", "--steps", "20", "--cache-dir", str(cache), "-q"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    model, before = load_weights(out), load_weights(weights)
    assert model.config.residual_gate and model.gate is not None
    state = before.state_dict()
    for key, value in model.state_dict().items():
        if not key.startswith("gate."):
            assert torch.equal(value, state[key]), key
    meta = weights_meta(out)
    assert meta["trained"] == "for this test"
    assert meta["calibration"]["samples"] == 40 and meta["calibration"]["files"] == 1
    assert set(meta["calibration"]["held_out"]) >= {"psnr_gate", "psnr_full_residual", "psnr_prior_only"}
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--overwrite" in again.output
    jpeg = small_jpeg(tmp_path / "photo.jpg", seed=1)
    converted = CliRunner().invoke(app, ["convert", str(jpeg), "--weights", str(out), "-q"])
    assert converted.exit_code == 0, converted.output
    with rawpy.imread(str(tmp_path / "photo.dng")) as raw:
        assert raw.raw_image_visible.shape == (90, 120)


def test_cli_calibrate_refuses_a_missing_output_folder_before_fitting(raw_folder, tmp_path) -> None:
    out = tmp_path / "missing" / "gated.pt"
    result = CliRunner().invoke(app, ["calibrate", "--data", str(raw_folder), "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert result.stderr == f"error: {out.parent}: the output folder does not exist\n"


def test_the_clip_mask_is_the_over_exposed_mask_of_eval() -> None:
    """The gate's mask (torch) and eval's over-exposed mask (numpy) are one definition."""
    from rawback.metrics import overexposed_mask

    rng = np.random.default_rng(0)
    photo8 = np.where(rng.random((40, 36, 3)) < 0.01, 255, rng.integers(0, 250, (40, 36, 3))).astype(np.uint8)
    photo8[30:34, 4:8] = 252  # a clipped patch near the edge
    mask = clipped_blocks(torch.from_numpy(photo8 / 255.0).permute(2, 0, 1)[None])[0, 0].numpy() > 0
    np.testing.assert_array_equal(mask, overexposed_mask(photo8))


# --- where the residual applies (--residual) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "known", "trust"),
    [
        ("auto", True, 0.4),  # the gate, on a camera the model was trained on
        ("auto", False, 0.0),  # only where clipped on any other camera
        ("gate", False, 0.4),
        ("full", False, 1.0),
        ("clipped", True, 0.0),
    ],
)
def test_residual_mode_decides_the_trust(mode: str, known: bool, trust: float) -> None:
    from rawback.inference import GlobalEstimate, residual_trust

    estimate = GlobalEstimate(np.ones(3), 1.0, torch.zeros(1, 8), learned_white_balance=known, trust=0.4)
    assert residual_trust(estimate, mode)[0] == trust


def test_with_no_trust_and_nothing_clipped_the_network_never_runs() -> None:
    from rawback.inference import GlobalEstimate

    model = RawbackModel(preset("tiny")).eval()

    def no_network(*args, **kwargs):
        raise AssertionError("the denoiser ran")

    model.denoiser.forward = no_network
    profile = dataclasses.replace(builtin_profiles()["generic"], cfa_pattern="RGGB")
    rgb = np.full((40, 48, 3), 0.4, dtype=np.float32)  # nothing clipped
    estimate = GlobalEstimate(np.ones(3), 1.0, torch.zeros(1, 8), learned_white_balance=False, trust=0.0)
    done = []
    packed, prior, _ = reconstruct_packed(
        model, rgb, profile, estimate=estimate, settings=UnprocessSettings(), bit_depth=8,
        diffusion=DiffusionSettings(tile=64, overlap=16), seed=0, progress=done.append,
    )  # fmt: skip
    assert np.array_equal(packed, prior) and done == [1.0]


@pytest.fixture(scope="module")
def weights_of_known_cameras(tmp_path_factory) -> Path:
    """The bundled weights as if trained on RAW files of one camera alone (a `known_cameras` list):
    the bundled model itself, trained on scenes, knows every camera."""
    from rawback.weights import bundled_weights

    model = load_weights(bundled_weights())
    model.config = dataclasses.replace(model.config, known_cameras=("acme one",))
    path = tmp_path_factory.mktemp("known") / "known.pt"
    save_weights(model, path)
    assert load_weights(path).config.known_cameras == ("acme one",)
    return path


def test_an_unknown_camera_gets_the_residual_only_where_clipped_unless_asked(
    tmp_path: Path, weights_of_known_cameras: Path
) -> None:
    from rawback.convert import ConvertOptions, convert_file

    jpeg = small_jpeg(tmp_path / "photo.jpg", seed=0, size=(200, 150))  # no EXIF: the generic profile
    mosaics, notes = {}, {}
    for mode in ("auto", "full"):
        out = tmp_path / f"{mode}.dng"
        settings = DiffusionSettings(
            tile=64, overlap=16, residual=mode, weights=str(weights_of_known_cameras)
        )
        result = convert_file(jpeg, out, ConvertOptions(diffusion=settings))
        notes[mode] = result.notes
        with rawpy.imread(str(out)) as raw:
            mosaics[mode] = raw.raw_image_visible.astype(np.int64)
    assert any("not trained on this camera" in note for note in notes["auto"])
    assert not any("clipped" in note for note in notes["full"])
    photo = np.asarray(Image.open(jpeg), dtype=np.float32) / 255.0
    clipped = clipped_blocks(torch.from_numpy(photo).permute(2, 0, 1)[None])[0, 0].numpy() > 0
    assert clipped.any() and not clipped.all()
    same = mosaics["auto"] == mosaics["full"]
    blocks = same.reshape(75, 2, 100, 2).all(axis=(1, 3))  # 2x2 blocks: packed pixels
    assert blocks[clipped].all() and not blocks[~clipped].all()


def test_an_unknown_camera_photo_with_nothing_clipped_says_the_network_did_not_run(
    tmp_path: Path, weights_of_known_cameras: Path
) -> None:
    from rawback.convert import ConvertOptions, convert_file

    weights = str(weights_of_known_cameras)

    jpeg = tmp_path / "dim.jpg"
    dim = np.clip(
        np.asarray(Image.open(small_jpeg(tmp_path / "src.jpg", seed=1)), dtype=np.float32) * 0.6, 0, 255
    )
    Image.fromarray(dim.astype(np.uint8)).save(jpeg, quality=95)
    result = convert_file(
        jpeg,
        tmp_path / "dim.dng",
        ConvertOptions(diffusion=DiffusionSettings(tile=64, overlap=16, weights=weights)),
    )
    assert "nothing in the photo is clipped, so the network did not run" in result.notes
    full = DiffusionSettings(tile=64, overlap=16, residual="full", weights=weights)
    result = convert_file(jpeg, tmp_path / "full.dng", ConvertOptions(diffusion=full))
    assert not any("did not run" in note for note in result.notes)


def test_the_bundled_model_knows_every_camera(tmp_path: Path) -> None:
    """Trained on scenes filmed with the library's cameras, it applies its white balance and its
    gate to a photo of any camera, and says so."""
    from rawback.convert import ConvertOptions, convert_file
    from rawback.weights import bundled_weights

    assert load_weights(bundled_weights()).config.known_cameras == ()
    jpeg = small_jpeg(tmp_path / "photo.jpg", seed=0, size=(200, 150))  # no EXIF: the generic profile
    result = convert_file(
        jpeg, tmp_path / "p.dng", ConvertOptions(diffusion=DiffusionSettings(tile=64, overlap=16))
    )
    assert not any("not trained on this camera" in note for note in result.notes)
    assert any("white balance estimated by the model" in note for note in result.notes)

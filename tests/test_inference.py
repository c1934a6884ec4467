"""Conversion with the learned model (rawback.inference and its settings): seeds and determinism, the
bundled weights, tile and precision defaults per device, bf16, ensembles, progress within a photo,
and the GPU against the CPU."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import rawpy
import torch
from PIL import Image
from typer.testing import CliRunner

from rawback.choices import TILING
from rawback.cli import app
from rawback.convert import ConvertOptions, convert_file
from rawback.device import uses_bf16
from rawback.diffusion_settings import DiffusionSettings
from rawback.errors import RawbackError, UsageError
from rawback.train.config import TrainConfig
from rawback.weights import BUNDLED, load_weights
from tests.helpers import small_jpeg


def test_same_seed_same_dng_whatever_the_batch(tmp_path) -> None:
    a, b = small_jpeg(tmp_path / "a.jpg", seed=1), small_jpeg(tmp_path / "b.jpg", seed=2)
    # residual "full": the network's output everywhere (the photos' generic profile is a camera the
    # model does not know, whose residual applies only where clipped by default)
    settings = DiffusionSettings(sampler="euler", steps=2, seed=3, tile=64, overlap=16, residual="full")
    options = ConvertOptions(diffusion=settings)
    convert_file(a, tmp_path / "a1.dng", options)
    convert_file(b, tmp_path / "b1.dng", options)
    convert_file(a, tmp_path / "a2.dng", options)
    assert (tmp_path / "a1.dng").read_bytes() == (tmp_path / "a2.dng").read_bytes()
    other = ConvertOptions(diffusion=dataclasses.replace(settings, seed=4))
    convert_file(a, tmp_path / "a3.dng", other)
    with rawpy.imread(str(tmp_path / "a1.dng")) as r1, rawpy.imread(str(tmp_path / "a3.dng")) as r3:
        assert not np.array_equal(r1.raw_image_visible, r3.raw_image_visible)


def test_bundled_weights_convert_a_small_jpeg(tmp_path) -> None:
    assert BUNDLED.is_file() and BUNDLED.stat().st_size < 16 * 2**20
    model = load_weights(BUNDLED)
    assert all(p.dtype == torch.float32 for p in model.parameters())
    jpeg = small_jpeg(tmp_path / "photo.jpg", seed=0, size=(200, 150))
    result = convert_file(jpeg, tmp_path / "photo.dng", ConvertOptions())  # the defaults: the model
    assert any(note.startswith("diffusion:") for note in result.notes)
    with rawpy.imread(str(tmp_path / "photo.dng")) as raw:
        assert raw.raw_image_visible.shape == (150, 200)
        rgb = raw.postprocess(use_camera_wb=True, no_auto_bright=True, output_bps=8)
    original = np.asarray(Image.open(jpeg), dtype=np.float64)
    assert np.abs(rgb.astype(np.float64) - original).mean() < 20  # it looks like the photo


def test_tiles_default_to_the_device_and_the_help_says_which() -> None:
    (cpu_tile, cpu_batch), (gpu_tile, gpu_batch) = TILING["cpu"], TILING["gpu"]
    assert DiffusionSettings().tiling("cpu") == (cpu_tile, cpu_batch)
    assert DiffusionSettings().tiling("cuda") == DiffusionSettings().tiling("mps") == (gpu_tile, gpu_batch)
    assert DiffusionSettings(tile=96, tile_batch=3).tiling("cuda") == (96, 3)  # what is asked for wins
    assert DiffusionSettings(tile=96).tiling("cpu") == (96, cpu_batch)
    with pytest.raises(ValueError, match="--overlap even and below"):
        DiffusionSettings(overlap=min(cpu_tile, gpu_tile))  # must fit below every default tile
    result = CliRunner().invoke(app, ["convert", "--help"], env={"COLUMNS": "200"})
    help_text = " ".join(result.output.split())
    assert f"Default: {cpu_tile} on the CPU, {gpu_tile} on a GPU" in help_text
    assert gpu_batch is None  # chosen from the GPU's free memory (rawback.network)
    assert f"Default: {cpu_batch} on the CPU, on a GPU as many as its free" in help_text


def test_precision_choices_are_resolved_per_device() -> None:
    cpu, gpu, mps = torch.device("cpu"), torch.device("cuda"), torch.device("mps")
    assert not uses_bf16("fp32", cpu) and not uses_bf16("fp32", gpu)
    assert uses_bf16("bf16", cpu) and uses_bf16("auto", gpu)
    assert not uses_bf16("auto", mps)  # no bf16 autocast there: fp32
    with pytest.raises(RawbackError, match="not supported on mps"):
        uses_bf16("bf16", mps)
    with pytest.raises(ValueError, match="--precision must be"):
        DiffusionSettings(precision="fp16")


def test_bf16_changes_the_dng_only_slightly(tmp_path) -> None:
    jpeg = small_jpeg(tmp_path / "photo.jpg", seed=5)
    mosaics = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.dng"
        settings = DiffusionSettings(device="cpu", precision=precision, residual="full")
        convert_file(jpeg, out, ConvertOptions(diffusion=settings))
        with rawpy.imread(str(out)) as raw:
            mosaics[precision] = raw.raw_image_visible.astype(np.float64) / raw.white_level
    difference = np.abs(mosaics["bf16"] - mosaics["fp32"])
    assert difference.max() > 0  # bf16 really ran
    assert difference.mean() < 1e-4 and difference.max() < 5e-3


def test_bad_settings_are_one_line_usage_errors(tmp_path) -> None:
    jpeg = small_jpeg(tmp_path / "photo.jpg", seed=0)
    for args, message in (
        (["--sampler", "ddim"], "unknown sampler"),
        (["--weights", str(tmp_path / "missing.pt")], "model weights not found"),
        (["--device", "gpu0"], "--device must be"),
        (["--tile", "101"], "--tile must be even"),
        (["--precision", "fp16"], "--precision must be"),
        (["--residual", "half"], "'half' is not one of"),
    ):
        result = CliRunner().invoke(app, ["convert", str(jpeg), *args])
        assert result.exit_code == 2 and message in result.output, (args, result.output)
    with pytest.raises(ValueError, match="--residual must be"):
        DiffusionSettings(residual="half")
    with pytest.raises(UsageError, match="precision"):
        TrainConfig(precision="fp8")
    with pytest.raises(UsageError, match="model must be"):
        TrainConfig().with_overrides(["model=huge"])


@pytest.mark.gpu
def test_gpu_conversion_matches_the_cpu(tmp_path) -> None:
    """bf16 on the GPU against fp32 on the CPU: the same photo within a few raw counts."""
    jpeg = small_jpeg(tmp_path / "photo.jpg", seed=0, size=(256, 192))
    for device in ("cpu", "cuda"):
        options = ConvertOptions(diffusion=DiffusionSettings(device=device, residual="full"))
        convert_file(jpeg, tmp_path / f"{device}.dng", options)
    with rawpy.imread(str(tmp_path / "cpu.dng")) as a, rawpy.imread(str(tmp_path / "cuda.dng")) as b:
        diff = np.abs(a.raw_image_visible.astype(int) - b.raw_image_visible.astype(int))
        assert np.percentile(diff, 99) <= 0.01 * a.white_level


def test_ensemble_is_the_mean_of_its_members(tiny_weights) -> None:
    from rawback.inference import sample_residual

    model = load_weights(tiny_weights)
    torch.manual_seed(0)
    cond, camera, finish = torch.randn(1, 16, 24, 20), torch.randn(1, 12), torch.randn(1, 8)
    one = DiffusionSettings(sampler="euler", steps=2, tile=32, overlap=8)
    two = DiffusionSettings(sampler="euler", steps=2, tile=32, overlap=8, ensemble=2)
    a = sample_residual(model, cond, camera, finish, one, seed=5)
    b = sample_residual(model, cond, camera, finish, one, seed=6)
    both = sample_residual(model, cond, camera, finish, two, seed=5)
    assert torch.allclose(both, (a + b) / 2, atol=1e-12) and not torch.equal(a, b)


def test_convert_reports_progress_within_a_photo(tiny_weights, tmp_path) -> None:
    jpeg = small_jpeg(tmp_path / "photo.jpg", seed=0, size=(200, 150))
    settings = DiffusionSettings(weights=tiny_weights, sampler="euler", steps=2, tile=64, overlap=16)
    fractions: list[float] = []
    convert_file(jpeg, tmp_path / "photo.dng", ConvertOptions(diffusion=settings), fractions.append)
    # 2 evaluations over a 100x75 packed photo in 32-pixel tiles (overlap 8): several updates each
    assert len(fractions) > 4
    assert all(a <= b for a, b in itertools.pairwise(fractions))
    assert fractions[-1] == pytest.approx(1.0) and 0.0 < fractions[0] < 0.5
    analytic: list[float] = []
    convert_file(jpeg, tmp_path / "fast.dng", ConvertOptions(method="analytic"), analytic.append)
    assert analytic == []  # instant: nothing to report


def test_the_noise_is_drawn_once_ahead_and_only_when_the_network_runs(
    tiny_weights, tmp_path, monkeypatch
) -> None:
    """Each member's noise is drawn once, the first in a worker thread while the prior is made
    (rawback.sampling.NoiseDrawnAhead), and none for a photo the network skips."""
    import threading

    from rawback import sampling

    drawn: list[tuple[tuple, int, str]] = []
    real = sampling.initial_noise

    def spy(shape, seed):
        drawn.append((tuple(shape), seed, threading.current_thread().name))
        return real(shape, seed)

    monkeypatch.setattr(sampling, "initial_noise", spy)
    monkeypatch.setattr("rawback.inference.initial_noise", spy)
    jpeg = small_jpeg(tmp_path / "photo.jpg", seed=0, size=(200, 150))
    settings = DiffusionSettings(
        weights=tiny_weights, steps=1, tile=64, overlap=16, residual="full", ensemble=2
    )
    convert_file(jpeg, tmp_path / "a.dng", ConvertOptions(diffusion=settings))
    (shape0, seed0, thread0), (shape1, seed1, thread1) = drawn
    assert shape0 == shape1 == (1, 4, 75, 100) and seed1 == (seed0 + 1) % 2**63
    assert thread0.startswith("rawback-noise") and not thread1.startswith("rawback-noise")
    drawn.clear()
    dim = tmp_path / "dim.jpg"  # nothing near white: with --residual clipped nothing to sample
    Image.fromarray(np.rint(np.asarray(Image.open(jpeg)) * 0.6).astype(np.uint8)).save(dim)
    clipped_only = dataclasses.replace(settings, residual="clipped", ensemble=1)
    result = convert_file(dim, tmp_path / "b.dng", ConvertOptions(diffusion=clipped_only))
    assert any("network did not run" in note for note in result.notes) and drawn == []

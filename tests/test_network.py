"""The network over batches of tiles (rawback.network): the property cross-photo batching rests on,
out-of-memory halving inside the real model's call, the tile batch from free memory, the options
`--compile` and `--autotune`, and on a GPU (marked `gpu`, skipped without one): a sampler loop
that never waits for the GPU, the automatic tile batch, and batch against convert."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from rawback.diffusion_settings import DiffusionSettings
from rawback.network import TileNetwork, tile_batch_for_memory, tile_network
from rawback.weights import BUNDLED, load_weights
from tests.helpers import small_jpeg


def photo_inputs(height: int = 40, width: int = 50, finish: int = 8):
    generator = torch.Generator().manual_seed(0)
    cond = torch.randn(1, 16, height, width, generator=generator)
    return cond, torch.randn(1, 12, generator=generator), torch.randn(1, finish, generator=generator)


def test_the_network_gives_a_tile_the_same_bits_whatever_shares_its_call():
    """What cross-photo batching rests on, for the bundled model on this CPU in fp32 and bf16: at
    one call size a tile's prediction depends neither on the other tiles (other photos, other
    noise levels) nor on its place in the call."""
    model = load_weights(BUNDLED).to(memory_format=torch.channels_last)
    torch.manual_seed(0)
    n, side = 6, 40
    x, cond = torch.randn(n, 4, side, side, dtype=torch.float64), torch.randn(n, 16, side, side)
    camera, finish = torch.randn(n, 12), torch.randn(n, model.config.global_head.finish_channels)
    sigma = torch.tensor([1.0, 0.5, 0.1, 1.0, 0.02, 0.3], dtype=torch.float64)
    for precision in ("fp32", "bf16"):
        network = TileNetwork(model, DiffusionSettings(device="cpu", precision=precision))
        with torch.no_grad():
            first = network(x[:4], sigma[:4], cond[:4], camera[:4], finish[:4])
            for order, at, tile in (([4, 5, 0, 1], 2, 0), ([1, 5, 4, 2], 0, 1)):
                again = network(x[order], sigma[order], cond[order], camera[order], finish[order])
                assert torch.equal(first[tile], again[at]), (precision, order)


def test_out_of_memory_in_the_model_halves_the_tile_batch(tiny_weights, monkeypatch) -> None:
    """An OOM injected into the model's own forward: 8 tiles, then 4, then 2 per call, kept so,
    and the result is the one a tile batch of 2 gives from the start."""
    from rawback.inference import sample_residual

    cond, camera, finish = photo_inputs()
    settings = DiffusionSettings(sampler="euler", steps=2, tile=32, overlap=8, tile_batch=8, device="cpu")
    expected = sample_residual(
        load_weights(tiny_weights), cond, camera, finish, dataclasses.replace(settings, tile_batch=2), seed=3
    )
    model = load_weights(tiny_weights)
    forward, sizes = model.denoiser.forward, []

    def small_memory(x, *args):
        sizes.append(x.shape[0])
        if x.shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return forward(x, *args)

    monkeypatch.setattr(model.denoiser, "forward", small_memory)
    result = sample_residual(model, cond, camera, finish, settings, seed=3)
    assert torch.equal(result, expected)
    assert sizes[:3] == [8, 4, 2] and set(sizes[2:]) == {2}
    assert tile_network(model, settings).scheduler.batch == 2


def test_tile_batch_from_free_memory() -> None:
    gib = 2**30
    assert tile_batch_for_memory(80 * gib, gib) == 32  # half of it: 40 tiles -> the power of two below
    assert tile_batch_for_memory(80 * gib, gib // 100) == 64  # capped
    assert tile_batch_for_memory(gib, 4 * gib) == 1  # nothing fits: one, and halving cannot go lower
    assert tile_batch_for_memory(80 * gib, 0) == 64


def test_compile_and_autotune_are_asked_for(tiny_weights, monkeypatch) -> None:
    compiled = []

    def fake_compile(module, **options):
        compiled.append((module, options))
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    model = load_weights(tiny_weights)
    plain = DiffusionSettings(device="cpu", tile=64, overlap=16)
    tile_network(model, plain)
    assert compiled == []  # off by default
    benchmark = torch.backends.cudnn.benchmark
    network = tile_network(model, dataclasses.replace(plain, compile=True, autotune=True))
    assert compiled == [(model.denoiser, {"dynamic": False})]  # one call shape per tile size
    assert torch.backends.cudnn.benchmark == benchmark  # cuDNN's autotuner is for a GPU only
    assert network is not tile_network(model, plain)
    assert network is tile_network(model, dataclasses.replace(plain, compile=True, autotune=True))


def test_the_cli_passes_the_speed_options_on(tmp_path: Path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from rawback import batch
    from rawback.cli import app

    seen = {}

    def fake_run_jobs(jobs, options, **kwargs):
        seen.update(options=options, in_flight=kwargs["in_flight"])
        return batch.Summary()

    monkeypatch.setattr(batch, "run_jobs", fake_run_jobs)
    monkeypatch.setattr(batch, "preload_model", lambda options: None)
    (tmp_path / "in").mkdir()
    small_jpeg(tmp_path / "in" / "a.jpg", seed=0)
    args = ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--compile", "--autotune"]
    result = CliRunner().invoke(app, [*args, "--in-flight", "3"])
    assert result.exit_code == 0, result.output
    assert seen["options"].diffusion.compile and seen["options"].diffusion.autotune
    assert seen["in_flight"] == 3
    CliRunner().invoke(app, args)
    assert seen["in_flight"] is None  # the device's default (choices.IN_FLIGHT)


# --- on a GPU ----------------------------------------------------------------------------------------


@pytest.mark.gpu
def test_the_sampler_loop_on_a_gpu_never_waits_for_it(tiny_weights) -> None:
    """No hidden host-device synchronisation between a photo's upload and its download: every
    step, tile batch and blend stays queued on the GPU."""
    from rawback.inference import sample_residual

    model = load_weights(tiny_weights, device="cuda").to(memory_format=torch.channels_last)
    settings = DiffusionSettings(sampler="heun", steps=3, tile=64, overlap=16, tile_batch=4, device="cuda")
    cond, camera, finish = photo_inputs(70, 90)
    camera, finish = camera.cuda(), finish.cuda()
    sample_residual(model, cond, camera, finish, settings, seed=1)  # warm: network, pinned buffers
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        residual = sample_residual(model, cond, camera, finish, settings, seed=1)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert residual.is_cuda and residual.shape == (1, 4, 70, 90)


@pytest.mark.gpu
def test_the_tile_batch_on_a_gpu_comes_from_its_free_memory() -> None:
    model = load_weights(BUNDLED, device="cuda")
    network = tile_network(model, DiffusionSettings(device="cuda"))
    batch = network.scheduler.batch
    assert 1 <= batch <= 64 and batch & (batch - 1) == 0


@pytest.mark.gpu
def test_batch_on_a_gpu_is_bit_identical_to_convert_alone(tmp_path: Path) -> None:
    from rawback import batch
    from rawback.convert import ConvertOptions, convert_file

    folder = tmp_path / "in"
    folder.mkdir()
    for seed, size in enumerate(((600, 400), (600, 400), (350, 500), (90, 70))):
        small_jpeg(folder / f"p{seed}.jpg", seed=seed, size=size)
    settings = DiffusionSettings(
        sampler="heun", steps=2, tile=256, overlap=32, tile_batch=8, residual="full", device="cuda"
    )
    options = ConvertOptions(diffusion=settings, maker_notes=False)
    for photo in sorted(folder.iterdir()):
        convert_file(photo, tmp_path / f"alone-{photo.stem}.dng", options)
    summary = batch.run_jobs(batch.plan_folder(folder, tmp_path / "out"), options, in_flight=4)
    assert summary.converted == 4
    for photo in sorted(folder.iterdir()):
        alone = (tmp_path / f"alone-{photo.stem}.dng").read_bytes()
        assert (tmp_path / "out" / f"{photo.stem}.dng").read_bytes() == alone

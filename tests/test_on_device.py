"""The per-pixel steps of a GPU conversion (rawback.isp.on_device, rawback.device_mosaic) give the
bits of their NumPy forms: the analytic prior, the CFA placement, highlight restoration and raw
counts. On the CPU here (torch's CPU kernels) and, marked `gpu`, on CUDA; and a whole `convert`
through the device path writes the DNG the host path writes."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from rawback.camera import select_profile
from rawback.device_mosaic import DeviceMosaic
from rawback.diffusion_settings import DiffusionSettings
from rawback.isp import bayer, on_device, tone
from rawback.isp.highlights import restore_clipping
from rawback.isp.unprocess import UnprocessSettings, to_counts, unprocess
from rawback.model.config import preset
from rawback.model.denoiser import RawbackModel
from rawback.network import tile_network

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
PROFILE = select_profile(None, "Canon", "Canon PowerShot S40").profile


def photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Random colours with a blown band (all three channels at 255) and a near-white fringe."""
    rng = np.random.default_rng(seed)
    rgb = rng.random((height, width, 3), dtype=np.float32)
    rgb[: height // 5] = 1.0
    rgb[height // 5 : height // 5 + 2] = 252 / 255
    return np.rint(rgb * 255).astype(np.float32) / 255


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "finish",
    [
        {},
        {"curve": "random"},
        {"curve": "random", "saturation": 1.3},
        {"saturation": 0.8},
        {"bit_depth": 16},
        {"settings": UnprocessSettings("bt709", "smoothstep")},
    ],
)
def test_the_prior_on_the_device_is_the_numpy_prior(device: str, finish: dict) -> None:
    kwargs = dict(finish)
    settings = kwargs.pop("settings", UnprocessSettings())
    if kwargs.get("curve") == "random":
        kwargs["curve"] = (np.random.default_rng(1).normal(0, 0.1, len(tone.identity(8)))).astype(np.float32)
    rggb = dataclasses.replace(PROFILE, cfa_pattern="RGGB")
    rgb = photo(62, 84)
    neutral = np.array([0.52, 1.0, 0.71])
    host = bayer.pack_rggb(unprocess(rgb, rggb, neutral, settings, **kwargs), "RGGB")
    planes = torch.from_numpy(rgb).to(device).permute(2, 0, 1)
    packed = on_device.unprocess_packed(planes, rggb, neutral, settings, **kwargs)
    assert packed.device.type == device
    assert np.array_equal(packed.permute(1, 2, 0).cpu().numpy(), host)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("pattern", bayer.PATTERNS)
@pytest.mark.parametrize("size", [(40, 56), (41, 57)])
def test_placement_and_counts_on_the_device_are_the_numpy_ones(device: str, pattern: str, size) -> None:
    height, width = size
    rows, cols = bayer.rggb_crop(height, width, pattern)
    shape = ((rows.stop - rows.start) // 2, (cols.stop - cols.start) // 2, 4)
    # values past both ends: the counts clip them, as the host does
    packed = np.random.default_rng(2).uniform(-0.05, 1.05, shape).astype(np.float32)
    mosaic = bayer.packed_to_pattern(packed, pattern, height, width)
    placed = on_device.packed_to_pattern(torch.from_numpy(packed).to(device), pattern, height, width)
    assert np.array_equal(placed.cpu().numpy(), mosaic)
    profile = dataclasses.replace(PROFILE, cfa_pattern=pattern, black_level=(128, 130, 127, 129))
    counts = on_device.to_counts(placed, profile)
    assert counts.dtype == torch.uint16
    assert np.array_equal(counts.cpu().numpy(), to_counts(mosaic, profile))


def device_mosaic(device: str, pattern: str, lifted: bool) -> tuple[DeviceMosaic, np.ndarray]:
    rgb = photo(46, 64)
    rows, cols = bayer.rggb_crop(46, 64, pattern)
    shape = ((rows.stop - rows.start) // 2, (cols.stop - cols.start) // 2, 4)
    rng = np.random.default_rng(3)
    packed = torch.from_numpy(rng.random(shape, dtype=np.float32)).to(device)
    mask = torch.from_numpy(rng.random(shape) < 0.3).to(device) if lifted else None
    model = RawbackModel(preset("tiny")).to(device)
    network = tile_network(model, DiffusionSettings(device=device))
    return DeviceMosaic(packed, mask, pattern, 46, 64, network), rgb


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("pattern", ["RGGB", "GBRG"])
@pytest.mark.parametrize("lifted", [False, True])
def test_highlights_and_counts_on_the_device_are_the_hosts(device: str, pattern: str, lifted: bool) -> None:
    mosaic, rgb = device_mosaic(device, pattern, lifted)
    profile = dataclasses.replace(PROFILE, cfa_pattern=pattern)
    host_mosaic, reconstructed = mosaic.to_host()
    assert (reconstructed is None) == (not lifted)
    expected = restore_clipping(host_mosaic, rgb, reconstructed)
    counts, highlights = mosaic.raw_counts(rgb, profile)
    assert np.array_equal(counts, to_counts(expected.mosaic, profile))
    assert highlights.mosaic is None and highlights.notes == expected.notes
    assert highlights.clipped == expected.clipped > 0.1
    assert highlights.kept == expected.kept and (highlights.kept > 0) == lifted


@pytest.mark.parametrize("device", DEVICES)
def test_convert_through_the_device_path_writes_the_hosts_dng(tmp_path, monkeypatch, tiny_weights, device):
    """The whole diffusion method with every per-pixel step on the model's device, the mosaic left
    there for highlights and counts, against the NumPy path: byte-identical DNGs, on a photo with a
    blown sky in a GRBG camera (edge sites outside the packed crop), the network run everywhere;
    and `eval`'s float mosaic is the host's too."""
    from PIL import Image

    from rawback import inference
    from rawback.convert import ConvertOptions, convert_file

    jpeg = tmp_path / "sky.jpg"
    Image.fromarray(np.rint(photo(75, 101, seed=4) * 255).astype(np.uint8)).save(jpeg, quality=95)
    settings = DiffusionSettings(
        weights=tiny_weights, sampler="euler", steps=2, tile=64, overlap=16, residual="full", device=device
    )
    options = ConvertOptions(camera="kodak-dc120", diffusion=settings, maker_notes=False)
    assert inference.keeps_on_device(torch.device(device)) == (device == "cuda")
    monkeypatch.setattr(inference, "keeps_on_device", lambda d: True)  # on the CPU: the GPU's path
    result = convert_file(jpeg, tmp_path / "device.dng", options)
    assert any(note.startswith("highlights:") for note in result.notes)
    monkeypatch.setattr(inference, "keeps_on_device", lambda d: False)  # on a GPU: the NumPy steps
    convert_file(jpeg, tmp_path / "host.dng", options)
    assert (tmp_path / "device.dng").read_bytes() == (tmp_path / "host.dng").read_bytes()

"""Encode and decode whole photos with the tiny autoencoders in bounded memory, without seams.

A 24 MP photo's packed RAW is 3000 x 2000 x 4; the autoencoders' activations at that resolution
(64 channels) would take 1.5 GB per layer, so the full-resolution layers run tile by tile. Tiles are
not blended: each is run with a margin wider than the layers' receptive field
(rawback.model.tiny_autoencoder.ENCODER_MARGIN / DECODER_MARGIN) and only its core is kept, so
every kept value saw exactly the context it sees in one pass over the whole image; tiled and
untiled results differ only by float rounding (tests/test_latent.py checks 1e-4). The one
non-local operation, the GroupNorm of the lowest-resolution Blocks, runs once over the whole
latent-resolution feature map (64 channels at 1/8: 24 MB for 24 MP).

Sizes: inputs are (1, C, H, W) with H and W multiples of 8 (`pad_to_multiple`); latents (1, Cz,
H/8, W/8).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from rawback.model.tiny_autoencoder import DECODER_MARGIN, DOWNSCALE, ENCODER_MARGIN, TinyDecoder, TinyEncoder

DEFAULT_CORE = 32  # latent pixels per tile side (256 packed pixels): activations of about 17 MB a layer
ENCODER_MARGIN_LATENT = -(-ENCODER_MARGIN // DOWNSCALE)


def pad_to_multiple(image: Tensor, multiple: int = DOWNSCALE) -> Tensor:
    """(N, C, H, W) -> padded at the bottom and right (edge pixels repeated) to multiples."""
    ph, pw = -image.shape[-2] % multiple, -image.shape[-1] % multiple
    return F.pad(image, (0, pw, 0, ph), mode="replicate") if ph or pw else image


def _cores(length: int, core: int) -> list[tuple[int, int]]:
    return [(start, min(start + core, length)) for start in range(0, length, core)]


def _check(image: Tensor) -> None:
    if image.ndim != 4 or image.shape[-2] % DOWNSCALE or image.shape[-1] % DOWNSCALE:
        raise ValueError(f"need (N, C, H, W) with H, W multiples of {DOWNSCALE}, got {tuple(image.shape)}")


@torch.no_grad()
def encode_tiled(
    encoder: TinyEncoder,
    image: Tensor,
    *,
    core: int = DEFAULT_CORE,
    transform=None,
    device: torch.device | str | None = None,
) -> Tensor:
    """The encoder over `image` (on the CPU), tile by tile; `transform` (e.g. the perceptual
    transfer, or the 2x2 mean of a photo taken beforehand) is applied to each input tile.
    Returns the latent on the CPU, float32."""
    _check(image)
    device = device or next(encoder.parameters()).device
    n, _, height, width = image.shape
    h, w = height // DOWNSCALE, width // DOWNSCALE
    margin = ENCODER_MARGIN_LATENT
    features = None
    for r0, r1 in _cores(h, core):
        for c0, c1 in _cores(w, core):
            a0, a1 = max(0, r0 - margin), min(h, r1 + margin)
            b0, b1 = max(0, c0 - margin), min(w, c1 + margin)
            tile = image[:, :, a0 * DOWNSCALE : a1 * DOWNSCALE, b0 * DOWNSCALE : b1 * DOWNSCALE]
            tile = tile.to(device, torch.float32)
            if transform is not None:
                tile = transform(tile)
            out = encoder.local(tile)
            if features is None:
                features = torch.empty((n, out.shape[1], h, w), dtype=torch.float32)
            features[:, :, r0:r1, c0:c1] = out[:, :, r0 - a0 : r1 - a0, c0 - b0 : c1 - b0].float().cpu()
    assert features is not None  # h, w >= 1
    return encoder.global_(features.to(device)).float().cpu()


@torch.no_grad()
def decode_tiled(
    decoder: TinyDecoder,
    z: Tensor,
    *,
    core: int = DEFAULT_CORE,
    transform=None,
    out: Tensor | None = None,
    sign: float = 1.0,
) -> Tensor:
    """The decoder over latent `z`, tile by tile; `transform` is applied to each decoded tile (the
    inverse transfer). The result is added, times `sign`, into `out` when given (so residual
    decoding needs no second full-size image), else returned as a new float32 CPU tensor."""
    if z.ndim != 4:
        raise ValueError(f"need a latent (N, C, h, w), got {tuple(z.shape)}")
    device = next(decoder.parameters()).device
    n, _, h, w = z.shape
    features = decoder.global_(z.to(device, torch.float32))
    margin = DECODER_MARGIN
    for r0, r1 in _cores(h, core):
        for c0, c1 in _cores(w, core):
            a0, a1 = max(0, r0 - margin), min(h, r1 + margin)
            b0, b1 = max(0, c0 - margin), min(w, c1 + margin)
            tile = decoder.local(features[:, :, a0:a1, b0:b1])
            if transform is not None:
                tile = transform(tile)
            s = DOWNSCALE
            kept = tile[:, :, (r0 - a0) * s : (r1 - a0) * s, (c0 - b0) * s : (c1 - b0) * s].float().cpu()
            if out is None:
                out = torch.zeros((n, kept.shape[1], h * s, w * s), dtype=torch.float32)
            out[:, :, r0 * s : r1 * s, c0 * s : c1 * s] += sign * kept
    assert out is not None
    return out

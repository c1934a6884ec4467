"""A differentiable JPEG round trip (compress and decode), for training the Invertible ISP.

The steps of a baseline JPEG encoder and decoder, in torch: RGB -> YCbCr (JFIF), 4:2:0 chroma
(2x2 means, back up as libjpeg's "fancy" upsampling does), 8x8 DCT per block, quantisation with the standard
(Annex K) tables scaled to `quality` as libjpeg scales them, then the way back. Rounding has no
useful gradient, so the quantiser rounds with Shin and Song's (2017) cubic approximation
round(x) + (x - round(x))^3: the value stays near the rounded one and the gradient is 3 d^2, as
Invertible ISP trains with. Entropy coding is lossless, so it is left out. tests/test_invisp.py
measures the distance to Pillow's encoder at the same quality.
"""

from __future__ import annotations

import math
from functools import cache

import torch
from torch import Tensor
from torch.nn import functional

# ITU T.81 Annex K tables (luminance, chrominance), the ones every baseline encoder scales.
LUMA_TABLE = (
    (16, 11, 10, 16, 24, 40, 51, 61),
    (12, 12, 14, 19, 26, 58, 60, 55),
    (14, 13, 16, 24, 40, 57, 69, 56),
    (14, 17, 22, 29, 51, 87, 80, 62),
    (18, 22, 37, 56, 68, 109, 103, 77),
    (24, 35, 55, 64, 81, 104, 113, 92),
    (49, 64, 78, 87, 103, 121, 120, 101),
    (72, 92, 95, 98, 112, 100, 103, 99),
)
CHROMA_TABLE = (
    (17, 18, 24, 47, 99, 99, 99, 99),
    (18, 21, 26, 66, 99, 99, 99, 99),
    (24, 26, 56, 99, 99, 99, 99, 99),
    (47, 66, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
    (99, 99, 99, 99, 99, 99, 99, 99),
)
BLOCK = 8
MCU = 16  # a 4:2:0 macroblock: the image is padded to a multiple of it, as an encoder does

# JFIF's full-range YCbCr, rows Y, Cb, Cr; offsets of 128 on Cb and Cr (in 0..255 units).
YCBCR_FROM_RGB = (
    (0.299, 0.587, 0.114),
    (-0.168735892, -0.331264108, 0.5),
    (0.5, -0.418687589, -0.081312411),
)


def quality_scale(quality: int) -> float:
    """libjpeg's jpeg_quality_scaling: percent the base tables are scaled by."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1..100, got {quality}")
    return 5000.0 / quality if quality < 50 else 200.0 - 2.0 * quality


@cache
def _tables(quality: int) -> tuple[Tensor, Tensor]:
    """(luma, chroma) 8x8 quantisation steps at `quality`, clamped to 1..255 as baseline JPEG."""
    scale = quality_scale(quality)

    def scaled(table: tuple[tuple[int, ...], ...]) -> Tensor:
        base = torch.tensor(table, dtype=torch.float64)
        return torch.clamp(torch.floor((base * scale + 50.0) / 100.0), 1.0, 255.0)

    return scaled(LUMA_TABLE), scaled(CHROMA_TABLE)


@cache
def _dct_matrix() -> Tensor:
    """The orthonormal 8-point DCT-II matrix: coefficients = D @ block @ D.T."""
    k = torch.arange(BLOCK, dtype=torch.float64)[:, None]
    n = torch.arange(BLOCK, dtype=torch.float64)[None, :]
    d = torch.cos((2 * n + 1) * k * math.pi / (2 * BLOCK)) * math.sqrt(2.0 / BLOCK)
    d[0] /= math.sqrt(2.0)
    return d


def cubic_round(x: Tensor) -> Tensor:
    """round(x) + (x - round(x))^3: rounding with a gradient (Shin and Song 2017)."""
    rounded = torch.round(x).detach()
    return rounded + (x - rounded) ** 3


def _blocks_quantised(plane: Tensor, table: Tensor) -> Tensor:
    """(N, H, W) level-shifted plane, H and W multiples of 8 -> the same after DCT, quantisation
    and inverse DCT."""
    n, h, w = plane.shape
    blocks = plane.reshape(n, h // BLOCK, BLOCK, w // BLOCK, BLOCK).transpose(2, 3)
    d = _dct_matrix().to(plane)
    coefficients = d @ blocks @ d.T
    q = table.to(plane)
    restored = cubic_round(coefficients / q) * q
    pixels = d.T @ restored @ d
    return pixels.transpose(2, 3).reshape(n, h, w)


def jpeg_round_trip(rgb: Tensor, quality: int = 90) -> Tensor:
    """(N, 3, H, W) RGB in [0, 1] -> what a 4:2:0 JPEG of it at `quality` decodes to, in [0, 1]
    units (not clipped: the gradient passes through everywhere). Any size: edges are padded by
    replication to whole macroblocks and cropped back."""
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ValueError(f"need (N, 3, H, W) RGB, got {tuple(rgb.shape)}")
    n, _, h, w = rgb.shape
    pad_h, pad_w = -h % MCU, -w % MCU
    x = functional.pad(rgb, (0, pad_w, 0, pad_h), mode="replicate") if pad_h or pad_w else rgb
    matrix = torch.tensor(YCBCR_FROM_RGB, dtype=x.dtype, device=x.device)
    ycc = torch.einsum("ij,njhw->nihw", matrix, x * 255.0)
    luma_table, chroma_table = _tables(quality)
    luma = _blocks_quantised(ycc[:, 0] - 128.0, luma_table) + 128.0
    # Cb and Cr carry no offset here: with 128 added and removed it would cancel.
    chroma = functional.avg_pool2d(ycc[:, 1:], 2)
    hc, wc = chroma.shape[-2:]
    chroma = _blocks_quantised(chroma.reshape(n * 2, hc, wc), chroma_table).reshape(n, 2, hc, wc)
    # libjpeg's "fancy" upsampling: each output 3/4 of its nearest chroma sample and 1/4 of the
    # next, which is what bilinear interpolation at scale 2 computes.
    chroma = functional.interpolate(chroma, scale_factor=2, mode="bilinear", align_corners=False)
    decoded = torch.einsum("ij,njhw->nihw", torch.linalg.inv(matrix), torch.cat([luma[:, None], chroma], 1))
    return decoded[:, :, :h, :w] / 255.0

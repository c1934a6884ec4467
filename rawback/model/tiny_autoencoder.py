"""The tiny autoencoder of the TAESD family, in the layout of its FLUX.2 variant ("TAEF2").

TAESD (Ollin Boer Bohan, MIT licence; models/LICENSE-taesd.txt) distils the large VAEs of Stable
Diffusion and FLUX into small convolutional networks: an encoder of 8x downsampling to a latent of
`latent_channels` channels and a decoder back. This module is our own code of that layout, written
so that its state dicts (keys are the positions in an nn.Sequential) load into it unchanged:

  encoder: conv(3->64) Block | stride-2 conv, 3 Blocks | stride-2 conv, 3 Blocks |
           stride-2 conv, 3 Blocks with a global "pool" branch | conv(64->latent)
  decoder: soft clamp, conv(latent->64), ReLU, 3 Blocks with the pool branch |
           (upsample x2, conv, 3 Blocks) x 2 | upsample x2, conv, Block, conv(64->3)

A Block is three 3x3 convolutions with ReLUs between them, added to the input (or to its 1x1
projection) and passed through a ReLU. The FLUX.2 variant adds to the lowest-resolution Blocks a
branch of 1x1 convolution, GroupNorm and 1x1 convolution: the GroupNorm's statistics span the whole
image, the only non-local operation of the network. rawback.latent_codec therefore runs the layers
before that branch (encoder) or after it (decoder) tile by tile and the branch on the whole latent.

Images go in and come out in [0, 1]; latents are roughly in [-3, 3] (the decoder's soft clamp).
"""

from __future__ import annotations

import torch
from torch import nn

WIDTH = 64  # every Block's channels
POOL_GROUPS = 4  # GroupNorm groups of the pool branch
POOL_EXPAND = 4  # the pool branch's hidden width over WIDTH
LATENT_BOUND = 3.0  # the decoder's soft clamp: latents pass through 3 tanh(z / 3)
DOWNSCALE = 8  # pixels per latent pixel along each axis


def conv3(cin: int, cout: int, *, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)


class SoftClamp(nn.Module):
    """z -> 3 tanh(z / 3): identity near 0, bounded by +-3, so no latent drives the decoder far
    beyond what it was trained on."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.tanh(z / LATENT_BOUND) * LATENT_BOUND


class Block(nn.Module):
    """Three 3x3 convolutions (ReLU between) plus a skip, then ReLU; `pooled` adds the global
    GroupNorm branch to the input first (the FLUX.2 variant's lowest-resolution Blocks)."""

    def __init__(self, cin: int, cout: int, *, pooled: bool = False) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            conv3(cin, cout), nn.ReLU(), conv3(cout, cout), nn.ReLU(), conv3(cout, cout)
        )
        self.skip = nn.Conv2d(cin, cout, 1, bias=False) if cin != cout else nn.Identity()
        self.fuse = nn.ReLU()
        self.pool: nn.Sequential | None = None
        if pooled:
            hidden = cin * POOL_EXPAND
            self.pool = nn.Sequential(
                nn.Conv2d(cin, hidden, 1, bias=False),
                nn.GroupNorm(POOL_GROUPS, hidden),
                nn.ReLU(),
                nn.Conv2d(hidden, cin, 1, bias=False),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return self.fuse(self.conv(x) + self.skip(x))


def _blocks(count: int, *, pooled: bool = False) -> list[nn.Module]:
    return [Block(WIDTH, WIDTH, pooled=pooled) for _ in range(count)]


class TinyEncoder(nn.Sequential):
    """(N, in_channels, H, W) in [0, 1] -> (N, latent_channels, H/8, W/8); H, W multiples of 8."""

    # Layers [0, LOCAL_LAYERS) are local convolutions (tiled by rawback.latent_codec); the rest,
    # at 1/8 resolution, hold the global GroupNorm.
    LOCAL_LAYERS = 11

    def __init__(self, latent_channels: int = 32, in_channels: int = 3) -> None:
        super().__init__(
            conv3(in_channels, WIDTH), Block(WIDTH, WIDTH),
            conv3(WIDTH, WIDTH, stride=2, bias=False), *_blocks(3),
            conv3(WIDTH, WIDTH, stride=2, bias=False), *_blocks(3),
            conv3(WIDTH, WIDTH, stride=2, bias=False), *_blocks(3, pooled=True),
            conv3(WIDTH, latent_channels),
        )  # fmt: skip
        self.latent_channels = latent_channels
        self.in_channels = in_channels

    def local(self, x: torch.Tensor) -> torch.Tensor:
        for layer in list(self)[: self.LOCAL_LAYERS]:
            x = layer(x)
        return x

    def global_(self, features: torch.Tensor) -> torch.Tensor:
        for layer in list(self)[self.LOCAL_LAYERS :]:
            features = layer(features)
        return features


class TinyDecoder(nn.Sequential):
    """(N, latent_channels, h, w) -> (N, out_channels, 8h, 8w), about [0, 1]."""

    # Layers [0, GLOBAL_LAYERS) run at latent resolution and hold the global GroupNorm; the rest are
    # local convolutions (tiled by rawback.latent_codec).
    GLOBAL_LAYERS = 6

    def __init__(self, latent_channels: int = 32, out_channels: int = 3) -> None:
        super().__init__(
            SoftClamp(), conv3(latent_channels, WIDTH), nn.ReLU(), *_blocks(3, pooled=True),
            nn.Upsample(scale_factor=2), conv3(WIDTH, WIDTH, bias=False), *_blocks(3),
            nn.Upsample(scale_factor=2), conv3(WIDTH, WIDTH, bias=False), *_blocks(3),
            nn.Upsample(scale_factor=2), conv3(WIDTH, WIDTH, bias=False), Block(WIDTH, WIDTH),
            conv3(WIDTH, out_channels),
        )  # fmt: skip
        self.latent_channels = latent_channels
        self.out_channels = out_channels

    def global_(self, z: torch.Tensor) -> torch.Tensor:
        for layer in list(self)[: self.GLOBAL_LAYERS]:
            z = layer(z)
        return z

    def local(self, features: torch.Tensor) -> torch.Tensor:
        for layer in list(self)[self.GLOBAL_LAYERS :]:
            features = layer(features)
        return features


# Receptive-field radii of the local parts, for tiling (rawback.latent_codec). The encoder's local
# layers are 4 convolutions at full resolution, 10 at 1/2, 10 at 1/4 and one at 1/8: 4 + 20 + 40 + 8
# = 72 input pixels (9 latent pixels); we keep 80. The decoder's are 10 convolutions at 1/4, 10 at
# 1/2 and 5 at full resolution: 5 + 2.5 + 0.6 latent pixels, so 9. Measured on the TAEF2 weights:
# tiled equals untiled exactly from margins of 9 latent pixels up (8 leaves 1e-5, 6 leaves 3e-3).
ENCODER_MARGIN = 80
DECODER_MARGIN = 9


def expand_first_conv(weight: torch.Tensor) -> torch.Tensor:
    """An RGB input convolution (cout, 3, k, k) -> one for packed RGGB (cout, 4, k, k): R from R,
    each green from half of G (a flat grey, G1 = G2 = G, then gives the RGB response), B from B."""
    red, green, blue = weight.unbind(1)
    return torch.stack([red, green / 2, green / 2, blue], dim=1)


def expand_last_conv(weight: torch.Tensor, bias: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """An RGB output convolution (3, cin, k, k) and bias (3,) -> packed RGGB: R, G, G, B."""
    order = torch.tensor([0, 1, 1, 2])
    return weight[order].clone(), bias[order].clone()


def packed_state(state: dict[str, torch.Tensor], part: str) -> dict[str, torch.Tensor]:
    """A TAEF2 encoder's or decoder's state dict (`part`) adapted to 4-channel packed RGGB."""
    state = dict(state)
    if part == "encoder":
        state["0.weight"] = expand_first_conv(state["0.weight"])
    elif part == "decoder":
        last = max(int(k.split(".")[0]) for k in state)
        state[f"{last}.weight"], state[f"{last}.bias"] = expand_last_conv(
            state[f"{last}.weight"], state[f"{last}.bias"]
        )
    else:
        raise ValueError(f"part must be encoder or decoder, not {part!r}")
    return state

"""The U-Net that denoises the packed residual (SR3 / ADM family).

Residual blocks with GroupNorm and SiLU, FiLM conditioning on a continuous noise-level embedding
(plus the camera embedding), self-attention at the lowest resolutions, skip connections by
concatenation (Saharia et al. 2021, "Image Super-Resolution via Iterative Refinement"; Dhariwal &
Nichol 2021, "Diffusion Models Beat GANs"). The network knows nothing about noise schedules: the
EDM wrapper (rawback.model.denoiser) scales its inputs and outputs.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from rawback.model.config import CAMERA_FEATURES, JPEG_CHANNELS, MOSAIC_CHANNELS, PRIOR_CHANNELS, UNetConfig


def fourier_embedding(c_noise: torch.Tensor, channels: int) -> torch.Tensor:
    """Sinusoidal embedding of the (log) noise level, as in ADM's timestep embedding."""
    half = channels // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=c_noise.device) / half)
    args = c_noise.float()[:, None] * 100.0 * freqs[None]  # *100: c_noise = ln(sigma)/4 is O(1)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice; the embedding sets a per-channel scale and shift (FiLM)."""

    def __init__(self, cin: int, cout: int, embed: int, groups: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.film = nn.Linear(embed, 2 * cout)
        self.norm2 = nn.GroupNorm(min(groups, cout), cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head self-attention over all positions of a (low-resolution) feature map."""

    def __init__(self, channels: int, head_channels: int, groups: int) -> None:
        super().__init__()
        self.heads = max(1, channels // head_channels)
        self.norm = nn.GroupNorm(min(groups, channels), channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        qkv = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w)
        # (3, n, heads, positions, head channels), copied so that each head's channels are
        # contiguous: only then does PyTorch pick its fused (flash) attention kernel; strided
        # inputs fall back to the math path, which builds every (positions x positions) matrix
        # (3.4x slower on the CPU for a 512 px tile, the same result to 1e-7).
        q, k, v = qkv.permute(1, 0, 2, 4, 3).contiguous().unbind(0)
        out = F.scaled_dot_product_attention(q, k, v)
        return x + self.out(out.transpose(-1, -2).reshape(n, c, h, w))


class UNet(nn.Module):
    """F(x_in, c_noise, cond, camera) -> 4-channel packed output (the EDM 'F_theta').

    x_in: (N, 4, H, W) scaled noisy residual; cond: (N, 16, H, W) JPEG space-to-depth + analytic
    estimate; camera: (N, 12) camera features; finish: (N, F) the global head's finish embedding.
    H and W must be multiples of 2**(levels - 1); the wrapper pads. Other channel counts (the latent
    model's, rawback.model.latent) are given by `in_channels` (x and cond together) and `out_channels`.
    """

    def __init__(
        self,
        config: UNetConfig,
        finish_channels: int,
        *,
        in_channels: int = MOSAIC_CHANNELS + JPEG_CHANNELS + PRIOR_CHANNELS,
        out_channels: int = MOSAIC_CHANNELS,
    ) -> None:
        super().__init__()
        self.config = config
        c = config
        widths = [c.base_channels * m for m in c.channel_mults]
        self.embed = nn.Sequential(
            nn.Linear(c.embed_channels, c.embed_channels),
            nn.SiLU(),
            nn.Linear(c.embed_channels, c.embed_channels),
        )
        self.camera = nn.Sequential(nn.Linear(CAMERA_FEATURES, c.embed_channels), nn.SiLU())
        self.finish = nn.Linear(finish_channels, c.embed_channels)
        self.stem = nn.Conv2d(in_channels, widths[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.down_attn = nn.ModuleList()
        self.downsample = nn.ModuleList()
        skips = [widths[0]]
        now = widths[0]
        for level, width in enumerate(widths):
            blocks, attns = nn.ModuleList(), nn.ModuleList()
            for _ in range(c.blocks_per_level):
                blocks.append(ResBlock(now, width, c.embed_channels, c.groups, c.dropout))
                attns.append(
                    Attention(width, c.head_channels, c.groups)
                    if level in c.attention_levels
                    else nn.Identity()
                )
                now = width
                skips.append(now)
            self.down.append(blocks)
            self.down_attn.append(attns)
            if level < len(widths) - 1:
                self.downsample.append(nn.Conv2d(now, now, 3, stride=2, padding=1))
                skips.append(now)
        self.mid1 = ResBlock(now, now, c.embed_channels, c.groups, c.dropout)
        self.mid_attn = Attention(now, c.head_channels, c.groups)
        self.mid2 = ResBlock(now, now, c.embed_channels, c.groups, c.dropout)
        self.up = nn.ModuleList()
        self.up_attn = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for level, width in reversed(list(enumerate(widths))):
            blocks, attns = nn.ModuleList(), nn.ModuleList()
            for _ in range(c.blocks_per_level + 1):
                blocks.append(ResBlock(now + skips.pop(), width, c.embed_channels, c.groups, c.dropout))
                attns.append(
                    Attention(width, c.head_channels, c.groups)
                    if level in c.attention_levels
                    else nn.Identity()
                )
                now = width
            self.up.append(blocks)
            self.up_attn.append(attns)
            if level > 0:
                self.upsample.append(nn.Conv2d(now, now, 3, padding=1))
        self.out_norm = nn.GroupNorm(min(c.groups, now), now)
        self.out = nn.Conv2d(now, out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # an untrained model adds nothing to the analytic estimate
        nn.init.zeros_(self.out.bias)

    @property
    def multiple(self) -> int:
        return 2 ** (len(self.config.channel_mults) - 1)

    def forward(
        self,
        x: torch.Tensor,
        c_noise: torch.Tensor,
        cond: torch.Tensor,
        camera: torch.Tensor,
        finish: torch.Tensor,
    ) -> torch.Tensor:
        emb = self.embed(fourier_embedding(c_noise, self.config.embed_channels))
        emb = emb + self.camera(camera) + self.finish(finish)
        h = self.stem(torch.cat([x, cond], dim=1))
        skips = [h]
        for level, (blocks, attns) in enumerate(zip(self.down, self.down_attn, strict=False)):
            for block, attn in zip(blocks, attns, strict=False):
                h = attn(block(h, emb))
                skips.append(h)
            if level < len(self.downsample):
                h = self.downsample[level](h)
                skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb)), emb)
        for index, (blocks, attns) in enumerate(zip(self.up, self.up_attn, strict=False)):
            for block, attn in zip(blocks, attns, strict=False):
                h = attn(block(torch.cat([h, skips.pop()], dim=1), emb))
            if index < len(self.upsample):
                h = self.upsample[index](F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(F.silu(self.out_norm(h)))

"""The EDM preconditioning wrapper D(x, sigma, cond) -> x0 and the model's inputs.

Karras et al. 2022 ("Elucidating the Design Space of Diffusion-Based Generative Models"), Table 1:
  D(x; sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x; c_noise(sigma))
with c_skip = sd^2 / (sigma^2 + sd^2), c_out = sigma sd / sqrt(sigma^2 + sd^2),
c_in = 1 / sqrt(sigma^2 + sd^2), c_noise = ln(sigma) / 4, sd = sigma_data.
What is denoised is the *residual* between the packed mosaic and the analytic estimate. An
untrained network (zero output layer) has F = 0, so D = c_skip x: one step from sigma_max returns
the analytic inverse plus noise of std sigma_data^2 / sigma_max (about 0.001).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from rawback.model.config import ModelConfig
from rawback.model.edm import edm_denoise, edm_loss_weight
from rawback.model.heads import GlobalHead, ResidualGate
from rawback.model.unet import UNet


def encode_linear(x: torch.Tensor) -> torch.Tensor:
    """Linear [0, 1] values -> [-1, 1] with a gamma, so shadows are not crushed near -1."""
    return x.clamp(0.0, 1.0).pow(1.0 / 2.2) * 2.0 - 1.0


def condition(rgb: torch.Tensor, prior: torch.Tensor) -> torch.Tensor:
    """(N, 3, 2H, 2W) sRGB-encoded photo in [0, 1] + (N, 4, H, W) analytic packed estimate ->
    (N, 16, H, W): the photo as space-to-depth (channel c*4 + 2*dy + dx) and the encoded prior."""
    return torch.cat([F.pixel_unshuffle(rgb * 2.0 - 1.0, 2), encode_linear(prior)], dim=1)


class EDMDenoiser(nn.Module):
    """D(x, sigma, cond, camera, finish) -> x0 for the packed residual; the U-Net never sees sigma
    itself. camera and finish are per-photo (global) conditions; cond is per pixel."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.unet = UNet(config.unet, config.global_head.finish_channels)

    def forward(
        self,
        x: torch.Tensor,
        sigma: torch.Tensor,
        cond: torch.Tensor,
        camera: torch.Tensor,
        finish: torch.Tensor,
    ) -> torch.Tensor:
        """x: (N, 4, H, W) noisy residual; cond: (N, 16, H, W); camera, finish: (N, C) per photo."""
        return edm_denoise(self.unet, x, sigma, cond, camera, finish, self.config.sigma_data, reflect=True)

    def loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        return edm_loss_weight(sigma, self.config.sigma_data)


class RawbackModel(nn.Module):
    """The whole inverter: the global head (white balance, exposure, tone curve, finish embedding),
    the residual denoiser and, once calibrated, the residual gate."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.denoiser = EDMDenoiser(config)
        self.global_head = GlobalHead(config.global_head)
        self.gate = ResidualGate(config.global_head) if config.residual_gate else None

"""EDM's preconditioning (Karras et al. 2022, table 1), shared by every denoiser rawback trains
(the packed-Bayer one of rawback.model.denoiser and the latent one of rawback.model.latent): the
network sees its input and noise level scaled so that every level looks alike at initialisation."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn


class EdmScalings(NamedTuple):
    c_skip: torch.Tensor  # (N, 1, 1, 1): the share of the noisy input kept
    c_out: torch.Tensor  # (N, 1, 1, 1): the network output's scale
    c_in: torch.Tensor  # (N, 1, 1, 1): the network input's scale
    c_noise: torch.Tensor  # (N,): the noise level the network is told


def edm_scalings(sigma: torch.Tensor, batch: int, sigma_data: float) -> EdmScalings:
    """The scalings for noise levels `sigma` (a scalar or one per item) of a batch of `batch`."""
    sigma = sigma.to(torch.float32).reshape(-1, 1, 1, 1).expand(batch, 1, 1, 1)
    sd = sigma_data
    return EdmScalings(
        c_skip=sd**2 / (sigma**2 + sd**2),
        c_out=sigma * sd / (sigma**2 + sd**2).sqrt(),
        c_in=1.0 / (sigma**2 + sd**2).sqrt(),
        c_noise=sigma.log().reshape(-1) / 4.0,
    )


def edm_denoise(
    unet: nn.Module,
    x: torch.Tensor,
    sigma: torch.Tensor,
    cond: torch.Tensor,
    camera: torch.Tensor,
    finish: torch.Tensor,
    sigma_data: float,
    *,
    reflect: bool,
) -> torch.Tensor:
    """D(x) = c_skip x + c_out F(c_in x, c_noise; cond, camera, finish) in float32, the U-Net `unet`
    (rawback.model.unet) run on x and cond padded at the bottom and right to its multiple and
    cropped back. `reflect` pads by reflection where the input is large enough, which keeps image
    statistics at the edge (the packed-Bayer denoiser), else by replication (the latent one)."""
    c_skip, c_out, c_in, c_noise = edm_scalings(sigma, x.shape[0], sigma_data)
    x = x.to(torch.float32)
    h, w = x.shape[-2:]
    ph, pw = -h % unet.multiple, -w % unet.multiple
    x_in, cond_in = c_in * x, cond.to(torch.float32)
    if ph or pw:
        mode = "reflect" if reflect and min(h, w) > max(ph, pw) else "replicate"
        x_in = F.pad(x_in, (0, pw, 0, ph), mode=mode)
        cond_in = F.pad(cond_in, (0, pw, 0, ph), mode=mode)
    f = unet(x_in, c_noise, cond_in, camera.to(torch.float32), finish.to(torch.float32))[..., :h, :w]
    return c_skip * x + c_out * f.to(torch.float32)


def edm_loss_weight(sigma: torch.Tensor, sigma_data: float) -> torch.Tensor:
    """EDM's lambda(sigma) = 1 / c_out^2: every noise level contributes equally at init."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2

"""The latent-diffusion variant's networks: two autoencoders and a denoiser in their latent space.

- `raw_encoder` / `raw_decoder`: the packed RAW (4 channels R, G1, G2, B at half the photo's
  resolution) <-> a 32-channel latent at 1/8 of that (1/16 of the photo). They start from TAESD's
  FLUX.2 autoencoder (rawback.model.tiny_autoencoder; tools/taesd_init.py adapts its RGB layers)
  and see linear values through a square root, the perceptual transfer their RGB training expects
  of an image: shadows keep their share of the code.
- `photo_encoder`: the JPEG condition -> a latent on the same grid. It encodes the photo averaged
  over 2x2 blocks (the packed grid), not the full-resolution photo: a quarter of the work (the
  encoders dominate a conversion's time), and a 1/16 grid cannot hold the full resolution's detail
  anyway; that detail reaches the output through the analytic prior (residual decoding below).
- `denoiser`: EDM (Karras et al. 2022) over the latent residual z_truth - E(prior), a U-Net
  (rawback.model.unet) conditioned on the photo's latent and the prior's latent.

Decoding: "residual decoding" is  packed = prior + D(z) - D(E(prior)): where the denoiser changes
nothing the autoencoder's own error cancels and the result is the prior exactly; plain decoding is
D(z). `LatentConfig.residual_decoding` says which the weights use (docs/latent.md has both measured).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from rawback.model.config import UNetConfig
from rawback.model.edm import edm_denoise, edm_loss_weight
from rawback.model.tiny_autoencoder import DOWNSCALE, TinyDecoder, TinyEncoder
from rawback.model.unet import UNet

PACKED_CHANNELS = 4
PHOTO_CHANNELS = 3
FINISH_CHANNELS = 1  # the U-Net's finish embedding, unused here: always zero


@dataclass(frozen=True)
class LatentConfig:
    name: str = "small"
    latent_channels: int = 32  # TAEF2's
    unet: UNetConfig = field(
        default_factory=lambda: UNetConfig(
            base_channels=64, channel_mults=(1, 2), attention_levels=(1,), head_channels=32,
            embed_channels=128, groups=8,
        )
    )  # fmt: skip
    # EDM constants of the latent residual z_truth - E(prior); sigma_data is its typical std (0.29
    # on 24 scene pairs of 192 pixels, with the autoencoder 50 steps into its fine-tuning;
    # docs/latent.md), sigma_max about 30 times it, as the packed model's 1.0 is to its 0.03.
    sigma_data: float = 0.3
    sigma_min: float = 0.002
    sigma_max: float = 10.0
    residual_decoding: bool = True

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> LatentConfig:
        unet = UNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data["unet"].items()})
        return cls(**{**{k: v for k, v in data.items() if k != "unet"}, "unet": unet})


LATENT_PRESETS: dict[str, LatentConfig] = {
    "tiny": LatentConfig(
        name="tiny",
        unet=UNetConfig(
            base_channels=8,
            channel_mults=(1, 2),
            attention_levels=(1,),
            head_channels=8,
            embed_channels=16,
            groups=4,
        ),
    ),
    "small": LatentConfig(),
}


def latent_preset(name: str) -> LatentConfig:
    try:
        return LATENT_PRESETS[name]
    except KeyError:
        known = ", ".join(LATENT_PRESETS)
        raise ValueError(f"unknown latent model preset {name!r}; available: {known}") from None


def to_perceptual(linear: torch.Tensor) -> torch.Tensor:
    """Linear [0, 1] -> the encoder's input: the square root."""
    return linear.clamp(0.0, 1.0).sqrt()


def from_perceptual(encoded: torch.Tensor) -> torch.Tensor:
    """The decoder's output -> linear [0, 1]."""
    return encoded.clamp(0.0, 1.0).square()


def photo_half(rgb: torch.Tensor) -> torch.Tensor:
    """(N, 3, 2H, 2W) photo in [0, 1] -> (N, 3, H, W), 2x2 means: the packed grid."""
    return F.avg_pool2d(rgb, 2)


class LatentDenoiser(nn.Module):
    """D(x, sigma, cond, camera) -> x0 of the latent residual, EDM preconditioning (the same as
    rawback.model.denoiser's, over latents). cond: the photo's and the prior's latents."""

    def __init__(self, config: LatentConfig) -> None:
        super().__init__()
        self.config = config
        channels = config.latent_channels
        self.unet = UNet(config.unet, FINISH_CHANNELS, in_channels=3 * channels, out_channels=channels)

    def forward(
        self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor, camera: torch.Tensor
    ) -> torch.Tensor:
        finish = torch.zeros(x.shape[0], FINISH_CHANNELS, device=x.device)
        return edm_denoise(self.unet, x, sigma, cond, camera, finish, self.config.sigma_data, reflect=False)

    def loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        return edm_loss_weight(sigma, self.config.sigma_data)


class LatentModel(nn.Module):
    """Both autoencoders and the latent denoiser: what models/rawback-latent.pt holds."""

    def __init__(self, config: LatentConfig) -> None:
        super().__init__()
        self.config = config
        channels = config.latent_channels
        self.raw_encoder = TinyEncoder(channels, PACKED_CHANNELS)
        self.raw_decoder = TinyDecoder(channels, PACKED_CHANNELS)
        self.photo_encoder = TinyEncoder(channels, PHOTO_CHANNELS)
        self.denoiser = LatentDenoiser(config)

    def encode_raw(self, packed: torch.Tensor) -> torch.Tensor:
        """(N, 4, H, W) linear packed, H and W multiples of 8 -> (N, 32, H/8, W/8)."""
        return self.raw_encoder(to_perceptual(packed))

    def decode_raw(self, z: torch.Tensor) -> torch.Tensor:
        return from_perceptual(self.raw_decoder(z))

    def encode_photo(self, rgb: torch.Tensor) -> torch.Tensor:
        """(N, 3, 2H, 2W) sRGB-encoded photo in [0, 1] -> (N, 32, H/8, W/8)."""
        return self.photo_encoder(photo_half(rgb))

    def decode(self, z: torch.Tensor, prior: torch.Tensor, z_prior: torch.Tensor) -> torch.Tensor:
        """Packed estimate from the latent z: residual decoding or plain, as configured."""
        if self.config.residual_decoding:
            return (prior + self.decode_raw(z) - self.decode_raw(z_prior)).clamp(0.0, 1.0)
        return self.decode_raw(z)


MULTIPLE = DOWNSCALE  # packed sizes the autoencoders take: multiples of 8 (callers pad)

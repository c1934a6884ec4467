"""Run the latent-diffusion variant on a photo (`--method latent`, docs/latent.md).

Data flow for one photo (stored orientation, CFA of the camera profile):
  1. crop the photo to the mosaic's RGGB phase; the analytic prior (packed RGGB) with the white
     balance the photo states (given, maker notes, EXIF, else daylight) and the measured finish,
     as the analytic method makes it;
  2. encode the prior (raw encoder) and the photo's 2x2 means (photo encoder) to latents at 1/16
     of the photo, tile by tile without seams (rawback.latent_codec);
  3. a sampler (rawback.sampling) integrates the latent residual from sigma_max to 0 through the
     latent denoiser, tiled with blending in latent space (rawback.tiling.TiledDenoiser);
  4. decode: prior + D(z) - D(E(prior)) (residual decoding) or D(z), as the weights say; clip and
     unpack into the profile's CFA.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

from rawback.camera import CameraProfile
from rawback.diffusion_settings import DiffusionSettings
from rawback.features import camera_features
from rawback.finish import measured_finish_note, unprocess_with_finish
from rawback.inference import RECONSTRUCTION_SIGMAS, photo_seed
from rawback.inverse import InverseRequest, InverseResult, estimate_neutral
from rawback.isp.bayer import pack_rggb, packed_to_pattern, rggb_crop
from rawback.isp.unprocess import UnprocessSettings
from rawback.latent_codec import decode_tiled, encode_tiled, pad_to_multiple
from rawback.latent_weights import bundled_latent_weights, load_latent_weights
from rawback.model.config import ModelConfig
from rawback.model.latent import LatentModel, from_perceptual, photo_half, to_perceptual
from rawback.model.tiny_autoencoder import DOWNSCALE
from rawback.sampling import get_sampler, initial_noise, karras_sigmas
from rawback.tiling import TiledDenoiser

# Latent tiles of the denoiser (1/16 of the photo): 64 latent pixels are 1024 photo pixels, and
# the U-Net at latent resolution is cheap next to the autoencoders, so tiles can be large. `--tile`
# and `--overlap` (photo pixels) override them, divided by 16.
LATENT_TILE = 64
LATENT_OVERLAP = 8
PHOTO_PER_LATENT = 2 * DOWNSCALE  # photo pixels per latent pixel along an axis
# A lift above the prior that counts as reconstructed light: rawback.inference's rule, in the
# packed residual's typical spread (the pixel model's sigma_data; the latent one is in other units).
RECONSTRUCTION_MARGIN = RECONSTRUCTION_SIGMAS * ModelConfig.sigma_data


@functools.lru_cache(maxsize=2)
def cached_latent_model(weights: str, device: str) -> LatentModel:
    return load_latent_weights(weights, device=device)


def latent_model_for(settings: DiffusionSettings) -> LatentModel:
    from rawback.device import resolve_device

    return cached_latent_model(
        str(settings.weights or bundled_latent_weights()), str(resolve_device(settings.device))
    )


def latent_tiling(settings: DiffusionSettings) -> tuple[int, int]:
    """(tile, overlap) of the latent denoiser in latent pixels."""
    if settings.tile is None:
        return LATENT_TILE, LATENT_OVERLAP
    tile = max(2, settings.tile // PHOTO_PER_LATENT)
    return tile, min(tile - 1, settings.overlap // PHOTO_PER_LATENT)


class Latents(NamedTuple):
    z: Tensor  # (1, C, h/8, w/8) the sampled latent of the truth
    z_prior: Tensor  # the prior's latent
    prior: Tensor  # (1, 4, h, w) the prior, padded to multiples of 8 packed pixels


@torch.no_grad()
def sample_latents(
    model: LatentModel,
    photo: Tensor,
    prior: Tensor,
    camera: Tensor,
    settings: DiffusionSettings,
    seed: int,
) -> Latents:
    """photo (1, 3, 2h, 2w) in [0, 1] and prior (1, 4, h, w) linear -> the latents."""
    device = next(model.parameters()).device
    prior_p = pad_to_multiple(prior.float())
    photo_p = pad_to_multiple(photo_half(photo.float()))
    z_prior = encode_tiled(model.raw_encoder, prior_p, transform=to_perceptual)
    z_photo = encode_tiled(model.photo_encoder, photo_p)
    cond = torch.cat([z_photo, z_prior], dim=1)
    config = model.config
    tile, overlap = latent_tiling(settings)

    def denoise_batch(x: Tensor, sigma: Tensor, cond_tiles: Tensor, camera_rows: Tensor) -> Tensor:
        return model.denoiser(x.to(device), sigma.to(device), cond_tiles.to(device), camera_rows.to(device))

    tiled = TiledDenoiser(denoise_batch, tile=tile, overlap=overlap, conditions=(camera.cpu(),))
    sigmas = karras_sigmas(settings.steps, config.sigma_min, config.sigma_max)
    x = initial_noise(tuple(z_prior.shape), seed) * sigmas[0]
    residual = get_sampler(settings.sampler)(lambda x_, sigma: tiled(x_, sigma, cond), x, sigmas)
    return Latents((z_prior.double() + residual).float(), z_prior, prior_p)


@torch.no_grad()
def decode_latents(model: LatentModel, latents: Latents, *, residual_decoding: bool | None = None) -> Tensor:
    """(1, 4, h8, w8) packed estimate from the latents, clipped to [0, 1] (still padded)."""
    residual = model.config.residual_decoding if residual_decoding is None else residual_decoding
    if not residual:
        return decode_tiled(model.raw_decoder, latents.z, transform=from_perceptual).clamp(0.0, 1.0)
    out = latents.prior.clone()
    decode_tiled(model.raw_decoder, latents.z, transform=from_perceptual, out=out)
    decode_tiled(model.raw_decoder, latents.z_prior, transform=from_perceptual, out=out, sign=-1.0)
    return out.clamp(0.0, 1.0)


def latent_prior(
    crop: np.ndarray, profile: CameraProfile, neutral: np.ndarray, settings: UnprocessSettings, bit_depth: int
) -> tuple[np.ndarray, str | None]:
    """(packed prior (h, w, 4), note of a measured finish or None) of an RGGB-phase crop, as the
    analytic method makes it."""
    rggb = dataclasses.replace(profile, cfa_pattern="RGGB")
    mosaic, finish = unprocess_with_finish(crop, rggb, neutral, settings, bit_depth)
    note = None if finish is None else measured_finish_note(profile)
    return pack_rggb(mosaic, "RGGB"), note


def invert_with_latent(request: InverseRequest) -> InverseResult:
    """The "latent" method of rawback.methods."""
    settings = request.diffusion
    model = latent_model_for(settings)
    estimate = estimate_neutral(request)
    notes = [
        f"latent diffusion: {settings.sampler}, {settings.steps} step(s), seed {settings.seed}",
        estimate.note,
    ]
    rows, cols = rggb_crop(request.rgb.shape[0], request.rgb.shape[1], request.profile.cfa_pattern)
    crop = np.ascontiguousarray(request.rgb[rows, cols], dtype=np.float32)
    prior, finish_note = latent_prior(
        crop, request.profile, estimate.neutral, request.settings, request.bit_depth
    )
    if finish_note is not None:
        notes.append(finish_note)
    if request.progress is not None:
        request.progress(0.1)
    camera = torch.from_numpy(camera_features(request.profile))[None]
    photo_t = torch.from_numpy(crop).permute(2, 0, 1)[None]
    prior_t = torch.from_numpy(prior).permute(2, 0, 1)[None]
    latents = sample_latents(
        model, photo_t, prior_t, camera, settings, photo_seed(settings.seed, request.rgb)
    )
    del photo_t
    if request.progress is not None:
        request.progress(0.5)
    h, w = prior.shape[:2]
    packed = decode_latents(model, latents)[0, :, :h, :w].permute(1, 2, 0).numpy()
    if request.progress is not None:
        request.progress(1.0)
    height, width = request.rgb.shape[:2]
    pattern = request.profile.cfa_pattern
    mosaic = packed_to_pattern(np.ascontiguousarray(packed), pattern, height, width)
    lifted = (packed > prior + RECONSTRUCTION_MARGIN).astype(np.float32)
    return InverseResult(
        mosaic=mosaic,
        neutral=estimate.neutral,
        notes=tuple(notes),
        neutral_source=estimate.source,
        tone_curve_undone=finish_note is not None,
        reconstructed=packed_to_pattern(lifted, pattern, height, width) > 0.5,
    )

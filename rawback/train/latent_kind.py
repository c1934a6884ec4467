"""The latent kind of `rawback train` (rawback.train.kinds, docs/latent.md), in two stages:

- `latent_stage=autoencoder`: fine-tune the RAW autoencoder on the reconstruction L1 of the packed
  truth, and the photo encoder to put the photo where the RAW encoder puts its truth (L1 between
  the latents, the RAW latent held fixed): the condition then speaks the denoiser's language. The
  denoiser is frozen (and untouched).
- `latent_stage=diffusion`: the EDM denoiser on the latent residual z_truth - E(prior),
  conditioned on E_photo(photo) and E(prior); the autoencoders are frozen.

Both start from the weights file `autoencoder` names (tools/taesd_init.py's adapted TAESD weights,
then the first stage's model.pt); without one the first stage trains the autoencoders from scratch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from rawback.choices import LatentStage
from rawback.errors import UsageError
from rawback.model.config import ModelConfig
from rawback.model.latent import LatentConfig, LatentModel, latent_preset
from rawback.model.tiny_autoencoder import DOWNSCALE
from rawback.train.config import TrainConfig
from rawback.train.kinds import ModelKind
from rawback.train.validation import ValidationImage, analytic_packed

AUTOENCODER_PARTS = ("raw_encoder", "raw_decoder", "photo_encoder")
PHOTO_LATENT_WEIGHT = 0.1  # the photo encoder's latent L1 beside the reconstruction's (both O(0.01-0.1))
# The diffusion kind's sigma_data: TrainConfig's p_mean is in its units, so the latent kind's noise
# levels are scaled by sigma_data / this (the same noise relative to the residual's spread).
PACKED_SIGMA_DATA = ModelConfig().sigma_data


def freeze(model: LatentModel, stage: str) -> None:
    training_autoencoders = stage == LatentStage.AUTOENCODER
    for name in AUTOENCODER_PARTS:
        getattr(model, name).requires_grad_(training_autoencoders)
    model.denoiser.requires_grad_(not training_autoencoders)


class LatentStep(nn.Module):
    """The loss of one batch in the config's stage."""

    def __init__(self, model: LatentModel, config: TrainConfig) -> None:
        super().__init__()
        self.model = model
        self.config = config

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if self.config.latent_stage == LatentStage.AUTOENCODER:
            return self.autoencoder_loss(batch)
        return self.diffusion_loss(batch)

    def autoencoder_loss(
        self, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model, truth = self.model, batch["truth"].float()
        z = model.encode_raw(truth)
        loss_reconstruction = F.l1_loss(model.decode_raw(z), truth)
        loss_photo = F.l1_loss(model.encode_photo(batch["rgb"].float()), z.detach())
        loss = loss_reconstruction + PHOTO_LATENT_WEIGHT * loss_photo
        return loss, {"loss_reconstruction": loss_reconstruction.detach(), "loss_photo": loss_photo.detach()}

    def diffusion_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        model, tc = self.model, self.config
        mc = model.config
        with torch.no_grad():
            z_truth = model.encode_raw(batch["truth"].float())
            z_prior = model.encode_raw(batch["prior"].float())
            cond = torch.cat([model.encode_photo(batch["rgb"].float()), z_prior], dim=1)
        residual = z_truth - z_prior
        n = residual.shape[0]
        scale = mc.sigma_data / PACKED_SIGMA_DATA
        sigma = torch.exp(torch.randn(n, device=residual.device) * tc.p_std + tc.p_mean) * scale
        at_max = torch.rand(n, device=residual.device) < tc.p_sigma_max
        sigma = torch.where(at_max, torch.full_like(sigma, mc.sigma_max), sigma).clamp(
            mc.sigma_min, mc.sigma_max
        )
        noisy = residual + torch.randn_like(residual) * sigma[:, None, None, None]
        denoised = model.denoiser(noisy, sigma, cond, batch["camera"])
        weight = model.denoiser.loss_weight(sigma)[:, None, None, None]
        loss = (weight * (denoised - residual) ** 2).mean()
        return loss, {"loss_denoise": loss.detach()}


def _check(config: TrainConfig) -> None:
    if config.patch % (2 * DOWNSCALE):
        raise UsageError(
            f"the latent kind needs a patch that is a multiple of {2 * DOWNSCALE}, not {config.patch}"
        )
    if config.latent_stage == LatentStage.DIFFUSION and not config.autoencoder:
        raise UsageError(
            "latent_stage=diffusion needs --set autoencoder=RUN/model.pt (the first stage's weights)"
        )


def build(config: TrainConfig, known: tuple[str, ...]) -> LatentModel:
    from rawback.latent_weights import load_latent_weights

    _check(config)
    try:
        model = LatentModel(latent_preset(config.model))
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if config.autoencoder:
        source = load_latent_weights(config.autoencoder)
        if source.config.latent_channels != model.config.latent_channels:
            raise UsageError(f"{config.autoencoder}: its latent has another channel count")
        for name in AUTOENCODER_PARTS:
            getattr(model, name).load_state_dict(getattr(source, name).state_dict())
    freeze(model, config.latent_stage)
    model.stage = config.latent_stage  # type: ignore[assignment]  # kept for rebuild and validate
    return model


def rebuild(saved: dict) -> LatentModel:
    model = LatentModel(LatentConfig.from_dict(saved["latent"]))
    freeze(model, saved["stage"])
    model.stage = saved["stage"]  # type: ignore[assignment]
    return model


def config_of(model: LatentModel) -> dict:
    return {
        "latent": json.loads(model.config.to_json()),
        "stage": getattr(model, "stage", LatentStage.AUTOENCODER),
    }


def save(ema: LatentModel, path: Path, meta: dict) -> None:
    """The fp16 weights; the provenance of the autoencoders' origin (tools/taesd_init.py's `taesd`
    record) is carried over from the file they came from, so every later file names it."""
    from rawback.latent_weights import latent_weights_meta, save_latent_weights

    source = meta.get("train_config", {}).get("autoencoder")
    if source and Path(source).is_file() and "taesd" not in meta:
        origin = latent_weights_meta(source).get("taesd")
        if origin is not None:
            meta = {**meta, "taesd": origin}
    save_latent_weights(ema, path, meta=meta)


@torch.no_grad()
def validate(model: LatentModel, images: list[ValidationImage]) -> dict[str, float]:
    """Packed PSNR on the centre crops: the RAW autoencoder's reconstruction of the truth, and
    after the diffusion stage the model (one Euler step) with residual and plain decoding, beside
    the analytic baseline at the daylight white."""
    from rawback import metrics
    from rawback.diffusion_settings import DiffusionSettings
    from rawback.features import camera_features
    from rawback.isp.unprocess import UnprocessSettings
    from rawback.latent_codec import decode_tiled, encode_tiled, pad_to_multiple
    from rawback.latent_inference import decode_latents, sample_latents
    from rawback.model.latent import from_perceptual, to_perceptual

    settings = UnprocessSettings(transfer="bt709")  # LibRaw's curve, as the default protocol says
    scores: dict[str, list[float]] = {}
    diffusion = getattr(model, "stage", LatentStage.AUTOENCODER) == LatentStage.DIFFUSION
    device = str(next(model.parameters()).device)
    for image in images:
        h, w = image.truth.shape[:2]
        truth = pad_to_multiple(torch.from_numpy(image.truth).permute(2, 0, 1)[None])
        z = encode_tiled(model.raw_encoder, truth, transform=to_perceptual)
        rebuilt = decode_tiled(model.raw_decoder, z, transform=from_perceptual)[0, :, :h, :w].permute(1, 2, 0)
        scores.setdefault("psnr_autoencoder", []).append(metrics.psnr(rebuilt.numpy(), image.truth))
        crop = image.rgb[image.crop]
        prior = analytic_packed(crop, image.profile, settings)
        scores.setdefault("psnr_analytic", []).append(metrics.psnr(prior, image.truth))
        if not diffusion:
            continue
        latents = sample_latents(
            model,
            torch.from_numpy(np.ascontiguousarray(crop)).permute(2, 0, 1)[None],
            torch.from_numpy(prior).permute(2, 0, 1)[None],
            torch.from_numpy(camera_features(image.profile))[None],
            DiffusionSettings(device=device),
            seed=0,
        )
        for label, residual in (("psnr_model", True), ("psnr_model_plain", False)):
            packed = decode_latents(model, latents, residual_decoding=residual)[0, :, :h, :w].permute(1, 2, 0)
            scores.setdefault(label, []).append(metrics.psnr(packed.numpy(), image.truth))
    return {k: float(np.mean(v)) for k, v in scores.items() if v}


KIND = ModelKind(
    name="latent",
    build=build,
    rebuild=rebuild,
    config_of=config_of,
    loss=LatentStep,
    save=save,
    validate=validate,
)

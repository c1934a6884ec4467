"""The diffusion kind of `rawback train` (rawback.train.kinds): the packed-Bayer denoiser with its
global head, trained on the residual over the analytic prior (docs/training.md)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from rawback.model.config import ModelConfig, preset
from rawback.model.denoiser import RawbackModel, condition
from rawback.model.heads import GLOBAL_OUTPUTS
from rawback.train.config import TrainConfig
from rawback.train.kinds import ModelKind
from rawback.train.validation import ValidationImage, analytic_packed


class TrainingStep(nn.Module):
    """The loss of one batch, as a module so DistributedDataParallel can wrap it."""

    def __init__(self, model: RawbackModel, config: TrainConfig) -> None:
        super().__init__()
        self.model = model
        self.config = config

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        mc, tc = self.model.config, self.config
        truth, prior = batch["truth"], batch["prior"]
        residual = truth - prior
        n = residual.shape[0]
        # EDM training: sigma log-normal, plus a share at sigma_max for the one-step estimate.
        sigma = torch.exp(torch.randn(n, device=truth.device) * tc.p_std + tc.p_mean)
        at_max = torch.rand(n, device=truth.device) < tc.p_sigma_max
        sigma = torch.where(at_max, torch.full_like(sigma, mc.sigma_max), sigma)
        sigma = sigma.clamp(mc.sigma_min, mc.sigma_max)
        noisy = residual + torch.randn_like(residual) * sigma[:, None, None, None]
        predicted, finish = self.model.global_head(batch["thumb"], batch["camera"], batch["exif"])
        error = (predicted.float() - batch["global_target"]) ** 2
        # White balance and exposure (3 numbers) and the tone curve's knots weigh alike, however
        # many knots there are.
        loss_head = error[:, :GLOBAL_OUTPUTS].mean()
        if error.shape[1] > GLOBAL_OUTPUTS:
            loss_head = loss_head + error[:, GLOBAL_OUTPUTS:].mean()
        cond = condition(batch["rgb"], prior)
        # The denoiser's loss also trains the head's finish embedding (one graph, end to end).
        denoised = self.model.denoiser(noisy, sigma, cond, batch["camera"], finish)
        weight = self.model.denoiser.loss_weight(sigma)[:, None, None, None]
        loss_denoise = (weight * (denoised - residual) ** 2).mean()
        loss = loss_denoise + tc.head_weight * loss_head
        return loss, {"loss_denoise": loss_denoise.detach(), "loss_head": loss_head.detach()}


def build(config: TrainConfig, known: tuple[str, ...]) -> RawbackModel:
    from rawback.train.init import initial_model

    if config.init:
        return initial_model(config, known)
    return RawbackModel(dataclasses.replace(preset(config.model), known_cameras=known))


def rebuild(saved: dict) -> RawbackModel:
    return RawbackModel(ModelConfig.from_dict(saved))


def config_of(model: RawbackModel) -> dict:
    return json.loads(model.config.to_json())


def save(ema: RawbackModel, path: Path, meta: dict) -> None:
    from rawback.weights import save_weights

    save_weights(ema, path, meta=meta)


def head_inputs(model: RawbackModel) -> tuple[int, int]:
    return model.config.global_head.thumb_size, model.config.global_head.tone_knots


@torch.no_grad()
def validate(model: RawbackModel, images: list[ValidationImage]) -> dict[str, float]:
    """Packed PSNR of the model (one step) and the analytic baseline on the centre crops."""
    from rawback import metrics
    from rawback.diffusion_settings import DiffusionSettings
    from rawback.inference import estimate_global, reconstruct_packed
    from rawback.isp.unprocess import UnprocessSettings

    settings = UnprocessSettings(transfer="bt709")  # LibRaw's curve, as the default protocol says
    scores: dict[str, list[float]] = {"psnr_model": [], "psnr_analytic": [], "psnr_model_wb_oracle": [],
                                      "psnr_analytic_wb_oracle": []}  # fmt: skip
    for image in images:
        # as `convert` does by default: the head's white balance, exposure left alone
        estimate = estimate_global(model, image.rgb, image.profile, "bt709", image.exposure_value)
        estimate = estimate.with_learned_finish(DiffusionSettings())
        crop = image.rgb[image.crop]
        packed, _, _ = reconstruct_packed(
            model, crop, image.profile, estimate=estimate, settings=settings, bit_depth=8,
            diffusion=DiffusionSettings(device=str(next(model.parameters()).device)), seed=0,
        )  # fmt: skip
        baseline = analytic_packed(crop, image.profile, settings)
        scores["psnr_model"].append(metrics.psnr(packed, image.truth))
        scores["psnr_analytic"].append(metrics.psnr(baseline, image.truth))
        scores["psnr_model_wb_oracle"].append(metrics.wb_oracle_psnr(packed, image.truth))
        scores["psnr_analytic_wb_oracle"].append(metrics.wb_oracle_psnr(baseline, image.truth))
    return {k: float(np.mean(v)) for k, v in scores.items() if v}


KIND = ModelKind(
    name="diffusion",
    build=build,
    rebuild=rebuild,
    config_of=config_of,
    loss=TrainingStep,
    save=save,
    validate=validate,
    head_inputs=head_inputs,
)

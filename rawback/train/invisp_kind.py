"""The invisp kind of `rawback train` (rawback.train.kinds): the Invertible-ISP flow
(rawback.model.invisp) trained as Xing, Qian and Chen train it, on the same data engine as the
diffusion model.

What the flow maps (a difference from the paper, which trains one flow per camera on that camera's
demosaicked RAW): rawback's users bring cameras it never saw, so camera colour is factored out. The
RAW side is the scene-linear sRGB image

    L = srgb_from_camera(profile) @ (white balance gains of the item's applied neutral * camera RGB)

of the item's true RAW patch (bilinear demosaic of the truth mosaic: exact for the real files and
the synthetic scenes alike, and cheap), the photo side is the item's finished photo. At inference
the flow's inverse gives L, and the profile's matrix and the estimated white balance give camera
RGB (rawback.invisp_inference). L is not clipped: what the finish clipped is what the flow must
learn to give back.

The loss is the paper's two terms, each weighted 1:

    L1(f(L), photo) + L1(f^-1(JPEG(clamp(f(L), 0, 1))), L)

with a differentiable JPEG (rawback.model.diff_jpeg) at quality 90, 4:2:0.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from rawback.isp.simulate import camera_to_linear_srgb
from rawback.model.diff_jpeg import jpeg_round_trip
from rawback.model.invisp import FlowConfig, InvertibleIsp
from rawback.train.config import TrainConfig
from rawback.train.data import TrainingPairs
from rawback.train.kinds import ModelKind

FORWARD_WEIGHT = 1.0  # L1(f(L), photo): the forward ISP
INVERSE_WEIGHT = 1.0  # L1(f^-1(JPEG(f(L))), L): the RAW recovered through a stored photo
TRAIN_JPEG_QUALITY = 90


def scene_linear(camera_rgb: np.ndarray, profile, neutral: np.ndarray) -> np.ndarray:
    """(H, W, 3) camera RGB (normalised, not white-balanced) -> scene-linear sRGB, unclipped: the
    exact inverse of rawback.isp.unprocess.raw_from_srgb_matrix(profile, neutral)."""
    return camera_to_linear_srgb(camera_rgb, profile, neutral, clipped=False)


def item(pairs: TrainingPairs, index: int) -> dict[str, torch.Tensor]:
    """Training item `index`: {"photo": (3, p, p) finished photo in [0, 1], "linear": (3, p, p)
    scene-linear sRGB of the true RAW patch}."""
    from rawback.metrics import bilinear_demosaic

    draw = pairs.draw(index)
    camera = bilinear_demosaic(draw.truth, "RGGB").astype(np.float32)
    linear = scene_linear(camera, draw.item.profile, draw.sim.neutral)
    return {
        "photo": torch.from_numpy(np.ascontiguousarray(draw.rgb)).permute(2, 0, 1),
        "linear": torch.from_numpy(np.ascontiguousarray(linear, dtype=np.float32)).permute(2, 0, 1),
    }


class FlowLoss(nn.Module):
    """The paper's two terms on one batch."""

    def __init__(self, model: InvertibleIsp, config: TrainConfig) -> None:
        super().__init__()
        self.model = model
        self.config = config

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        linear, photo = batch["linear"].float(), batch["photo"].float()
        rendered = self.model(linear)
        loss_forward = (rendered - photo).abs().mean()
        stored = jpeg_round_trip(rendered.clamp(0.0, 1.0), TRAIN_JPEG_QUALITY)
        loss_inverse = (self.model.inverse(stored) - linear).abs().mean()
        loss = FORWARD_WEIGHT * loss_forward + INVERSE_WEIGHT * loss_inverse
        return loss, {"loss_forward": loss_forward.detach(), "loss_inverse": loss_inverse.detach()}


def build(config: TrainConfig, known: tuple[str, ...]) -> InvertibleIsp:
    """A new flow, the identity at the start (rawback.model.invisp). It knows no camera."""
    return InvertibleIsp(FlowConfig())


def rebuild(saved: dict) -> InvertibleIsp:
    return InvertibleIsp(FlowConfig.from_dict(saved))


def config_of(model: InvertibleIsp) -> dict:
    return model.config.to_dict()


def save(ema: InvertibleIsp, path: Path, meta: dict) -> None:
    from rawback.invisp_weights import save_flow

    save_flow(ema, path, meta)


@torch.no_grad()
def validate(model: InvertibleIsp, images: list) -> dict[str, float]:
    """Packed PSNR of the flow's inverse and of the analytic baseline on the centre crops, both
    at the daylight white (what `convert` assumes knowing nothing)."""
    from rawback import metrics
    from rawback.invisp_inference import invert_photo, linear_to_mosaic
    from rawback.isp.bayer import pack_rggb
    from rawback.isp.unprocess import UnprocessSettings, raw_from_srgb_matrix
    from rawback.train.validation import analytic_packed

    settings = UnprocessSettings(transfer="bt709")
    scores: dict[str, list[float]] = {"psnr_model": [], "psnr_analytic": []}
    was_training = model.training
    model.eval()
    for image in images:
        crop = image.rgb[image.crop]
        linear = invert_photo(model, crop)
        mosaic = linear_to_mosaic(
            linear, raw_from_srgb_matrix(image.profile, image.profile.daylight_neutral()), "RGGB"
        )
        scores["psnr_model"].append(metrics.psnr(pack_rggb(mosaic, "RGGB"), image.truth))
        baseline = analytic_packed(crop, image.profile, settings)
        scores["psnr_analytic"].append(metrics.psnr(baseline, image.truth))
    model.train(was_training)
    return {k: float(np.mean(v)) for k, v in scores.items() if v}


KIND = ModelKind(
    name="invisp",
    build=build,
    rebuild=rebuild,
    config_of=config_of,
    loss=FlowLoss,
    save=save,
    item=item,
    validate=validate,
)

"""The residual gate: how far to trust the denoiser's residual over the analytic estimate, per photo.

Why: when a photo's finish is one the analytic inverse undoes exactly (a LibRaw/dcraw-style linear
render), the analytic estimate is already right wherever nothing clipped, and an imperfect network
can only add error there; on a contrasty camera JPEG the residual carries the whole tone-curve
correction. A model that is not yet good enough to know this by itself (ours, trained for an hour
on a CPU) is better with an explicit shrinkage weight, fitted after training on simulated finishes
of RAW files the model was not trained on (`rawback calibrate`, rawback.train.gate) to maximise
the mean PSNR per photo, the average the model is scored on.

The output is  prior + max(trust, clipped) * residual:  `trust` in [0, 1] comes from the whole
photo (a thumbnail, the camera, the EXIF exposure and the head's finish embedding), and where the
photo is clipped the residual always applies in full, because there the analytic inverse knows
nothing and restoring highlights is the model's job.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from rawback.model.config import CAMERA_FEATURES, EXIF_FEATURES, IlluminantConfig
from rawback.model.illuminant import pooled, thumbnail_trunk

# A 2x2 block counts as clipped when any channel of any of its pixels reaches 250/255 in the photo,
# grown by 2 packed pixels (the same definition as the "over-exposed" PSNR of rawback eval).
CLIP_THRESHOLD = 250.0 / 255.0
CLIP_DILATION = 2
GATE_CHANNELS = 16
GATE_HIDDEN = 32


class ResidualGate(nn.Module):
    def __init__(self, config: IlluminantConfig) -> None:
        super().__init__()
        c = GATE_CHANNELS
        self.features = thumbnail_trunk(c)
        inputs = 4 * c + CAMERA_FEATURES + EXIF_FEATURES + config.finish_channels
        self.mlp = nn.Sequential(nn.Linear(inputs, GATE_HIDDEN), nn.SiLU(), nn.Linear(GATE_HIDDEN, 1))

    def forward(
        self, thumb: torch.Tensor, camera: torch.Tensor, exif: torch.Tensor, finish: torch.Tensor
    ) -> torch.Tensor:
        """-> (N,) trust logits; sigmoid gives the trust in [0, 1]."""
        return self.mlp(torch.cat([pooled(self.features(thumb)), camera, exif, finish], dim=1))[:, 0]


def clipped_blocks(photo: torch.Tensor, threshold: float = CLIP_THRESHOLD) -> torch.Tensor:
    """(N, 3, 2h, 2w) photo in [0, 1] -> (N, 1, h, w) float mask (1 = clipped 2x2 block)."""
    hot = (F.pixel_unshuffle(photo, 2) >= threshold).amax(dim=1, keepdim=True).to(photo.dtype)
    k = 2 * CLIP_DILATION + 1
    return F.max_pool2d(hot, k, stride=1, padding=CLIP_DILATION)


def gated_residual(residual: torch.Tensor, trust: torch.Tensor, clipped: torch.Tensor) -> torch.Tensor:
    """residual (N, 4, h, w) weighted by max(trust (N,), clipped (N, 1, h, w))."""
    weight = torch.maximum(trust.to(residual.dtype).reshape(-1, 1, 1, 1), clipped.to(residual.dtype))
    return residual * weight

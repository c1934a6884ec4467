"""The model's two per-photo heads, which see a thumbnail of the whole photo, not tiles.

The global head (`GlobalHead`): scene white balance, exposure, tone curve and a finish embedding.

A finished JPEG is white-balanced, so the illuminant is not in its pixels directly; what a model
can learn is a prior from the scene (indoor or daylight look, residual colour casts, brightness
and the EXIF exposure value) and the camera. Tiles of a large photo cannot see any of that, so it
is estimated once per photo here and enters the analytic estimate that conditions the denoiser.

Output, relative to the analytic inverse's daylight assumption: log(R/G) and log(B/G) corrections
of the camera neutral and the log2 exposure gain the finish applied; when configured, the knots of
the finish's inverse tone curve (rawback.isp.tone: exposure lift, filmic or S-curve, highlight
shoulder, which the analytic estimate then undoes); and a "finish embedding"
that tells every U-Net block what kind of finish the whole photo has (a LibRaw-like render needs
almost no correction, a contrasty camera JPEG a lot; a 64-pixel tile alone cannot tell). The last
layer starts at zero, so an untrained head is exactly the analytic baseline.

The residual gate (`ResidualGate`): how far to trust the denoiser's residual over the analytic
estimate, per photo.

Why: when a photo's finish is one the analytic inverse undoes exactly (a LibRaw/dcraw-style linear
render), the analytic estimate is already right wherever nothing clipped, and an imperfect network
can only add error there; on a contrasty camera JPEG the residual carries the whole tone-curve
correction. A model that is not yet good enough to know this by itself (ours, trained for an hour
on a CPU) is better with an explicit shrinkage weight, fitted after training on simulated finishes
of RAW files the model was not trained on (`rawback calibrate`, rawback.train.calibrate) to maximise
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

from rawback.model.config import CAMERA_FEATURES, EXIF_FEATURES, GlobalHeadConfig

THUMB_CHANNELS = 6  # the photo (sRGB-encoded) and its analytic camera-RGB estimate (encoded)
GLOBAL_OUTPUTS = 3  # log R/G correction, log B/G correction, log2 exposure


def thumbnail_trunk(channels: int) -> nn.Sequential:
    """Three stride-2 3x3 convolutions with SiLU (channels, 2 channels, 2 channels wide) over the
    6-channel thumbnail; pooled by the caller."""
    c = channels
    return nn.Sequential(
        nn.Conv2d(THUMB_CHANNELS, c, 3, stride=2, padding=1),
        nn.SiLU(),
        nn.Conv2d(c, 2 * c, 3, stride=2, padding=1),
        nn.SiLU(),
        nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1),
        nn.SiLU(),
    )


def pooled(features: torch.Tensor) -> torch.Tensor:
    """Global mean and max pooling: (N, C, h, w) -> (N, 2C)."""
    return torch.cat([features.mean(dim=(2, 3)), features.amax(dim=(2, 3))], dim=1)


class GlobalHead(nn.Module):
    def __init__(self, config: GlobalHeadConfig) -> None:
        super().__init__()
        self.config = config
        self.outputs = GLOBAL_OUTPUTS + config.tone_knots
        c = config.channels
        self.features = thumbnail_trunk(c)
        self.mlp = nn.Sequential(
            nn.Linear(4 * c + CAMERA_FEATURES + EXIF_FEATURES, config.hidden),
            nn.SiLU(),
            nn.Linear(config.hidden, config.hidden),
            nn.SiLU(),
            nn.Linear(config.hidden, self.outputs + config.finish_channels),
        )
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(
        self, thumb: torch.Tensor, camera: torch.Tensor, exif: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (N, 3 + tone_knots) global corrections and (N, finish_channels) finish embedding."""
        out = self.mlp(torch.cat([pooled(self.features(thumb)), camera, exif], dim=1))
        return out[:, : self.outputs], out[:, self.outputs :]


# A 2x2 block counts as clipped when any channel of any of its pixels reaches 250/255 in the photo,
# grown by 2 packed pixels (the same definition as the "over-exposed" PSNR of rawback eval).
CLIP_THRESHOLD = 250.0 / 255.0
CLIP_DILATION = 2
GATE_CHANNELS = 16
GATE_HIDDEN = 32


class ResidualGate(nn.Module):
    def __init__(self, config: GlobalHeadConfig) -> None:
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

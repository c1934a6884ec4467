"""The global head: scene white balance and exposure from a thumbnail of the whole photo.

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
"""

from __future__ import annotations

import torch
from torch import nn

from rawback.model.config import CAMERA_FEATURES, EXIF_FEATURES, IlluminantConfig

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


class IlluminantHead(nn.Module):
    def __init__(self, config: IlluminantConfig) -> None:
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

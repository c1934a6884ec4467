"""Typed model configuration, saved beside the weights and read back with them.

Presets: "tiny" (tests), "small" (the CPU model we ship), "medium" (the lent GPU's), "base" (for
GPUs with room for its checkpoint). Every field has a default and a comment saying why; a config is
plain JSON so a weights file is never opaque.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

# Condition channels: the JPEG as space-to-depth (3 colours x 2x2 sites) + the analytic estimate
# (packed R, G1, G2, B).
JPEG_CHANNELS = 12
PRIOR_CHANNELS = 4
MOSAIC_CHANNELS = 4
# Camera features: the XYZ->camera matrix nearest D65 (9, normalised) + log daylight neutral (3).
CAMERA_FEATURES = 12
# Global EXIF features for the illuminant head: scene exposure value / 10 and "EV known" flag.
EXIF_FEATURES = 2


@dataclass(frozen=True)
class UNetConfig:
    base_channels: int = 32  # width at full (packed) resolution; cost grows with its square
    channel_mults: tuple[int, ...] = (1, 2, 2)  # width multiplier per level; each level halves H, W
    blocks_per_level: int = 1  # residual blocks per level (encoder; decoder has one more)
    attention_levels: tuple[int, ...] = (2,)  # levels with self-attention (lowest resolutions only)
    head_channels: int = 32  # channels per attention head
    embed_channels: int = 128  # noise-level + camera embedding fed to every block by FiLM
    groups: int = 8  # GroupNorm groups
    dropout: float = 0.0


@dataclass(frozen=True)
class GlobalHeadConfig:
    """The global head and the residual gate (rawback.model.heads)."""

    thumb_size: int = 64  # the whole photo is seen at this size (global statistics only)
    channels: int = 32  # width of the small strided CNN
    hidden: int = 128  # MLP width after pooling
    finish_channels: int = 32  # the "finish embedding" the head passes to every U-Net block (FiLM)
    # Knots of the finish's inverse tone curve the head also predicts (rawback.isp.tone), which the
    # analytic estimate then undoes. 0: no tone curve (weights from before it existed).
    tone_knots: int = 0


@dataclass(frozen=True)
class ModelConfig:
    name: str = "small"
    unet: UNetConfig = field(default_factory=UNetConfig)
    global_head: GlobalHeadConfig = field(default_factory=GlobalHeadConfig)
    # EDM (Karras et al. 2022) constants of the residual the network denoises: the difference
    # between the true packed mosaic and the analytic estimate. sigma_data is its typical std.
    sigma_data: float = 0.03
    sigma_min: float = 0.002  # smallest noise level the network was trained for
    sigma_max: float = 1.0  # largest; sampling starts here (far above the residual's scale)
    # Cameras ("make model", lower case) whose RAWs the model was trained on, for weights trained
    # on RAW files alone: the head's learned white balance (and, under `--residual auto`, the
    # residual outside clipped areas) is used for these only, because a few cameras' typical light
    # says nothing about a camera never seen. Empty: every camera, as for weights trained on the
    # synthetic scenes' hundreds of cameras, which read the camera from its matrix. Filled in by
    # `rawback train`.
    known_cameras: tuple[str, ...] = ()
    # A residual gate (rawback.model.heads): a per-photo trust in the denoiser's residual, fitted
    # after training by `rawback calibrate`. False: the residual is always applied in full.
    residual_gate: bool = False

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    def knows(self, camera: str) -> bool:
        return not self.known_cameras or camera_key(camera) in self.known_cameras

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        unet = UNetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in data["unet"].items()})
        # "illuminant": the global head's name in weights written before it was renamed.
        head = GlobalHeadConfig(**data.get("global_head", data.get("illuminant")))
        rest = {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in data.items()
            if k not in ("unet", "global_head", "illuminant")
        }
        return cls(unet=unet, global_head=head, **rest)


PRESETS: dict[str, ModelConfig] = {
    # For unit tests: about 51 thousand parameters, runs in milliseconds.
    "tiny": ModelConfig(
        name="tiny",
        unet=UNetConfig(
            base_channels=8, channel_mults=(1, 2), attention_levels=(1,), head_channels=8,
            embed_channels=16, groups=4,
        ),
        global_head=GlobalHeadConfig(thumb_size=16, channels=8, hidden=16, finish_channels=8, tone_knots=4),
    ),
    # The shipped CPU model: about 0.2 MFLOP per packed pixel, a 12 MP photo in well under 2 min.
    "small": ModelConfig(name="small", global_head=GlobalHeadConfig(tone_knots=16)),
    # The lent GPU's model (docs/training.md, "Training on a lent GPU"): twice small's FLOPs per pixel
    # (64 channels at every level) for a third more parameters, so that its checkpoint (model, EMA
    # and AdamW moments, 16 bytes a parameter: 27 MiB), the scene pack and the repository travel
    # together in the 64 MiB a device call carries. Training there is input-bound, so FLOPs are free.
    "medium": ModelConfig(
        name="medium",
        unet=UNetConfig(
            base_channels=64, channel_mults=(1, 1, 1), attention_levels=(2,), head_channels=32,
            embed_channels=128, groups=8,
        ),
        global_head=GlobalHeadConfig(
            thumb_size=96, channels=48, hidden=192, finish_channels=48, tone_knots=16
        ),
    ),
    # For GPU training: wider, deeper, attention at the two lowest levels. Its checkpoint (359 MiB)
    # is too large to travel to and from a lent GPU (use medium there).
    "base": ModelConfig(
        name="base",
        unet=UNetConfig(
            base_channels=64, channel_mults=(1, 2, 3, 4), blocks_per_level=2, attention_levels=(2, 3),
            head_channels=64, embed_channels=256, groups=32,
        ),
        global_head=GlobalHeadConfig(
            thumb_size=96, channels=64, hidden=256, finish_channels=64, tone_knots=16
        ),
    ),
}  # fmt: skip


def camera_key(camera: str) -> str:
    """'Canon  PowerShot G2' -> 'canon powershot g2': how known cameras are compared."""
    return " ".join(camera.lower().split())


def preset(name: str) -> ModelConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown model preset {name!r}; available: {', '.join(PRESETS)}") from None

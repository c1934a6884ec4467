"""What every inversion method gets and gives (rawback.methods runs them by name), and the white
balance a method starts from when the photo says nothing better."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

import numpy as np

from rawback.camera import CameraProfile
from rawback.diffusion_settings import DiffusionSettings
from rawback.isp import color
from rawback.isp.unprocess import UnprocessSettings, neutral_for_illuminant

if TYPE_CHECKING:  # torch is imported only by the methods that run it
    from rawback.device_mosaic import DeviceMosaic


class NeutralSource(Enum):
    """Where a photo's white balance came from, in the order of trust."""

    GIVEN = "given"  # the user's --white-balance (or evaluation's oracle row)
    MAKER_NOTES = "maker notes"  # the camera's record of the white balance it applied
    EXIF = "EXIF"  # the camera's EXIF LightSource
    MODEL = "model"  # the learned head's estimate from the pixels
    DAYLIGHT = "daylight"  # nothing known: D65


@dataclass(frozen=True)
class InverseRequest:
    """What a method gets. Never the ground truth: `neutral` is set only when the user fixes the
    white balance (or for evaluation's oracle reference row)."""

    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1], sRGB-encoded, stored orientation
    bit_depth: int  # 8 or 16
    profile: CameraProfile
    settings: UnprocessSettings = field(default_factory=UnprocessSettings)
    neutral: np.ndarray | None = None  # fixed scene white (camera RGB, green = 1)
    # The white balance the camera applied, from its maker notes, in this profile's camera RGB
    # (rawback.white_balance); `as_shot_note` says where it came from.
    as_shot: np.ndarray | None = None
    as_shot_note: str = ""
    light_source: int | None = None  # EXIF LightSource hint (a code in color.ILLUMINANT_CCT)
    exposure_value: float | None = None  # scene EV from EXIF, a cue for the learned illuminant
    diffusion: DiffusionSettings = field(default_factory=DiffusionSettings)
    # Told the fraction of the work done, 0..1, during a long inversion (the learned method); for
    # progress bars only.
    progress: Callable[[float], None] | None = field(default=None, compare=False, repr=False)
    # The caller takes a mosaic left on the GPU (`convert`, which restores highlights and quantises
    # there): a method that ran on one may then return a rawback.device_mosaic.DeviceMosaic.
    mosaic_on_device: bool = False


@dataclass(frozen=True)
class InverseResult:
    # (H, W) float32 in [0, 1], CFA of the profile, 0 = black, 1 = white level; a DeviceMosaic only
    # where the request's `mosaic_on_device` allowed it
    mosaic: np.ndarray | DeviceMosaic
    neutral: np.ndarray  # the scene white the result assumes; written as AsShotNeutral
    notes: tuple[str, ...] = ()
    exposure: float = 1.0  # the exposure gain of the finish the method undid (1 = none)
    neutral_source: NeutralSource | None = None  # where `neutral` came from, for -v and summaries
    tone_curve_undone: bool = False  # a finish's tone curve (measured or estimated) was undone
    # (H, W) bool: sites where the method put its own value above what the photo states (the
    # learned residual); where the photo is clipped they keep it (rawback.isp.highlights). None: none.
    reconstructed: np.ndarray | None = None


Method = Callable[[InverseRequest], InverseResult]


@dataclass(frozen=True)
class NeutralEstimate:
    neutral: np.ndarray  # camera RGB of the scene white, green = 1
    source: NeutralSource
    note: str  # what -v says


def estimate_neutral(request: InverseRequest) -> NeutralEstimate:
    """The white balance a photo states or implies, without looking at its pixels.

    A finished JPEG is already white-balanced, so its pixels say little about the scene
    illuminant in camera space. The estimate is therefore the one given, else the one the camera
    applied (its maker notes), else the EXIF LightSource when the camera recorded one other than
    daylight (interpolating between the profile's matrices), else daylight (D65); the learned
    method puts its own estimate before daylight (rawback.inference).
    """
    if request.neutral is not None:
        return NeutralEstimate(
            np.asarray(request.neutral, dtype=np.float64), NeutralSource.GIVEN, "white balance given"
        )
    if request.as_shot is not None:
        return NeutralEstimate(
            np.asarray(request.as_shot, dtype=np.float64), NeutralSource.MAKER_NOTES, request.as_shot_note
        )
    code = request.light_source
    if code in color.ILLUMINANT_CCT and code not in (color.D65, 1, 4, 9):
        cct = color.ILLUMINANT_CCT[code]
        return NeutralEstimate(
            neutral_for_illuminant(request.profile, cct),
            NeutralSource.EXIF,
            f"white balance from EXIF ({cct:.0f} K)",
        )
    return NeutralEstimate(
        request.profile.daylight_neutral(), NeutralSource.DAYLIGHT, "white balance: daylight estimate"
    )

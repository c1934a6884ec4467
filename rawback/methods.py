"""Inversion methods by name: what turns an sRGB photo into a normalised mosaic.

A method is a plain function with one signature, so `convert`, `batch` and `eval` can swap them
by name. "analytic" is the Brooks et al. inverse (rawback.isp.unprocess).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rawback.camera import CameraProfile
from rawback.isp import color
from rawback.isp.unprocess import UnprocessSettings, neutral_for_illuminant, unprocess


@dataclass(frozen=True)
class InverseRequest:
    """What a method gets. Never the ground truth: `neutral` is set only when the user fixes the
    white balance (or for evaluation's oracle reference row)."""

    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1], sRGB-encoded, stored orientation
    bit_depth: int  # 8 or 16
    profile: CameraProfile
    settings: UnprocessSettings = field(default_factory=UnprocessSettings)
    neutral: np.ndarray | None = None  # fixed scene white (camera RGB, green = 1)
    light_source: int | None = None  # EXIF LightSource hint (a code in color.ILLUMINANT_CCT)


@dataclass(frozen=True)
class InverseResult:
    mosaic: np.ndarray  # (H, W) float32 in [0, 1], CFA of the profile, 0 = black, 1 = white level
    neutral: np.ndarray  # the scene white the result assumes; written as AsShotNeutral
    notes: tuple[str, ...] = ()


Method = Callable[[InverseRequest], InverseResult]


def estimate_neutral(request: InverseRequest) -> tuple[np.ndarray, str]:
    """The analytic inverse's illuminant estimate.

    A finished JPEG is already white-balanced, so its pixels say nothing about the scene
    illuminant in camera space. The estimate is therefore the EXIF LightSource when the camera
    recorded one (interpolating between the profile's matrices), else daylight (D65).
    """
    if request.neutral is not None:
        return np.asarray(request.neutral, dtype=np.float64), "white balance given"
    code = request.light_source
    if code in color.ILLUMINANT_CCT and code not in (color.D65, 1, 4, 9):
        cct = color.ILLUMINANT_CCT[code]
        return neutral_for_illuminant(request.profile, cct), f"white balance from EXIF ({cct:.0f} K)"
    return request.profile.daylight_neutral(), "white balance: daylight estimate"


def analytic(request: InverseRequest) -> InverseResult:
    neutral, note = estimate_neutral(request)
    mosaic = unprocess(request.rgb, request.profile, neutral, request.settings, bit_depth=request.bit_depth)
    return InverseResult(mosaic=mosaic, neutral=neutral, notes=(note,))


METHODS: dict[str, Method] = {"analytic": analytic}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        known = ", ".join(sorted(METHODS))
        raise ValueError(f"unknown method {name!r}; available: {known}") from None

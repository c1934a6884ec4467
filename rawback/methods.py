"""Inversion methods by name: what turns an sRGB photo into a normalised mosaic.

A method is a plain function with one signature, so `convert`, `batch` and `eval` can swap them
by name. "analytic" is the Brooks et al. inverse (rawback.isp.unprocess).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rawback.camera import CameraProfile
from rawback.isp import color
from rawback.isp.unprocess import UnprocessSettings, measured_finish, neutral_for_illuminant, unprocess

# The samplers of rawback.sampling, by name (kept here so option checks need no torch import).
SAMPLER_NAMES = ("euler", "heun", "dpmpp-2m", "one-step")
PRECISIONS = ("auto", "fp32", "bf16")
# Where the denoiser's residual applies (--residual; rawback.inference.residual_trust):
#   auto     the residual gate's trust on cameras the model was trained on; only where the photo
#            is clipped on any other camera (leave-one-camera-out: elsewhere the residual did not
#            carry over to an unseen camera, models/README.md)
#   gate     the residual gate's trust on every camera
#   full     everywhere, in full (the network as trained, no gate)
#   clipped  only where the photo is clipped
RESIDUAL_MODES = ("auto", "gate", "full", "clipped")
DEVICE_NAMES = re.compile(r"auto|cpu|cuda(:\d+)?|mps")  # --device of every command
# Default (tile side in photo pixels, tiles per network call) by device. On the CPU, measured with
# bench/bench_diffusion.py on a 2-core EPYC (12 MP convert): small tiles one at a time keep each
# tile's activations in cache; 320 px took 13.2 s, 256 px 13.5 s, 512 px 17.0 s, 512 px in
# fours 21.8 s, at the same PSNR to 0.05 dB on the validation files (models/README.md). On a GPU
# larger batches fill the device; no GPU was at hand to tune it, so it keeps the old default.
TILING = {"cpu": (320, 1), "gpu": (512, 4)}


@dataclass(frozen=True)
class DiffusionSettings:
    """How the diffusion method samples (rawback.sampling, rawback.tiling). Plain data, no torch."""

    weights: str | None = None  # weights file; None = the bundled default model
    sampler: str = "euler"  # "euler", "heun", "dpmpp-2m" or "one-step" (rawback.sampling)
    steps: int = 1  # noise levels of the Karras schedule (ignored by "one-step")
    seed: int = 0  # with the photo's pixels, seeds the noise: same seed, same DNG
    ensemble: int = 1  # average this many samples (noise seeds: the photo's seed + 0 .. K-1)
    tile: int | None = None  # tile side in photo pixels (even); None: the device's (TILING)
    overlap: int = 64  # tile overlap in photo pixels (even)
    tile_batch: int | None = None  # tiles per network call; None: the device's (TILING)
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
    # The network's arithmetic: "fp32", "bf16" (autocast), or "auto": bf16 on CUDA and on CPUs
    # that compute in bf16 natively, else fp32 (rawback.inference.uses_bf16).
    precision: str = "auto"
    # Divide the estimate by the exposure gain the global head thinks the finish applied. Off by
    # default: measured on LibRaw renders, a wrong guess costs more than a right one gains
    # (models/README.md).
    undo_exposure: bool = False
    # Undo the finish's tone curve the global head estimates (weights with `tone_knots` > 0). Off
    # by default: measured on LibRaw renders, which have no curve, a wrong guess costs more than
    # it gains there, while on camera-like finishes it gains several dB (models/README.md).
    undo_tone_curve: bool = False
    residual: str = "auto"  # where the denoiser's residual applies (RESIDUAL_MODES)

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLER_NAMES:
            raise ValueError(f"unknown sampler {self.sampler!r}; available: {', '.join(SAMPLER_NAMES)}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"--precision must be {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.residual not in RESIDUAL_MODES:
            raise ValueError(f"--residual must be {', '.join(RESIDUAL_MODES)}, not {self.residual!r}")
        if not DEVICE_NAMES.fullmatch(self.device):
            raise ValueError(f"--device must be auto, cpu, cuda, cuda:N or mps, not {self.device!r}")
        if self.weights is not None and not Path(self.weights).is_file():
            raise ValueError(f"{self.weights}: model weights not found")
        if self.steps < 1 or self.ensemble < 1 or (self.tile_batch is not None and self.tile_batch < 1):
            raise ValueError("--steps, --ensemble and --tile-batch must be at least 1")
        # An explicit --tile is checked as given; with the device's default tile, --overlap must
        # fit below the smallest of them.
        tile = self.tile if self.tile is not None else min(t for t, _ in TILING.values())
        if tile % 2 or self.overlap % 2 or tile < 32 or not 0 <= self.overlap < tile:
            raise ValueError(
                "--tile must be even and >= 32, --overlap even and below it "
                f"(got {self.tile if self.tile is not None else 'the default'}, {self.overlap})"
            )

    def tiling(self, device_type: str) -> tuple[int, int]:
        """(tile, tile_batch) on a device of this type ("cpu", "cuda", "mps"): the ones asked
        for, else the device's defaults."""
        default_tile, default_batch = TILING["cpu" if device_type == "cpu" else "gpu"]
        return (
            self.tile if self.tile is not None else default_tile,
            self.tile_batch if self.tile_batch is not None else default_batch,
        )


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
    exposure_value: float | None = None  # scene EV from EXIF, a cue for the learned illuminant
    diffusion: DiffusionSettings = field(default_factory=DiffusionSettings)
    # Told the fraction of the work done, 0..1, during a long inversion (the learned method); for
    # progress bars only.
    progress: Callable[[float], None] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class InverseResult:
    mosaic: np.ndarray  # (H, W) float32 in [0, 1], CFA of the profile, 0 = black, 1 = white level
    neutral: np.ndarray  # the scene white the result assumes; written as AsShotNeutral
    notes: tuple[str, ...] = ()
    exposure: float = 1.0  # the exposure gain of the finish the method undid (1 = none)


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
    finish = measured_finish(request.profile, request.settings)
    settings, curve, saturation = request.settings, None, 1.0
    if finish is not None:
        settings, curve, saturation = finish.decoding(settings), finish.curve, finish.saturation
    mosaic = unprocess(
        request.rgb, request.profile, neutral, settings, bit_depth=request.bit_depth,
        curve=curve, saturation=saturation,
    )  # fmt: skip
    notes = (note,) if finish is None else (note, measured_finish_note(request.profile))
    return InverseResult(mosaic=mosaic, neutral=neutral, notes=notes)


def measured_finish_note(profile: CameraProfile) -> str:
    what = "tone curve"
    if profile.saturation not in (None, 1.0):
        what += f" and saturation ({profile.saturation:.2f})"
    return f"{what} measured in profile {profile.name} undone"


def diffusion(request: InverseRequest) -> InverseResult:
    """The learned inverter (rawback.inference); torch is imported only when it runs."""
    from rawback.inference import invert_with_model

    return invert_with_model(request)


METHODS: dict[str, Method] = {"analytic": analytic, "diffusion": diffusion}


def get_method(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        known = ", ".join(sorted(METHODS))
        raise ValueError(f"unknown method {name!r}; available: {known}") from None

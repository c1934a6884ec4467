"""The tone finish a photo is inverted through, decided here and nowhere else.

A camera JPEG is the scene after a finish: the camera's tone curve, an exposure lift, saturation.
What the inverse undoes of it comes from, in this order of trust:
  1. a finish measured from the camera's own RAW+JPEG pairs (`rawback profile curve`) and kept in
     its profile, for photos of the renderer it was measured on (`tone_curve_for`);
  2. the learned global head's estimate of the curve and exposure of this one photo: the curve
     by default for a photo whose EXIF names a camera and no raw converter or editor
     (`undo_tone_curve_for`), else when the user asks (`--undo-tone-curve`), the exposure only
     when asked (`--undo-exposure`; `learned_finish`);
  3. nothing: only the transfer curve is decoded.
rawback.methods (analytic) and rawback.inference (diffusion) apply what these functions decide.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace

import numpy as np

from rawback.camera import CameraProfile, shadowed_finish
from rawback.choices import ToneCurve
from rawback.diffusion_settings import DiffusionSettings
from rawback.errors import ProfileError
from rawback.io.exif import ExifData
from rawback.isp import tone
from rawback.isp.unprocess import UnprocessSettings, unprocess

MID_GREY = 0.18  # the JPEG's linear value at which a measured curve's exposure gain is reported


def tone_curve_for(exif: ExifData, profile: CameraProfile, requested: str) -> tuple[str, str | None]:
    """The tone curve setting to invert a photo with, and a note when it differs from the request.

    A profile's measured finish belongs to the renderer of the JPEGs it was measured on (the
    camera's engine, or a raw converter such as Lightroom): "auto" leaves it out for a photo whose
    EXIF says another program rendered it, or none did (rawback.provenance says why); "measured"
    insists, and is an error for a profile without one.
    """
    from rawback.provenance import describe, rendering_program

    program = rendering_program(exif)
    family = None if program is None else program[0]
    if profile.tone_curve is None:
        if requested == ToneCurve.MEASURED:
            raise ProfileError(
                f"--tone-curve measured: profile {profile.name} has no measured tone curve "
                "(`rawback profile curve` measures one)"
            )
        shipped = shadowed_finish(profile, exif.make, exif.model) if requested == ToneCurve.AUTO else None
        if shipped is not None and shipped.finish_applies_to(family):
            how = (
                f"rename or delete the user profile {profile.name}, which replaces it"
                if shipped.name == profile.name
                else f"--camera {shipped.name} uses it"
            )
            return requested, (
                f"no finish was undone: profile {profile.name} has none, while the built-in "
                f"{shipped.name} for this camera carries one ({how})"
            )
        return requested, None
    if requested != ToneCurve.AUTO:
        return requested, None
    if profile.finish_applies_to(family):
        return requested, None
    made_by = "names no program" if program is None else f"names {program[1]!r}"
    note = (
        f"the finish in profile {profile.name} was not undone: it was measured on JPEGs of "
        f"{describe(profile.finish_renderer)}, and this photo's EXIF {made_by} "
        "(--tone-curve measured undoes it anyway)"
    )
    return ToneCurve.NONE.value, note


def undo_tone_curve_for(exif: ExifData, tone_curve: str, settings: DiffusionSettings) -> DiffusionSettings:
    """`settings` with "auto" `--undo-tone-curve` (None) decided for one photo, and why; a True or
    False the user gave is kept.

    Measured on real camera JPEGs (docs/experiments.md#the-tone-curve-of-camera-jpegs-by-provenance):
    undoing the head's estimate of the curve gains several dB packed PSNR on a camera engine's
    JPEG, and costs about 3 dB on a flat render (LibRaw's), whose curve the head still guesses. A
    camera's own JPEG is known by its EXIF: it names a camera (Make or Model) and no program among
    its Software values (rawback.provenance). A raw converter's or editor's export has that
    program's tones, often flat, and a photo whose EXIF names no camera may be anything, so both
    keep the curve. `tone_curve` is the setting `tone_curve_for` returned: anything but "auto"
    (--tone-curve none or smoothstep, or a measured finish left out for this photo's renderer,
    which tone_curve_for's note explains) keeps it too."""
    from rawback.provenance import rendering_program

    if settings.undo_tone_curve is not None:
        return settings
    if tone_curve != ToneCurve.AUTO:
        return replace(settings, undo_tone_curve=False)
    program = rendering_program(exif)
    camera = camera_named(exif)
    if program is not None:
        undo, reason = False, f"EXIF Software names {program[1]!r} ({program[0]}), whose tones these are"
    elif camera is None:
        undo, reason = False, "its EXIF names no camera, so it may be a flat render"
    else:
        undo, reason = True, f"EXIF names the camera ({camera}) and no raw converter or editor"
    return replace(settings, undo_tone_curve=undo, tone_curve_reason=reason)


def camera_named(exif: ExifData) -> str | None:
    """The camera EXIF Make and Model name, as one text, or None: the model alone when it names
    the maker already ("NIKON CORPORATION", "NIKON D90" -> "NIKON D90")."""
    make, model = (exif.make or "").strip(), (exif.model or "").strip()
    maker = make.split()[0].lower() if make else ""
    if maker in model.lower().split() or model.lower().startswith(make.lower()):
        return model or None
    return f"{make} {model}".strip()


@dataclass(frozen=True)
class MeasuredFinish:
    """A camera JPEG engine's global finish as `rawback profile curve` measured it."""

    curve: np.ndarray  # knots of the inverse tone curve (rawback.isp.tone)
    saturation: float = 1.0  # added about luminance after the curve (1 = none)

    @staticmethod
    def decoding(settings: UnprocessSettings) -> UnprocessSettings:
        """The curve was measured against sRGB decoding of the camera's JPEG, so it holds the
        camera's whole response: the photo is decoded with the sRGB curve whatever `--transfer`
        says, and the measured curve does the rest."""
        return dataclasses.replace(settings, transfer="srgb")


def measured_finish(profile: CameraProfile, settings: UnprocessSettings) -> MeasuredFinish | None:
    """The profile's measured finish when `settings` leave the tone curve to the profile ("auto",
    "measured", after `tone_curve_for`) and it has one, else None."""
    if settings.tone_curve not in (ToneCurve.AUTO, ToneCurve.MEASURED) or profile.tone_curve is None:
        return None
    return MeasuredFinish(np.asarray(profile.tone_curve, dtype=np.float32), profile.saturation or 1.0)


def unprocess_with_finish(
    rgb: np.ndarray, profile: CameraProfile, neutral: np.ndarray, settings: UnprocessSettings, bit_depth: int
) -> tuple[np.ndarray, MeasuredFinish | None]:
    """The analytic inverse of a photo (rawback.isp.unprocess, mosaic on the profile's CFA), with
    the profile's measured finish undone when `settings` leave the tone curve to it; and that
    finish (None: none was undone)."""
    finish = measured_finish(profile, settings)
    curve, saturation = None, 1.0
    if finish is not None:
        settings, curve, saturation = finish.decoding(settings), finish.curve, finish.saturation
    mosaic = unprocess(
        rgb, profile, neutral, settings, bit_depth=bit_depth, curve=curve, saturation=saturation
    )
    return mosaic, finish


def measured_finish_note(profile: CameraProfile) -> str:
    what = "tone curve"
    if profile.saturation not in (None, 1.0):
        what += f" and saturation ({profile.saturation:.2f})"
    return f"{what} measured in profile {profile.name} undone"


@dataclass(frozen=True)
class UndoneFinish:
    """What the learned method's prior undoes of a photo's finish."""

    curve: np.ndarray | None = None  # knots of the inverse tone curve; None: the transfer curve only
    exposure: float = 1.0  # gain divided out of the prior (1 with a curve: a curve carries its gain)
    saturation: float = 1.0  # the finish's saturation after its curve (measured finishes only)
    undone_exposure: float = 1.0  # the finish's exposure gain taken out, as reported
    notes: tuple[str, ...] = ()  # what -v says


def learned_finish(curve: np.ndarray | None, exposure: float, settings: DiffusionSettings) -> UndoneFinish:
    """The global head's estimate of the finish (`curve`, `exposure`), as `settings` ask to undo
    it: the tone curve when `undo_tone_curve` is True (the user's --undo-tone-curve, or "auto"
    decided for a camera's JPEG by `undo_tone_curve_for`; an undecided "auto" keeps it), the
    exposure only with --undo-exposure (docs/model.md). A curve carries the exposure in it, so
    with a curve the gain is 1 and, when the exposure is left alone, the curve keeps its shape but
    gives back the exposure the head estimated."""
    notes: list[str] = []
    undo_curve = bool(settings.undo_tone_curve)
    why = settings.tone_curve_reason
    if undo_curve and curve is not None:
        notes.append(
            "tone curve of the finish estimated by the model and undone"
            + (f": {why} (--keep-tone-curve keeps it)" if why else "")
        )
    elif undo_curve:
        notes.append(
            f"tone curve kept: these weights estimate none ({why})"
            if why
            else "--undo-tone-curve: these weights estimate no tone curve"
        )
    elif why and curve is not None:
        notes.append(f"tone curve of the finish kept: {why} (--undo-tone-curve undoes the model's estimate)")
    stops = float(np.log2(exposure))
    if settings.undo_exposure and abs(stops) > 0.05:
        notes.append(f"exposure of the finish estimated at {stops:+.2f} stop and undone")
    undone = exposure if settings.undo_exposure else 1.0
    if undo_curve and curve is not None:
        shape = curve if settings.undo_exposure else curve + np.float32(np.log(exposure))
        return UndoneFinish(curve=shape, exposure=1.0, undone_exposure=undone, notes=tuple(notes))
    return UndoneFinish(curve=None, exposure=undone, undone_exposure=undone, notes=tuple(notes))


def model_finish(
    profile: CameraProfile,
    settings: UnprocessSettings,
    estimated_curve: np.ndarray | None,
    estimated_exposure: float,
    diffusion: DiffusionSettings,
) -> tuple[UndoneFinish, UnprocessSettings]:
    """The finish the learned method undoes, and the decoding settings of the photo.

    A curve measured from the camera's own RAW+JPEG pairs beats the head's guess from one photo
    (the guess cannot tell a filmic lift from a bright scene): it replaces the estimated curve and
    exposure, which it carries in it."""
    measured = measured_finish(profile, settings)
    if measured is None:
        return learned_finish(estimated_curve, estimated_exposure, diffusion), settings
    notes = [measured_finish_note(profile)]
    asked = diffusion.undo_tone_curve and diffusion.tone_curve_reason is None  # not "auto"'s decision
    if asked or diffusion.undo_exposure:
        notes.append("--undo-tone-curve/--undo-exposure: the profile's measured curve is used instead")
    undone_exposure = float(np.exp(-tone.log_gain(np.array([MID_GREY]), measured.curve)[0]))
    undone = UndoneFinish(
        curve=measured.curve,
        exposure=1.0,
        saturation=measured.saturation,
        undone_exposure=undone_exposure,
        notes=tuple(notes),
    )
    return undone, measured.decoding(settings)

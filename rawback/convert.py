"""Convert photos to DNG: plain functions that the CLI, batch mode and tests call."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rawback.camera import CameraProfile, choose_profile, shadowed_finish
from rawback.errors import ProfileError, UsageError
from rawback.io.atomic import check_writable
from rawback.io.exif import ExifData
from rawback.isp.unprocess import UnprocessSettings, to_counts
from rawback.methods import DiffusionSettings, InverseRequest, get_method

COMPRESSIONS = ("ljpeg", "none")


@dataclass(frozen=True)
class ConvertOptions:
    method: str = "diffusion"  # inversion method, see rawback.methods.METHODS
    camera: str | None = None  # --camera NAME|PATH; None = match EXIF Make/Model, else generic
    transfer: str = "srgb"  # transfer curve of the input photos
    # Tone curve to undo; "auto": the profile's measured finish, if any, for photos from the renderer
    # it was measured on; "measured": that finish whatever rendered the photo (tone_curve_for).
    tone_curve: str = "auto"
    white_balance: str = "auto"  # "auto" (EXIF LightSource, else daylight) or "R,G,B" neutral
    compression: str = "ljpeg"  # "ljpeg" (lossless JPEG tiles) or "none"
    preview: bool = True  # embed a JPEG preview (RawTherapee matches its tone curve to it)
    overwrite: bool = False
    diffusion: DiffusionSettings = field(default_factory=DiffusionSettings)  # sampler, steps, seed, tiles

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise UsageError(f"--compression must be one of {', '.join(COMPRESSIONS)}")
        UnprocessSettings(self.transfer, self.tone_curve)  # validates names
        parse_white_balance(self.white_balance)


def parse_white_balance(text: str) -> np.ndarray | None:
    """'auto' -> None; 'R,G,B' -> that camera neutral, normalised to green = 1."""
    if text == "auto":
        return None
    try:
        values = np.array([float(v) for v in text.split(",")], dtype=np.float64)
    except ValueError:
        values = np.array([])
    if values.shape != (3,) or np.any(values <= 0) or not np.all(np.isfinite(values)):
        raise UsageError(f"--white-balance must be 'auto' or a camera neutral 'R,G,B', not {text!r}")
    return values / values[1]


@dataclass(frozen=True)
class ConvertResult:
    source: Path
    output: Path
    profile: str
    megapixels: float
    seconds: float
    notes: tuple[str, ...] = field(default_factory=tuple)
    warnings: tuple[str, ...] = field(default_factory=tuple)  # shown without --verbose: damaged input


@dataclass(frozen=True)
class Inversion:
    counts: np.ndarray  # (H, W) uint16 raw counts in the profile's CFA
    neutral: np.ndarray
    profile: CameraProfile
    notes: tuple[str, ...]


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
        if requested == "measured":
            raise ProfileError(
                f"--tone-curve measured: profile {profile.name} has no measured tone curve "
                "(`rawback profile curve` measures one)"
            )
        shipped = shadowed_finish(profile, exif.make, exif.model) if requested == "auto" else None
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
    if requested != "auto":
        return requested, None
    if profile.finish_applies_to(family):
        return requested, None
    made_by = "names no program" if program is None else f"names {program[1]!r}"
    note = (
        f"the finish in profile {profile.name} was not undone: it was measured on JPEGs of "
        f"{describe(profile.finish_renderer)}, and this photo's EXIF {made_by} "
        "(--tone-curve measured undoes it anyway)"
    )
    return "none", note


def invert_image(
    image, options: ConvertOptions, progress: Callable[[float], None] | None = None
) -> Inversion:
    """Run the chosen method on a decoded photo: raw counts, the neutral used, and notes.
    `progress` is told the fraction of the inversion done (by the learned method)."""
    from rawback.io.exif import exposure_value

    profile, reason = choose_profile(options.camera, image.exif.make, image.exif.model)
    tone_curve, tone_note = tone_curve_for(image.exif, profile, options.tone_curve)
    request = InverseRequest(
        rgb=image.rgb,
        bit_depth=image.bit_depth,
        profile=profile,
        settings=UnprocessSettings(options.transfer, tone_curve),
        neutral=parse_white_balance(options.white_balance),
        light_source=image.exif.light_source,
        exposure_value=exposure_value(image.exif),
        diffusion=options.diffusion,
        progress=progress,
    )
    result = get_method(options.method)(request)
    notes = (reason, *((tone_note,) if tone_note else ()), *result.notes, *(image.exif.warnings or ()))
    if image.color_note:
        notes = (*notes, image.color_note)
    notes = (*notes, *image.notes)
    return Inversion(to_counts(result.mosaic, profile), result.neutral, profile, notes)


def convert_file(
    source: Path, output: Path, options: ConvertOptions, progress: Callable[[float], None] | None = None
) -> ConvertResult:
    """Convert one photo to a DNG at `output`. Raises RawbackError subclasses on bad input.
    `progress` is told the fraction of the inversion done, for a progress bar."""
    from rawback.io.dng import MIN_SIDE, write_dng
    from rawback.io.image import read_image

    start = time.perf_counter()
    check_writable(output, overwrite=options.overwrite)  # fail before the expensive part
    image = read_image(source, min_side=MIN_SIDE)  # LibRaw and dcraw read no smaller raw file
    inversion = invert_image(image, options, progress)
    preview = np.rint(image.rgb * 255).astype(np.uint8) if options.preview else None
    write_dng(
        output,
        inversion.counts,
        profile=inversion.profile,
        as_shot_neutral=inversion.neutral,
        orientation=image.exif.orientation,
        exif=image.exif,
        preview=preview,
        compression=options.compression,
        overwrite=options.overwrite,
    )
    h, w = inversion.counts.shape
    return ConvertResult(
        source=source,
        output=output,
        profile=inversion.profile.name,
        megapixels=h * w / 1e6,
        seconds=time.perf_counter() - start,
        notes=inversion.notes,
        warnings=image.warnings,
    )

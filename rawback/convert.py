"""Convert photos to DNG: plain functions that the CLI, batch mode and tests call."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rawback.camera import CameraProfile, ChosenProfile, ProfileSource, select_profile
from rawback.choices import Compression, Method, ToneCurve, Transfer
from rawback.diffusion_settings import DiffusionSettings
from rawback.errors import UsageError
from rawback.finish import tone_curve_for, undo_tone_curve_for
from rawback.inverse import InverseRequest, InverseResult, NeutralSource
from rawback.io import makernotes
from rawback.io.atomic import check_writable
from rawback.io.dng_identity import DngIdentity, decide_identity
from rawback.io.exif import camera_display_name
from rawback.io.makernotes import MakerNoteReading
from rawback.isp.highlights import Highlights, restore_clipping
from rawback.isp.unprocess import UnprocessSettings, to_counts
from rawback.methods import get_method
from rawback.white_balance import camera_white


@dataclass(frozen=True)
class ConvertOptions:
    method: str = Method.DIFFUSION.value  # inversion method, see rawback.methods.METHODS
    camera: str | None = None  # --camera NAME|PATH; None = match EXIF Make/Model, else generic
    transfer: str = Transfer.SRGB.value  # transfer curve of the input photos
    # Tone curve to undo; "auto": the profile's measured finish, if any, for photos from the renderer
    # it was measured on; "measured": that finish whatever rendered the photo (rawback.finish).
    tone_curve: str = ToneCurve.AUTO.value
    white_balance: str = "auto"  # "auto" (maker notes, EXIF LightSource, the model, daylight) or "R,G,B"
    compression: str = Compression.LJPEG.value  # "ljpeg" (lossless JPEG tiles) or "none"
    preview: bool = True  # embed a JPEG preview (RawTherapee matches its tone curve to it)
    overwrite: bool = False
    maker_notes: bool = True  # read the camera's as-shot white balance and model names (exiftool)
    diffusion: DiffusionSettings = field(default_factory=DiffusionSettings)  # sampler, steps, seed, tiles

    def __post_init__(self) -> None:
        if self.compression not in tuple(Compression):
            raise UsageError(f"--compression must be one of {', '.join(Compression)}")
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
    camera_source: ProfileSource | None = None  # how the camera was known, for the batch summary
    white_balance_source: NeutralSource | None = None  # where the white balance came from


@dataclass(frozen=True)
class Inversion:
    counts: np.ndarray  # (H, W) uint16 raw counts in the profile's CFA
    neutral: np.ndarray
    profile: CameraProfile
    notes: tuple[str, ...]
    profile_source: ProfileSource  # --camera, a user or built-in profile, the camera library or generic
    neutral_source: NeutralSource | None = None  # where the white balance came from
    tone_curve_undone: bool = False
    # The profile is the photo's own camera: not another camera's forced by --camera (a photo
    # whose EXIF names no camera counts as its profile's).
    photo_camera: bool = True


def invert_image(
    image,
    options: ConvertOptions,
    progress: Callable[[float], None] | None = None,
    maker_notes: MakerNoteReading | None = None,
) -> Inversion:
    """Run the chosen method on a decoded photo: raw counts, the neutral used, and notes.
    `progress` is told the fraction of the inversion done (by the learned method); `maker_notes`
    (rawback.io.makernotes) name the camera further and give its as-shot white balance."""
    from rawback.io.exif import exposure_value

    reading = maker_notes or MakerNoteReading(None)
    make, model = image.exif.make, image.exif.model
    chosen = select_profile(options.camera, make, model, alt_names=reading.model_names)
    profile, reason = chosen.profile, chosen.reason
    # The photo's own camera, which --camera may have replaced: its maker notes speak its colours.
    own = select_profile(None, make, model, alt_names=reading.model_names) if options.camera else chosen
    white = camera_white(reading, chosen, own)
    tone_curve, tone_note = tone_curve_for(image.exif, profile, options.tone_curve)
    request = InverseRequest(
        rgb=image.rgb,
        bit_depth=image.bit_depth,
        profile=profile,
        settings=UnprocessSettings(options.transfer, tone_curve),
        neutral=parse_white_balance(options.white_balance),
        as_shot=white.neutral,
        as_shot_note=white.note,
        light_source=image.exif.light_source,
        exposure_value=exposure_value(image.exif),
        diffusion=undo_tone_curve_for(image.exif, tone_curve, options.diffusion),
        progress=progress,
        mosaic_on_device=True,
    )
    result = get_method(options.method)(request)
    counts, highlights = raw_counts(result, image.rgb, profile)
    method_notes = (*result.notes, *highlights.notes, *reading.notes)
    if white.neutral is None and white.note:
        method_notes = (*method_notes, white.note)
    said = what_happened(chosen, result, make, model)
    notes = (said, reason, *((tone_note,) if tone_note else ()), *method_notes, *(image.exif.warnings or ()))
    if image.color_note:
        notes = (*notes, image.color_note)
    notes = (*notes, *image.notes)
    return Inversion(
        counts, result.neutral, profile, notes, chosen.source, result.neutral_source,
        result.tone_curve_undone, photo_camera=own.profile.name == profile.name or not (make or model),
    )  # fmt: skip


def raw_counts(
    result: InverseResult, rgb: np.ndarray, profile: CameraProfile
) -> tuple[np.ndarray, Highlights]:
    """A method's mosaic as the DNG's integers, blown areas first set to read as a saturated
    sensor so that raw editors see them clipped (isp/highlights.py); on the GPU where the method
    left its mosaic there (rawback.device_mosaic)."""
    if not isinstance(result.mosaic, np.ndarray):
        return result.mosaic.raw_counts(rgb, profile)
    highlights = restore_clipping(result.mosaic, rgb, result.reconstructed)
    return to_counts(highlights.mosaic, profile), highlights


_CAMERA_KINDS = {
    ProfileSource.GIVEN: "--camera",
    ProfileSource.USER: "user profile",
    ProfileSource.BUILTIN: "built-in profile",
    ProfileSource.LIBRARY: "camera library",
    ProfileSource.GENERIC: "generic profile",
}


def what_happened(chosen: ChosenProfile, result: InverseResult, make: str | None, model: str | None) -> str:
    """The -v line that sums a photo up: which camera, where the white balance came from, and
    whether a tone curve was undone (the lines after it say why)."""
    from rawback.camera_library import normalise

    if chosen.source is ProfileSource.GENERIC:
        camera = chosen.profile.name
    elif chosen.source is not ProfileSource.GIVEN and (make or model):
        camera = " ".join(normalise(make, model)).strip()  # a library entry's model is a prefix
    else:
        camera = camera_display_name(chosen.profile.make, chosen.profile.model)
    source = result.neutral_source.value if result.neutral_source is not None else "unknown"
    curve = "undone" if result.tone_curve_undone else "kept"
    return f"camera: {camera} ({_CAMERA_KINDS[chosen.source]}); white balance: {source}; tone curve: {curve}"


def convert_file(
    source: Path, output: Path, options: ConvertOptions, progress: Callable[[float], None] | None = None
) -> ConvertResult:
    """Convert one photo to a DNG at `output`. Raises RawbackError subclasses on bad input.
    `progress` is told the fraction of the inversion done, for a progress bar."""
    from rawback.io.dng import MIN_SIDE, write_dng
    from rawback.io.image import read_image

    start = time.perf_counter()
    check_writable(output, overwrite=options.overwrite)  # fail before the expensive part
    # exiftool reads the maker notes while the photo decodes (its answer is collected after).
    pending = makernotes.request(source) if options.maker_notes else None
    image = read_image(source, min_side=MIN_SIDE)  # LibRaw and dcraw read no smaller raw file
    reading = pending.result() if pending is not None else None
    inversion = invert_image(image, options, progress, reading)
    preview = np.rint(image.rgb * 255).astype(np.uint8) if options.preview else None
    identity = dng_identity(inversion, image.exif)
    write_dng(
        output,
        inversion.counts,
        sensor=inversion.profile.dng_sensor(),
        identity=identity,
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
        notes=(*inversion.notes, *((identity.reason,) if identity.reason else ())),
        warnings=(*image.warnings, *(reading.warnings if reading is not None else ())),
        camera_source=inversion.profile_source,
        white_balance_source=inversion.neutral_source,
    )


def dng_identity(inversion: Inversion, exif) -> DngIdentity:
    """The camera the DNG names (rawback.io.dng_identity): the real one where the profile is the
    photo's camera, "rawback" where the camera is unknown or another camera's colour was forced."""
    from rawback import camera_library

    profile, source = inversion.profile, inversion.profile_source
    unique = None
    if source is ProfileSource.LIBRARY and (exif.make or exif.model):
        unique = " ".join(camera_library.normalise(exif.make, exif.model)).strip() or None
    return decide_identity(
        profile_is_known=source is not ProfileSource.GENERIC,
        profile_make=profile.make,
        profile_model=profile.model,
        profile_name=profile.name,
        exif_make=exif.make,
        exif_model=exif.model,
        exif_is_profile_camera=inversion.photo_camera,
        unique_camera_model=unique,
    )

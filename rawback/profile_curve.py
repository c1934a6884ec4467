"""`rawback profile curve`: measure a camera's JPEG tone curve from RAW+JPEG pairs of its shots.

Cameras set to RAW+JPEG save both files of a shot under one name (IMG_0042.CR2 + IMG_0042.JPG).
A RAW without such a JPEG is paired with the JPEG preview most cameras embed in their RAW files,
which their JPEG engine rendered in the picture style of the shot. For each pair the RAW is
developed to linear sRGB exactly as the inverse will undo it (LibRaw's linear demosaic, the white
balance the camera recorded, the profile's colour matrix), the JPEG is turned to the RAW's
orientation, the part of the RAW's frame the JPEG shows is found (cameras crop a few border
pixels), both are averaged down to one grid, and rawback.isp.tone_fit measures the curve that
takes one to the other (on luminance) and the saturation the camera added after it (on the
colours' offsets from luminance). Every pair's pixels are pooled into one fit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from rawback.camera import CameraProfile
from rawback.errors import InputError, RawbackError
from rawback.framing import ASPECT_TOLERANCE, box_resize, developed_raw, float_image, grid_size, margins_of
from rawback.io.heif import HEIF_SUFFIXES
from rawback.io.raw import RAW_SUFFIXES, embedded_preview
from rawback.isp import tone_fit

# The camera's picture beside its RAW: a JPEG, or the HEIF some cameras save instead (read as
# rawback reads any HEIF photo, rawback.io.heif).
PICTURE_SUFFIXES = frozenset({".jpg", ".jpeg", *HEIF_SUFFIXES})
# Both sides are averaged down to at most this many pixels on the long side: a camera JPEG is often
# cropped a few pixels or lens-corrected relative to its RAW, which this makes sub-pixel, while a
# 1024-px grid still gives far more pixels than 16 knots need.
GRID_LONG_SIDE = 1024
# The saturation is measured on the cells whose colour is smoothest (this share of them): a JPEG's
# 4:2:0 chroma is half resolution and blurs colour edges, which reads as less saturation. Measured
# on `finished` pairs (true 1.25): all cells 1.14 (DC50) and 1.25 (S40); the smoother half 1.22
# and 1.24; on the tests' synthetic pair (true 1.30) 1.26 and 1.30.
SMOOTH_COLOUR_SHARE = 0.5
# A true pair fits to a few per cent (ln units 0.03-0.09 on our test data); a different shot or
# a JPEG edited afterwards leaves errors of tens of per cent.
MISMATCH_RESIDUAL = 0.25
CURVE_KNOTS = 16


@dataclass(frozen=True)
class CurvePair:
    raw: Path
    jpeg: Path | None = None  # None: the JPEG preview embedded in the RAW file


@dataclass(frozen=True)
class PairResult:
    pair: CurvePair
    pixels: int
    rms_residual: float  # ln units, of this pair's own fit
    rotation: int  # quarter turns that brought the JPEG to the RAW's orientation
    own_curve: tone_fit.ToneCurveFit  # this pair's curve alone
    margins: tuple[float, float, float, float]  # RAW pixels the JPEG leaves out: left, top, right, bottom
    # RMS difference (ln units) of its own curve from the pooled one, over the knots both measured:
    # large when the camera's picture style or settings changed between the shots.
    deviation: float = 0.0


def find_pairs(paths: Iterable[Path]) -> list[CurvePair]:
    """A pair for every RAW among the given files and folders (searched recursively): with the
    JPEG of the same name, case ignored, in the same folder, else with its embedded preview."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(p for p in sorted(path.rglob("*")) if p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise InputError(path, "no such file or folder")
    raws: dict[tuple[Path, str], Path] = {}
    jpegs: dict[tuple[Path, str], Path] = {}
    for file in files:
        key = (file.parent, file.stem.lower())
        suffix = file.suffix.lower()
        if suffix in RAW_SUFFIXES:
            raws[key] = file
        elif suffix in PICTURE_SUFFIXES:
            jpegs[key] = file
    return [CurvePair(raws[key], jpegs.get(key)) for key in sorted(raws)]


@dataclass(frozen=True)
class PairSamples:
    """Linear RGB samples (N, 3) of one pair on a common grid, x from the RAW and y from the JPEG,
    for the curve, and those of them the saturation is measured on."""

    x: np.ndarray
    y: np.ndarray
    colour_x: np.ndarray  # the cells of x and y whose colour is smooth (SMOOTH_COLOUR_SHARE)
    colour_y: np.ndarray
    turns: int  # quarter turns applied to the JPEG
    curve: tone_fit.ToneCurveFit  # this pair's own curve, fitted to x and y
    margins: tuple[float, float, float, float]  # RAW pixels the JPEG leaves out (framing.margins_of)


MIN_PICTURE_SIDE = 128  # px, long side of the JPEG or preview a finish is measured from


def pair_samples(pair: CurvePair, profile: CameraProfile) -> PairSamples:
    """Samples of one pair (see PairSamples). Raises InputError naming the file when the two do
    not show the same frame."""
    from rawback.io.image import read_image
    from rawback.isp.color import srgb_to_linear

    linear = developed_raw(pair.raw, profile)
    raw_ok = tone_fit.raw_unclipped(linear)
    encoded = _read_jpeg_side(pair, read_image)
    if max(encoded.shape[:2]) < MIN_PICTURE_SIDE:  # a few thousand samples fit any curve
        whose = "it" if pair.jpeg is not None else "its embedded preview"
        raise InputError(
            pair.jpeg or pair.raw,
            f"{whose} ({encoded.shape[1]}x{encoded.shape[0]}) is too small to measure a finish "
            f"(at least {MIN_PICTURE_SIDE} px on the long side)",
        )
    decoded, jpeg_ok = srgb_to_linear(encoded), tone_fit.jpeg_unclipped(encoded)
    raw_luma = float_image(linear @ tone_fit.LUMINANCE)
    best: PairSamples | None = None
    for turns in _candidate_turns(linear.shape[:2], encoded.shape[:2], pair):
        turned = np.rot90(decoded, turns)
        margins = margins_of(raw_luma, turned @ tone_fit.LUMINANCE)
        size = grid_size(turned.shape[:2], GRID_LONG_SIDE)
        box = (margins[0], margins[1], linear.shape[1] - margins[2], linear.shape[0] - margins[3])
        grid_x, cells_x = _averaged(linear, raw_ok, size, box)
        grid_y, cells_y = _averaged(turned, np.rot90(jpeg_ok, turns), size)
        keep = cells_x & cells_y
        if keep.sum() < tone_fit.MIN_PIXELS_PER_KNOT:
            raise InputError(pair.jpeg or pair.raw, "too few unclipped pixels to measure a tone curve")
        x, y = grid_x[keep], grid_y[keep]
        fit = _curve_fit(x, y)
        if best is None or fit.rms_residual < best.curve.rms_residual:
            roughness = _colour_roughness(grid_x)
            smooth = keep & (roughness <= np.quantile(roughness[keep], SMOOTH_COLOUR_SHARE))
            best = PairSamples(x, y, grid_x[smooth], grid_y[smooth], turns, fit, margins)
    assert best is not None
    if best.curve.rms_residual > MISMATCH_RESIDUAL:
        raise InputError(
            pair.jpeg or pair.raw,
            f"{'does' if pair.jpeg is not None else 'its embedded preview does'} not match "
            f"{pair.raw.name} (fit residual {100 * best.curve.rms_residual:.0f} %; not the same shot, "
            "or edited after the camera saved it)",
        )
    return best


def _read_jpeg_side(pair: CurvePair, read_image: Callable) -> np.ndarray:
    """The pair's JPEG as sRGB float32 (h, w, 3): the file beside the RAW, or the preview in it."""
    if pair.jpeg is not None:
        image = read_image(pair.jpeg)
        if image.warnings:  # grey or garbled blocks would bend the measured curve
            raise InputError(pair.jpeg, f"{image.warnings[0]}; no finish is measured from it")
        return np.asarray(image.rgb, dtype=np.float32)
    try:
        preview = embedded_preview(pair.raw)
    except InputError as exc:
        raise InputError(pair.raw, f"has no JPEG beside it, and {exc.problem}") from None
    return preview.rgb.astype(np.float32) / 255.0


@dataclass(frozen=True)
class FinishMeasurement:
    """A camera JPEG engine's global finish, measured from RAW+JPEG pairs."""

    curve: tone_fit.ToneCurveFit
    saturation: float  # about luminance, after the curve (1 = none)
    pairs: list[PairResult]
    renderer: str | None = None  # the program that rendered the JPEGs; None: the camera (provenance)


def pair_renderer(pair: CurvePair) -> str | None:
    """The program family that rendered the pair's JPEG (rawback.provenance), None for the camera.
    An embedded preview is the renderer's of the RAW file itself: the camera's, or, for a DNG a
    converter wrote (its Software names it), the converter's."""
    from rawback.io.exif import read_exif
    from rawback.io.heif import BRANDS_READ, heif_exif, is_heif
    from rawback.io.raw import read_software
    from rawback.provenance import renderer

    if pair.jpeg is None:
        return renderer(tuple(filter(None, [read_software(pair.raw)])))
    try:
        with pair.jpeg.open("rb") as file:
            start = file.read(BRANDS_READ)
        if is_heif(start):
            exif = heif_exif(pair.jpeg)
        else:
            with Image.open(pair.jpeg) as image:
                exif = image.info.get("exif")
    except (OSError, InputError):
        return None  # pair_samples reports the unreadable file with its reason
    return renderer(read_exif(exif).software)


def common_renderer(pairs: list[CurvePair]) -> str | None:
    """The one renderer of all the pairs' JPEGs. Raises RawbackError when they come from several:
    a camera's finish and a raw converter's are different finishes, measured one at a time."""
    from collections import Counter

    from rawback.provenance import describe

    counts = Counter(pair_renderer(pair) for pair in pairs)
    if not counts:
        return None
    if len(counts) > 1:
        found = ", ".join(f"{describe(name)}: {n}" for name, n in counts.most_common())
        raise RawbackError(
            f"the JPEGs were rendered by different programs ({found}, by their EXIF Software); "
            "measure each one's finish on its own, under its own --name"
        )
    (only,) = counts
    return only


def measure_finish(
    pairs: list[CurvePair],
    profile: CameraProfile,
    on_error: Callable[[InputError], None] | None = None,
) -> FinishMeasurement:
    """One curve and one saturation from every usable pair; a pair that cannot be used is reported
    to `on_error` and skipped (raised when `on_error` is None). Raises RawbackError if no pair is
    usable, or when the JPEGs come from different renderers (common_renderer)."""
    renderer = common_renderer(pairs)
    samples, used = [], []
    for pair in pairs:
        try:
            sample = pair_samples(pair, profile)
        except InputError as exc:
            if on_error is None:
                raise
            on_error(exc)
            continue
        used.append(
            PairResult(
                pair, len(sample.x), sample.curve.rms_residual, sample.turns, sample.curve, sample.margins
            )
        )
        samples.append(sample)
    if not used:
        raise RawbackError("no usable RAW+JPEG pair: nothing to measure a tone curve from")
    curve = _curve_fit(np.concatenate([s.x for s in samples]), np.concatenate([s.y for s in samples]))
    used = [dataclasses.replace(r, deviation=_deviation(r.own_curve, curve)) for r in used]
    colour_x = np.concatenate([s.colour_x for s in samples])
    colour_y = np.concatenate([s.colour_y for s in samples])
    saturation = tone_fit.fit_saturation(colour_x, colour_y, curve.knots)
    return FinishMeasurement(curve, saturation, used, renderer)


# A pair whose own curve is further than this from the pooled one (ln units, RMS) was probably
# shot with another picture style: the command says so (two `finished` pairs of different cameras
# and scenes measured curves 0.016 apart; the tests' two styles differ by far more).
STYLE_DEVIATION = 0.1


def _deviation(own: tone_fit.ToneCurveFit, pooled: tone_fit.ToneCurveFit) -> float:
    both = own.measured & pooled.measured
    if not both.any():
        return 0.0
    return float(np.sqrt(np.mean((own.knots[both] - pooled.knots[both]) ** 2)))


def with_finish(profile: CameraProfile, measured: FinishMeasurement) -> CameraProfile:
    """The profile with the measured curve and saturation in it, and a note of where they came from."""
    fit = measured.curve
    previews = sum(result.pair.jpeg is None for result in measured.pairs)
    sources = [f"{len(measured.pairs) - previews} RAW+JPEG pair(s)"] if previews < len(measured.pairs) else []
    sources += [f"{previews} RAW file(s)' embedded previews"] if previews else []
    rendered = "" if measured.renderer is None else f", JPEGs rendered by {measured.renderer}"
    note = (
        f"tone curve: measured from {' and '.join(sources)}{rendered} by rawback profile curve "
        f"(fit residual {100 * fit.rms_residual:.1f} %, {int(fit.measured.sum())} of {len(fit.knots)} knots "
        f"measured; saturation {measured.saturation:.3f})"
    )
    notes = (*(n for n in profile.notes if not n.startswith("tone curve:")), note)
    return dataclasses.replace(
        profile,
        tone_curve=tuple(round(float(v), 4) for v in fit.knots),
        saturation=round(measured.saturation, 3),
        finish_renderer=measured.renderer,
        notes=notes,
    )


def _curve_fit(x_rgb: np.ndarray, y_rgb: np.ndarray) -> tone_fit.ToneCurveFit:
    """The curve is fitted to luminance (the module doc of rawback.isp.tone_fit says why)."""
    return tone_fit.fit_tone_curve(x_rgb @ tone_fit.LUMINANCE, y_rgb @ tone_fit.LUMINANCE, CURVE_KNOTS)


def _candidate_turns(raw_shape: tuple[int, int], jpeg_shape: tuple[int, int], pair: CurvePair) -> list[int]:
    """Quarter turns of the JPEG that could match the RAW's frame: a camera may store the JPEG
    upright where the RAW keeps the sensor's orientation, so both turns of the right aspect are
    tried and the better fit wins."""
    raw_aspect = raw_shape[1] / raw_shape[0]
    turns = []
    for k, (h, w) in ((0, jpeg_shape), (1, jpeg_shape[::-1])):
        if abs(w / h / raw_aspect - 1.0) <= ASPECT_TOLERANCE:
            turns += [k, k + 2]
    if not turns:
        whose = "its" if pair.jpeg is not None else "its embedded preview's"
        raise InputError(
            pair.jpeg or pair.raw,
            f"{whose} frame ({jpeg_shape[1]}x{jpeg_shape[0]}) is not the RAW's "
            f"({raw_shape[1]}x{raw_shape[0]}): not the same shot, cropped, or stored with non-square pixels",
        )
    return turns


def _averaged(
    linear: np.ndarray,
    unclipped: np.ndarray,
    size: tuple[int, int],
    box: tuple[float, float, float, float] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Linear RGB (h, w, 3), or its `box` (left, top, right, bottom in pixels, fractional allowed),
    averaged onto the grid, and the cells where no pixel was clipped (a clipped pixel would bias
    its cell's average)."""
    grid = np.stack([box_resize(linear[..., c], size, box) for c in range(3)], axis=-1)
    return grid.astype(np.float64), box_resize(unclipped.astype(np.float32), size, box) > 0.999


def _colour_roughness(rgb: np.ndarray) -> np.ndarray:
    """How far each cell's colour (its offset from luminance, relative to luminance) is from the
    mean of its 3x3 neighbourhood: high at colour edges."""
    from scipy import ndimage

    luma = rgb @ tone_fit.LUMINANCE
    chroma = (rgb - luma[..., None]) / np.maximum(luma, 1e-4)[..., None]
    local = np.stack([ndimage.uniform_filter(chroma[..., c], 3, mode="nearest") for c in range(3)], axis=-1)
    return np.abs(chroma - local).sum(axis=-1)


# --- `rawback profile curve` as a plain function: the command only prints what it returns --------


@dataclass(frozen=True)
class SavedFinish:
    profile: CameraProfile  # as saved: with the finish, under its final name
    path: Path
    measured: FinishMeasurement
    failed: list[str]  # why each unusable pair was left out (each also given to on_error)

    def style_differs(self, result: PairResult) -> bool:
        """Whether the pair was probably shot in another picture style than the others."""
        return len(self.measured.pairs) > 1 and result.deviation > STYLE_DEVIATION


def save_camera_finish(
    paths: Iterable[Path],
    *,
    folder: Path,
    camera: str | None = None,
    name: str | None = None,
    overwrite: bool = False,
    on_error: Callable[[InputError], None] | None = None,
) -> SavedFinish:
    """`rawback profile curve`: measure one camera's finish from the pairs among `paths` and save
    it, under `name` (else the profile's own), into `folder`, in the profile `camera` names (else
    the RAWs' make and model match, else one made from the first RAW). A pair that cannot be used
    goes to `on_error` and is skipped. Raises RawbackError for no RAW, several cameras, no usable
    pair, or a target that cannot be written (checked before the minutes of measuring)."""
    from rawback.camera import match_profile, profile_from_raw, profile_target, resolve_profile, save_profile
    from rawback.io.raw import read_make_model

    pairs = find_pairs(paths)
    if not pairs:
        raise RawbackError("no RAW files found")
    cameras = {read_make_model(p.raw) for p in pairs}
    if len(cameras) > 1:  # one camera's finish per profile: pooled pairs would average two engines
        names = ", ".join(sorted(" ".join(c).strip() or "unknown" for c in cameras))
        raise RawbackError(f"the pairs come from several cameras ({names}); measure one camera at a time")
    ((make, model),) = cameras
    if camera is not None:
        profile = resolve_profile(camera)
    else:
        profile = match_profile(make, model) or profile_from_raw(pairs[0].raw)
    profile_target(name or profile.name, folder, overwrite=overwrite)  # before measuring
    failed: list[str] = []

    def skip(exc: InputError) -> None:
        failed.append(str(exc))
        if on_error is not None:
            on_error(exc)

    measured = measure_finish(pairs, profile, on_error=skip)
    profile = with_finish(profile, measured)
    if name is not None:
        profile = dataclasses.replace(profile, name=name)
    path = save_profile(profile, folder, overwrite=overwrite)
    return SavedFinish(profile, path, measured, failed)

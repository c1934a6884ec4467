"""`rawback eval`: score inversion methods against ground-truth RAW files.

For every RAW file: make the input photo under the chosen protocol, invert it with the method under
test, with the analytic baseline, and with the analytic inverse given the true white balance (the
"oracle" reference row, which shows how much of the remaining error is the illuminant), then
score each prediction against the file's own mosaic. Round-trip protocols go through the real
product path: the prediction is written as a DNG and read back with LibRaw before scoring.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from rawback import metrics
from rawback.camera import CameraProfile, match_profile, profile_from_raw_image, resolve_profile
from rawback.diffusion_settings import DiffusionSettings
from rawback.errors import InputError, OutputError, RawbackError, UsageError
from rawback.evaluate.environment import run_record
from rawback.evaluate.protocols import Protocol, get_protocol
from rawback.inverse import InverseRequest
from rawback.io.atomic import make_folder
from rawback.io.exif import exposure_value
from rawback.io.files import find_raw_files, no_raw_files
from rawback.io.raw import CAMERA_WB_RENDER, RawImage, read_raw, render_raw
from rawback.isp.bayer import pack_rggb, rggb_crop
from rawback.isp.unprocess import UnprocessSettings, to_counts
from rawback.methods import OTHER_LEARNED, get_method, load_method_weights

BASELINE = "analytic"
ORACLE = "analytic, oracle white balance"
# The baseline given the white balance the method under test chose: what is left of the method's
# gain when the white balance is the same on both sides (the structure it restores).
SAME_WHITE = "analytic, the model's white balance"

METRICS: dict[str, str] = {  # key -> column title; every value is per image, then averaged
    "psnr_packed": "PSNR packed",
    "psnr_3ch": "PSNR RGB",
    "ssim_3ch": "SSIM RGB",
    "psnr_wb_oracle": "PSNR WB-oracle",
    "psnr_overexposed": "PSNR over-exp.",
    "psnr_roundtrip_srgb": "round-trip sRGB PSNR",
    "illuminant_error_deg": "illum. error °",
    "exposure_error_stops": "exposure error (stops)",
    "protocol_psnr": "protocol PSNR",
    "protocol_ssim": "protocol SSIM",
    "seconds_per_mp": "s/MP",
}


@dataclass(frozen=True)
class EvalOptions:
    data: Path  # folder searched recursively for RAW files
    method: str = "analytic"
    protocol: str = "rawback"
    pairs: Path | None = None  # folder of camera JPEGs to use instead of renders
    camera: str | None = None  # colour profile override (levels and CFA always come from the RAW)
    # A profile whose measured tone curve (rawback profile curve) every row undoes, each file
    # keeping its own colour profile: one camera JPEG engine's curve applied across cameras. MATCHED:
    # each file's own camera's, from the user or built-in profile its make and model match, as
    # `convert` undoes it for that camera's JPEGs (files of a camera without one undo none).
    tone_curve_from: str | None = None
    # Keep every file's protocol input here, as RELATIVE/PATH/NAME.jpg mirroring `data`: beside a
    # copy of its RAW it is a RAW+JPEG pair for `rawback profile curve`.
    save_inputs: Path | None = None
    include: tuple[str, ...] = ()  # glob patterns on paths relative to `data`; empty = all
    limit: int | None = None
    diffusion: DiffusionSettings = field(default_factory=DiffusionSettings)
    steps: tuple[int, ...] = ()  # diffusion step counts to sweep, one row each; empty = diffusion.steps
    # Several methods under test (`eval --method a --method b`), rows in this order; empty: `method`.
    methods: tuple[str, ...] = ()

    @property
    def tested(self) -> tuple[str, ...]:
        """The methods under test, each once, in order."""
        return tuple(dict.fromkeys(self.methods or (self.method,)))


@dataclass(frozen=True)
class Row:
    """One row of the table: a method with its settings, or the oracle reference."""

    label: str
    method: str
    oracle: bool = False  # given the white balance of the input (the reference row)
    diffusion: DiffusionSettings = field(default_factory=DiffusionSettings)
    white_of: str | None = None  # given the white balance this other row chose for the file


def diffusion_label(settings: DiffusionSettings) -> str:
    steps = settings.steps
    parts = (
        ["one-step"]
        if settings.sampler == "one-step"
        else [settings.sampler, f"{steps} step{'s' * (steps > 1)}"]
    )
    if settings.ensemble > 1:
        parts.append(f"ensemble {settings.ensemble}")
    if settings.undo_tone_curve:
        parts.append("tone curve undone")
    if settings.undo_exposure:
        parts.append("exposure undone")
    if settings.residual != "auto":
        parts.append(f"residual {settings.residual}")
    return f"diffusion ({', '.join(parts)})"


def plan_rows(options: EvalOptions) -> list[Row]:
    """The methods under test (diffusion: one row per swept step count), the baseline and the
    oracle; with diffusion among them, the baseline given the diffusion model's white balance."""
    rows: list[Row] = []
    diffusion_rows: list[Row] = []
    for method in options.tested:
        if method == "diffusion":
            # one-step ignores the step count: a sweep would repeat one row
            counts = options.steps or (options.diffusion.steps,)
            if options.diffusion.sampler == "one-step":
                counts = (1,)
            for steps in dict.fromkeys(counts):
                settings = dataclasses.replace(options.diffusion, steps=steps)
                diffusion_rows.append(Row(diffusion_label(settings), "diffusion", diffusion=settings))
            rows += diffusion_rows
        elif method != BASELINE:
            # invisp and latent read --weights too when one is the learned method; beside diffusion,
            # whose weights those are, they take their bundled weights.
            beside_diffusion = "diffusion" in options.tested
            settings = (
                dataclasses.replace(options.diffusion, weights=None)
                if beside_diffusion
                else options.diffusion
            )
            rows.append(Row(method, method, diffusion=settings))
    same_white = [Row(SAME_WHITE, BASELINE, white_of=diffusion_rows[0].label)] if diffusion_rows else []
    return [*rows, Row(BASELINE, BASELINE), *same_white, Row(ORACLE, BASELINE, oracle=True)]


MATCHED = "matched"  # --tone-curve-from: each file's camera's measured finish


@dataclass
class ImageResult:
    file: str  # relative to the data folder
    camera: str
    megapixels: float
    rows: dict[str, dict[str, float | None]] = field(default_factory=dict)
    error: str | None = None
    finish: str | None = None  # the profile whose measured finish every row undid, if any


@dataclass
class EvalReport:
    options: EvalOptions
    protocol_summary: str
    rows: list[str]
    images: list[ImageResult]
    # What the run ran with: versions, machine, device, weights (rawback.evaluate.environment).
    run: dict[str, object] = field(default_factory=dict)

    def means(self) -> dict[str, dict[str, float | None]]:
        out: dict[str, dict[str, float | None]] = {}
        for row in self.rows:
            out[row] = {}
            for key in METRICS:
                values = [
                    img.rows[row][key]
                    for img in self.images
                    if img.error is None and img.rows.get(row, {}).get(key) is not None
                ]
                out[row][key] = float(np.mean(values)) if values else None
        return out

    @property
    def failed(self) -> list[ImageResult]:
        return [img for img in self.images if img.error is not None]


def eval_profile(raw: RawImage, camera: str | None) -> CameraProfile:
    """The profile used to invert a RAW's render: its own, or --camera's colour with the file's
    levels and CFA (the geometry is a property of the file being scored). Never a measured finish
    (the built-in Canon profiles carry one): a protocol's input has its own finish, and
    --tone-curve-from is the one way to undo a measured one in eval."""
    own = profile_from_raw_image(raw)
    if camera is None:
        return own
    chosen = resolve_profile(camera)
    return dataclasses.replace(
        chosen,
        cfa_pattern=own.cfa_pattern,
        black_level=own.black_level,
        white_level=own.white_level,
        bits=own.bits,
        tone_curve=None,
        saturation=None,
        finish_renderer=None,
    )


def _score(
    pred_packed: np.ndarray,
    truth: np.ndarray,
    over_mask: np.ndarray,
) -> dict[str, float | None]:
    pred3, true3 = metrics.three_channel(pred_packed), metrics.three_channel(truth)
    return {
        "psnr_packed": metrics.psnr(pred_packed, truth),
        "psnr_3ch": metrics.psnr(pred3, true3),
        "ssim_3ch": metrics.ssim(pred3, true3),
        "psnr_wb_oracle": metrics.wb_oracle_psnr(pred_packed, truth),
        "psnr_overexposed": metrics.masked_psnr(pred_packed, truth, over_mask),
    }


def matched_finish(raw: RawImage) -> CameraProfile | None:
    """The user or built-in profile of the RAW's camera (by make and model), when it carries a
    measured finish of the camera's own JPEG engine: what `convert` undoes for that camera's JPEGs."""
    profile = match_profile(raw.make, raw.model)
    return profile if profile is not None and profile.finish_applies_to(None) else None


def evaluate_file(
    path: Path,
    data: Path,
    protocol: Protocol,
    rows: list[Row],
    camera: str | None,
    workdir: Path,
    finish_from: CameraProfile | Literal["matched"] | None = None,
    save_inputs: Path | None = None,
) -> ImageResult:
    """Score every row (method(s), baseline, oracle) on one RAW file; the measured finish (tone
    curve and saturation) of `finish_from` replaces the profile's own, for every row (MATCHED: the
    finish of the profile matching the file's camera, if it has one)."""
    from rawback.io.dng import write_dng
    from rawback.io.image import read_image

    raw = read_raw(path)
    prepared = protocol.make_input(raw, workdir)
    raw = prepared.scored_raw or raw
    profile = eval_profile(raw, camera)
    finish = matched_finish(raw) if isinstance(finish_from, str) else finish_from
    if finish is not None:
        profile = dataclasses.replace(
            profile,
            tone_curve=finish.tone_curve,
            saturation=finish.saturation,
            finish_renderer=finish.finish_renderer,
        )
    h, w = raw.mosaic.shape
    result = ImageResult(
        file=str(path.relative_to(data)),
        camera=f"{raw.make} {raw.model}".strip(),
        megapixels=h * w / 1e6,
        finish=None if finish is None else finish.name,
    )
    if save_inputs is not None:
        target = save_inputs / path.relative_to(data).with_suffix(prepared.path.suffix)
        make_folder(target.parent)
        try:
            shutil.copyfile(prepared.path, target)
        except OSError as exc:
            raise OutputError(target, f"cannot write the input copy ({exc.strerror or exc})") from exc
    image = read_image(prepared.path)
    if image.warnings:  # a damaged JPEG of `--pairs` (the protocols' own inputs are whole)
        raise InputError(prepared.path, f"{image.warnings[0]}; not scored")
    rgb = image.rgb
    if prepared.upsample > 1:
        # A half-size input covers the RGGB-phase crop of the mosaic at one pixel per 2x2 block.
        rgb = np.repeat(np.repeat(rgb, prepared.upsample, axis=0), prepared.upsample, axis=1)
        profile = dataclasses.replace(profile, cfa_pattern="RGGB")
    truth = protocol.ground_truth(raw)
    true_neutral = prepared.neutral
    if prepared.upsample > 1:
        over_mask = metrics.overexposed_mask(np.repeat(np.repeat(prepared.input_rgb8, 2, 0), 2, 1))
    else:
        rows_, cols_ = rggb_crop(h, w, raw.pattern)
        over_mask = metrics.overexposed_mask(prepared.input_rgb8[rows_, cols_])
    scene_ev = exposure_value(image.exif)
    chosen_whites: dict[str, np.ndarray] = {}
    for row in rows:
        start = time.perf_counter()
        given = true_neutral if row.oracle else chosen_whites.get(row.white_of) if row.white_of else None
        request = InverseRequest(
            rgb=rgb,
            bit_depth=image.bit_depth,
            profile=profile,
            settings=UnprocessSettings(transfer=protocol.transfer),
            neutral=given,
            light_source=image.exif.light_source,
            exposure_value=scene_ev,
            diffusion=row.diffusion,
        )
        inverse = get_method(row.method)(request)
        chosen_whites[row.label] = inverse.neutral
        counts = to_counts(inverse.mosaic, profile)
        seconds = time.perf_counter() - start
        scores: dict[str, float | None] = {}
        if prepared.upsample > 1:
            pred_packed = pack_rggb(inverse.mosaic, "RGGB")
        else:
            dng = workdir / f"{path.stem}.{len(result.rows)}.dng"
            write_dng(
                dng,
                counts,
                sensor=profile.dng_sensor(),
                as_shot_neutral=inverse.neutral,
                exif=image.exif,
                compression="none",
                overwrite=True,
            )
            back = read_raw(dng)  # score what a raw developer will read, not what we meant
            pred_packed = pack_rggb(back.normalized(), back.pattern)
            if protocol.round_trip:
                rendered = render_raw(dng, **CAMERA_WB_RENDER).rgb
                scores["psnr_roundtrip_srgb"] = metrics.psnr(
                    rendered.astype(np.float64), prepared.input_rgb8.astype(np.float64), peak=255.0
                )
            dng.unlink()
        scores.update(_score(pred_packed, truth, over_mask))
        scores["illuminant_error_deg"] = metrics.illuminant_error_degrees(inverse.neutral, true_neutral)
        exposure_error = metrics.exposure_error_stops(pred_packed, truth)
        scores["exposure_error_stops"] = None if np.isnan(exposure_error) else exposure_error
        scores.update(protocol.protocol_metrics(pred_packed, truth, raw, prepared))
        scores["seconds_per_mp"] = seconds / (rgb.shape[0] * rgb.shape[1] / 1e6)
        result.rows[row.label] = scores
    return result


def run_eval(options: EvalOptions, progress: Callable[[int, int, str], None] | None = None) -> EvalReport:
    """Evaluate every RAW file; one bad file is recorded as an error and the run goes on."""
    for method in options.tested:  # fail early on a bad name
        get_method(method)
    protocol = get_protocol(options.protocol, options.pairs)
    files = find_raw_files(options.data, options.include)
    if options.limit is not None:
        files = files[: options.limit]
    if not files:
        raise no_raw_files(options.data, options.include, "found")
    rows = plan_rows(options)
    # What would fail every file fails once, before the first.
    if options.camera is not None:
        resolve_profile(options.camera)
    device = None
    if any(row.method == "diffusion" for row in rows):
        from rawback.inference import model_for

        # Loaded once up front: bad weights or an absent device fail here, not once per file.
        device = str(next(model_for(options.diffusion).parameters()).device)
    method_weights = {
        row.method: load_method_weights(row.method, row.diffusion)
        for row in rows
        if row.method in OTHER_LEARNED
    }
    finish_from: CameraProfile | Literal["matched"] | None = None
    if options.tone_curve_from == MATCHED:
        finish_from = MATCHED
    elif options.tone_curve_from is not None:
        finish_from = resolve_profile(options.tone_curve_from)
        if finish_from.tone_curve is None:
            raise RawbackError(
                f"{options.tone_curve_from}: the profile has no measured tone curve (rawback profile curve)"
            )
    report = EvalReport(
        options=options, protocol_summary=protocol.summary, rows=[r.label for r in rows], images=[]
    )
    with tempfile.TemporaryDirectory(prefix="rawback-eval-") as tmp:
        for index, path in enumerate(files):
            if progress:
                progress(index, len(files), str(path.relative_to(options.data)))
            try:
                item = evaluate_file(
                    path, options.data, protocol, rows, options.camera, Path(tmp), finish_from,
                    options.save_inputs,
                )  # fmt: skip
            except RawbackError as exc:
                # The row names the file; an error about that same file says only what is wrong.
                about_this_file = isinstance(exc, InputError) and exc.path == path
                error = exc.problem if about_this_file else str(exc)
                item = ImageResult(
                    file=str(path.relative_to(options.data)), camera="", megapixels=0.0, error=error
                )
            report.images.append(item)
        if progress:
            progress(len(files), len(files), "")
    report.run = run_record(
        data=options.data,
        include=options.include,
        limit=options.limit,
        device=device,
        weights=options.diffusion.weights,
        method_weights=method_weights,
    )
    return report


def parse_steps(text: str) -> tuple[int, ...]:
    """`eval --steps`: one diffusion step count, or a comma list of counts to sweep ("1,2,4,8"),
    each count once in the order given, as the report lists its rows. Raises UsageError for
    anything else, before any work."""
    counts = tuple(int(v) for v in text.split(",") if v.strip().isdecimal())
    if len(counts) != len(text.split(",")) or min(counts) < 1:
        raise UsageError(f"--steps must be positive integers separated by commas, not {text!r}")
    return tuple(dict.fromkeys(counts))

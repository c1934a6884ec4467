"""Measuring a camera's tone curve from RAW+JPEG pairs (`rawback profile curve`) and undoing it.

The pairs are made here: a DNG of a scene with every tone from deep shadow to near white, and the
"camera's JPEG" of it, made from the DNG's own linear render with a known curve, extra saturation
and JPEG compression, so the right answer is known."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from rawback import camera, inverse, methods, metrics
from rawback.cli import app
from rawback.diffusion_settings import DiffusionSettings
from rawback.errors import InputError, RawbackError
from rawback.io.raw import embedded_preview
from rawback.isp import bayer, color, tone, tone_fit
from rawback.isp.unprocess import UnprocessSettings, to_counts, white_balance_scale
from rawback.profile_curve import (
    CurvePair,
    find_pairs,
    measure_finish,
    pair_samples,
    save_camera_finish,
    with_finish,
)
from tests.conftest import colour_profile

S40 = colour_profile("canon-powershot-s40")
NEUTRAL = np.array([0.55, 1.0, 0.75])
SATURATION = 1.3


def lifted_filmic(x: np.ndarray) -> np.ndarray:
    """The test camera's curve: +0.7 stop and a shoulder, y = 1 - exp(-2.5 * 1.6 x) normalised."""
    x = np.asarray(x, dtype=np.float64)
    return (1.0 - np.exp(-4.0 * x)) / (1.0 - np.exp(-4.0))


TRUE_KNOTS = tone.inverse_log_gains(lifted_filmic, 16)


def scene(h: int, w: int, seed: int) -> np.ndarray:
    """Linear sRGB with luminance from 0.002 to 0.9 across the frame, colours and texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    level = 0.002 * (450.0 ** (xx / (w - 1)))  # every tone, evenly in log
    tint = np.stack([1.0 + 0.4 * np.sin(yy / 7.0), np.ones((h, w)), 1.0 + 0.4 * np.cos(yy / 5.0)], -1)
    tint *= rng.uniform(0.8, 1.2, 3)
    texture = 1.0 + 0.05 * rng.standard_normal((h, w, 1))
    return np.clip(level[..., None] * tint * texture, 0.0, 0.95)


def write_raw(
    path: Path,
    seed: int = 0,
    size: tuple[int, int] = (192, 288),
    preview: np.ndarray | None = None,
    software: str = "Firmware Version 1.0.0",
) -> None:
    """A camera's RAW as a DNG: written by rawback's DNG writer, with the Software tag a camera
    writes (its firmware) in place of rawback's, unless `software` names a converter."""
    import tifffile

    from rawback.io.dng import write_dng

    balanced = scene(*size, seed) @ np.linalg.inv(S40.srgb_from_camera()).T
    raw_rgb = np.clip(balanced / white_balance_scale(NEUTRAL), 0.0, 1.0)
    counts = to_counts(bayer.mosaic_rgb(raw_rgb, S40.cfa_pattern).astype(np.float32), S40)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_dng(
        path,
        counts,
        sensor=S40.dng_sensor(),
        as_shot_neutral=NEUTRAL,
        compression="none",
        preview=preview,
        overwrite=True,
    )
    with tifffile.TiffFile(path, mode="r+b") as tif:
        tif.pages[0].tags[305].overwrite(software)


def camera_jpeg(
    raw_path: Path,
    jpeg_path: Path,
    turns: int = 0,
    curve=lifted_filmic,
    margins: tuple[int, int, int, int] = (0, 0, 0, 0),
    saturation: float = SATURATION,
    scale: float = 1.0,
) -> None:
    """What a camera with the test curve would have saved beside the RAW; `margins` (left, top,
    right, bottom) are RAW pixels its frame leaves out, `scale` its size relative to the frame."""
    from rawback.io.raw import camera_wb_neutral, read_linear_rgb
    from rawback.isp.simulate import camera_to_linear_srgb

    neutral = camera_wb_neutral(raw_path)
    lin = camera_to_linear_srgb(read_linear_rgb(raw_path).rgb, S40, neutral)
    curved = curve(lin)
    luma = curved @ tone_fit.LUMINANCE
    curved = np.clip(luma[..., None] + saturation * (curved - luma[..., None]), 0.0, 1.0)
    rgb8 = np.rint(color.linear_to_srgb(curved.astype(np.float32)) * 255).astype(np.uint8)
    left, top, right, bottom = margins
    image = Image.fromarray(
        np.ascontiguousarray(rgb8[top : rgb8.shape[0] - bottom, left : rgb8.shape[1] - right])
    )
    if scale != 1.0:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.BOX)
    Image.fromarray(np.ascontiguousarray(np.rot90(np.asarray(image), turns))).save(jpeg_path, quality=95)


@pytest.fixture()
def pair(tmp_path: Path) -> Path:
    folder = tmp_path / "shots"
    write_raw(folder / "IMG_0001.dng")
    camera_jpeg(folder / "IMG_0001.dng", folder / "IMG_0001.JPG")
    return folder


def knot_rmse(knots: np.ndarray, mask: np.ndarray | None = None) -> float:
    mask = np.ones(len(knots), bool) if mask is None else mask
    return float(np.sqrt(np.mean((np.asarray(knots) - TRUE_KNOTS)[mask] ** 2)))


# --- the fit -------------------------------------------------------------------------------------


def test_fit_recovers_a_known_curve_through_noise_and_outliers() -> None:
    rng = np.random.default_rng(0)
    x = 0.001 * 900.0 ** rng.uniform(0, 1, 60_000)
    y = lifted_filmic(x) * np.exp(0.01 * rng.standard_normal(x.size))
    wrong = rng.uniform(size=x.size) < 0.03  # misregistered edges: another pixel's value
    y[wrong] = rng.permutation(y[wrong])
    keep = y < 0.97
    fit = tone_fit.fit_tone_curve(x[keep], y[keep])
    assert knot_rmse(fit.knots) < 0.02
    assert fit.measured.all()
    # The identity is not what the fit falls back to: the test curve is far from it.
    assert knot_rmse(np.zeros(16)) > 0.3


def test_knots_without_pixels_follow_their_neighbours() -> None:
    x = np.linspace(0.05, 0.3, 5000)  # mid-tones only
    fit = tone_fit.fit_tone_curve(x, lifted_filmic(x))
    assert not fit.measured[0] and not fit.measured[-1] and fit.measured[8]
    assert np.all(np.isfinite(fit.knots))
    # Unmeasured knots carry on the measured trend (the smoothness penalty), not noise or zeros.
    assert np.max(np.abs(fit.knots - TRUE_KNOTS)) < 0.25
    assert knot_rmse(fit.knots, fit.measured) < 0.02


def test_fit_refuses_too_few_pixels() -> None:
    with pytest.raises(ValueError, match="too few"):
        tone_fit.fit_tone_curve(np.full(10, 0.2), np.full(10, 0.4))


# --- pairs of files ------------------------------------------------------------------------------


def test_find_pairs_matches_a_raw_and_a_jpeg_of_one_name_in_one_folder(tmp_path: Path) -> None:
    for name in ("a/IMG_1.CR2", "a/img_1.jpg", "a/IMG_2.CR2", "a/IMG_3.JPEG", "b/IMG_2.jpg", "a/IMG_4.NEF",
                 "a/IMG_4.jpeg", "a/notes.txt"):  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    pairs = find_pairs([tmp_path])
    assert [(p.raw.name, p.jpeg and p.jpeg.name) for p in pairs] == [
        ("IMG_1.CR2", "img_1.jpg"),
        ("IMG_2.CR2", None),  # no JPEG beside it: its embedded preview
        ("IMG_4.NEF", "IMG_4.jpeg"),
    ]
    alone = find_pairs([tmp_path / "a" / "IMG_2.CR2", tmp_path / "b" / "IMG_2.jpg"])
    assert alone == [CurvePair(tmp_path / "a" / "IMG_2.CR2", None)]
    with pytest.raises(InputError, match="no such file"):
        find_pairs([tmp_path / "missing"])


def test_a_pair_gives_the_cameras_curve_despite_its_saturation(pair: Path) -> None:
    measured = measure_finish(find_pairs([pair]), S40)
    fit, used = measured.curve, measured.pairs
    assert len(used) == 1 and used[0].rotation == 0
    assert knot_rmse(fit.knots, fit.measured) < 0.05
    assert fit.measured.sum() >= 12
    assert fit.rms_residual < 0.1
    assert measured.saturation == pytest.approx(SATURATION, abs=0.05)


def test_a_jpeg_stored_upright_is_turned_back(pair: Path) -> None:
    raw = pair / "IMG_0001.dng"
    camera_jpeg(raw, pair / "IMG_0001.JPG", turns=1)
    measured = measure_finish(find_pairs([pair]), S40)
    assert measured.pairs[0].rotation == 3  # a quarter turn back
    assert knot_rmse(measured.curve.knots, measured.curve.measured) < 0.05


def test_a_jpeg_that_leaves_out_the_raws_borders_is_aligned(pair: Path) -> None:
    raw = pair / "IMG_0001.dng"
    camera_jpeg(raw, pair / "IMG_0001.JPG", margins=(7, 3, 5, 5))  # 2 % of 288 x 192, unevenly
    (result,) = measure_finish(find_pairs([pair]), S40).pairs
    assert np.allclose(result.margins, (7, 3, 5, 5), atol=1.0), result.margins
    assert result.rms_residual < 0.1
    assert knot_rmse(result.own_curve.knots, result.own_curve.measured) < 0.05


def test_a_raw_alone_is_measured_from_its_embedded_preview(pair: Path, tmp_path: Path) -> None:
    # The camera's JPEG, embedded in the RAW (as most cameras do) instead of beside it.
    jpeg = np.asarray(Image.open(pair / "IMG_0001.JPG"))
    alone = tmp_path / "alone" / "IMG_0001.dng"
    write_raw(alone, preview=jpeg)
    (match,) = find_pairs([alone.parent])
    assert match == CurvePair(alone, None)
    measured = measure_finish([match], S40)
    assert knot_rmse(measured.curve.knots, measured.curve.measured) < 0.05
    assert measured.saturation == pytest.approx(SATURATION, abs=0.05)
    assert measured.renderer is None  # the camera's own preview
    # A DNG a converter wrote carries the converter's preview, and the finish is the converter's.
    write_raw(alone, preview=jpeg, software="Adobe DNG Converter 15.3")
    assert measure_finish([match], S40).renderer == "Adobe"
    # A preview smaller than the DNG's 256-px RGB thumbnail: LibRaw hands over that bitmap instead.
    small = np.asarray(Image.fromarray(jpeg).resize((144, 96), Image.Resampling.BOX))
    write_raw(alone, preview=small)
    assert embedded_preview(alone).jpeg is None  # the bitmap path
    measured = measure_finish([match], S40)
    assert knot_rmse(measured.curve.knots, measured.curve.measured) < 0.05
    assert measured.saturation == pytest.approx(SATURATION, abs=0.05)
    assert measured.renderer is None  # the camera's own preview
    write_raw(alone, preview=None)  # our DNG writer then embeds only a grey placeholder thumbnail
    with pytest.raises(InputError, match="preview is blank"):
        pair_samples(match, S40)


def test_the_camera_preview_protocol_scores_the_preview_against_the_raw_of_its_frame(tmp_path: Path) -> None:
    """A RAW whose embedded preview shows less than its frame at half its size, rendered with the
    sRGB curve alone: the analytic inverse with the true white balance must find the RAW again,
    which it can only if the protocol found the preview's frame."""
    from rawback.evaluate.run import EvalOptions, run_eval

    data = tmp_path / "data"
    raw = data / "IMG_0001.dng"
    size = (384, 576)  # a preview of half of it is still larger than the DNG's 256-px thumbnail
    write_raw(raw, size=size)
    camera_jpeg(
        raw, tmp_path / "preview.jpg", curve=lambda x: x, saturation=1.0, margins=(12, 8, 12, 8), scale=0.5
    )
    write_raw(raw, size=size, preview=np.asarray(Image.open(tmp_path / "preview.jpg")))
    report = run_eval(EvalOptions(data=data, method="analytic", protocol="camera-preview"))
    (image,) = report.images
    assert image.error is None, image.error
    assert image.megapixels == pytest.approx(276 * 184 / 1e6)  # the preview's size
    oracle = image.rows["analytic, oracle white balance"]
    assert oracle["psnr_packed"] > 35.0, oracle
    write_raw(raw, size=size, preview=None)  # a bitmap thumbnail only: an error for this file, not the run
    (image,) = run_eval(EvalOptions(data=data, method="analytic", protocol="camera-preview")).images
    assert "preview is blank" in image.error


def test_a_bitmap_preview_is_scored_as_a_png_that_keeps_the_raws_exif(tmp_path: Path) -> None:
    """A bitmap preview goes to the method as a lossless PNG; like a user's photo, it must still
    name the camera and carry the capture EXIF (LightSource and exposure hint the white balance)."""
    from rawback.evaluate.protocols import CameraPreviewProtocol
    from rawback.io.image import read_image
    from rawback.io.raw import read_raw

    raw_path = tmp_path / "IMG_0001.dng"
    write_raw(raw_path)
    camera_jpeg(raw_path, tmp_path / "preview.jpg", curve=lambda x: x, saturation=1.0)
    small = np.asarray(Image.open(tmp_path / "preview.jpg").resize((144, 96), Image.Resampling.BOX))
    write_raw(raw_path, preview=small)  # smaller than the DNG's thumbnail: LibRaw hands over the bitmap
    raw = read_raw(raw_path)
    prepared = CameraPreviewProtocol().make_input(raw, tmp_path)
    assert prepared.path.suffix == ".png"
    exif = read_image(prepared.path).exif
    assert (exif.make, exif.model) == (raw.make, raw.model)
    assert exif.make


def test_eval_pairs_of_another_size_are_scored_against_the_raw_of_their_frame(tmp_path: Path) -> None:
    """`--pairs`: a camera JPEG that leaves out the RAW's borders and is smaller is aligned like a
    preview (stretching it onto the mosaic misregistered it)."""
    from rawback.evaluate.run import EvalOptions, run_eval

    data, pairs = tmp_path / "data", tmp_path / "pairs"
    pairs.mkdir()
    size = (384, 576)
    write_raw(data / "IMG_0001.dng", size=size)
    camera_jpeg(data / "IMG_0001.dng", pairs / "IMG_0001.jpg", curve=lambda x: x, saturation=1.0,
                margins=(12, 8, 12, 8), scale=0.5)  # fmt: skip
    (image,) = run_eval(EvalOptions(data=data, method="analytic", pairs=pairs)).images
    assert image.error is None, image.error
    assert image.megapixels == pytest.approx(276 * 184 / 1e6)
    assert image.rows["analytic, oracle white balance"]["psnr_packed"] > 35.0


def test_a_jpeg_of_another_shot_is_refused(pair: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    write_raw(other / "x.dng", seed=5)
    camera_jpeg(other / "x.dng", other / "x.jpg")
    shifted = np.roll(np.asarray(Image.open(other / "x.jpg")), 100, axis=1)  # no turn undoes this
    Image.fromarray(shifted).save(pair / "IMG_0001.JPG")
    (match,) = find_pairs([pair])
    with pytest.raises(InputError, match=r"does not match IMG_0001\.dng"):
        pair_samples(match, S40)
    Image.new("RGB", (200, 200)).save(pair / "IMG_0001.JPG")
    with pytest.raises(InputError, match="frame"):
        pair_samples(match, S40)
    # A thumbnail of a few thousand pixels fits any curve (a DC50's 96x64 gave saturation 3.3).
    Image.new("RGB", (96, 64)).save(pair / "IMG_0001.JPG")
    with pytest.raises(InputError, match=r"\(96x64\) is too small to measure a finish"):
        pair_samples(match, S40)
    Image.new("RGB", (100, 100)).save(pair / "IMG_0001.JPG")
    skipped: list[InputError] = []
    with pytest.raises(RawbackError, match="no usable RAW\\+JPEG pair"):
        measure_finish([match], S40, on_error=skipped.append)
    assert len(skipped) == 1


# --- the profile and the inverse -----------------------------------------------------------------


def test_profile_json_keeps_a_measured_curve_and_omits_a_missing_one() -> None:
    assert "tone_curve" not in S40.to_json()  # profiles without one are written as before
    knots = tuple(round(float(v), 4) for v in TRUE_KNOTS)
    measured = dataclasses.replace(S40, tone_curve=knots)
    again = camera.CameraProfile.from_json(measured.to_json())
    assert again == measured
    with pytest.raises(camera.ProfileError, match="tone_curve"):
        dataclasses.replace(S40, tone_curve=(0.1, float("nan")))


def test_undoing_the_measured_curve_brings_the_jpeg_back_to_the_raw(pair: Path) -> None:
    """What the user relies on: their JPEG inverts much closer to what the camera recorded."""
    from rawback.io.image import read_image
    from rawback.io.raw import read_raw

    measured = with_finish(S40, measure_finish(find_pairs([pair]), S40))
    image = read_image(pair / "IMG_0001.JPG")
    truth = bayer.pack_rggb(read_raw(pair / "IMG_0001.dng").normalized(), "RGGB")

    def invert(
        profile: camera.CameraProfile, curve: str = "auto", transfer: str = "srgb"
    ) -> tuple[float, tuple[str, ...]]:
        request = inverse.InverseRequest(
            rgb=image.rgb, bit_depth=8, profile=profile,
            settings=UnprocessSettings(transfer=transfer, tone_curve=curve), neutral=NEUTRAL,
        )  # fmt: skip
        result = methods.analytic(request)
        return metrics.psnr(bayer.pack_rggb(result.mosaic, "RGGB"), truth), result.notes

    with_curve, notes = invert(measured)
    without, _ = invert(S40)
    switched_off, off_notes = invert(measured, "none")
    curve_only, _ = invert(dataclasses.replace(measured, saturation=None))
    assert with_curve > without + 8.0, (with_curve, without)
    assert with_curve > curve_only + 0.1, (with_curve, curve_only)  # the saturation counts too
    # The measured curve holds the camera's whole response (measured against sRGB decoding), so a
    # --transfer given beside it changes nothing.
    assert invert(measured, transfer="gamma2.2")[0] == with_curve
    assert invert(S40, transfer="gamma2.2")[0] != without
    assert switched_off == without
    assert any("measured in profile canon-powershot-s40" in n for n in notes)
    assert not any("measured" in n for n in off_notes)


def test_the_learned_method_uses_the_measured_curve_instead_of_its_guess(pair: Path) -> None:
    from rawback.io.image import read_image

    measured = with_finish(S40, measure_finish(find_pairs([pair]), S40))
    image = read_image(pair / "IMG_0001.JPG")
    settings = DiffusionSettings(undo_tone_curve=True, device="cpu")

    def invert(profile: camera.CameraProfile) -> inverse.InverseResult:
        return methods.diffusion(
            inverse.InverseRequest(rgb=image.rgb, bit_depth=8, profile=profile, diffusion=settings)
        )

    result = invert(measured)
    assert any("measured in profile" in n for n in result.notes)
    assert any("is used instead" in n for n in result.notes)
    # The gain the measured curve undoes where the JPEG is mid-grey (0.18): the test curve got
    # there from 0.049, a gain of 3.7.
    assert 3.4 < result.exposure < 4.0
    assert not np.array_equal(result.mosaic, invert(S40).mosaic)


def test_undoing_saturation_inverts_a_finishs_saturation() -> None:
    from rawback.isp.unprocess import unprocess

    rng = np.random.default_rng(1)
    linear = rng.uniform(0.2, 0.5, (32, 48, 3))
    luma = (linear @ tone_fit.LUMINANCE)[..., None]
    saturated = np.clip(luma + SATURATION * (linear - luma), 0.0, 1.0)
    assert np.all((saturated > 0) & (saturated < 1))  # no clipping: the inverse can be exact

    def encode(lin: np.ndarray) -> np.ndarray:
        return np.rint(color.linear_to_srgb(lin.astype(np.float32)) * 65535) / 65535

    plain = unprocess(encode(linear), S40, NEUTRAL, bit_depth=16)
    undone = unprocess(encode(saturated), S40, NEUTRAL, bit_depth=16, saturation=SATURATION)
    kept = unprocess(encode(saturated), S40, NEUTRAL, bit_depth=16)
    assert np.max(np.abs(undone - plain)) < 1e-3
    assert np.max(np.abs(kept - plain)) > 0.02
    # With a curve as well, the curve is applied after the saturation is taken back.
    curve = tone.exposure_only(16, 2.0)
    both = unprocess(encode(saturated), S40, NEUTRAL, bit_depth=16, curve=curve, saturation=SATURATION)
    assert np.max(np.abs(both - np.clip(plain / 2.0, 0, 1))) < 1e-3


# --- what `profile curve` does, without the command line ------------------------------------------


def test_save_camera_finish_measures_the_matched_camera_and_saves_it_under_a_new_name(
    pair: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAWBACK_PROFILE_DIR", str(tmp_path / "user"))  # no profile of the user's machine
    folder = tmp_path / "profiles"
    saved = save_camera_finish([pair], folder=folder, name="my-s40")
    assert saved.path == folder / "my-s40.json" and saved.failed == []
    profile = saved.profile
    assert (profile.name, profile.make, profile.model) == ("my-s40", "Canon", "PowerShot S40")
    assert camera.load_profile_file(saved.path) == profile
    assert knot_rmse(np.array(profile.tone_curve)) < 0.1
    (result,) = saved.measured.pairs
    assert result.pair == CurvePair(pair / "IMG_0001.dng", pair / "IMG_0001.JPG")
    assert not saved.style_differs(result)  # one pair: nothing to differ from


def test_save_camera_finish_skips_a_bad_pair_and_says_why(
    pair: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAWBACK_PROFILE_DIR", str(tmp_path / "user"))
    write_raw(pair / "IMG_0002.dng", seed=3)
    Image.new("RGB", (90, 40)).save(pair / "IMG_0002.jpg")
    errors: list[InputError] = []
    saved = save_camera_finish([pair], folder=tmp_path / "profiles", on_error=errors.append)
    assert [str(e) for e in errors] == saved.failed and len(saved.failed) == 1
    assert errors[0].path == pair / "IMG_0002.jpg"
    assert [r.pair.raw.name for r in saved.measured.pairs] == ["IMG_0001.dng"]  # the good pair counts
    assert saved.path == tmp_path / "profiles" / "canon-powershot-s40.json" and saved.path.is_file()


def test_save_camera_finish_checks_the_target_before_measuring(
    pair: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rawback import profile_curve

    monkeypatch.setenv("RAWBACK_PROFILE_DIR", str(tmp_path / "user"))
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "canon-powershot-s40.json").write_text("{}")

    def measure(*args, **kwargs):
        raise AssertionError("measured before the target was checked")

    monkeypatch.setattr(profile_curve, "measure_finish", measure)
    with pytest.raises(RawbackError, match="already exists"):
        save_camera_finish([pair], folder=folder)
    with pytest.raises(RawbackError, match="letters, digits"):
        save_camera_finish([pair], folder=folder, name="my s40")
    with pytest.raises(RawbackError, match=r"^no RAW files found$"):
        save_camera_finish([pair / "IMG_0001.JPG"], folder=folder)


# --- the command line ----------------------------------------------------------------------------


def test_profile_curve_command_saves_a_profile_convert_then_uses(pair: Path, tmp_path: Path) -> None:
    env = {"RAWBACK_PROFILE_DIR": str(tmp_path / "profiles")}
    runner = CliRunner()
    result = runner.invoke(app, ["profile", "curve", str(pair), "--name", "my-s40"], env=env)
    assert result.exit_code == 0, result.output
    assert "1 pair(s)" in result.output
    saved = camera.load_profile_file(tmp_path / "profiles" / "my-s40.json")
    assert saved.tone_curve is not None and knot_rmse(np.array(saved.tone_curve)) < 0.1
    assert (saved.make, saved.model) == ("Canon", "PowerShot S40")

    listed = runner.invoke(app, ["profile", "list"], env=env).stdout
    assert "my-s40 +*" in listed and "generic *" not in listed  # a user profile (+) with a curve (*)

    again = runner.invoke(app, ["profile", "curve", str(pair), "--name", "my-s40"], env=env)
    assert again.exit_code == 1 and "exists" in again.stderr

    out = tmp_path / "photo.dng"
    args = [
        "convert",
        str(pair / "IMG_0001.JPG"),
        "-o",
        str(out),
        "--camera",
        "my-s40",
        "--method",
        "analytic",
        "-v",
    ]
    converted = runner.invoke(app, args, env=env)
    assert converted.exit_code == 0, converted.output
    note = r"tone curve and saturation \(1\.[23]\d\) measured in profile my-s40 undone"
    assert re.search(note, converted.output), converted.output


def test_profile_curve_command_skips_a_bad_pair_and_says_so(pair: Path, tmp_path: Path) -> None:
    write_raw(pair / "IMG_0002.dng", seed=3)
    Image.new("RGB", (90, 40)).save(pair / "IMG_0002.jpg")
    env = {"RAWBACK_PROFILE_DIR": str(tmp_path / "profiles")}
    result = CliRunner().invoke(app, ["profile", "curve", str(pair)], env=env)
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and "IMG_0002.jpg" in line
    assert (tmp_path / "profiles" / "canon-powershot-s40.json").is_file()  # the good pair still counts


def test_profile_curve_command_warns_about_a_pair_shot_in_another_style(pair: Path, tmp_path: Path) -> None:
    write_raw(pair / "IMG_0002.dng", seed=2)
    camera_jpeg(pair / "IMG_0002.dng", pair / "IMG_0002.jpg")  # the same style: no warning
    env = {"RAWBACK_PROFILE_DIR": str(tmp_path / "profiles")}
    same = CliRunner().invoke(app, ["profile", "curve", str(pair)], env=env)
    assert same.exit_code == 0 and same.stderr == "", same.stderr
    write_raw(pair / "IMG_0003.dng", seed=3)
    camera_jpeg(pair / "IMG_0003.dng", pair / "IMG_0003.jpg", curve=lambda x: np.asarray(x) ** 0.6)
    mixed = CliRunner().invoke(app, ["profile", "curve", str(pair), "--overwrite"], env=env)
    assert mixed.exit_code == 0  # a warning, not a failure: the pooled curve is still saved
    (line,) = mixed.stderr.splitlines()
    assert line.startswith("warning: ") and "IMG_0003.jpg" in line and "another picture style" in line


def test_profile_curve_command_without_raws_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "photo.jpg").write_bytes(b"")
    result = CliRunner().invoke(
        app, ["profile", "curve", str(tmp_path)], env={"RAWBACK_PROFILE_DIR": str(tmp_path)}
    )
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: no RAW files found"


@pytest.mark.shared_data
def test_the_finished_protocols_curve_is_measured_from_one_real_pair(
    shared_raw: Path, tmp_path: Path
) -> None:
    """On a real RAW (a training file): the `finished` protocol's Hable curve with its +0.5 EV lift,
    through its saturation, sharpening and JPEG q85, is found to a few hundredths."""
    import shutil

    from rawback.evaluate.protocols import FinishedProtocol, _hable
    from rawback.io.raw import read_raw

    raw_path = tmp_path / "CRW_0101.CRW"
    shutil.copyfile(shared_raw / "canon_s40" / "CRW_0101.CRW", raw_path)
    protocol = FinishedProtocol()
    protocol.make_input(read_raw(raw_path), tmp_path)  # writes CRW_0101.jpg beside it
    peak = 2.0**protocol.exposure_stops
    bias = protocol.filmic_bias
    truth = tone.inverse_log_gains(lambda v: _hable(bias * peak * np.asarray(v)) / _hable(bias * peak), 16)
    measured = measure_finish(find_pairs([tmp_path]), camera.profile_from_raw(raw_path))
    assert float(np.sqrt(np.mean((measured.curve.knots - truth) ** 2))) < 0.06
    assert measured.saturation == pytest.approx(protocol.saturation, abs=0.05)


@pytest.mark.shared_data
def test_a_real_canon_raw_alone_is_measured_from_its_cameras_preview(shared_raw: Path) -> None:
    """The S40's own 640x480 JPEG inside its CRW: the frame it shows (about 20 columns and 8 rows
    of the RAW's border left out) is found, and the pair fits as a real JPEG engine's can."""
    raw = shared_raw / "canon_s40" / "CRW_0101.CRW"
    (result,) = measure_finish([CurvePair(raw)], camera.profile_from_raw(raw)).pairs
    assert np.allclose(result.margins, (20, 8, 20, 9), atol=2.0), result.margins
    assert result.rms_residual < 0.16  # 0.40 without finding the frame


def test_a_raw_and_heif_pair_measures_the_curve_like_a_jpeg_pair(pair: Path) -> None:
    """Cameras that save HEIF beside their RAWs (Sony, Fujifilm): the picture may be a .HIF/.HEIC."""
    pillow_heif = pytest.importorskip("pillow_heif")  # makes the test's HEIF
    pytest.importorskip("pi_heif")  # rawback's decoder
    jpeg = pair / "IMG_0001.JPG"
    pixels = np.asarray(Image.open(jpeg).convert("RGB"))
    heif = pillow_heif.from_bytes("RGB", (pixels.shape[1], pixels.shape[0]), pixels.tobytes())
    heif.save(pair / "IMG_0001.HIF", quality=-1, chroma=444)
    jpeg.unlink()
    (found,) = find_pairs([pair])
    assert found.jpeg == pair / "IMG_0001.HIF"
    measured = measure_finish([found], S40)
    assert measured.renderer is None  # the camera's own engine: no Software names a program
    assert knot_rmse(measured.curve.knots, measured.curve.measured) < 0.05
    assert measured.saturation == pytest.approx(SATURATION, abs=0.05)


def test_profile_curve_command_skips_a_damaged_jpeg(pair: Path, tmp_path: Path) -> None:
    """Grey blocks where a JPEG was cut short would bend the curve: the pair is left out, named."""
    write_raw(pair / "IMG_0002.dng", seed=2)
    camera_jpeg(pair / "IMG_0002.dng", pair / "IMG_0002.jpg")
    whole = (pair / "IMG_0002.jpg").read_bytes()
    (pair / "IMG_0002.jpg").write_bytes(whole[: len(whole) * 2 // 3] + b"\xff\xd9")
    env = {"RAWBACK_PROFILE_DIR": str(tmp_path / "profiles")}
    result = CliRunner().invoke(app, ["profile", "curve", str(pair)], env=env)
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and "IMG_0002.jpg" in line and "the JPEG data is damaged" in line
    assert line.endswith("no finish is measured from it")
    assert (tmp_path / "profiles" / "canon-powershot-s40.json").is_file()  # the good pair still counts

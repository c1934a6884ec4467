"""The default for undoing the tone curve the model estimates: "auto" undoes it for a camera's own
JPEG (EXIF names a camera and no raw converter or editor) and keeps it for anything else;
`--undo-tone-curve` and `--keep-tone-curve` force either (docs/experiments.md has the
measurements behind the rule)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rawpy
import torch
from PIL import Image
from typer.testing import CliRunner

from rawback.camera import builtin_profiles
from rawback.choices import ToneCurve
from rawback.cli import app
from rawback.diffusion_settings import DiffusionSettings
from rawback.finish import learned_finish, model_finish, undo_tone_curve_for
from rawback.io.exif import ExifData, read_exif
from rawback.isp.unprocess import UnprocessSettings
from rawback.model.config import preset
from rawback.model.denoiser import RawbackModel
from rawback.model.heads import GLOBAL_OUTPUTS
from rawback.weights import save_weights
from tests.test_provenance import exif_bytes

AUTO = DiffusionSettings()
CURVE = np.array([0.4, 0.1, -0.2, -0.3], dtype=np.float32)


def exif(make: str = "NIKON CORPORATION", model: str = "NIKON D90", software: str | None = None) -> ExifData:
    return read_exif(exif_bytes(make, model, software))


def decided(photo: ExifData, tone_curve: str = ToneCurve.AUTO, settings: DiffusionSettings = AUTO):
    return undo_tone_curve_for(photo, tone_curve, settings)


@pytest.mark.parametrize("firmware", [None, "Ver.1.00", "17.1.1", "HD8.01.01.60.00"])
def test_a_cameras_own_jpeg_has_its_curve_undone(firmware: str | None) -> None:
    settings = decided(exif(software=firmware))
    assert settings.undo_tone_curve is True
    assert (
        "NIKON D90" in settings.tone_curve_reason
        and "no raw converter or editor" in settings.tone_curve_reason
    )


@pytest.mark.parametrize(
    "software", ["Adobe Photoshop Lightroom Classic 13.0 (Windows)", "darktable 4.6.1", "GIMP 2.10.36"]
)
def test_a_raw_converters_or_editors_export_keeps_its_curve(software: str) -> None:
    settings = decided(exif(software=software))
    assert settings.undo_tone_curve is False
    assert software in settings.tone_curve_reason


def test_a_photo_whose_exif_names_no_camera_keeps_its_curve() -> None:
    for photo in (ExifData(), exif(make="", model=""), exif(make="", model="", software="Ver.1.00")):
        settings = decided(photo)
        assert settings.undo_tone_curve is False and "names no camera" in settings.tone_curve_reason


def test_a_camera_named_by_make_or_model_alone_counts() -> None:
    assert decided(exif(make="GoPro", model="")).undo_tone_curve is True
    assert decided(exif(make="", model="HERO7 Black")).undo_tone_curve is True
    assert "(Canon PowerShot S40)" in decided(exif("Canon", "Canon PowerShot S40")).tone_curve_reason
    assert "(NIKON D90)" in decided(exif()).tone_curve_reason
    assert "(SONY SLT-A57)" in decided(exif("SONY", "SLT-A57")).tone_curve_reason


@pytest.mark.parametrize("tone_curve", [ToneCurve.NONE, ToneCurve.SMOOTHSTEP])
def test_another_tone_curve_setting_keeps_the_estimate_out(tone_curve: str) -> None:
    """--tone-curve none or smoothstep (or a measured finish left out for this photo's renderer,
    which tone_curve_for turns into "none") asks for no estimated curve."""
    settings = decided(exif(), tone_curve)
    assert settings.undo_tone_curve is False and settings.tone_curve_reason is None


@pytest.mark.parametrize("choice", [True, False])
def test_the_users_choice_wins_whatever_rendered_the_photo(choice: bool) -> None:
    given = DiffusionSettings(undo_tone_curve=choice)
    for photo in (exif(), exif(software="darktable 4.6.1"), ExifData()):
        assert decided(photo, settings=given) == given


def test_the_notes_say_what_auto_decided_and_how_to_override_it() -> None:
    undone = learned_finish(CURVE, 2.0, decided(exif()))
    assert undone.curve is not None
    (note,) = undone.notes
    assert note.startswith("tone curve of the finish estimated by the model and undone: EXIF names")
    assert "--keep-tone-curve" in note

    kept = learned_finish(CURVE, 2.0, decided(exif(software="darktable 4.6.1")))
    assert kept.curve is None and kept.exposure == 1.0
    (note,) = kept.notes
    assert "kept" in note and "darktable" in note and "--undo-tone-curve" in note


def test_undecided_auto_keeps_the_curve_silently() -> None:
    """`rawback eval` and training never decide "auto": the curve stays, as before."""
    finish = learned_finish(CURVE, 2.0, AUTO)
    assert finish.curve is None and finish.exposure == 1.0 and finish.notes == ()


def test_a_measured_finish_still_beats_the_estimate_without_blaming_the_user() -> None:
    s40 = builtin_profiles()["canon-powershot-s40"]
    settings = decided(exif("Canon", "Canon PowerShot S40"))
    assert settings.undo_tone_curve is True
    finish, _ = model_finish(s40, UnprocessSettings(), CURVE, 2.0, settings)
    assert np.array_equal(finish.curve, np.asarray(s40.tone_curve, dtype=np.float32))
    assert not any("--undo-tone-curve" in n for n in finish.notes)
    asked, _ = model_finish(s40, UnprocessSettings(), CURVE, 2.0, DiffusionSettings(undo_tone_curve=True))
    assert any("the profile's measured curve is used instead" in n for n in asked.notes)


@pytest.fixture(scope="module")
def halving_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny weights whose head says "this finish doubled every value" (its curve: -ln 2 at each knot)."""
    torch.manual_seed(0)
    model = RawbackModel(preset("tiny"))
    knots = model.config.global_head.tone_knots
    with torch.no_grad():  # the last layer starts at zero: set the curve's biases
        model.global_head.mlp[-1].bias[GLOBAL_OUTPUTS : GLOBAL_OUTPUTS + knots] = -np.log(2.0)
        model.global_head.mlp[-1].bias[2] = 0.0
    path = tmp_path_factory.mktemp("weights") / "w.pt"
    save_weights(model, path)
    return path


def photo(path: Path, software: str | None) -> Path:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:64, 0:96]
    rgb = np.stack([x * 2.0, y * 3.0, np.full(x.shape, 90.0)], axis=-1) + rng.normal(0, 6, (64, 96, 3))
    Image.fromarray(np.clip(rgb, 20, 235).astype(np.uint8)).save(
        path, "JPEG", quality=92, exif=exif_bytes("NIKON CORPORATION", "NIKON D90", software)
    )
    return path


def dng_level(path: Path) -> float:
    with rawpy.imread(str(path)) as raw:
        return float(raw.raw_image_visible.mean() - np.mean(raw.black_level_per_channel))


@pytest.mark.parametrize(("software", "undone"), [("Ver.1.00", True), ("darktable 4.6.1", False)])
def test_convert_decides_per_photo_and_the_flags_force_either(
    tmp_path: Path, halving_weights: Path, software: str, undone: bool
) -> None:
    jpeg = photo(tmp_path / "photo.jpg", software)
    common = ["--weights", str(halving_weights), "--tile", "64", "--overlap", "16"]
    levels, outputs = {}, {}
    for flag in ("", "--undo-tone-curve", "--keep-tone-curve"):
        out = tmp_path / f"out{flag}.dng"
        result = CliRunner().invoke(
            app, ["convert", str(jpeg), "-o", str(out), *common, "-v", *[flag] * bool(flag)]
        )
        assert result.exit_code == 0, result.output
        levels[flag], outputs[flag] = dng_level(out), result.output
    assert 0.4 < levels["--undo-tone-curve"] / levels["--keep-tone-curve"] < 0.6
    assert levels[""] == levels["--undo-tone-curve" if undone else "--keep-tone-curve"]
    assert ("--keep-tone-curve keeps it" in outputs[""]) is undone
    assert ("--undo-tone-curve undoes the model's estimate" in outputs[""]) is not undone


def test_eval_keeps_the_curve_unless_asked() -> None:
    """eval scores what it is told: its inputs carry the RAW's EXIF whatever rendered them."""
    result = CliRunner().invoke(app, ["eval", "--help"], env={"COLUMNS": "200"})
    assert "--undo-tone-curve" in result.output and "--keep-tone-curve" in result.output
    assert "[default: keep-tone-curve]" in result.output

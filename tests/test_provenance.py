"""A camera's measured JPEG finish is undone for its own JPEGs, not for ones an editor rendered.

The built-in Canon S40 and G2 profiles carry the finish measured from their training RAWs'
previews; a photo whose EXIF Software names a photo editor keeps its tones (rawback.provenance).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import piexif
import pytest
from PIL import Image
from typer.testing import CliRunner

from rawback import camera
from rawback.cli import app
from rawback.convert import ConvertOptions, invert_image
from rawback.io.exif import read_exif
from rawback.io.image import read_image
from rawback.provenance import editing_program
from tests.conftest import SHARED_RAW

EDITORS = (
    "Adobe Photoshop Lightroom Classic 13.0 (Windows)",
    "Adobe Photoshop 25.0 (Macintosh)",
    "darktable 4.6.1",
    "RawTherapee 5.10",
    "Capture One 23 Macintosh",
    "DxO PhotoLab 7.0",
    "GIMP 2.10.36",
    "Snapseed 2.0",
    "Digital Photo Professional",
    "ON1 Photo RAW 2023",
    "Photos 9.0",
)
FIRMWARES = (
    "Firmware Version 1.0.0",
    "Ver.1.00",
    "17.1.1",
    "G998BXXU5CVDD",
    "HDR+ 1.0.540104767zd",
    "ILCE-7M3 v3.01",
    "X-T3 Ver4.00",
    "HD8.01.01.60.00",
)


def exif_bytes(make: str, model: str, software: str | None = None, processing: str | None = None) -> bytes:
    ifd0: dict[int, bytes] = {271: make.encode(), 272: model.encode()}
    if software is not None:
        ifd0[305] = software.encode()
    if processing is not None:
        ifd0[11] = processing.encode()
    return piexif.dump({"0th": ifd0})


def s40_photo(path: Path, software: str | None = None) -> Path:
    """A small photo whose EXIF says a Canon PowerShot S40 took it (and, if given, what wrote it)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:64, 0:96]
    rgb = np.stack([x * 2.5, y * 3.5, np.full(x.shape, 90.0)], axis=-1) + rng.normal(0, 6, (64, 96, 3))
    image = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8))
    image.save(path, "JPEG", quality=92, exif=exif_bytes("Canon", "Canon PowerShot S40", software))
    return path


@pytest.mark.parametrize("software", EDITORS)
def test_editors_are_recognised(software: str) -> None:
    assert editing_program(read_exif(exif_bytes("Canon", "PowerShot S40", software))) == software


@pytest.mark.parametrize("software", FIRMWARES)
def test_camera_firmware_is_not_an_editor(software: str) -> None:
    assert editing_program(read_exif(exif_bytes("Canon", "PowerShot S40", software))) is None


def test_processing_software_counts_too() -> None:
    exif = read_exif(exif_bytes("Canon", "PowerShot S40", "Firmware Version 1.0.0", "darktable 4.6.1"))
    assert exif.software == ("Firmware Version 1.0.0", "darktable 4.6.1")
    assert editing_program(exif) == "darktable 4.6.1"
    assert editing_program(read_exif(exif_bytes("Canon", "PowerShot S40"))) is None


def test_shipped_canon_profiles_carry_a_measured_finish() -> None:
    for name in ("canon-powershot-s40", "canon-powershot-g2"):
        profile = camera.builtin_profiles()[name]
        assert profile.tone_curve is not None and len(profile.tone_curve) == 16
        assert profile.saturation is not None
        assert any("tone curve: measured from" in note for note in profile.notes)
    # Cameras whose previews in ../shared/data are not their own engine's, or are too few to check
    # a finish on, ship none (docs/profiles.md).
    for name in ("canon-eos-d30", "gopro-hero6-black", "gopro-hero8-black", "kodak-dc50", "generic"):
        assert camera.builtin_profiles()[name].tone_curve is None


def counts(path: Path, tone_curve: str = "auto") -> tuple[np.ndarray, tuple[str, ...]]:
    options = ConvertOptions(method="analytic", tone_curve=tone_curve)
    inversion = invert_image(read_image(path), options)
    return inversion.counts, inversion.notes


def test_a_camera_jpeg_gets_its_cameras_finish_undone_and_an_edited_one_does_not(tmp_path: Path) -> None:
    own, own_notes = counts(s40_photo(tmp_path / "camera.jpg", "Firmware Version 1.0.0"))
    plain, _ = counts(tmp_path / "camera.jpg", "none")
    assert any("measured in profile canon-powershot-s40 undone" in n for n in own_notes)
    # The S40's curve darkens the mid-tones a JPEG engine lifted: the raw counts come out lower.
    assert own.mean() < 0.9 * plain.mean()

    edited, notes = counts(s40_photo(tmp_path / "edited.jpg", "Adobe Photoshop Lightroom Classic 13.0"))
    np.testing.assert_array_equal(edited, plain)
    (note,) = [n for n in notes if "tone curve" in n]
    assert "not undone" in note and "Lightroom" in note and "--tone-curve measured" in note

    forced, forced_notes = counts(tmp_path / "edited.jpg", "measured")
    np.testing.assert_array_equal(forced, own)
    assert any("measured in profile canon-powershot-s40 undone" in n for n in forced_notes)


def test_measured_without_a_measured_curve_is_a_one_line_error(tmp_path: Path) -> None:
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 48), (120, 110, 100)).save(photo, exif=exif_bytes("Kodak", "DC50"))
    result = CliRunner().invoke(
        app, ["convert", str(photo), "--method", "analytic", "--tone-curve", "measured"]
    )
    assert result.exit_code != 0
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ") and "no measured tone curve" in line
    assert not (tmp_path / "photo.dng").exists()


@pytest.mark.shared_data
def test_the_shipped_s40_finish_brings_a_held_out_s40_preview_closer_to_its_raw(shared_raw: Path) -> None:
    """What a JPEG-only S40 user gains: the camera's own JPEG of a shot none of the finish was
    measured on (CRW_0112), inverted with and without the shipped finish, scored against its RAW."""
    from rawback.evaluate.run import BASELINE, EvalOptions, run_eval

    options = EvalOptions(data=SHARED_RAW / "canon_s40", protocol="camera-preview", include=("CRW_0112.CRW",))
    without = run_eval(options).means()[BASELINE]
    shipped = run_eval(dataclasses.replace(options, tone_curve_from="canon-powershot-s40")).means()[BASELINE]
    # Measured: 21.7 -> 27.3 dB packed, 33.0 -> 34.1 WB-oracle, exposure error 0.44 -> 0.02 stop.
    assert shipped["psnr_packed"] > without["psnr_packed"] + 4.0, (shipped, without)
    assert shipped["psnr_wb_oracle"] > without["psnr_wb_oracle"] + 0.5, (shipped, without)
    assert abs(shipped["exposure_error_stops"]) < 0.15 < abs(without["exposure_error_stops"])

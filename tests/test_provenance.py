"""A measured finish is undone only for photos from the renderer it was measured on.

The built-in Canon S40 and G2 profiles carry their camera engines' finish, measured from their
training RAWs' previews: a photo whose EXIF Software names a raw converter or editor keeps its
tones. A finish measured on Lightroom exports is Lightroom's, for Lightroom exports only
(rawback.provenance).
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
from rawback.provenance import rendering_program
from tests.conftest import SHARED_RAW

PROGRAMS = (
    ("Adobe Photoshop Lightroom Classic 13.0 (Windows)", "Lightroom"),
    ("Adobe Photoshop Lightroom 6.0", "Lightroom"),
    ("Adobe Photoshop Camera Raw 16.0 (Windows)", "Adobe Camera Raw"),
    ("Adobe Photoshop 25.0 (Macintosh)", "Photoshop"),
    ("darktable 4.6.1", "darktable"),
    ("RawTherapee 5.10", "RawTherapee"),
    ("Capture One 23 Macintosh", "Capture One"),
    ("DxO PhotoLab 7.0", "DxO"),
    ("GIMP 2.10.36", "GIMP"),
    ("Snapseed 2.0", "Snapseed"),
    ("Digital Photo Professional", "Digital Photo Professional"),
    ("ON1 Photo RAW 2023", "ON1"),
    ("Photos 9.0", "Apple Photos"),
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


@pytest.mark.parametrize(("software", "family"), PROGRAMS)
def test_programs_are_recognised_by_family(software: str, family: str) -> None:
    exif = read_exif(exif_bytes("Canon", "PowerShot S40", software))
    assert rendering_program(exif) == (family, software)


@pytest.mark.parametrize("software", FIRMWARES)
def test_camera_firmware_is_no_program(software: str) -> None:
    assert rendering_program(read_exif(exif_bytes("Canon", "PowerShot S40", software))) is None


def test_processing_software_counts_too() -> None:
    exif = read_exif(exif_bytes("Canon", "PowerShot S40", "Firmware Version 1.0.0", "darktable 4.6.1"))
    assert exif.software == ("Firmware Version 1.0.0", "darktable 4.6.1")
    assert rendering_program(exif) == ("darktable", "darktable 4.6.1")
    assert rendering_program(read_exif(exif_bytes("Canon", "PowerShot S40"))) is None


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


def counts(
    path: Path, tone_curve: str = "auto", camera: str | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    options = ConvertOptions(method="analytic", tone_curve=tone_curve, camera=camera)
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
    (note,) = [n for n in notes if "not undone" in n]
    assert "camera's JPEG engine" in note and "Lightroom Classic 13.0" in note
    assert "--tone-curve measured" in note

    forced, forced_notes = counts(tmp_path / "edited.jpg", "measured")
    np.testing.assert_array_equal(forced, own)
    assert any("measured in profile canon-powershot-s40 undone" in n for n in forced_notes)


def test_a_user_profile_that_hides_the_builtin_finish_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rawback profile add` saves colours only, and user profiles are matched first: the S40's
    built-in finish is then not undone, which -v must say rather than drop it silently."""
    monkeypatch.setenv("RAWBACK_PROFILE_DIR", str(tmp_path / "profiles"))
    (tmp_path / "profiles").mkdir()
    colours_only = dataclasses.replace(
        camera.builtin_profiles()["canon-powershot-s40"], name="my-s40", tone_curve=None, saturation=None
    )
    (tmp_path / "profiles" / "my-s40.json").write_text(colours_only.to_json())
    mine, notes = counts(s40_photo(tmp_path / "camera.jpg", "Firmware Version 1.0.0"))
    plain, _ = counts(tmp_path / "camera.jpg", "none")
    np.testing.assert_array_equal(mine, plain)
    (note,) = [n for n in notes if "no finish was undone" in n]
    assert "my-s40" in note and "--camera canon-powershot-s40" in note

    # Saved under the built-in's own name, it replaces it: --camera would not reach the built-in.
    (tmp_path / "profiles" / "my-s40.json").unlink()
    same_name = dataclasses.replace(colours_only, name="canon-powershot-s40")
    (tmp_path / "profiles" / "canon-powershot-s40.json").write_text(same_name.to_json())
    _, notes = counts(tmp_path / "camera.jpg")
    (note,) = [n for n in notes if "no finish was undone" in n]
    assert "rename or delete the user profile canon-powershot-s40" in note
    # A Lightroom export would keep its tones anyway: nothing to say.
    _, notes = counts(s40_photo(tmp_path / "edited.jpg", "Adobe Photoshop Lightroom Classic 13.0"))
    assert not [n for n in notes if "no finish was undone" in n]


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


def test_a_finish_measured_on_lightroom_exports_is_undone_for_lightroom_exports_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A photographer who lost the RAWs of old Lightroom exports measures the preset's finish from
    other RAWs and their exports: it is Lightroom's finish, not the camera's."""
    monkeypatch.setenv("RAWBACK_PROFILE_DIR", str(tmp_path / "profiles"))
    from rawback.profile_curve import find_pairs, measure_finish, with_finish
    from tests.test_profile_curve import S40, camera_jpeg, write_raw

    shots = tmp_path / "shots"
    for i in (1, 2):
        write_raw(shots / f"IMG_000{i}.dng", seed=i)
        camera_jpeg(shots / f"IMG_000{i}.dng", shots / f"IMG_000{i}.jpg")
        piexif.insert(
            exif_bytes("Canon", "Canon PowerShot S40", "Adobe Photoshop Lightroom Classic 12.4"),
            str(shots / f"IMG_000{i}.jpg"),
        )
    measured = measure_finish(find_pairs([shots]), S40)
    assert measured.renderer == "Lightroom"
    profile = dataclasses.replace(with_finish(S40, measured), name="my-lightroom")
    assert profile.finish_renderer == "Lightroom"
    assert any("JPEGs rendered by Lightroom" in n for n in profile.notes)
    assert camera.CameraProfile.from_json(profile.to_json()) == profile
    camera.save_profile(profile, camera.user_folder())

    export = s40_photo(tmp_path / "export.jpg", "Adobe Photoshop Lightroom Classic 13.0 (Windows)")
    undone, notes = counts(export, camera="my-lightroom")
    plain, _ = counts(export, "none", camera="my-lightroom")
    assert not np.array_equal(undone, plain)
    assert any("measured in profile my-lightroom undone" in n for n in notes)
    for software in (None, "darktable 4.6.1"):  # the camera's own JPEG, another converter's
        other, other_notes = counts(s40_photo(tmp_path / "other.jpg", software), camera="my-lightroom")
        np.testing.assert_array_equal(other, counts(tmp_path / "other.jpg", "none", camera="my-lightroom")[0])
        (note,) = [n for n in other_notes if "not undone" in n]
        assert "measured on JPEGs of Lightroom" in note


def test_profile_curve_refuses_jpegs_of_different_renderers(tmp_path: Path) -> None:
    from tests.test_profile_curve import camera_jpeg, write_raw

    shots = tmp_path / "shots"
    for i, software in ((1, None), (2, "darktable 4.6.1")):
        write_raw(shots / f"IMG_000{i}.dng", seed=i)
        camera_jpeg(shots / f"IMG_000{i}.dng", shots / f"IMG_000{i}.jpg")
        if software is not None:
            piexif.insert(
                exif_bytes("Canon", "Canon PowerShot S40", software), str(shots / f"IMG_000{i}.jpg")
            )
    env = {"RAWBACK_PROFILE_DIR": str(tmp_path / "profiles")}
    result = CliRunner().invoke(app, ["profile", "curve", str(shots)], env=env)
    assert result.exit_code != 0
    (line,) = result.stderr.splitlines()
    assert "different programs" in line and "darktable: 1" in line and "camera's JPEG engine: 1" in line
    assert not (tmp_path / "profiles").exists() or not any((tmp_path / "profiles").iterdir())

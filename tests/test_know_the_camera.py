"""Issue 17 end to end: a photo's camera is identified (profile, camera library or generic), its
as-shot white balance comes from its maker notes, the DNG names the real camera, and -v and the
batch summary say what happened. The JPEGs with maker notes are hand-made by
tools/makernote_jpegs.py; the real ones in ../shared/data/jpeg are scored against their truth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from rawback.camera import ProfileSource, resolve_profile, select_profile
from rawback.cli import app
from rawback.io.makernotes import AsShot, MakerNoteReading, as_shot_neutral
from rawback.white_balance import camera_white
from tests.conftest import SHARED_DATA
from tests.test_batch import write_photo
from tools import makernote_jpegs as made
from tools.measure_as_shot import angle_degrees, srgb_white

needs_exiftool = pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed")
CANON_AS_SHOT = (1991, 1016, 1022, 1678)  # R G1 G2 B: the made Canon's WB_RGGBLevelsAsShot


@pytest.fixture
def no_exiftool(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A run on a machine without exiftool: the module's run-wide process and notice start afresh."""
    from rawback.io import makernotes

    monkeypatch.setenv("RAWBACK_EXIFTOOL", str(tmp_path / "no-such-exiftool"))
    monkeypatch.setattr(makernotes, "_shared", None)
    monkeypatch.setattr(makernotes, "_notice_given", False)
    yield
    if makernotes._shared is not None:
        makernotes._shared.close()


def run_cli(*args: str | Path, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def numbers(value) -> np.ndarray:
    """A (S)RATIONAL tag's values: tifffile gives numerator, denominator pairs."""
    pairs = np.asarray(value, dtype=np.float64).reshape(-1, 2)
    return pairs[:, 0] / pairs[:, 1]


def dng_tags(path: Path) -> dict[str, object]:
    with tifffile.TiffFile(path) as tif:
        tags = {name: tif.pages[0].tags[name].value for name in ("Make", "Model", "UniqueCameraModel")}
        tags["AsShotNeutral"] = numbers(tif.pages[0].tags["AsShotNeutral"].value)
        return tags


def canon_jpeg(path: Path, **kwargs) -> Path:
    """A Canon EOS DIGITAL REBEL XT JPEG (LibRaw's EOS 350D) with maker notes, big enough to convert."""
    path.write_bytes(made.canon(**kwargs))
    return path


def expected_canon_neutral() -> np.ndarray:
    r, g1, g2, b = CANON_AS_SHOT
    g = (g1 + g2) / 2
    return np.array([g / r, 1.0, g / b])


@needs_exiftool
def test_a_camera_jpeg_gets_its_library_profile_maker_note_white_balance_and_real_identity(
    tmp_path: Path,
) -> None:
    photo = canon_jpeg(tmp_path / "canon.jpg")
    result = run_cli("convert", photo, "--method", "analytic", "-v")
    assert result.exit_code == 0, result.output
    assert "camera: Canon EOS 350D (camera library); white balance: maker notes" in result.output
    assert "Canon:WB_RGGBLevelsAsShot" in result.output
    tags = dng_tags(tmp_path / "canon.dng")
    assert (tags["Make"], tags["Model"]) == ("Canon", "Canon EOS DIGITAL REBEL XT")
    assert tags["UniqueCameraModel"] == "Canon EOS 350D"
    assert np.allclose(tags["AsShotNeutral"], expected_canon_neutral(), atol=1e-6)


@needs_exiftool
def test_both_methods_use_the_maker_note_white_balance(tmp_path: Path, tiny_weights: Path) -> None:
    photo = canon_jpeg(tmp_path / "canon.jpg")
    result = run_cli("convert", photo, "-o", tmp_path / "d.dng", "--weights", tiny_weights, "-v")
    assert result.exit_code == 0, result.output
    assert "white balance: maker notes" in result.output
    assert np.allclose(dng_tags(tmp_path / "d.dng")["AsShotNeutral"], expected_canon_neutral(), atol=1e-6)


@needs_exiftool
def test_white_balance_given_beats_the_maker_notes(tmp_path: Path) -> None:
    photo = canon_jpeg(tmp_path / "canon.jpg")
    result = run_cli("convert", photo, "--method", "analytic", "--white-balance", "0.5,1,0.5", "-v")
    assert result.exit_code == 0, result.output
    assert "white balance: given" in result.output
    assert np.allclose(dng_tags(tmp_path / "canon.dng")["AsShotNeutral"], (0.5, 1, 0.5), atol=1e-6)


@needs_exiftool
def test_hostile_maker_notes_fall_back_with_a_warning(tmp_path: Path) -> None:
    """A white balance of zeros is no white balance: the photo converts with the next source."""
    photo = canon_jpeg(tmp_path / "canon.jpg", as_shot=(0, 0, 0, 0))
    result = run_cli("convert", photo, "--method", "analytic", "-v")
    assert result.exit_code == 0, result.output
    assert "warning:" in result.stderr and "canon.jpg" in result.stderr
    assert "Traceback" not in result.output
    assert "white balance: daylight" in result.output
    assert (tmp_path / "canon.dng").is_file()


def test_without_exiftool_the_camera_is_still_identified_and_the_run_says_once(
    tmp_path: Path, no_exiftool: None
) -> None:
    photos = [canon_jpeg(tmp_path / f"canon{i}.jpg") for i in range(2)]
    result = run_cli("convert", *photos, "--method", "analytic", "-v")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("exiftool not found") == 1
    assert "apt-get install libimage-exiftool-perl" in result.stderr
    assert result.output.count("camera: Canon EOS 350D (camera library); white balance: daylight") == 2


def test_the_batch_summary_counts_identified_cameras_and_fallbacks(tmp_path: Path, no_exiftool: None) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    canon_jpeg(folder / "canon.jpg")
    write_photo(folder / "plain.jpg")  # no EXIF: the generic profile, daylight
    result = run_cli("batch", folder, "-o", tmp_path / "out", "--method", "analytic")
    assert result.exit_code == 0, result.output
    assert "cameras: 1 identified, 1 generic profile; white balance: 2 daylight" in result.output
    assert dng_tags(tmp_path / "out" / "plain.dng")["Make"] == "rawback"


def test_maker_note_white_balance_is_carried_into_another_cameras_colours() -> None:
    """--camera forces another camera's profile: the as-shot white is the same light, seen by it."""
    reading = MakerNoteReading(AsShot((2.0, 1.0, 1.5), "Canon:WB_RGGBLevelsAsShot", "x"))
    own = select_profile(None, "Canon", "Canon EOS DIGITAL REBEL XT")
    assert own.source is ProfileSource.LIBRARY
    same = camera_white(reading, own, own)
    assert np.allclose(same.neutral, as_shot_neutral(reading.as_shot))

    forced = select_profile("libraw-nikon-d90", "Canon", "Canon EOS DIGITAL REBEL XT")
    carried = camera_white(reading, forced, own)
    white_xyz = np.linalg.solve(own.profile.rendering_matrix(), as_shot_neutral(reading.as_shot))
    nikon = resolve_profile("libraw-nikon-d90").rendering_matrix() @ white_xyz
    assert np.allclose(carried.neutral, nikon / nikon[1])
    assert "carried into libraw-nikon-d90" in carried.note

    generic = select_profile(None, "Nobody", "Unknown 1")
    assert camera_white(reading, generic, generic).neutral is None
    assert camera_white(reading, forced, generic).neutral is None  # --camera, the photo's camera unknown


# --- the real camera JPEGs of ../shared/data/jpeg, against their maker-note truth ------------------


def white_angle(matrix_a, neutral_a, matrix_b, neutral_b) -> float:
    """Degrees between two camera whites in linear sRGB (../shared/data/jpeg/README.md's score)."""
    a = srgb_white(np.reshape(matrix_a, (3, 3)), np.asarray(neutral_a))
    return angle_degrees(a, srgb_white(np.reshape(matrix_b, (3, 3)), np.asarray(neutral_b)))


@needs_exiftool
@pytest.mark.shared_data
def test_real_camera_jpegs_are_identified_and_carry_their_as_shot_white(tmp_path: Path) -> None:
    truth_path = SHARED_DATA / "jpeg" / "truth.json"
    if not truth_path.is_file():
        pytest.skip(f"no real camera JPEGs at {truth_path.parent}")
    truth = json.loads(truth_path.read_text())["files"]
    photos = [truth_path.parent / entry["path"] for entry in truth]
    out = tmp_path / "out"
    out.mkdir()
    result = run_cli("convert", *photos, "-o", out, "--method", "analytic", "-v")
    assert result.exit_code == 0, result.output
    assert result.output.count("white balance: maker notes") == len(truth)
    for entry in truth:
        dng = out / f"{Path(entry['path']).stem}.dng"
        with tifffile.TiffFile(dng) as tif:
            tags = tif.pages[0].tags
            matrix, neutral = numbers(tags["ColorMatrix1"].value), numbers(tags["AsShotNeutral"].value)
            assert tags["Make"].value == entry["make"] and tags["Model"].value == entry["model"]
        libraw = entry["libraw"]
        error = white_angle(matrix, neutral, libraw["xyz_to_cam"], entry["neutral"])
        assert error < 0.5, f"{entry['path']}: {error:.2f} degrees"

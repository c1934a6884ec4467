"""The command line through Typer's CliRunner: convert, errors, --version, --help, profiles, eval."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rawback import __version__
from rawback.camera import CameraProfile
from rawback.cli import app
from tests.conftest import REPO, SHARED_DATA
from tests.test_batch import write_photo


def run_cli(*args: str | Path, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, [str(a) for a in args], env=env)


def no_partial_files(folder: Path) -> bool:
    """atomic_output writes `.NAME.*.part` beside the target; none may survive."""
    return not any(p.name.endswith(".part") for p in folder.rglob("*"))


def one_error_line(result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]


# --- convert -------------------------------------------------------------------------------------


def test_convert_one_file_beside_input(tmp_path: Path) -> None:
    photo = write_photo(tmp_path / "photo.jpg")
    result = run_cli("convert", photo)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "photo.dng").stat().st_size > 0
    assert f"converted {photo} -> {tmp_path / 'photo.dng'}" in result.stdout
    assert "1 converted, 0 skipped, 0 failed" in result.stdout


def test_converted_dng_opens_in_libraw(tmp_path: Path) -> None:
    import rawpy

    photo = write_photo(tmp_path / "photo.jpg", size=(64, 48))
    assert run_cli("convert", photo, "-o", tmp_path / "x.dng", "--compression", "none").exit_code == 0
    with rawpy.imread(str(tmp_path / "x.dng")) as raw:
        assert raw.raw_image_visible.shape == (48, 64)


def test_convert_several_files_into_a_new_folder(tmp_path: Path) -> None:
    a = write_photo(tmp_path / "a.jpg")
    b = write_photo(tmp_path / "b.png", seed=1)
    out = tmp_path / "new" / "folder"
    result = run_cli("convert", a, b, "-o", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["a.dng", "b.dng"]


def test_output_file_with_several_inputs_is_an_error(tmp_path: Path) -> None:
    a, b = write_photo(tmp_path / "a.jpg"), write_photo(tmp_path / "b.jpg")
    result = run_cli("convert", a, b, "-o", tmp_path / "one.dng")
    assert result.exit_code == 2
    assert "names one file but 2 photos" in one_error_line(result)
    assert not (tmp_path / "one.dng").exists()


def test_refuses_to_overwrite_and_overwrite_replaces(tmp_path: Path) -> None:
    photo = write_photo(tmp_path / "photo.jpg")
    target = tmp_path / "photo.dng"
    target.write_bytes(b"precious")
    result = run_cli("convert", photo)
    assert result.exit_code == 1
    assert "already exists" in one_error_line(result) and "--overwrite" in result.stderr
    assert target.read_bytes() == b"precious"

    result = run_cli("convert", photo, "--overwrite")
    assert result.exit_code == 0, result.output
    assert target.read_bytes()[:4] in (b"II*\0", b"MM\0*")  # a TIFF/DNG now
    assert no_partial_files(tmp_path)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("empty.jpg", b""),
        ("text.jpg", b"this is not a photo\n"),
        ("truncated.jpg", None),
    ],
)
def test_corrupt_file_is_one_line_error(tmp_path: Path, name: str, content: bytes | None) -> None:
    bad = tmp_path / name
    if content is None:
        whole = write_photo(tmp_path / "whole.jpg", size=(64, 48)).read_bytes()
        content = whole[: len(whole) // 2]
    bad.write_bytes(content)
    result = run_cli("convert", bad, "-o", tmp_path / "out.dng")
    assert result.exit_code == 1
    assert str(bad) in one_error_line(result)
    assert not (tmp_path / "out.dng").exists()
    assert no_partial_files(tmp_path)


def test_missing_input_file(tmp_path: Path) -> None:
    result = run_cli("convert", tmp_path / "nope.jpg")
    assert result.exit_code == 1
    assert str(tmp_path / "nope.jpg") in one_error_line(result)


def test_missing_output_folder_is_a_clear_error_before_any_work(tmp_path: Path) -> None:
    photo = write_photo(tmp_path / "photo.jpg")
    result = run_cli("convert", photo, "-o", tmp_path / "missing" / "x.dng")
    assert result.exit_code == 1
    assert "the output folder does not exist" in one_error_line(result)
    assert not (tmp_path / "missing").exists()


def test_unwritable_output_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rawback import batch

    photo = write_photo(tmp_path / "photo.jpg")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    if os.geteuid() == 0:  # root may write anywhere: make the permission check say no
        real = os.access
        monkeypatch.setattr(
            batch.os, "access", lambda p, mode: real(p, mode) and not (Path(p) == locked and mode & os.W_OK)
        )
    result = run_cli("convert", photo, "-o", locked)
    assert result.exit_code == 1
    assert one_error_line(result) == f"error: {locked}: the output folder is not writable"
    assert list(locked.iterdir()) == []


def test_folder_given_to_convert_points_to_batch_and_fails_alone(tmp_path: Path) -> None:
    photo = write_photo(tmp_path / "a.jpg")
    folder = tmp_path / "my photos"
    folder.mkdir()
    result = run_cli("convert", photo, folder, "--method", "analytic")
    assert result.exit_code == 1
    assert one_error_line(result) == f"error: {folder}: is a folder; use `rawback batch '{folder}'`"
    assert (tmp_path / "a.dng").is_file()  # the photo beside it was still converted
    # A folder writes nothing, so it claims no output: `convert shots shots.jpg` converts the photo.
    shots = write_photo(tmp_path / "shots.jpg")
    (tmp_path / "shots").mkdir()
    result = run_cli("convert", tmp_path / "shots", shots, "--method", "analytic")
    assert result.exit_code == 1 and (tmp_path / "shots.dng").is_file()


def test_an_output_named_like_a_photo_is_refused(tmp_path: Path) -> None:
    """`-o new.jpg` made a folder called new.jpg."""
    result = run_cli("convert", write_photo(tmp_path / "a.jpg"), "-o", tmp_path / "new.jpg")
    assert result.exit_code == 2
    assert "a DNG's name ends in .dng" in one_error_line(result)
    assert not (tmp_path / "new.jpg").exists()


def test_a_dry_run_reports_a_missing_photo(tmp_path: Path) -> None:
    result = run_cli("convert", tmp_path / "nope.jpg", "--dry-run")
    assert result.exit_code == 1
    assert one_error_line(result) == f"error: {tmp_path / 'nope.jpg'}: no such file"


def test_conversion_options_reach_convert_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rawback import batch
    from rawback.convert import ConvertResult

    seen = []

    def fake_convert(source: Path, output: Path, options, progress=None) -> ConvertResult:
        seen.append(options)
        return ConvertResult(source, output, "generic", megapixels=0.0, seconds=0.0)

    monkeypatch.setattr(batch, "convert_file", fake_convert)
    photo = write_photo(tmp_path / "photo.jpg")
    args = ["--method", "analytic", "--camera", "canon-powershot-s40", "--transfer", "gamma2.2",
            "--tone-curve", "smoothstep", "--white-balance", "2,1,1.5", "--compression", "none",
            "--no-preview", "--overwrite"]  # fmt: skip
    run_cli("convert", photo, *args)
    (options,) = seen
    assert (options.method, options.camera, options.transfer, options.tone_curve) == (
        "analytic", "canon-powershot-s40", "gamma2.2", "smoothstep"
    )  # fmt: skip
    assert (options.white_balance, options.compression, options.preview, options.overwrite) == (
        "2,1,1.5", "none", False, True
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--white-balance", "pink"], "--white-balance"),
        (["--camera", "no-such-camera"], "unknown camera"),
        (["--method", "magic"], "--method"),
        (["--quiet", "--verbose"], "contradict"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path: Path, args: list[str], message: str) -> None:
    photo = write_photo(tmp_path / "photo.jpg")
    result = run_cli("convert", photo, *args)
    assert result.exit_code in (1, 2)
    assert message in one_error_line(result)
    assert not (tmp_path / "photo.dng").exists()


def test_unknown_transfer_is_rejected_by_the_parser(tmp_path: Path) -> None:
    result = run_cli("convert", write_photo(tmp_path / "photo.jpg"), "--transfer", "log")
    assert result.exit_code == 2


# --- version and help ----------------------------------------------------------------------------


def test_version() -> None:
    result = run_cli("--version")
    assert result.exit_code == 0 and result.stdout.strip() == f"rawback {__version__}"


def test_help_lists_commands() -> None:
    result = run_cli("--help")
    assert result.exit_code == 0
    for command in ("convert", "batch", "profile", "sample", "eval"):
        assert command in result.stdout


def test_help_is_instant_no_heavy_imports() -> None:
    code = (
        "import sys, rawback.cli; "
        "heavy = [m for m in ('numpy', 'rawpy', 'PIL', 'tifffile', 'skimage') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rawback", "--help"], capture_output=True, check=True)
    assert time.perf_counter() - start < 5.0  # generous for a loaded CI machine; ~0.15 s normally


# --- profiles ------------------------------------------------------------------------------------


def test_profile_list(tmp_path: Path) -> None:
    result = run_cli("profile", "list", env={"RAWBACK_PROFILE_DIR": str(tmp_path)})
    assert result.exit_code == 0
    for name in ("generic", "canon-powershot-s40", "kodak-dc120", "gopro-hero8-black"):
        assert name in result.stdout
    assert "RGGB" in result.stdout and "GRBG" in result.stdout
    # Whole camera names, even on an 80-column terminal (the test runner's width).
    assert "Canon PowerShot S40" in result.stdout and "GoPro HERO8 Black" in result.stdout
    # A user profile is marked: it is matched before the built-in ones, so it can hide them.
    from rawback import camera

    s40 = camera.builtin_profiles()["canon-powershot-s40"]
    (tmp_path / "my-s40.json").write_text(dataclasses.replace(s40, name="my-s40", tone_curve=None).to_json())
    lines = run_cli("profile", "list", env={"RAWBACK_PROFILE_DIR": str(tmp_path)}).stdout.splitlines()
    assert any(line.split()[:2] == ["my-s40", "+"] for line in lines)
    assert any(line.split()[:2] == ["canon-powershot-s40", "*"] for line in lines)


def test_profile_show() -> None:
    result = run_cli("profile", "show", "canon-powershot-s40")
    assert result.exit_code == 0
    for field in ("make: Canon", "model: PowerShot S40", "cfa_pattern: RGGB", "white_level: 1023",
                  "color_matrix_1:", "daylight neutral", "file (built-in):"):  # fmt: skip
        assert field in result.stdout


def test_profile_list_and_show_cover_the_camera_library(tmp_path: Path) -> None:
    env = {"RAWBACK_PROFILE_DIR": str(tmp_path)}
    result = run_cli("profile", "list", env=env)
    assert "814 cameras of LibRaw's colour table" in result.stdout
    assert "rawback profile list --library" in result.stdout
    assert "libraw-" not in result.stdout  # the library is listed on request only
    lines = run_cli("profile", "list", "--library", "eos 35", env=env).stdout.splitlines()
    assert lines[0] == "Canon (1)"
    assert lines[1].split() == [
        "EOS",
        "350D",
        "libraw-canon-eos-350d",
        "12",
        "bits,",
        "black",
        "128,",
        "white",
        "4095",
    ]
    assert "four colours: not usable" in run_cli("profile", "list", "--library", "powershot g1").stdout
    result = run_cli("profile", "show", "Canon EOS 350D", env=env)
    assert result.exit_code == 0
    shown = ("name: libraw-canon-eos-350d", "model: EOS 350D", "white_level: 4095", "daylight neutral")
    shown += ("colordata.cpp line 111", "library entry: 'Canon EOS 350D'", "file (camera library)")
    for field in shown:
        assert field in result.stdout


def test_profile_show_unknown() -> None:
    result = run_cli("profile", "show", "no-such-camera")
    assert result.exit_code == 1
    assert "unknown camera 'no-such-camera'" in one_error_line(result)


def test_profile_add_missing_file(tmp_path: Path) -> None:
    result = run_cli("profile", "add", tmp_path / "nope.CRW", env={"RAWBACK_PROFILE_DIR": str(tmp_path)})
    assert result.exit_code == 1
    assert "nope.CRW" in one_error_line(result)


def documented_profile_commands() -> list[list[str]]:
    """The `rawback profile add ... --builtin` commands in docs/profiles.md."""
    text = (REPO / "docs" / "profiles.md").read_text()
    return [
        line.split()[1:]
        for line in text.splitlines()
        if re.match(r"rawback profile add \S+ .*--builtin$", line)
    ]


def documented_curve_commands() -> dict[str, list[str]]:
    """The `rawback profile curve ... --builtin --overwrite` commands in docs/profiles.md, by the
    profile they finish."""
    text = (REPO / "docs" / "profiles.md").read_text()
    commands = [
        line.split()[1:]
        for line in text.splitlines()
        if re.match(r"rawback profile curve \S+ .*--builtin", line)
    ]
    return {args[args.index("--camera") + 1]: args for args in commands}


def test_docs_list_a_command_for_every_builtin_profile() -> None:
    from rawback.camera import builtin_folder

    names = {args[args.index("--name") + 1] for args in documented_profile_commands()}
    made = {p.stem for p in builtin_folder().glob("*.json")} - {"generic"}  # generic is hand-written
    assert names == made
    finished = {name for name, profile in builtin_profiles_in(builtin_folder()) if profile.tone_curve}
    assert set(documented_curve_commands()) == finished == {"canon-powershot-s40", "canon-powershot-g2"}


def builtin_profiles_in(folder: Path) -> list[tuple[str, CameraProfile]]:
    return [(p.stem, CameraProfile.from_json(p.read_text())) for p in sorted(folder.glob("*.json"))]


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"camera RAW files not found at {SHARED_DATA}")
@pytest.mark.parametrize("args", documented_profile_commands(), ids=lambda a: a[a.index("--name") + 1])
def test_documented_profile_add_reproduces_builtin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    """Each documented command, run into a user folder instead of the package, makes exactly the
    built-in profile that ships (the docs' paths are relative to the repository root)."""
    from rawback.camera import builtin_folder

    monkeypatch.chdir(REPO)
    args = [a for a in args if a != "--builtin"]
    result = run_cli(*args, env={"RAWBACK_PROFILE_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    name = args[args.index("--name") + 1]
    if name in documented_curve_commands():  # then its camera's finish, into the same user profile
        curve = [a for a in documented_curve_commands()[name] if a != "--builtin"]
        finished = run_cli(*curve, env={"RAWBACK_PROFILE_DIR": str(tmp_path)})
        assert finished.exit_code == 0, finished.output
    made = json.loads((tmp_path / f"{name}.json").read_text())
    assert made == json.loads((builtin_folder() / f"{name}.json").read_text())

    again = run_cli(*args, env={"RAWBACK_PROFILE_DIR": str(tmp_path)})
    assert again.exit_code == 1 and "already exists" in one_error_line(again)


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"camera RAW files not found at {SHARED_DATA}")
def test_added_profile_is_usable_by_name(tmp_path: Path) -> None:
    env = {"RAWBACK_PROFILE_DIR": str(tmp_path / "profiles")}
    raw = SHARED_DATA / "raw" / "kodak_dc50" / "DC0008L.KDC"
    assert run_cli("profile", "add", raw, "--name", "my-dc50", env=env).exit_code == 0
    assert "my-dc50" in run_cli("profile", "list", env=env).stdout
    photo = write_photo(tmp_path / "photo.jpg")
    result = run_cli("convert", photo, "--camera", "my-dc50", "--verbose", env=env)
    assert result.exit_code == 0, result.output
    assert "camera profile my-dc50 (from --camera)" in result.stdout


# --- sample and eval -----------------------------------------------------------------------------


def test_sample_writes_a_jpeg_and_refuses_overwrite(tmp_path: Path) -> None:
    from PIL import Image

    target = tmp_path / "chart.jpg"
    result = run_cli("sample", target, "--width", "192", "--height", "128")
    assert result.exit_code == 0, result.output
    with Image.open(target) as image:
        assert (image.format, image.size) == ("JPEG", (192, 128))
    assert run_cli("sample", target).exit_code == 1
    assert run_cli("sample", target, "--overwrite", "--width", "192", "--height", "128").exit_code == 0


def test_eval_bad_protocol_is_usage_error(tmp_path: Path) -> None:
    result = run_cli("eval", "--data", tmp_path, "--protocol", "nope")
    assert result.exit_code == 2
    assert "nope" in one_error_line(result)


def test_eval_empty_folder(tmp_path: Path) -> None:
    result = run_cli("eval", "--data", tmp_path)
    assert result.exit_code == 1
    assert "no RAW files" in one_error_line(result)


@pytest.mark.shared_data
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason=f"camera RAW files not found at {SHARED_DATA}")
def test_eval_on_one_small_raw(tmp_path: Path) -> None:
    result = run_cli(
        "eval", "--data", SHARED_DATA / "raw", "--include", "kodak_dc50/*", "--limit", "1",
        "--report-dir", tmp_path,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "[1/1] evaluating kodak_dc50/" in result.stdout
    assert "analytic" in result.stdout
    report = json.loads((tmp_path / "eval-rawback-diffusion.json").read_text())  # the default method
    assert len(report["images"]) == 1 and report["images"][0]["error"] is None
    assert report["rows"][0] == "diffusion (euler, 1 step)"


@pytest.mark.parametrize("size", [(1, 1), (21, 40), (40, 21)])
def test_convert_refuses_a_photo_too_small_for_a_raw_file_in_one_line(tmp_path: Path, size) -> None:
    """LibRaw and dcraw read no raw smaller than 22x22, so convert says so before decoding, with the
    size it needs (read_image alone accepts down to 2x2)."""
    photo = write_photo(tmp_path / "tiny.jpg", size=size)
    result = run_cli("convert", photo, "--method", "analytic")
    assert result.exit_code == 1
    assert "too small (at least 22x22 is needed)" in one_error_line(result)
    assert not (tmp_path / "tiny.dng").exists()
    assert (
        run_cli("convert", write_photo(tmp_path / "ok.jpg", size=(22, 22)), "--method", "analytic").exit_code
        == 0
    )


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("../escaped", "use letters, digits"),
        ("a/b", "use letters, digits"),
        ("My S40", "use letters, digits"),
        ("generic", "reserved for photos of unknown cameras"),
        ("Generic", "reserved for photos of unknown cameras"),
    ],
)
def test_a_profile_name_must_be_a_plain_file_name(tmp_path: Path, name: str, problem: str) -> None:
    from tests.test_profile_curve import write_raw

    write_raw(tmp_path / "IMG_0001.dng")
    env = {"RAWBACK_PROFILE_DIR": str(tmp_path / "profiles")}
    result = run_cli("profile", "add", tmp_path / "IMG_0001.dng", "--name", name, env=env)
    assert result.exit_code == 1 and problem in one_error_line(result)
    assert [p.name for p in tmp_path.rglob("*.json")] == []


def test_profile_curve_refuses_an_existing_name_before_measuring(tmp_path: Path) -> None:
    from tests.test_profile_curve import write_raw

    write_raw(tmp_path / "IMG_0001.dng")
    env = {"RAWBACK_PROFILE_DIR": str(tmp_path / "profiles")}
    assert run_cli("profile", "add", tmp_path / "IMG_0001.dng", "--name", "mine", env=env).exit_code == 0
    result = run_cli("profile", "curve", tmp_path / "IMG_0001.dng", "--name", "mine", env=env)
    assert result.exit_code == 1
    assert one_error_line(result).endswith("mine.json: already exists (pass --overwrite to replace it)")
    assert "samples" not in result.stdout  # nothing was measured


def test_profile_show_of_a_file_names_that_file_and_add_names_a_photo_given_for_a_raw(tmp_path: Path) -> None:
    from tests.test_profile_curve import write_raw

    raw = tmp_path / "IMG_0001.dng"
    write_raw(raw)
    shown = run_cli("profile", "show", raw)
    assert shown.exit_code == 0 and shown.stdout.splitlines()[-1] == f"file: {raw}"
    photo = write_photo(tmp_path / "photo.jpg")
    for given, problem in (
        (photo, "is a JPEG or PNG photo, not a camera RAW file"),
        (tmp_path, "is a folder"),
    ):
        result = run_cli("profile", "add", given, env={"RAWBACK_PROFILE_DIR": str(tmp_path / "p")})
        assert result.exit_code == 1 and problem in one_error_line(result)


@pytest.mark.parametrize(
    "command",
    [[], ["convert"], ["batch"], ["eval"], ["train"], ["calibrate"], ["sample"], ["profile", "curve"]],
)
def test_help_shows_flags_as_flags(command: list[str]) -> None:
    """A flag takes no value: its help line must not read `--overwrite <bool>` (Typer 0.29.0-0.29.2
    printed that; pyproject.toml leaves those releases out)."""
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0 and "--help" in result.output
    assert "<bool>" not in result.output and "BOOLEAN" not in result.output


def test_issue_21_an_unreadable_photo_among_several_fails_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Typer's `readable=True` made one unreadable input print the usage box and exit 2 before
    anything converted. Root reads any file, so the refusal is what os.open raises for a user."""
    from rawback.io import image

    photos = [write_photo(tmp_path / f"{name}.jpg") for name in ("a", "locked", "c")]
    real_open = os.open

    def open_as_a_user(path, flags, *args):
        if Path(path).name == "locked.jpg":
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(image.os, "open", open_as_a_user)
    result = run_cli("convert", *photos, "--method", "analytic")
    assert result.exit_code == 1
    assert one_error_line(result) == f"error: {photos[1]}: permission denied"
    assert "Usage" not in result.output
    assert (tmp_path / "a.dng").is_file() and (tmp_path / "c.dng").is_file()
    assert not (tmp_path / "locked.dng").exists()

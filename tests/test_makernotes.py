"""The as-shot white balance from maker notes (rawback.io.makernotes, rawback.io.exiftool): the
camera's own value on real JPEGs, one hand-made JPEG per make, hostile maker notes, and exiftool
missing, hung, dead or shared by threads. The JPEGs come from tools/makernote_jpegs.py; the real
ones from ../shared/data/jpeg (skipped when absent)."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from rawback.io import makernotes
from rawback.io.exiftool import ENV_PROGRAM, ExifTool, argument_line
from rawback.io.makernotes import AsShot, as_shot_from_record, as_shot_neutral, read_maker_notes
from tests.conftest import SHARED_DATA
from tools import makernote_jpegs as made
from tools.makernote_jpegs import ASCII, LONG, RATIONAL, SHORT

EXIFTOOL = shutil.which("exiftool")
needs_exiftool = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is not installed")
SHARED_JPEG = SHARED_DATA / "jpeg"


@pytest.fixture(scope="module")
def tool():
    with ExifTool() as exiftool:
        yield exiftool


def write(folder: Path, name: str | bytes, data: bytes) -> Path:
    path = os.path.join(os.fsencode(folder), os.fsencode(name))
    with open(path, "wb") as handle:
        handle.write(data)
    return Path(os.fsdecode(path))


# --- the camera's own value ---------------------------------------------------------------------


@needs_exiftool
@pytest.mark.shared_data
def test_real_jpegs_give_the_neutral_of_their_maker_notes(tool: ExifTool) -> None:
    if not (SHARED_JPEG / "truth.json").is_file():
        pytest.skip(f"real camera JPEGs not found at {SHARED_JPEG}")
    truth = json.loads((SHARED_JPEG / "truth.json").read_text())["files"]
    assert len(truth) == 18
    for entry in truth:
        reading = read_maker_notes(SHARED_JPEG / entry["path"], tool)
        assert reading.as_shot is not None, (entry["path"], reading)
        assert reading.as_shot.tag == entry["maker_note_tag"].split(" ")[0]
        assert reading.as_shot.raw_value == entry["raw_value"]
        np.testing.assert_allclose(as_shot_neutral(reading.as_shot), entry["neutral"], atol=1e-4)
        np.testing.assert_allclose(reading.as_shot.multipliers, entry["multipliers"], atol=1e-4)
        assert not reading.warnings


# Each make's rule on a JPEG made here: (builder, the tag used, its red and blue gains).
MADE = {
    "canon": (made.canon, "Canon:WB_RGGBLevelsAsShot", (1991 / 1019, 1678 / 1019)),
    "canon-300d": (made.canon_300d, "Composite:WB_RGGBLevels", (1719 / 831.5, 990 / 831.5)),
    "nikon": (made.nikon, "Nikon:WB_RBLevels", (461 / 256, 335 / 256)),
    "pentax": (made.pentax, "Pentax:WhitePoint", (12736 / 8192, 8000 / 8192)),
    "panasonic": (
        made.panasonic,
        "Panasonic:WBRedLevel/WBGreenLevel/WBBlueLevel",
        (2283 / 1054, 1752 / 1054),
    ),
    "olympus": (made.olympus, "Olympus:RedBalance/BlueBalance", (412 / 256, 290 / 256)),
    "samsung": (
        made.samsung,
        "Samsung:WB_RGGBLevelsUncorrected/WB_RGGBLevelsBlack",
        ((2116 - 64) / 1024, (1608 - 64) / 1024),
    ),
}


@needs_exiftool
@pytest.mark.parametrize("name", MADE)
def test_each_make_rule_on_a_made_jpeg(name: str, tool: ExifTool, tmp_path: Path) -> None:
    build, tag, (red, blue) = MADE[name]
    reading = read_maker_notes(write(tmp_path, f"{name}.jpg", build()), tool)
    assert reading.as_shot is not None, reading
    assert reading.as_shot.tag == tag
    np.testing.assert_allclose(reading.as_shot.multipliers, (red, 1, blue), rtol=1e-9)
    assert not reading.warnings


@needs_exiftool
def test_model_names_come_from_the_maker_note_model_id(tool: ExifTool, tmp_path: Path) -> None:
    canon = read_maker_notes(write(tmp_path, "c.jpg", made.canon()), tool).as_shot
    assert canon is not None and canon.model_names == ("EOS Digital Rebel XT", "350D", "Kiss Digital N")
    pentax = read_maker_notes(write(tmp_path, "p.jpg", made.pentax()), tool)
    assert pentax.model_names == ("*ist DL",)


@needs_exiftool
def test_pentax_fixed_preset_uses_the_preset_levels(tool: ExifTool, tmp_path: Path) -> None:
    """A JPEG shot with a fixed preset holds 8192 x4 in WhitePoint: the preset's levels stand in."""
    photo = made.pentax(
        [
            (0x0201, SHORT, None, (8192,) * 4),
            (0x0019, SHORT, 1, (1,)),
            (0x020D, SHORT, None, (12339, 8192, 8192, 8192)),
        ]
    )
    as_shot = read_maker_notes(write(tmp_path, "p.jpg", photo), tool).as_shot
    assert as_shot is not None and as_shot.tag == "Pentax:WB_RGGBLevelsDaylight"
    np.testing.assert_allclose(as_shot.multipliers, (12339 / 8192, 1, 1))
    assert any("fixed preset" in w for w in as_shot.warnings)


def test_neutral_is_the_inverse_gains_with_green_one() -> None:
    neutral = as_shot_neutral(AsShot((2.0, 1.0, 1.25), "t", "v"))
    np.testing.assert_allclose(neutral, (0.5, 1.0, 0.8))
    assert neutral.dtype == np.float64


# --- hostile maker notes: None, a warning, never an exception -----------------------------------

HOSTILE = {
    "canon-levels-zero": lambda: made.canon((0, 0, 0, 0)),
    "canon-red-zero": lambda: made.canon((0, 1016, 1022, 1678)),
    "canon-red-negative": lambda: made.canon((65000, 1016, 1022, 1678)),
    "canon-red-absurd": lambda: made.canon((30000, 16, 16, 1678)),
    "nikon-levels-text": lambda: made.nikon([(0x000C, ASCII, None, "1.8 x 1 1")]),
    "nikon-levels-2-rationals": lambda: made.nikon([(0x000C, RATIONAL, None, (461, 256, 335, 256))]),
    "nikon-levels-divide-by-zero": lambda: made.nikon(
        [(0x000C, RATIONAL, None, (461, 0, 335, 0, 1, 1, 1, 1))]
    ),
    "nikon-levels-long": lambda: made.nikon([(0x000C, LONG, None, (0, 0, 0, 0))]),
    "pentax-white-point-8192x4": lambda: made.pentax([(0x0201, SHORT, None, (8192,) * 4)]),
    "pentax-white-point-truncated": lambda: made.pentax([(0x0201, SHORT, None, (12736, 8192))]),
    "pentax-white-point-text": lambda: made.pentax([(0x0201, ASCII, None, "white")]),
    "panasonic-green-zero": lambda: made.panasonic(green=0),
    "samsung-black-above-levels": lambda: made.samsung(black=(5000, 5000, 5000, 5000)),
}


@needs_exiftool
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_values_are_rejected_with_a_warning(name: str, tool: ExifTool, tmp_path: Path, capfd) -> None:
    reading = read_maker_notes(write(tmp_path, f"{name}.jpg", HOSTILE[name]()), tool)
    assert reading.as_shot is None
    assert len(reading.warnings) == 1 and "ignored:" in reading.warnings[0], reading
    assert capfd.readouterr() == ("", "")  # exiftool's own messages never reach the terminal


# Broken structure: exiftool may drop the tag or the whole maker note; rawback just reads nothing.
BROKEN = {
    "count-huge": lambda: made.nikon([(0x000C, RATIONAL, 0x7FFFFFF0, b"\0" * 32)]),
    "canon-color-data-truncated": lambda: made.canon(color_data=(0x4001, SHORT, 582, b"\1\0" * 40)),
    "maker-note-garbage": lambda: made.jpeg_with_exif(
        made.exif_with_maker_note("Canon", "Canon EOS 5D", lambda _: b"\xff" * 300)
    ),
}


@needs_exiftool
@pytest.mark.parametrize("name", BROKEN)
def test_broken_maker_notes_give_nothing_without_raising(
    name: str, tool: ExifTool, tmp_path: Path, capfd
) -> None:
    reading = read_maker_notes(write(tmp_path, f"{name}.jpg", BROKEN[name]()), tool)
    assert reading.as_shot is None
    assert reading.notes or reading.warnings
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("nan 1024 1024 900", "not numbers"),
        ("inf 1024 1024 900", "not numbers"),
        ("1e400 1024 1024 900", "not finite"),
        ("(Binary data 1164 bytes, use -b option to extract)", "not numbers"),
        ("", "not numbers"),
        ("1 2 3", "3 values, expected 4"),
        (" ".join(["5"] * 100), "not numbers"),
        (True, "not a number"),
        ([1, 2, 3, 4], "not numbers"),
        ({"a": 1}, "not numbers"),
        ("1_000 1024 1024 900", "not numbers"),
        ("-2048 1024 1024 900", "not positive"),
        ("0 0 0 0", "not positive"),
        ("nan", "not numbers"),
        ("0x10 1024 1024 900", "not numbers"),
        ("1 1024 1024 900", "outside 0.1..10"),
    ],
)
def test_record_values_that_are_not_levels_are_rejected(value: object, reason: str) -> None:
    reading = as_shot_from_record({"Canon:WB_RGGBLevelsAsShot": value})
    assert reading.as_shot is None
    assert len(reading.warnings) == 1 and reason in reading.warnings[0]


def test_record_falls_back_to_the_next_rule_and_keeps_the_warning() -> None:
    record = {"Nikon:WB_RBLevels": "0 0 1 1", "Nikon:WB_GRBGLevels": "256 461 335 256"}
    as_shot = as_shot_from_record(record).as_shot
    assert as_shot is not None and as_shot.tag == "Nikon:WB_GRBGLevels"
    np.testing.assert_allclose(as_shot.multipliers, (461 / 256, 1, 335 / 256))
    assert len(as_shot.warnings) == 1 and "Nikon:WB_RBLevels" in as_shot.warnings[0]


def test_record_model_names_skip_unknown_and_odd_values() -> None:
    reading = as_shot_from_record(
        {
            "Canon:CanonModelID": "Unknown (0x80000999)",
            "Sony:SonyModelID": 42,
            "Pentax:PentaxModelID": "x" * 200,
        }
    )
    assert reading.model_names == ()
    assert reading.notes == ("no as-shot white balance in the maker notes",)


# --- exiftool missing, hung, dead, shared --------------------------------------------------------


def fake_exiftool(folder: Path, body: str) -> str:
    script = folder / "fake-exiftool"
    script.write_text("#!/bin/sh\n" + body + "\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


@pytest.fixture
def fresh_module(monkeypatch: pytest.MonkeyPatch):
    """The module's run-wide exiftool and notice as at the start of a run."""
    monkeypatch.setattr(makernotes, "_shared", None)
    monkeypatch.setattr(makernotes, "_notice_given", False)
    yield
    if makernotes._shared is not None:
        makernotes._shared.close()


def test_missing_exiftool_reads_nothing_and_says_so_once(
    fresh_module, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_PROGRAM, str(tmp_path / "no-such-exiftool"))
    photo = write(tmp_path, "c.jpg", made.canon())
    assert makernotes.start() is False
    reading = makernotes.read_maker_notes(photo)
    assert reading.as_shot is None and not reading.warnings and reading.notes
    assert makernotes.read_as_shot(photo) is None
    notice = makernotes.missing_notice()
    assert notice is not None and notice.startswith("exiftool not found")
    assert "apt-get install libimage-exiftool-perl" in notice and "brew install exiftool" in notice
    assert ENV_PROGRAM in notice
    assert makernotes.missing_notice() is None


def test_no_notice_when_exiftool_is_there(
    fresh_module, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV_PROGRAM, fake_exiftool(tmp_path, "exec cat > /dev/null"))
    assert makernotes.start() is True
    assert makernotes.missing_notice() is None


def test_hung_exiftool_is_restarted_once_then_turned_off(tmp_path: Path) -> None:
    program = fake_exiftool(tmp_path, "exec sleep 60")
    photo = write(tmp_path, "c.jpg", made.canon())
    with ExifTool(program, timeout_s=0.3) as exiftool:
        first = read_maker_notes(photo, exiftool)
        assert (
            first.as_shot is None and "did not answer within 0.3 s; it will be restarted" in first.warnings[0]
        )
        second = read_maker_notes(photo, exiftool)
        assert "maker notes are off for the rest of this run" in second.warnings[0]
        start = time.monotonic()
        third = read_maker_notes(photo, exiftool)
        assert time.monotonic() - start < 0.2  # no more waiting
        assert third.as_shot is None and not third.warnings and third.notes


def test_dead_exiftool_is_reported_with_its_last_words(tmp_path: Path) -> None:
    program = fake_exiftool(tmp_path, 'echo "Can\'t locate Image/ExifTool.pm in @INC" >&2; exit 2')
    with ExifTool(program, timeout_s=5) as exiftool:
        reading = read_maker_notes(write(tmp_path, "c.jpg", made.canon()), exiftool)
    assert reading.as_shot is None
    assert "exiftool stopped (exit status 2)" in reading.warnings[0]
    assert "Can't locate Image/ExifTool.pm" in reading.warnings[0]


@needs_exiftool
def test_a_restart_reads_again(tmp_path: Path) -> None:
    """Hung on the first start only: the restarted exiftool reads the next photo."""
    marker = tmp_path / "started-once"
    program = fake_exiftool(
        tmp_path, f'if [ -e "{marker}" ]; then exec "{EXIFTOOL}" "$@"; fi\ntouch "{marker}"\nexec sleep 60'
    )
    photo = write(tmp_path, "c.jpg", made.canon())
    with ExifTool(program, timeout_s=0.5) as exiftool:
        assert read_maker_notes(photo, exiftool).as_shot is None
        exiftool._timeout_s = 10  # Perl's start-up on a busy machine
        assert makernotes.read_as_shot(photo, exiftool) is not None


ODD_NAMES = [b"caf\xe9-latin1", "ünïcode", "new\nline", "carriage\rreturn", "-starts-with-dash",
             " leading space", "#hash", "dollar$and@at", 'quote"and\\backslash']  # fmt: skip


@needs_exiftool
@pytest.mark.parametrize("name", ODD_NAMES)
@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_odd_file_names_are_read(name: str | bytes, suffix: str, tool: ExifTool, tmp_path: Path) -> None:
    photo = write(
        tmp_path,
        os.fsencode(name) + suffix.encode(),
        made.canon() if suffix == ".jpg" else png_with_canon_exif(),
    )
    as_shot = read_maker_notes(photo, tool).as_shot
    assert as_shot is not None and as_shot.tag == "Canon:WB_RGGBLevelsAsShot"


def png_with_canon_exif() -> bytes:
    from PIL import Image

    jpeg = made.canon()
    at = jpeg.index(b"Exif\0\0")
    exif = jpeg[at : at - 2 + struct.unpack(">H", jpeg[at - 2 : at])[0]]
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG", exif=exif)
    return buffer.getvalue()


@needs_exiftool
@pytest.mark.parametrize("name", ODD_NAMES)
def test_odd_names_go_through_exiftools_argument_file(
    name: str | bytes, tool: ExifTool, tmp_path: Path
) -> None:
    """exiftool itself gets odd names right (read_maker_notes only ever gives it temporary files)."""
    photo = write(tmp_path, os.fsencode(name) + b".jpg", made.canon())
    line = argument_line(photo)
    assert line is not None
    answer = tool.query([*makernotes.EXIFTOOL_ARGUMENTS, line])
    assert as_shot_from_record(json.loads(answer.output)[0]).as_shot is not None


def test_a_name_with_a_newline_and_a_dollar_cannot_be_an_argument_line(tmp_path: Path) -> None:
    assert argument_line(tmp_path / "new\nline$dollar.jpg") is None
    assert argument_line(tmp_path / "new\nline.jpg").startswith(b"#[CSTR]")
    assert argument_line("-x.jpg") == os.fsencode(os.path.abspath("-x.jpg"))


def test_files_without_an_exif_block_are_not_sent_to_exiftool(tmp_path: Path) -> None:
    exiftool = ExifTool(fake_exiftool(tmp_path, "exec sleep 60"), timeout_s=0.1)
    tiff = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tiff, "TIFF")
    for name, data in (
        ("bare.jpg", made.jpeg_with_exif(b"")),
        ("photo.tif", tiff.getvalue()),
        ("text.jpg", b"hello"),
    ):
        reading = read_maker_notes(write(tmp_path, name, data), exiftool)
        assert reading.as_shot is None and reading.notes[0].startswith("no EXIF block"), name
    assert exiftool._process is None


@needs_exiftool
def test_threads_share_one_exiftool(tool: ExifTool, tmp_path: Path) -> None:
    photos = {
        write(tmp_path, f"{name}.jpg", build()): tag
        for name, (build, tag, _) in MADE.items()
        if name != "canon-300d"
    }
    results: dict[Path, str | None] = {}

    def read_all() -> None:
        for photo in photos:
            as_shot = read_maker_notes(photo, tool).as_shot
            results[photo] = as_shot.tag if as_shot else None

    threads = [threading.Thread(target=read_all) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == photos


@needs_exiftool
def test_close_ends_the_process_and_a_later_query_starts_another(tmp_path: Path) -> None:
    photo = write(tmp_path, "c.jpg", made.canon())
    exiftool = ExifTool()
    assert exiftool.start() is True
    process = exiftool._process
    assert read_maker_notes(photo, exiftool).as_shot is not None
    exiftool.close()
    assert process is not None and process.poll() is not None
    assert read_maker_notes(photo, exiftool).as_shot is not None
    exiftool.close()


@needs_exiftool
def test_a_missing_file_reads_nothing(tool: ExifTool, tmp_path: Path) -> None:
    reading = read_maker_notes(tmp_path / "gone.jpg", tool)
    assert reading.as_shot is None and not reading.warnings and reading.notes


@needs_exiftool
def test_the_hostile_input_corpus_never_raises_or_hangs(tool: ExifTool, tmp_path: Path) -> None:
    from tools.make_bad_inputs import make_corpus

    start = time.monotonic()
    readings = {path.name: read_maker_notes(path, tool) for path in make_corpus(tmp_path / "corpus")}
    assert time.monotonic() - start < 60
    assert readings["jpeg-makernote-canon-valid.jpg"].as_shot is not None
    assert readings["fifo.jpg"].notes == ("maker notes not read: not a readable regular file",)
    assert not any("did not answer" in w or "stopped" in w for r in readings.values() for w in r.warnings)
    assert tool.off_reason == ""


@needs_exiftool
def test_requests_are_answered_in_any_order_of_collection(
    tool: ExifTool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`request` before the decode, `result` after: several may be out at once."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    photos = {write(tmp_path, f"{name}.jpg", build()): tag for name, (build, tag, _) in MADE.items()}
    pending = {photo: makernotes.request(photo, tool) for photo in photos}
    for photo in reversed(list(pending)):
        as_shot = pending[photo].result()
        assert as_shot.as_shot is not None and as_shot.as_shot.tag == photos[photo]
        assert pending[photo].result() is as_shot  # collected once
    assert not list(tmp_path.glob("rawback-*.exif"))


@needs_exiftool
def test_a_request_dropped_unread_leaves_no_temporary_file(
    tool: ExifTool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gc

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    pending = makernotes.request(write(tmp_path, "c.jpg", made.canon()), tool)
    assert len(list(tmp_path.glob("rawback-*.exif"))) == 1
    del pending
    gc.collect()
    assert not list(tmp_path.glob("rawback-*.exif"))
    assert read_maker_notes(write(tmp_path, "p.jpg", made.pentax()), tool).as_shot is not None


def test_requests_out_when_exiftool_is_restarted_fail_alone(tmp_path: Path) -> None:
    """A hang kills the process: requests sent to it fail without counting as a second failure."""
    photo = write(tmp_path, "c.jpg", made.canon())
    with ExifTool(fake_exiftool(tmp_path, "exec sleep 60"), timeout_s=0.3) as exiftool:
        first, second = makernotes.request(photo, exiftool), makernotes.request(photo, exiftool)
        assert "it will be restarted" in first.result().warnings[0]
        assert "restarted before it answered" in second.result().warnings[0]
        assert exiftool.off_reason == ""


def test_no_temporary_file_is_a_warning_not_an_exception(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))
    photo = write(tmp_path, "c.jpg", made.canon())
    reading = read_maker_notes(photo, ExifTool(fake_exiftool(tmp_path, "exec sleep 60")))
    assert reading.as_shot is None and "no temporary file" in reading.warnings[0]


@needs_exiftool
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_exiftool_ends_when_rawback_is_killed(tmp_path: Path) -> None:
    """After SIGKILL (the OOM killer) exiftool's input closes and it polls it for ever, 100 times a
    second; it now gets SIGTERM when rawback's process dies."""
    script = (
        "import os, sys\n"
        "from rawback.io.exiftool import ExifTool\n"
        "tool = ExifTool()\n"
        "assert tool.start()\n"
        "print(tool._process.pid, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    pid = int(done.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not _running(pid):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    pytest.fail(f"exiftool {pid} outlived the rawback process that started it")


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's zombie waits for whoever adopted it to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return state not in ("Z", "X")

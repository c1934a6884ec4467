"""Regression tests for issue 21 (hostile and broken input) that cross modules; the others sit
beside the module they test (test_batch.py, test_atomic.py, test_train.py), named test_issue_21_*."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rawback import camera
from rawback.errors import InputError
from rawback.evaluate.report import write_reports
from rawback.evaluate.run import EvalOptions, run_eval
from rawback.io.files import find_raw_files
from rawback.io.raw import read_make_model, read_raw
from rawback.train.data import cache_key
from tests.helpers import write_synthetic_dng


@pytest.fixture()
def non_utf8_raw(tmp_path: Path) -> Path:
    """A RAW whose name is not valid UTF-8 (Latin-1 'café', copied from another system)."""
    folder = tmp_path / "raws"
    folder.mkdir()
    write_synthetic_dng(folder / "plain.dng", 0)
    os.rename(folder / "plain.dng", os.fsencode(folder) + b"/caf\xe9.dng")
    (path,) = folder.iterdir()
    return path


def test_issue_21_raw_files_with_non_utf8_names_are_read(non_utf8_raw: Path, tmp_path: Path) -> None:
    """rawpy.imread(str(path)) raised UnicodeEncodeError in eval, train, profile add and --camera."""
    assert read_raw(non_utf8_raw).mosaic.shape == (144, 176)
    assert read_make_model(non_utf8_raw) == ("rawback", "generic camera")
    assert camera.profile_from_raw(non_utf8_raw).cfa_pattern == read_raw(non_utf8_raw).pattern
    assert len(cache_key(non_utf8_raw)) == 16
    assert find_raw_files(non_utf8_raw.parent) == [non_utf8_raw]
    report = run_eval(EvalOptions(data=non_utf8_raw.parent))
    assert not report.failed
    json_path, md_path = write_reports(report, tmp_path / "reports")
    assert "caf\\udce9.dng" in md_path.read_text() and "caf\\udce9.dng" in json_path.read_text()


def test_issue_21_libraw_messages_about_a_damaged_raw_go_into_its_one_error_line(
    shared_raw: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """LibRaw writes "data corrupted at N" or "Unexpected end of file" on its own stderr (file
    descriptor 2), which stood as a stray line between eval's progress lines and said nothing of
    the file it meant. It now goes into the file's error, and eval goes on with the other files."""
    folder = tmp_path / "raws"
    folder.mkdir()
    crw = (shared_raw / "canon_g2" / "CRW_0304.CRW").read_bytes()
    flipped = bytearray(crw)
    for offset in range(4000, len(flipped), len(flipped) // 200):  # damage the compressed data
        flipped[offset] ^= 0xFF
    (folder / "flipped.CRW").write_bytes(bytes(flipped))
    kdc = (shared_raw / "kodak_dc120" / "P003908.KDC").read_bytes()
    (folder / "cut.KDC").write_bytes(kdc[: len(kdc) // 2])
    write_synthetic_dng(folder / "good.dng", 0)

    with pytest.raises(InputError, match="data corrupted at"):
        read_raw(folder / "flipped.CRW")
    with pytest.raises(InputError, match="Unexpected end of file"):
        read_raw(folder / "cut.KDC")
    report = run_eval(EvalOptions(data=folder))
    assert sorted(image.file for image in report.failed) == ["cut.KDC", "flipped.CRW"]
    assert [image.file for image in report.images if image.error is None] == ["good.dng"]
    assert capfd.readouterr().err == ""

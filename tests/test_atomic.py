"""Outputs appear whole or not at all, and existing files are never clobbered."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from rawback.errors import OutputError
from rawback.io.atomic import atomic_output, remove_stale_parts, temp_prefix


def test_writes_through_a_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "out.dng"
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b"data")
        assert not target.exists()
    assert target.read_bytes() == b"data"
    assert os.listdir(tmp_path) == ["out.dng"]


def test_existing_file_is_kept_unless_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "out.dng"
    target.write_bytes(b"old")
    with pytest.raises(OutputError, match="already exists"), atomic_output(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"old"
    with atomic_output(target, overwrite=True) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["out.dng"]


def test_file_appearing_meanwhile_is_not_clobbered(tmp_path: Path) -> None:
    target = tmp_path / "out.dng"
    with pytest.raises(OutputError, match="already exists"), atomic_output(target) as tmp:
        tmp.write_bytes(b"mine")
        target.write_bytes(b"another process")
    assert target.read_bytes() == b"another process"


def test_error_while_writing_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.dng"
    with pytest.raises(RuntimeError), atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("encoder crashed")
    assert os.listdir(tmp_path) == []


def test_full_disk_is_a_clear_error_and_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "out.dng"
    with pytest.raises(OutputError, match="no space left") as info, atomic_output(target) as tmp:
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert str(info.value).startswith(str(target)) and "\n" not in str(info.value)
    assert os.listdir(tmp_path) == []


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"), atomic_output(tmp_path / "no" / "x.dng"):
        pass


def test_unwritable_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Tests run as root in CI, which may write anywhere: simulate what a normal user gets.
    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr("tempfile.mkstemp", refuse)
    with pytest.raises(OutputError, match="not writable"), atomic_output(tmp_path / "x.dng"):
        pass


def test_new_files_get_the_usual_permissions(tmp_path: Path) -> None:
    """Regression: outputs were left 0600 by mkstemp, unreadable for the group and others."""
    old = os.umask(0o022)
    try:
        with atomic_output(tmp_path / "out.dng") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "out.dng").stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize("length", [237, 245, 251, 255])
def test_issue_21_a_name_near_the_length_limit_is_written(tmp_path: Path, length: int) -> None:
    """The temporary name added 15 characters to the output's: names of 237-251 characters
    failed after the conversion's work was done."""
    target = tmp_path / ("é" * 3 + "x" * (length - 6 - 4) + ".dng")  # "é" is 2 bytes in UTF-8
    assert len(os.fsencode(target.name)) == length
    with atomic_output(target) as tmp:
        assert len(os.fsencode(tmp.name)) <= 255
        tmp.write_bytes(b"data")
    assert target.read_bytes() == b"data"
    assert os.listdir(tmp_path) == [target.name]


def test_issue_21_what_kill_9_left_of_a_long_name_is_found_and_removed(tmp_path: Path) -> None:
    target = tmp_path / ("x" * 247 + ".dng")
    other = tmp_path / ("x" * 246 + "y.dng")  # the same first bytes: only the hash tells them apart
    stale, foreign = (Path(f"{tmp_path}/{temp_prefix(p.name)}k3j9x_ab.part") for p in (target, other))
    for part in (stale, foreign):
        part.write_bytes(b"half a DNG")
        os.utime(part, (0, 0))
    assert remove_stale_parts([target]) == 1
    assert not stale.exists() and foreign.exists()


def test_issue_21_a_folder_that_cannot_be_made_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unwritable place for eval's reports or a user profile gave a PermissionError traceback
    (root, which these tests run as in CI, may write anywhere: the refusal is simulated)."""
    from rawback.io.atomic import make_folder

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(OutputError, match=r"reports: cannot create the folder \(permission denied\)$"):
        make_folder(tmp_path / "reports")
    monkeypatch.undo()
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        make_folder(tmp_path / "file")

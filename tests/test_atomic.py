"""Outputs appear whole or not at all, and existing files are never clobbered."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from rawback.errors import OutputError
from rawback.io.atomic import atomic_output


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

"""Write a file so that readers only ever see the old file or the complete new one."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from rawback.errors import DiskFullError, OutputError, OutputExistsError


def check_writable(path: Path, *, overwrite: bool) -> None:
    """Fail early, before any work, when `path` exists and may not be replaced."""
    if path.exists() and not overwrite:
        raise OutputExistsError(path)
    if path.is_dir():
        raise OutputError(path, "is a folder, not a file")


def make_folder(folder: Path) -> None:
    """`folder` and its parents, or one OutputError line saying why not (a PermissionError's
    traceback otherwise)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise OutputError(folder, "is a file, not a folder") from exc
    except PermissionError as exc:
        raise OutputError(folder, "cannot create the folder (permission denied)") from exc
    except OSError as exc:
        raise OutputError(folder, f"cannot create the folder ({exc.strerror or exc})") from exc


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    # The only portable way to read it is to set it, then restore it; under a lock, or two threads
    # of a pipelined batch (rawback.pipeline) could leave it at 0 for the rest of the process.
    with _UMASK_LOCK:
        mask = os.umask(0)
        os.umask(mask)
    return mask


PART_SUFFIX = ".part"
STALE_AFTER = 3600.0  # seconds: no conversion keeps a temporary file open this long
NAME_MAX = 255  # bytes in one file name on every file system rawback writes to
RANDOM_CHARS = 8  # what tempfile.mkstemp puts between the prefix and the suffix


def temp_prefix(name: str) -> str:
    """The start of the temporary file names for output `name`: `.NAME.`, or for a name so long
    that the temporary one would pass the file system's limit, as much of it as fits and a hash of
    the whole, `.NA~1a2b3c4d.` (a 251-character name failed after its work was done)."""
    whole = f".{name}."
    room = NAME_MAX - RANDOM_CHARS - len(PART_SUFFIX)
    if len(os.fsencode(whole)) <= room:
        return whole
    digest = hashlib.sha1(os.fsencode(name)).hexdigest()[:8]
    # Cut on bytes; a character cut in two (or a byte that is not UTF-8) is dropped.
    keep = os.fsencode(name)[: room - len(digest) - 3].decode("utf-8", "ignore")
    return f".{keep}~{digest}."


def remove_stale_parts(outputs: Iterable[Path], *, older_than: float = STALE_AFTER) -> int:
    """Delete the temporary files that `atomic_output` left for these outputs when its process
    was killed outright (`kill -9`, a lost machine), which no handler can clean up. Only files of
    its own naming, `temp_prefix(NAME) + XXXXXXXX.part` beside NAME, untouched for `older_than`
    seconds (a live writer's file is younger). Each folder is listed once. Returns how many were
    removed."""
    wanted: dict[Path, set[str]] = {}
    for output in outputs:
        wanted.setdefault(output.parent, set()).add(temp_prefix(output.name))
    removed = 0
    now = time.time()
    for folder, names in wanted.items():
        try:
            entries = list(os.scandir(folder))
        except OSError:  # not created yet, or unreadable: nothing of ours in it
            continue
        for entry in entries:
            name = entry.name
            if not name.endswith(PART_SUFFIX):
                continue
            prefix = name[: -len(PART_SUFFIX) - RANDOM_CHARS]  # ".a.dng.k3j9x0ab.part" -> ".a.dng."
            with contextlib.suppress(OSError):
                if prefix in names and now - entry.stat().st_mtime > older_than:
                    os.unlink(entry.path)
                    removed += 1
    return removed


@contextlib.contextmanager
def atomic_output(path: Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success move it into place.

    The temporary file lives in the destination folder so the final move is a rename on one
    file system. Without `overwrite` the move is a hard link, which fails if `path` appeared in the
    meantime (another process), so an existing file is never clobbered. On any error the temporary
    file is removed and nothing partial is left behind.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    check_writable(path, overwrite=overwrite)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=PART_SUFFIX, dir=folder)
    except FileNotFoundError as exc:
        raise OutputError(path, f"output folder {folder} does not exist") from exc
    except PermissionError as exc:
        raise OutputError(path, f"output folder {folder} is not writable") from exc
    except OSError as exc:
        raise OutputError(path, f"cannot create a file in {folder}: {exc.strerror}") from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        # mkstemp creates the file private (0600); a DNG should get the permissions any new file
        # gets (0666 minus the umask), like a file written with open().
        os.chmod(tmp, 0o666 & ~current_umask())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError as exc:
                raise OutputExistsError(path) from exc
            except OSError as exc:
                if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV):
                    raise
                # File systems without hard links: fall back to a rename after one more check.
                if path.exists():
                    raise OutputExistsError(path) from exc
                os.replace(tmp, path)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFullError(path) from exc
        if isinstance(exc, PermissionError):
            raise OutputError(path, "permission denied") from exc
        raise OutputError(path, f"cannot write: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()

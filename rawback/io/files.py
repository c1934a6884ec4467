"""Finding the files a command works on: photos for `convert`/`batch`, RAW files for `train`,
`eval` and `calibrate`, in a deterministic order, hidden entries skipped."""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path

from rawback.errors import InputError, RawbackError
from rawback.io.image import IMAGE_SUFFIXES
from rawback.io.raw import RAW_SUFFIXES


def matches_glob(rel: Path, patterns: tuple[str, ...]) -> bool:
    """Whether a path relative to the data folder matches any `fnmatch` glob (`*` also matches `/`)."""
    return any(fnmatch.fnmatch(str(rel), pattern) for pattern in patterns)


def find_raw_files(data: Path, include: tuple[str, ...] = (), exclude: tuple[str, ...] = ()) -> list[Path]:
    """RAW files below `data` (sorted, hidden entries skipped) whose path relative to `data`
    matches a glob of `include` (all when empty) and none of `exclude`."""
    if not data.is_dir():
        raise RawbackError(f"{data}: not a folder")
    found = []
    for path in sorted(data.rglob("*")):
        rel = path.relative_to(data)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        if path.suffix.lower() not in RAW_SUFFIXES:
            continue
        if (include and not matches_glob(rel, include)) or matches_glob(rel, exclude):
            continue
        found.append(path)
    return found


def no_raw_files(data: Path, include: tuple[str, ...], what: str) -> RawbackError:
    """The error for an empty selection, naming the --include that emptied it."""
    matching = f" matching --include {' '.join(include)}" if include else ""
    return RawbackError(f"{data}: no RAW files {what}{matching}")


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def find_images(root: Path, *, exclude: Path | None = None) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Photos under `root`, recursively, in a deterministic order; and the folders that cannot be
    read, each with its one-line error.

    Hidden files and folders (names starting with ".") are skipped, and so is `exclude` (an output
    folder inside the input folder), so a re-run never picks up its own outputs or temporaries.
    Symbolic links to folders are not followed (no loops).
    """
    if not root.is_dir():
        raise InputError(root, "no such folder" if not root.exists() else "is not a folder")
    skip = resolved(exclude) if exclude is not None else None
    unreadable: list[tuple[Path, str]] = []

    def on_error(exc: OSError) -> None:
        folder = Path(exc.filename)
        unreadable.append((folder, f"{folder}: cannot read folder ({exc.strerror})"))

    found = []
    for folder, dirs, files in os.walk(root, onerror=on_error):
        here = Path(folder)
        dirs[:] = [d for d in dirs if not d.startswith(".") and resolved(here / d) != skip]
        found += [here / f for f in files if not f.startswith(".") and is_image(Path(f))]
    # Sort by path components, not strings, so "a/b.jpg" and "a-b.jpg" order the same everywhere.
    found.sort(key=lambda p: p.relative_to(root).parts)
    return found, unreadable


def resolved(path: Path) -> Path:
    """The absolute path with links followed as far as they go: a link that loops (a -> a) stays
    as it is instead of stopping the whole command (RuntimeError from Path.resolve)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return path.absolute()

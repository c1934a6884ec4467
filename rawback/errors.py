"""The exceptions rawback raises for problems a user can fix.

Every message is one line that names the file and the problem, so the CLI can print it as it is.
Anything else that escapes is a bug.
"""

from __future__ import annotations

from pathlib import Path


def first_line(exc: BaseException) -> str:
    """A library exception's message cut to its first line (its type when it has none), for the
    parenthesis of a one-line error."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class RawbackError(Exception):
    """Base class: a problem with the user's input, output or settings."""


class InputError(RawbackError):
    """An input file cannot be used (missing, empty, truncated, not an image, too large...)."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class OutputError(RawbackError):
    """An output cannot be written (exists, folder unwritable, disk full...)."""

    def __init__(self, path: Path | str, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class OutputExistsError(OutputError):
    """The output exists and may not be replaced (no --overwrite): for `batch`, work another
    process already did."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(path, "already exists (pass --overwrite to replace it)")


class DiskFullError(OutputError):
    """No space left where the output goes: every later photo would fail the same way, so a batch
    stops here (and resumes when space is freed)."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(path, "no space left on the device")


class ProfileError(RawbackError):
    """A camera profile is unknown, malformed or cannot be extracted."""


class UsageError(RawbackError):
    """Options that contradict each other or are out of range."""

"""The Typer app itself: the `rawback` and `rawback profile` groups, exit statuses, how a
RawbackError is printed, and what only a whole process sets up (`run`: SIGTERM, stream errors).

The commands live in the modules beside this one and register on `app` when rawback.cli imports
them. Nothing heavy is imported here, so `rawback --help` stays instant.
"""

import contextlib
import io
import sys
from collections.abc import Iterator
from typing import Annotated

import typer

from rawback import __version__
from rawback.errors import RawbackError, UsageError
from rawback.text import printable

app = typer.Typer(
    help="Turn JPEG photos back into camera RAW files (DNG).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # a bug's traceback, not megabytes of pixel arrays
)
profile_app = typer.Typer(
    help="List, show and add camera profiles, and measure a camera's JPEG finish (curve).",
    no_args_is_help=True,
)
app.add_typer(profile_app, name="profile")

EXIT_FAILED = 1  # a file failed, or a RawbackError
EXIT_USAGE = 2  # options contradict each other (the status Typer uses for its own usage errors)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT); `run` turns it into EXIT_TERMINATED after SIGTERM
EXIT_TERMINATED = 143  # 128 + SIGTERM


def echo(line: str) -> None:
    """typer.echo for lines that may hold text from files: control characters come out escaped."""
    typer.echo(printable(line))


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a RawbackError into `error: <message>` on stderr and a non-zero exit."""
    try:
        yield
    except RawbackError as exc:
        typer.echo(f"error: {printable(str(exc))}", err=True)
        raise typer.Exit(EXIT_USAGE if isinstance(exc, UsageError) else EXIT_FAILED) from None


def _version(value: bool) -> None:
    if value:
        typer.echo(f"rawback {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """Turn JPEG photos back into camera RAW files (DNG)."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill, timeout, docker stop, Slurm), handled as Ctrl-C is: no partial file is left,
    training saves a checkpoint. `run` gives it the exit status 128 + 15."""

    received = False


def _raise_terminated(signum: int, frame: object) -> None:
    import signal

    # Slurm signals every process and torchrun forwards the signal: a second one must not cut the
    # clean-up (a checkpoint being saved) short.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    Terminated.received = True
    raise Terminated


def run() -> None:
    """The `rawback` command (and `python -m rawback`): the app, with what only a whole process
    should set up, so that programs and tests calling `app` in-process keep their own."""
    import signal

    # A file name that is not valid UTF-8 (copied from another system) reaches Python with
    # surrogates; print it escaped rather than let the first such name stop a whole batch.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        app(prog_name="rawback")
    except SystemExit as exc:
        if exc.code == EXIT_INTERRUPTED and Terminated.received:  # every command exits so on an interrupt
            raise SystemExit(EXIT_TERMINATED) from None
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)

"""One persistent exiftool process per run, shared by threads, for reading maker notes.

Why exiftool: it decodes (and decrypts) the maker notes of every make rawback reads a white balance
from, including Canon's ColorData and Sony's enciphered 0x2010/0x9400 blocks, which exiv2 leaves as
raw bytes (docs/white-balance.md has the comparison). Its cost is Perl's start-up (~0.2-0.4 s), so
one process runs in `-stay_open` mode for the whole run: `start()` launches it early, `submit()`
sends a request and returns at once, so that exiftool works while the caller decodes its photo,
and `Pending.answer()` collects the answer (~20 ms of exiftool's time a photo).

Failure is never fatal: when exiftool is missing, hung or dead, the answer is no output and why.
A hung or dead process is killed and restarted once; a second failure turns it off for the run.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import ctypes
import itertools
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

ENV_PROGRAM = "RAWBACK_EXIFTOOL"  # the exiftool to run: a path or a name on PATH
DEFAULT_TIMEOUT_S = 10.0  # per query; the first one includes Perl's start-up
_MAX_OUTPUT = 1 << 20  # bytes; the tags rawback asks for take a few hundred

INSTALL_HINT = (
    "install it with `apt-get install libimage-exiftool-perl` (Debian/Ubuntu), "
    "`brew install exiftool` (macOS) or from https://exiftool.org (Windows), "
    f"or point {ENV_PROGRAM} at it"
)


def find_program() -> tuple[str | None, str]:
    """The exiftool to run and, when there is none, why: RAWBACK_EXIFTOOL when set (a path, or a
    name looked up on PATH), else `exiftool` on PATH."""
    wanted = os.environ.get(ENV_PROGRAM)
    if wanted:
        found = shutil.which(wanted)
        if found:
            return found, ""
        return None, f"{ENV_PROGRAM}={wanted} is not an executable program"
    found = shutil.which("exiftool")
    return (found, "") if found else (None, "exiftool is not on PATH")


@dataclass(frozen=True)
class Answer:
    """What one query gave: exiftool's standard output, or None and why."""

    output: str | None
    problem: str = ""
    fresh: bool = True  # False: the problem was reported before (exiftool is off for the run)


class ExifTool:
    """A `exiftool -stay_open True -@ -` process, started lazily, shared under a lock.

    Arguments go one per line on its standard input; `-execute<N>` runs them and exiftool answers
    on standard output, ending with `{ready<N>}`. A reader thread turns the output into lines, so a
    query can wait with a timeout on any platform.
    """

    def __init__(self, program: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._program = program
        self._timeout_s = timeout_s
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        self._stderr: collections.deque[bytes] = collections.deque(maxlen=5)
        self._pid = os.getpid()  # a forked child must not share its parent's pipes
        self._numbers = itertools.count(1)
        self._answers: dict[int, bytes] = {}  # answers read for requests not collected yet
        self._generation = 0  # counts processes started: a request dies with its process
        self._restarts_left = 1
        self.off_reason = ""  # set when exiftool is missing or was turned off for the run
        self.missing = False  # not found, or could not be started
        self._atexit = False
        self._stderr_pump: threading.Thread | None = None

    # --- life cycle ------------------------------------------------------------------------------

    def start(self) -> bool:
        """Launch exiftool now (it is launched on the first query otherwise); False when it is
        missing or off. Returns at once: Perl starts up while the caller decodes its photo."""
        with self._lock:
            return self._ensure_started()

    def close(self) -> None:
        """Ask exiftool to finish (kill it after 2 s); a later query starts a new one."""
        with self._lock:
            self._stop(polite=True)

    def __enter__(self) -> ExifTool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _ensure_started(self) -> bool:
        if self.off_reason:
            return False
        if self._process is not None and self._pid != os.getpid():
            self._process = None  # forked: the parent owns that process and its pipes
        if self._process is not None:
            return True
        program = self._program
        if program is None:
            program, why = find_program()
            if program is None:
                self.off_reason, self.missing = why, True
                return False
        try:
            process = subprocess.Popen(
                [program, "-stay_open", "True", "-@", "-"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                # In rawback's process group, so that Ctrl-C and a terminal's hang-up end it too:
                # at the end of its input exiftool does not exit but polls it, 100 times a second.
                preexec_fn=_ends_with_parent(),
            )
        except OSError as error:
            self.off_reason = f"exiftool could not be started ({error.strerror or error})"
            self.missing = True
            return False
        self._process, self._pid = process, os.getpid()
        self._generation += 1
        self._answers.clear()
        self._lines = queue.Queue()
        self._stderr.clear()
        lines = self._lines
        threading.Thread(
            target=_pump, args=(process.stdout, lines.put, lambda: lines.put(None)), daemon=True
        ).start()
        self._stderr_pump = threading.Thread(
            target=_pump, args=(process.stderr, self._stderr.append), daemon=True
        )
        self._stderr_pump.start()
        if not self._atexit:
            atexit.register(self.close)
            self._atexit = True
        return True

    def _stop(self, polite: bool) -> None:
        process, self._process = self._process, None
        if process is None or self._pid != os.getpid():
            return
        if polite and process.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                process.stdin.write(b"-stay_open\nFalse\n")
                process.stdin.flush()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=2)
        if process.poll() is None:
            process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=2)
        for stream in (process.stdin, process.stdout, process.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.close()

    # --- queries ---------------------------------------------------------------------------------

    def submit(self, arguments: Sequence[bytes]) -> Pending:
        """Send exiftool `arguments` (each one argfile line, without its newline; see
        `argument_line`) now, and return at once: exiftool works while the caller decodes its
        photo, and `Pending.answer()` collects the answer. Answers come in the order asked."""
        with self._lock:
            was_off = bool(self.off_reason)
            if not self._ensure_started():
                return Pending(self, 0, 0, Answer(None, self.off_reason, fresh=not was_off))
            number = next(self._numbers)
            request = b"".join(a + b"\n" for a in arguments) + b"-execute%d\n" % number
            try:
                self._process.stdin.write(request)
                self._process.stdin.flush()
            except (OSError, ValueError):
                return Pending(self, number, self._generation, self._failed(self._died()))
            return Pending(self, number, self._generation)

    def query(self, arguments: Sequence[bytes]) -> Answer:
        """Send `arguments` and wait for exiftool's standard output (see `submit`)."""
        return self.submit(arguments).answer()

    def _answer(self, number: int, generation: int) -> Answer:
        with self._lock:
            if generation != self._generation or self._process is None:
                return Answer(None, "exiftool was restarted before it answered")
            deadline = time.monotonic() + self._timeout_s
            while number not in self._answers:
                problem = self._read_one(deadline)
                if problem:
                    return self._failed(problem)
            return Answer(self._answers.pop(number).decode("utf-8", errors="replace"))

    def _read_one(self, deadline: float) -> str:
        """Read exiftool's next answer into `_answers`; a problem, or "" when one came."""
        output = bytearray()
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return f"exiftool did not answer within {self._timeout_s:g} s"
            if line is None:
                return self._died()
            ready = _READY.fullmatch(line.rstrip(b"\r\n"))
            if ready:
                self._answers[int(ready[1])] = bytes(output)
                return ""
            output += line
            if len(output) > _MAX_OUTPUT:
                return "exiftool's answer was unexpectedly long"

    def _failed(self, problem: str) -> Answer:
        """Kill exiftool after `problem`; restart it for the next request once, then turn it off."""
        self._stop(polite=False)
        if self._restarts_left > 0:
            self._restarts_left -= 1
            return Answer(None, f"{problem}; it will be restarted")
        self.off_reason = f"{problem} again; maker notes are off for the rest of this run"
        return Answer(None, self.off_reason)

    def _died(self) -> str:
        process = self._process
        assert process is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=1)
        if self._stderr_pump is not None:
            self._stderr_pump.join(timeout=1)  # its last words may still be in the pipe
        last = b" ".join(line.strip() for line in self._stderr)[-200:].decode("utf-8", "replace")
        return f"exiftool stopped (exit status {process.poll()})" + (f": {last}" if last else "")


class Pending:
    """A request sent to exiftool; `answer()` waits for its answer (once; later calls repeat it)."""

    def __init__(self, tool: ExifTool, number: int, generation: int, answer: Answer | None = None) -> None:
        self._tool, self._number, self._generation = tool, number, generation
        self._answer = answer

    def answer(self) -> Answer:
        if self._answer is None:
            self._answer = self._tool._answer(self._number, self._generation)
        return self._answer


_READY = re.compile(rb"\{ready(\d+)\}")


def _ends_with_parent() -> Callable[[], None] | None:
    """For Popen's preexec_fn, on Linux: the child gets SIGTERM when its parent dies, so exiftool
    does not poll its closed input for ever after rawback was killed with SIGKILL (the OOM killer).
    The kernel sends it when the *thread* that started the child ends, so only the main thread,
    which lives as long as the process, asks for it; the prctl is resolved here, before the fork."""
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def die_with_parent() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the prctl: nobody will read us
            os._exit(1)

    return die_with_parent


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _pump(stream: IO[bytes], sink: Callable[[bytes], object], at_end: Callable[[], object] = bool) -> None:
    """Copy `stream`'s lines to `sink` until it closes, then call `at_end`."""
    if hasattr(signal, "pthread_sigmask"):
        # The kernel hands a process's Ctrl-C or SIGTERM to any thread that does not block it; in
        # this one, Python would only run the handler at the main thread's next check, which could
        # fall after a block that defers signals (rawback.train.loop.signals_deferred) has ended.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
    with contextlib.suppress(OSError, ValueError):
        for line in iter(stream.readline, b""):
            sink(line)
    at_end()


def argument_line(path: Path | str) -> bytes | None:
    """`path` as one line of exiftool's `-@` argument file, or None when it cannot be one.

    Names go as bytes, so names that are not UTF-8 work. Absolute, so a name that starts with `-`
    is not read as an option and leading spaces survive. A name with a newline or carriage return
    goes as a `#[CSTR]` line (C escapes), unless it also holds `$` or `@`, which exiftool then
    escapes with a backslash of its own: such a name cannot be passed at all.
    """
    name = os.fsencode(os.path.abspath(path))
    if b"\n" not in name and b"\r" not in name:
        return name
    if b"$" in name or b"@" in name:
        return None
    escaped = name.replace(b"\\", b"\\\\").replace(b'"', b'\\"')
    return b"#[CSTR]" + escaped.replace(b"\n", b"\\n").replace(b"\r", b"\\r")

"""Messages that C libraries write straight to file descriptor 2, past Python's sys.stderr:
libtiff (inside Pillow) on a corrupt TIFF, LibRaw ("data corrupted at 8667", "Unexpected end of
file") on a damaged RAW. Held here, they go into the file's one error line instead of appearing
as stray lines of their own between a batch's progress lines.

File descriptor 2 is the process's, not a thread's: while one thread holds it, what any other
writes there lands in the holder's lines. Holding takes `STDERR_LOCK`, and so does every line
rawback itself writes to stderr (rawback.console), so the photos a pipelined batch decodes at once
(rawback.pipeline) neither swap each other's descriptor nor swallow an error line.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import threading
from collections.abc import Iterator

STDERR_LOCK = threading.RLock()


@contextlib.contextmanager
def c_stderr_held() -> Iterator[list[str]]:
    """Hold what C code writes on file descriptor 2 while the block runs. Yields the list of lines
    held, filled when the block ends (also when it raises)."""
    held: list[str] = []
    with STDERR_LOCK:
        try:
            saved = os.dup(2)
        except OSError:  # no file descriptor 2 to hold
            yield held
            return
        with tempfile.TemporaryFile() as sink:
            sys.stderr.flush()
            os.dup2(sink.fileno(), 2)
            try:
                yield held
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                held.extend(line.strip() for line in sink.read().decode(errors="replace").splitlines())

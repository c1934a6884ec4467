"""Several photos of a batch converted at once, so the network never waits for the CPU work.

A conversion is three stages: decode and the analytic prior (CPU), the network (the device), the
DNG encode and write (CPU, its lossless-JPEG tiles in parallel). Run one photo after another, the
device idles through the first and the last of every photo. `run_pipelined` runs up to `in_flight`
conversions at a time, each whole in a worker thread of its own, so while one photo's tiles are in
the network the next is decoded and the last one is encoded: a bounded pipeline whose queues are
the photos in flight. The photos sampled at the same time share the network's tile batches
(rawback.schedule), so their stages interleave without any hand-off between threads.

Threads rather than processes: the stages spend their time in NumPy, Pillow, imagecodecs and torch,
which release the GIL, and threads share the one loaded model, its tile scheduler and the run's
exiftool. What is per-process and not thread-safe is guarded where it is used
(rawback.io.c_stderr, rawback.io.atomic.current_umask) or here (the warnings filters).

Everything the caller sees happens in the calling thread, in the order of the items: `on_start`
when an item enters the pipeline, `on_progress` as its worker reports, `on_done` with each result
in item order (a result that finishes early waits for the ones before it), so a progress display
and a log read as they do for a sequential run. `work` must turn every per-item failure into its
result (rawback.batch.run_one does): an exception that escapes it ends the run. When `stop` says
so of a result (the disk is full), no further item starts; those in flight finish. On Ctrl-C or
SIGTERM in the calling thread, every worker stops at its next progress report (`Cancelled`, so a
half-converted photo writes nothing), the calling thread waits for them, reports what finished,
and re-raises.
"""

from __future__ import annotations

import queue
import threading
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
Progress = Callable[[float], None]


class Cancelled(BaseException):
    """Raised in a worker at its next progress report once the run was interrupted. A
    BaseException, so the per-photo boundary (`except Exception`) does not record it as a failure."""


def run_pipelined(
    items: Sequence[Item],
    work: Callable[[Item, Progress], Result],
    *,
    in_flight: int,
    on_start: Callable[[Item], None] | None = None,
    on_progress: Callable[[Item, float], None] | None = None,
    on_done: Callable[[Result], None] | None = None,
    stop: Callable[[Result], bool] = lambda result: False,
) -> int:
    """Run `work(item, progress)` for the items, up to `in_flight` at a time (see the module's
    doc). Returns how many items were never started because `stop` said so."""
    if in_flight < 1:
        raise ValueError(f"in_flight must be >= 1, got {in_flight}")
    events: queue.SimpleQueue[tuple[str, int, object]] = queue.SimpleQueue()
    cancel = threading.Event()

    def task(index: int) -> None:
        def progress(fraction: float) -> None:
            if cancel.is_set():
                raise Cancelled
            events.put(("progress", index, fraction))

        try:
            events.put(("done", index, work(items[index], progress)))
        except BaseException as exc:  # Cancelled, or a bug that escaped `work`: the caller decides
            events.put(("raised", index, exc))

    finished: dict[int, Result] = {}  # results waiting for the ones before them
    reported = started = running = 0
    stopped = False

    def report_ready() -> None:
        nonlocal reported
        while reported in finished:
            result = finished.pop(reported)
            reported += 1
            if on_done is not None:
                on_done(result)

    # Library code in the workers silences the warnings of odd files with warnings.catch_warnings,
    # which saves and restores the process's one filter list: from several threads at once the
    # restores interleave. Silenced here for the whole run, every save and restore agrees.
    with warnings.catch_warnings(), ThreadPoolExecutor(in_flight, thread_name_prefix="rawback-photo") as pool:
        warnings.simplefilter("ignore")
        try:
            while True:
                while not stopped and running < in_flight and started < len(items):
                    if on_start is not None:
                        on_start(items[started])
                    pool.submit(task, started)
                    started += 1
                    running += 1
                if running == 0:
                    break
                kind, index, payload = events.get()
                if kind == "progress":
                    if on_progress is not None:
                        on_progress(items[index], payload)  # type: ignore[arg-type]
                    continue
                running -= 1
                if kind == "raised":
                    raise payload  # type: ignore[misc]
                finished[index] = payload  # type: ignore[assignment]
                # Stop as soon as any result says so, not when its turn to be reported comes: a
                # later photo that failed first must not let another one start.
                stopped = stopped or stop(payload)  # type: ignore[arg-type]
                report_ready()
        except BaseException:
            cancel.set()
            pool.shutdown(wait=True)  # each worker stops at its next progress report
            # Report what did finish (its DNG is complete), in order, even past a gap.
            while not events.empty():
                kind, index, payload = events.get()
                if kind == "done":
                    finished[index] = payload  # type: ignore[assignment]
            for index in sorted(finished):
                if on_done is not None:
                    on_done(finished[index])
            raise
    return len(items) - started

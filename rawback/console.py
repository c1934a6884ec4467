"""What the CLI shows while a job runs: one Rich progress bar on a terminal, plain log lines
otherwise (pipes, CI logs, `CliRunner`).

The batch functions never print; the CLI passes a reporter's methods to them as callbacks.
Errors always go to stderr as `error: <one line>`, warnings as `warning: <one line>`; everything
else goes to stdout.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from types import TracebackType

from rich.markup import escape

from rawback.batch import Job, Outcome, Status, Summary, input_bytes
from rawback.io.c_stderr import STDERR_LOCK
from rawback.text import printable


def print_failure(outcome: Outcome, *, verbose: bool) -> None:
    """A failed photo's line; after a bug's, its traceback with --verbose."""
    print_error(outcome.error or str(outcome.job.source))
    if verbose and outcome.traceback:
        _to_stderr(outcome.traceback.rstrip())


def print_error(message: str) -> None:
    _to_stderr(f"error: {printable(message)}")


def print_warning(message: str) -> None:
    """`warning: <one line>` on stderr: something the user should check, not a failure."""
    _to_stderr(f"warning: {printable(message)}")


def _to_stderr(text: str) -> None:
    # Not while a photo being decoded in another thread holds file descriptor 2 (rawback.io.c_stderr).
    # sys.stderr is resolved at call time: under a live progress bar it may be Rich's proxy.
    with STDERR_LOCK:
        print(text, file=sys.stderr, flush=True)


def summary_line(summary: Summary, *, dry_run: bool) -> str:
    if dry_run:
        return (
            f"dry run: {summary.planned} to convert, {summary.skipped} skipped (output exists), "
            f"{summary.failed} with problems; nothing was written"
        )
    rate = summary.seconds_per_megapixel
    speed = f"{rate:.3f} s per megapixel" if rate is not None else "no photo converted"
    warned = f" ({summary.with_warnings} with warnings)" if summary.with_warnings else ""
    stopped = (
        f"; stopped, the disk is full: {summary.not_run} not tried (free space and run the same "
        "command again to resume)"
        if summary.not_run
        else ""
    )
    return (
        f"{summary.converted} converted{warned}, {summary.skipped} skipped, {summary.failed} failed "
        f"in {summary.wall_seconds:.1f} s ({speed}){stopped}{_fallbacks(summary)}"
    )


def _fallbacks(summary: Summary) -> str:
    """How many converted photos were identified, and how many fell back to the generic profile or
    the daylight white balance: what a user looks at first when colours are off."""
    if not summary.converted:
        return ""
    identified = summary.converted - summary.generic_camera
    return (
        f"; cameras: {identified} identified, {summary.generic_camera} generic profile; "
        f"white balance: {summary.daylight} daylight"
    )


def print_outcome_warnings(outcome: Outcome) -> None:
    """A converted photo's warnings, one `warning: <photo>: ...` line each, with or without
    --verbose: the DNG exists, but the user should look at it."""
    if outcome.result is not None:
        for warning in outcome.result.warnings:
            print_warning(f"{outcome.job.source}: {warning}")


class PlainReporter:
    """One line per photo on stdout (`--quiet`: errors only)."""

    def __init__(self, *, quiet: bool = False, verbose: bool = False) -> None:
        self.quiet = quiet
        self.verbose = verbose

    def __enter__(self) -> PlainReporter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        pass

    def show(self, line: str) -> None:
        print(printable(line), flush=True)

    def start(self, jobs: Sequence[Job]) -> None:
        pass

    def file_started(self, job: Job) -> None:
        pass

    def file_progress(self, job: Job, fraction: float) -> None:
        """Progress within a photo: plain output prints per photo only."""

    def file_done(self, outcome: Outcome) -> None:
        if outcome.status is Status.FAILED:
            print_failure(outcome, verbose=self.verbose)
            return
        if self.quiet:
            return
        for line in self.lines(outcome):
            self.show(line)
        print_outcome_warnings(outcome)

    def lines(self, outcome: Outcome) -> list[str]:
        job = outcome.job
        if outcome.status is Status.SKIPPED:
            return [f"skipped {job.source}: {job.output} exists"]
        if outcome.status is Status.PLANNED:
            return [f"would convert {job.source} -> {job.output}"]
        result = outcome.result
        assert result is not None
        lines = [
            f"converted {job.source} -> {job.output} ({result.megapixels:.3g} MP, {result.seconds:.2f} s)"
        ]
        if self.verbose:
            lines += [f"  {note}" for note in result.notes]
        return lines

    def finish(self, summary: Summary, *, dry_run: bool) -> None:
        if not self.quiet:
            self.show(summary_line(summary, dry_run=dry_run))


class RichReporter(PlainReporter):
    """One progress bar for the whole job; its ETA is weighted by file size, not file count.

    Per-photo lines are printed above the bar only when asked (`--verbose`, or `convert`, where
    the user named the files); errors always are.
    """

    def __init__(self, *, verbose: bool = False, list_files: bool = False) -> None:
        super().__init__(quiet=False, verbose=verbose)
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.list_files = list_files or verbose
        self.console = Console()
        self.progress = Progress(
            TextColumn("{task.description}", style="bold"),
            BarColumn(),
            TextColumn("{task.fields[done]}/{task.fields[count]} photos"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            # With stderr on the terminal too, Rich's proxy prints error lines (and any library
            # warning) above the bar; with stderr redirected, errors must reach that file instead.
            redirect_stderr=sys.stderr.isatty(),
        )
        self.task = self.progress.add_task("converting", total=None, done=0, count=0, start=False)
        self.sizes: dict[Job, int] = {}
        self.completed_before = 0  # bytes of the photos converted so far
        self.partial: dict[Job, float] = {}  # bytes done of each photo in flight (a batch runs several)

    def __enter__(self) -> RichReporter:
        return self  # the bar appears with the first photo, after the options were checked

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.progress.stop()

    def show(self, line: str) -> None:
        self.console.print(printable(line), markup=False, highlight=False, soft_wrap=True)

    def start(self, jobs: Sequence[Job]) -> None:
        self.sizes = {job: max(1, input_bytes(job)) for job in jobs}
        total = sum(self.sizes.values())
        self.progress.update(self.task, total=total, count=len(jobs))

    def file_started(self, job: Job) -> None:
        if not self.progress.live.is_started:
            self.progress.start_task(self.task)
            self.progress.start()
        self.progress.update(self.task, description=escape(printable(job.source.name)))

    def file_progress(self, job: Job, fraction: float) -> None:
        """Move the bar within the photos being converted (a 12 MP photo takes the model about a
        minute on a CPU): the share of each one's size that is done, kept until it is finished."""
        self.partial[job] = fraction * self.sizes.get(job, 1)
        self.progress.update(self.task, completed=self.completed_before + sum(self.partial.values()))

    def file_done(self, outcome: Outcome) -> None:
        self.partial.pop(outcome.job, None)
        size = self.sizes.get(outcome.job, 1)
        task = self.progress.tasks[0]
        done = task.fields["done"] + 1
        if outcome.status is Status.CONVERTED:
            self.completed_before += size
            completed = self.completed_before + sum(self.partial.values())
            self.progress.update(self.task, completed=completed, done=done)
        else:
            # Skips and failures take no time: drop them from the total instead of advancing,
            # or a resumed batch would start with a wildly optimistic ETA.
            # A photo that failed part-way gives back what it had advanced.
            completed = self.completed_before + sum(self.partial.values())
            self.progress.update(self.task, total=(task.total or size) - size, completed=completed, done=done)
        if outcome.status is Status.FAILED:
            print_failure(outcome, verbose=self.verbose)
            return
        if self.list_files:
            for line in self.lines(outcome):
                self.show(line)
        print_outcome_warnings(outcome)

    def finish(self, summary: Summary, *, dry_run: bool) -> None:
        self.progress.update(self.task, description="done")
        self.progress.stop()
        self.show(summary_line(summary, dry_run=dry_run))


def make_reporter(*, quiet: bool, verbose: bool, dry_run: bool, list_files: bool) -> PlainReporter:
    """A progress bar on an interactive terminal; plain lines when piped, quiet or a dry run."""
    from rich.console import Console

    if quiet or dry_run or not Console().is_terminal:
        return PlainReporter(quiet=quiet, verbose=verbose)
    return RichReporter(verbose=verbose, list_files=list_files)


class _LiveProgress:
    """A Rich progress display while on a terminal (made by `_make`), none otherwise; the console
    is created on entry to the object, never at import (CliRunner could not capture it)."""

    def __init__(self, *, quiet: bool = False) -> None:
        from rich.console import Console

        self.quiet = quiet
        self.console = Console()
        self.progress = None
        self.task = None

    def _make(self):  # -> (rich.progress.Progress, task id)
        raise NotImplementedError

    def __enter__(self):
        if not self.quiet and self.console.is_terminal:
            self.progress, self.task = self._make()
            self.progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.progress is not None:
            self.progress.stop()


class CountProgress(_LiveProgress):
    """A `progress(index, total, name)` callback (as `rawback.evaluate.run.run_eval` takes): a
    progress bar on a terminal, else one line per item."""

    def __init__(self, what: str, *, quiet: bool = False) -> None:
        super().__init__(quiet=quiet)
        self.what = what

    def _make(self):
        from rich.progress import Progress

        progress = Progress(console=self.console)
        return progress, progress.add_task(self.what, total=None)

    def __call__(self, index: int, total: int, name: str) -> None:
        if self.progress is not None:
            self.progress.update(
                self.task, completed=index, total=total, description=escape(name or self.what)
            )
        elif not self.quiet and name:
            print(f"[{index + 1}/{total}] {self.what} {name}", flush=True)


class TrainProgress(_LiveProgress):
    """The `progress(event)` callback of rawback.train.loop.train: one Rich progress bar (loss,
    steps/s, ETA) on a terminal, else a line per logged step, and a line per validation."""

    def _make(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]} steps/s"),
            TimeRemainingColumn(), console=self.console,
        )  # fmt: skip
        return progress, progress.add_task("training", total=None, loss="-", rate="-")

    def line(self, text: str) -> None:
        if self.quiet:
            return
        if self.progress is not None:
            self.progress.console.print(text, markup=False, highlight=False)
        else:
            print(text, flush=True)

    def __call__(self, event: dict) -> None:
        kind = event["event"]
        if kind == "cache":  # the file is decoded, or its cached copy checked
            if self.progress is not None:
                self.progress.update(self.task, description=escape(f"reading {event['file']}"))
            else:
                self.line(f"[{event['index'] + 1}/{event['total']}] reading {event['file']}")
        elif kind == "start":
            scenes = (
                f"{event['scenes']} scenes ({event['scene_fraction']:.0%} of items), "
                if event.get("scenes")
                else ""
            )
            self.line(
                f"training on {event['files']} files ({event['validation']} for validation), {scenes}"
                f"{event['device']}{', bf16' if event['bf16'] else ''}, "
                f"from step {event['step']} of {event['total']}"
            )
            if self.progress is not None:
                self.progress.update(
                    self.task, description="training", completed=event["step"], total=event["total"]
                )
        elif kind == "step":
            if self.progress is not None:
                self.progress.update(
                    self.task, completed=event["step"], total=event["total"], loss=f"{event['loss']:.4f}",
                    rate=f"{event['steps_per_s']:.2f}",
                )  # fmt: skip
            else:
                # each kind logs its own loss parts ("loss_denoise", "loss_head", ...)
                parts = ", ".join(
                    f"{name.removeprefix('loss_')} {value:.4f}"
                    for name, value in event.items()
                    if name.startswith("loss_")
                )
                self.line(
                    f"step {event['step']}/{event['total']} loss {event['loss']:.4f} "
                    + (f"({parts}) " if parts else "")
                    + f"lr {event['lr']:.2e} {event['steps_per_s']:.2f} steps/s"
                )
        elif kind == "validation":
            scores = ", ".join(
                f"{name.removeprefix('psnr_').replace('_', ' ')} {value:.2f} dB"
                for name, value in event.items()
                if name.startswith("psnr_")
            )
            self.line(f"validation at step {event['step']}: packed PSNR {scores}")
        elif kind in ("skipped", "note"):
            self.line(f"note: {event['message']}")
        elif kind == "interrupted":
            self.line(f"interrupted: checkpoint saved at step {event['step']}; continue with --resume")

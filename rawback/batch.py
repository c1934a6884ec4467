"""Plan and run many conversions: the plain functions behind `rawback convert` and `rawback batch`.

Planning (which photo goes to which DNG) is separate from running, so `--dry-run`, `--shard` and
the collision check work on the plan alone, and tests can check a plan without converting anything.
Running reports through callbacks; only the CLI draws.

A per-file problem (a corrupt photo, an output that already exists) is a `RawbackError`: it is
recorded and the batch goes on. Anything else is a bug: it too fails that photo alone, reported
as a bug with its traceback under --verbose, so one hostile file never stops a batch.
"""

from __future__ import annotations

import os
import re
import shlex
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from rawback.camera import ProfileSource
from rawback.choices import IN_FLIGHT
from rawback.convert import ConvertOptions, ConvertResult, convert_file
from rawback.errors import (
    DiskFullError,
    OutputError,
    OutputExistsError,
    RawbackError,
    UsageError,
    first_line,
)
from rawback.inverse import NeutralSource
from rawback.io.files import find_images, resolved
from rawback.io.image import IMAGE_SUFFIXES
from rawback.methods import get_method

DNG_SUFFIX = ".dng"


@dataclass(frozen=True)
class Job:
    """One planned conversion. `problem` is set when planning already knows it cannot run."""

    source: Path
    output: Path
    problem: str | None = None


class Status(Enum):
    CONVERTED = "converted"
    SKIPPED = "skipped"  # the output exists and --overwrite was not given (a re-run resumes)
    PLANNED = "planned"  # --dry-run: would be converted
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    job: Job
    status: Status
    result: ConvertResult | None = None
    error: str | None = None  # one line naming the file and the problem
    # An unexpected error's traceback (a bug, not bad input), shown with --verbose
    traceback: str | None = field(default=None, compare=False, repr=False)
    disk_full: bool = False  # the output's disk is full: the batch stops after this photo


@dataclass
class Summary:
    converted: int = 0
    skipped: int = 0
    planned: int = 0
    failed: int = 0
    with_warnings: int = 0  # converted photos that came with a warning (damaged JPEG data)
    megapixels: float = 0.0  # of the converted photos
    seconds: float = 0.0  # spent converting them (skips and failures excluded)
    wall_seconds: float = 0.0  # the whole run
    not_run: int = 0  # photos left when the batch stopped early (the disk was full)
    generic_camera: int = 0  # converted photos whose camera was not identified (the generic profile)
    daylight: int = 0  # converted photos left with the daylight white balance (nothing better known)

    def add(self, outcome: Outcome) -> None:
        counter = outcome.status.value  # the counters above are named after the statuses
        setattr(self, counter, getattr(self, counter) + 1)
        if outcome.result is not None:
            self.megapixels += outcome.result.megapixels
            self.seconds += outcome.result.seconds
            self.with_warnings += bool(outcome.result.warnings)
            self.generic_camera += outcome.result.camera_source is ProfileSource.GENERIC
            self.daylight += outcome.result.white_balance_source is NeutralSource.DAYLIGHT

    @property
    def seconds_per_megapixel(self) -> float | None:
        return self.seconds / self.megapixels if self.megapixels > 0 else None


# --- planning ------------------------------------------------------------------------------------


def dng_name(source: Path) -> str:
    return source.stem + DNG_SUFFIX


def plan_folder(root: Path, output: Path | None = None) -> list[Job]:
    """`rawback batch`: every photo under `root` to a DNG at the same place in the `output` tree
    (default: beside each photo)."""
    out_root = root if output is None else output
    if out_root.exists() and not out_root.is_dir():
        raise OutputError(out_root, "is a file, not a folder")
    sources, unreadable = find_images(root, exclude=output)
    jobs = [Job(s, out_root / s.relative_to(root).parent / dng_name(s)) for s in sources]
    return mark_collisions(jobs) + [Job(folder, folder, problem) for folder, problem in unreadable]


def plan_files(sources: Sequence[Path], output: Path | None = None) -> list[Job]:
    """`rawback convert`: each photo to a DNG beside it, to the file `output` (one photo only; its
    name ends in .dng) or into the folder `output` (any other name)."""
    if not sources:
        raise UsageError("no input photos given")
    if output is not None and output.suffix.lower() in IMAGE_SUFFIXES and not output.is_dir():
        raise UsageError(f"-o {output}: a DNG's name ends in .dng; a folder's must not look like a photo's")
    if output is None:
        jobs = [Job(s, s.with_suffix(DNG_SUFFIX)) for s in sources]
    elif output.suffix.lower() == DNG_SUFFIX and not output.is_dir():
        if len(sources) > 1:
            raise UsageError(
                f"-o {output} names one file but {len(sources)} photos were given; give a folder"
            )
        jobs = [Job(sources[0], output)]
    else:
        if output.exists() and not output.is_dir():
            raise OutputError(output, "is a file, not a folder")
        jobs = [Job(s, output / dng_name(s)) for s in sources]
    # A folder among the photos fails on its own, like a missing file, not the whole run.
    jobs = [
        Job(j.source, j.output, f"{j.source}: is a folder; use `rawback batch {shlex.quote(str(j.source))}`")
        if j.source.is_dir()
        else j
        for j in jobs
    ]
    return mark_collisions(jobs)


def mark_collisions(jobs: Iterable[Job]) -> list[Job]:
    """Give every job whose output another job already writes (photo.jpg and photo.png) a problem,
    and the same to a job that would replace its own input, so nothing is silently overwritten.

    Done on the whole plan before sharding, so every shard reports the same files.
    """
    claimed: dict[Path, Path] = {}
    marked = []
    for job in jobs:
        key = resolved(job.output)
        if job.problem is None and key in claimed:
            problem = f"{job.source}: its output {job.output} is already the output of {claimed[key]}"
            job = Job(job.source, job.output, problem)
        elif job.problem is None and key == resolved(job.source):
            job = Job(job.source, job.output, f"{job.source}: the output would replace the input")
        if job.problem is None:  # a job that fails (a folder given to convert) writes nothing
            claimed.setdefault(key, job.source)
        marked.append(job)
    return marked


def parse_shard(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n), 0 <= i < n: the numbering of torchrun's RANK and WORLD_SIZE."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match or not int(match[1]) < int(match[2]):
        raise UsageError(f"--shard must be i/n with 0 <= i < n (e.g. 0/4 ... 3/4), not {text!r}")
    return int(match[1]), int(match[2])


def shard(jobs: Sequence[Job], index: int, count: int) -> list[Job]:
    """Every `count`-th job starting at `index`: the shards of one plan are disjoint and cover it,
    and neighbouring (similar) photos spread across processes."""
    return list(jobs[index::count])


def input_bytes(job: Job) -> int:
    """For the progress bar's ETA: conversion time grows with file size, not file count."""
    try:
        return job.source.stat().st_size
    except OSError:
        return 0


# --- running -------------------------------------------------------------------------------------


def check_options(options: ConvertOptions) -> None:
    """Fail once, before the first photo, on options that would fail every photo."""
    from rawback.camera import builtin_profiles, resolve_profile

    try:
        get_method(options.method)
    except ValueError as exc:
        raise UsageError(f"--method: {exc}") from None
    builtin_profiles()  # an unreadable profile folder or a malformed user profile would fail every photo
    if options.camera:
        resolve_profile(options.camera)
    if options.method == "diffusion":
        from rawback.device import resolve_device  # imports torch: only for the learned method

        resolve_device(options.diffusion.device)


def preload_model(options: ConvertOptions) -> None:
    """Load the learned model before the first photo: unreadable weights fail once, and loading
    them is not timed as the first photo's conversion. Nothing for the analytic method."""
    if options.method == "invisp":
        from rawback.invisp_inference import cached_flow
        from rawback.invisp_weights import bundled_invisp

        cached_flow(str(options.diffusion.weights or bundled_invisp()))
    if options.method == "diffusion":
        from rawback.inference import model_for
        from rawback.network import tile_network

        # And its tile network: on a GPU that measures a tile to choose the tile batch.
        tile_network(model_for(options.diffusion), options.diffusion)


def ensure_folder(folder: Path, *, create: bool) -> None:
    """Fail with one clear line, before any work, when DNGs cannot be written into `folder`."""
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except FileExistsError as exc:
            raise OutputError(folder, "is a file, not a folder") from exc
        except OSError as exc:
            raise OutputError(folder, f"cannot create the output folder ({exc.strerror})") from exc
    if not folder.is_dir():
        raise OutputError(folder, "the output folder does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(folder, "the output folder is not writable")


def error_line(job: Job, exc: RawbackError) -> str:
    """One line that names the input photo, whatever the error names."""
    message = str(exc)
    return message if message.startswith(str(job.source)) else f"{job.source}: {message}"


def run_one(
    job: Job,
    options: ConvertOptions,
    *,
    skip_existing: bool,
    create_folders: bool,
    dry_run: bool,
    progress: Callable[[float], None] | None = None,
) -> Outcome:
    if job.problem is not None:
        return Outcome(job, Status.FAILED, error=job.problem)
    if skip_existing and not options.overwrite and job.output.exists():
        return Outcome(job, Status.SKIPPED)
    if dry_run:
        if not job.source.is_file():  # what the conversion would report first
            return Outcome(job, Status.FAILED, error=f"{job.source}: no such file")
        return Outcome(job, Status.PLANNED)
    try:
        ensure_folder(job.output.parent, create=create_folders)
        result = convert_file(job.source, job.output, options, progress)
    except OutputExistsError as exc:
        if skip_existing:  # another process (a second copy of the same batch) finished it meanwhile
            return Outcome(job, Status.SKIPPED)
        return Outcome(job, Status.FAILED, error=error_line(job, exc))
    except DiskFullError as exc:
        return Outcome(job, Status.FAILED, error=error_line(job, exc), disk_full=True)
    except RawbackError as exc:
        return Outcome(job, Status.FAILED, error=error_line(job, exc))
    except Exception as exc:
        # The per-photo boundary: whatever one photo holds, it fails alone and the batch goes on.
        # This is a bug (every bad input should be a RawbackError), so it is reported as one, with
        # its traceback under --verbose; Ctrl-C, SIGTERM and exit are BaseExceptions and pass.
        what = f"{type(exc).__name__}: {first_line(exc)}"
        error = f"{job.source}: unexpected error ({what}); a bug in rawback, please report it"
        return Outcome(job, Status.FAILED, error=error, traceback=traceback.format_exc())
    return Outcome(job, Status.CONVERTED, result=result)


def default_in_flight(options: ConvertOptions) -> int:
    """Photos converted at once by default (choices.IN_FLIGHT): on a GPU enough to keep it busy
    while the CPU decodes and encodes; on the CPU, where a network takes every core, one; two for
    the analytic method, which has no network."""
    if options.method == "analytic":
        return IN_FLIGHT["analytic"]
    if options.method == "invisp":  # the flow runs on the CPU only
        return IN_FLIGHT["cpu"]
    from rawback.device import resolve_device  # imports torch: only for the learned methods

    return IN_FLIGHT["cpu" if resolve_device(options.diffusion.device).type == "cpu" else "gpu"]


def run_jobs(
    jobs: Sequence[Job],
    options: ConvertOptions,
    *,
    skip_existing: bool = True,  # batch resumes; `convert` refuses an existing output instead
    create_folders: bool = True,  # batch mirrors the input tree; `convert -o a/b.dng` needs a/
    dry_run: bool = False,  # plan only: report what would be converted, write nothing
    on_start: Callable[[Job], None] | None = None,  # before each job (progress: current file)
    on_done: Callable[[Outcome], None] | None = None,  # after each job, in the jobs' order
    on_progress: Callable[[Job, float], None] | None = None,  # within a job: fraction done, 0..1
    check: bool = True,  # False when the caller has already run check_options
    in_flight: int | None = 1,  # photos converted at once (rawback.pipeline); None: the default
) -> Summary:
    """Convert every job; per-file errors are counted, never raised. With `in_flight` > 1 several
    photos are converted at once and their tiles share the network's batches; every DNG is the
    same as converting its photo alone."""
    if check:
        check_options(options)
    if in_flight is None:
        in_flight = 1 if dry_run else default_in_flight(options)
    summary = Summary()
    start = time.perf_counter()

    def run(job: Job, progress: Callable[[float], None] | None) -> Outcome:
        return run_one(
            job,
            options,
            skip_existing=skip_existing,
            create_folders=create_folders,
            dry_run=dry_run,
            progress=progress,
        )

    def done(outcome: Outcome) -> None:
        summary.add(outcome)
        if on_done is not None:
            on_done(outcome)

    if in_flight > 1 and len(jobs) > 1 and not dry_run:
        from rawback.pipeline import run_pipelined

        summary.not_run = run_pipelined(
            jobs,
            run,
            in_flight=in_flight,
            on_start=on_start,
            on_progress=on_progress,
            on_done=done,
            stop=lambda outcome: outcome.disk_full,  # every later photo would fail the same way
        )
    else:
        for index, job in enumerate(jobs):
            if on_start is not None:
                on_start(job)
            progress = None if on_progress is None else (lambda f, job=job: on_progress(job, f))
            outcome = run(job, progress)
            done(outcome)
            if outcome.disk_full:  # every later photo would fail the same way
                summary.not_run = len(jobs) - index - 1
                break
    summary.wall_seconds = time.perf_counter() - start
    # Photos converted at once overlap in time: the sum of their times would count the shared
    # seconds several times over. The rate is then the batch's throughput.
    summary.seconds = min(summary.seconds, summary.wall_seconds)
    return summary

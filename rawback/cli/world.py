"""`rawback batch` under torchrun: every process of the job converts its shard of the folder, and
rank 0 alone draws the progress, the per-photo lines, the errors and the summary of the whole job
(rawback.distributed does the work; this module only decides who prints what and who exits how).

Rank 0 carries the job's exit status (1 when a photo failed on any rank, 2 for a usage problem);
the other ranks exit with 0 once the job is done, at once and before rank 0 (torchrun stops every
process still running when one exits with an error, and a rank still in its interpreter's
teardown would be reported as killed). A problem found after the processes have joined (a folder
one node cannot see, a GPU it lacks) is gathered and printed once by rank 0, with the rank it came
from when the ranks disagree. Problems found before (malformed options) are the same on every
rank, and each prints its line.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from rawback.cli.app import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE

if TYPE_CHECKING:  # only for annotations
    from rawback.convert import ConvertOptions
    from rawback.distributed import Group, World


def batch_across_world(
    world: World,
    *,
    folder: Path,
    output: Path | None,
    options: ConvertOptions,
    dry_run: bool,
    quiet: bool,
    verbose: bool,
    in_flight: int | None = None,
) -> None:
    from rawback import distributed

    device = distributed.device_for(world, options.diffusion.device)
    options = dataclasses.replace(options, diffusion=dataclasses.replace(options.diffusion, device=device))
    with distributed.Group(world, distributed.group_device(device, options.method)) as group:
        status = _batch(group, folder=folder, output=output, options=options, dry_run=dry_run,
                        quiet=quiet, verbose=verbose, in_flight=in_flight)  # fmt: skip
    if not world.leader:
        _leave_now()
    if status:
        raise typer.Exit(status)


def _batch(
    group: Group, *, folder, output, options, dry_run: bool, quiet: bool, verbose: bool, in_flight: int | None
) -> int:
    """Plan, agree, convert; the exit status of the job (rank 0's to give)."""
    from rawback import batch, distributed
    from rawback.console import make_reporter, print_error, print_warning
    from rawback.errors import RawbackError, UsageError
    from rawback.io.atomic import remove_stale_parts

    world = group.world
    problem, usage, jobs, stale = None, False, [], 0
    try:
        batch.check_options(options)
        jobs = batch.plan_folder(folder, output)
        if output is not None and not dry_run:
            batch.ensure_folder(output, create=True)
        if not dry_run:
            stale = remove_stale_parts(job.output for job in batch.shard(jobs, world.rank, world.size))
    except RawbackError as exc:
        problem, usage = str(exc), isinstance(exc, UsageError)
    views = group.gather((problem, usage, distributed.plan_digest(jobs), len(jobs), stale))
    problems = [(rank, view) for rank, view in enumerate(views) if view[0] is not None]
    if problems:
        if world.leader:
            same = len({view[0] for _, view in problems}) == 1 and len(problems) == world.size
            for rank, view in problems[:1] if same else problems:
                print_error(view[0] if same else f"rank {rank}: {view[0]}")
        return EXIT_USAGE if any(view[1] for _, view in problems) else EXIT_FAILED
    if len({view[2] for view in views}) > 1:
        if world.leader:
            counts = ", ".join(f"rank {rank}: {view[3]}" for rank, view in enumerate(views))
            print_error(
                f"{folder}: the processes do not see the same photos ({counts}); every node must see "
                "the same folder at the same path"
            )
        return EXIT_FAILED
    if world.leader and (removed := sum(view[4] for view in views)):
        print_warning(f"removed {removed} temporary file(s) an interrupted run left (kill -9?)")
    if not dry_run and any(job.problem is None for job in jobs):
        if options.maker_notes:
            from rawback.io import makernotes

            makernotes.start()
            if (notice := makernotes.missing_notice()) and world.leader:
                print_warning(notice)
        batch.preload_model(options)
    reporter = make_reporter(quiet=quiet, verbose=verbose, dry_run=dry_run, list_files=False)
    finished: list[batch.Outcome] = []

    def on_done(outcome: batch.Outcome) -> None:
        finished.append(outcome)
        reporter.file_done(outcome)

    try:
        if not world.leader:
            summary = distributed.run_shard(jobs, options, group, dry_run=dry_run, in_flight=in_flight)
            return EXIT_FAILED if summary.failed else 0
        with reporter:
            reporter.start(jobs)
            summary = distributed.run_shard(
                jobs, options, group, dry_run=dry_run, in_flight=in_flight, on_start=reporter.file_started,
                on_done=on_done,
                on_progress=reporter.file_progress,
                on_finish=lambda summary: reporter.finish(summary, dry_run=dry_run),
            )  # fmt: skip
    except KeyboardInterrupt:
        if world.leader:
            converted = sum(outcome.status is batch.Status.CONVERTED for outcome in finished)
            print_error(
                f"interrupted after {len(finished)} of {len(jobs)} photos ({converted} converted, all "
                "ranks); no partial file was left, run the same command again to resume: finished "
                "photos are skipped"
            )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    return EXIT_FAILED if summary.failed else 0


def _leave_now() -> NoReturn:
    """A rank other than 0, its work written and its group left: exit with 0 at once. The
    interpreter's teardown with torch loaded takes seconds, long enough for rank 0 to exit with the
    job's status first and torchrun to report this rank as killed. exiftool is stopped as at any
    exit; nothing else of a finished batch needs the teardown (every DNG was renamed into place)."""
    from rawback.io import makernotes

    makernotes.shared_exiftool().close()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

"""`rawback convert`, `rawback batch` and `rawback sample`.

The work is rawback.batch's (planning, converting, resuming) and rawback.convert's; these commands
turn options into ConvertOptions, plan the jobs and run them under rawback.console's reporter.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rawback import choices
from rawback.choices import DEFAULT_SAMPLER, DEFAULT_STEPS, Compression, Residual, ToneCurve, Transfer
from rawback.cli.app import EXIT_FAILED, EXIT_INTERRUPTED, app, echo, user_errors
from rawback.cli.options import (
    Autotune,
    Camera,
    Compile,
    CompressionOpt,
    Device,
    DryRun,
    Ensemble,
    InFlight,
    Method,
    NoPreview,
    Overlap,
    Overwrite,
    Precision,
    Quiet,
    ResidualOpt,
    Sampler,
    Seed,
    Steps,
    Tile,
    TileBatch,
    ToneCurveOpt,
    TransferOpt,
    UndoExposure,
    UndoToneCurve,
    Verbose,
    Weights,
    WhiteBalance,
    check_verbosity,
    diffusion_settings,
)

if TYPE_CHECKING:  # only for annotations: importing these at run time would slow down --help
    from rawback.batch import Job
    from rawback.convert import ConvertOptions


def _convert_options(
    *,
    diffusion,
    method: str,
    camera: str | None,
    transfer: Transfer,
    tone_curve: ToneCurve,
    white_balance: str,
    compression: Compression,
    no_preview: bool,
    overwrite: bool,
) -> "ConvertOptions":
    from rawback.convert import ConvertOptions

    return ConvertOptions(
        method=method,
        camera=camera,
        transfer=transfer.value,
        tone_curve=tone_curve.value,
        white_balance=white_balance,
        compression=compression.value,
        preview=not no_preview,
        overwrite=overwrite,
        diffusion=diffusion,
    )


def _run(
    jobs: Sequence["Job"],
    options: "ConvertOptions",
    *,
    batch_mode: bool,
    dry_run: bool,
    quiet: bool,
    verbose: bool,
    in_flight: int | None = 1,
) -> None:
    """Run planned jobs under a reporter. `batch_mode`: skip existing DNGs (resume), create the
    mirrored folders, show only a progress bar; else (convert) the user named each file: an
    existing DNG is an error, -o's folder must exist, and every file gets a line."""
    from rawback import batch
    from rawback.console import make_reporter, print_error, print_warning

    if batch_mode and not dry_run:
        from rawback.io.atomic import remove_stale_parts

        if removed := remove_stale_parts(job.output for job in jobs):
            print_warning(f"removed {removed} temporary file(s) an interrupted run left (kill -9?)")
    if not dry_run and any(job.problem is None for job in jobs):
        if options.maker_notes:  # exiftool starts while the model loads; said once if missing
            from rawback.io import makernotes

            makernotes.start()
            if notice := makernotes.missing_notice():
                print_warning(notice)
        batch.preload_model(options)
    reporter = make_reporter(quiet=quiet, verbose=verbose, dry_run=dry_run, list_files=not batch_mode)
    finished: list[batch.Outcome] = []

    def on_done(outcome: batch.Outcome) -> None:
        finished.append(outcome)
        reporter.file_done(outcome)

    try:
        with reporter:
            reporter.start(jobs)
            summary = batch.run_jobs(
                jobs,
                options,
                skip_existing=batch_mode,
                create_folders=batch_mode,
                dry_run=dry_run,
                on_start=reporter.file_started,
                on_done=on_done,
                on_progress=reporter.file_progress,
                check=False,  # the command checked them before planning
                in_flight=in_flight,  # convert: one photo after another; batch: the pipeline
            )
            reporter.finish(summary, dry_run=dry_run)
    except KeyboardInterrupt:
        converted = sum(outcome.status is batch.Status.CONVERTED for outcome in finished)
        after = (
            "run the same command again to resume: finished photos are skipped"
            if batch_mode
            else "the DNGs written are complete"
        )
        print_error(
            f"interrupted after {len(finished)} of {len(jobs)} photos ({converted} converted); "
            f"no partial file was left, {after}"
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if summary.failed:
        raise typer.Exit(EXIT_FAILED)


@app.command()
def convert(
    inputs: Annotated[list[Path], typer.Argument(help="Photos (JPEG, PNG, TIFF, HEIC).", show_default=False)],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="A .dng file (one photo only) or a folder (created if needed). Default: beside each photo.",
            show_default=False,
        ),
    ] = None,
    method: Method = choices.Method.DIFFUSION.value,
    camera: Camera = None,
    sampler: Sampler = DEFAULT_SAMPLER,
    steps: Steps = DEFAULT_STEPS,
    seed: Seed = 0,
    ensemble: Ensemble = 1,
    tile: Tile = None,
    overlap: Overlap = 64,
    tile_batch: TileBatch = None,
    weights: Weights = None,
    device: Device = "auto",
    precision: Precision = choices.Precision.AUTO.value,
    compile: Compile = False,
    autotune: Autotune = False,
    undo_exposure: UndoExposure = False,
    undo_tone_curve: UndoToneCurve = None,
    residual: ResidualOpt = Residual.AUTO,
    transfer: TransferOpt = Transfer.SRGB,
    tone_curve: ToneCurveOpt = ToneCurve.AUTO,
    white_balance: WhiteBalance = "auto",
    compression: CompressionOpt = Compression.LJPEG,
    no_preview: NoPreview = False,
    overwrite: Overwrite = False,
    dry_run: DryRun = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Convert one or several photos to DNG. An existing DNG is an error unless --overwrite."""
    with user_errors():
        from rawback import batch

        check_verbosity(quiet, verbose)
        diffusion = diffusion_settings(
            weights=weights, sampler=sampler, steps=steps, seed=seed, ensemble=ensemble, tile=tile,
            overlap=overlap, tile_batch=tile_batch, device=device, precision=precision,
            undo_exposure=undo_exposure, undo_tone_curve=undo_tone_curve, residual=residual,
            compile=compile, autotune=autotune,
        )  # fmt: skip
        options = _convert_options(
            diffusion=diffusion,
            method=method,
            camera=camera,
            transfer=transfer,
            tone_curve=tone_curve,
            white_balance=white_balance,
            compression=compression,
            no_preview=no_preview,
            overwrite=overwrite,
        )
        batch.check_options(options)
        jobs = batch.plan_files(inputs, output)
        if output is not None and not dry_run and output.suffix.lower() != batch.DNG_SUFFIX:
            batch.ensure_folder(output, create=True)  # -o names a folder: made on request
        _run(jobs, options, batch_mode=False, dry_run=dry_run, quiet=quiet, verbose=verbose)


@app.command("batch")
def batch_command(
    folder: Annotated[
        Path, typer.Argument(help="Folder of photos, searched recursively.", show_default=False)
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Output folder; the input tree is mirrored there. Default: beside each photo.",
            show_default=False,
        ),
    ] = None,
    method: Method = choices.Method.DIFFUSION.value,
    camera: Camera = None,
    sampler: Sampler = DEFAULT_SAMPLER,
    steps: Steps = DEFAULT_STEPS,
    seed: Seed = 0,
    ensemble: Ensemble = 1,
    tile: Tile = None,
    overlap: Overlap = 64,
    tile_batch: TileBatch = None,
    weights: Weights = None,
    device: Device = "auto",
    precision: Precision = choices.Precision.AUTO.value,
    compile: Compile = False,
    autotune: Autotune = False,
    undo_exposure: UndoExposure = False,
    undo_tone_curve: UndoToneCurve = None,
    residual: ResidualOpt = Residual.AUTO,
    transfer: TransferOpt = Transfer.SRGB,
    tone_curve: ToneCurveOpt = ToneCurve.AUTO,
    white_balance: WhiteBalance = "auto",
    compression: CompressionOpt = Compression.LJPEG,
    no_preview: NoPreview = False,
    overwrite: Overwrite = False,
    shard: Annotated[
        str | None,
        typer.Option(
            help="Convert only shard i of n (0 <= i < n): every n-th photo of the sorted list, "
            "for running n processes side by side. Under torchrun leave it out: the job's "
            "processes share the folder, and rank 0 reports for all.",
            show_default=False,
        ),
    ] = None,
    in_flight: InFlight = None,
    dry_run: DryRun = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Convert every photo in a folder tree, mirroring the tree into the output folder.

    Hidden files and DNGs that already exist are skipped, so a re-run resumes. A photo that fails
    is reported and counted, and the exit status is then 1.
    """
    with user_errors():
        from rawback import batch
        from rawback.distributed import torchrun_world

        check_verbosity(quiet, verbose)
        shard_spec = batch.parse_shard(shard) if shard is not None else None
        diffusion = diffusion_settings(
            weights=weights, sampler=sampler, steps=steps, seed=seed, ensemble=ensemble, tile=tile,
            overlap=overlap, tile_batch=tile_batch, device=device, precision=precision,
            undo_exposure=undo_exposure, undo_tone_curve=undo_tone_curve, residual=residual,
            compile=compile, autotune=autotune,
        )  # fmt: skip
        options = _convert_options(
            diffusion=diffusion,
            method=method,
            camera=camera,
            transfer=transfer,
            tone_curve=tone_curve,
            white_balance=white_balance,
            compression=compression,
            no_preview=no_preview,
            overwrite=overwrite,
        )
        if shard_spec is None and (world := torchrun_world()) is not None:  # one job over many processes
            from rawback.cli.world import batch_across_world

            batch_across_world(world, folder=folder, output=output, options=options, dry_run=dry_run,
                               quiet=quiet, verbose=verbose, in_flight=in_flight)  # fmt: skip
            return
        batch.check_options(options)
        jobs = batch.plan_folder(folder, output)
        if shard_spec is not None:
            jobs = batch.shard(jobs, *shard_spec)
        if output is not None and not dry_run:
            batch.ensure_folder(output, create=True)  # one clear error up front, not one per photo
        _run(
            jobs, options, batch_mode=True, dry_run=dry_run, quiet=quiet, verbose=verbose, in_flight=in_flight
        )


@app.command()
def sample(
    output: Annotated[Path, typer.Argument(help="Where to write the JPEG.", show_default=False)],
    width: Annotated[int, typer.Option(min=64, help="Width in pixels.")] = 1536,
    height: Annotated[int, typer.Option(min=64, help="Height in pixels.")] = 1024,
    quality: Annotated[int, typer.Option(min=1, max=100, help="JPEG quality.")] = 92,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the file if it exists.")] = False,
) -> None:
    """Write rawback's synthetic test chart as a JPEG (made locally, nothing is downloaded)."""
    with user_errors():
        from rawback.samplechart import write_sample_jpeg

        write_sample_jpeg(output, width=width, height=height, quality=quality, overwrite=overwrite)
        echo(f"wrote {output} ({width}x{height}, JPEG quality {quality})")

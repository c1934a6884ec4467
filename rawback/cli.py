"""The `rawback` command line. Each command parses its options and calls plain functions
(rawback.batch, rawback.convert, rawback.camera); only this module and rawback.console draw.

Heavy imports (numpy, rawpy, Pillow, the converters) happen inside the commands, so
`rawback --help` is instant. A problem the user can fix (RawbackError) prints as one line,
`error: <message>`, on stderr, with exit status 1 (2 for contradictory options), never a traceback.
"""

import contextlib
import io
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from rawback import __version__
from rawback.choices import DEFAULT_SAMPLER, DEFAULT_STEPS, Compression, Residual, ToneCurve, Transfer
from rawback.errors import RawbackError, UsageError

if TYPE_CHECKING:  # only for annotations: importing these at run time would slow down --help
    from rawback.batch import Job
    from rawback.convert import ConvertOptions

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


# --- option types: the choices themselves are rawback.choices -------------------------------------


Method = Annotated[
    str,
    typer.Option(
        help="Inversion method: diffusion (the learned model) or analytic (Brooks et al. inverse ISP)."
    ),
]
Sampler = Annotated[
    str, typer.Option(help="Diffusion sampler: one-step, euler, heun or dpmpp-2m (see docs/model.md).")
]
Steps = Annotated[int, typer.Option(min=1, help="Diffusion steps (noise levels of the Karras schedule).")]
Seed = Annotated[int, typer.Option(help="Noise seed; with the photo's pixels it fixes the result exactly.")]
Ensemble = Annotated[int, typer.Option(min=1, help="Average this many diffusion samples.")]
Tile = Annotated[
    int | None,
    typer.Option(
        min=32,
        help="Tile side in photo pixels (even). Default: 320 on the CPU, 512 on a GPU.",
        show_default=False,
    ),
]
Overlap = Annotated[int, typer.Option(min=0, help="Overlap of neighbouring tiles in photo pixels (even).")]
TileBatch = Annotated[
    int | None,
    typer.Option(
        "--tile-batch",
        min=1,
        help="Tiles per network call. Default: 1 on the CPU, 4 on a GPU.",
        show_default=False,
    ),
]
Weights = Annotated[
    Path | None,
    typer.Option(
        help="Model weights (.pt). Default: the bundled model (models/rawback-small.pt).", show_default=False
    ),
]
Device = Annotated[
    str, typer.Option(help="auto (CUDA when available, else the CPU), cpu, cuda, cuda:N or mps.")
]
Precision = Annotated[
    str,
    typer.Option(
        help="Network arithmetic: fp32, bf16, or auto (bf16 on a GPU and on a CPU with native bf16).",
    ),
]
Include = Annotated[
    list[str] | None,
    typer.Option(help="Only files matching this glob (relative to --data); repeatable.", show_default=False),
]
Exclude = Annotated[
    list[str] | None,
    typer.Option(
        help="Leave out files matching this glob (relative to --data); repeatable.",
        show_default=False,
    ),
]
CacheDir = Annotated[
    Path | None,
    typer.Option(
        help="Where decoded RAW files are cached. Default: $XDG_CACHE_HOME/rawback/train, else "
        "~/.cache/rawback/train.",
        show_default=False,
    ),
]
UndoExposure = Annotated[
    bool,
    typer.Option(
        "--undo-exposure",
        help="Undo the brightening the model estimates the photo's finish applied (off by default).",
    ),
]
UndoToneCurve = Annotated[
    bool,
    typer.Option(
        "--undo-tone-curve",
        help="Undo the tone curve the model estimates the photo's finish applied (camera JPEGs; off "
        "by default; needs weights with a tone curve).",
    ),
]


ResidualOpt = Annotated[
    Residual,
    typer.Option(
        "--residual",
        help="Where the network's correction applies: auto (the calibrated gate on cameras the model "
        "was trained on, only where the photo is clipped on others), gate (the gate on every camera), "
        "full (everywhere) or clipped (only where the photo is clipped). See docs/model.md.",
    ),
]
Camera = Annotated[
    str | None,
    typer.Option(
        help="Camera profile: a profile name (rawback profile list), an EXIF camera name, a profile "
        ".json, or a RAW/DNG of the camera. Default: match the photo's EXIF Make/Model, else 'generic'.",
        show_default=False,
    ),
]
TransferOpt = Annotated[Transfer, typer.Option("--transfer", help="Transfer curve of the input photos.")]
ToneCurveOpt = Annotated[
    ToneCurve,
    typer.Option(
        "--tone-curve",
        help="Tone curve to undo: auto (the finish measured in the camera's profile by `rawback "
        "profile curve`, for photos from the renderer it was measured on: the camera's JPEG engine, "
        "or the program EXIF Software names), measured (that finish whatever rendered the photo), "
        "none, or smoothstep (Brooks et al.).",
    ),
]
WhiteBalance = Annotated[
    str,
    typer.Option(
        "--white-balance",
        help="'auto' (EXIF LightSource, else the model's estimate for cameras it was trained on, else "
        "daylight) or the scene white in camera RGB, 'R,G,B'.",
    ),
]
CompressionOpt = Annotated[
    Compression, typer.Option("--compression", help="DNG raw data: lossless JPEG tiles or uncompressed.")
]
NoPreview = Annotated[bool, typer.Option("--no-preview", help="Do not embed a JPEG preview.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace DNGs that already exist.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="List what would be done; write nothing.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print errors only.")]
Verbose = Annotated[
    bool, typer.Option("--verbose", "-v", help="Per photo: the camera profile chosen and why, and notes.")
]


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn a RawbackError into `error: <message>` on stderr and a non-zero exit."""
    try:
        yield
    except RawbackError as exc:
        typer.echo(f"error: {exc}", err=True)
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


# --- convert and batch ---------------------------------------------------------------------------


def _diffusion_settings(
    *,
    weights: Path | None,
    sampler: str,
    steps: int,
    seed: int,
    ensemble: int,
    tile: int | None,
    overlap: int,
    tile_batch: int | None,
    device: str,
    precision: str,
    undo_exposure: bool,
    undo_tone_curve: bool,
    residual: Residual,
):
    from rawback.diffusion_settings import DiffusionSettings

    try:
        return DiffusionSettings(
            weights=str(weights) if weights else None, sampler=sampler, steps=steps, seed=seed,
            ensemble=ensemble, tile=tile, overlap=overlap, tile_batch=tile_batch, device=device,
            precision=precision, undo_exposure=undo_exposure, undo_tone_curve=undo_tone_curve,
            residual=residual.value,
        )  # fmt: skip
    except ValueError as exc:
        raise UsageError(str(exc)) from None


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


def _check_verbosity(quiet: bool, verbose: bool) -> None:
    if quiet and verbose:
        raise UsageError("--quiet and --verbose contradict each other")


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
    method: Method = "diffusion",
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
    precision: Precision = "auto",
    undo_exposure: UndoExposure = False,
    undo_tone_curve: UndoToneCurve = False,
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

        _check_verbosity(quiet, verbose)
        diffusion = _diffusion_settings(
            weights=weights, sampler=sampler, steps=steps, seed=seed, ensemble=ensemble, tile=tile,
            overlap=overlap, tile_batch=tile_batch, device=device, precision=precision,
            undo_exposure=undo_exposure, undo_tone_curve=undo_tone_curve, residual=residual,
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
    method: Method = "diffusion",
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
    precision: Precision = "auto",
    undo_exposure: UndoExposure = False,
    undo_tone_curve: UndoToneCurve = False,
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
            "for running n processes side by side, e.g. with $RANK/$WORLD_SIZE.",
            show_default=False,
        ),
    ] = None,
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

        _check_verbosity(quiet, verbose)
        shard_spec = batch.parse_shard(shard) if shard is not None else None
        diffusion = _diffusion_settings(
            weights=weights, sampler=sampler, steps=steps, seed=seed, ensemble=ensemble, tile=tile,
            overlap=overlap, tile_batch=tile_batch, device=device, precision=precision,
            undo_exposure=undo_exposure, undo_tone_curve=undo_tone_curve, residual=residual,
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
        jobs = batch.plan_folder(folder, output)
        if shard_spec is not None:
            jobs = batch.shard(jobs, *shard_spec)
        if output is not None and not dry_run:
            batch.ensure_folder(output, create=True)  # one clear error up front, not one per photo
        _run(jobs, options, batch_mode=True, dry_run=dry_run, quiet=quiet, verbose=verbose)


# --- sample chart ---------------------------------------------------------------------------------


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
        typer.echo(f"wrote {output} ({width}x{height}, JPEG quality {quality})")


# --- eval ----------------------------------------------------------------------------------------


@app.command("eval")
def eval_command(
    data: Annotated[
        Path, typer.Option(help="Folder of ground-truth RAW files, searched recursively.", show_default=False)
    ],
    method: Method = "diffusion",
    protocol: Annotated[
        str,
        typer.Option(
            help="Evaluation protocol: rawback, finished, camera-preview, raw-diffusion or invertible-isp."
        ),
    ] = "rawback",
    sampler: Sampler = DEFAULT_SAMPLER,
    steps: Annotated[
        str, typer.Option(help="Diffusion step count, or a comma list to sweep (one row each): 1,2,4,8.")
    ] = str(DEFAULT_STEPS),
    seed: Seed = 0,
    ensemble: Ensemble = 1,
    tile: Tile = None,
    overlap: Overlap = 64,
    tile_batch: TileBatch = None,
    weights: Weights = None,
    device: Device = "auto",
    precision: Precision = "auto",
    undo_exposure: UndoExposure = False,
    undo_tone_curve: UndoToneCurve = False,
    residual: ResidualOpt = Residual.AUTO,
    pairs: Annotated[
        Path | None,
        typer.Option(
            help="Folder of the cameras' own JPEGs (same names as the RAWs) to use as inputs "
            "instead of renders (rawback protocol only).",
            show_default=False,
        ),
    ] = None,
    camera: Annotated[
        str | None,
        typer.Option(
            help="Colour profile override; levels and CFA always come from the RAW.", show_default=False
        ),
    ] = None,
    tone_curve_from: Annotated[
        str | None,
        typer.Option(
            "--tone-curve-from",
            help="Undo the tone curve measured in this profile (rawback profile curve) on every file, "
            "each keeping its own colour profile; 'matched': each file's own camera's, from the profile "
            "its make and model match, as convert undoes it (none for cameras without one).",
            show_default=False,
        ),
    ] = None,
    include: Include = None,
    save_inputs: Annotated[
        Path | None,
        typer.Option(
            "--save-inputs",
            help="Keep each file's protocol input (the JPEG the methods get) here, mirroring --data.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="At most this many files.", show_default=False)
    ] = None,
    report_dir: Annotated[
        Path,
        typer.Option(help="Folder for the JSON and Markdown reports (replaced on each run)."),
    ] = Path("rawback-eval"),
    quiet: Quiet = False,
) -> None:
    """Score a method against ground-truth RAW files, beside the analytic baseline and the
    white-balance oracle. Exit status 1 if any file failed."""
    with user_errors():
        from rich.console import Console

        from rawback.console import CountProgress, print_error
        from rawback.evaluate.protocols import get_protocol
        from rawback.evaluate.report import rich_tables, write_reports
        from rawback.evaluate.run import EvalOptions, run_eval
        from rawback.methods import get_method

        try:  # bad names are usage errors, reported before any work
            get_method(method)
            get_protocol(protocol, pairs)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        step_counts = tuple(int(v) for v in steps.split(",") if v.strip().isdigit())
        if len(step_counts) != len(steps.split(",")) or min(step_counts) < 1:
            raise UsageError(f"--steps must be positive integers separated by commas, not {steps!r}")
        step_counts = tuple(dict.fromkeys(step_counts))  # one row per count, as the report lists them
        diffusion = _diffusion_settings(
            weights=weights, sampler=sampler, steps=step_counts[0], seed=seed, ensemble=ensemble, tile=tile,
            overlap=overlap, tile_batch=tile_batch, device=device, precision=precision,
            undo_exposure=undo_exposure, undo_tone_curve=undo_tone_curve, residual=residual,
        )  # fmt: skip
        options = EvalOptions(
            data=data, method=method, protocol=protocol, pairs=pairs, camera=camera,
            tone_curve_from=tone_curve_from, save_inputs=save_inputs, include=tuple(include or ()),
            limit=limit, diffusion=diffusion, steps=step_counts,
        )  # fmt: skip
        with CountProgress("evaluating", quiet=quiet) as progress:
            try:
                report = run_eval(options, progress=progress)
            except KeyboardInterrupt:
                print_error("interrupted: no report was written")
                raise typer.Exit(EXIT_INTERRUPTED) from None
        for image in report.failed:
            print_error(f"{image.file}: {image.error}")
        if not quiet:
            # Wide enough for every column when piped to a file or a log, where Rich assumes 80.
            console = Console() if sys.stdout.isatty() else Console(width=220)
            for table in rich_tables(report):
                console.print(table)
        for path in write_reports(report, report_dir):
            if not quiet:
                typer.echo(f"wrote {path}")
        if report.failed:
            raise typer.Exit(EXIT_FAILED)


# --- train ---------------------------------------------------------------------------------------


@app.command()
def train(
    data: Annotated[
        Path, typer.Option(help="Folder of RAW files (any format LibRaw reads, and DNG).", show_default=False)
    ],
    out: Annotated[
        Path, typer.Option(help="Run folder: checkpoint.pt, model.pt (EMA weights), config.json, log.jsonl.")
    ] = Path("runs/rawback"),
    config: Annotated[
        Path | None,
        typer.Option(help="Training config JSON (rawback.train.config.TrainConfig).", show_default=False),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override one setting, KEY=VALUE (JSON value); repeatable.", show_default=False
        ),
    ] = None,
    validation: Annotated[
        list[str] | None,
        typer.Option(
            help="Hold out files matching this glob (relative to --data); repeatable.", show_default=False
        ),
    ] = None,
    exclude: Exclude = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from OUT/checkpoint.pt exactly.")
    ] = False,
    cache_dir: CacheDir = None,
    device: Device = "auto",
    quiet: Quiet = False,
) -> None:
    """Train the inverter on a folder of RAW files (data-parallel under torchrun).

    Ctrl-C (or SIGTERM) saves a checkpoint; --resume continues where it stopped (give the same
    --config, --set, --validation and --exclude options). The EMA weights are written to
    OUT/model.pt at every checkpoint; use them with `convert --weights OUT/model.pt`.
    """
    with user_errors():
        from rawback.console import TrainProgress
        from rawback.train.config import TrainConfig
        from rawback.train.loop import TrainOptions
        from rawback.train.loop import train as run_training

        settings = TrainConfig.from_file(config) if config else TrainConfig()
        overrides = list(set_ or [])
        if validation:
            overrides.append(f"validation={json.dumps(list(validation))}")
        if exclude:
            overrides.append(f"exclude={json.dumps(list(exclude))}")
        settings = settings.with_overrides(overrides)
        if (out / "checkpoint.pt").exists() and not resume:
            raise UsageError(
                f"{out} already holds a run: pass --resume to continue it, or choose another --out"
            )
        options = TrainOptions(
            data=data, out=out, config=settings, resume=resume, cache_dir=cache_dir, device=device
        )
        with TrainProgress(quiet=quiet) as progress:
            try:
                weights = run_training(options, progress=progress)
            except KeyboardInterrupt:
                raise typer.Exit(EXIT_INTERRUPTED) from None
        if not quiet:
            typer.echo(f"wrote {weights}")


@app.command()
def calibrate(
    data: Annotated[
        Path, typer.Option(help="Folder of RAW files the model was not trained on.", show_default=False)
    ],
    out: Annotated[Path, typer.Option(help="The calibrated weights file to write.", show_default=False)],
    weights: Weights = None,
    include: Include = None,
    exclude: Exclude = None,
    samples: Annotated[int, typer.Option(min=20, help="Simulated photos to run the model on.")] = 4096,
    steps: Annotated[int, typer.Option(min=1, help="Optimiser steps of the gate.")] = 2000,
    seed: Annotated[int, typer.Option(help="Seed of the simulated photos and of the fit.")] = 0,
    cache_dir: CacheDir = None,
    device: Device = "auto",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace OUT if it exists.")] = False,
    quiet: Quiet = False,
) -> None:
    """Fit the residual gate of trained weights: a per-photo trust in the model's residual over the
    analytic estimate (docs/model.md). The rest of the model is unchanged. Calibrate on RAW files
    the model was not trained on: on its own training files it is right too often to learn doubt."""
    with user_errors():
        from rawback.console import CountProgress, print_error
        from rawback.train.calibrate import CalibrateOptions
        from rawback.train.calibrate import calibrate as run_calibration
        from rawback.weights import BUNDLED

        if out.exists() and not overwrite:
            raise UsageError(f"{out} exists: pass --overwrite to replace it")
        options = CalibrateOptions(
            data=data, weights=weights or BUNDLED, out=out, include=tuple(include or ()),
            exclude=tuple(exclude or ()),
            samples=samples, steps=steps, seed=seed, cache_dir=cache_dir, device=device,
        )  # fmt: skip
        with CountProgress("calibrating", quiet=quiet) as progress:
            try:
                path, report = run_calibration(options, progress=progress)
            except KeyboardInterrupt:
                print_error(f"interrupted: {out} was not written")
                raise typer.Exit(EXIT_INTERRUPTED) from None
        held = report["held_out"]
        if not quiet:
            typer.echo(
                f"held-out items ({held['items']}), PSNR of unclipped packed values: "
                f"prior only {held['psnr_prior_only']:.2f} dB, "
                f"full residual {held['psnr_full_residual']:.2f} dB, "
                f"gate {held['psnr_gate']:.2f} dB (mean trust {held['mean_trust']:.2f})"
            )
            typer.echo(f"wrote {path}")


# --- camera profiles -----------------------------------------------------------------------------


def _numbers(values, digits: int = 4) -> str:
    return " ".join(f"{v:.{digits}f}" for v in values)


@profile_app.command("list")
def profile_list() -> None:
    """Built-in and user profiles (a user profile of the same name replaces the built-in)."""
    with user_errors():
        from rich import box
        from rich.console import Console
        from rich.table import Table

        from rawback.camera import builtin_profiles, profiles_in, user_folder

        measured = "* tone curve measured by rawback profile curve"
        user = f"+ user profile ({user_folder()}), matched before the built-in ones"
        caption = f"{user}\n{measured}"
        user_names = set(profiles_in(user_folder()))
        # Light rules, and the derived white balance left to `profile show`: on an 80-column
        # terminal the boxed table with it cut camera names to "Power…".
        table = Table(title="camera profiles", caption=caption, box=box.SIMPLE_HEAD)
        table.add_column("name", no_wrap=True)
        table.add_column("camera")
        table.add_column("CFA")
        table.add_column("bits", justify="right")
        table.add_column("black/white", justify="right", no_wrap=True)
        for name, profile in sorted(builtin_profiles().items()):
            black = ",".join(f"{b:g}" for b in dict.fromkeys(profile.black_level))
            marks = ("+" if name in user_names else "") + ("*" if profile.tone_curve is not None else "")
            table.add_row(
                f"{name} {marks}".rstrip(),
                f"{profile.make} {profile.model}",
                profile.cfa_pattern,
                str(profile.bits),
                f"{black}/{profile.white_level}",
            )
        Console().print(table)


@profile_app.command("show")
def profile_show(
    name: Annotated[
        str, typer.Argument(help="A profile name, a profile .json or a RAW file.", show_default=False)
    ],
) -> None:
    """Every field of a profile, and what rawback derives from it."""
    with user_errors():
        import dataclasses

        from rawback.camera import PROFILE_SUFFIX, builtin_folder, resolve_profile, user_folder
        from rawback.provenance import describe

        profile = resolve_profile(name)
        for field in dataclasses.fields(profile):
            value = getattr(profile, field.name)
            if field.name.startswith("color_matrix") and value is not None:
                rows = [_numbers(value[i : i + 3]) for i in (0, 3, 6)]
                value = " / ".join(rows)
            elif isinstance(value, tuple):
                value = ", ".join(str(v) for v in value) or "-"
            elif field.name == "finish_renderer" and profile.tone_curve is not None:
                value = describe(value)
            typer.echo(f"{field.name}: {value}")
        neutral = profile.daylight_neutral()
        typer.echo(f"daylight neutral (derived, camera RGB of D65 white): {_numbers(neutral)}")
        typer.echo(f"daylight multipliers (derived, 1 / neutral): {_numbers(1.0 / neutral)}")
        if Path(name).expanduser().is_file():  # a profile .json or a RAW: that file, not a saved one
            typer.echo(f"file: {Path(name).expanduser()}")
            return
        for folder, kind in ((user_folder(), "user"), (builtin_folder(), "built-in")):
            path = folder / f"{profile.name}{PROFILE_SUFFIX}"
            if path.is_file():
                typer.echo(f"file ({kind}): {path}")
                break


OverwriteProfile = Annotated[
    bool, typer.Option("--overwrite", help="Replace a saved profile of the same name.")
]


@profile_app.command("add")
def profile_add(
    raw_file: Annotated[Path, typer.Argument(help="A RAW or DNG file of the camera.", show_default=False)],
    name: Annotated[
        str | None,
        typer.Option(help="Profile name. Default: from the camera's make and model.", show_default=False),
    ] = None,
    builtin: Annotated[
        bool, typer.Option("--builtin", help="Save into rawback's built-in profiles (for developers).")
    ] = False,
    overwrite: OverwriteProfile = False,
) -> None:
    """Make a camera profile from one RAW file of the camera and save it in the user folder
    ($RAWBACK_PROFILE_DIR, else $XDG_CONFIG_HOME/rawback/profiles, else ~/.config/rawback/profiles).
    A user profile is matched before a built-in one of the same camera."""
    with user_errors():
        from rawback.camera import builtin_folder, profile_from_raw, save_profile, user_folder

        profile = profile_from_raw(raw_file, name=name)
        path = save_profile(profile, builtin_folder() if builtin else user_folder(), overwrite=overwrite)
        typer.echo(f"saved profile {profile.name} ({profile.make} {profile.model}) to {path}")
        typer.echo(f"use it with: rawback convert PHOTO --camera {profile.name}")


@profile_app.command("curve")
def profile_curve(
    paths: Annotated[
        list[Path],
        typer.Argument(
            help="RAW+JPEG pairs of one camera (same name, e.g. IMG_0042.CR2 + IMG_0042.JPG; or a .HIF/.HEIC "
            "beside the RAW), or folders holding them. A RAW without a JPEG is paired with the preview "
            "its camera embedded in it.",
            show_default=False,
        ),
    ],
    camera: Annotated[
        str | None,
        typer.Option(
            help="The profile to add the finish to: a profile name, a profile .json or a RAW/DNG. Default: "
            "the profile matching the RAW files' make and model, else one extracted from the first RAW.",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="Save under this profile name. Default: the camera's own.", show_default=False),
    ] = None,
    builtin: Annotated[
        bool,
        typer.Option("--builtin", help="Save into rawback's built-in profiles (for developers)."),
    ] = False,
    overwrite: OverwriteProfile = False,
) -> None:
    """Measure the camera's JPEG tone curve and saturation from RAW+JPEG pairs of its shots (or its
    RAW files' embedded previews) and save them in its user profile: from then on `convert` and
    `batch` undo them for that camera's JPEGs (docs/profiles.md).
    Exit status 1 if a pair could not be used."""
    with user_errors():
        import dataclasses

        from rawback.camera import (
            builtin_folder,
            match_profile,
            profile_from_raw,
            profile_target,
            resolve_profile,
            save_profile,
            user_folder,
        )
        from rawback.console import print_error, print_warning
        from rawback.errors import RawbackError
        from rawback.io.raw import read_make_model
        from rawback.provenance import describe
        from rawback.tone_calibration import STYLE_DEVIATION, find_pairs, measure_finish, with_finish

        pairs = find_pairs(paths)
        if not pairs:
            raise RawbackError("no RAW files found")
        cameras = {read_make_model(p.raw) for p in pairs}
        if len(cameras) > 1:
            names = ", ".join(sorted(" ".join(c).strip() or "unknown" for c in cameras))
            raise RawbackError(f"the pairs come from several cameras ({names}); measure one camera at a time")
        ((make, model),) = cameras
        if camera is not None:
            profile = resolve_profile(camera)
        else:
            profile = match_profile(make, model) or profile_from_raw(pairs[0].raw)
        folder = builtin_folder() if builtin else user_folder()
        profile_target(name or profile.name, folder, overwrite=overwrite)  # before measuring
        failed: list[str] = []

        def skip(exc: Exception) -> None:
            failed.append(str(exc))
            print_error(str(exc))

        measured = measure_finish(pairs, profile, on_error=skip)
        profile = with_finish(profile, measured)
        if name is not None:
            profile = dataclasses.replace(profile, name=name)
        path = save_profile(profile, folder, overwrite=overwrite)
        fit = measured.curve
        for result in measured.pairs:
            turned = f", JPEG turned {90 * result.rotation}°" if result.rotation else ""
            cropped = ""
            if max(result.margins) >= 0.5:
                left, top, right, bottom = (round(m) for m in result.margins)
                cropped = (
                    f", JPEG shows the RAW less {left}/{top}/{right}/{bottom} px (left/top/right/bottom)"
                )
            other = result.pair.jpeg.name if result.pair.jpeg is not None else "its embedded preview"
            typer.echo(
                f"{result.pair.raw.name} + {other}: {result.pixels} samples, "
                f"residual {100 * result.rms_residual:.1f} %{turned}{cropped}"
            )
            if len(measured.pairs) > 1 and result.deviation > STYLE_DEVIATION:
                print_warning(
                    f"{result.pair.jpeg or result.pair.raw}: its curve differs from the other pairs' by "
                    f"{result.deviation:.2f} (another picture style or exposure setting?); measure each "
                    "style separately"
                )
        typer.echo(f"tone curve (inverse log gains, dark to bright): {_numbers(fit.knots, 2)}")
        typer.echo(f"saturation added after the curve: {measured.saturation:.3f} (1 = none)")
        typer.echo(
            f"JPEGs rendered by {describe(measured.renderer)} (EXIF Software): convert undoes this finish "
            "for photos of the same renderer only"
        )
        typer.echo(
            f"{len(measured.pairs)} pair(s), residual {100 * fit.rms_residual:.1f} %, "
            f"{int(fit.measured.sum())} of {len(fit.knots)} knots measured"
        )
        typer.echo(f"saved profile {profile.name} ({profile.make} {profile.model}) to {path}")
        if failed:
            raise typer.Exit(EXIT_FAILED)

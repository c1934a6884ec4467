"""`rawback eval`: the command over rawback.evaluate (run_eval does the work, report writes and
tabulates it)."""

import sys
from pathlib import Path
from typing import Annotated

import typer

from rawback import choices
from rawback.choices import DEFAULT_SAMPLER, DEFAULT_STEPS, Residual
from rawback.cli.app import EXIT_FAILED, EXIT_INTERRUPTED, app, echo, user_errors
from rawback.cli.options import (
    Device,
    Ensemble,
    EvalUndoToneCurve,
    Include,
    Overlap,
    Precision,
    Quiet,
    ResidualOpt,
    Sampler,
    Seed,
    Tile,
    TileBatch,
    UndoExposure,
    Weights,
    diffusion_settings,
)
from rawback.errors import UsageError


@app.command("eval")
def eval_command(
    data: Annotated[
        Path, typer.Option(help="Folder of ground-truth RAW files, searched recursively.", show_default=False)
    ],
    method: Annotated[
        list[str] | None,
        typer.Option(
            help="Method under test: diffusion, invisp or analytic; repeat it to score several "
            "(one row each). Default: diffusion.",
            show_default=False,
        ),
    ] = None,
    protocol: Annotated[
        str,
        typer.Option(
            help="Evaluation protocol: rawback, finished, camera-preview, raw-diffusion or invertible-isp."
        ),
    ] = choices.Protocol.RAWBACK.value,
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
    precision: Precision = choices.Precision.AUTO.value,
    undo_exposure: UndoExposure = False,
    undo_tone_curve: EvalUndoToneCurve = False,
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
        from rawback.evaluate.run import EvalOptions, parse_steps, run_eval
        from rawback.methods import get_method

        methods = tuple(dict.fromkeys(method or [choices.Method.DIFFUSION.value]))
        try:  # bad names are usage errors, reported before any work
            for name in methods:
                get_method(name)
            get_protocol(protocol, pairs)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        learned = [name for name in methods if name in (choices.Method.DIFFUSION, choices.Method.INVISP)]
        if weights is not None and len(learned) > 1:
            raise UsageError("--weights names one model's file: give it with one learned --method")
        step_counts = parse_steps(steps)
        diffusion = diffusion_settings(
            weights=weights, sampler=sampler, steps=step_counts[0], seed=seed, ensemble=ensemble, tile=tile,
            overlap=overlap, tile_batch=tile_batch, device=device, precision=precision,
            undo_exposure=undo_exposure, undo_tone_curve=undo_tone_curve, residual=residual,
        )  # fmt: skip
        options = EvalOptions(
            data=data, method=methods[0], methods=methods, protocol=protocol, pairs=pairs, camera=camera,
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
                echo(f"wrote {path}")
        if report.failed:
            raise typer.Exit(EXIT_FAILED)

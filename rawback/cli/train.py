"""`rawback train` and `rawback calibrate`: the commands over rawback.train (loop.py trains,
gate.py fits the residual gate; config.py builds the training settings)."""

from pathlib import Path
from typing import Annotated

import typer

from rawback.cli.app import EXIT_INTERRUPTED, app, echo, user_errors
from rawback.cli.options import CacheDir, Device, Exclude, Include, Quiet, Weights
from rawback.errors import UsageError


@app.command()
def train(
    data: Annotated[
        Path | None,
        typer.Option(
            help="Folder of RAW files (any format LibRaw reads, and DNG). Optional with --scenes and "
            "--set scene_fraction=1.0: scenes only, no real files (and no validation).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path,
        typer.Option(help="Run folder: checkpoint.pt, model.pt (EMA weights), train_config.json, log.jsonl."),
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
    scenes: Annotated[
        Path | None,
        typer.Option(
            help="Folder of photographs to film with library cameras as synthetic training pairs, "
            "mixed with the RAW files (share: --set scene_fraction=..., default 0.5).",
            show_default=False,
        ),
    ] = None,
    init: Annotated[
        str | None,
        typer.Option(
            "--init",
            metavar="WEIGHTS",
            help="Fine-tune: start from these weights (.pt, or 'shipped' for the bundled model) "
            "instead of random ones; the architecture is the file's.",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue from OUT/checkpoint.pt exactly.")
    ] = False,
    cache_dir: CacheDir = None,
    device: Device = "auto",
    quiet: Quiet = False,
) -> None:
    """Train the inverter on a folder of RAW files (data-parallel under torchrun).

    Ctrl-C (or SIGTERM) saves a checkpoint; --resume continues where it stopped (give the same
    --config, --set, --validation and --exclude options, without --init). The EMA weights are written to
    OUT/model.pt at every checkpoint; use them with `convert --weights OUT/model.pt`.
    """
    with user_errors():
        from rawback.console import TrainProgress
        from rawback.train.checkpoint import check_new_run
        from rawback.train.config import names_model, train_config
        from rawback.train.init import with_init
        from rawback.train.loop import TrainOptions
        from rawback.train.loop import train as run_training

        if init is not None and resume:
            raise UsageError("--init starts a new run; --resume continues one from its own weights")
        settings = train_config(
            config_file=config,
            overrides=set_ or (),
            validation=validation or (),
            exclude=exclude or (),
            scenes=scenes,
            init=init,
        )
        if settings.init and not resume:  # the weights are read before anything is decoded
            settings = with_init(settings, model_named=names_model(config, set_ or ()))
        settings.check_data(data)
        check_new_run(out, resume=resume)
        options = TrainOptions(
            data=data, out=out, config=settings, resume=resume, cache_dir=cache_dir, device=device
        )
        with TrainProgress(quiet=quiet) as progress:
            try:
                weights = run_training(options, progress=progress)
            except KeyboardInterrupt:
                raise typer.Exit(EXIT_INTERRUPTED) from None
        if not quiet:
            echo(f"wrote {weights}")


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
            echo(
                f"held-out items ({held['items']}), PSNR of unclipped packed values: "
                f"prior only {held['psnr_prior_only']:.2f} dB, "
                f"full residual {held['psnr_full_residual']:.2f} dB, "
                f"gate {held['psnr_gate']:.2f} dB (mean trust {held['mean_trust']:.2f})"
            )
            echo(f"wrote {path}")

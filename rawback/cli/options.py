"""Option types that several commands share, as Annotated aliases: one help text per option.

The choices themselves, and the defaults more than one module needs, are rawback.choices; a
command's own defaults are written where the command is. The aliases keep the names the
commands' parameters had (Method, Sampler, Precision...), so they shadow the StrEnums of
rawback.choices: modules that need both import that module whole (`choices.Method`).
"""

from pathlib import Path
from typing import Annotated

import typer

from rawback.choices import Compression, Residual, ToneCurve, Transfer
from rawback.errors import UsageError

Method = Annotated[
    str,
    typer.Option(
        help="Inversion method: diffusion (the learned model), invisp (the Invertible-ISP flow, "
        "docs/invisp.md), latent (diffusion in a latent space, docs/latent.md) or analytic (Brooks et "
        "al. inverse ISP)."
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
        help="Tiles per network call, shared by the photos converted at once. Default: 1 on the CPU, "
        "on a GPU as many as its free memory holds (at most 64).",
        show_default=False,
    ),
]
Compile = Annotated[
    bool,
    typer.Option(
        "--compile",
        help="torch.compile the network: faster calls after a compile per tile size (minutes on a "
        "CPU); for long batches.",
    ),
]
Autotune = Annotated[
    bool,
    typer.Option(
        "--autotune",
        help="Let cuDNN time its algorithms for the tile shape (GPU): faster, but the last bits of a "
        "DNG may then differ between runs.",
    ),
]
InFlight = Annotated[
    int | None,
    typer.Option(
        "--in-flight",
        min=1,
        help="Photos converted at once: their decoding and writing overlap the network and their "
        "tiles share its batches; each DNG is the same as the photo's alone. Default: 4 on a GPU; "
        "on the CPU 1 (2 with --method analytic); 1 converts one photo after another.",
        show_default=False,
    ),
]
Weights = Annotated[
    Path | None,
    typer.Option(
        help="Model weights (.pt) of the learned method. Default: the bundled model "
        "(models/rawback-small.pt, or models/rawback-invisp.pt for --method invisp).",
        show_default=False,
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
    bool | None,
    typer.Option(
        "--undo-tone-curve/--keep-tone-curve",
        help="Undo the tone curve the model estimates the photo's finish applied, or keep it. Default: "
        "undone for a camera's own JPEG (EXIF names a camera and no raw converter or editor), kept "
        "otherwise. Needs weights with a tone curve.",
        show_default=False,
    ),
]
EvalUndoToneCurve = Annotated[
    bool,
    typer.Option(
        "--undo-tone-curve/--keep-tone-curve",
        help="Undo the tone curve the model estimates each input's finish applied (convert's default "
        "for camera JPEGs), or keep it, the default here: every row says which.",
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
        help="Camera profile: a profile name (rawback profile list), an EXIF camera name, a camera of the "
        "library (rawback profile list --library), a profile .json, or a RAW/DNG of the camera. Default: "
        "match the photo's EXIF Make/Model to a profile, else to the camera library, else 'generic'.",
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


def check_verbosity(quiet: bool, verbose: bool) -> None:
    if quiet and verbose:
        raise UsageError("--quiet and --verbose contradict each other")


def diffusion_settings(
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
    undo_tone_curve: bool | None,
    residual: Residual,
    compile: bool = False,
    autotune: bool = False,
):
    """The diffusion options of convert, batch and eval as settings; a value DiffusionSettings
    refuses (an odd tile, an unknown sampler) is a usage error, reported before any work."""
    from rawback.diffusion_settings import DiffusionSettings

    try:
        return DiffusionSettings(
            weights=str(weights) if weights else None, sampler=sampler, steps=steps, seed=seed,
            ensemble=ensemble, tile=tile, overlap=overlap, tile_batch=tile_batch, device=device,
            precision=precision, undo_exposure=undo_exposure, undo_tone_curve=undo_tone_curve,
            residual=residual.value, compile=compile, autotune=autotune,
        )  # fmt: skip
    except ValueError as exc:
        raise UsageError(str(exc)) from None

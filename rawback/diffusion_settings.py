"""How the diffusion method samples: its settings, checked, as plain data (no torch import, so the
CLI checks options before anything heavy loads). rawback.inference runs them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rawback.choices import (
    DEFAULT_SAMPLER,
    DEFAULT_STEPS,
    DEVICE_HELP,
    DEVICE_PATTERN,
    TILING,
    Precision,
    Residual,
    Sampler,
)


@dataclass(frozen=True)
class DiffusionSettings:
    """How the diffusion method samples (rawback.sampling, rawback.tiling)."""

    weights: str | None = None  # weights file; None = the bundled default model
    sampler: str = DEFAULT_SAMPLER  # a rawback.choices.Sampler
    steps: int = DEFAULT_STEPS  # noise levels of the Karras schedule (ignored by "one-step")
    seed: int = 0  # with the photo's pixels, seeds the noise: same seed, same DNG
    ensemble: int = 1  # average this many samples (noise seeds: the photo's seed + 0 .. K-1)
    tile: int | None = None  # tile side in photo pixels (even); None: the device's (choices.TILING)
    overlap: int = 64  # tile overlap in photo pixels (even)
    # Tiles per network call; None: the device's (choices.TILING; on a GPU, from its free memory).
    tile_batch: int | None = None
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
    # The network's arithmetic: "fp32", "bf16" (autocast), or "auto" (rawback.device.uses_bf16).
    precision: str = Precision.AUTO.value
    # Divide the estimate by the exposure gain the global head thinks the finish applied. Off by
    # default: on LibRaw renders a wrong guess costs more than a right one gains
    # (docs/experiments.md#why---undo-exposure-is-off-by-default).
    undo_exposure: bool = False
    # Undo the finish's tone curve the global head estimates (weights with `tone_knots` > 0): True,
    # False, or None, "auto": undone for a photo whose EXIF names a camera and no raw converter or
    # editor, kept otherwise (docs/experiments.md#the-tone-curve-of-camera-jpegs-by-provenance).
    # rawback.finish.undo_tone_curve_for decides "auto" per photo; left undecided (rawback eval,
    # training), it keeps the curve.
    undo_tone_curve: bool | None = None
    # Why "auto" decided as it did for this photo, for -v; None where the user chose.
    tone_curve_reason: str | None = None
    residual: str = Residual.AUTO.value  # where the denoiser's residual applies (choices.Residual)
    # torch.compile the network (rawback.network): faster calls after a compile of its own per tile
    # shape, worth it for long batches on a GPU.
    compile: bool = False
    # Let cuDNN time its algorithms for the tile shape (torch.backends.cudnn.benchmark): faster on a
    # GPU, but the algorithm it keeps, and so the last bits of a DNG, can change between runs.
    autotune: bool = False

    def __post_init__(self) -> None:
        if self.sampler not in tuple(Sampler):
            raise ValueError(f"unknown sampler {self.sampler!r}; available: {', '.join(Sampler)}")
        if self.precision not in tuple(Precision):
            raise ValueError(f"--precision must be {', '.join(Precision)}, not {self.precision!r}")
        if self.residual not in tuple(Residual):
            raise ValueError(f"--residual must be {', '.join(Residual)}, not {self.residual!r}")
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise ValueError(f"--device must be {DEVICE_HELP}, not {self.device!r}")
        if self.weights is not None and not Path(self.weights).is_file():
            raise ValueError(f"{self.weights}: model weights not found")
        if self.steps < 1 or self.ensemble < 1 or (self.tile_batch is not None and self.tile_batch < 1):
            raise ValueError("--steps, --ensemble and --tile-batch must be at least 1")
        # An explicit --tile is checked as given; with the device's default tile, --overlap must
        # fit below the smallest of them.
        tile = self.tile if self.tile is not None else min(t for t, _ in TILING.values())
        if tile % 2 or self.overlap % 2 or tile < 32 or not 0 <= self.overlap < tile:
            raise ValueError(
                "--tile must be even and >= 32, --overlap even and below it "
                f"(got {self.tile if self.tile is not None else 'the default'}, {self.overlap})"
            )

    def tiling(self, device_type: str) -> tuple[int, int | None]:
        """(tile, tile_batch) on a device of this type ("cpu", "cuda", "mps"): the ones asked
        for, else the device's defaults. A tile batch of None: chosen from the GPU's free memory
        (rawback.network)."""
        default_tile, default_batch = TILING["cpu" if device_type == "cpu" else "gpu"]
        return (
            self.tile if self.tile is not None else default_tile,
            self.tile_batch if self.tile_batch is not None else default_batch,
        )

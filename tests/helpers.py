"""Data the tests make themselves, for several test files: a synthetic linear scene, DNGs of it
written with our own writer (standing in for a camera's RAW files), and small JPEGs of it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from rawback.camera import builtin_profiles
from rawback.io.dng import write_dng
from rawback.io.dng_identity import DngIdentity
from rawback.isp.bayer import mosaic_rgb


def synthetic_scene(height: int, width: int, seed: int) -> np.ndarray:
    """Linear camera RGB with gradients, flat patches and a clipped highlight."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    rgb = np.stack([0.2 + 0.3 * x, 0.15 + 0.2 * y, 0.1 + 0.25 * (1 - x)], axis=-1)
    for _ in range(6):
        top, left = rng.integers(0, height - 24), rng.integers(0, width - 24)
        rgb[top : top + 24, left : left + 24] = rng.uniform(0.02, 0.6, 3)
    rgb[8:20, 8:20] = 1.2  # clipped
    return rgb


def write_synthetic_dng(
    path: Path,
    seed: int,
    height: int = 144,
    width: int = 176,
    compression: str = "ljpeg",
    identity: DngIdentity | None = None,
) -> None:
    """A DNG of a synthetic scene in the generic profile; `identity`: the camera it names (Make
    "rawback" by default)."""
    profile = builtin_profiles()["generic"]
    normalised = np.clip(mosaic_rgb(synthetic_scene(height, width, seed), profile.cfa_pattern), 0, 1)
    counts = profile.black_level[0] + normalised * (profile.white_level - profile.black_level[0])
    neutral = profile.daylight_neutral() * np.array([1.2, 1.0, 0.8])
    write_dng(
        path,
        np.rint(counts).astype(np.uint16),
        sensor=profile.dng_sensor(),
        as_shot_neutral=neutral / neutral[1],
        compression=compression,
        identity=identity,
        overwrite=True,
    )


def small_jpeg(path: Path, seed: int, size: tuple[int, int] = (120, 90)) -> Path:
    rng = np.random.default_rng(seed)
    image = np.clip(
        synthetic_scene(size[1], size[0], seed) ** (1 / 2.2) + rng.normal(0, 0.02, (size[1], size[0], 3)),
        0,
        1,
    )
    Image.fromarray(np.rint(image * 255).astype(np.uint8)).save(path, quality=90)
    return path


def sized_jobs(folder: Path, sizes: tuple[int, ...] = (1000, 3000)) -> list:
    """Batch jobs whose sources hold `sizes` bytes (progress is weighted by input size)."""
    from rawback.batch import Job

    jobs = [Job(folder / f"{index}.jpg", folder / f"{index}.jpg.dng") for index in range(len(sizes))]
    for job, size in zip(jobs, sizes, strict=True):
        job.source.write_bytes(b"x" * size)
    return jobs

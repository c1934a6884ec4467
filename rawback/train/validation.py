"""Validation crops: the default protocol's input photo for each held-out RAW file, made once per
run, and the analytic baseline every kind's validation compares with."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rawback.train.data import load_cached


@dataclass
class ValidationImage:
    name: str
    rgb: np.ndarray  # the decoded JPEG (q90 4:2:0 of LibRaw's render), whole photo, float32
    truth: np.ndarray  # packed truth of the centre crop
    crop: tuple[slice, slice]  # in photo pixels, even offsets
    profile: object
    neutral: np.ndarray
    exposure_value: float | None


def prepare_validation(folders: list[Path], crop: int) -> list[ValidationImage]:
    """The default protocol's input for each held-out file, made once."""
    from PIL import Image

    from rawback.isp.bayer import pack_rggb

    images = []
    for folder in folders:
        item = load_cached(folder)
        buffer = io.BytesIO()
        Image.fromarray(np.asarray(item.libraw)).save(buffer, "JPEG", quality=90, subsampling=2)
        rgb = np.asarray(Image.open(buffer).convert("RGB"), dtype=np.float32) / 255.0
        h, w = item.truth.shape
        ch, cw = min(crop, h) // 2 * 2, min(crop, w) // 2 * 2
        y, x = (h - ch) // 4 * 2, (w - cw) // 4 * 2
        window = (slice(y, y + ch), slice(x, x + cw))
        truth = pack_rggb(np.asarray(item.truth[window]), "RGGB")
        images.append(
            ValidationImage(item.name, rgb, truth, window, item.profile, item.neutral, item.exposure_value)
        )
    return images


def analytic_packed(crop: np.ndarray, profile, settings) -> np.ndarray:
    """The analytic baseline of a crop at the daylight white (what `convert` does knowing nothing)."""
    from rawback.isp.bayer import pack_rggb
    from rawback.isp.unprocess import unprocess

    return pack_rggb(unprocess(crop, profile, profile.daylight_neutral(), settings), "RGGB")

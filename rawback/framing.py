"""Where a camera's JPEG sits in its RAW's frame, and the RAW developed as the inverse undoes a
camera JPEG: what `profile curve` measures a finish from and the `camera-preview` evaluation
protocol scores against. Cameras crop a few border pixels of the sensor's frame for their JPEGs
(and their embedded previews); the crop is found on luminance ranks, which the unknown tone curve
does not change.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from rawback.camera import CameraProfile
from rawback.isp import tone_fit

ASPECT_TOLERANCE = 0.03  # relative: a RAW and its JPEG of the same frame agree to ~1 %
# How much of each side of the RAW's frame a camera's JPEG may leave out, as a fraction of that
# side. The Canon S40's JPEGs leave out about 20 of the RAW's 2312 columns and 8 of its 1720 rows
# (0.9 %, 0.5 %); without finding that crop its pairs fitted with residuals of 0.26-0.46, a
# different shot's level.
MAX_MARGIN = 0.04
ALIGN_LONG_SIDE = 192  # the frame is found on luminance averaged down to this many pixels


def developed_raw(path: Path, profile: CameraProfile) -> np.ndarray:
    """A RAW file as linear sRGB (H, W, 3) at mosaic geometry, as the inverse undoes a camera
    JPEG: LibRaw's linear demosaic, the white balance the camera recorded as LibRaw applies it
    (the one the camera's JPEG was made with), the profile's colour matrix."""
    from rawback.io.raw import camera_wb_neutral, read_linear_rgb
    from rawback.isp.simulate import camera_to_linear_srgb

    neutral = camera_wb_neutral(path)
    return camera_to_linear_srgb(read_linear_rgb(path).rgb, profile, neutral)


def frame_margins(linear: np.ndarray, jpeg_linear: np.ndarray) -> tuple[float, float, float, float]:
    """RAW pixels (left, top, right, bottom) that a JPEG of the RAW's orientation leaves out; both
    linear RGB (see margins_of)."""
    return margins_of(float_image(linear @ tone_fit.LUMINANCE), jpeg_linear @ tone_fit.LUMINANCE)


def grid_size(shape: tuple[int, ...], long_side: int) -> tuple[int, int]:
    """(width, height) of the common grid for a frame of `shape`: at most `long_side` long."""
    h, w = shape[:2]
    scale = min(1.0, long_side / max(h, w))
    return max(1, round(w * scale)), max(1, round(h * scale))


def margins_of(raw_luma: Image.Image, jpeg_luma: np.ndarray) -> tuple[float, float, float, float]:
    """How many of the RAW's pixels (left, top, right, bottom; fractional) the JPEG leaves out.

    Both are averaged down to ALIGN_LONG_SIDE pixels, and the crop of the RAW whose luminance
    ranks most like the JPEG's wins: rank correlation does not depend on the unknown tone curve.
    Symmetric crops first on a grid, then each side alone by a shrinking step."""
    width, height = raw_luma.size
    size = grid_size(jpeg_luma.shape, ALIGN_LONG_SIDE)
    target = _ranks(box_resize(jpeg_luma, size))

    def score(m: tuple[float, float, float, float]) -> float:
        box = (m[0] * width, m[1] * height, width - m[2] * width, height - m[3] * height)
        cropped = np.asarray(raw_luma.resize(size, Image.Resampling.BOX, box=box))
        return float(np.corrcoef(_ranks(cropped), target)[0, 1])

    steps = np.linspace(0.0, MAX_MARGIN, 9)
    best = max(((mx, my, mx, my) for mx in steps for my in steps), key=score)
    best_score, step = score(best), steps[1] / 2
    while step > MAX_MARGIN / 256:
        improved = False
        for side in range(4):
            for delta in (-step, step):
                candidate = list(best)
                candidate[side] = min(MAX_MARGIN, max(0.0, candidate[side] + delta))
                if (value := score(tuple(candidate))) > best_score:
                    best, best_score, improved = tuple(candidate), value, True
        if not improved:
            step /= 2
    return (best[0] * width, best[1] * height, best[2] * width, best[3] * height)


def _ranks(values: np.ndarray) -> np.ndarray:
    return np.argsort(np.argsort(values.ravel())).astype(np.float64)


def float_image(plane: np.ndarray) -> Image.Image:
    return Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32))  # mode "F"


def box_resize(
    plane: np.ndarray, size: tuple[int, int], box: tuple[float, float, float, float] | None = None
) -> np.ndarray:
    """Area average of a float plane, or of its `box`, onto (width, height)."""
    return np.asarray(float_image(plane).resize(size, Image.Resampling.BOX, box=box))

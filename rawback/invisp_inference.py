"""The "invisp" method: the Invertible-ISP flow run backwards over a photo, tile by tile.

photo (sRGB-encoded) --flow inverse--> scene-linear sRGB L --raw_from_srgb_matrix(profile,
neutral)--> camera RGB --sampled on the profile's CFA, clipped to [0, 1]--> normalised mosaic.

The flow factors camera colour out (docs/invisp.md): it knows no camera, so the camera's matrix and
the white balance come from the profile and `estimate_neutral` (given, maker notes, EXIF or
daylight). The flow is fully convolutional; a photo is cut into overlapping tiles (rawback.tiling's
grid and blend weights), so the network's memory is bounded by the tile, whatever the photo's size
(the photo and its blend accumulators remain: a 24 MP convert peaks at 1.55 GB, models/README.md).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from rawback.inverse import InverseRequest, InverseResult, estimate_neutral
from rawback.invisp_weights import bundled_invisp, load_flow
from rawback.isp.unprocess import mosaic_from_linear, raw_from_srgb_matrix
from rawback.model.invisp import InvertibleIsp
from rawback.tiling import blend_weights, tile_grid

TILE = 512  # photo pixels per tile side
OVERLAP = 64  # photo pixels neighbouring tiles share and blend (the flow's context is wider, but
# its far pixels weigh little: tests/test_invisp.py measures the seam against one whole pass)


@functools.lru_cache(maxsize=2)
def cached_flow(weights: str) -> InvertibleIsp:
    return load_flow(weights)


@torch.no_grad()
def invert_photo(
    model: InvertibleIsp, rgb: np.ndarray, tile: int = TILE, overlap: int = OVERLAP
) -> np.ndarray:
    """(H, W, 3) sRGB-encoded photo in [0, 1] -> (H, W, 3) float32 scene-linear sRGB, unclipped."""
    h, w, _ = rgb.shape
    # The flow squeezes 2x2 blocks: pad to even sides, and cut tiles on a grid of 2x2 blocks.
    padded = np.pad(rgb, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    photo = torch.from_numpy(np.ascontiguousarray(padded, dtype=np.float32)).permute(2, 0, 1)[None]
    hp, wp = padded.shape[:2]
    # float32 accumulators: a 24 MP photo's blend takes 400 MB instead of 800
    num = torch.zeros((3, hp, wp), dtype=torch.float32)
    den = torch.zeros((1, hp, wp), dtype=torch.float32)
    weight: torch.Tensor | None = None
    for rows, cols in tile_grid(hp // 2, wp // 2, tile // 2, overlap // 2):
        rows, cols = slice(2 * rows.start, 2 * rows.stop), slice(2 * cols.start, 2 * cols.stop)
        pred = model.inverse(photo[:, :, rows, cols])[0]
        if weight is None:  # every tile has one size
            weight = blend_weights(pred.shape[1], pred.shape[2], overlap, dtype=torch.float32)
        num[:, rows, cols] += pred * weight
        den[:, rows, cols] += weight
    num /= den
    return np.ascontiguousarray(num[:, :h, :w].permute(1, 2, 0).numpy())


def linear_to_mosaic(linear: np.ndarray, raw_from_srgb: np.ndarray, pattern: str) -> np.ndarray:
    """(H, W, 3) scene-linear sRGB -> (H, W) normalised mosaic on `pattern`, clipped to [0, 1]:
    at each CFA site only its camera channel (one row of the matrix), as rawback.isp.unprocess does."""
    return mosaic_from_linear(lambda dy, dx: linear[dy::2, dx::2], raw_from_srgb, pattern, linear.shape[:2])


def invert_with_flow(request: InverseRequest) -> InverseResult:
    """The "invisp" method of rawback.methods."""
    weights = request.diffusion.weights or str(bundled_invisp())
    model = cached_flow(str(weights))
    estimate = estimate_neutral(request)
    linear = invert_photo(model, request.rgb)
    if request.progress is not None:
        request.progress(1.0)
    mosaic = linear_to_mosaic(
        linear, raw_from_srgb_matrix(request.profile, estimate.neutral), request.profile.cfa_pattern
    )
    notes = ("Invertible ISP: the flow's inverse, camera colour from the profile", estimate.note)
    return InverseResult(mosaic=mosaic, neutral=estimate.neutral, notes=notes, neutral_source=estimate.source)

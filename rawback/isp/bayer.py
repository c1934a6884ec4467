"""Bayer geometry: CFA patterns, packing to RGGB planes, mosaicking.

A CFA pattern is written as four letters for the top-left 2x2 block in row-major order ("RGGB",
"BGGR", "GRBG", "GBRG"). Packed mosaics are (H/2, W/2, 4) arrays with channels R, G1, G2, B where
G1 shares a row with R; every pattern is brought to RGGB by starting one pixel down and/or right.
"""

from __future__ import annotations

import numpy as np

PATTERNS = ("RGGB", "BGGR", "GRBG", "GBRG")

# DNG CFAPattern codes: 0 = red, 1 = green, 2 = blue.
_COLOR_CODE = {"R": 0, "G": 1, "B": 2}


def check_pattern(pattern: str) -> str:
    pattern = pattern.upper()
    if pattern not in PATTERNS:
        raise ValueError(f"unsupported CFA pattern {pattern!r}; supported: {', '.join(PATTERNS)}")
    return pattern


def pattern_codes(pattern: str) -> tuple[int, int, int, int]:
    """The DNG CFAPattern tag value (0 = R, 1 = G, 2 = B) for a pattern name."""
    return tuple(_COLOR_CODE[c] for c in check_pattern(pattern))  # type: ignore[return-value]


def pattern_from_codes(codes: np.ndarray | list[list[int]], color_desc: str = "RGBG") -> str:
    """Pattern name from a 2x2 array of colour indices into `color_desc` (rawpy's `raw_pattern`)."""
    letters = "".join(color_desc[int(i)] for i in np.asarray(codes).reshape(-1))
    return check_pattern(letters)


def rggb_offset(pattern: str) -> tuple[int, int]:
    """(row, column) of the first red pixel: where an RGGB-phase crop of this pattern starts."""
    index = check_pattern(pattern).index("R")
    return index // 2, index % 2


def channel_index(pattern: str) -> np.ndarray:
    """2x2 array mapping each CFA site to its camera colour 0 = R, 1 = G, 2 = B."""
    return np.array(pattern_codes(pattern), dtype=np.intp).reshape(2, 2)


def rggb_crop(height: int, width: int, pattern: str) -> tuple[slice, slice]:
    """Slices that crop an image of this size and pattern to an even-sized RGGB-phase region."""
    dy, dx = rggb_offset(pattern)
    h = (height - dy) // 2 * 2
    w = (width - dx) // 2 * 2
    return slice(dy, dy + h), slice(dx, dx + w)


def pack_rggb(mosaic: np.ndarray, pattern: str) -> np.ndarray:
    """Pack a mosaic (H, W) with the given pattern into (h, w, 4) R, G1, G2, B planes."""
    rows, cols = rggb_crop(*mosaic.shape[:2], pattern)
    m = mosaic[rows, cols]
    return np.stack([m[0::2, 0::2], m[0::2, 1::2], m[1::2, 0::2], m[1::2, 1::2]], axis=-1)


def unpack_rggb(packed: np.ndarray) -> np.ndarray:
    """Inverse of `pack_rggb` for an RGGB mosaic: (h, w, 4) -> (2h, 2w)."""
    h, w, _ = packed.shape
    out = np.empty((2 * h, 2 * w), dtype=packed.dtype)
    out[0::2, 0::2] = packed[..., 0]
    out[0::2, 1::2] = packed[..., 1]
    out[1::2, 0::2] = packed[..., 2]
    out[1::2, 1::2] = packed[..., 3]
    return out


def mosaic_rgb(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Sample a full-resolution 3-channel image (H, W, 3) on the CFA: (H, W) mosaic."""
    h, w, _ = rgb.shape
    idx = channel_index(pattern)
    rows = np.arange(h)[:, None] % 2
    cols = np.arange(w)[None, :] % 2
    which = idx[rows, cols]
    return np.take_along_axis(rgb, which[..., None], axis=-1)[..., 0]


def per_site(values: np.ndarray | tuple, height: int, width: int) -> np.ndarray:
    """Tile a 2x2 per-CFA-site array (e.g. black levels) over an (H, W) mosaic."""
    block = np.asarray(values, dtype=np.float32).reshape(2, 2)
    return np.tile(block, ((height + 1) // 2, (width + 1) // 2))[:height, :width]


def packed_to_pattern(packed: np.ndarray, pattern: str, height: int, width: int) -> np.ndarray:
    """Place a packed RGGB prediction into a mosaic of `pattern` and size (H, W).

    The packed planes cover the RGGB-phase region of the target (see `rggb_crop`); sites outside
    it (the first row/column of a non-RGGB pattern, a trailing odd row/column) are filled from the
    nearest same-colour site, which is what a camera's edge pixels look like.
    """
    dy, dx = rggb_offset(pattern)
    inner = unpack_rggb(packed)
    # Pad by two pixels on every side, keeping the CFA phase, then cut the target window.
    padded = _phase_preserving_pad(inner, 2)
    top, left = 2 - dy, 2 - dx
    out = padded[top : top + height, left : left + width]
    if out.shape != (height, width):
        raise ValueError(f"packed prediction {packed.shape} too small for a {height}x{width} mosaic")
    return out


def _phase_preserving_pad(mosaic: np.ndarray, n: int) -> np.ndarray:
    """Pad a mosaic by an even number of pixels copying same-colour neighbours (period 2)."""
    assert n % 2 == 0
    h, w = mosaic.shape
    out = np.empty((h + 2 * n, w + 2 * n), dtype=mosaic.dtype)
    out[n : n + h, n : n + w] = mosaic
    for k in range(n):
        out[n : n + h, k] = mosaic[:, k % 2]  # left: repeat the first column pair
        out[n : n + h, n + w + k] = mosaic[:, w - 2 + k % 2]
    for k in range(n):
        out[k, :] = out[n + k % 2, :]
        out[n + h + k, :] = out[n + h - 2 + k % 2, :]
    return out

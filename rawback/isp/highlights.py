"""Clipped highlights: where the photo is blown, the mosaic reads as a saturated sensor.

A blown sky in a JPEG is (255, 255, 255). The analytic inverse turns it into the camera RGB of the
white the photo was balanced to, so only the channel with the smallest white-balance gain (green)
reaches the white level: red and blue stop at 1 / their gain (about 0.5 and 0.8). Raw developers
detect clipping per CFA site against the white level, so they see an unclipped, very bright
surface of that colour: neutral at the as-shot white balance, cyan or pink after any change, and
their highlight reconstruction never starts. A saturated sensor reads the white level at every site
of a blown area; `restore_clipping` writes that, except where a method reconstructed values above
what the photo states (the learned model's residual), which are kept. docs/dng-layout.md
("Clipped highlights") has what darktable and RawTherapee then do.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# A pixel is blown when all three channels sit at the JPEG's ceiling. A blown area is a core of
# pixels at 254-255 (JPEG rounding leaves a code of noise) fringed by compression noise down to
# about 250; near-white surfaces that are not blown (a chart's white patch, paper) sit at 245-253
# with no such core. So: pixels at the ceiling seed the mask, which grows through the connected
# pixels near it (hysteresis, as in Canny's edge linking). Thresholds sit half a code below the
# 8-bit values so that float rounding of k/255 never decides.
CEILING = 253.5 / 255.0
NEAR_CEILING = 249.5 / 255.0
# A seed must be at the ceiling with its 3x3 neighbourhood: a single noisy pixel at 254 inside a
# 250-253 patch would otherwise flood the whole patch.
SEED_SIZE = 3


@dataclass(frozen=True)
class Highlights:
    # (H, W) float32 in [0, 1], clipped sites at the white level (1); None where the restoration
    # ran on the GPU, which returns the raw counts instead (rawback.device_mosaic)
    mosaic: np.ndarray | None
    clipped: float  # fraction of the photo's pixels in the clipped quads
    kept: float  # fraction of the clipped sites whose reconstructed value was kept

    @property
    def notes(self) -> tuple[str, ...]:
        """What -v says: nothing when nothing is clipped."""
        if self.clipped == 0.0:
            return ()
        note = f"highlights: {self.clipped:.1%} of the photo clipped, set to the white level"
        if self.kept >= 0.005:
            note += f" ({self.kept:.0%} of those sites keep the model's reconstruction)"
        return (note,)


def blown_pixels(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) sRGB in [0, 1] -> (H, W) bool: where the photo is clipped in all three channels.
    A single saturated channel (a red flower) is a colour, not a blown area, and is not included."""
    floor = np.minimum(rgb[..., 0], rgb[..., 1])  # the darkest channel of each pixel
    np.minimum(floor, rgb[..., 2], out=floor)
    near = floor >= NEAR_CEILING
    if not near.any():  # the usual photo: nothing more to look at
        return near
    seeds = _eroded(floor >= CEILING, SEED_SIZE // 2)
    if not seeds.any():
        return np.zeros_like(near)
    # Label only the box around what is near the ceiling: a sky is a band, a lamp a speck.
    rows, cols = np.flatnonzero(near.any(axis=1)), np.flatnonzero(near.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    labels, count = ndimage.label(near[box])  # 4-connected areas near the ceiling
    seeded = np.zeros(count + 1, bool)
    seeded[labels[seeds[box]]] = True
    seeded[0] = False  # the background label (pixels not near the ceiling)
    blown = np.zeros_like(near)
    blown[box] = seeded[labels]
    return blown


def whole_quads(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> the same with every 2x2 CFA quad (even rows and columns) that holds a True
    made all True: each quad holds one red, two green and one blue site, and a saturated sensor
    clips all of them, not the colours that happen to fall inside a pixel-sharp edge."""
    h, w = mask.shape
    if h % 2 or w % 2:
        mask = np.pad(mask, ((0, h % 2), (0, w % 2)))
    quads = mask[0::2, 0::2] | mask[0::2, 1::2] | mask[1::2, 0::2] | mask[1::2, 1::2]
    out = np.empty(mask.shape, bool)
    for dy in (0, 1):
        for dx in (0, 1):
            out[dy::2, dx::2] = quads
    return out[:h, :w]


def _eroded(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary erosion by a (2 radius + 1) square, the outside counting as False: shifted ANDs,
    ten times faster than scipy.ndimage.binary_erosion on a 12 MP mask."""
    out = mask.copy()
    for _ in range(radius):
        rows = out.copy()
        rows[1:-1] &= out[:-2] & out[2:]
        rows[[0, -1]] = False
        out = rows.copy()
        out[:, 1:-1] &= rows[:, :-2] & rows[:, 2:]
        out[:, [0, -1]] = False
    return out


def clipped_sites(rgb: np.ndarray) -> np.ndarray | None:
    """(H, W, 3) photo -> (H, W) bool, every CFA site of its blown quads; None when nothing is
    blown (the usual photo). What `restore_clipping` and rawback.device_mosaic set to white."""
    blown = blown_pixels(rgb)
    return whole_quads(blown) if blown.any() else None


def restore_clipping(
    mosaic: np.ndarray, rgb: np.ndarray, reconstructed: np.ndarray | None = None
) -> Highlights:
    """Set every CFA site of the photo's blown quads to the white level.

    `mosaic`: (H, W) in [0, 1] (1 = white level), any CFA; `rgb`: the photo, (H, W, 3) sRGB in
    [0, 1]; `reconstructed`: (H, W) bool, the sites where the method put its own value above what
    the photo states (rawback.inverse.InverseResult.reconstructed): those keep it.
    """
    if mosaic.shape != rgb.shape[:2]:
        raise ValueError(f"mosaic {mosaic.shape} and photo {rgb.shape[:2]} differ in size")
    clipped = clipped_sites(rgb)
    if clipped is None:
        return Highlights(mosaic, 0.0, 0.0)
    fraction = float(clipped.mean())
    to_white = clipped if reconstructed is None else clipped & ~reconstructed
    kept = 1.0 - float(np.count_nonzero(to_white)) / np.count_nonzero(clipped)
    out = np.array(mosaic, dtype=np.float32)
    out[to_white] = 1.0
    return Highlights(out, fraction, kept)

"""Demosaicked, linear camera RGB from a RAW file: the scene the training simulator renders.

One rawpy call runs LibRaw's AHD demosaic with every rendering step switched off: unit white
balance, no colour matrix (`ColorSpace.raw`), a linear curve, no auto-brightening and no
`adjust_maximum` (so the white level means what the file says). LibRaw then scales each CFA site by
65535 / (white - black), so dividing the 16-bit output by 65535 gives the same normalisation as
`RawImage.normalized()`: 0 = black, 1 = the white level.

Measured on the files in ../shared/data/raw, comparing the render with `read_raw(path).normalized()`
at every CFA site (values between 0.02 and 0.9): the mean ratio is 0.9999 (G2, S40, GoPro HERO8 and
Fusion, Kodak DC50), every site within one 16-bit code; the Canon EOS D30 is 0.9996, within one
12-bit count, because LibRaw's black differs from rawpy's per-channel black by one count on some
sites. AHD leaves the measured channel of each site untouched, so the render *is* the mosaic there.

Kodak DC120 pixels are 1.53 times taller than wide and LibRaw stretches the width to square them;
we resample back to the mosaic's geometry (float Lanczos) so pixels line up with the mosaic, as
`rawback.evaluate.protocols.to_mosaic_geometry` does for 8-bit renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from rawback.errors import InputError

# The 16-bit code LibRaw gives the white level with a linear curve and no auto-brightening.
LIBRAW_WHITE_CODE = 65535.0


@dataclass(frozen=True)
class LinearRender:
    """Demosaicked camera RGB of a RAW file, in sensor orientation and mosaic geometry."""

    path: Path
    rgb: np.ndarray  # (H, W, 3) float32 camera RGB, not white-balanced; 0 = black, 1 = white level
    pattern: str  # CFA of the mosaic at rgb[0:2, 0:2], e.g. "RGGB": which channel was measured
    resampled: bool  # True when LibRaw's render was resized (non-square pixels): sites are no longer exact


def linear_params() -> dict[str, object]:
    """The rawpy `postprocess` arguments of the linear render (kept in one place for tests)."""
    import rawpy

    return dict(
        user_wb=[1.0, 1.0, 1.0, 1.0],
        output_color=rawpy.ColorSpace.raw,
        gamma=(1, 1),
        no_auto_bright=True,
        output_bps=16,
        user_flip=0,
        adjust_maximum_thr=0.0,
    )


def read_linear_rgb(path: Path | str) -> LinearRender:
    """LibRaw's AHD demosaic of a RAW file as normalised, unbalanced camera RGB (see module doc)."""
    import rawpy

    from rawback.isp.bayer import pattern_from_codes

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        with rawpy.imread(str(path)) as raw:
            if raw.num_colors != 3 or raw.raw_pattern is None or raw.raw_pattern.shape != (2, 2):
                raise InputError(
                    path, "not a 2x2 Bayer sensor (X-Trans, Foveon and linear DNGs are unsupported)"
                )
            pattern = pattern_from_codes(raw.raw_pattern, raw.color_desc.decode())
            height, width = raw.raw_image_visible.shape
            rendered = raw.postprocess(**linear_params())
    except rawpy.LibRawError as exc:
        raise InputError(path, f"LibRaw cannot demosaic this file ({type(exc).__name__})") from exc
    rgb = rendered.astype(np.float32) / np.float32(LIBRAW_WHITE_CODE)
    resampled = rgb.shape[:2] != (height, width)
    if resampled:
        rgb = resize_float(rgb, height, width)
    return LinearRender(path=path, rgb=rgb, pattern=pattern, resampled=resampled)


def resize_float(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Lanczos resize of float (H, W, C) data, channel by channel in Pillow's 32-bit float mode.

    Lanczos rings a little at hard edges; the result is clipped back to [0, 1] because the input
    was clipped there by LibRaw and a normalised RAW cannot leave that range.
    """
    channels = []
    for c in range(rgb.shape[-1]):
        plane = Image.fromarray(np.ascontiguousarray(rgb[..., c], dtype=np.float32))  # mode "F"
        channels.append(np.asarray(plane.resize((width, height), Image.Resampling.LANCZOS)))
    return np.clip(np.stack(channels, axis=-1), 0.0, 1.0).astype(np.float32)

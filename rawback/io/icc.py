"""ICC colour management: photo pixels with an embedded profile (Display P3, Adobe RGB, CMYK,
grey) to sRGB, relative colorimetric with black-point compensation. 8-bit transforms through
Pillow's LittleCMS, 16-bit through imagecodecs' (Pillow's is 8-bit only).
"""

from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image, ImageCms

INTENT = ImageCms.Intent.RELATIVE_COLORIMETRIC


PILLOW_MODE = {"GRAY": "L", "RGB": "RGB", "CMYK": "CMYK"}


@functools.cache
def adobe_rgb_icc() -> bytes:
    import imagecodecs

    return imagecodecs.cms_profile("adobergb")  # Adobe RGB (1998): its primaries, D65, gamma 563/256


@functools.cache
def srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


@functools.lru_cache(maxsize=8)
def pillow_transform(icc: bytes, space: str) -> ImageCms.ImageCmsTransform:
    return ImageCms.buildTransform(
        ImageCms.ImageCmsProfile(io.BytesIO(icc)),
        srgb_profile(),
        PILLOW_MODE[space],
        "RGB",
        renderingIntent=INTENT,
        flags=ImageCms.Flags.BLACKPOINTCOMPENSATION,
    )


def convert8(pixels: np.ndarray, icc: bytes, space: str) -> np.ndarray:
    height, width = pixels.shape[:2]
    im = Image.frombytes(PILLOW_MODE[space], (width, height), np.ascontiguousarray(pixels).tobytes())
    return np.asarray(ImageCms.applyTransform(im, pillow_transform(icc, space)))


def convert16(pixels: np.ndarray, icc: bytes, space: str) -> np.ndarray | None:
    """16-bit LittleCMS transform through imagecodecs; None when it cannot build one."""
    import imagecodecs

    # Without NOOPTIMIZE LittleCMS resamples the transform into a LUT that is off by up to 3900/65535
    # for saturated colours; unoptimised it is exact to rounding (1.4 s per 12 MP).
    flags = int(ImageCms.Flags.NOOPTIMIZE | ImageCms.Flags.BLACKPOINTCOMPENSATION)
    try:
        return imagecodecs.cms_transform(
            np.ascontiguousarray(pixels),
            icc,
            srgb_profile().tobytes(),
            colorspace=space.lower(),
            outcolorspace="rgb",
            intent=int(INTENT),
            flags=flags,
        )
    except (imagecodecs.CmsError, ValueError):
        return None


@functools.lru_cache(maxsize=16)
def maps_like_srgb(icc: bytes, space: str) -> bool:
    """Whether a profile is sRGB in all but name ("sRGB IEC61966-2.1", Facebook's "c2", ...).

    Converting those would only add rounding, so probe a colour grid (or grey ramp) through it.
    """
    if space == "GRAY":
        probe = np.arange(256, dtype=np.uint8)[None, :]
        expected = np.repeat(probe[..., None], 3, axis=2)
    else:
        levels = np.arange(0, 256, 17, dtype=np.uint8)
        probe = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1)
        probe = expected = probe.reshape(64, 64, 3)
    out = convert8(probe, icc, space)
    return int(np.abs(out.astype(np.int16) - expected).max()) <= 2

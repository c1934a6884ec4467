"""The parts of reading a TIFF photo (rawback.io.image) that do not need Pillow's image: tag
values checked before use (a crafted file types them as it likes), tifffile's decoding of 16-bit
and unusual TIFFs, and what a reader's exception means to a user.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import UnidentifiedImageError

from rawback.errors import InputError, first_line


def tiff_problem(exc: Exception) -> str:
    """What a TIFF reader's exception means to a user: Pillow's names an in-memory object by its
    address, and an IndexError from tifffile only says that the structure is cut short."""
    if isinstance(exc, UnidentifiedImageError):
        return "Pillow cannot identify its image data"
    if isinstance(exc, IndexError):
        return "its structure is damaged: a page or a value it points to is missing"
    return first_line(exc)


def tag_bytes(tag, *, text: bool = False) -> bytes | None:  # tag: tifffile.TiffTag | None
    """A profile or packet tag's bytes when it is typed as bytes (BYTE, UNDEFINED; ASCII too for
    `text`). Typed otherwise it holds no profile: a SHORT array, or a LONG whose value is a length
    (bytes(N) would allocate N bytes), is ignored."""
    value = None if tag is None else tag.value
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if text and isinstance(value, str):
        return value.encode("utf-8", "replace")
    return None


def tag_orientation(tag) -> int:  # tag: tifffile.TiffTag | None
    """The Orientation tag when it is one number 1..8 (one SHORT); text, several values or a
    number out of range mean the file says nothing usable: stored as is (1)."""
    value = None if tag is None else tag.value
    if isinstance(value, tuple | list) and len(value) == 1:
        value = value[0]
    return int(value) if isinstance(value, int) and 1 <= int(value) <= 8 else 1


def tifffile_pixels(path: Path, data: bytes, bits: int, photometric: int) -> tuple[np.ndarray, str]:
    import tifffile
    from tifffile import PHOTOMETRIC

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages[0]
            array = page.asarray()
            axes = page.axes
    except Exception as exc:  # truncated strips, bad compressed data...
        raise InputError(path, f"image data is truncated or corrupt ({first_line(exc)})") from exc
    if axes.startswith("S"):  # planar configuration: samples first
        array = np.moveaxis(array, 0, -1)
    if array.dtype.kind not in "ui":
        raise InputError(path, f"unsupported TIFF sample type {array.dtype}")
    array = np.clip(array, 0, None).astype(np.uint16)
    if bits < 16:  # e.g. 12-bit samples: stretch to the full 16-bit range
        array = np.rint(array * (65535 / (2**bits - 1))).astype(np.uint16)
    if array.ndim == 2:
        array = array[..., None]
    if photometric == PHOTOMETRIC.MINISBLACK:
        return array[..., 0], "GRAY"
    if photometric == PHOTOMETRIC.MINISWHITE:
        return 65535 - array[..., 0], "GRAY"
    if photometric == PHOTOMETRIC.RGB and array.shape[2] >= 3:
        return array[..., :3], "RGB"
    if photometric == PHOTOMETRIC.SEPARATED and array.shape[2] >= 4:
        return array[..., :4], "CMYK"
    name = getattr(photometric, "name", photometric)
    raise InputError(path, f"16-bit TIFF with photometric {name} is not supported")

"""HEIF/HEIC photos: iPhones' default format since 2017, and the .HIF of some cameras.

Decoded by libheif through the optional `pi-heif` package (`pip install 'rawback[heif]'`), the
decode-only build of pillow-heif: its wheels carry libheif and libde265 (LGPL) but not the x265
encoder (GPL), and the HEVC codec stays out of a default install, as it does out of Pillow's.
`pillow-heif`, when that is what is installed, serves too (the same API).

What differs from a JPEG:
- libheif applies the file's own rotation and mirroring (`irot`/`imir`), which the format makes
  mandatory, so the pixels come out the way the photo is shown. The EXIF Orientation an iPhone
  also writes describes the same turn: applying it again would turn the photo twice, so the DNG
  gets the pixels as they come, with orientation 1.
- The colour space is an ICC profile (iPhones: Display P3) or, without one, an `nclx` box of
  code points (ITU-T H.273). rawback converts to sRGB either way; for `nclx` it builds the ICC
  profile from the box's primaries and white point. HDR transfers (PQ, HLG: Canon's and Sony's
  HDR .HIF) are refused: rawback inverts SDR camera pipelines.
- 10 and 12-bit images come out as 16-bit samples: the decoder shifts the codes to the top bits
  (1023 becomes 65472), and rawback rescales them so that full scale stays full scale (65535), or
  clipped highlights would not reach the DNG's white level.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from rawback.errors import InputError, first_line

HEIF_SUFFIXES = frozenset({".heic", ".heif", ".hif"})
INSTALL_HINT = "pip install 'rawback[heif]'"
# ftyp brands of HEVC-coded HEIF still images and sequences, and the generic HEIF brands (which an
# AVIF may carry too: decoding tells those apart).
_HEVC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_GENERIC_BRANDS = frozenset({b"mif1", b"msf1", b"mif2", b"mif3"})
_AV1_BRANDS = frozenset({b"avif", b"avis"})
# nclx transfer characteristics (ITU-T H.273 table 3) that rawback reads as SDR sRGB-like
# encodings: unspecified, BT.709/601/2020 (the same curve family), sRGB. PQ (16) and HLG (18) are
# HDR; the others (linear, log, gamma 2.8...) are not what a photo's JPEG engine writes.
_SDR_TRANSFERS = {2: "unspecified", 1: "BT.709", 6: "BT.601", 14: "BT.2020", 15: "BT.2020", 13: "sRGB"}
_HDR_TRANSFERS = {16: "PQ", 18: "HLG"}
_SRGB_PRIMARIES = (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)
_PRIMARY_NAMES = {1: "BT.709/sRGB", 9: "BT.2020", 11: "DCI-P3", 12: "Display P3"}


BRANDS_READ = 4096  # bytes of a file's start that `brands` and `is_heif` look at


def brands(data: bytes) -> frozenset[bytes]:
    """The major and compatible brands of an ISO-BMFF file's leading `ftyp` box (empty if none)."""
    if data[4:8] != b"ftyp" or len(data) < 16:
        return frozenset()
    size = int.from_bytes(data[0:4], "big")
    end = min(max(size, 16), len(data), BRANDS_READ)
    return frozenset({data[8:12]} | {data[i : i + 4] for i in range(16, end - 3, 4)})


def is_heif(data: bytes) -> bool:
    """An HEVC-coded HEIF (HEIC) or a generic HEIF that is not an AVIF."""
    found = brands(data)
    return bool(found & _HEVC_BRANDS) or bool(found & _GENERIC_BRANDS and data[8:12] not in _AV1_BRANDS)


@dataclass(frozen=True)
class HeifPicture:
    pixels: np.ndarray  # (H, W) GRAY or (H, W, 3) RGB, uint8 or uint16, as the photo is shown
    space: str  # "GRAY" or "RGB"
    icc: bytes | None  # the file's ICC profile, or one built from its nclx box; None: sRGB
    icc_name: str | None  # how notes name an ICC profile rawback built (None: the profile's own)
    exif: bytes | None  # "Exif\0\0" + TIFF
    xmp: bytes | None


def decode_heif(path: Path, data: bytes, check_size) -> HeifPicture:
    """Decode the primary image of a HEIF file; `check_size(width, height)` runs before the pixels
    are decoded. One-line InputErrors for a missing decoder, damaged data and HDR photos."""
    library = _library(path)
    try:
        heif = library.open_heif(io.BytesIO(data), convert_hdr_to_8bit=False)
        width, height = heif.size
    except (ValueError, RuntimeError, OSError, EOFError) as exc:
        raise InputError(path, f"unreadable HEIF ({first_line(exc)})") from exc
    check_size(width, height)
    info = heif.info
    icc = info.get("icc_profile") or None
    icc_name = None
    if icc is None:
        icc, icc_name = _nclx_icc(path, info.get("nclx_profile"))
    try:
        # A copy: the array interface points into the decoder's buffer, which the library frees
        # with `heif` (a view of it would read freed memory once this function returns).
        array = np.array(heif, copy=True)
    except (ValueError, RuntimeError, OSError, EOFError) as exc:
        raise InputError(path, f"image data is truncated or corrupt ({first_line(exc)})") from exc
    mode = heif.mode.split(";")[0]  # "RGB;16" -> "RGB"; alpha is dropped, as for PNG
    if mode in ("L", "LA", "I"):  # "I;16": monochrome above 8 bits
        pixels, space = (array if array.ndim == 2 else array[..., 0]), "GRAY"
    elif mode in ("RGB", "RGBA", "RGBa", "RGBX"):
        pixels, space = array[..., :3], "RGB"
    elif mode in ("BGR", "BGRA", "BGRa"):
        pixels, space = array[..., 2::-1], "RGB"
    else:
        raise InputError(path, f"unsupported HEIF pixel format {heif.mode!r}")
    if pixels.dtype == np.uint16:
        pixels = _full_scale(pixels, int(info.get("bit_depth") or 16))
    return HeifPicture(np.ascontiguousarray(pixels), space, icc, icc_name, info.get("exif"), info.get("xmp"))


def _full_scale(pixels: np.ndarray, bit_depth: int) -> np.ndarray:
    """16-bit samples holding `bit_depth`-bit codes in their top bits -> the full 0..65535 range."""
    if not 8 < bit_depth < 16:
        return pixels
    codes = pixels >> (16 - bit_depth)
    return np.rint(codes * (65535 / (2**bit_depth - 1))).astype(np.uint16)


def heif_exif(path: Path) -> bytes | None:
    """The EXIF block ("Exif\0\0" + TIFF) of a HEIF file's primary image, without decoding it."""
    library = _library(path)
    try:
        return library.open_heif(path).info.get("exif")
    except (ValueError, RuntimeError, OSError, EOFError) as exc:
        raise InputError(path, f"unreadable HEIF ({first_line(exc)})") from exc


def _library(path: Path) -> ModuleType:
    try:
        import pi_heif as library
    except ImportError:
        try:
            import pillow_heif as library
        except ImportError:
            raise InputError(
                path, f"is a HEIF (HEIC) photo; to read it, install HEIF support: {INSTALL_HINT}"
            ) from None
    return library


def _nclx_icc(path: Path, nclx: dict | None) -> tuple[bytes | None, str | None]:
    """An ICC profile for the colour an nclx box describes, None for sRGB (or no box: HEIF's
    default is sRGB too)."""
    if not nclx:
        return None, None
    transfer = int(nclx.get("transfer_characteristics", 2))
    if transfer in _HDR_TRANSFERS:
        raise InputError(
            path,
            f"is an HDR photo ({_HDR_TRANSFERS[transfer]} transfer); rawback inverts SDR pipelines: "
            "export it as an SDR JPEG or HEIF",
        )
    if transfer not in _SDR_TRANSFERS:
        raise InputError(path, f"HEIF transfer characteristics {transfer} (ITU-T H.273) are not supported")
    primaries = tuple(
        float(nclx.get(f"color_primary_{name}", default))
        for name, default in zip(
            ("red_x", "red_y", "green_x", "green_y", "blue_x", "blue_y", "white_x", "white_y"),
            _SRGB_PRIMARIES,
            strict=True,
        )
    )
    if np.allclose(primaries, _SRGB_PRIMARIES, atol=2e-3):
        return None, None
    code = int(nclx.get("color_primaries", 2))
    name = _PRIMARY_NAMES.get(code, f"colour primaries {code}")
    return _rgb_profile(primaries), f"{name} (its nclx colour box, no ICC profile)"


@functools.lru_cache(maxsize=8)
def _rgb_profile(primaries: tuple[float, ...]) -> bytes:
    """ICC profile of RGB with these primaries and white (CIE xy) and the sRGB transfer curve, the
    curve SDR HEIF encoders use whichever nclx transfer code they write (through LittleCMS)."""
    import imagecodecs

    from rawback.isp.color import srgb_to_linear

    rx, ry, gx, gy, bx, by, wx, wy = primaries
    linear = srgb_to_linear(np.linspace(0.0, 1.0, 4096)).astype(np.float64)
    return imagecodecs.cms_profile(
        "rgb",
        whitepoint=[wx, wy, 1.0],
        primaries=[rx, ry, 1.0, gx, gy, 1.0, bx, by, 1.0],
        transferfunction=np.rint(linear * 65535).astype(np.uint16),
    )

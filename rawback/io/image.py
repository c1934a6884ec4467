"""Read input photos: JPEG, 8/16-bit PNG and TIFF, and HEIF/HEIC (rawback.io.heif, an optional
decoder), with EXIF, ICC profiles and size limits.

Everything comes back as float32 sRGB in [0, 1] in stored pixel order: EXIF Orientation is carried
(`exif.orientation`), never applied, because the DNG's mosaic must stay in the JPEG's stored order.
HEIF is the exception: its decoder applies the file's own rotation, so its pixels come upright and
the orientation carried is 1.

Decoders: Pillow for JPEG and 8-bit PNG/TIFF; imagecodecs for 16-bit PNG and tifffile for TIFF with
more than 8 bits, because Pillow truncates 16-bit RGB to 8 bits.

Colour: an embedded ICC profile is honoured through LittleCMS with relative-colorimetric intent and
black-point compensation (what Photoshop's "Convert to Profile" does by default); out-of-gamut
colours are clipped. A profile that maps like sRGB is not applied at all. 8-bit data goes through
Pillow's ImageCms; Pillow has no 16-bit RGB images, so 16-bit data goes through imagecodecs' own
LittleCMS binding with 16-bit buffers (and no LUT optimisation, which costs up to 6% error there).
CMYK without a profile is refused: its colours are undefined, and a naive 255-C conversion is wrong.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import logging
import os
import stat
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from rawback.errors import InputError, first_line
from rawback.io import icc
from rawback.io.c_stderr import c_stderr_held
from rawback.io.exif import ExifData, read_exif
from rawback.io.heif import HEIF_SUFFIXES, decode_heif, is_heif
from rawback.io.jpeg_check import damage_warning, jpeg_damage
from rawback.io.raw import RAW_SUFFIXES
from rawback.io.tiff_decode import tag_bytes, tag_orientation, tiff_problem, tifffile_pixels
from rawback.io.xmp import descriptive_xmp

# Large enough for the largest camera output (Samsung's 200 MP phone mode, 16320x12240 = 199.8 MP),
# small enough that the float32 RGB copy (2.4 GB at the limit) cannot exhaust a workstation.
MAX_PIXELS = 200_000_000
MIN_SIDE = 2
MAX_PAGES_COUNTED = 64  # a TIFF's pages, for the note that only the first is converted
IMAGE_SUFFIXES: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", *HEIF_SUFFIXES}
)

# Pillow refuses anything over 2 x MAX_IMAGE_PIXELS (179 MP by default) while it reads the header,
# before rawback can look at the size. rawback checks `max_pixels` itself before decoding, so lift
# Pillow's guard (never lower it) to sit above ours.
if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < MAX_PIXELS:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS

# What Pillow (and the decoders under it) raise for damaged files.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError)
_TIFF_MAGIC = (b"II*\0", b"MM\0*", b"II+\0", b"MM\0+")


@dataclass
class InputImage:
    """A decoded photo, ready for the inverse ISP."""

    path: Path
    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1], sRGB-encoded (not linear), STORED order
    bit_depth: int  # 8 or 16: precision of the source samples
    exif: ExifData  # exif.orientation is carried to the DNG
    color_note: str | None  # e.g. "converted from Display P3 to sRGB", None for sRGB input
    jpeg_bytes: bytes | None  # the original file bytes when the input is a baseline JPEG
    notes: tuple[str, ...] = ()  # what else the reader chose, e.g. the first page of a multi-page TIFF
    warnings: tuple[str, ...] = ()  # what the user should check in the result, e.g. damaged JPEG data


@dataclass
class _Decoded:
    pixels: np.ndarray  # (H, W) GRAY, (H, W, 3) RGB or (H, W, 4) CMYK; uint8 or uint16; no alpha
    space: str  # "GRAY", "RGB" or "CMYK": ICC colour-space names
    icc: bytes | None
    exif: bytes | None  # "Exif\0\0" + TIFF, or a bare TIFF structure
    xmp: bytes | None = None  # the XMP packet as stored
    icc_name: str | None = None  # how notes name `icc` when rawback chose it (not the profile's own)
    # The pixels are already as the photo is shown (HEIF: libheif applies the file's rotation), so
    # the EXIF Orientation, which describes the same turn, must not be applied again.
    upright: bool = False
    notes: tuple[str, ...] = ()  # for --verbose

    @property
    def bit_depth(self) -> int:
        return 8 if self.pixels.dtype == np.uint8 else 16


def read_image(path: Path | str, *, max_pixels: int = MAX_PIXELS, min_side: int = MIN_SIDE) -> InputImage:
    """Decode a JPEG, PNG, TIFF or HEIF photo to sRGB float32 with its EXIF.

    Raises InputError (one line naming the file and the problem) for a missing, empty, truncated,
    non-image, too large or too small file, and for colour data that cannot be converted faithfully.
    """
    path = Path(path)
    data = _read_bytes(path)
    with _quiet_libraries():
        return _decode(path, data, max_pixels, min_side)


@contextlib.contextmanager
def _quiet_libraries() -> Iterator[None]:
    """Pillow's warnings and tifffile's log messages about odd tags went straight to stderr, past
    rawback's own lines; what matters of them is reported as a note or an InputError instead.
    Sizes up to max_pixels are allowed (Pillow warns of a decompression bomb; over the limit
    _check_size refuses with a clear message), and damaged EXIF, which Pillow parses for the
    resolution, is reported by read_exif as a note."""
    tiff_log = logging.getLogger("tifffile")
    level = tiff_log.level
    tiff_log.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        tiff_log.setLevel(level)


def _decode(path: Path, data: bytes, max_pixels: int, min_side: int) -> InputImage:
    if data[:4] in _TIFF_MAGIC:
        decoded = _decode_tiff(path, data, max_pixels, min_side)
    elif is_heif(data):
        picture = decode_heif(path, data, lambda w, h: _check_size(path, w, h, max_pixels, min_side))
        decoded = _Decoded(
            picture.pixels,
            picture.space,
            picture.icc,
            picture.exif,
            picture.xmp,
            picture.icc_name,
            upright=True,
        )
    else:
        decoded = _decode_jpeg_or_png(path, data, max_pixels, min_side)
    exif = dataclasses.replace(read_exif(decoded.exif), xmp=descriptive_xmp(decoded.xmp))
    if decoded.upright:
        exif = dataclasses.replace(exif, orientation=1)
    is_jpeg = data[:2] == b"\xff\xd8"
    # A camera set to Adobe RGB embeds no profile in its JPEGs; their EXIF says so (DCF). Only
    # camera JPEGs: a PNG or TIFF is a program's output, which may keep the camera's EXIF over
    # pixels it converted to sRGB.
    if is_jpeg and decoded.icc is None and decoded.space == "RGB" and exif.colour_space == "Adobe RGB":
        name = "Adobe RGB (1998), as its EXIF colour space says (no ICC profile),"
        decoded = dataclasses.replace(decoded, icc=icc.adobe_rgb_icc(), icc_name=name)
    pixels, bit_depth, note = _to_srgb(path, decoded)
    jpeg = data if is_jpeg and _jpeg_frame_marker(data) == 0xC0 else None
    damage = jpeg_damage(data) if is_jpeg else None
    to_check = (damage_warning(damage),) if damage else ()
    return InputImage(path, _float_rgb(pixels), bit_depth, exif, note, jpeg, decoded.notes, to_check)


def _read_bytes(path: Path) -> bytes:
    """The whole file, read only if it is a regular file and only as far as its size: a FIFO named
    like a photo would block for ever and a link to /dev/zero would never end."""
    if path.suffix.lower() in RAW_SUFFIXES:
        raise InputError(path, "is a camera RAW file; rawback reads JPEG, PNG, TIFF or HEIC photos")
    try:
        # O_NONBLOCK: opening a FIFO waits for a writer otherwise, before any check could run.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        if path.is_symlink():  # the link is there, what it points to is not
            raise InputError(path, f"is a link to {os.readlink(path)}, which does not exist") from None
        raise InputError(path, "no such file") from None
    except IsADirectoryError:
        raise InputError(path, "is a folder, not a file") from None
    except PermissionError:
        raise InputError(path, "permission denied") from None
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror or exc}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputError(path, "is a folder, not a file")
        raise InputError(path, f"is {_file_kind(info.st_mode)}, not a photo file; skipped")
    size = info.st_size
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(size)  # bounded: a file that grows while it is read is cut at its size
        except OSError as exc:
            raise InputError(path, f"cannot read: {exc.strerror or exc}") from exc
    if not data:
        raise InputError(path, "file is empty")
    return data


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))  # fmt: skip
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _check_size(path: Path, width: int, height: int, max_pixels: int, min_side: int) -> None:
    """Before any pixel is decoded: a forged header must not make us allocate gigabytes, and a
    photo too small for what it is read for is refused before the work."""
    if width * height > max_pixels:
        raise InputError(
            path,
            f"{width}x{height} pixels ({width * height / 1e6:.0f} MP) is more than the "
            f"{max_pixels / 1e6:.0f} MP limit",
        )
    if width < min_side or height < min_side:
        raise InputError(
            path, f"{width}x{height} pixels is too small (at least {min_side}x{min_side} is needed)"
        )


# JPEG and PNG: Pillow (16-bit PNG: imagecodecs) -------------------------------------------------


def _decode_jpeg_or_png(path: Path, data: bytes, max_pixels: int, min_side: int) -> _Decoded:
    try:
        im = Image.open(io.BytesIO(data), formats=("JPEG", "PNG"))
    except UnidentifiedImageError:
        raise InputError(path, _not_an_image(data)) from None
    except Image.DecompressionBombError:  # over twice Pillow's limit, which sits above MAX_PIXELS
        limit = min(max_pixels, 2 * (Image.MAX_IMAGE_PIXELS or max_pixels))
        raise InputError(path, f"image is larger than the {limit / 1e6:.0f} MP limit") from None
    except _DECODE_ERRORS as exc:
        raise InputError(path, f"unreadable image header ({first_line(exc)})") from exc
    with im:
        _check_size(path, im.width, im.height, max_pixels, min_side)
        icc = im.info.get("icc_profile") or None
        if im.format == "PNG" and data[24] == 16:  # IHDR bit depth; Pillow would keep 8 of 16 bits
            return _decode_png16(path, data, icc, im.info.get("exif"), _xmp_of(im.info))
        pixels, space = _pillow_pixels(path, im)
        # PNG's eXIf chunk may follow the image data, so read info only after decoding.
        return _Decoded(pixels, space, icc, im.info.get("exif"), _xmp_of(im.info))


def _pillow_pixels(path: Path, im: Image.Image) -> tuple[np.ndarray, str]:
    """Decode an 8-bit (or I;16 greyscale) Pillow image: pixels without alpha and their space."""
    try:
        im.load()  # raises "image file is truncated" (LOAD_TRUNCATED_IMAGES stays False)
        mode = im.mode
        if mode in ("P", "PA"):  # palette, maybe with transparent entries: expand, drop alpha
            im, mode = im.convert("RGBA"), "RGBA"
        elif mode == "1":
            im, mode = im.convert("L"), "L"
        elif mode == "YCbCr":
            im, mode = im.convert("RGB"), "RGB"
        array = np.asarray(im)
    except _DECODE_ERRORS as exc:
        raise InputError(path, f"image data is truncated or corrupt ({first_line(exc)})") from exc
    if mode in ("L", "LA", "La") or mode.startswith("I;16"):
        return (array if array.ndim == 2 else array[..., 0]), "GRAY"
    if mode in ("RGB", "RGBA", "RGBX", "RGBa"):
        return array[..., :3], "RGB"
    if mode == "CMYK":
        return array, "CMYK"
    raise InputError(path, f"unsupported pixel format {mode!r}; save the photo as 8/16-bit RGB")


def _decode_png16(
    path: Path, data: bytes, icc: bytes | None, exif: bytes | None, xmp: bytes | None
) -> _Decoded:
    import imagecodecs

    try:
        array = imagecodecs.png_decode(data)
    except (imagecodecs.PngError, ValueError) as exc:
        raise InputError(path, f"image data is truncated or corrupt ({first_line(exc)})") from exc
    # Grey, grey + alpha, RGB or RGBA; alpha is dropped (composited on nothing).
    if array.ndim == 3 and array.shape[2] <= 2:
        array = array[..., 0]
    pixels, space = (array, "GRAY") if array.ndim == 2 else (array[..., :3], "RGB")
    exif = exif or _png_chunk(data, b"eXIf")  # Pillow only saw the chunks before the image data
    return _Decoded(pixels, space, icc, exif, xmp)


def _xmp_of(info: dict) -> bytes | None:
    """The XMP packet Pillow found: JPEG's APP1 ("xmp"), PNG's iTXt ("XML:com.adobe.xmp")."""
    packet = info.get("xmp") or info.get("XML:com.adobe.xmp")
    return packet.encode() if isinstance(packet, str) else packet or None


def _png_chunk(data: bytes, kind: bytes) -> bytes | None:
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        name = data[pos + 4 : pos + 8]
        if name == kind:
            return data[pos + 8 : pos + 8 + length]
        if name == b"IEND":
            break
        pos += 12 + length
    return None


def _jpeg_frame_marker(data: bytes) -> int | None:
    """The SOFn marker of a JPEG (0xC0 baseline, 0xC2 progressive, ...), None if there is none."""
    found = _jpeg_frame(data)
    return None if found is None else data[found + 1]


def _jpeg_frame(data: bytes) -> int | None:
    """Where a JPEG's SOFn segment starts, following the marker lengths from SOI; None if they
    lead nowhere."""
    pos = 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            return pos
        else:
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    return None


def _damaged_jpeg(data: bytes) -> str:
    """What is wrong with a file that starts as a JPEG but that Pillow cannot open."""
    frame = _jpeg_frame(data)
    if frame is None:
        return "damaged JPEG: its markers lead to no frame header (SOF); the file is cut or corrupted"
    height = int.from_bytes(data[frame + 5 : frame + 7], "big")
    width = int.from_bytes(data[frame + 7 : frame + 9], "big")
    if width == 0 or height == 0:
        return f"damaged JPEG: its frame header gives {width}x{height} pixels"
    return "damaged JPEG: Pillow cannot read its header"


def _not_an_image(data: bytes) -> str:
    """Name common look-alikes (HEIC is decoded, wherever its name says .jpg)."""
    if data.startswith(b"\xff\xd8"):
        return _damaged_jpeg(data)
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "damaged PNG: Pillow cannot read its header"
    if data[4:8] == b"ftyp":
        brand = data[8:12].decode("latin-1").strip()
        return f"is a {brand} (AVIF/MP4) file, not a JPEG, PNG, TIFF or HEIC photo"
    for magic, name in ((b"RIFF", "RIFF/WebP"), (b"GIF8", "GIF"), (b"BM", "BMP")):
        if data.startswith(magic):
            return f"is a {name} file, not a JPEG, PNG, TIFF or HEIC photo"
    return "not an image (not a JPEG, PNG, TIFF or HEIC file)"


# TIFF: Pillow up to 8 bits, tifffile above ------------------------------------------------------


def _decode_tiff(path: Path, data: bytes, max_pixels: int, min_side: int) -> _Decoded:
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tif:
            page = tif.pages[0]
            width, height = int(page.imagewidth), int(page.imagelength)
            bits, sample_format = int(page.bitspersample), int(page.sampleformat)
            photometric = page.photometric
            icc = tag_bytes(page.tags.get(34675))  # InterColorProfile
            xmp_tag = page.tags.get(700)  # XMP
            xmp = tag_bytes(xmp_tag, text=True)
            # Pillow's TIFF loader reads the XMP tag itself and fails on one not typed as bytes:
            # such a file is decoded by tifffile instead.
            pillow_safe = xmp_tag is None or isinstance(xmp_tag.value, bytes | bytearray)
            orientation = tag_orientation(page.tags.get(274))
            is_dng = 50706 in page.tags  # DNGVersion
            # Pages that are not reduced-resolution copies of another (thumbnails, pyramids):
            # a scanner's or a fax's other pictures, which one DNG cannot hold.
            # By index up to len(): iterating tif.pages never ends for a crafted file whose IFD
            # chain loops back (len() stops at the loop); bounded, as only a note needs the count.
            count = min(len(tif.pages), MAX_PAGES_COUNTED)
            full_pages = sum(1 for index in range(count) if not tif.pages[index].is_reduced)
    except Exception as exc:  # tifffile raises many types for a damaged header
        raise InputError(path, f"unreadable TIFF ({tiff_problem(exc)})") from exc
    if is_dng:
        raise InputError(path, "is a DNG (camera RAW) file; rawback reads JPEG, PNG, TIFF or HEIC photos")
    _check_size(path, width, height, max_pixels, min_side)
    if sample_format not in (1, 2) or bits > 16:  # 1 = unsigned, 2 = signed; 3 is float
        raise InputError(path, f"{bits}-bit TIFF samples are not supported; save it as 8 or 16-bit")
    # The whole TIFF is the EXIF structure: IFD0 holds Make/Model/Orientation, 34665 the Exif IFD.
    # piexif reads classic TIFF only, not BigTIFF.
    exif = data if data[:4] in _TIFF_MAGIC[:2] else None
    if bits <= 8 and pillow_safe:
        try:
            im = Image.open(io.BytesIO(data), formats=("TIFF",))
        except (UnidentifiedImageError, Image.DecompressionBombError, *_DECODE_ERRORS) as exc:
            raise InputError(path, f"unreadable TIFF ({tiff_problem(exc)})") from exc
        with im:
            failure = None
            with c_stderr_held() as libtiff_says:  # filled when the block ends
                try:
                    pixels, space = _pillow_pixels(path, im)
                except InputError as exc:
                    failure = exc
            if failure is not None:
                detail = f"; libtiff: {libtiff_says[0]}" if libtiff_says else ""
                raise InputError(path, f"{failure.problem}{detail}") from failure
            if orientation in _UNDO_UPRIGHT and 274 not in im.tag_v2:
                # Pillow >= 13 turns a TIFF upright as it loads it (and drops the tag), but the
                # DNG carries the Orientation tag: put the pixels back in their stored order.
                pixels = np.ascontiguousarray(_UNDO_UPRIGHT[orientation](pixels))
        return _Decoded(pixels, space, icc, exif, xmp, notes=_page_notes(full_pages))
    pixels, space = tifffile_pixels(path, data, bits, photometric)
    return _Decoded(pixels, space, icc, exif, xmp, notes=_page_notes(full_pages))


def _page_notes(full_pages: int) -> tuple[str, ...]:
    if full_pages <= 1:
        return ()
    return (f"TIFF with {full_pages} pages: converted the first (split the others into files of their own)",)


# Orientation -> the inverse of the turn that sets such a photo upright (ImageOps.exif_transpose).
_UNDO_UPRIGHT = {
    2: np.fliplr,
    3: lambda a: a[::-1, ::-1],
    4: np.flipud,
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, 1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, -1),
}


# Colour ------------------------------------------------------------------------------------------


def _to_srgb(path: Path, image: _Decoded) -> tuple[np.ndarray, int, str | None]:
    """Pixels in sRGB (grey without a profile stays (H, W)), their bit depth and a note."""
    pixels, space, bits = image.pixels, image.space, image.bit_depth
    if image.icc is None:
        if space == "CMYK":
            raise InputError(
                path, "CMYK image without an ICC profile: its colours are undefined; "
                "convert it to sRGB first"
            )  # fmt: skip
        return pixels, bits, None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(image.icc))
        profile_space = profile.profile.xcolor_space.strip()
        name = image.icc_name or ImageCms.getProfileDescription(profile).strip() or "its ICC profile"
    except (OSError, ImageCms.PyCMSError) as exc:
        return _unusable_profile(path, image, f"its ICC profile is unreadable ({first_line(exc)})")
    if profile_space != space:
        return _unusable_profile(path, image, f"its ICC profile is for {profile_space}, not {space}")
    try:
        if space != "CMYK" and icc.maps_like_srgb(image.icc, space):
            return pixels, bits, None
        if bits == 8:
            return icc.convert8(pixels, image.icc, space), 8, f"converted from {name} to sRGB"
        converted = icc.convert16(pixels, image.icc, space)
        if converted is not None:
            return converted, 16, f"converted from {name} to sRGB"
        # imagecodecs' LittleCMS refused the profile: Pillow's works at 8 bits only.
        pixels8 = ((pixels.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
        note = f"converted from {name} to sRGB at 8-bit precision (no 16-bit transform)"
        return icc.convert8(pixels8, image.icc, space), 8, note
    except ImageCms.PyCMSError as exc:
        return _unusable_profile(path, image, f"its ICC profile cannot be applied ({first_line(exc)})")


def _unusable_profile(path: Path, image: _Decoded, problem: str) -> tuple[np.ndarray, int, str]:
    if image.space == "CMYK":  # no fallback: CMYK has no default meaning
        raise InputError(path, f"CMYK image whose colours cannot be converted: {problem}")
    return image.pixels, image.bit_depth, f"{problem}; assumed sRGB"


def _float_rgb(pixels: np.ndarray) -> np.ndarray:
    """uint8/uint16 -> float32 in [0, 1], greyscale expanded to three channels."""
    full_scale = 255 if pixels.dtype == np.uint8 else 65535
    rgb = np.divide(pixels, full_scale, dtype=np.float32)  # exact at 0 and full scale
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    return rgb

"""Write Bayer DNG files that LibRaw, dcraw, darktable, RawTherapee and Adobe open correctly.

The layout and every tag value follow the measured rules in ../shared/docs/dng.md; the reasoning
for newcomers is in docs/dng-layout.md. In short:

    IFD0       NewSubFileType 1: 8-bit RGB thumbnail + the shared DNG tags, Make/Model, Orientation,
               pointers to the SubIFDs, the Exif IFD and (when there is GPS data) the GPS IFD
    SubIFD 1   NewSubFileType 0: the CFA mosaic, lossless-JPEG tiles or one 16-bit strip
    SubIFD 2   NewSubFileType 1: a baseline-JPEG preview (only when a preview image is given)
    Exif IFD   an allow-list of capture tags copied from the source photo
    GPS IFD    the source photo's GPS tags

We write the TIFF structure ourselves (rawback.io.tiff) instead of patching tifffile's output:
tifffile cannot write the Exif/GPS pointers, types SubIFDs as IFD and chains the SubIFDs, so
patching would mean four in-place byte fixes whose correctness depends on tifffile internals. A
~100-line writer that lays out every IFD before writing anything is easier to read and to test.

The file layout is: header, all IFDs (with their out-of-line values), then the image data (IFD0
thumbnail, preview, raw tiles): small metadata first, as cameras and Adobe's converter do, so
readers that only want tags touch the start of the file.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING

import imagecodecs
import numpy as np
import piexif
from PIL import Image

import rawback
from rawback.choices import Compression
from rawback.io.atomic import atomic_output
from rawback.io.dng_identity import RAWBACK_MAKE, DngIdentity
from rawback.io.exif import camera_display_name
from rawback.io.tiff import (
    ASCII,
    BYTE,
    LONG,
    RATIONAL,
    SHORT,
    SRATIONAL,
    Ifd,
    encode,
    encode_rational_pairs,
    write_tiff,
)
from rawback.isp.bayer import pattern_codes

if TYPE_CHECKING:  # only its fields are used
    from rawback.io.exif import ExifData


THUMBNAIL_WIDTH = 256  # IFD0 thumbnail, as cameras write it
PREVIEW_LONG_SIDE = 1024  # JPEG preview SubIFD
PREVIEW_QUALITY = 90
TILE = 256  # lossless-JPEG tile size; the only tiled layout every client opened (dng.md 3)
MIN_SIDE = 22  # LibRaw and dcraw refuse raws narrower or shorter than this ("not RAW file")


# Tags by name, so the IFD builders below read like the tables in dng.md.
NEW_SUBFILE_TYPE, IMAGE_WIDTH, IMAGE_LENGTH, BITS_PER_SAMPLE, COMPRESSION = 254, 256, 257, 258, 259
PHOTOMETRIC, MAKE, MODEL, STRIP_OFFSETS, ORIENTATION = 262, 271, 272, 273, 274
SAMPLES_PER_PIXEL, ROWS_PER_STRIP, STRIP_BYTE_COUNTS = 277, 278, 279
X_RESOLUTION, Y_RESOLUTION, PLANAR_CONFIG, RESOLUTION_UNIT = 282, 283, 284, 296
SOFTWARE, DATE_TIME = 305, 306
XMP_PACKET = 700
TILE_WIDTH, TILE_LENGTH, TILE_OFFSETS, TILE_BYTE_COUNTS, SUB_IFDS = 322, 323, 324, 325, 330
YCBCR_SUBSAMPLING = 530
CFA_REPEAT_PATTERN_DIM, CFA_PATTERN = 33421, 33422
EXIF_IFD, GPS_IFD = 34665, 34853
DNG_VERSION, DNG_BACKWARD_VERSION, UNIQUE_CAMERA_MODEL = 50706, 50707, 50708
CFA_PLANE_COLOR, CFA_LAYOUT, BLACK_LEVEL_REPEAT_DIM, BLACK_LEVEL = 50710, 50711, 50713, 50714
WHITE_LEVEL, COLOR_MATRIX_1, COLOR_MATRIX_2, AS_SHOT_NEUTRAL = 50717, 50721, 50722, 50728
CALIBRATION_ILLUMINANT_1, CALIBRATION_ILLUMINANT_2, PREVIEW_COLOR_SPACE = 50778, 50779, 50970

PHOTOMETRIC_RGB, PHOTOMETRIC_YCBCR, PHOTOMETRIC_CFA = 2, 6, 32803
COMPRESSION_NONE, COMPRESSION_JPEG = 1, 7  # 7 is both lossless (raw) and baseline (preview) JPEG
PREVIEW_SRGB = 2


# Exif-IFD tags that describe the capture (dng.md section 2). Everything else - MakerNote (its
# offsets point into the old file), Interoperability IFD, pixel dimensions, ColorSpace,
# ComponentsConfiguration, CompressedBitsPerPixel, the Exif CFAPattern - describes the JPEG.
_E = piexif.ExifIFD
EXIF_ALLOWED = frozenset({
    _E.ExposureTime, _E.FNumber, _E.ExposureProgram, _E.ISOSpeedRatings, _E.ExifVersion,
    _E.DateTimeOriginal, _E.DateTimeDigitized,
    _E.OffsetTime, _E.OffsetTimeOriginal, _E.OffsetTimeDigitized,
    _E.ShutterSpeedValue, _E.ApertureValue, _E.BrightnessValue, _E.ExposureBiasValue,
    _E.MaxApertureValue, _E.MeteringMode, _E.LightSource, _E.Flash, _E.FocalLength,
    _E.SubSecTime, _E.SubSecTimeOriginal, _E.SubSecTimeDigitized,
    _E.ExposureMode, _E.WhiteBalance, _E.FocalLengthIn35mmFilm, _E.SceneCaptureType,
    _E.BodySerialNumber, _E.LensSpecification, _E.LensMake, _E.LensModel,
})  # fmt: skip
EXIF_VERSION = b"0231"  # written when the source has none: an Exif IFD must carry its version


@dataclass(frozen=True)
class DngSensor:
    """What a DNG states about the sensor and its colour, as plain DNG fields (dng.md table 2 and
    3). rawback.camera.CameraProfile.dng_sensor() fills it from a camera profile."""

    cfa_pattern: str  # top-left 2x2 of the mosaic, row-major: "RGGB", "GRBG", ...
    black_level: tuple[float, ...]  # BlackLevel per CFA site, row-major over the 2x2 block
    white_level: int  # WhiteLevel
    bits: int  # bits the white level needs; sets the lossless-JPEG precision
    color_matrix_1: tuple[float, ...]  # ColorMatrix1: XYZ -> camera RGB, 9 values row-major
    illuminant_1: int  # CalibrationIlluminant1 (an EXIF LightSource code)
    color_matrix_2: tuple[float, ...] | None = None  # ColorMatrix2, written with illuminant_2
    illuminant_2: int | None = None  # CalibrationIlluminant2
    unique_camera_model: str = "rawback"  # UniqueCameraModel: names the colour profile used
    camera: str = ""  # the camera's display name: the Model tag when the photo's EXIF names none


def write_dng(
    path: Path,
    mosaic: np.ndarray,
    *,
    sensor: DngSensor,
    as_shot_neutral: Sequence[float],
    orientation: int = 1,
    exif: ExifData | None = None,
    preview: np.ndarray | None = None,
    compression: str = "ljpeg",
    camera_model: str | None = None,
    identity: DngIdentity | None = None,
    overwrite: bool = False,
) -> None:
    """Write a Bayer mosaic as a DNG, atomically: readers see no file or the complete one.

    Parameters:
        path: the .dng to write.
        mosaic: (H, W) uint16 raw counts, CFA = `sensor.cfa_pattern`, at most the white level;
            H, W >= 22 (raw readers refuse smaller images).
        sensor: CFA pattern, levels, colour matrices and names of the camera.
        as_shot_neutral: camera RGB of the scene white, green = 1 (AsShotNeutral; not multipliers).
        orientation: EXIF orientation (1..8) of the stored pixels.
        exif: the source photo's EXIF, carried into a real Exif IFD (and GPS IFD); may be None.
        preview: (h, w, 3) uint8 sRGB in stored pixel order, for the IFD0 thumbnail and the JPEG
            preview SubIFD; None gives a neutral grey thumbnail and no preview.
        compression: "ljpeg" (lossless-JPEG 256x256 tiles, about half the size) or "none".
            Mosaics narrower than 256 px are always written uncompressed (see `_raw_ifd`).
        camera_model: the Model tag when `identity` is None; default the EXIF camera, else the
            sensor's (see `camera_name`).
        identity: Make, Model and UniqueCameraModel (rawback.io.dng_identity.decide_identity);
            None: Make "rawback", Model `camera_name(...)`, the sensor's UniqueCameraModel.
        overwrite: replace an existing file instead of raising OutputError.

    Raises ValueError for bad arguments and OutputError when the file cannot be written.
    """
    path = Path(path)
    neutral = _check_inputs(mosaic, sensor, as_shot_neutral, orientation, preview, compression)
    with atomic_output(path, overwrite=overwrite) as tmp:
        ifd0 = _dng_ifds(
            mosaic, sensor, neutral, orientation, exif, preview, compression, camera_model, identity
        )
        with open(tmp, "wb") as handle:
            write_tiff(handle, ifd0)


def dng_bytes(mosaic: np.ndarray, *, sensor: DngSensor, as_shot_neutral: Sequence[float]) -> bytes:
    """An uncompressed DNG of `mosaic` in memory, with no EXIF and no preview: how training shows a
    synthetic RAW to LibRaw (rawback.io.raw.render_dng) without touching the disk."""
    neutral = _check_inputs(mosaic, sensor, as_shot_neutral, 1, None, "none")
    buffer = BytesIO()
    write_tiff(buffer, _dng_ifds(mosaic, sensor, neutral, 1, None, None, "none", None, None))
    return buffer.getvalue()


def _dng_ifds(
    mosaic: np.ndarray,
    sensor: DngSensor,
    neutral: np.ndarray,
    orientation: int,
    exif: ExifData | None,
    preview: np.ndarray | None,
    compression: str,
    camera_model: str | None,
    identity: DngIdentity | None,
) -> Ifd:
    """IFD0 of the DNG with every child IFD attached (checked inputs; see write_dng)."""
    small = None if preview is None else _preview_image(preview)
    raw = _raw_ifd(mosaic, sensor, compression)
    if identity is None:
        identity = DngIdentity(
            RAWBACK_MAKE, camera_name(sensor, exif, camera_model), sensor.unique_camera_model
        )
    ifd0 = _main_ifd(sensor, neutral, orientation, exif, small, mosaic.shape, identity)
    ifd0.children[SUB_IFDS] = [raw]
    if small is not None:
        ifd0.children[SUB_IFDS].append(_preview_ifd(small))
    ifd0.children[EXIF_IFD] = [_exif_ifd(exif)]
    if exif is not None and exif.gps:
        ifd0.children[GPS_IFD] = [_gps_ifd(exif.gps)]
    return ifd0


def camera_name(sensor: DngSensor, exif: ExifData | None, camera_model: str | None) -> str:
    """The Model tag of a DNG with Make "rawback": the original camera, named once ("Canon
    PowerShot S40"). A DNG of a known camera names it as the camera does (rawback.io.dng_identity).
    """
    if camera_model:
        return camera_model
    if exif is not None and (exif.make or exif.model):
        return camera_display_name(exif.make, exif.model)
    return sensor.camera


# --- input checks --------------------------------------------------------------------------------


def _check_inputs(
    mosaic: np.ndarray,
    sensor: DngSensor,
    as_shot_neutral: Sequence[float],
    orientation: int,
    preview: np.ndarray | None,
    compression: str,
) -> np.ndarray:
    """Fail before creating any file; returns the neutral as a float array."""
    if not isinstance(mosaic, np.ndarray) or mosaic.dtype != np.uint16:
        kind = mosaic.dtype if isinstance(mosaic, np.ndarray) else type(mosaic).__name__
        raise ValueError(f"mosaic must be a uint16 array, got {kind}")
    if mosaic.ndim != 2 or min(mosaic.shape) < MIN_SIDE:
        raise ValueError(f"mosaic must be (H, W) with H, W >= {MIN_SIDE}, got shape {mosaic.shape}")
    top = int(mosaic.max())
    if top > sensor.white_level:
        raise ValueError(f"mosaic value {top} is above the white level {sensor.white_level}")
    if mosaic.nbytes > 2**32 - 2**24:  # classic TIFF offsets are 32-bit
        raise ValueError(f"mosaic {mosaic.shape} is too large for a DNG (4 GB limit)")
    neutral = np.asarray(as_shot_neutral, dtype=np.float64)
    if neutral.shape != (3,) or not np.all(np.isfinite(neutral)) or np.any(neutral <= 0):
        raise ValueError(f"as_shot_neutral must be 3 positive numbers, got {as_shot_neutral!r}")
    if not (isinstance(orientation, int | np.integer) and 1 <= orientation <= 8):
        raise ValueError(f"orientation must be an EXIF orientation 1..8, got {orientation!r}")
    if preview is not None and (
        not isinstance(preview, np.ndarray)
        or preview.dtype != np.uint8
        or preview.ndim != 3
        or preview.shape[2] != 3
    ):
        desc = f"{preview.dtype} {preview.shape}" if isinstance(preview, np.ndarray) else preview
        raise ValueError(f"preview must be an (H, W, 3) uint8 array, got {desc}")
    if compression not in tuple(Compression):
        raise ValueError(
            f"compression must be one of {tuple(c.value for c in Compression)}, got {compression!r}"
        )
    return neutral


# --- the IFDs ------------------------------------------------------------------------------------


def _main_ifd(
    sensor: DngSensor,
    neutral: np.ndarray,
    orientation: int,
    exif: ExifData | None,
    preview: Image.Image | None,
    shape: tuple[int, ...],
    identity: DngIdentity,
) -> Ifd:
    """IFD0: the thumbnail and every tag a reader needs to render the raw (dng.md table 2)."""
    thumb = _thumbnail(preview, shape)
    ifd = Ifd()
    ifd.add(NEW_SUBFILE_TYPE, LONG, 1)  # a reduced-resolution image; the raw is the SubIFD
    ifd.add(IMAGE_WIDTH, LONG, thumb.shape[1])
    ifd.add(IMAGE_LENGTH, LONG, thumb.shape[0])
    ifd.add(BITS_PER_SAMPLE, SHORT, [8, 8, 8])
    ifd.add(COMPRESSION, SHORT, COMPRESSION_NONE)
    ifd.add(PHOTOMETRIC, SHORT, PHOTOMETRIC_RGB)
    ifd.add(MAKE, ASCII, identity.make)
    ifd.add(MODEL, ASCII, identity.model)
    ifd.add(ORIENTATION, SHORT, orientation)  # darktable reads it from IFD0 only
    ifd.add(SAMPLES_PER_PIXEL, SHORT, 3)
    ifd.add(ROWS_PER_STRIP, LONG, thumb.shape[0])
    ifd.add(X_RESOLUTION, RATIONAL, [72])
    ifd.add(Y_RESOLUTION, RATIONAL, [72])
    ifd.add(PLANAR_CONFIG, SHORT, 1)
    ifd.add(RESOLUTION_UNIT, SHORT, 2)  # inches
    ifd.add(SOFTWARE, ASCII, f"rawback {rawback.__version__}")
    for tag, text in exif.rights.items() if exif is not None else ():
        ifd.add(tag, ASCII, text)  # ImageDescription, Artist, Copyright (UTF-8, as exiftool writes)
    if exif is not None and exif.xmp:
        ifd.add(XMP_PACKET, BYTE, exif.xmp)  # the photographer's XMP only (rawback.io.xmp)
    if exif is not None and exif.datetime:
        # The capture time; without one we write none rather than "now", so that converting the
        # same photo twice gives bit-identical files.
        ifd.add(DATE_TIME, ASCII, exif.datetime)
    ifd.add(SUB_IFDS, LONG, [0] * (1 if preview is None else 2))  # filled in by the layout
    ifd.add(EXIF_IFD, LONG, 0)
    if exif is not None and exif.gps:
        ifd.add(GPS_IFD, LONG, 0)
    ifd.add(DNG_VERSION, BYTE, [1, 4, 0, 0])
    ifd.add(DNG_BACKWARD_VERSION, BYTE, [1, 1, 0, 0])  # Adobe 1.4 refuses 1.4 files without it
    ifd.add(UNIQUE_CAMERA_MODEL, ASCII, identity.unique_camera_model)
    ifd.add(COLOR_MATRIX_1, SRATIONAL, sensor.color_matrix_1)
    ifd.add(CALIBRATION_ILLUMINANT_1, SHORT, sensor.illuminant_1)
    if sensor.color_matrix_2 is not None and sensor.illuminant_2 is not None:
        ifd.add(COLOR_MATRIX_2, SRATIONAL, sensor.color_matrix_2)
        ifd.add(CALIBRATION_ILLUMINANT_2, SHORT, sensor.illuminant_2)
    ifd.add(AS_SHOT_NEUTRAL, RATIONAL, neutral / neutral[1])  # green = 1 by convention
    ifd.add(PREVIEW_COLOR_SPACE, LONG, PREVIEW_SRGB)  # the thumbnail is sRGB too
    ifd.add_chunks([thumb.reshape(-1)], STRIP_OFFSETS, STRIP_BYTE_COUNTS)
    return ifd


def _raw_ifd(mosaic: np.ndarray, sensor: DngSensor, compression: str) -> Ifd:
    """SubIFD 1: the CFA mosaic with its pattern and levels (dng.md table 3)."""
    height, width = mosaic.shape
    # LibRaw and dcraw wrap a tile's rows at the image width, so a tile wider than the image
    # decodes as garbage; and darktable's rawspeed refuses a tile with fewer visible columns than
    # its 2 components (widths 257, 513, ...). Such images are stored uncompressed instead.
    if width < TILE or width % TILE == 1:
        compression = "none"
    ifd = Ifd()
    ifd.add(NEW_SUBFILE_TYPE, LONG, 0)  # the main image
    ifd.add(IMAGE_WIDTH, LONG, width)
    ifd.add(IMAGE_LENGTH, LONG, height)
    ifd.add(PHOTOMETRIC, SHORT, PHOTOMETRIC_CFA)
    ifd.add(SAMPLES_PER_PIXEL, SHORT, 1)
    ifd.add(PLANAR_CONFIG, SHORT, 1)
    if compression == "ljpeg":
        precision = _ljpeg_precision(sensor)
        ifd.add(BITS_PER_SAMPLE, SHORT, precision)
        ifd.add(COMPRESSION, SHORT, COMPRESSION_JPEG)
        ifd.add(TILE_WIDTH, LONG, TILE)
        ifd.add(TILE_LENGTH, LONG, TILE)
        ifd.add_chunks(_ljpeg_tiles(mosaic, precision), TILE_OFFSETS, TILE_BYTE_COUNTS)
    else:
        # One strip: tiled or multi-strip uncompressed data breaks dcraw, old LibRaw, RawTherapee.
        ifd.add(BITS_PER_SAMPLE, SHORT, 16)
        ifd.add(COMPRESSION, SHORT, COMPRESSION_NONE)
        ifd.add(ROWS_PER_STRIP, LONG, height)
        strip = np.ascontiguousarray(mosaic, dtype="<u2").reshape(-1).view(np.uint8)
        ifd.add_chunks([strip], STRIP_OFFSETS, STRIP_BYTE_COUNTS)
    ifd.add(CFA_REPEAT_PATTERN_DIM, SHORT, [2, 2])
    ifd.add(CFA_PATTERN, BYTE, pattern_codes(sensor.cfa_pattern))  # BYTE: Adobe rejects UNDEFINED
    ifd.add(CFA_PLANE_COLOR, BYTE, [0, 1, 2])
    ifd.add(CFA_LAYOUT, SHORT, 1)
    ifd.add(BLACK_LEVEL_REPEAT_DIM, SHORT, [2, 2])  # the count of BlackLevel must match: 4
    black = sensor.black_level
    if all(float(b).is_integer() for b in black):
        ifd.add(BLACK_LEVEL, SHORT, [int(b) for b in black])
    else:
        ifd.add(BLACK_LEVEL, RATIONAL, black)
    ifd.add(WHITE_LEVEL, LONG, sensor.white_level)
    return ifd


def _preview_ifd(image: Image.Image) -> Ifd:
    """SubIFD 2: a baseline JPEG; RawTherapee matches its tone curve to it."""
    buffer = BytesIO()
    image.save(buffer, format="JPEG", quality=PREVIEW_QUALITY, subsampling="4:2:0")
    ifd = Ifd()
    ifd.add(NEW_SUBFILE_TYPE, LONG, 1)
    ifd.add(IMAGE_WIDTH, LONG, image.width)
    ifd.add(IMAGE_LENGTH, LONG, image.height)
    ifd.add(BITS_PER_SAMPLE, SHORT, [8, 8, 8])
    ifd.add(COMPRESSION, SHORT, COMPRESSION_JPEG)
    ifd.add(PHOTOMETRIC, SHORT, PHOTOMETRIC_YCBCR)
    ifd.add(SAMPLES_PER_PIXEL, SHORT, 3)
    ifd.add(ROWS_PER_STRIP, LONG, image.height)
    ifd.add(PLANAR_CONFIG, SHORT, 1)
    ifd.add(YCBCR_SUBSAMPLING, SHORT, [2, 2])  # what "4:2:0" above writes
    ifd.add(PREVIEW_COLOR_SPACE, LONG, PREVIEW_SRGB)
    ifd.add_chunks([buffer.getvalue()], STRIP_OFFSETS, STRIP_BYTE_COUNTS)
    return ifd


def _exif_ifd(exif: ExifData | None) -> Ifd:
    tags = {t: v for t, v in (exif.exif if exif else {}).items() if t in EXIF_ALLOWED}
    tags.setdefault(_E.ExifVersion, EXIF_VERSION)
    return _metadata_ifd(tags, piexif.TAGS["Exif"])


def _gps_ifd(gps: dict[int, object]) -> Ifd:
    return _metadata_ifd(gps, piexif.TAGS["GPS"])


def _metadata_ifd(tags: dict[int, object], types: dict[int, dict]) -> Ifd:
    """An Exif or GPS IFD from piexif-style values, typed by piexif's tag table.

    A tag piexif does not know, or a value that does not fit its type, is left out: EXIF comes
    from arbitrary files, and odd metadata must never stop a conversion.
    """
    ifd = Ifd()
    for tag, value in sorted(tags.items()):
        if tag not in types:
            continue
        type_ = types[tag]["type"]
        try:
            if type_ in (RATIONAL, SRATIONAL):
                ifd.entries[tag] = encode_rational_pairs(type_, value)
            else:
                ifd.entries[tag] = encode(type_, value)  # type: ignore[arg-type]
        except (KeyError, TypeError, ValueError, OverflowError, struct.error):
            continue
    return ifd


# --- image data ----------------------------------------------------------------------------------


def _ljpeg_precision(sensor: DngSensor) -> int:
    """Lossless-JPEG sample precision (and BitsPerSample): enough for the white level, 8..16.

    DNG allows 8 to 16 bits for lossless JPEG; libjpeg takes uint8 samples at 8 bits.
    """
    return min(16, max(8, sensor.bits, sensor.white_level.bit_length()))


def _ljpeg_tiles(mosaic: np.ndarray, precision: int) -> list[bytes]:
    """256x256 tiles, each coded as 256 rows x 128 columns x 2 components with predictor 1.

    Two components are what cameras write: the predictor (the pixel to the left within one
    component) then always predicts from the nearest pixel of the same CFA colour, which makes
    the file a third smaller than one-component tiles (dng.md section 3). Edge tiles are padded by
    repeating the last row and column; readers crop them away.
    """
    height, width = mosaic.shape
    rows, cols = -(-height // TILE), -(-width // TILE)
    padded = np.pad(mosaic, ((0, rows * TILE - height), (0, cols * TILE - width)), mode="edge")
    # (rows*256, cols*256) -> (rows*cols, 256, 128, 2) in row-major tile order, one copy.
    tiles = padded.reshape(rows, TILE, cols, TILE).swapaxes(1, 2).reshape(-1, TILE, TILE // 2, 2)
    tiles = np.ascontiguousarray(tiles, dtype=np.uint8 if precision == 8 else np.uint16)

    def encode(tile: np.ndarray) -> bytes:
        return imagecodecs.jpeg8_encode(tile, lossless=True, predictor=1, bitspersample=precision)

    # libjpeg releases the GIL, so threads encode tiles in parallel.
    with ThreadPoolExecutor() as pool:
        return list(pool.map(encode, tiles))


def _preview_image(preview: np.ndarray) -> Image.Image:
    """The preview at most 1024 px on its long side (never enlarged)."""
    image = Image.fromarray(preview)
    image.thumbnail((PREVIEW_LONG_SIDE, PREVIEW_LONG_SIDE), Image.Resampling.LANCZOS)
    return image


def _thumbnail(preview: Image.Image | None, shape: tuple[int, ...]) -> np.ndarray:
    """(h, w, 3) uint8, 256 px wide (less for tiny images), in the raw's stored orientation.

    Made from the 1024 px preview, not the full image: resizing 12 MP twice costs 0.2 s.
    """
    src_w, src_h = preview.size if preview is not None else (shape[1], shape[0])
    width = min(THUMBNAIL_WIDTH, src_w)
    height = max(1, round(src_h * width / src_w))
    if preview is None:
        return np.full((height, width, 3), 128, dtype=np.uint8)  # neutral grey
    image = preview.resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8)

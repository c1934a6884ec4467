"""Read camera RAW files (anything LibRaw reads, DNG included) through rawpy.

This is the one module that calls rawpy: it reads the mosaic and its metadata (`read_raw`), and
renders through LibRaw (`read_linear_rgb`: demosaicked linear camera RGB, the simulator's scene;
`render_raw`: sRGB renders, the evaluation protocols' inputs; `render_dng`: the same of a DNG in
memory, training's synthetic RAWs; `embedded_preview`: the JPEG a camera stored in its RAW).
rawpy exposes no Make/Model, so they are read from LibRaw's own `libraw_iparams_t` through the
shared library that rawpy bundles (the first five fields of that struct have been stable since
LibRaw 0.19), with TIFF IFD0 tags as the fallback for TIFF-based files.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from rawback.errors import InputError
from rawback.io.c_stderr import c_stderr_held
from rawback.isp.bayer import pattern_from_codes

if TYPE_CHECKING:
    import rawpy

# File suffixes of camera RAW formats (LibRaw reads them all). Image readers refuse them: they are
# TIFF-like and Pillow would happily decode their small embedded preview instead.
RAW_SUFFIXES: frozenset[str] = frozenset(
    {".3fr", ".arw", ".cr2", ".cr3", ".crw", ".dcr", ".dng", ".erf", ".fff", ".gpr", ".iiq", ".kdc",
     ".mef", ".mos", ".mrw", ".nef", ".nrw", ".orf", ".pef", ".raf", ".raw", ".rw2", ".rwl", ".sr2",
     ".srf", ".srw", ".x3f"}
)  # fmt: skip


@dataclass(frozen=True)
class RawImage:
    """A RAW file's visible mosaic and the metadata the rest of rawback needs."""

    path: Path
    make: str
    model: str
    mosaic: np.ndarray  # (H, W) uint16, raw_image_visible in stored (sensor) orientation
    pattern: str  # CFA of mosaic[0:2, 0:2], e.g. "RGGB"
    black_level: tuple[float, float, float, float]  # per CFA site, row-major over the 2x2 block
    white_level: int
    camera_neutral: np.ndarray | None  # as-shot neutral (green = 1), None when the file has none
    daylight_neutral: np.ndarray | None  # LibRaw's pre_mul as a neutral, None when unknown
    color_matrix: np.ndarray | None  # XYZ -> camera (3x3), None when LibRaw has none
    flip: int  # LibRaw's sizes.flip (0 none, 3 180, 5 90 CCW, 6 90 CW, 1 mirror...)
    pixel_aspect: float
    iso: float
    exposure_time: float
    f_number: float
    focal_length: float
    timestamp: str | None  # "YYYY:MM:DD HH:MM:SS"

    def normalized(self) -> np.ndarray:
        """(raw - black) / (white - black) per CFA site, clipped to [0, 1], float32."""
        from rawback.isp.bayer import per_site

        h, w = self.mosaic.shape
        black = per_site(self.black_level, h, w)
        scale = self.white_level - black
        out = (self.mosaic.astype(np.float32) - black) / scale
        return np.clip(out, 0.0, 1.0)

    @property
    def effective_neutral(self) -> np.ndarray:
        """The neutral LibRaw's `use_camera_wb=True` render really uses.

        LibRaw falls back to its daylight multipliers when the camera's are missing or invalid
        (negative or zero entries, as in Canon EOS D30 and Kodak DC120 files).
        """
        if self.camera_neutral is not None:
            return self.camera_neutral
        if self.daylight_neutral is not None:
            return self.daylight_neutral
        return np.ones(3)


def _neutral_from_multipliers(mult: list[float]) -> np.ndarray | None:
    rgb = np.array([mult[0], mult[1], mult[2]], dtype=np.float64)
    if not np.all(np.isfinite(rgb)) or np.any(rgb <= 0):
        return None
    neutral = 1.0 / rgb
    return neutral / neutral[1]


@functools.cache
def _libraw() -> ctypes.CDLL | None:
    import rawpy

    folder = Path(rawpy.__file__).parent
    for candidate in sorted(folder.glob("libraw_r.so*")) + sorted(folder.glob("libraw*.dll")):
        try:
            lib = ctypes.CDLL(str(candidate))
        except OSError:
            continue
        lib.libraw_init.restype = ctypes.c_void_p
        lib.libraw_init.argtypes = [ctypes.c_uint]
        lib.libraw_open_file.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.libraw_get_iparams.restype = ctypes.c_void_p
        lib.libraw_get_iparams.argtypes = [ctypes.c_void_p]
        lib.libraw_close.argtypes = [ctypes.c_void_p]
        return lib
    return None


def _imread(path: Path | str):
    """rawpy.imread for any file name. rawpy passes names to LibRaw as UTF-8, so a name that is not
    valid UTF-8 (copied from another system; Python holds it with surrogates) cannot be encoded:
    such a file is opened here and handed over as a buffer (LibRaw then reads it into memory)."""
    import rawpy

    name = os.fspath(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        with open(path, "rb") as handle:
            return rawpy.imread(handle)
    return rawpy.imread(name)


@contextlib.contextmanager
def _opened(path: Path, failure: str):
    """An open rawpy.RawPy of `path`, for one block. LibRaw reports damage on its own stderr
    ("data corrupted at 8667", "Unexpected end of file") and may still return data: those lines
    are held, and a file LibRaw failed on or complained about is one InputError that quotes them
    (`failure` says what could not be done). A RAW whose data LibRaw calls corrupted is no ground
    truth to train or score on."""
    import rawpy

    try:
        with c_stderr_held() as libraw_says, _imread(path) as raw:
            yield raw
    except rawpy.LibRawError as exc:
        raise InputError(path, f"{failure} ({type(exc).__name__}{_quoted(path, libraw_says)})") from exc
    if libraw_says:
        raise InputError(path, f"LibRaw reports damaged data{_quoted(path, libraw_says)}")


def _quoted(path: Path, lines: list[str]) -> str:
    """LibRaw's messages, without the file name it puts in front of each."""
    texts = [line.removeprefix(f"{os.fspath(path)}:").strip() for line in lines if line]
    return f": {'; '.join(texts)}" if texts else ""


def read_make_model(path: Path) -> tuple[str, str]:
    """Camera make and model as LibRaw names them ("Canon", "PowerShot S40"); "" when unknown."""
    lib = _libraw()
    if lib is not None:
        handle = lib.libraw_init(0)
        try:
            if handle and lib.libraw_open_file(handle, os.fsencode(path)) == 0:
                params = lib.libraw_get_iparams(handle)
                # struct libraw_iparams_t { char guard[4]; char make[64]; char model[64]; ... }
                make = ctypes.string_at(params + 4, 64).split(b"\0")[0]
                model = ctypes.string_at(params + 68, 64).split(b"\0")[0]
                return make.decode(errors="replace").strip(), model.decode(errors="replace").strip()
        finally:
            if handle:
                lib.libraw_close(handle)
    return read_tiff_make_model(path)


def read_tiff_make_model(path: Path) -> tuple[str, str]:
    """IFD0 Make and Model of a TIFF-based RAW as the camera wrote them, which is how its JPEGs'
    EXIF names it ("Eastman Kodak Company", "Kodak DC120 ZOOM Digital Camera", where LibRaw says
    "Kodak", "DC120"); ("", "") for other formats."""
    make, model = _ifd0_texts(path, (271, 272))
    return make, model


def read_software(path: Path) -> str | None:
    """IFD0 Software of a TIFF-based RAW (DNG, CR2, NEF, ARW...): the camera's firmware, or the
    program that wrote the file (Adobe DNG Converter, rawback). None for other formats (Canon's
    CRW) or when absent."""
    (software,) = _ifd0_texts(path, (305,))
    return software or None


def _ifd0_texts(path: Path, tags: tuple[int, ...]) -> tuple[str, ...]:
    """Text tags of a TIFF-based file's first IFD, stripped; "" for each absent one, or all when
    the file is not TIFF-based."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            found = tif.pages[0].tags
            return tuple(str(found[t].value).strip() if t in found else "" for t in tags)
    except Exception:  # not TIFF-based, or damaged: tifffile raises many types
        return ("",) * len(tags)


def read_raw(path: Path | str) -> RawImage:
    """Decode a RAW file's visible mosaic and metadata. Raises InputError on unreadable files."""

    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a folder, not a RAW file")
    if not path.is_file():
        raise InputError(path, "no such file")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty")
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith((b"\xff\xd8", b"\x89PNG")):  # the usual mix-up: the photo for its RAW
        raise InputError(path, "is a JPEG or PNG photo, not a camera RAW file")
    with _opened(path, "LibRaw cannot read this RAW file") as raw:
        return _from_rawpy(path, raw)


def _from_rawpy(path: Path, raw) -> RawImage:
    if raw.num_colors != 3 or raw.raw_pattern is None or raw.raw_pattern.shape != (2, 2):
        raise InputError(path, "not a 2x2 Bayer sensor (X-Trans, Foveon and linear DNGs are unsupported)")
    desc = raw.color_desc.decode()
    pattern = pattern_from_codes(raw.raw_pattern, desc)
    black_by_color = list(raw.black_level_per_channel)  # indexed like color_desc
    black = tuple(float(black_by_color[int(i)]) for i in raw.raw_pattern.reshape(-1))
    matrix = np.asarray(raw.rgb_xyz_matrix, dtype=np.float64)[:3]
    other = raw.other
    make, model = read_make_model(path)
    sizes = raw.sizes
    stamp = other.timestamp.strftime("%Y:%m:%d %H:%M:%S") if other.timestamp else None
    return RawImage(
        path=path,
        make=make,
        model=model,
        mosaic=np.array(raw.raw_image_visible, dtype=np.uint16, copy=True),
        pattern=pattern,
        black_level=black,  # type: ignore[arg-type]
        white_level=int(raw.white_level),
        camera_neutral=_neutral_from_multipliers(list(raw.camera_whitebalance)),
        daylight_neutral=_neutral_from_multipliers(list(raw.daylight_whitebalance)),
        color_matrix=matrix if np.any(matrix) else None,
        flip=int(sizes.flip),
        pixel_aspect=float(sizes.pixel_aspect),
        iso=float(other.iso_speed),
        exposure_time=float(other.shutter_speed),
        f_number=float(other.aperture),
        focal_length=float(other.focal_length),
        timestamp=stamp,
    )


# --- LibRaw's linear render -----------------------------------------------------------------------
#
# Demosaicked, linear camera RGB from a RAW file: the scene the training simulator renders.
#
# One rawpy call runs LibRaw's AHD demosaic with every rendering step switched off: unit white
# balance, no colour matrix (`ColorSpace.raw`), a linear curve, no auto-brightening and no
# `adjust_maximum` (so the white level means what the file says). LibRaw then scales each CFA site by
# 65535 / (white - black), so dividing the 16-bit output by 65535 gives the same normalisation as
# `RawImage.normalized()`: 0 = black, 1 = the white level.
#
# Measured on the files in ../shared/data/raw, comparing the render with `read_raw(path).normalized()`
# at every CFA site (values between 0.02 and 0.9): the mean ratio is 0.9999 (G2, S40, GoPro HERO8 and
# Fusion, Kodak DC50), every site within one 16-bit code; the Canon EOS D30 is 0.9996, within one
# 12-bit count, because LibRaw's black differs from rawpy's per-channel black by one count on some
# sites. AHD leaves the measured channel of each site untouched, so the render *is* the mosaic there.
#
# Kodak DC120 pixels are 1.53 times taller than wide and LibRaw stretches the width to square them;
# we resample back to the mosaic's geometry (float Lanczos) so pixels line up with the mosaic, as
# `to_mosaic_geometry` does for 8-bit renders.

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
    """LibRaw's AHD demosaic of a RAW file as normalised, unbalanced camera RGB (see the comment above)."""

    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    with _opened(path, "LibRaw cannot demosaic this file") as raw:
        if raw.num_colors != 3 or raw.raw_pattern is None or raw.raw_pattern.shape != (2, 2):
            raise InputError(path, "not a 2x2 Bayer sensor (X-Trans, Foveon and linear DNGs are unsupported)")
        pattern = pattern_from_codes(raw.raw_pattern, raw.color_desc.decode())
        height, width = raw.raw_image_visible.shape
        rendered = raw.postprocess(**linear_params())
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


# --- LibRaw's sRGB renders ------------------------------------------------------------------------

# The render of the "rawback" protocol and of round-trip checks. LibRaw by default raises the
# white level to the brightest pixel when that exceeds 75% of it (adjust_maximum_thr=0.75): a
# per-image exposure change that no inverse can know and that Adobe, darktable and RawTherapee do
# not make. We turn it off so the file's white level means what it says.
CAMERA_WB_RENDER: dict[str, object] = dict(
    use_camera_wb=True, no_auto_bright=True, output_bps=8, user_flip=0, adjust_maximum_thr=0.0
)


@dataclass(frozen=True)
class Render:
    rgb: np.ndarray  # (H, W, 3) uint8 sRGB
    neutral: np.ndarray  # the white balance LibRaw really applied, as a neutral (green = 1)


def render_raw(path: Path, **params: object) -> Render:
    """LibRaw's sRGB 8-bit render of a RAW or DNG file with the given rawpy parameters.

    The white balance LibRaw applied is read back after processing: with `use_camera_wb` it falls
    back to daylight or to a grey-world estimate when the camera's multipliers are missing or
    flagged (Canon EOS D30, Kodak DC120), so the file's as-shot tag is not always what was used.
    """
    import rawpy

    with _opened(path, "LibRaw cannot render this file") as raw:
        rgb = raw.postprocess(output_color=rawpy.ColorSpace.sRGB, **params)
        neutral = applied_neutral(raw)
    return Render(rgb=rgb, neutral=neutral)


def render_dng(data: bytes, *, exposure: float = 1.0) -> np.ndarray:
    """LibRaw's camera-WB sRGB 8-bit render (CAMERA_WB_RENDER) of a DNG held in memory, `exposure`
    times brighter: training renders synthetic RAWs (rawback.io.dng.dng_bytes) as the default
    protocol renders real ones. LibRaw's `bright` divides the white point of its output curve
    (with auto-bright off), so it is a linear gain after white balance and matrix, clipping at 255."""
    import rawpy

    with rawpy.imread(io.BytesIO(data)) as raw:
        return raw.postprocess(output_color=rawpy.ColorSpace.sRGB, bright=float(exposure), **CAMERA_WB_RENDER)


def camera_wb_neutral(path: Path) -> np.ndarray:
    """The white balance LibRaw applies to a RAW for `use_camera_wb` (see `render_raw`), which is
    what a camera's JPEG engine used. A half-size render is enough: LibRaw picks the multipliers,
    fallbacks included, before it demosaics (identical on all 34 files of ../shared/data,
    2.5-3x faster than the full render)."""
    return render_raw(path, half_size=True, **CAMERA_WB_RENDER).neutral


def applied_neutral(raw: rawpy.RawPy) -> np.ndarray:
    """The white balance of `raw`'s last `postprocess`, as a neutral (green = 1).

    rawpy's `auto_whitebalance` is LibRaw's `pre_mul` after processing: the multipliers really
    applied, whichever fallback LibRaw took.
    """
    multipliers = np.asarray(raw.auto_whitebalance[:3], dtype=np.float64)
    neutral = 1.0 / multipliers
    return neutral / neutral[1]


def to_mosaic_geometry(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Undo LibRaw's stretch of non-square pixels: resample a render to the mosaic's size."""
    if rgb.shape[:2] == (height, width):
        return rgb
    image = Image.fromarray(rgb).resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(image)


# --- the camera's own picture in its RAW ----------------------------------------------------------


@dataclass(frozen=True)
class EmbeddedPreview:
    """The picture of the shot a camera stored in its RAW file, rendered by its own engine."""

    rgb: np.ndarray  # (h, w, 3) uint8 sRGB
    jpeg: bytes | None  # the JPEG as stored; None for a bitmap preview (e.g. a DNG's RGB thumbnail)


def embedded_preview(raw_path: Path) -> EmbeddedPreview:
    """The largest preview embedded in a RAW file (LibRaw's choice): a JPEG (Canon's CRWs, most
    cameras) or an RGB bitmap (the GoPro DNGs in ../shared/data carry a 256x192 one). A DNG made
    by a converter carries the converter's rendering, not the camera's (those GoPro DNGs too).
    Raises InputError naming the file when there is none, or it is blank (rawback's own DNGs made
    with `--no-preview`)."""
    import rawpy

    try:
        with _opened(raw_path, "LibRaw cannot read it") as raw:
            preview = raw.extract_thumb()
    except InputError as exc:
        if isinstance(exc.__cause__, rawpy.LibRawNoThumbnailError | rawpy.LibRawUnsupportedThumbnailError):
            raise InputError(raw_path, "no preview is embedded in it") from None
        raise
    if preview.format == rawpy.ThumbFormat.JPEG:
        jpeg = bytes(preview.data)
        try:
            with Image.open(io.BytesIO(jpeg)) as image:
                rgb = np.asarray(image.convert("RGB"))
        except OSError as exc:
            raise InputError(raw_path, f"its embedded JPEG preview cannot be decoded ({exc})") from None
    else:
        jpeg, rgb = None, np.asarray(preview.data)
        if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
            raise InputError(raw_path, f"its embedded preview is not 8-bit RGB ({rgb.dtype}, {rgb.shape})")
    if rgb.std() < 1.0:  # in 8-bit steps: a placeholder, not a picture
        raise InputError(raw_path, "its embedded preview is blank")
    return EmbeddedPreview(rgb, jpeg)

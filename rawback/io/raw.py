"""Read camera RAW files (anything LibRaw reads, DNG included) through rawpy.

Only this module and `camera.py` know about rawpy's data layout. rawpy exposes no Make/Model, so
they are read from LibRaw's own `libraw_iparams_t` through the shared library that rawpy bundles
(the first five fields of that struct have been stable since LibRaw 0.19), with TIFF IFD0 tags as
the fallback for TIFF-based files.
"""

from __future__ import annotations

import ctypes
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rawback.errors import InputError
from rawback.isp.bayer import pattern_from_codes

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


def read_make_model(path: Path) -> tuple[str, str]:
    """Camera make and model as LibRaw names them ("Canon", "PowerShot S40"); "" when unknown."""
    lib = _libraw()
    if lib is not None:
        handle = lib.libraw_init(0)
        try:
            if handle and lib.libraw_open_file(handle, str(path).encode()) == 0:
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
    import rawpy

    path = Path(path)
    if path.is_dir():
        raise InputError(path, "is a folder, not a RAW file")
    if not path.is_file():
        raise InputError(path, "no such file")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty")
    try:
        with rawpy.imread(str(path)) as raw:
            return _from_rawpy(path, raw)
    except rawpy.LibRawError as exc:
        with path.open("rb") as handle:
            head = handle.read(8)
        if head.startswith((b"\xff\xd8", b"\x89PNG")):  # the usual mix-up: the photo for its RAW
            raise InputError(path, "is a JPEG or PNG photo, not a camera RAW file") from exc
        raise InputError(path, f"LibRaw cannot read this RAW file ({type(exc).__name__})") from exc


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

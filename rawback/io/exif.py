"""EXIF in and out: read a photo's EXIF with piexif, keep what describes the capture.

A DNG made from a JPEG describes the same exposure but not the same file, so only the tags listed in
docs/dng.md section 2 travel (exposure, dates, lens, GPS). MakerNote (its offsets point into the old
file and LibRaw parses it by Make), the Interoperability IFD, pixel dimensions, ColorSpace and the
other tags that describe the JPEG's encoding stay behind.

Values are kept in piexif's native forms (int, (num, den), bytes, tuples of those) and checked
against `piexif.TAGS[ifd][tag]["type"]`, because the DNG writer serialises them with those types.
"""

from __future__ import annotations

import contextlib
import math
import re
import struct
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import TYPE_CHECKING

import piexif

if TYPE_CHECKING:
    from rawback.io.raw import RawImage

# Exif-IFD tags copied into the DNG (docs/dng.md section 2), by piexif name.
_KEEP_NAMES = (
    "ExposureTime", "FNumber", "ExposureProgram", "ISOSpeedRatings", "ExifVersion",
    "DateTimeOriginal", "DateTimeDigitized", "OffsetTime", "OffsetTimeOriginal",
    "OffsetTimeDigitized", "ShutterSpeedValue", "ApertureValue", "BrightnessValue",
    "ExposureBiasValue", "MaxApertureValue", "MeteringMode", "LightSource", "Flash", "FocalLength",
    "SubSecTime", "SubSecTimeOriginal", "SubSecTimeDigitized", "ExposureMode", "WhiteBalance",
    "FocalLengthIn35mmFilm", "SceneCaptureType", "BodySerialNumber", "LensSpecification",
    "LensMake", "LensModel",
)  # fmt: skip
_EXIF_NAMES = {info["name"]: tag for tag, info in piexif.TAGS["Exif"].items()}
EXIF_KEEP: frozenset[int] = frozenset(_EXIF_NAMES[name] for name in _KEEP_NAMES)

_MAKE, _MODEL, _ORIENTATION, _DATETIME = 271, 272, 274, 306
_SOFTWARE, _PROCESSING_SOFTWARE = 305, 11
RIGHTS_TAGS = (270, 315, 33432)  # ImageDescription, Artist, Copyright
_COLOR_SPACE, _INTEROP_INDEX = 40961, 1  # Exif ColorSpace; Interop IFD InteroperabilityIndex
_EXIF_POINTER, _GPS_POINTER = 34665, 34853
_DATETIME_ORIGINAL = _EXIF_NAMES["DateTimeOriginal"]
_LIGHT_SOURCE = _EXIF_NAMES["LightSource"]
_DATE_FORMAT = re.compile(r"\d{4}:\d\d:\d\d \d\d:\d\d:\d\d")

_BYTE, _ASCII, _SHORT, _LONG, _RATIONAL, _UNDEFINED, _SLONG, _SRATIONAL = 1, 2, 3, 4, 5, 7, 9, 10
_INT_RANGES = {_BYTE: (0, 0xFF), _SHORT: (0, 0xFFFF), _LONG: (0, 0xFFFFFFFF),
               _SLONG: (-(2**31), 2**31 - 1)}  # fmt: skip
_RATIONAL_RANGES = {_RATIONAL: (0, 0xFFFFFFFF), _SRATIONAL: (-(2**31), 2**31 - 1)}

NO_EXIF = "no EXIF metadata"
CORRUPT_EXIF = "EXIF is corrupt and was ignored"
DAMAGED_EXIF = "EXIF is damaged; only the readable tags were kept"


@dataclass
class ExifData:
    """What rawback keeps of a photo's EXIF."""

    make: str | None = None  # IFD0 Make, stripped
    model: str | None = None  # IFD0 Model, stripped
    orientation: int = 1  # IFD0 Orientation 1..8 (1 when missing or invalid)
    datetime: str | None = None  # "YYYY:MM:DD HH:MM:SS" (DateTimeOriginal, else DateTime)
    light_source: int | None = None  # Exif LightSource code when set and not 0 (unknown)
    # IFD0 Software and ProcessingSoftware: the programs that wrote or processed the file. Only
    # read, to tell a camera's own JPEG from one a photo editor rendered (rawback.provenance).
    software: tuple[str, ...] = ()
    # IFD0 ImageDescription, Artist and Copyright: the photographer's caption and rights, copied
    # to the DNG (tag: text).
    rights: dict[int, str] = field(default_factory=dict)
    # "Adobe RGB" when EXIF says the pixels are Adobe RGB (1998) without an ICC profile: a camera
    # set to Adobe RGB writes ColorSpace "Uncalibrated" and InteropIndex "R03" (DCF 2.0), some
    # ColorSpace 2. None: sRGB or unknown.
    colour_space: str | None = None
    # The photographer's XMP (title, caption, keywords, rating...; rawback.io.xmp), carried to the
    # DNG; None when the photo has none.
    xmp: bytes | None = None
    exif: dict[int, object] = field(default_factory=dict)  # Exif-IFD allow-list, piexif forms
    gps: dict[int, object] = field(default_factory=dict)  # GPS-IFD tags, piexif forms
    warnings: list[str] = field(default_factory=list)  # e.g. "EXIF is corrupt and was ignored"


def read_exif(data: bytes | None) -> ExifData:
    """Parse an EXIF payload ("Exif\\0\\0" + TIFF, or a bare TIFF structure such as a whole TIFF
    file). Never raises: missing, truncated or corrupt EXIF gives defaults and a warning."""
    if not data:
        return ExifData(warnings=[NO_EXIF])
    tiff = data[6:] if data.startswith(b"Exif\0\0") else data
    # piexif treats bytes it does not recognise as a file name to open, so check the header first.
    if tiff[:4] not in (b"II*\0", b"MM\0*"):
        return ExifData(warnings=[CORRUPT_EXIF])
    try:
        if not _sizes_fit(tiff):
            # piexif would build a struct format as long as an entry's count: a 30-byte EXIF
            # claiming 2**31 SHORTs takes minutes and tens of GB. Pillow's parser checks sizes.
            raise ValueError("an entry larger than the EXIF data")
        ifds = piexif.load(tiff)
        _restore_last_characters(tiff, ifds)
        notes: list[str] = []
    except Exception:  # piexif fails whole on any bad offset; it raises many different types
        ifds = _salvage(tiff)
        if ifds is None:
            return ExifData(warnings=[CORRUPT_EXIF])
        notes = [DAMAGED_EXIF]
    return _from_ifds(ifds, notes)


_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8}
_SUB_IFD_POINTERS = (34665, 34853, 40965)  # Exif, GPS, Interoperability
MAX_IFDS = 16


def _sizes_fit(tiff: bytes) -> bool:
    """Whether every entry of every IFD piexif reads (IFD0, IFD1 and the Exif, GPS and
    Interoperability IFDs) claims no more bytes than the whole EXIF holds."""
    order = "<" if tiff[:2] == b"II" else ">"
    (ifd0,) = struct.unpack_from(f"{order}I", tiff, 4)
    pending, seen = [ifd0], set()
    while pending and len(seen) < MAX_IFDS:
        offset = pending.pop()
        if offset in seen or offset == 0 or offset + 2 > len(tiff):
            continue
        seen.add(offset)
        (entries,) = struct.unpack_from(f"{order}H", tiff, offset)
        end = offset + 2 + 12 * entries  # piexif writes no next-IFD pointer after its last IFD
        if end > len(tiff):
            return False
        for index in range(entries):
            tag, type_, count, value = struct.unpack_from(f"{order}HHII", tiff, offset + 2 + 12 * index)
            if count * _TYPE_SIZES.get(type_, 1) > len(tiff):
                return False
            if tag in _SUB_IFD_POINTERS:
                pending.append(value)
        if offset == ifd0 and end + 4 <= len(tiff):  # IFD0's next: IFD1, the thumbnail's
            pending.append(struct.unpack_from(f"{order}I", tiff, end)[0])
    return True


_ASCII_TYPE = 2
_IFD_NAMES = {34665: "Exif", 34853: "GPS", 40965: "Interop"}  # sub-IFD pointer: piexif's name


def _restore_last_characters(tiff: bytes, ifds: dict[str, dict]) -> None:
    """Put back the last character piexif drops from text that fills its count exactly.

    piexif reads an ASCII value of count n as its first n - 1 bytes, taking the last for the
    terminating NUL. Cameras that fill a field to the byte write no NUL: Kodak's EXIF Model
    "KODAK CX7530 ZOOM DIGITAL CAMERA" is 32 bytes in a count of 32, and came out "...CAMER". So
    every ASCII value piexif read (IFD0, Exif, GPS, Interop) is read again whole when its last byte
    is not a NUL. `_sizes_fit` has already bounded every count.
    """
    order = "<" if tiff[:2] == b"II" else ">"
    (ifd0,) = struct.unpack_from(f"{order}I", tiff, 4)
    pending, seen = [("0th", ifd0)], set()
    while pending and len(seen) < MAX_IFDS:
        name, offset = pending.pop()
        if offset in seen or offset == 0 or offset + 2 > len(tiff):
            continue
        seen.add(offset)
        (entries,) = struct.unpack_from(f"{order}H", tiff, offset)
        for index in range(entries):
            at = offset + 2 + 12 * index
            if at + 12 > len(tiff):
                break
            tag, type_, count, value = struct.unpack_from(f"{order}HHII", tiff, at)
            if tag in _IFD_NAMES:
                pending.append((_IFD_NAMES[tag], value))
            elif type_ == _ASCII_TYPE and tag in ifds.get(name, {}):
                text = tiff[at + 8 : at + 8 + count] if count <= 4 else tiff[value : value + count]
                if len(text) == count and count and not text.endswith(b"\0"):
                    ifds[name][tag] = text


def _salvage(tiff: bytes) -> dict[str, dict[int, object]] | None:
    """Read what survives of damaged EXIF with Pillow's parser, which skips what it cannot read.

    The Orientation in IFD0 is usually intact when a later IFD is cut off, and losing it would
    rotate the photo, so this is worth a second parser.
    """
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pillow warns per skipped tag
        try:
            parsed = Image.Exif()
            parsed.load(b"Exif\0\0" + tiff)
            ifd0 = dict(parsed)
        except Exception:  # the TIFF header itself is unreadable
            return None
        ifds: dict[str, dict[int, object]] = {"0th": ifd0, "Exif": {}, "GPS": {}}
        for name, pointer in (("Exif", _EXIF_POINTER), ("GPS", _GPS_POINTER)):
            with contextlib.suppress(Exception):  # that sub-IFD is cut off; keep the others
                ifds[name] = dict(parsed.get_ifd(pointer))
    return ifds if any(ifds.values()) else None


def _from_ifds(ifds: dict, notes: list[str]) -> ExifData:
    ifd0 = ifds.get("0th") or {}
    exif_ifd = ifds.get("Exif") or {}
    gps_ifd = ifds.get("GPS") or {}
    exif = _keep(exif_ifd, "Exif", EXIF_KEEP)
    gps = _keep(gps_ifd, "GPS", piexif.TAGS["GPS"].keys())

    orientation = _int(ifd0.get(_ORIENTATION))
    if orientation is not None and not 1 <= orientation <= 8:
        notes.append(f"EXIF Orientation {orientation} is invalid; using 1 (as stored)")
    light = _int(exif.get(_LIGHT_SOURCE))
    return ExifData(
        make=_text(ifd0.get(_MAKE)),
        model=_text(ifd0.get(_MODEL)),
        orientation=orientation if orientation is not None and 1 <= orientation <= 8 else 1,
        datetime=_date(exif_ifd.get(_DATETIME_ORIGINAL)) or _date(ifd0.get(_DATETIME)),
        light_source=light or None,
        software=tuple(text for tag in (_SOFTWARE, _PROCESSING_SOFTWARE) if (text := _text(ifd0.get(tag)))),
        rights={tag: text for tag in RIGHTS_TAGS if (text := _rights_text(ifd0.get(tag)))},
        colour_space=_adobe_rgb(exif_ifd, ifds.get("Interop") or {}),
        exif=exif,
        gps=gps,
        warnings=notes,
    )


def _keep(ifd: dict, name: str, allowed: Iterable[int]) -> dict[int, object]:
    """The allowed tags of one IFD whose values fit the type piexif will write them as."""
    kept: dict[int, object] = {}
    for tag in allowed:
        if tag in ifd:
            value = _as_piexif(ifd[tag], piexif.TAGS[name][tag]["type"])
            if value is not None:
                kept[tag] = value
    return kept


def _as_piexif(value: object, kind: int) -> object | None:
    """`value` (from piexif or Pillow) in piexif's form for TIFF type `kind`; None when it does
    not fit (a camera that wrote the tag with another type or an out-of-range value)."""
    if kind == _ASCII:
        if isinstance(value, str):
            value = value.encode("utf-8")
        return value.rstrip(b"\0") if isinstance(value, bytes) else None
    if kind == _UNDEFINED:
        return value if isinstance(value, bytes) else None
    if kind in _INT_RANGES:
        if kind == _BYTE and isinstance(value, bytes):  # Pillow returns BYTE data as bytes
            value = tuple(value) if len(value) != 1 else value[0]
        low, high = _INT_RANGES[kind]
        items = value if isinstance(value, tuple) else (value,)
        if not items or not all(isinstance(v, int) and low <= v <= high for v in items):
            return None
        return value
    if kind in _RATIONAL_RANGES:
        low, high = _RATIONAL_RANGES[kind]
        if _is_pair(value) or not isinstance(value, tuple):
            items = [_pair(value)]
        else:
            items = [_pair(v) for v in value]
        if not items or any(p is None or not all(low <= v <= high for v in p) for p in items):
            return None
        return items[0] if len(items) == 1 else tuple(items)
    return None  # FLOAT/DOUBLE: no kept tag has them


def _is_pair(value: object) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value)


def _pair(value: object) -> tuple[int, int] | None:
    if _is_pair(value):
        return value  # type: ignore[return-value]
    num, den = getattr(value, "numerator", None), getattr(value, "denominator", None)
    if isinstance(num, int) and isinstance(den, int):  # Pillow's IFDRational
        return num, den
    return None


def _int(value: object) -> int | None:
    if isinstance(value, tuple) and value:
        value = value[0]
    return value if isinstance(value, int) else None


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    return value.replace("\0", " ").strip() or None


def _adobe_rgb(exif_ifd: dict, interop: dict) -> str | None:
    """DCF's way of marking Adobe RGB: ColorSpace 0xFFFF ("Uncalibrated") with InteropIndex
    "R03", or the non-standard ColorSpace 2 some cameras write."""
    colour_space = _int(exif_ifd.get(_COLOR_SPACE))
    index = _text(interop.get(_INTEROP_INDEX))
    if colour_space == 2 or (colour_space == 0xFFFF and index == "R03"):
        return "Adobe RGB"
    return None


def _rights_text(value: object) -> str | None:
    """A caption or rights string; EXIF's Copyright may hold "photographer\0editor", kept as
    "photographer; editor". Cameras pad unset captions with spaces: those are None."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if not isinstance(value, str):
        return None
    return "; ".join(part.strip() for part in value.split("\0") if part.strip()) or None


def _date(value: object) -> str | None:
    text = _text(value)
    if text is None or not _DATE_FORMAT.fullmatch(text[:19]) or text.startswith("0000"):
        return None
    return text[:19]


def _rational(value: float, max_den: int = 10_000) -> tuple[int, int] | None:
    if not math.isfinite(value) or value <= 0:
        return None
    fraction = Fraction(value).limit_denominator(max_den)
    return (fraction.numerator, fraction.denominator) if fraction.numerator else None


# LibRaw's sizes.flip -> EXIF Orientation (0 none, 3 180, 5 90 CCW, 6 90 CW).
_FLIP_TO_ORIENTATION = {0: 1, 3: 3, 5: 8, 6: 6}


def exif_from_raw(raw: RawImage) -> ExifData:
    """Capture EXIF for a render of a RAW file (eval protocols): Make/Model, ISO, exposure time,
    F-number, focal length, DateTimeOriginal. Orientation follows the RAW's flip because renders
    are made in sensor order (user_flip=0), like the RAW's own pixels."""
    exif: dict[int, object] = {_EXIF_NAMES["ExifVersion"]: b"0230"}
    if raw.iso > 0:  # SHORT; EXIF 2.3 says 65535 stands for "65535 or more"
        exif[_EXIF_NAMES["ISOSpeedRatings"]] = min(round(raw.iso), 65535)
    for name, value, max_den in (
        ("ExposureTime", raw.exposure_time, 1_000_000),  # 1/8000 s and 30 s both exact
        ("FNumber", raw.f_number, 100),
        ("FocalLength", raw.focal_length, 100),
    ):
        rational = _rational(value, max_den)
        if rational is not None:
            exif[_EXIF_NAMES[name]] = rational
    if raw.timestamp:
        exif[_DATETIME_ORIGINAL] = raw.timestamp.encode("ascii")
    return ExifData(
        make=raw.make or None,
        model=raw.model or None,
        orientation=_FLIP_TO_ORIENTATION.get(raw.flip, 1),
        datetime=raw.timestamp,
        exif=exif,
    )


def to_jpeg_exif(exif: ExifData) -> bytes:
    """An APP1 EXIF payload ("Exif\\0\\0" + TIFF, piexif.dump) for Pillow's `save(exif=...)`."""
    ifd0: dict[int, object] = {_ORIENTATION: exif.orientation}
    for tag, text in ((_MAKE, exif.make), (_MODEL, exif.model), (_DATETIME, exif.datetime)):
        if text:
            ifd0[tag] = text.encode("utf-8")
    return piexif.dump({"0th": ifd0, "Exif": dict(exif.exif), "GPS": dict(exif.gps)})


def scene_exposure_value(f_number: float, exposure_time: float, iso: float) -> float | None:
    """EV at ISO 100, log2(N^2 / t) - log2(ISO / 100): how bright the scene was (sunlit ~14-15,
    overcast ~12, indoor ~5-8). None when any of the three is unknown."""
    if not (f_number > 0 and exposure_time > 0 and iso > 0):
        return None
    return math.log2(f_number * f_number / exposure_time) - math.log2(iso / 100.0)


def exposure_value(exif: ExifData) -> float | None:
    """The scene EV from a photo's FNumber, ExposureTime and ISOSpeedRatings tags."""

    def number(name: str) -> float:
        value = exif.exif.get(_EXIF_NAMES[name])
        if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
            return value[0] / value[1] if value[1] else 0.0
        if isinstance(value, tuple) and value and isinstance(value[0], int):
            return float(value[0])
        return float(value) if isinstance(value, int | float) else 0.0

    return scene_exposure_value(number("FNumber"), number("ExposureTime"), number("ISOSpeedRatings"))


def camera_display_name(make: str | None, model: str | None) -> str:
    """A camera named once from EXIF Make and Model: the model alone when it names the brand
    already ("Canon" + "Canon PowerShot S40", "NIKON CORPORATION" + "NIKON D700", "Eastman Kodak
    Company" + "Kodak DC120 ZOOM Digital Camera"), else both ("GoPro HERO7 Black")."""
    make, model = (make or "").strip(), (model or "").strip()
    first_word = model.split()[0].lower() if model else ""
    if model.lower().startswith(make.lower()) or first_word in make.lower().split():
        return model
    return f"{make} {model}".strip()

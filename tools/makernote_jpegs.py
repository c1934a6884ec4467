"""Small JPEGs with hand-made maker notes, for tests/test_makernotes.py and the hostile-input corpus
(tools/make_bad_inputs.py): a tag's type, count and values can be anything, which no camera and no
writing library would produce.

Each maker note is laid out the way exiftool expects that make's (tools, not rawback, know these
layouts; rawback leaves the decoding to exiftool): a bare IFD with offsets from the EXIF TIFF header
(Canon, Samsung), a header then such an IFD (Pentax "AOC\\0", Panasonic, Olympus "OLYMP\\0"), or a
header and a TIFF of its own with offsets from there (Nikon type 3).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

BYTE, ASCII, SHORT, LONG, RATIONAL, UNDEFINED, SSHORT, SLONG = 1, 2, 3, 4, 5, 7, 8, 9
_SIZE = {BYTE: 1, ASCII: 1, SHORT: 2, LONG: 4, RATIONAL: 8, UNDEFINED: 1, SSHORT: 2, SLONG: 4}
_FORMAT = {BYTE: "B", SHORT: "H", LONG: "I", RATIONAL: "I", SSHORT: "h", SLONG: "i", UNDEFINED: "B"}

# (tag, type, count or None for the values' own count, values: a tuple or raw bytes)
Entry = tuple[int, int, int | None, object]


def _pack(kind: int, values: object) -> bytes:
    if isinstance(values, bytes):
        return values
    if kind == ASCII:
        return str(values).encode() + b"\0"
    return struct.pack(f"<{len(values)}{_FORMAT[kind]}", *values)  # type: ignore[arg-type]


def ifd(entries: Sequence[Entry], at: int) -> bytes:
    """A little-endian IFD, with its out-of-line values after it, that will sit `at` bytes from
    the TIFF header its offsets count from."""
    entries = sorted(entries, key=lambda e: e[0])
    data_at = at + 2 + 12 * len(entries) + 4
    table, tail = b"", b""
    for tag, kind, count, values in entries:
        blob = _pack(kind, values)
        if count is None:
            count = len(blob) // _SIZE[kind]
        if len(blob) <= 4:
            field = blob.ljust(4, b"\0")
        else:
            field = struct.pack("<I", data_at + len(tail))
            tail += blob + b"\0" * (len(blob) % 2)
        table += struct.pack("<HHI", tag, kind, count) + field
    return struct.pack("<H", len(entries)) + table + struct.pack("<I", 0) + tail


def exif_with_maker_note(make: str, model: str, maker_note: Callable[[int], bytes]) -> bytes:
    """An APP1 EXIF payload: IFD0 (Make, Model, Exif pointer), the Exif IFD with MakerNote, and
    the maker note that `maker_note(offset)` builds for the TIFF offset it will sit at."""

    def ifd0(exif_at: int) -> bytes:
        return ifd([(271, ASCII, None, make), (272, ASCII, None, model), (34665, LONG, 1, (exif_at,))], 8)

    exif_at = 8 + len(ifd0(0))
    exif_at += exif_at % 2
    note_at = exif_at + 2 + 12 + 4
    note = maker_note(note_at)
    exif_ifd = struct.pack("<HHHII", 1, 37500, UNDEFINED, len(note), note_at) + struct.pack("<I", 0)
    tiff = (b"II*\0" + struct.pack("<I", 8) + ifd0(exif_at)).ljust(exif_at, b"\0")
    return b"Exif\0\0" + tiff + exif_ifd + note


def jpeg_with_exif(exif: bytes, size: tuple[int, int] = (64, 48)) -> bytes:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=80, exif=exif)
    return buffer.getvalue()


# --- one maker note per make: `entries` replace or add to a plausible default -----------------------


def canon(as_shot: object = (1991, 1016, 1022, 1678), *, color_data: Entry | None = None) -> bytes:
    """A Canon EOS 350D: ColorData version 1 (582 shorts) with WB_RGGBLevelsAsShot at 0x19."""
    data = [0] * 582
    if isinstance(as_shot, tuple):
        data[0x19 : 0x19 + len(as_shot)] = as_shot
    entries: list[Entry] = [
        (0x0010, LONG, 1, (0x80000189,)),  # CanonModelID: EOS 350D
        color_data or (0x4001, SSHORT, None, tuple(v - 65536 if v > 32767 else v for v in data)),
    ]
    return jpeg_with_exif(
        exif_with_maker_note("Canon", "Canon EOS DIGITAL REBEL XT", lambda at: ifd(entries, at))
    )


def nikon(entries: Sequence[Entry] = ()) -> bytes:
    """A Nikon D90 (type 3 maker note) with WB_RBLevels (0x000c) 461/256 335/256 1 1."""
    default: dict[int, Entry] = {0x000C: (0x000C, RATIONAL, None, (461, 256, 335, 256, 256, 256, 256, 256))}
    default.update({e[0]: e for e in entries})

    def note(_: int) -> bytes:
        inner = ifd(list(default.values()), 8)
        return b"Nikon\0\x02\x10\0\0" + b"II*\0" + struct.pack("<I", 8) + inner

    return jpeg_with_exif(exif_with_maker_note("NIKON CORPORATION", "NIKON D90", note))


def pentax(entries: Sequence[Entry] = ()) -> bytes:
    """A Pentax *ist DL ("AOC\\0" maker note) with WhitePoint (0x0201) 12736 8192 8192 8000."""
    default: dict[int, Entry] = {
        0x0005: (0x0005, LONG, 1, (0x12B1A,)),  # PentaxModelID: *ist DL
        0x0019: (0x0019, SHORT, 1, (0,)),  # WhiteBalance: Auto
        0x0201: (0x0201, SHORT, None, (12736, 8192, 8192, 8000)),
    }
    default.update({e[0]: e for e in entries})
    return jpeg_with_exif(
        exif_with_maker_note(
            "PENTAX Corporation",
            "PENTAX *ist DL",
            lambda at: b"AOC\0II" + ifd(list(default.values()), at + 6),
        )
    )


def panasonic(red: int = 2283, green: int = 1054, blue: int = 1752) -> bytes:
    """A Panasonic DMC-LX3 with WBRedLevel, WBGreenLevel, WBBlueLevel (0x8004-0x8006)."""
    entries: list[Entry] = [
        (0x8004, SHORT, 1, (red,)),
        (0x8005, SHORT, 1, (green,)),
        (0x8006, SHORT, 1, (blue,)),
    ]
    return jpeg_with_exif(
        exif_with_maker_note("Panasonic", "DMC-LX3", lambda at: b"Panasonic\0\0\0" + ifd(entries, at + 12))
    )


def olympus(red: int = 412, blue: int = 290) -> bytes:
    """An Olympus E-1 ("OLYMP\\0" maker note) with RedBalance and BlueBalance (0x1017, 0x1018)."""
    entries: list[Entry] = [(0x1017, SHORT, None, (red, 64)), (0x1018, SHORT, None, (blue, 64))]
    return jpeg_with_exif(
        exif_with_maker_note("OLYMPUS CORPORATION", "E-1", lambda at: b"OLYMP\0\x01\0" + ifd(entries, at + 8))
    )


SAMSUNG_KEY = (305, 72, 737, 456, 282, 307, 519, 724, 13, 505, 193)


def samsung(
    uncorrected: Sequence[int] = (2116, 1088, 1088, 1608), black: Sequence[int] = (64, 64, 64, 64)
) -> bytes:
    """A Samsung NX100 (type 2 maker note): WB_RGGBLevelsUncorrected and WB_RGGBLevelsBlack,
    enciphered the way exiftool deciphers them (stored = value + key)."""
    entries: list[Entry] = [
        (0x0001, UNDEFINED, 4, b"0100"),
        (0xA020, LONG, None, SAMSUNG_KEY),
        (0xA021, LONG, None, tuple(v + SAMSUNG_KEY[i] for i, v in enumerate(uncorrected))),
        (0xA028, SLONG, None, tuple(v + SAMSUNG_KEY[i] for i, v in enumerate(black))),
    ]
    return jpeg_with_exif(exif_with_maker_note("SAMSUNG", "NX100", lambda at: ifd(entries, at)))


def canon_300d(auto: Sequence[int] = (1719, 832, 831, 990), white_balance: int = 0) -> bytes:
    """A Canon EOS 300D: no as-shot entry, ColorBalance (0xa9) levels per setting and the setting
    (ShotInfo 0x0004 index 7: 0 Auto, 1 Daylight...); the first value of each is its size in bytes."""
    shot_info = [68] + [0] * 33
    shot_info[7] = white_balance
    balance = [82, *auto] + [v for _ in range(9) for v in (1722, 832, 831, 989)]
    entries: list[Entry] = [
        (0x0004, SHORT, None, tuple(shot_info)),
        (0x0010, LONG, 1, (0x80000170,)),  # CanonModelID: EOS 300D
        (0x00A9, SSHORT, None, tuple(balance)),
    ]
    return jpeg_with_exif(
        exif_with_maker_note("Canon", "Canon EOS DIGITAL REBEL", lambda at: ifd(entries, at))
    )

"""A little-endian classic TIFF writer: IFDs with typed entries, image data chunks and child IFDs
(SubIFDs, Exif, GPS), laid out in one pass and written front to back. rawback.io.dng builds its
IFDs with it.

The file layout is: header, all IFDs (with their out-of-line values), then the image data.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import BinaryIO

import numpy as np

# TIFF field types.
BYTE, ASCII, SHORT, LONG, RATIONAL, UNDEFINED, SLONG, SRATIONAL = 1, 2, 3, 4, 5, 7, 9, 10
STRIP_OFFSETS = 273  # the default tag for a chunk's offsets


_TYPE_FORMAT = {BYTE: "B", ASCII: "B", UNDEFINED: "B", SHORT: "H", LONG: "I", SLONG: "i"}


# A tag value: numbers (rationals as floats), one number, text, or raw bytes.
Value = Iterable[float] | float | str | bytes


@dataclass
class Ifd:
    """One IFD before layout: entries, the image data chunks, and the IFDs it points to."""

    entries: dict[int, tuple[int, int, bytes]] = field(default_factory=dict)  # tag: type,count,raw
    chunks: list[bytes | np.ndarray] = field(default_factory=list)  # strips or tiles, in order
    offsets_tag: int = STRIP_OFFSETS  # where the chunk offsets go (TileOffsets for tiles)
    children: dict[int, list[Ifd]] = field(default_factory=dict)  # pointer tag: IFDs
    offset: int = 0  # set by the layout

    def add(self, tag: int, type_: int, values: Value) -> None:
        self.entries[tag] = encode(type_, values)

    def add_chunks(self, chunks: list[bytes | np.ndarray], offsets_tag: int, counts_tag: int) -> None:
        self.chunks = chunks
        self.offsets_tag = offsets_tag
        self.add(offsets_tag, LONG, [0] * len(chunks))  # filled in by the layout
        self.add(counts_tag, LONG, [_nbytes(c) for c in chunks])

    def size(self) -> int:
        """Bytes of the IFD with its out-of-line values (word aligned)."""
        extra = sum(_even(len(raw)) for _, _, raw in self.entries.values() if len(raw) > 4)
        return 2 + 12 * len(self.entries) + 4 + extra


def encode(type_: int, values: Value) -> tuple[int, int, bytes]:
    """(type, count, little-endian bytes) of a tag value; rationals are given as numbers."""
    if type_ == ASCII:
        text = values.encode("utf-8") if isinstance(values, str) else bytes(values)  # type: ignore[arg-type]
        raw = text.split(b"\0")[0] + b"\0"  # one NUL-terminated string
        return type_, len(raw), raw
    if isinstance(values, bytes | bytearray):
        if type_ not in (BYTE, UNDEFINED):
            raise ValueError(f"bytes given for TIFF type {type_}")
        return type_, len(values), bytes(values)
    numbers = list(values) if isinstance(values, Iterable) else [values]  # type: ignore[arg-type]
    if type_ in (RATIONAL, SRATIONAL):
        # Exact for decimals of up to six places, e.g. matrix entries given to four.
        fractions = [Fraction(float(v)).limit_denominator(1_000_000) for v in numbers]
        return _pack_pairs(type_, [(f.numerator, f.denominator) for f in fractions])
    ints = [int(v) for v in numbers]
    return type_, len(ints), struct.pack(f"<{len(ints)}{_TYPE_FORMAT[type_]}", *ints)


def encode_rational_pairs(type_: int, value: object) -> tuple[int, int, bytes]:
    """piexif's rational forms: (num, den) or a sequence of them."""
    seq = list(value)  # type: ignore[call-overload]
    pairs = [tuple(seq)] if seq and isinstance(seq[0], int) else [tuple(p) for p in seq]
    if not pairs or any(len(p) != 2 for p in pairs):
        raise ValueError(f"not a rational: {value!r}")
    return _pack_pairs(type_, pairs)  # type: ignore[arg-type]


def _pack_pairs(type_: int, pairs: list[tuple[int, int]]) -> tuple[int, int, bytes]:
    flat = [int(x) for pair in pairs for x in pair]
    code = "i" if type_ == SRATIONAL else "I"  # struct.error when a value does not fit
    return type_, len(pairs), struct.pack(f"<{len(flat)}{code}", *flat)


def _even(n: int) -> int:
    return n + (n & 1)


def _nbytes(chunk: bytes | np.ndarray) -> int:
    return chunk.nbytes if isinstance(chunk, np.ndarray) else len(chunk)


def _all_ifds(root: Ifd) -> list[Ifd]:
    """Depth first, parents before children: the order they are laid out in the file."""
    out = [root]
    for tag in sorted(root.children):
        for child in root.children[tag]:
            out.extend(_all_ifds(child))
    return out


def write_tiff(handle: BinaryIO, root: Ifd) -> None:
    """Lay out every IFD and chunk, fill in the offsets, then write the file front to back.

    Offset entries were added with their final counts as placeholders, so every IFD's size is
    known before any offset is: one pass assigns positions, nothing is patched afterwards.
    """
    ifds = _all_ifds(root)
    position = 8  # after the header
    for ifd in ifds:
        ifd.offset = position
        position += _even(ifd.size())
    chunk_offsets: list[list[int]] = []
    for ifd in ifds:
        chunk_offsets.append([])
        for chunk in ifd.chunks:
            chunk_offsets[-1].append(position)
            position += _even(_nbytes(chunk))
    if position >= 2**32:
        raise ValueError(f"DNG would be {position} bytes: over the 4 GB TIFF limit")
    for ifd, offsets in zip(ifds, chunk_offsets, strict=True):
        if ifd.chunks:
            ifd.add(ifd.offsets_tag, LONG, offsets)
        for tag, children in ifd.children.items():
            ifd.add(tag, LONG, [child.offset for child in children])

    handle.write(struct.pack("<2sHI", b"II", 42, root.offset))
    for ifd in ifds:
        handle.write(_pack_ifd(ifd))
    for ifd in ifds:
        for chunk in ifd.chunks:
            handle.write(chunk)  # type: ignore[arg-type]  # ndarray: buffer protocol
            if _nbytes(chunk) & 1:
                handle.write(b"\0")


def _pack_ifd(ifd: Ifd) -> bytes:
    """Entries sorted by tag, NextIFD = 0, then the values that do not fit in 4 bytes."""
    entries = sorted(ifd.entries.items())
    values_at = ifd.offset + 2 + 12 * len(entries) + 4
    head = [struct.pack("<H", len(entries))]
    tail = []
    for tag, (type_, count, raw) in entries:
        if len(raw) <= 4:
            head.append(struct.pack("<HHI", tag, type_, count) + raw.ljust(4, b"\0"))
        else:
            head.append(struct.pack("<HHII", tag, type_, count, values_at))
            tail.append(raw.ljust(_even(len(raw)), b"\0"))
            values_at += _even(len(raw))
    head.append(struct.pack("<I", 0))  # NextIFD: SubIFDs are not chained (dng.md 4)
    out = b"".join(head + tail)
    return out.ljust(_even(len(out)), b"\0")

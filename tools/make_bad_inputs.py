"""Write a corpus of hostile and broken input photos (issue 21), for tests/test_bad_input_corpus.py
and for trying `rawback batch` by hand:

    python tools/make_bad_inputs.py /tmp/bad-inputs
    rawback batch /tmp/bad-inputs -o /tmp/bad-out --method analytic

Every file is small (a few KB) and named for what it is: truncated and corrupted JPEG, PNG and TIFF
at several cut points, empty files, text and wrong extensions, headers claiming 100000x100000 or
65535x65535 pixels (which the pixel limit must refuse before anything is allocated), mistyped TIFF
tags, XMP nested thousands deep, EXIF with garbage counts and offsets, maker notes whose white
balance is truncated, huge, mistyped or absurd (tools/makernote_jpegs.py), garbage ICC profiles, a CMYK
JPEG without a profile, unusual but valid photos (16-bit, palette with transparency, 2x2), names
with spaces, newlines and non-UTF-8 bytes, and things that are not files at all (a FIFO, link
loops, a dangling link, a folder named like a photo).

Some are valid photos on purpose: the corpus checks that nothing crashes, not that all fail.
"""

from __future__ import annotations

import io
import os
import struct
import sys
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import piexif
import tifffile
from PIL import Image, PngImagePlugin

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script: tools/ is on the path

from tools import makernote_jpegs as mn

# --- valid building blocks -----------------------------------------------------------------------


def _pixels(width: int = 64, height: int = 48, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 / max(width, 1), y * 255 / max(height, 1), np.full((height, width), 128)], -1)
    return np.clip(rgb + rng.normal(0, 6, rgb.shape), 0, 255).astype(np.uint8)


def _encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def _jpeg(width: int = 64, height: int = 48, **kwargs: object) -> bytes:
    return _encode(Image.fromarray(_pixels(width, height)), "JPEG", quality=85, **kwargs)


def _png(width: int = 64, height: int = 48, **kwargs: object) -> bytes:
    return _encode(Image.fromarray(_pixels(width, height)), "PNG", **kwargs)


def _tiff_file(array: np.ndarray, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **kwargs)
    return buffer.getvalue()


def _with_segment(jpeg: bytes, marker: int, payload: bytes) -> bytes:
    """`jpeg` with one more segment right after SOI (payload at most 65533 bytes)."""
    assert len(payload) <= 65533
    return jpeg[:2] + struct.pack(">HH", 0xFF00 | marker, len(payload) + 2) + payload + jpeg[2:]


def _exif_app1(tiff: bytes) -> bytes:
    return _with_segment(_jpeg(), 0xE1, b"Exif\0\0" + tiff)


def _xmp_app1(packet: bytes) -> bytes:
    return _with_segment(_jpeg(), 0xE1, b"http://ns.adobe.com/xap/1.0/\0" + packet)


def _png_chunk(kind: bytes, data: bytes, *, length: int | None = None, crc: int | None = None) -> bytes:
    crc = zlib.crc32(kind + data) if crc is None else crc
    return struct.pack(">I", len(data) if length is None else length) + kind + data + struct.pack(">I", crc)


def _png_with_chunk(png: bytes, chunk: bytes) -> bytes:
    """`png` with one more chunk right after IHDR (8-byte signature + 25-byte IHDR)."""
    return png[:33] + chunk + png[33:]


def _png_ihdr(png: bytes, width: int, height: int) -> bytes:
    ihdr = struct.pack(">II", width, height) + png[24:29]
    return png[:8] + _png_chunk(b"IHDR", ihdr) + png[33:]


def _jpeg_sof(jpeg: bytes, width: int, height: int) -> bytes:
    """`jpeg` with the frame header (SOF0/SOF2) claiming another size."""
    at = 2
    while at + 4 <= len(jpeg):
        marker, length = struct.unpack(">HH", jpeg[at : at + 4])
        if marker in (0xFFC0, 0xFFC1, 0xFFC2):
            return jpeg[: at + 5] + struct.pack(">HH", height, width) + jpeg[at + 9 :]
        at += 2 + length
    raise ValueError("no SOF marker")


# Minimal hand-written TIFFs, so tags can be given any type and count, whatever tifffile would allow.
SHORT, LONG, ASCII, BYTE, UNDEFINED = 3, 4, 2, 1, 7
_SIZES = {BYTE: 1, ASCII: 1, SHORT: 2, LONG: 4, UNDEFINED: 1}


def _values(kind: int, values: object) -> bytes:
    if isinstance(values, bytes):
        return values
    fmt = {SHORT: "H", LONG: "I", BYTE: "B", UNDEFINED: "B"}[kind]
    return struct.pack(f"<{len(values)}{fmt}", *values)


def _tiff(
    width: int = 32,
    height: int = 24,
    extra: dict[int, tuple[int, int | None, object]] | None = None,
    *,
    pixels: bytes | None = None,
    strip_offset: int | None = None,
    next_ifd: int = 0,
) -> bytes:
    """A little-endian 8-bit RGB TIFF. `extra` maps tag -> (type, count or None for the values'
    own count, values as a tuple or raw bytes); it replaces the basic tags of the same number."""
    pixels = _pixels(width, height).tobytes() if pixels is None else pixels
    tags: dict[int, tuple[int, int | None, object]] = {
        256: (LONG, None, (width,)),
        257: (LONG, None, (height,)),
        258: (SHORT, None, (8, 8, 8)),
        259: (SHORT, None, (1,)),
        262: (SHORT, None, (2,)),
        273: (LONG, None, (0,)),  # filled in below
        277: (SHORT, None, (3,)),
        278: (LONG, None, (height,)),
        279: (LONG, None, (len(pixels),)),
        284: (SHORT, None, (1,)),
    }
    tags.update(extra or {})
    ifd_size = 2 + 12 * len(tags) + 4
    blobs = {tag: _values(kind, values) for tag, (kind, _, values) in tags.items()}
    out_of_line = sum(len(b) + len(b) % 2 for b in blobs.values() if len(b) > 4)
    data_at = 8 + ifd_size + out_of_line
    if 273 not in (extra or {}):
        blobs[273] = _values(LONG, (data_at if strip_offset is None else strip_offset,))
    entries, tail = b"", b""
    for tag in sorted(tags):
        kind, count, _ = tags[tag]
        blob = blobs[tag]
        count = len(blob) // _SIZES[kind] if count is None else count
        if len(blob) <= 4:
            field = blob.ljust(4, b"\0")
        else:
            field = struct.pack("<I", 8 + ifd_size + len(tail))
            tail += blob + b"\0" * (len(blob) % 2)
        entries += struct.pack("<HHI", tag, kind, count) + field
    ifd = struct.pack("<H", len(tags)) + entries + struct.pack("<I", next_ifd)
    return b"II*\0" + struct.pack("<I", 8) + ifd + tail + pixels


def _exif_tiff(
    entries: list[tuple[int, int, int, bytes]], *, ifd_offset: int = 8, extra: bytes = b""
) -> bytes:
    """A bare EXIF TIFF structure: IFD0 with raw (tag, type, count, 4-byte field) entries."""
    body = struct.pack("<H", len(entries))
    body += b"".join(struct.pack("<HHI", t, k, c) + f.ljust(4, b"\0")[:4] for t, k, c, f in entries)
    return b"II*\0" + struct.pack("<I", ifd_offset) + body + struct.pack("<I", 0) + extra


def _nested_xmp(depth: int) -> bytes:
    return (
        b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description>'
        + b"<a>" * depth
        + b"</a>" * depth
        + b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    )


def _ftyp(brand: bytes) -> bytes:
    return struct.pack(">I", 24) + b"ftyp" + brand + b"\0\0\0\0" + brand + b"mif1"


# --- the corpus ----------------------------------------------------------------------------------


def _files() -> dict[str, Callable[[], bytes]]:
    """Name -> a function making the file's bytes. Names say what each file is."""
    jpeg, png = _jpeg(), _png()
    tiff = _tiff_file(_pixels())
    progressive = _jpeg(progressive=True)
    files: dict[str, Callable[[], bytes]] = {}

    # Truncated and corrupted JPEG, PNG, TIFF at several cut points.
    for label, cut in (("soi-only", 2), ("header-only", 200), ("10pct", 0.1), ("half", 0.5), ("99pct", 0.99)):
        for kind, whole in (("jpeg", jpeg), ("png", png), ("tiff", tiff)):
            at = cut if isinstance(cut, int) else int(len(whole) * cut)
            suffix = {"jpeg": "jpg", "png": "png", "tiff": "tif"}[kind]
            files[f"{kind}-truncated-{label}.{suffix}"] = lambda w=whole, a=at: w[:a]
    files["jpeg-progressive-truncated-half.jpg"] = lambda: progressive[: len(progressive) // 2]
    files["jpeg-no-eoi.jpg"] = lambda: jpeg[:-2]
    files["jpeg-soi-eoi-only.jpg"] = lambda: b"\xff\xd8\xff\xd9"

    def flipped(data: bytes, start: float, step: int = 7) -> bytes:
        mutable = bytearray(data)
        for i in range(int(len(data) * start), len(data) - 2, step):
            mutable[i] ^= 0x5A
        return bytes(mutable)

    files["jpeg-scan-bytes-flipped.jpg"] = lambda: flipped(jpeg, 0.5)
    files["jpeg-scan-bytes-flipped-late.jpg"] = lambda: flipped(jpeg, 0.8)
    files["jpeg-scan-zeroed.jpg"] = lambda: jpeg[: len(jpeg) // 3] + b"\0" * (len(jpeg) - len(jpeg) // 3)
    files["jpeg-sof-zero-components.jpg"] = lambda: _no_components(jpeg)
    files["jpeg-segment-length-past-end.jpg"] = lambda: jpeg[:2] + b"\xff\xe1\xff\xff" + b"Exif\0\0II*\0"
    files["png-bad-crc.png"] = lambda: png[:29] + b"\0\0\0\0" + png[33:]
    files["png-idat-bytes-flipped.png"] = lambda: flipped(png, 0.4, 5)
    files["png-chunk-length-huge.png"] = lambda: png[:33] + struct.pack(">I", 0x7FFFFFF0) + png[37:]
    files["png-no-idat.png"] = lambda: png[:33] + _png_chunk(b"IEND", b"")
    files["tiff-strip-offset-past-end.tif"] = lambda: _tiff(strip_offset=1 << 30)
    files["tiff-strip-bytecount-huge.tif"] = lambda: _tiff(extra={279: (LONG, None, (0xFFFFFFF0,))})
    files["tiff-ifd-offset-past-end.tif"] = lambda: b"II*\0" + struct.pack("<I", 0x7FFFFFF0) + b"\0" * 64
    files["tiff-ifd-entry-count-huge.tif"] = lambda: b"II*\0" + struct.pack("<IH", 8, 0xFFFF) + b"\0" * 64
    files["tiff-ifd-loop-next-points-to-itself.tif"] = lambda: _tiff(next_ifd=8)
    files["tiff-bits-per-sample-zero.tif"] = lambda: _tiff(extra={258: (SHORT, None, (0, 0, 0))})
    files["tiff-samples-per-pixel-zero.tif"] = lambda: _tiff(extra={277: (SHORT, None, (0,))})
    files["tiff-compression-unknown.tif"] = lambda: _tiff(extra={259: (SHORT, None, (12345,))})
    files["tiff-deflate-strip-corrupt.tif"] = lambda: flipped(
        _tiff_file(_pixels(), compression="zlib"), 0.5, 3
    )
    files["tiff-float-pixels.tif"] = lambda: _tiff_file(_pixels().astype(np.float32) / 255)
    files["bigtiff-truncated.tif"] = lambda: _tiff_file(_pixels(), bigtiff=True)[:100]

    # Empty files and text or other bytes under a photo's name.
    for suffix in ("jpg", "png", "tif", "heic"):
        files[f"zero-bytes-{suffix}.{suffix}"] = lambda: b""
    files["text-named-jpg.jpg"] = lambda: b"this is not a photo\n"
    files["text-named-png.png"] = lambda: b"neither is this\n" * 10
    files["html-named-tiff.tiff"] = lambda: b"<!doctype html><html><body>404 Not Found</body></html>\n"
    files["text-named-heic.heic"] = lambda: b"not a HEIF either\n"
    files["random-bytes.jpeg"] = lambda: np.random.default_rng(1).bytes(3000)
    files["heic-named-ftyp-box-only.heic"] = lambda: _ftyp(b"heic")
    files["heic-named-ftyp-then-garbage.heic"] = lambda: _ftyp(b"heic") + np.random.default_rng(2).bytes(2000)
    files["heic-named-but-jpeg.heic"] = lambda: jpeg
    # Valid photos under the wrong extension: read by content.
    files["png-bytes-named.tif"] = lambda: png
    files["jpeg-bytes-named.png"] = lambda: jpeg
    files["tiff-bytes-named.jpg"] = lambda: tiff
    files["gif-bytes-named.jpg"] = lambda: _encode(Image.fromarray(_pixels()).convert("P"), "GIF")

    # Headers that claim huge sizes (JPEG's 16-bit fields stop at 65535).
    files["jpeg-sof-65535x65535.jpg"] = lambda: _jpeg_sof(jpeg, 65535, 65535)
    files["jpeg-progressive-sof-65535x65535.jpg"] = lambda: _jpeg_sof(progressive, 65535, 65535)
    files["jpeg-sof-0x0.jpg"] = lambda: _jpeg_sof(jpeg, 0, 0)
    files["png-ihdr-100000x100000.png"] = lambda: _png_ihdr(png, 100000, 100000)
    files["png-ihdr-0x0.png"] = lambda: _png_ihdr(png, 0, 0)
    files["tiff-tags-100000x100000.tif"] = lambda: _tiff(
        extra={256: (LONG, None, (100000,)), 257: (LONG, None, (100000,)), 278: (LONG, None, (100000,))}
    )
    files["tiff-tags-100000x1-wide.tif"] = lambda: _tiff(
        extra={256: (LONG, None, (100000,)), 257: (LONG, None, (1,)), 278: (LONG, None, (1,))}
    )

    # Mistyped TIFF tags.
    files["tiff-orientation-text.tif"] = lambda: _tiff(extra={274: (ASCII, None, b"6\0")})
    files["tiff-orientation-2-values.tif"] = lambda: _tiff(extra={274: (SHORT, None, (1, 6))})
    files["tiff-orientation-99.tif"] = lambda: _tiff(extra={274: (SHORT, None, (99,))})
    files["tiff-icc-typed-short.tif"] = lambda: _tiff(extra={34675: (SHORT, None, tuple(range(40)))})
    files["tiff-icc-typed-long-large.tif"] = lambda: _tiff(extra={34675: (LONG, None, (0xFFFFFFF0,))})
    files["tiff-icc-count-huge.tif"] = lambda: _tiff(extra={34675: (UNDEFINED, 0x7FFFFFF0, b"\0" * 8)})
    files["tiff-icc-garbage.tif"] = lambda: _tiff(extra={34675: (UNDEFINED, None, b"garbage!" * 40)})
    files["tiff-xmp-typed-ascii.tif"] = lambda: _tiff(
        extra={700: (ASCII, None, _nested_xmp(2).replace(b"<a>", b"") + b"\0")}
    )
    files["tiff-xmp-nested-5000.tif"] = lambda: _tiff(extra={700: (BYTE, None, _nested_xmp(5000))})
    files["tiff-exif-ifd-points-past-end.tif"] = lambda: _tiff(extra={34665: (LONG, None, (0x7FFFFFF0,))})
    files["tiff-exif-ifd-points-to-ifd0.tif"] = lambda: _tiff(extra={34665: (LONG, None, (8,))})
    files["tiff-make-count-huge.tif"] = lambda: _tiff(extra={271: (ASCII, 0x7FFFFFF0, b"Cam\0Cam\0Cam")})

    # XMP nested deep, and entity expansion.
    files["jpeg-xmp-nested-8000.jpg"] = lambda: _xmp_app1(_nested_xmp(8000))
    files["jpeg-xmp-billion-laughs.jpg"] = lambda: _xmp_app1(
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(b'<!ENTITY %c "%s">' % (98 + i, b"&%c;" % (97 + i) * 10) for i in range(8))
        + b']><x:xmpmeta xmlns:x="adobe:ns:meta/">&i;</x:xmpmeta>'
    )
    files["jpeg-xmp-not-xml.jpg"] = lambda: _xmp_app1(b"<x:xmpmeta \xff\xfe<<<< </x:xmpmeta>")
    files["png-itxt-xmp-nested-100000.png"] = lambda: _png_with_chunk(
        png,
        _png_chunk(b"iTXt", b"XML:com.adobe.xmp\0\x01\0\0\0" + zlib.compress(_nested_xmp(100000), 9)),
    )
    files["png-itxt-xmp-plain-nested-3000.png"] = lambda: _png_with_itxt_xmp(_nested_xmp(3000).decode())

    # EXIF with garbage, huge counts and offsets pointing outside.
    files["jpeg-exif-random-garbage.jpg"] = lambda: _exif_app1(np.random.default_rng(3).bytes(500))
    files["jpeg-exif-tiff-header-then-garbage.jpg"] = lambda: _exif_app1(
        b"II*\0" + np.random.default_rng(4).bytes(500)
    )
    files["jpeg-exif-ifd0-offset-past-end.jpg"] = lambda: _exif_app1(_exif_tiff([], ifd_offset=0x7FFFFFF0))
    files["jpeg-exif-entry-count-65535.jpg"] = lambda: _exif_app1(b"II*\0" + struct.pack("<IH", 8, 0xFFFF))
    files["jpeg-exif-make-count-huge.jpg"] = lambda: _exif_app1(
        _exif_tiff([(271, ASCII, 0x7FFFFFF0, struct.pack("<I", 26)), (274, SHORT, 1, b"\6\0")])
    )
    files["jpeg-exif-make-offset-past-end.jpg"] = lambda: _exif_app1(
        _exif_tiff([(271, ASCII, 100, struct.pack("<I", 0x7FFFFFF0)), (274, SHORT, 1, b"\6\0")])
    )
    files["jpeg-exif-ifd-points-to-itself.jpg"] = lambda: _exif_app1(
        _exif_tiff([(34665, LONG, 1, struct.pack("<I", 8)), (34853, LONG, 1, struct.pack("<I", 8))])
    )
    files["jpeg-exif-orientation-text.jpg"] = lambda: _exif_app1(_exif_tiff([(274, ASCII, 2, b"6\0")]))
    files["jpeg-exif-orientation-65535.jpg"] = lambda: _exif_app1(_exif_tiff([(274, SHORT, 1, b"\xff\xff")]))
    files["jpeg-exif-unknown-type.jpg"] = lambda: _exif_app1(_exif_tiff([(271, 99, 4, b"abcd")]))
    files["png-exif-chunk-garbage.png"] = lambda: _png_with_chunk(
        png, _png_chunk(b"eXIf", b"MM\0*" + b"\xff" * 40)
    )
    files["jpeg-exif-control-characters-in-make-model.jpg"] = lambda: _control_character_exif(jpeg)

    # Maker notes whose white balance is truncated, huge, mistyped or absurd (and one valid).
    files["jpeg-makernote-canon-valid.jpg"] = lambda: mn.canon()
    files["jpeg-makernote-canon-wb-levels-zero.jpg"] = lambda: mn.canon((0, 0, 0, 0))
    files["jpeg-makernote-canon-wb-levels-absurd.jpg"] = lambda: mn.canon((30000, 16, 16, 65000))
    files["jpeg-makernote-canon-colordata-truncated.jpg"] = lambda: mn.canon(
        color_data=(0x4001, mn.SHORT, 582, b"\1\0" * 40)
    )
    files["jpeg-makernote-canon-colordata-offset-past-end.jpg"] = lambda: mn.canon(
        color_data=(0x4001, mn.SHORT, 582, struct.pack("<I", 0x7FFFFFF0))
    )
    files["jpeg-makernote-nikon-wb-count-huge.jpg"] = lambda: mn.nikon(
        [(0x000C, mn.RATIONAL, 0x7FFFFFF0, b"\0" * 32)]
    )
    files["jpeg-makernote-nikon-wb-text.jpg"] = lambda: mn.nikon([(0x000C, mn.ASCII, None, "1.8 x 1 1")])
    files["jpeg-makernote-nikon-wb-divide-by-zero.jpg"] = lambda: mn.nikon(
        [(0x000C, mn.RATIONAL, None, (461, 0, 335, 0, 1, 1, 1, 1))]
    )
    files["jpeg-makernote-pentax-white-point-truncated.jpg"] = lambda: mn.pentax(
        [(0x0201, mn.SHORT, None, (12736,))]
    )
    files["jpeg-makernote-pentax-white-point-text.jpg"] = lambda: mn.pentax(
        [(0x0201, mn.ASCII, None, "white")]
    )
    files["jpeg-makernote-samsung-black-above-levels.jpg"] = lambda: mn.samsung(black=(5000,) * 4)
    files["jpeg-makernote-entry-count-65535.jpg"] = lambda: mn.jpeg_with_exif(
        mn.exif_with_maker_note("Canon", "Canon EOS 5D", lambda _: struct.pack("<H", 0xFFFF) + b"\xff" * 64)
    )

    # ICC profiles that are garbage, or missing where needed.
    files["jpeg-icc-garbage.jpg"] = lambda: _jpeg(icc_profile=b"garbage " * 100)
    files["jpeg-icc-chunk-1-of-3-only.jpg"] = lambda: _with_segment(
        jpeg, 0xE2, b"ICC_PROFILE\0\x01\x03" + b"\0" * 200
    )
    files["jpeg-icc-header-claims-huge-size.jpg"] = lambda: _with_segment(
        jpeg, 0xE2, b"ICC_PROFILE\0\x01\x01" + struct.pack(">I", 0xFFFFFFF0) + b"\0" * 124
    )
    files["png-icc-garbage.png"] = lambda: _png(icc_profile=b"garbage " * 100)
    files["png-iccp-zlib-bomb.png"] = lambda: _png_with_chunk(
        png, _png_chunk(b"iCCP", b"bomb\0\0" + zlib.compress(b"\0" * 20_000_000, 9))
    )
    files["png-ztxt-zlib-bomb.png"] = lambda: _png_with_chunk(
        png, _png_chunk(b"zTXt", b"Comment\0\0" + zlib.compress(b"A" * 20_000_000, 9))
    )
    files["jpeg-cmyk-no-profile.jpg"] = lambda: _encode(Image.fromarray(_pixels()).convert("CMYK"), "JPEG")

    # Unusual but valid photos, and ones too small to convert.
    files["png-16-bit-rgb.png"] = lambda: _png16()
    files["png-16-bit-grey.png"] = lambda: _encode(
        Image.fromarray(_pixels()[..., 0].astype(np.uint16) * 257), "PNG"
    )
    files["png-palette-with-transparency.png"] = lambda: _palette_png()
    files["png-rgba.png"] = lambda: _encode(Image.fromarray(_pixels()).convert("RGBA"), "PNG")
    files["png-1-bit.png"] = lambda: _encode(Image.fromarray(_pixels()).convert("1"), "PNG")
    files["png-animated-2-frames.png"] = lambda: _apng()
    files["tiff-16-bit-rgb.tif"] = lambda: _tiff_file(_pixels().astype(np.uint16) * 257)
    files["tiff-3-pages.tif"] = lambda: _tiff_file(np.stack([_pixels()] * 3))
    files["jpeg-grey.jpg"] = lambda: _encode(Image.fromarray(_pixels()).convert("L"), "JPEG")
    for w, h in ((1, 1), (2, 1), (2, 2)):
        files[f"jpeg-{w}x{h}.jpg"] = lambda w=w, h=h: _jpeg(w, h)
        files[f"png-{w}x{h}.png"] = lambda w=w, h=h: _png(w, h)
        files[f"tiff-{w}x{h}.tif"] = lambda w=w, h=h: _tiff_file(_pixels(w, h))
    files["png-2000x2-thin.png"] = lambda: _png(2000, 2)

    # File names with spaces, a newline, a leading dash and an escape sequence (valid photos).
    files["name with spaces.jpg"] = lambda: jpeg
    files["name-with\nnewline.jpg"] = lambda: jpeg
    files["-name-starts-with-dash.jpg"] = lambda: jpeg
    files["name-with-\x1b[31mescape.jpg"] = lambda: jpeg
    return files


def _no_components(jpeg: bytes) -> bytes:
    at = 2
    while True:
        marker, length = struct.unpack(">HH", jpeg[at : at + 4])
        if marker == 0xFFC0:
            return jpeg[: at + 9] + b"\0" + jpeg[at + 10 :]
        at += 2 + length


def _control_character_exif(jpeg: bytes) -> bytes:
    exif = piexif.dump(
        {
            "0th": {
                piexif.ImageIFD.Make: b"\x1b]0;owned\x07\x1b[2J\x1b[31mEvil",
                piexif.ImageIFD.Model: b"Cam\r\nerror: fake line\x00\x08\x7f",
                piexif.ImageIFD.Software: b"\x1b[6n",
            }
        }
    )
    return _with_segment(jpeg, 0xE1, exif)


def _png_with_itxt_xmp(text: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", text)
    return _png(pnginfo=info)


def _png16() -> bytes:
    import imagecodecs

    return imagecodecs.png_encode(_pixels().astype(np.uint16) * 257)


def _palette_png() -> bytes:
    image = Image.fromarray(_pixels()).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    return _encode(image, "PNG", transparency=0)


def _apng() -> bytes:
    frames = [Image.fromarray(_pixels(seed=s)) for s in range(2)]
    return _encode(frames[0], "PNG", save_all=True, append_images=frames[1:])


def _special(folder: Path) -> list[Path]:
    """Things that are not regular files, under photo names."""
    made = []
    loop_a, loop_b = folder / "symlink-loop-a.jpg", folder / "symlink-loop-b.jpg"
    os.symlink(loop_b.name, loop_a)
    os.symlink(loop_a.name, loop_b)
    made += [loop_a, loop_b]
    self_loop = folder / "symlink-to-itself.jpg"
    os.symlink(self_loop.name, self_loop)
    dangling = folder / "symlink-dangling.jpg"
    os.symlink("does-not-exist.jpg", dangling)
    made += [self_loop, dangling]
    if os.path.exists("/dev/zero"):
        zero = folder / "symlink-to-dev-zero.jpg"
        os.symlink("/dev/zero", zero)
        made.append(zero)
    loop_dir = folder / "symlink-folder-to-parent"
    os.symlink(".", loop_dir)
    made.append(loop_dir)
    if hasattr(os, "mkfifo"):
        fifo = folder / "fifo.jpg"
        os.mkfifo(fifo)
        made.append(fifo)
    directory = folder / "folder-named-x.jpg"
    directory.mkdir()
    (directory / "inside-folder.jpg").write_bytes(_jpeg())
    made.append(directory)
    # A name that is not valid UTF-8 (Latin-1 "café", copied from another system).
    latin1 = os.fsencode(folder) + b"/name-caf\xe9-latin1.jpg"
    with open(latin1, "wb") as handle:
        handle.write(_jpeg())
    made.append(Path(os.fsdecode(latin1)))
    return made


def make_corpus(folder: Path) -> list[Path]:
    """Write the corpus into `folder` (created; must not hold earlier corpus files) and return the
    paths made at its top level, regular files and the rest alike."""
    folder.mkdir(parents=True, exist_ok=True)
    made = []
    for name, make in _files().items():
        path = folder / name
        path.write_bytes(make())
        made.append(path)
    return made + _special(folder)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tools/make_bad_inputs.py FOLDER", file=sys.stderr)
        return 2
    made = make_corpus(Path(argv[0]))
    print(f"{len(made)} entries written to {argv[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

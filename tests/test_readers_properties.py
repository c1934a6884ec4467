"""Issue 21, property-based: the readers of untrusted bytes (EXIF, XMP, whole photos) either return
a valid result or raise rawback's own error, never anything else, and never hang.

Derandomized, so CI sees the same examples every run; the example counts keep the file short.
"""

from __future__ import annotations

import io
import struct
import tempfile
from pathlib import Path

import numpy as np
import piexif
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from rawback.errors import RawbackError
from rawback.io.exif import ExifData, read_exif
from rawback.io.image import InputImage, read_image
from rawback.io.xmp import descriptive_xmp

SETTINGS = settings(
    max_examples=200, deadline=2000, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


def _pixels(width: int = 32, height: int = 24) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _encode(fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(_pixels()).save(buffer, fmt, **kwargs)
    return buffer.getvalue()


EXIF = piexif.dump(
    {
        "0th": {
            piexif.ImageIFD.Make: b"Canon",
            piexif.ImageIFD.Model: b"EOS",
            piexif.ImageIFD.Orientation: 6,
        },
        "Exif": {piexif.ExifIFD.ExposureTime: (1, 100), piexif.ExifIFD.ISOSpeedRatings: 200},
        "GPS": {piexif.GPSIFD.GPSLatitudeRef: b"N"},
    }
)


def _tiff() -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, _pixels(), photometric="rgb")
    return buffer.getvalue()


VALID = {
    "jpeg": _encode("JPEG", quality=80, exif=EXIF),
    "png": _encode("PNG", exif=EXIF),
    "tiff": _tiff(),
    "tiff16": None,  # filled below
}
buffer = io.BytesIO()
tifffile.imwrite(buffer, _pixels().astype(np.uint16) * 257, photometric="rgb")
VALID["tiff16"] = buffer.getvalue()

XMP = (
    b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
    b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" '
    b'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="4">'
    b'<dc:title><rdf:Alt><rdf:li xml:lang="x-default">A title</rdf:li></rdf:Alt></dc:title>'
    b"<dc:subject><rdf:Bag><rdf:li>one</rdf:li><rdf:li>two</rdf:li></rdf:Bag></dc:subject>"
    b'</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
)


@st.composite
def mutated(draw: st.DrawFn, original: bytes) -> bytes:
    """`original` with a few bytes flipped, a run inserted or removed, or cut short."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80]))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[at : at + draw(st.integers(1, 16))]
        elif op == "truncate":
            del data[at:]
    return bytes(data)


@st.composite
def exif_structures(draw: st.DrawFn) -> bytes:
    """A TIFF header and one IFD of arbitrary entries: any tag, type, count and offset."""
    order = draw(st.sampled_from(["<", ">"]))
    entries = draw(
        st.lists(
            st.tuples(
                st.sampled_from([271, 272, 274, 282, 305, 306, 34665, 34853, 40965, 33434, 34855, 37500])
                | st.integers(0, 0xFFFF),
                st.integers(0, 13),
                # Not counts in the millions: piexif then builds a struct format that long, which
                # takes seconds and gigabytes (test_exif_huge_count_is_cheap, a known bug).
                st.sampled_from([0, 1, 2, 4, 0xFFFF]) | st.integers(0, 64),
                st.sampled_from([0, 8, 0xFFFFFFF0]) | st.integers(0, 300),
            ),
            max_size=12,
        )
    )
    body = struct.pack(f"{order}H", len(entries))
    body += b"".join(struct.pack(f"{order}HHII", *entry) for entry in entries)
    magic = b"II*\0" if order == "<" else b"MM\0*"
    ifd = draw(st.sampled_from([8, 0, 0xFFFFFFF0]) | st.integers(0, 400))
    tail = draw(st.binary(max_size=200))
    return b"Exif\0\0" + magic + struct.pack(f"{order}I", ifd) + body + struct.pack(f"{order}I", 0) + tail


def test_issue_21_exif_with_a_huge_count_is_cheap() -> None:
    """piexif unpacks a SHORT/LONG/BYTE entry's count before checking it against the data: count
    0x7FFFFFFF in a 30-byte EXIF took minutes and tens of GB. read_exif checks sizes first."""
    import tracemalloc

    entry = struct.pack("<HHII", 274, 3, 0x01000000, 8)  # Orientation, SHORT, 16 M values
    data = b"Exif\0\0II*\0" + struct.pack("<IH", 8, 1) + entry + struct.pack("<I", 0)
    tracemalloc.start()
    try:
        read_exif(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10_000_000, f"{peak / 1e6:.0f} MB allocated for {len(data)} bytes of EXIF"


def without_huge_counts(data: bytes | None) -> bytes | None:
    """`data` with each IFD entry count over 65536 set to 1, walking the IFDs piexif reads: the
    known bug of test_exif_huge_count_is_cheap would otherwise take seconds per example."""
    if not data or data[6:10] not in (b"II*\0", b"MM\0*"):
        return data
    tiff = bytearray(data[6:])
    order = "<" if tiff[:2] == b"II" else ">"
    todo, seen = [struct.unpack_from(f"{order}I", tiff, 4)[0]], set()
    while todo:
        at = todo.pop()
        if at in seen or at + 2 > len(tiff):
            continue
        seen.add(at)
        (count,) = struct.unpack_from(f"{order}H", tiff, at)
        for i in range(count):
            entry = at + 2 + 12 * i
            if entry + 12 > len(tiff):
                break
            tag, _, values, field = struct.unpack_from(f"{order}HHII", tiff, entry)
            if values > 65536:
                struct.pack_into(f"{order}I", tiff, entry + 4, 1)
            if tag in (34665, 34853, 40965):  # Exif, GPS, Interop IFD pointers
                todo.append(field)
        if at + 2 + 12 * count + 4 <= len(tiff):
            todo.append(struct.unpack_from(f"{order}I", tiff, at + 2 + 12 * count)[0])
    return data[:6] + bytes(tiff)


@SETTINGS
@given(
    st.one_of(mutated(EXIF), exif_structures(), st.binary(max_size=300), st.none()).map(without_huge_counts)
)
def test_read_exif_returns_exif_data_or_raises_rawback_error(data: bytes | None) -> None:
    try:
        exif = read_exif(data)
    except RawbackError:
        return
    assert isinstance(exif, ExifData)
    assert exif.orientation in range(1, 9)


xml_pieces = st.sampled_from(
    [
        "<rdf:li>",
        "</rdf:li>",
        "<rdf:Bag>",
        "</rdf:Bag>",
        '<rdf:Description dc:x="1">',
        "</rdf:Description>",
        "<a>",
        "</a>",
        "&amp;",
        "&x;",
        "<!DOCTYPE x>",
        "<![CDATA[",
        "]]>",
        "\x00",
        "\udcff",
        '"',
        "text",
    ]
)


@SETTINGS
@given(
    st.one_of(
        mutated(XMP),
        st.lists(xml_pieces, max_size=40).map(
            lambda parts: XMP.replace(b"A title", "".join(parts).encode("utf-8", "surrogatepass"))
        ),
        st.integers(0, 3000).map(lambda n: XMP.replace(b"A title", b"<a>" * n + b"</a>" * n)),
        st.binary(max_size=300),
        st.none(),
    )
)
def test_descriptive_xmp_returns_a_packet_or_none(packet: bytes | None) -> None:
    try:
        kept = descriptive_xmp(packet)
    except RawbackError:
        return
    assert kept is None or (isinstance(kept, bytes) and kept.decode("utf-8"))


def test_valid_inputs_are_read() -> None:
    """The unmutated photos the next test starts from are valid, so its mutations are what fails."""
    with tempfile.TemporaryDirectory() as folder:
        for kind, data in VALID.items():
            path = Path(folder) / f"photo.{'jpg' if kind == 'jpeg' else kind[:4]}"
            path.write_bytes(data)
            assert read_image(path).rgb.shape == (24, 32, 3)
    assert read_exif(EXIF).orientation == 6
    assert descriptive_xmp(XMP) is not None


@pytest.mark.parametrize("kind", list(VALID))
def test_read_image_on_mutated_photos_returns_an_image_or_raises_input_error(kind: str) -> None:
    suffix = {"jpeg": ".jpg", "png": ".png"}.get(kind, ".tif")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"photo{suffix}"

        @SETTINGS
        @given(mutated(VALID[kind]))
        def check(data: bytes) -> None:
            path.write_bytes(data)
            try:
                image = read_image(path)
            except RawbackError:
                return
            assert isinstance(image, InputImage)
            assert image.rgb.ndim == 3 and image.rgb.shape[2] == 3 and min(image.rgb.shape[:2]) >= 2
            assert np.isfinite(image.rgb).all()

        check()

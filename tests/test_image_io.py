"""read_image: formats, bit depths, greyscale/palette/CMYK, ICC profiles, orientation, bad inputs.

Every input is made here. The ICC profiles are written byte by byte (ICC v2: header + tag table),
so the colour tests never depend on profile files being installed.
"""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import imagecodecs
import numpy as np
import piexif
import pytest
import tifffile
from PIL import Image, ImageCms

from rawback.errors import InputError
from rawback.io import icc as icc_module
from rawback.io.image import IMAGE_SUFFIXES, MAX_PIXELS, InputImage, read_image

# --- ICC profiles, made from first principles ------------------------------------------------------

D50 = np.array([0.9642, 1.0, 0.8249])
D65 = (0.3127, 0.3290)
SRGB_PRIMARIES = ((0.64, 0.33), (0.30, 0.60), (0.15, 0.06))
P3_PRIMARIES = ((0.680, 0.320), (0.265, 0.690), (0.150, 0.060))
ADOBE_PRIMARIES = ((0.64, 0.33), (0.21, 0.71), (0.15, 0.06))
BRADFORD = np.array([[0.8951, 0.2664, -0.1614], [-0.7502, 1.7135, 0.0367], [0.0389, -0.0685, 1.0296]])


def srgb_decode(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def srgb_encode(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


def rgb_to_xyz(primaries, white=D65) -> np.ndarray:
    xy = np.array(primaries, dtype=np.float64)
    xyz = np.stack([xy[:, 0] / xy[:, 1], np.ones(3), (1 - xy[:, 0] - xy[:, 1]) / xy[:, 1]])
    w = np.array([white[0] / white[1], 1.0, (1 - white[0] - white[1]) / white[1]])
    return xyz * np.linalg.solve(xyz, w)


def _s15(v: float) -> bytes:
    return struct.pack(">i", round(v * 65536))


def _xyz(values) -> bytes:
    return b"XYZ \0\0\0\0" + b"".join(_s15(v) for v in values)


def _curve(trc: float | None) -> bytes:
    """'curv' tag: a pure gamma, or the sRGB curve as a 1024-entry table when None."""
    if trc is not None:
        return b"curv\0\0\0\0" + struct.pack(">IH", 1, round(trc * 256)) + b"\0\0"
    table = np.rint(srgb_decode(np.linspace(0, 1, 1024)) * 65535).astype(">u2")
    return b"curv\0\0\0\0" + struct.pack(">I", 1024) + table.tobytes()


def _icc(device_class: bytes, space: bytes, pcs: bytes, tags: dict[bytes, bytes], desc: str) -> bytes:
    text = desc.encode() + b"\0"
    tags = {
        b"desc": b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * (8 + 4 + 67),
        b"cprt": b"text\0\0\0\0public domain\0",
        b"wtpt": _xyz(D50),
        **tags,
    }
    table, body = struct.pack(">I", len(tags)), b""
    start = 128 + 4 + 12 * len(tags)
    for sig, data in tags.items():
        table += sig + struct.pack(">II", start + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    size = start + len(body)
    header = struct.pack(">I4sI4s4s4s", size, b"none", 0x02100000, device_class, space, pcs)
    header += b"\0" * 12 + b"acsp" + b"\0" * 28 + b"".join(_s15(v) for v in D50)
    return header + b"\0" * (128 - len(header)) + table + body


def matrix_icc(primaries, gamma: float | None, desc: str) -> bytes:
    """An RGB display profile: colorants adapted to D50 with Bradford, as ICC requires."""
    to_xyz = rgb_to_xyz(primaries)
    white = to_xyz.sum(axis=1)
    adapt = np.linalg.inv(BRADFORD) @ np.diag((BRADFORD @ D50) / (BRADFORD @ white)) @ BRADFORD
    columns = adapt @ to_xyz
    curve = _curve(gamma)
    tags = {b"rXYZ": _xyz(columns[:, 0]), b"gXYZ": _xyz(columns[:, 1]), b"bXYZ": _xyz(columns[:, 2])}
    tags |= {b"rTRC": curve, b"gTRC": curve, b"bTRC": curve}
    return _icc(b"mntr", b"RGB ", b"XYZ ", tags, desc)


def gray_icc(gamma: float, desc: str) -> bytes:
    return _icc(b"mntr", b"GRAY", b"XYZ ", {b"kTRC": _curve(gamma)}, desc)


# The CMYK profile's four corners that matter, as the Lab colours they print (PCS Lab, D50).
CMYK_CORNERS = {
    (0, 0, 0, 0): (100.0, 0.0, 0.0),  # paper white
    (1, 0, 0, 0): (55.0, -37.0, -50.0),  # cyan ink: far from sRGB (0, 255, 255)
    (0, 0, 0, 1): (12.0, 0.0, 0.0),  # black ink is not perfectly black
}


def cmyk_icc() -> bytes:
    """A CMYK printer profile (A2B0 lut8, 2 grid points per ink): enough for LittleCMS to convert."""
    grid = np.zeros((2, 2, 2, 2, 3))
    for c, m, y, k in np.ndindex(2, 2, 2, 2):
        lab = CMYK_CORNERS.get((c, m, y, k))
        if lab is None:  # other corners: darken multiplicatively, good enough for a test profile
            lab = (100.0 * (0.55 if c else 1) * (0.5 if m else 1) * (0.9 if y else 1) * (0.12 if k else 1),
                   0.0, 0.0)  # fmt: skip
        grid[c, m, y, k] = lab
    encoded = np.empty_like(grid)
    encoded[..., 0] = grid[..., 0] * 255 / 100
    encoded[..., 1:] = grid[..., 1:] + 128
    clut = np.clip(np.rint(encoded), 0, 255).astype(np.uint8).tobytes()
    identity = bytes(range(256))
    matrix = b"".join(_s15(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
    lut = b"mft1\0\0\0\0" + bytes([4, 3, 2, 0]) + matrix + identity * 4 + clut + identity * 3
    return _icc(b"prtr", b"CMYK", b"Lab ", {b"A2B0": lut}, "test CMYK")


SRGB_ICC = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
P3_ICC = matrix_icc(P3_PRIMARIES, None, "Display P3")
ADOBE_ICC = matrix_icc(ADOBE_PRIMARIES, 563 / 256, "Adobe RGB (1998)")


def expected_srgb(rgb8, primaries, gamma: float | None) -> np.ndarray:
    """Exact colorimetric answer in 0..255: decode, change primaries, clip, encode."""
    v = np.asarray(rgb8, dtype=np.float64) / 255
    linear = srgb_decode(v) if gamma is None else v**gamma
    matrix = np.linalg.inv(rgb_to_xyz(SRGB_PRIMARIES)) @ rgb_to_xyz(primaries)
    return srgb_encode(linear @ matrix.T) * 255


# --- helpers ---------------------------------------------------------------------------------------


def gradient(height: int = 48, width: int = 64, dtype=np.uint8) -> np.ndarray:
    top = np.iinfo(dtype).max
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x / (width - 1), y / (height - 1), (x + y) / (width + height - 2)], axis=-1)
    return np.rint(rgb * top).astype(dtype)


def save(path: Path, array: np.ndarray, **kwargs) -> Path:
    Image.fromarray(array).save(path, **kwargs)
    return path


def exif_bytes(orientation: int = 1, make: bytes = b"TestCam") -> bytes:
    return piexif.dump(
        {
            "0th": {271: make, 272: b"Model 1", 274: orientation},
            "Exif": {33434: (1, 125), 34855: 200, 36867: b"2024:05:06 07:08:09"},
        }
    )


# --- formats and bit depths ------------------------------------------------------------------------


def test_jpeg_reads_as_float_srgb_with_exif_and_bytes(tmp_path: Path) -> None:
    pixels = np.full((40, 60, 3), (200, 100, 50), dtype=np.uint8)
    path = save(tmp_path / "a.jpg", pixels, quality=98, exif=exif_bytes())
    image = read_image(path)
    assert isinstance(image, InputImage)
    assert image.rgb.dtype == np.float32 and image.rgb.shape == (40, 60, 3)
    assert np.allclose(image.rgb * 255, (200, 100, 50), atol=3)
    assert image.bit_depth == 8 and image.color_note is None
    assert image.jpeg_bytes == path.read_bytes()  # baseline
    assert image.exif.make == "TestCam" and image.exif.datetime == "2024:05:06 07:08:09"
    assert image.exif.warnings == []


def test_progressive_jpeg_has_no_baseline_bytes(tmp_path: Path) -> None:
    path = save(tmp_path / "p.jpg", gradient(), progressive=True)
    assert read_image(path).jpeg_bytes is None


def test_png_8_bit_is_exact(tmp_path: Path) -> None:
    pixels = gradient()
    image = read_image(save(tmp_path / "a.png", pixels))
    assert image.bit_depth == 8
    assert np.array_equal(np.rint(image.rgb * 255).astype(np.uint8), pixels)
    assert image.rgb.min() == 0.0 and image.rgb.max() == 1.0
    assert image.jpeg_bytes is None


def test_png_16_bit_keeps_all_16_bits(tmp_path: Path) -> None:
    pixels = gradient(dtype=np.uint16) | 1  # odd values: any truncation to 8 bits shows
    path = tmp_path / "a16.png"
    path.write_bytes(imagecodecs.png_encode(pixels))
    image = read_image(path)
    assert image.bit_depth == 16
    assert np.array_equal(np.rint(image.rgb.astype(np.float64) * 65535).astype(np.uint16), pixels)


def test_png_16_bit_rgba_drops_alpha_and_reads_late_exif(tmp_path: Path) -> None:
    pixels = np.dstack([gradient(dtype=np.uint16), np.zeros((48, 64), np.uint16)])
    png = imagecodecs.png_encode(pixels)
    # An eXIf chunk after the image data (allowed), where Pillow's header pass cannot see it.
    tiff = exif_bytes(orientation=8)[6:]
    chunk = struct.pack(">I", len(tiff)) + b"eXIf" + tiff
    chunk += struct.pack(">I", zlib.crc32(b"eXIf" + tiff))
    path = tmp_path / "late.png"
    path.write_bytes(png[:-12] + chunk + png[-12:])
    image = read_image(path)
    assert image.rgb.shape == (48, 64, 3)
    assert np.allclose(image.rgb * 65535, gradient(dtype=np.uint16), atol=0.5)
    assert image.exif.orientation == 8


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_exif_in_png_and_tiff(tmp_path: Path, suffix: str) -> None:
    image = read_image(save(tmp_path / f"e{suffix}", gradient(), exif=exif_bytes(orientation=3)))
    assert image.exif.orientation == 3 and image.exif.make == "TestCam"
    assert image.exif.exif[33434] == (1, 125) and image.exif.warnings == []


def test_tiff_8_and_16_bit(tmp_path: Path) -> None:
    pixels8 = gradient()
    tifffile.imwrite(tmp_path / "a8.tif", pixels8, photometric="rgb")
    image8 = read_image(tmp_path / "a8.tif")
    assert image8.bit_depth == 8
    assert np.array_equal(np.rint(image8.rgb * 255).astype(np.uint8), pixels8)

    pixels16 = gradient(dtype=np.uint16) | 1
    tifffile.imwrite(
        tmp_path / "a16.tif",
        pixels16,
        photometric="rgb",
        compression="zlib",
        extratags=[(271, "s", 0, "TiffCam", True), (274, "H", 1, 6, True)],
    )
    image16 = read_image(tmp_path / "a16.tif")
    assert image16.bit_depth == 16
    assert np.array_equal(np.rint(image16.rgb.astype(np.float64) * 65535).astype(np.uint16), pixels16)
    assert image16.exif.make == "TiffCam" and image16.exif.orientation == 6


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_tiff_pixels_stay_in_stored_order_whatever_the_orientation(
    tmp_path: Path, orientation: int, dtype: type
) -> None:
    """The DNG carries the Orientation tag, so the pixels must stay as stored (Pillow 13 turns an
    8-bit TIFF upright as it loads it, and the DNG then came out turned twice)."""
    pixels = np.random.default_rng(orientation).integers(0, np.iinfo(dtype).max, (48, 64, 3), dtype=dtype)
    path = tmp_path / "turned.tif"
    tifffile.imwrite(path, pixels, photometric="rgb", extratags=[(274, "H", 1, orientation, True)])
    image = read_image(path)
    assert image.exif.orientation == orientation
    scale = np.iinfo(dtype).max
    assert np.array_equal(np.rint(image.rgb.astype(np.float64) * scale).astype(dtype), pixels)


def test_tiff_16_bit_planar_and_greyscale(tmp_path: Path) -> None:
    pixels = gradient(dtype=np.uint16)
    tifffile.imwrite(
        tmp_path / "planar.tif", np.moveaxis(pixels, -1, 0), photometric="rgb", planarconfig="separate"
    )
    assert np.allclose(read_image(tmp_path / "planar.tif").rgb * 65535, pixels, atol=0.5)

    grey = pixels[..., 0]
    tifffile.imwrite(tmp_path / "grey.tif", grey, photometric="minisblack")
    image = read_image(tmp_path / "grey.tif")
    assert image.rgb.shape == (48, 64, 3) and image.bit_depth == 16
    assert np.allclose(image.rgb * 65535, grey[..., None], atol=0.5)


def test_tiff_float_is_refused(tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "f.tif", gradient().astype(np.float32) / 255, photometric="rgb")
    with pytest.raises(InputError, match="32-bit TIFF samples are not supported"):
        read_image(tmp_path / "f.tif")


# --- greyscale, palette, alpha ---------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".tif"])
def test_greyscale_expands_to_rgb(tmp_path: Path, suffix: str) -> None:
    grey = gradient()[..., 0]
    image = read_image(save(tmp_path / f"g{suffix}", grey))
    assert image.rgb.shape == (48, 64, 3)
    assert np.array_equal(image.rgb[..., 0], image.rgb[..., 2])
    assert np.allclose(image.rgb[..., 1] * 255, grey, atol=2 if suffix == ".jpg" else 0)


def test_greyscale_16_bit_png(tmp_path: Path) -> None:
    grey = gradient(dtype=np.uint16)[..., 0] | 1
    path = save(tmp_path / "g16.png", grey)  # Pillow writes mode I;16 as a 16-bit PNG
    image = read_image(path)
    assert image.bit_depth == 16
    assert np.allclose(image.rgb * 65535, grey[..., None], atol=0.5)


def test_grey_with_alpha_drops_alpha(tmp_path: Path) -> None:
    la = np.dstack([gradient()[..., 0], np.full((48, 64), 7, np.uint8)])
    image = read_image(save(tmp_path / "la.png", la))
    assert np.allclose(image.rgb[..., 1] * 255, la[..., 0], atol=0)


def test_palette_with_transparency_converts_colours(tmp_path: Path) -> None:
    palette_image = Image.new("P", (10, 8))
    palette_image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    palette_image.putdata([0, 1] * 40)
    path = tmp_path / "pal.png"
    palette_image.save(path, transparency=1)
    image = read_image(path)
    assert image.rgb.shape == (8, 10, 3)
    assert np.array_equal(image.rgb[0, 0], [1, 0, 0])
    assert np.array_equal(image.rgb[0, 1], [0, 0, 1])  # transparent entry keeps its colour


def test_rgba_alpha_is_dropped_not_composited(tmp_path: Path) -> None:
    rgba = np.dstack([gradient(), np.zeros((48, 64), np.uint8)])
    image = read_image(save(tmp_path / "rgba.png", rgba))
    assert np.array_equal(np.rint(image.rgb * 255).astype(np.uint8), rgba[..., :3])


# --- orientation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("orientation", [6, 8, 3])
def test_orientation_is_carried_not_applied(tmp_path: Path, orientation: int) -> None:
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:10, :20] = 255  # a white top-left quadrant in stored order
    path = save(tmp_path / "o.jpg", pixels, quality=100, exif=exif_bytes(orientation))
    image = read_image(path)
    assert image.rgb.shape == (20, 40, 3)  # not rotated to 40x20
    assert image.rgb[2, 2].min() > 0.9 and image.rgb[-3, -3].max() < 0.1
    assert image.exif.orientation == orientation


# --- ICC profiles ----------------------------------------------------------------------------------


def test_display_p3_is_converted_with_gamut_clipping(tmp_path: Path) -> None:
    colours = np.array([[[50, 230, 60], [0, 255, 0], [200, 100, 50], [128, 128, 128]]] * 2, np.uint8)
    path = save(tmp_path / "p3.png", colours, icc_profile=P3_ICC)
    image = read_image(path)
    want = expected_srgb(colours, P3_PRIMARIES, None)
    assert np.abs(image.rgb * 255 - want).max() < 1.0
    # A saturated P3 green is outside sRGB: red and blue clip to 0, not the raw 50 and 60.
    assert np.allclose(image.rgb[0, 0] * 255, (0, 234, 0), atol=1)
    assert image.color_note == "converted from Display P3 to sRGB"


def test_adobe_rgb_jpeg_is_converted(tmp_path: Path) -> None:
    colours = np.full((16, 16, 3), (90, 160, 70), np.uint8)
    path = save(tmp_path / "adobe.jpg", colours, quality=100, icc_profile=ADOBE_ICC)
    image = read_image(path)
    want = expected_srgb(colours[0, 0], ADOBE_PRIMARIES, 563 / 256)
    assert np.abs(image.rgb[8, 8] * 255 - want).max() < 2.5  # JPEG rounding + 8-bit transform
    assert abs(image.rgb[8, 8, 0] * 255 - 90) > 10  # really converted
    assert "Adobe RGB (1998)" in image.color_note


def test_display_p3_16_bit_keeps_16_bit_precision(tmp_path: Path) -> None:
    pixels = gradient(height=64, width=256, dtype=np.uint16)
    path = tmp_path / "p3_16.tif"
    tifffile.imwrite(path, pixels, photometric="rgb", iccprofile=P3_ICC)
    image = read_image(path)
    assert image.bit_depth == 16 and image.color_note == "converted from Display P3 to sRGB"
    want = expected_srgb(pixels / 257, P3_PRIMARIES, None) * 257  # in 16-bit units
    error = np.abs(image.rgb * 65535 - want)
    # An 8-bit transform is off by 75 units on average here (865 at worst). What remains at 16 bits
    # is the profile's own quantisation (s15Fixed16 colorants, 16-bit TRC table) where red and blue
    # nearly cancel after clipping.
    assert error.mean() < 2 and error.max() < 64
    assert len(np.unique(image.rgb[..., 1])) > 1000  # not quantised to 256 levels


def test_16_bit_falls_back_to_8_bit_when_imagecodecs_cannot(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(icc_module, "convert16", lambda *args: None)
    path = tmp_path / "p3_16.tif"
    tifffile.imwrite(path, gradient(dtype=np.uint16), photometric="rgb", iccprofile=P3_ICC)
    image = read_image(path)
    assert image.bit_depth == 8
    assert "8-bit precision" in image.color_note


# Named ids: Pillow's sRGB profile holds the time it was made, so an id made of its bytes differs
# between the processes of `pytest -n` (pytest-xdist), which then refuses to run the suite.
@pytest.mark.parametrize(
    "icc", [SRGB_ICC, matrix_icc(SRGB_PRIMARIES, None, "sRGB look-alike")], ids=["srgb", "srgb-look-alike"]
)
def test_srgb_profile_means_no_conversion(tmp_path: Path, icc: bytes) -> None:
    pixels = gradient()
    image = read_image(save(tmp_path / "s.png", pixels, icc_profile=icc))
    assert image.color_note is None
    assert np.array_equal(np.rint(image.rgb * 255).astype(np.uint8), pixels)


def test_grey_with_gamma_profile_is_converted(tmp_path: Path) -> None:
    grey = np.full((8, 8), 64, np.uint8)
    image = read_image(save(tmp_path / "g.png", grey, icc_profile=gray_icc(1.8, "Gray gamma 1.8")))
    want = srgb_encode((64 / 255) ** 1.8) * 255
    assert np.allclose(image.rgb * 255, want, atol=1.0)
    assert image.color_note == "converted from Gray gamma 1.8 to sRGB"


def test_broken_profile_is_ignored_with_a_note(tmp_path: Path) -> None:
    pixels = gradient()
    image = read_image(save(tmp_path / "b.png", pixels, icc_profile=b"\0" * 200))
    assert "unreadable" in image.color_note and image.color_note.endswith("assumed sRGB")
    assert np.array_equal(np.rint(image.rgb * 255).astype(np.uint8), pixels)


# --- CMYK ------------------------------------------------------------------------------------------


def lab_to_srgb255(lab) -> np.ndarray:
    """CIE Lab (D50) -> sRGB 0..255 with Bradford adaptation, the way LittleCMS does it."""
    big_l, a, b = lab
    fy = (big_l + 16) / 116
    f = np.array([fy + a / 500, fy, fy - b / 200])
    xyz50 = np.where(f > 6 / 29, f**3, 3 * (6 / 29) ** 2 * (f - 4 / 29)) * D50
    to_xyz = rgb_to_xyz(SRGB_PRIMARIES)
    white = to_xyz.sum(axis=1)
    adapt = np.linalg.inv(BRADFORD) @ np.diag((BRADFORD @ white) / (BRADFORD @ D50)) @ BRADFORD
    return srgb_encode(np.linalg.solve(to_xyz, adapt @ xyz50)) * 255


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_cmyk_with_profile_converts_through_it(tmp_path: Path, dtype: type) -> None:
    corners = [(0, 0, 0, 0), (1, 0, 0, 0), (0, 0, 0, 1)]
    cmyk = np.array([[np.array(c) * np.iinfo(dtype).max for c in corners]] * 2, dtype)
    path = tmp_path / "cmyk.tif"
    tifffile.imwrite(path, cmyk, photometric="separated", iccprofile=cmyk_icc())
    image = read_image(path)
    assert image.bit_depth == np.iinfo(dtype).bits
    for i, corner in enumerate(corners):
        want = lab_to_srgb255(CMYK_CORNERS[corner])
        assert np.abs(image.rgb[0, i] * 255 - want).max() < 3, corner
    assert abs(image.rgb[0, 1, 1] * 255 - 255) > 40  # not Pillow's naive cyan (0, 255, 255)
    assert image.color_note == "converted from test CMYK to sRGB"


def test_cmyk_jpeg_with_profile(tmp_path: Path) -> None:
    """Photoshop-style CMYK JPEGs store inverted inks (Adobe APP14); Pillow undoes that."""
    path = tmp_path / "cyan.jpg"
    Image.new("CMYK", (16, 16), (255, 0, 0, 0)).save(path, quality=100, icc_profile=cmyk_icc())
    want = lab_to_srgb255(CMYK_CORNERS[(1, 0, 0, 0)])
    assert np.abs(read_image(path).rgb[8, 8] * 255 - want).max() < 3


def test_grey_16_bit_with_gamma_profile_keeps_16_bits(tmp_path: Path) -> None:
    grey = (np.arange(64 * 32).reshape(32, 64) * 31).astype(np.uint16)
    path = tmp_path / "g16.tif"
    tifffile.imwrite(path, grey, photometric="minisblack", iccprofile=gray_icc(1.8, "Gray gamma 1.8"))
    image = read_image(path)
    assert image.bit_depth == 16 and image.color_note == "converted from Gray gamma 1.8 to sRGB"
    want = srgb_encode((grey / 65535) ** 1.8)
    assert np.abs(image.rgb[..., 1] - want).max() * 65535 < 24  # 8 bits would be ~128 off


def test_cmyk_jpeg_without_profile_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (16, 16), (0, 100, 200, 0)).save(path)
    with pytest.raises(InputError, match="CMYK image without an ICC profile"):
        read_image(path)


# --- bad inputs: one line naming the file and the problem ------------------------------------------


def assert_one_line_error(path: Path, match: str) -> InputError:
    with pytest.raises(InputError, match=match) as info:
        read_image(path)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(path))
    return info.value


def test_missing_file(tmp_path: Path) -> None:
    assert_one_line_error(tmp_path / "nope.jpg", "no such file")


def test_zero_byte_file(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert_one_line_error(tmp_path / "empty.jpg", "file is empty")


def test_folder(tmp_path: Path) -> None:
    (tmp_path / "dir.jpg").mkdir()
    assert_one_line_error(tmp_path / "dir.jpg", "is a folder")


def test_text_file_named_jpg(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("these are not pixels\n" * 20)
    assert_one_line_error(tmp_path / "notes.jpg", "not an image")


def test_issue_21_a_jpeg_with_a_damaged_header_is_called_damaged_not_a_non_image(tmp_path: Path) -> None:
    """A JPEG whose header Pillow cannot read was "not an image (not a JPEG, ...)", which sends
    the user looking for the wrong problem."""
    (tmp_path / "zero.jpg").write_bytes(jpeg_header_only(0, 0))
    assert_one_line_error(tmp_path / "zero.jpg", "damaged JPEG: its frame header gives 0x0 pixels$")
    (tmp_path / "cut.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    assert_one_line_error(tmp_path / "cut.jpg", "damaged JPEG: its markers lead to no frame header")


def test_a_video_named_jpg_is_named(tmp_path: Path) -> None:
    (tmp_path / "clip.jpg").write_bytes(b"\0\0\0\x18ftypmp42" + b"\0" * 100)
    assert_one_line_error(tmp_path / "clip.jpg", r"is a mp42 \(AVIF/MP4\) file")


def test_a_damaged_heic_named_jpg_is_read_as_heif(tmp_path: Path) -> None:
    pytest.importorskip("pi_heif")
    (tmp_path / "iphone.jpg").write_bytes(b"\0\0\0\x18ftypheic" + b"\0" * 100)
    assert_one_line_error(tmp_path / "iphone.jpg", "unreadable HEIF")


@pytest.mark.parametrize("progressive", [False, True])
@pytest.mark.parametrize("keep", [0.3, 0.9, -2])
def test_truncated_jpeg(tmp_path: Path, progressive: bool, keep: float) -> None:
    buffer = io.BytesIO()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(
        buffer, "JPEG", quality=90, progressive=progressive
    )
    data = buffer.getvalue()
    cut = int(len(data) * keep) if keep > 0 else len(data) + int(keep)  # -2: only EOI missing
    (tmp_path / "cut.jpg").write_bytes(data[:cut])
    assert_one_line_error(tmp_path / "cut.jpg", "truncated")


def test_truncated_png_8_and_16_bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    data8 = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)).save(data8, "PNG")
    data16 = imagecodecs.png_encode(rng.integers(0, 65536, (80, 80, 3), dtype=np.uint16))
    for name, data in (("8.png", data8.getvalue()), ("16.png", data16)):
        (tmp_path / name).write_bytes(data[: len(data) // 2])
        assert_one_line_error(tmp_path / name, "truncated or corrupt")


def test_truncated_tiff(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, gradient(dtype=np.uint16), photometric="rgb")
    data = buffer.getvalue()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) - 500])
    assert_one_line_error(tmp_path / "cut.tif", "truncated or corrupt")


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with one tiny IDAT: no huge buffer anywhere."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\0" * 16)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg_header_only(width: int, height: int) -> bytes:
    """A small real JPEG with its SOF0 size patched: decoding would need width x height pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16)).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("make", [png_header_only, jpeg_header_only])
@pytest.mark.parametrize("side", [15_000, 65_000])  # 225 MP: our check; 4 GP: Pillow's guard too
def test_absurd_dimensions_refused_before_decoding(tmp_path: Path, make, side: int) -> None:
    path = tmp_path / "huge.img"
    path.write_bytes(make(side, side))
    assert_one_line_error(path, r"MP limit")  # the header check: the pixels would not even fit


def test_huge_png_100000_pixels_square(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    path.write_bytes(png_header_only(100_000, 100_000))
    assert_one_line_error(path, "MP limit")


def test_max_pixels_argument(tmp_path: Path) -> None:
    path = save(tmp_path / "a.png", gradient())
    with pytest.raises(InputError, match=r"64x48 pixels .* MP limit"):
        read_image(path, max_pixels=1000)
    assert read_image(path, max_pixels=64 * 48).rgb.shape == (48, 64, 3)


def test_huge_tiff_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "huge.tif"
    # A 1x1 strip re-labelled as 20000x20000 in the header.
    tifffile.imwrite(path, np.zeros((1, 1, 3), np.uint8), photometric="rgb")
    data = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        for code in (256, 257):
            tag = tags[code]
            fmt = "<H" if tag.dtype == 3 else "<I"
            data[tag.valueoffset : tag.valueoffset + struct.calcsize(fmt)] = struct.pack(fmt, 20_000)
    path.write_bytes(bytes(data))
    assert_one_line_error(path, "20000x20000 pixels .* MP limit")


@pytest.mark.parametrize("size", [(1, 1), (1, 50), (50, 1)])
def test_too_small(tmp_path: Path, size: tuple[int, int]) -> None:
    path = save(tmp_path / "tiny.png", np.zeros((size[1], size[0], 3), np.uint8))
    assert_one_line_error(path, "too small")


def test_two_by_two_is_fine(tmp_path: Path) -> None:
    assert read_image(save(tmp_path / "two.png", np.zeros((2, 2, 3), np.uint8))).rgb.shape == (2, 2, 3)


def test_raw_and_dng_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "x.nef").write_bytes(b"II*\0" + b"\0" * 100)
    assert_one_line_error(tmp_path / "x.nef", "camera RAW file")
    path = tmp_path / "disguised.tif"
    tifffile.imwrite(path, np.zeros((4, 4), np.uint16), extratags=[(50706, "B", 4, (1, 4, 0, 0), True)])
    assert_one_line_error(path, "is a DNG")


# --- EXIF tolerance through read_image -------------------------------------------------------------


def test_jpeg_without_exif_warns(tmp_path: Path) -> None:
    image = read_image(save(tmp_path / "plain.jpg", gradient()))
    assert image.exif.orientation == 1 and image.exif.make is None
    assert image.exif.warnings == ["no EXIF metadata"]


def test_jpeg_with_corrupt_exif_still_reads(tmp_path: Path) -> None:
    path = save(tmp_path / "bad.jpg", gradient(), exif=b"Exif\0\0" + b"\x13" * 64)
    image = read_image(path)
    assert image.rgb.shape == (48, 64, 3)
    assert image.exif.warnings == ["EXIF is corrupt and was ignored"]


def test_jpeg_with_truncated_app1_keeps_orientation(tmp_path: Path) -> None:
    full = piexif.dump(
        {"0th": {274: 6, 271: b"Cut"}, "Exif": {37500: b"m" * 400}, "GPS": {1: b"N", 2: ((1, 1),) * 3}}
    )
    path = save(tmp_path / "cut_exif.jpg", gradient(), exif=full[:-40])  # GPS IFD cut off
    image = read_image(path)
    assert image.exif.orientation == 6 and image.exif.make == "Cut"
    assert image.exif.warnings == ["EXIF is damaged; only the readable tags were kept"]


# --- constants and speed ---------------------------------------------------------------------------


def test_suffixes_and_limit() -> None:
    assert {".jpg", ".jpeg", ".png", ".tif", ".tiff"} <= IMAGE_SUFFIXES
    assert all(s == s.lower() and s.startswith(".") for s in IMAGE_SUFFIXES)
    assert MAX_PIXELS >= 16320 * 12240  # a 200 MP phone photo is accepted


@pytest.mark.parametrize(
    ("exif_ifd", "interop"),
    [({40961: 0xFFFF}, {1: b"R03"}), ({40961: 2}, {})],  # DCF's marking, and ColorSpace 2
)
def test_an_adobe_rgb_camera_jpeg_without_a_profile_is_read_by_its_exif(
    tmp_path: Path, exif_ifd: dict, interop: dict
) -> None:
    """A camera set to Adobe RGB embeds no ICC profile; taking its pixels for sRGB would dull
    and shift every colour."""
    import imagecodecs

    srgb = gradient()
    adobe = ImageCms.applyTransform(
        Image.fromarray(srgb),
        ImageCms.buildTransform(
            ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")),
            ImageCms.ImageCmsProfile(io.BytesIO(imagecodecs.cms_profile("adobergb"))),
            "RGB",
            "RGB",
        ),
    )
    marked = piexif.dump({"0th": {271: b"Canon"}, "Exif": exif_ifd, "Interop": interop})
    as_jpeg = dict(quality=100, subsampling=0)
    image = read_image(save(tmp_path / "adobe.jpg", np.asarray(adobe), exif=marked, **as_jpeg))
    assert "Adobe RGB (1998)" in image.color_note
    # Back to the sRGB it was made from, but for rounding in Adobe RGB's pure-gamma shadows.
    assert np.abs(image.rgb * 255 - srgb).mean() < 1.0

    unmarked = piexif.dump({"0th": {271: b"Canon"}})
    plain = read_image(save(tmp_path / "plain.jpg", np.asarray(adobe), exif=unmarked, **as_jpeg))
    assert plain.color_note is None
    assert np.abs(plain.rgb * 255 - srgb).mean() > 5  # what reading it as sRGB did before
    # A PNG is a program's output: it may keep the camera's EXIF over pixels already in sRGB.
    assert read_image(save(tmp_path / "program.png", srgb, exif=marked)).color_note is None


def test_a_broken_link_is_named_as_such(tmp_path: Path) -> None:
    link = tmp_path / "photo.jpg"
    link.symlink_to(tmp_path / "gone.jpg")
    with pytest.raises(InputError, match=r"is a link to .*gone\.jpg, which does not exist"):
        read_image(link)


def test_a_multi_page_tiff_converts_its_first_page_and_says_so(tmp_path: Path) -> None:
    first = np.full((40, 50, 3), 60, np.uint8)
    with tifffile.TiffWriter(tmp_path / "scan.tif") as tiff:
        tiff.write(first, photometric="rgb")
        tiff.write(first + 100, photometric="rgb")  # a second picture
        tiff.write(first[:10, :10], photometric="rgb", subfiletype=1)  # a thumbnail: not a page
    image = read_image(tmp_path / "scan.tif")
    assert np.all(np.rint(image.rgb * 255) == 60)
    (note,) = image.notes
    assert note == "TIFF with 2 pages: converted the first (split the others into files of their own)"
    with tifffile.TiffWriter(tmp_path / "photo.tif") as tiff:
        tiff.write(first, photometric="rgb")
        tiff.write(first[:10, :10], photometric="rgb", subfiletype=1)
    assert read_image(tmp_path / "photo.tif").notes == ()


# --- issue 21: crafted tags and packets ------------------------------------------------------------


@pytest.mark.parametrize(
    ("extratag", "what"),
    [
        ((274, "s", 0, "upside down", True), "Orientation as text"),
        ((274, "H", 2, (3, 6), True), "Orientation with two values"),
        ((274, "H", 1, 99, True), "Orientation out of range"),
        ((34675, "H", 3, (1, 2, 300), True), "ICC profile typed SHORT"),
        ((34675, "I", 1, 400_000_000, True), "ICC profile typed LONG: a length, not a profile"),
        ((700, "s", 0, "<x:xmpmeta xmlns:x='adobe:ns:meta/'/>", True), "XMP typed ASCII"),
        ((700, "H", 2, (1, 2), True), "XMP typed SHORT"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_issue_21_a_tiff_with_a_mistyped_tag_reads_as_a_plain_tiff(
    tmp_path: Path, extratag, what: str
) -> None:
    """Each of these crashed the whole batch (int() of text, bytes() of a SHORT array, 435 MB
    allocated for a LONG)."""
    path = tmp_path / "crafted.tif"
    tifffile.imwrite(path, gradient(), photometric="rgb", extratags=[extratag])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = read_image(path)
    assert image.rgb.shape == (*gradient().shape[:2], 3)
    assert not caught  # Pillow's "Metadata Warning" went straight to the user's stderr
    assert image.exif.orientation in range(1, 9)


@pytest.mark.parametrize("depth", [200, 8_000, 200_000])
def test_issue_21_deeply_nested_xmp_is_dropped_not_a_crash(depth: int) -> None:
    """XMP nested 8,000 deep in a JPEG (200,000 in a PNG iTXt) raised RecursionError."""
    from rawback.io.xmp import descriptive_xmp

    inner = "<dc:title><rdf:Alt><rdf:li>deep</rdf:li></rdf:Alt></dc:title>"
    nested = "<rdf:Bag>" * depth + "<rdf:li>x</rdf:li>" + "</rdf:Bag>" * depth
    packet = (
        f"<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF xmlns:rdf='http://www.w3.org/1999/02/22-rdf-syntax-ns#'>"
        f"<rdf:Description xmlns:dc='http://purl.org/dc/elements/1.1/'>{inner}<dc:subject>{nested}</dc:subject>"
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()
    assert descriptive_xmp(packet) is None

"""HEIF/HEIC input (rawback.io.heif): orientation, bit depth, colour, metadata and errors.

The HEIC files are made here with pillow-heif's encoder (a test dependency: rawback itself reads
them with the decode-only pi-heif, the `heif` extra)."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
import rawpy
from PIL import Image

from rawback.batch import plan_folder
from rawback.convert import ConvertOptions, convert_file
from rawback.errors import InputError
from rawback.io.heif import is_heif
from rawback.io.image import read_image

pillow_heif = pytest.importorskip("pillow_heif", reason="the tests make HEIC files with pillow-heif")
pytest.importorskip("pi_heif", reason="rawback's HEIF decoder (pip install 'rawback[heif]')")


def write_heic(path: Path, pixels: np.ndarray, *, exif: Image.Exif | None = None, **options) -> Path:
    mode = "RGB;16" if pixels.dtype == np.uint16 else "RGB"
    heif = pillow_heif.from_bytes(
        mode, (pixels.shape[1], pixels.shape[0]), np.ascontiguousarray(pixels).tobytes()
    )
    buffer = io.BytesIO()
    heif.save(
        buffer, quality=-1, exif=exif.tobytes() if exif is not None else None, **options
    )  # -1: lossless
    path.write_bytes(buffer.getvalue())
    return path


def scene(height: int = 48, width: int = 64) -> np.ndarray:
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = [200, 60, 40]
    pixels[:8] = [30, 40, 220]  # a blue band along the top
    return pixels


def test_an_iphone_heic_reads_upright_with_its_exif(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # the iPhone writes the turn twice: as the HEIF's irot and in EXIF
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 15 Pro"
    photo = write_heic(tmp_path / "IMG_0001.HEIC", scene(), exif=exif)
    assert is_heif(photo.read_bytes())
    image = read_image(photo)
    assert image.exif.orientation == 1  # turned once, by libheif; the DNG must not turn it again
    assert (image.exif.make, image.exif.model) == ("Apple", "iPhone 15 Pro")
    upright = np.rot90(scene(), -1)  # orientation 6: 90 degrees clockwise to show
    assert image.rgb.shape == upright.shape and image.bit_depth == 8
    assert np.abs(image.rgb * 255 - upright).max() <= 4  # lossless RGB -> YCbCr 4:4:4 rounding
    assert image.jpeg_bytes is None and image.color_note is None


def test_a_10_bit_heic_keeps_16_bit_precision(tmp_path: Path) -> None:
    # A smooth ramp over the 1,024 codes of 10 bits (the encoder takes them in the top bits).
    codes = np.linspace(0, 1023, 64 * 48).reshape(48, 64).round().astype(np.uint16)
    ramp = np.repeat(codes[..., None], 3, axis=2)
    ramp[20:24, :4] = 1023  # full scale must stay full scale, or clipped highlights stop being clipped
    image = read_image(write_heic(tmp_path / "ten.heic", ramp << 6, chroma=444))
    assert image.bit_depth == 16
    assert len(np.unique(image.rgb)) > 256  # more than 8 bits survived
    assert np.abs(image.rgb * 1023 - ramp).mean() < 1  # within one 10-bit step
    assert image.rgb[20:24, :4].min() == 1.0 and image.rgb.min() == 0.0


def test_monochrome_and_premultiplied_alpha_heics_are_read(tmp_path: Path) -> None:
    grey = (np.linspace(0, 1023, 32 * 32).reshape(32, 32).astype(np.uint16)) << 6
    heif = pillow_heif.from_bytes("L;16", (32, 32), grey.tobytes())  # decoded as "I;16"
    heif.save(tmp_path / "grey.heic", quality=-1)
    image = read_image(tmp_path / "grey.heic")
    assert image.bit_depth == 16 and image.rgb.max() == 1.0
    assert np.array_equal(image.rgb[..., 0], image.rgb[..., 2])  # grey, expanded to RGB
    rgba = np.dstack([scene(32, 32), np.full((32, 32), 255, np.uint8)])
    pillow_heif.from_bytes("RGBa", (32, 32), rgba.tobytes()).save(tmp_path / "alpha.heic", quality=-1)
    assert read_image(tmp_path / "alpha.heic").rgb.shape == (32, 32, 3)


def test_display_p3_from_the_nclx_box_is_converted_to_srgb(tmp_path: Path) -> None:
    p3 = np.full((32, 32, 3), [150, 190, 90], np.uint8)
    photo = write_heic(
        tmp_path / "p3.heic", p3, color_primaries=12, transfer_characteristics=13, matrix_coefficients=6,
        full_range_flag=1,
    )  # fmt: skip
    image = read_image(photo)
    assert image.color_note is not None and "Display P3" in image.color_note
    # The same colour through the primaries' matrices, computed here independently of LittleCMS.
    encoded = p3[0, 0] / 255
    linear = np.where(encoded <= 0.04045, encoded / 12.92, ((encoded + 0.055) / 1.055) ** 2.4)
    srgb_linear = np.linalg.solve(_rgb_to_xyz(SRGB), _rgb_to_xyz(P3) @ linear)
    expected = np.where(
        srgb_linear <= 0.0031308, 12.92 * srgb_linear, 1.055 * srgb_linear ** (1 / 2.4) - 0.055
    )
    assert np.abs(image.rgb[16, 16] - expected).max() * 255 < 2.5


SRGB = (0.64, 0.33, 0.30, 0.60, 0.15, 0.06, 0.3127, 0.3290)
P3 = (0.680, 0.320, 0.265, 0.690, 0.150, 0.060, 0.3127, 0.3290)


def _rgb_to_xyz(primaries: tuple[float, ...]) -> np.ndarray:
    """The RGB -> XYZ matrix of these primaries and white (CIE xy), white at Y = 1."""
    rx, ry, gx, gy, bx, by, wx, wy = primaries
    columns = np.array([[x / y, 1.0, (1 - x - y) / y] for x, y in ((rx, ry), (gx, gy), (bx, by))]).T
    white = np.array([wx / wy, 1.0, (1 - wx - wy) / wy])
    return columns * np.linalg.solve(columns, white)


def test_hdr_heif_is_refused_in_one_line(tmp_path: Path) -> None:
    photo = write_heic(
        tmp_path / "hdr.hif", scene(), color_primaries=9, transfer_characteristics=16, matrix_coefficients=9,
        full_range_flag=1,
    )  # fmt: skip
    with pytest.raises(InputError, match="HDR photo \\(PQ transfer\\)"):
        read_image(photo)


def test_a_damaged_heic_is_one_line(tmp_path: Path) -> None:
    data = write_heic(tmp_path / "whole.heic", scene()).read_bytes()
    cut = tmp_path / "cut.heic"
    cut.write_bytes(data[:40])
    with pytest.raises(InputError, match="unreadable HEIF") as caught:
        read_image(cut)
    assert "\n" not in str(caught.value)


def test_without_a_decoder_the_error_says_what_to_install(tmp_path: Path, monkeypatch) -> None:
    photo = write_heic(tmp_path / "photo.heic", scene())
    monkeypatch.setitem(sys.modules, "pi_heif", None)  # import fails
    monkeypatch.setitem(sys.modules, "pillow_heif", None)
    with pytest.raises(InputError, match=r"install HEIF support: pip install 'rawback\[heif\]'"):
        read_image(photo)


def test_heic_photos_convert_and_batch_finds_them(tmp_path: Path) -> None:
    folder = tmp_path / "phone"
    folder.mkdir()
    write_heic(folder / "IMG_0001.HEIC", scene())
    write_heic(folder / "IMG_0002.heif", scene(40, 56))
    jobs = plan_folder(folder)
    assert sorted(job.output.name for job in jobs) == ["IMG_0001.dng", "IMG_0002.dng"]
    result = convert_file(folder / "IMG_0001.HEIC", tmp_path / "out.dng", ConvertOptions(method="analytic"))
    assert result.output == tmp_path / "out.dng"
    with rawpy.imread(str(tmp_path / "out.dng")) as raw:
        assert raw.raw_image_visible.shape == (48, 64)
        assert raw.sizes.flip == 0


def test_a_heic_named_jpg_is_read_as_what_it_is(tmp_path: Path) -> None:
    image = read_image(write_heic(tmp_path / "IMG_0001.jpg", scene()))  # renamed by an upload tool
    assert image.rgb.shape == (48, 64, 3) and image.jpeg_bytes is None


def test_avif_is_named_not_decoded(tmp_path: Path) -> None:
    photo = tmp_path / "photo.avif"
    photo.write_bytes(b"\0\0\0\x1cftypavif\0\0\0\0avifmif1miaf" + b"\0" * 64)
    assert not is_heif(photo.read_bytes())
    with pytest.raises(InputError, match="is a avif \\(AVIF/MP4\\) file"):
        read_image(photo)

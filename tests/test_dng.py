"""The DNG writer, checked the two ways that catch legal-but-wrong files (docs/dng-layout.md):
decode with rawpy and compare bit-exactly, and render a grey patch and check it comes out grey.
Tag types and placement are checked with tifffile, since LibRaw forgives what Adobe rejects.
"""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import piexif
import pytest
import rawpy
import tifffile

from rawback.camera import CameraProfile
from rawback.errors import OutputError
from rawback.io.dng import camera_name, write_dng
from rawback.io.exif import ExifData, read_exif
from rawback.isp import bayer, color

# Canon EOS 5D Mark II D65 matrix (the generic profile's) and GoPro HERO7's StdA/D50 pair.
MATRIX_D65 = (0.4716, 0.0603, -0.0830, -0.7798, 1.5474, 0.2480, -0.1496, 0.1937, 0.6651)
GOPRO_STDA = (1.8331, -0.8166, -0.2478, 0.1391, 0.8961, -0.0367, 0.0822, 0.0662, 0.2597)
GOPRO_D50 = (1.0344, -0.421, -0.062, -0.2315, 1.0625, 0.1948, 0.0093, 0.1058, 0.5541)
NEUTRAL = (0.52, 1.0, 0.71)  # camera RGB of the scene white, green = 1
LIBRAW_FLIP = {1: 0, 2: 1, 3: 3, 4: 2, 5: 4, 6: 6, 7: 7, 8: 5}  # EXIF orientation -> sizes.flip


def make_profile(
    pattern: str = "RGGB",
    white: int = 16383,
    black: tuple[float, float, float, float] = (512, 512, 512, 512),
    *,
    two_matrices: bool = False,
) -> CameraProfile:
    matrices = dict(color_matrix_1=MATRIX_D65, illuminant_1=color.D65)
    if two_matrices:  # like GoPro: tungsten (3) + D50 (23); LibRaw renders with the D50 one
        matrices = dict(color_matrix_1=GOPRO_STDA, illuminant_1=3, color_matrix_2=GOPRO_D50, illuminant_2=23)
    return CameraProfile(
        name=f"test-{pattern.lower()}",
        make="Testmaker",
        model="Sensor 1",
        cfa_pattern=pattern,
        black_level=black,
        white_level=white,
        bits=white.bit_length(),
        **matrices,  # type: ignore[arg-type]
    )


def random_mosaic(shape: tuple[int, int], white: int, seed: int = 0) -> np.ndarray:
    """Full-range noise: every value 0..white, so any bit lost or moved shows."""
    return np.random.default_rng(seed).integers(0, white + 1, shape).astype(np.uint16)


def grey_mosaic(profile: CameraProfile, shape: tuple[int, int], level: float) -> np.ndarray:
    """A uniform grey of `level` (0..1 of the range above black) under the light `NEUTRAL`."""
    camera_rgb = np.broadcast_to(level * np.asarray(NEUTRAL), (*shape, 3))
    signal = bayer.mosaic_rgb(camera_rgb, profile.cfa_pattern)
    black = bayer.per_site(profile.black_level, *shape)
    return np.round(black + signal * (profile.white_level - black)).astype(np.uint16)


def subifd_offsets_and_next(path: Path) -> list[tuple[int, int]]:
    """(offset, NextIFD) of each SubIFD, read from the bytes: tifffile hides NextIFD."""
    data = path.read_bytes()
    with tifffile.TiffFile(path) as tif:
        offsets = tif.pages[0].tags[330].value
    out = []
    for offset in offsets:
        (count,) = struct.unpack_from("<H", data, offset)
        (next_ifd,) = struct.unpack_from("<I", data, offset + 2 + 12 * count)
        out.append((offset, next_ifd))
    return out


# --- pixels --------------------------------------------------------------------------------------


@pytest.mark.parametrize("compression", ["ljpeg", "none"])
@pytest.mark.parametrize("white", [4095, 16383, 65535])
@pytest.mark.parametrize("pattern", bayer.PATTERNS)
def test_mosaic_round_trips_bit_exactly(tmp_path: Path, pattern: str, white: int, compression: str) -> None:
    profile = make_profile(pattern, white, black=(60, 61, 62, 63))
    mosaic = random_mosaic((301, 517), white)  # odd, several tiles, partial edge tiles
    path = tmp_path / "a.dng"
    write_dng(path, mosaic, sensor=profile.dng_sensor(), as_shot_neutral=NEUTRAL, compression=compression)

    with rawpy.imread(str(path)) as raw:
        np.testing.assert_array_equal(raw.raw_image_visible, mosaic)
        assert bayer.pattern_from_codes(raw.raw_pattern, raw.color_desc.decode()) == pattern
        assert raw.white_level == white
        # black_level_per_channel is indexed by LibRaw's colour index of each CFA site.
        sites = raw.raw_pattern.reshape(-1)
        got = [raw.black_level_per_channel[c] for c in sites]
        assert got == [60, 61, 62, 63]


@pytest.mark.parametrize("compression", ["ljpeg", "none"])
@pytest.mark.parametrize("shape", [(22, 22), (23, 300), (256, 256), (257, 513), (600, 31)])
def test_odd_and_tile_edge_sizes(tmp_path: Path, shape: tuple[int, int], compression: str) -> None:
    mosaic = random_mosaic(shape, 16383, seed=1)
    path = tmp_path / "a.dng"
    write_dng(
        path,
        mosaic,
        sensor=make_profile("GBRG").dng_sensor(),
        as_shot_neutral=NEUTRAL,
        compression=compression,
    )
    with rawpy.imread(str(path)) as raw:
        np.testing.assert_array_equal(raw.raw_image_visible, mosaic)


@pytest.mark.parametrize(
    ("width", "compression"), [(255, 1), (256, 7), (257, 1), (258, 7), (513, 1), (640, 7)]
)
def test_widths_some_reader_cannot_decode_as_tiles_are_stored_uncompressed(
    tmp_path: Path, width: int, compression: int
) -> None:
    """LibRaw wraps lossless-JPEG tile rows at the image width: a 256 px tile in a narrower
    image decodes as garbage. darktable's rawspeed refuses a last tile column one pixel wide
    (fewer pixels than the tile's 2 components). Such images are stored as one plain strip."""
    path = tmp_path / "a.dng"
    mosaic = random_mosaic((300, width), 16383)
    write_dng(path, mosaic, sensor=make_profile().dng_sensor(), as_shot_neutral=NEUTRAL, compression="ljpeg")
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].pages[0].tags["Compression"].value == compression
    with rawpy.imread(str(path)) as raw:
        np.testing.assert_array_equal(raw.raw_image_visible, mosaic)


def test_low_bit_depth_uses_eight_bit_precision(tmp_path: Path) -> None:
    profile = make_profile("GRBG", white=255, black=(0, 0, 0, 0))
    mosaic = random_mosaic((64, 300), 255)
    path = tmp_path / "a.dng"
    write_dng(path, mosaic, sensor=profile.dng_sensor(), as_shot_neutral=NEUTRAL)
    with rawpy.imread(str(path)) as raw:
        np.testing.assert_array_equal(raw.raw_image_visible, mosaic)
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].pages[0].tags["BitsPerSample"].value == 8


# --- colour and geometry metadata ----------------------------------------------------------------


def test_white_balance_is_the_reciprocal_of_the_neutral(tmp_path: Path) -> None:
    path = tmp_path / "a.dng"
    write_dng(
        path, random_mosaic((64, 64), 16383), sensor=make_profile().dng_sensor(), as_shot_neutral=NEUTRAL
    )
    with rawpy.imread(str(path)) as raw:
        multipliers = np.array(raw.camera_whitebalance[:3])
    expected = 1 / np.asarray(NEUTRAL)
    np.testing.assert_allclose(multipliers / multipliers[1], expected / expected[1], rtol=1e-5)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_reaches_libraw(tmp_path: Path, orientation: int) -> None:
    path = tmp_path / "a.dng"
    write_dng(
        path,
        random_mosaic((40, 64), 16383),
        sensor=make_profile().dng_sensor(),
        as_shot_neutral=NEUTRAL,
        orientation=orientation,
    )
    with rawpy.imread(str(path)) as raw:
        assert raw.sizes.flip == LIBRAW_FLIP[orientation]
    with tifffile.TiffFile(path) as tif:
        assert tif.pages[0].tags["Orientation"].value == orientation


@pytest.mark.parametrize("two_matrices", [False, True], ids=["one-matrix", "two-matrices"])
def test_libraw_uses_the_matrix_we_assume(tmp_path: Path, two_matrices: bool) -> None:
    profile = make_profile(two_matrices=two_matrices)
    path = tmp_path / "a.dng"
    write_dng(path, random_mosaic((64, 64), 16383), sensor=profile.dng_sensor(), as_shot_neutral=NEUTRAL)
    with rawpy.imread(str(path)) as raw:
        rgb_cam = np.asarray(raw.color_matrix)[:, :3]
    np.testing.assert_allclose(rgb_cam, profile.srgb_from_camera(), atol=1e-4)


@pytest.mark.parametrize("compression", ["ljpeg", "none"])
@pytest.mark.parametrize("two_matrices", [False, True], ids=["one-matrix", "two-matrices"])
@pytest.mark.parametrize("level", [0.05, 0.18, 0.5])
def test_grey_patch_renders_grey_at_the_expected_brightness(
    tmp_path: Path, level: float, two_matrices: bool, compression: str
) -> None:
    profile = make_profile("GRBG", two_matrices=two_matrices)
    path = tmp_path / "a.dng"
    write_dng(
        path,
        grey_mosaic(profile, (96, 128), level),
        sensor=profile.dng_sensor(),
        as_shot_neutral=NEUTRAL,
        compression=compression,
    )
    with rawpy.imread(str(path)) as raw:
        rgb = raw.postprocess(use_camera_wb=True, no_auto_bright=True, output_bps=8)
    patch = rgb[24:-24, 32:-32].reshape(-1, 3).astype(np.float64).mean(axis=0)
    assert np.ptp(patch) < 1.0, f"grey came out {patch}"
    # LibRaw scales the channel with the largest neutral (here green) to full range and applies
    # its BT.709-style curve.
    expected = 255 * color.linear_to_bt709(np.float32(level * max(NEUTRAL)))
    assert patch.mean() == pytest.approx(expected, abs=1.5)


# --- tags and layout -----------------------------------------------------------------------------


def test_tag_types_and_placement(tmp_path: Path) -> None:
    profile = make_profile("GRBG", two_matrices=True)
    preview = np.random.default_rng(0).integers(0, 256, (1500, 2000, 3), dtype=np.uint8)
    path = tmp_path / "a.dng"
    write_dng(
        path,
        random_mosaic((1500, 2000), 16383),
        sensor=profile.dng_sensor(),
        as_shot_neutral=NEUTRAL,
        preview=preview,
        camera_model="Some Camera",
    )

    with tifffile.TiffFile(path) as tif:
        ifd0 = tif.pages[0]
        tags = ifd0.tags
        assert tags["NewSubfileType"].value == 1
        assert (ifd0.imagewidth, ifd0.imagelength) == (256, 192)  # thumbnail, preview's aspect
        assert tags["DNGVersion"].value == b"\x01\x04\x00\x00"
        assert tags["DNGBackwardVersion"].value == b"\x01\x01\x00\x00"
        assert tags["DNGVersion"].dtype == tags["DNGBackwardVersion"].dtype == 1  # BYTE
        assert tags["UniqueCameraModel"].value == "rawback test-grbg"
        assert tags["Make"].value == "rawback"
        assert tags["Model"].value == "Some Camera"
        assert tags["Software"].value.startswith("rawback ")
        assert tags["SubIFDs"].dtype == 4 and tags["SubIFDs"].count == 2  # LONG, not IFD
        assert tags[34665].dtype == 4 and "ExifVersion" in tags[34665].value
        assert 34853 not in tags  # no GPS given, no GPS IFD
        assert tags["ColorMatrix1"].dtype == tags["ColorMatrix2"].dtype == 10  # SRATIONAL
        assert tags["CalibrationIlluminant1"].value == 3
        assert tags["CalibrationIlluminant2"].value == 23
        neutral = np.asarray(tags["AsShotNeutral"].value, np.float64).reshape(3, 2)
        assert tags["AsShotNeutral"].dtype == 5  # RATIONAL
        np.testing.assert_allclose(neutral[:, 0] / neutral[:, 1], NEUTRAL, rtol=1e-6)
        matrix = np.asarray(tags["ColorMatrix2"].value, np.float64).reshape(9, 2)
        np.testing.assert_allclose(matrix[:, 0] / matrix[:, 1], GOPRO_D50, rtol=1e-9)

        raw, jpeg = ifd0.pages
        rtags = raw.tags
        assert rtags["NewSubfileType"].value == 0
        assert rtags["PhotometricInterpretation"].value == 32803
        assert rtags["Compression"].value == 7 and rtags["BitsPerSample"].value == 14
        assert (rtags["TileWidth"].value, rtags["TileLength"].value) == (256, 256)
        assert rtags["CFAPattern"].dtype == 1 and rtags["CFAPattern"].value == b"\x01\x00\x02\x01"
        assert rtags["CFARepeatPatternDim"].value == (2, 2)
        assert rtags["CFAPlaneColor"].value == b"\x00\x01\x02"
        assert rtags["CFALayout"].value == 1
        assert rtags["BlackLevelRepeatDim"].value == (2, 2)
        assert rtags["BlackLevel"].value == (512, 512, 512, 512)
        assert rtags["WhiteLevel"].value == 16383

        assert jpeg.tags["NewSubfileType"].value == 1
        assert jpeg.tags["PreviewColorSpace"].value == 2
        assert (jpeg.imagewidth, jpeg.imagelength) == (1024, 768)
        assert jpeg.asarray().shape == (768, 1024, 3)

    assert [nxt for _, nxt in subifd_offsets_and_next(path)] == [0, 0]  # not chained


def test_uncompressed_is_one_sixteen_bit_strip(tmp_path: Path) -> None:
    path = tmp_path / "a.dng"
    mosaic = random_mosaic((300, 400), 4095)
    write_dng(
        path,
        mosaic,
        sensor=make_profile(white=4095, black=(64,) * 4).dng_sensor(),
        as_shot_neutral=NEUTRAL,
        compression="none",
    )
    with tifffile.TiffFile(path) as tif:
        raw = tif.pages[0].pages[0]
        assert raw.tags["Compression"].value == 1
        assert raw.tags["BitsPerSample"].value == 16
        assert len(raw.dataoffsets) == 1
        np.testing.assert_array_equal(raw.asarray(), mosaic)


def test_no_preview_gives_a_grey_thumbnail_and_one_subifd(tmp_path: Path) -> None:
    path = tmp_path / "a.dng"
    write_dng(
        path, random_mosaic((300, 400), 16383), sensor=make_profile().dng_sensor(), as_shot_neutral=NEUTRAL
    )
    with tifffile.TiffFile(path) as tif:
        thumb = tif.pages[0].asarray()
        assert thumb.shape == (192, 256, 3)
        assert np.all(thumb == 128)
        assert tif.pages[0].tags["SubIFDs"].count == 1
    assert [nxt for _, nxt in subifd_offsets_and_next(path)] == [0]


def test_writing_is_deterministic(tmp_path: Path) -> None:
    mosaic = random_mosaic((300, 400), 16383)
    preview = np.random.default_rng(0).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    for name in ("a.dng", "b.dng"):
        write_dng(
            tmp_path / name,
            mosaic,
            sensor=make_profile().dng_sensor(),
            as_shot_neutral=NEUTRAL,
            preview=preview,
            exif=ExifData(datetime="2024:05:01 12:34:56"),
        )
    assert (tmp_path / "a.dng").read_bytes() == (tmp_path / "b.dng").read_bytes()


# --- EXIF and names ------------------------------------------------------------------------------

E, G = piexif.ExifIFD, piexif.GPSIFD
SOURCE_EXIF = {
    E.ExposureTime: (1, 250),
    E.FNumber: (28, 10),
    E.ISOSpeedRatings: 400,
    E.DateTimeOriginal: "2024:05:01 12:34:56",
    E.ExposureBiasValue: (-1, 3),
    E.LensModel: "Test Lens 50mm F1.8",
    E.MakerNote: b"offsets into the old file",  # must not be copied
    E.PixelXDimension: 4000,  # describes the JPEG: must not be copied
    E.ColorSpace: 1,  # describes the JPEG: must not be copied
}
SOURCE_GPS = {
    G.GPSVersionID: (2, 3, 0, 0),
    G.GPSLatitudeRef: "N",
    G.GPSLatitude: ((52, 1), (30, 1), (1234, 100)),
    G.GPSLongitudeRef: "W",
    G.GPSLongitude: ((1, 1), (2, 1), (3, 1)),
    G.GPSAltitude: (35, 1),
}


def test_exif_and_gps_round_trip(tmp_path: Path) -> None:
    exif = ExifData(
        make="Canon",
        model="Canon PowerShot S40",
        datetime="2024:05:01 12:34:56",
        exif=dict(SOURCE_EXIF),
        gps=dict(SOURCE_GPS),
    )
    path = tmp_path / "a.dng"
    write_dng(
        path,
        random_mosaic((64, 64), 16383),
        sensor=make_profile().dng_sensor(),
        as_shot_neutral=NEUTRAL,
        exif=exif,
    )

    back = piexif.load(str(path))
    assert back["0th"][piexif.ImageIFD.Make] == b"rawback"
    assert back["0th"][piexif.ImageIFD.Model] == b"Canon PowerShot S40"
    assert back["0th"][piexif.ImageIFD.DateTime] == b"2024:05:01 12:34:56"
    got = back["Exif"]
    assert got[E.ExposureTime] == (1, 250)
    assert got[E.FNumber] == (28, 10)
    assert got[E.ISOSpeedRatings] == 400
    assert got[E.ExposureBiasValue] == (-1, 3)
    assert got[E.DateTimeOriginal] == b"2024:05:01 12:34:56"
    assert got[E.LensModel] == b"Test Lens 50mm F1.8"
    assert got[E.ExifVersion] == b"0231"
    for dropped in (E.MakerNote, E.PixelXDimension, E.ColorSpace):
        assert dropped not in got
    gps = back["GPS"]
    assert gps[G.GPSVersionID] == (2, 3, 0, 0)
    assert gps[G.GPSLatitudeRef] == b"N"
    assert gps[G.GPSLatitude] == ((52, 1), (30, 1), (1234, 100))
    assert gps[G.GPSAltitude] == (35, 1)


def test_exif_read_from_a_photo_reaches_the_dng(tmp_path: Path) -> None:
    """The EXIF reader's value forms are what the writer expects (the two modules' contract)."""
    payload = piexif.dump(
        {
            "0th": {piexif.ImageIFD.Make: b"GoPro", piexif.ImageIFD.Model: b"HERO7 Black"},
            "Exif": dict(SOURCE_EXIF) | {E.LensModel: b"Test Lens 50mm F1.8"},
            "GPS": dict(SOURCE_GPS),
        }
    )
    exif = read_exif(payload)
    path = tmp_path / "a.dng"
    write_dng(
        path,
        random_mosaic((64, 64), 16383),
        sensor=make_profile().dng_sensor(),
        as_shot_neutral=NEUTRAL,
        exif=exif,
    )
    back = piexif.load(str(path))
    assert back["0th"][piexif.ImageIFD.Model] == b"GoPro HERO7 Black"
    assert back["0th"][piexif.ImageIFD.DateTime] == b"2024:05:01 12:34:56"
    assert back["Exif"][E.ExposureTime] == (1, 250)
    assert back["Exif"][E.LensModel] == b"Test Lens 50mm F1.8"
    assert E.MakerNote not in back["Exif"]
    assert back["GPS"][G.GPSLatitude] == ((52, 1), (30, 1), (1234, 100))


def test_malformed_exif_values_are_left_out(tmp_path: Path) -> None:
    exif = ExifData(exif={E.FNumber: "f/2.8", E.ISOSpeedRatings: 100, E.ExposureTime: (1,)})
    path = tmp_path / "a.dng"
    write_dng(
        path,
        random_mosaic((64, 64), 16383),
        sensor=make_profile().dng_sensor(),
        as_shot_neutral=NEUTRAL,
        exif=exif,
    )
    got = piexif.load(str(path))["Exif"]
    assert got[E.ISOSpeedRatings] == 100
    assert E.FNumber not in got and E.ExposureTime not in got


@pytest.mark.parametrize(
    ("exif", "camera_model", "expected"),
    [
        (None, None, "Testmaker Sensor 1"),  # the profile's camera
        (ExifData(make="Canon", model="Canon PowerShot S40"), None, "Canon PowerShot S40"),
        (ExifData(make="GoPro", model="HERO7 Black"), None, "GoPro HERO7 Black"),
        (ExifData(make=None, model="iPhone"), None, "iPhone"),
        (ExifData(make="NIKON CORPORATION", model="NIKON D700"), None, "NIKON D700"),
        (
            ExifData(make="Eastman Kodak Company", model="Kodak DC120 ZOOM Digital Camera"),
            None,
            "Kodak DC120 ZOOM Digital Camera",
        ),
        (ExifData(make="Apple", model="iPhone 12"), None, "Apple iPhone 12"),
        (ExifData(make="GoPro", model="HERO7 Black"), "My Camera", "My Camera"),
    ],
)
def test_model_names_the_original_camera(
    exif: ExifData | None, camera_model: str | None, expected: str
) -> None:
    assert camera_name(make_profile().dng_sensor(), exif, camera_model) == expected


# --- errors and files ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (dict(mosaic=np.zeros((64, 64), np.float32)), "float32"),
        (dict(mosaic=np.zeros((64, 64, 3), np.uint16)), "(64, 64, 3)"),
        (dict(mosaic=np.zeros((8, 64), np.uint16)), "(8, 64)"),
        (dict(mosaic=np.full((64, 64), 16384, np.uint16)), "16384"),
        (dict(orientation=9), "9"),
        (dict(orientation=0), "0"),
        (dict(as_shot_neutral=(0.5, 0.0, 0.7)), "(0.5, 0.0, 0.7)"),
        (dict(as_shot_neutral=(0.5, 1.0)), "(0.5, 1.0)"),
        (dict(compression="deflate"), "'deflate'"),
        (dict(preview=np.zeros((64, 64), np.uint8)), "(64, 64)"),
    ],
)
def test_bad_arguments_are_named_and_nothing_is_written(tmp_path: Path, change: dict, message: str) -> None:
    args = dict(mosaic=np.zeros((64, 64), np.uint16), as_shot_neutral=NEUTRAL) | change
    mosaic = args.pop("mosaic")
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        write_dng(tmp_path / "a.dng", mosaic, sensor=make_profile().dng_sensor(), **args)
    assert list(tmp_path.iterdir()) == []


def test_refuses_to_overwrite_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "a.dng"
    first, second = random_mosaic((64, 64), 16383, 1), random_mosaic((64, 64), 16383, 2)
    write_dng(path, first, sensor=make_profile().dng_sensor(), as_shot_neutral=NEUTRAL)
    before = path.read_bytes()
    with pytest.raises(OutputError, match="already exists"):
        write_dng(path, second, sensor=make_profile().dng_sensor(), as_shot_neutral=NEUTRAL)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["a.dng"]

    write_dng(path, second, sensor=make_profile().dng_sensor(), as_shot_neutral=NEUTRAL, overwrite=True)
    with rawpy.imread(str(path)) as raw:
        np.testing.assert_array_equal(raw.raw_image_visible, second)
    assert [p.name for p in tmp_path.iterdir()] == ["a.dng"]


def test_missing_folder_gives_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        write_dng(
            tmp_path / "nope" / "a.dng",
            random_mosaic((64, 64), 16383),
            sensor=make_profile().dng_sensor(),
            as_shot_neutral=NEUTRAL,
        )


def test_parent_that_is_a_file_gives_output_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match="cannot create a file"):
        write_dng(
            tmp_path / "file" / "a.dng",
            random_mosaic((64, 64), 16383),
            sensor=make_profile().dng_sensor(),
            as_shot_neutral=NEUTRAL,
        )


def test_permission_denied_gives_output_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What an unwritable folder raises, simulated so that it also runs as root."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    with pytest.raises(OutputError, match="not writable"):
        write_dng(
            tmp_path / "a.dng",
            random_mosaic((64, 64), 16383),
            sensor=make_profile().dng_sensor(),
            as_shot_neutral=NEUTRAL,
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_folder_gives_output_error(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(OutputError, match="not writable"):
            write_dng(
                folder / "a.dng",
                random_mosaic((64, 64), 16383),
                sensor=make_profile().dng_sensor(),
                as_shot_neutral=NEUTRAL,
            )
    finally:
        folder.chmod(0o700)

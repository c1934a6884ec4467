"""read_exif, exif_from_raw and to_jpeg_exif: allow-list, tolerance, piexif value forms."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import numpy as np
import piexif
import pytest
from PIL import Image

from rawback.io.exif import EXIF_KEEP, ExifData, exif_from_raw, read_exif, to_jpeg_exif
from rawback.io.raw import RawImage

NAMES = {info["name"]: tag for tag, info in piexif.TAGS["Exif"].items()}


def camera_exif() -> dict:
    """EXIF as a phone writes it, including the tags that must not reach the DNG."""
    return {
        "0th": {271: b"Apple", 272: b"iPhone 12", 274: 6, 306: b"2023:01:02 10:00:00"},
        "Exif": {
            NAMES["ExposureTime"]: (1, 120),
            NAMES["FNumber"]: (8, 5),
            NAMES["ISOSpeedRatings"]: 64,
            NAMES["ExifVersion"]: b"0232",
            NAMES["DateTimeOriginal"]: b"2023:01:02 09:59:58",
            NAMES["OffsetTimeOriginal"]: b"+01:00",
            NAMES["ExposureBiasValue"]: (-1, 3),
            NAMES["LightSource"]: 0,
            NAMES["Flash"]: 16,
            NAMES["FocalLength"]: (42, 10),
            NAMES["SubSecTimeOriginal"]: b"123",
            NAMES["LensSpecification"]: ((42, 10), (42, 10), (8, 5), (8, 5)),
            NAMES["LensMake"]: b"Apple",
            NAMES["LensModel"]: b"iPhone 12 back camera 4.2mm f/1.6",
            # Describe the JPEG, not the capture: must be dropped.
            NAMES["MakerNote"]: b"Apple iOS\0" + b"\1" * 50,
            NAMES["PixelXDimension"]: 4032,
            NAMES["PixelYDimension"]: 3024,
            NAMES["ColorSpace"]: 1,
            NAMES["ComponentsConfiguration"]: b"\1\2\3\0",
            NAMES["CompressedBitsPerPixel"]: (3, 1),
            NAMES["CFAPattern"]: b"\0\2\0\2\0\1\1\2",
            NAMES["UserComment"]: b"ASCII\0\0\0hello",
        },
        "GPS": {
            0: (2, 2, 0, 0),
            1: b"N",
            2: ((48, 1), (51, 1), (2400, 100)),
            3: b"E",
            4: ((2, 1), (17, 1), (4000, 100)),
            5: 0,
            6: (35, 1),
        },
        "Interop": {1: b"R98"},
    }


def test_allow_list_keeps_capture_tags_and_drops_jpeg_tags() -> None:
    data = read_exif(piexif.dump(camera_exif()))
    assert data.warnings == []
    assert data.make == "Apple" and data.model == "iPhone 12" and data.orientation == 6
    assert data.datetime == "2023:01:02 09:59:58"  # DateTimeOriginal wins over DateTime
    assert data.light_source is None  # 0 = unknown
    assert data.exif[NAMES["ExposureTime"]] == (1, 120)
    assert data.exif[NAMES["ExposureBiasValue"]] == (-1, 3)
    assert data.exif[NAMES["LensSpecification"]] == ((42, 10), (42, 10), (8, 5), (8, 5))
    assert data.exif[NAMES["ExifVersion"]] == b"0232"
    for dropped in ("MakerNote", "PixelXDimension", "ColorSpace", "ComponentsConfiguration",
                    "CompressedBitsPerPixel", "CFAPattern", "UserComment"):  # fmt: skip
        assert NAMES[dropped] not in data.exif, dropped
    assert set(data.exif) <= EXIF_KEEP
    assert data.gps[2] == ((48, 1), (51, 1), (2400, 100)) and data.gps[0] == (2, 2, 0, 0)


def test_allow_list_matches_dng_doc() -> None:
    expected = {
        "ExposureTime", "FNumber", "ExposureProgram", "ISOSpeedRatings", "ExifVersion",
        "DateTimeOriginal", "DateTimeDigitized", "OffsetTime", "OffsetTimeOriginal",
        "OffsetTimeDigitized", "ShutterSpeedValue", "ApertureValue", "BrightnessValue",
        "ExposureBiasValue", "MaxApertureValue", "MeteringMode", "LightSource", "Flash",
        "FocalLength", "SubSecTime", "SubSecTimeOriginal", "SubSecTimeDigitized", "ExposureMode",
        "WhiteBalance", "FocalLengthIn35mmFilm", "SceneCaptureType", "BodySerialNumber",
        "LensSpecification", "LensMake", "LensModel",
    }  # fmt: skip
    assert {piexif.TAGS["Exif"][tag]["name"] for tag in EXIF_KEEP} == expected


def test_kept_values_round_trip_through_piexif_dump() -> None:
    """The DNG writer serialises with piexif's types: every kept value must dump and reload."""
    data = read_exif(piexif.dump(camera_exif()))
    reloaded = piexif.load(piexif.dump({"Exif": data.exif, "GPS": data.gps}))
    assert reloaded["Exif"] == data.exif
    assert reloaded["GPS"] == data.gps


def test_values_of_the_wrong_type_are_dropped() -> None:
    raw = camera_exif()
    raw["Exif"][NAMES["LightSource"]] = 21  # fine
    data = read_exif(piexif.dump(raw))
    assert data.light_source == 21
    # ISO written as LONG over 65535 by a camera cannot be written back as SHORT.
    exif_ifd = {NAMES["ISOSpeedRatings"]: 70000}
    from rawback.io import exif as exif_module

    assert exif_module._keep(exif_ifd, "Exif", EXIF_KEEP) == {}
    assert exif_module._as_piexif((-1, 3), 5) is None  # negative RATIONAL
    assert exif_module._as_piexif("text", 2) == b"text"


@pytest.mark.parametrize("data", [None, b""])
def test_missing_exif_gives_defaults_and_a_warning(data: bytes | None) -> None:
    result = read_exif(data)
    assert result == ExifData(warnings=["no EXIF metadata"])


@pytest.mark.parametrize(
    "data",
    [
        b"Exif\0\0" + b"\xde\xad" * 40,  # not a TIFF structure
        b"random bytes that might be a file name",  # piexif would try to open() this
        b"Exif\0\0II*\0\xff\xff\xff\x7f",  # IFD0 offset far past the end
        b"Exif\0\0MM\0*\0\0\0\x08\xff",  # entry count cut off
    ],
)
def test_corrupt_exif_warns_never_raises(data: bytes) -> None:
    result = read_exif(data)
    assert result.orientation == 1 and result.make is None and result.exif == {}
    assert result.warnings == ["EXIF is corrupt and was ignored"]


@pytest.mark.parametrize("cut", [10, 60, 200])
def test_truncated_exif_salvages_ifd0(cut: int) -> None:
    full = piexif.dump(camera_exif())
    result = read_exif(full[:-cut])
    assert result.warnings == ["EXIF is damaged; only the readable tags were kept"]
    assert result.orientation == 6 and result.make == "Apple"
    # Whatever survived is in piexif's forms and still dumps.
    piexif.dump({"Exif": result.exif, "GPS": result.gps})


def test_salvaged_pillow_values_become_piexif_forms() -> None:
    full = piexif.dump(camera_exif())
    result = read_exif(full[:-10])  # the GPS IFD's tail is cut: piexif gives up, Pillow does not
    assert result.exif[NAMES["ExposureTime"]] == (1, 120)
    assert result.exif[NAMES["LensSpecification"]] == ((42, 10), (42, 10), (8, 5), (8, 5))
    assert result.exif[NAMES["LensModel"]] == b"iPhone 12 back camera 4.2mm f/1.6"
    assert result.datetime == "2023:01:02 09:59:58"


@pytest.mark.parametrize("orientation", [0, 9, 300])
def test_invalid_orientation_becomes_1(orientation: int) -> None:
    raw = camera_exif()
    raw["0th"][274] = orientation
    result = read_exif(piexif.dump(raw))
    assert result.orientation == 1
    assert any("Orientation" in w for w in result.warnings)


def test_bad_dates_are_none() -> None:
    raw = camera_exif()
    raw["Exif"][NAMES["DateTimeOriginal"]] = b"0000:00:00 00:00:00"
    raw["0th"][306] = b"yesterday"
    assert read_exif(piexif.dump(raw)).datetime is None


def test_bare_tiff_structure_is_accepted() -> None:
    tiff = piexif.dump(camera_exif())[6:]
    assert read_exif(tiff).model == "iPhone 12"


def test_to_jpeg_exif_round_trips_through_pillow(tmp_path: Path) -> None:
    data = read_exif(piexif.dump(camera_exif()))
    payload = to_jpeg_exif(data)
    assert payload.startswith(b"Exif\0\0")
    path = tmp_path / "out.jpg"
    Image.new("RGB", (8, 8)).save(path, exif=payload)
    with Image.open(path) as im:
        again = read_exif(im.info["exif"])
    assert again == data


def fake_raw(**overrides) -> RawImage:
    fields = dict(
        path=Path("x.CR2"),
        make="Canon",
        model="EOS 5D",
        mosaic=np.zeros((4, 4), np.uint16),
        pattern="RGGB",
        black_level=(0.0, 0.0, 0.0, 0.0),
        white_level=4095,
        camera_neutral=None,
        daylight_neutral=None,
        color_matrix=None,
        flip=6,
        pixel_aspect=1.0,
        iso=400.0,
        exposure_time=1 / 250,
        f_number=5.6,
        focal_length=50.0,
        timestamp="2010:03:04 05:06:07",
    )
    fields.update(overrides)
    return RawImage(**fields)


def test_exif_from_raw() -> None:
    data = exif_from_raw(fake_raw())
    assert (data.make, data.model, data.orientation) == ("Canon", "EOS 5D", 6)
    assert data.datetime == "2010:03:04 05:06:07"
    assert data.exif[NAMES["ExposureTime"]] == (1, 250)
    assert data.exif[NAMES["FNumber"]] == (28, 5)
    assert data.exif[NAMES["FocalLength"]] == (50, 1)
    assert data.exif[NAMES["ISOSpeedRatings"]] == 400
    assert data.exif[NAMES["DateTimeOriginal"]] == b"2010:03:04 05:06:07"
    # It survives a JPEG round trip (the eval protocol's input).
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "JPEG", exif=to_jpeg_exif(data))
    with Image.open(buffer) as im:
        again = read_exif(im.info["exif"])
    assert again.exif == data.exif and again.make == "Canon" and again.orientation == 6


def test_exif_from_raw_skips_unknown_values() -> None:
    data = exif_from_raw(
        fake_raw(iso=0.0, exposure_time=0.0, f_number=float("nan"), focal_length=0.0, timestamp=None, flip=0)
    )
    assert set(data.exif) == {NAMES["ExifVersion"]}
    assert data.orientation == 1 and data.datetime is None
    assert exif_from_raw(fake_raw(exposure_time=30.0)).exif[NAMES["ExposureTime"]] == (30, 1)
    assert exif_from_raw(fake_raw(exposure_time=1 / 8000)).exif[NAMES["ExposureTime"]] == (1, 8000)


def test_caption_artist_and_copyright_reach_the_dng(tmp_path: Path) -> None:
    """Photographers rely on their rights notice surviving a conversion."""
    import tifffile

    from rawback.convert import ConvertOptions, convert_file

    ifd0 = {
        piexif.ImageIFD.Make: b"Canon",
        piexif.ImageIFD.Model: b"Canon PowerShot S40",
        piexif.ImageIFD.ImageDescription: "Lac Léman at dusk".encode(),
        piexif.ImageIFD.Artist: b"Jane Doe",
        piexif.ImageIFD.Copyright: b"(c) 2026 Jane Doe\0Editor Ltd",
    }
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 48), (120, 110, 100)).save(photo, exif=piexif.dump({"0th": ifd0}))
    convert_file(photo, tmp_path / "photo.dng", ConvertOptions(method="analytic"))
    with tifffile.TiffFile(tmp_path / "photo.dng") as dng:
        tags = dng.pages[0].tags
        assert tags["ImageDescription"].value == "Lac Léman at dusk"
        assert tags["Artist"].value == "Jane Doe"
        assert tags["Copyright"].value == "(c) 2026 Jane Doe; Editor Ltd"


KODAK_MODEL = b"KODAK CX7530 ZOOM DIGITAL CAMERA"  # 32 characters, as this Kodak writes them


def tiff_with_unterminated_text() -> bytes:
    """A little-endian EXIF TIFF whose Model fills its count of 32 with no terminating NUL, as
    Kodak's EasyShare cameras write it; a LensModel and a 4-byte (inline) Software the same way."""
    lens = b"KODAK AF 3X OPTICAL"  # 19 bytes, no NUL
    software = b"V5.0"  # fits in the entry itself
    make = b"EASTMAN KODAK COMPANY\0"
    ifd0_at, exif_at = 8, 8 + 2 + 5 * 12 + 4
    data_at = exif_at + 2 + 1 * 12 + 4
    make_at, model_at, lens_at = data_at, data_at + len(make), data_at + len(make) + len(KODAK_MODEL)
    ifd0 = b"".join([
        (5).to_bytes(2, "little"),
        struct.pack("<HHII", 271, 2, len(make), make_at),
        struct.pack("<HHII", 272, 2, len(KODAK_MODEL), model_at),
        struct.pack("<HHIHH", 274, 3, 1, 1, 0),
        struct.pack("<HHI4s", 305, 2, len(software), software),
        struct.pack("<HHII", 34665, 4, 1, exif_at),
        (0).to_bytes(4, "little"),
    ])  # fmt: skip
    exif = b"".join([
        (1).to_bytes(2, "little"),
        struct.pack("<HHII", NAMES["LensModel"], 2, len(lens), lens_at),
        (0).to_bytes(4, "little"),
    ])  # fmt: skip
    tiff = b"II*\0" + ifd0_at.to_bytes(4, "little") + ifd0 + exif + make + KODAK_MODEL + lens
    assert len(b"II*\0" + ifd0_at.to_bytes(4, "little") + ifd0 + exif) == data_at
    return tiff


def test_text_that_fills_its_count_keeps_its_last_character() -> None:
    """piexif reads an ASCII value of count n as n - 1 bytes; a Kodak Model of exactly 32
    characters without a NUL came out "KODAK CX7530 ZOOM DIGITAL CAMER"."""
    exif = read_exif(b"Exif\0\0" + tiff_with_unterminated_text())
    assert exif.make == "EASTMAN KODAK COMPANY"
    assert exif.model == KODAK_MODEL.decode()
    assert exif.software == ("V5.0",)
    assert exif.exif[NAMES["LensModel"]] == b"KODAK AF 3X OPTICAL"
    assert exif.warnings == []


def test_kodak_32_character_model_reaches_the_dng(tmp_path: Path) -> None:
    """The whole path the bug was seen on: JPEG -> read_image -> write_dng -> Model tag."""
    import tifffile

    from rawback.io.dng import write_dng
    from rawback.io.dng_identity import decide_identity
    from rawback.io.image import read_image
    from tests.test_dng import NEUTRAL, make_profile, random_mosaic

    jpeg = tmp_path / "kodak.jpg"
    Image.new("RGB", (64, 48), (120, 120, 120)).save(jpeg, exif=b"Exif\0\0" + tiff_with_unterminated_text())
    photo = read_image(jpeg)
    assert photo.exif.model == KODAK_MODEL.decode()
    sensor = make_profile().dng_sensor()
    for identity in (
        None,  # Make "rawback": the Model names the camera
        decide_identity(
            profile_is_known=True,
            profile_make="Kodak",
            profile_model="CX7530",
            profile_name="kodak-cx7530",
            exif_make=photo.exif.make,
            exif_model=photo.exif.model,
        ),
    ):
        path = tmp_path / f"{identity is None}.dng"
        write_dng(
            path, random_mosaic((48, 64), 16383), sensor=sensor, as_shot_neutral=NEUTRAL,
            exif=photo.exif, identity=identity,
        )  # fmt: skip
        with tifffile.TiffFile(path) as tif:
            assert tif.pages[0].tags["Model"].value == KODAK_MODEL.decode()

"""The camera library (LibRaw's colour table): naming a photo's camera as LibRaw does, the library
profiles, the order of the profile choice, and the data file's provenance."""

from __future__ import annotations

import dataclasses
import json
import sys
import tomllib
from pathlib import Path

import numpy as np
import piexif
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from rawback import camera
from rawback.camera import ProfileSource, library_profile, resolve_profile, select_profile
from rawback.camera_library import (
    LIBRARY_PREFIX,
    alternative_models,
    cameras_named,
    find_camera,
    identify,
    library_cameras,
    normalise,
)
from rawback.errors import ProfileError
from rawback.io.exif import read_exif
from tests.conftest import REPO, SHARED_DATA

COLORDATA = SHARED_DATA / "cameras" / "libraw_colordata.json"
TRUTH_JPEGS = SHARED_DATA / "jpeg"


def entry(name: str):
    found = find_camera(name)
    assert found is not None, name
    return found


# --- names ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "model", "expected"),
    [
        ("NIKON CORPORATION", "NIKON D90", ("Nikon", "D90")),
        ("NIKON", "E5700", ("Nikon", "COOLPIX 5700")),  # LibRaw's nikonalias
        ("Canon", "Canon EOS 5D Mark III", ("Canon", "EOS 5D Mark III")),
        ("Canon", "Canon EOS DIGITAL REBEL XT", ("Canon", "EOS 350D")),  # the US name
        ("Canon", "Canon EOS Kiss Digital N", ("Canon", "EOS 350D")),  # the Japanese name
        ("PENTAX Corporation ", "PENTAX *ist DL     ", ("Pentax", "*istDL")),  # EXIF's padding too
        ("RICOH IMAGING COMPANY, LTD.", "PENTAX K-3 Mark III", ("Pentax", "K-3 Mark III")),
        ("RICOH IMAGING COMPANY, LTD.", "GR III", ("Ricoh", "GR III")),
        ("OLYMPUS IMAGING CORP.", "E-M10MarkII", ("Olympus", "E-M10 Mark II")),
        ("OLYMPUS OPTICAL CO.,LTD", "C5050Z", ("Olympus", "C-5050Z")),
        ("OM Digital Solutions", "OM-1", ("Olympus", "OM-1")),
        ("EASTMAN KODAK COMPANY", "KODAK EasyShare Z981 Digital Camera     ", ("Kodak", "Z981")),
        ("Eastman Kodak Company", "Kodak DC120 ZOOM Digital Camera", ("Kodak", "DC120")),
        ("EASTMAN KODAK COMPANY", "KODAK DC5000 ZOOM DIGITAL CAMERA", ("Kodak", "DC5000")),  # not a DC50
        ("SONY", "SLT-A57", ("Sony", "SLT-A57")),
        ("FUJIFILM", "FinePix S5600", ("Fujifilm", "S5200")),
        ("SAMSUNG TECHWIN", "SAMSUNG NX10", ("Samsung", "NX10")),
        ("LEICA CAMERA AG", "V-LUX 2", ("Panasonic", "DMC-FZ100")),  # a re-badged Panasonic
        ("KONICA MINOLTA", "DYNAX 5D", ("Minolta", "DG-5D")),
        ("GoPro\0\0\0", "HERO7 Black\0\0", ("GoPro", "HERO7 Black")),
        ("Hewlett-Packard", "hp photosmart 735", ("Hewlett-Packard", "hp photosmart 735")),  # unknown maker
    ],
)
def test_names_are_normalised_as_libraw_does(make: str, model: str, expected: tuple[str, str]) -> None:
    assert normalise(make, model) == expected


def test_the_first_prefix_in_table_order_wins() -> None:
    def order(make: str, model: str) -> int:
        return next(c.order for c in library_cameras() if (c.make, c.model) == (make, model))

    # A longer prefix listed before a shorter one takes its models...
    assert order("Canon", "EOS 5D Mark II") < order("Canon", "EOS 5D")
    assert identify("Canon", "Canon EOS 5D Mark II").model == "EOS 5D Mark II"
    assert identify("Canon", "Canon EOS 5D").model == "EOS 5D"
    # ...and a shorter prefix listed first takes the longer names after it: LibRaw gives the
    # SLT-A57 the "SLT-A5" entry, as ../shared/data/jpeg/README.md records.
    assert order("Sony", "SLT-A5") < order("Sony", "SLT-A65")
    assert identify("SONY", "SLT-A57").model == "SLT-A5"
    assert identify("sony", "slt-a57") == identify("SONY", "SLT-A57")  # case ignored
    # An empty prefix matches every model of its maker.
    assert identify("Sinar", "anything").model == ""


def test_unknown_cameras_are_not_identified() -> None:
    assert identify("Apple", "iPhone XR") is None  # phones: not in the table
    assert identify("Canon", "Canon PowerShot SX150 IS") is None  # absent from LibRaw's table
    assert identify("Hewlett-Packard", "Photosmart M417") is None  # a maker LibRaw does not know
    assert identify(None, "EOS 350D") is None  # no maker, no match (as in LibRaw)


def test_maker_note_names_are_tried_after_the_exif_model() -> None:
    assert alternative_models("EOS Digital Rebel XT / 350D / Kiss Digital N") == [
        "EOS Digital Rebel XT",
        "EOS 350D",
        "EOS Kiss Digital N",
    ]
    found = identify("Canon", "Canon EOS", alt_names=["EOS Digital Rebel XT / 350D / Kiss Digital N"])
    assert found is not None and found.name == "Canon EOS 350D"
    # The EXIF model comes first when it names a camera of the table.
    assert identify("Canon", "Canon EOS 5D", alt_names=["EOS 350D"]).model == "EOS 5D"


def test_four_colour_cameras_keep_their_place_but_give_no_profile() -> None:
    g1 = identify("Canon", "Canon PowerShot G1")
    assert g1 is not None and g1.model == "PowerShot G1" and g1.xyz_to_cam is None
    assert "four-colour" in g1.unusable
    assert identify("Canon", "Canon PowerShot G1 X").model == "PowerShot G1 X"  # listed before it
    with pytest.raises(ProfileError, match="four-colour") as info:
        library_profile(g1)
    assert "\n" not in str(info.value)
    chosen = select_profile(None, "Canon", "Canon PowerShot G1")
    assert chosen.source is ProfileSource.GENERIC
    assert "LibRaw's Canon PowerShot G1, a four-colour (CMYG) sensor" in chosen.reason


@pytest.mark.shared_data
def test_the_truth_jpegs_identify_to_their_libraw_entry() -> None:
    """The 18 camera JPEGs of ../shared/data/jpeg, by the EXIF in the files themselves."""
    if not (TRUTH_JPEGS / "truth.json").is_file():
        pytest.skip(f"{TRUTH_JPEGS} not found")
    files = json.loads((TRUTH_JPEGS / "truth.json").read_text())["files"]
    assert len(files) == 18
    for item in files:
        exif = read_exif(Image.open(TRUTH_JPEGS / item["path"]).info.get("exif"))
        assert (exif.make, exif.model) == (item["make"], item["model"])
        found = identify(exif.make, exif.model)
        truth = item["libraw"]
        assert found is not None, item["path"]
        assert (found.make, found.model, found.order, found.line) == (
            truth["make"],
            truth["model_prefix"],
            truth["order"],
            truth["line"],
        ), item["path"]
        assert np.array_equal(found.xyz_to_cam, np.reshape(truth["xyz_to_cam"], -1))
        assert normalise(exif.make, exif.model) == (item["make_norm"], item["model_norm"])


# --- library profiles ----------------------------------------------------------------------------


def test_library_profile_fields_and_levels() -> None:
    rebel = library_profile(entry("Canon EOS 350D"))
    assert rebel.name == "libraw-canon-eos-350d"
    assert (rebel.make, rebel.model, rebel.cfa_pattern, rebel.illuminant_1) == (
        "Canon",
        "EOS 350D",
        "RGGB",
        21,
    )
    assert rebel.color_matrix_1 == (0.6018, -0.0617, -0.0965, -0.8645, 1.5881, 0.2975, -0.153, 0.1719, 0.7642)
    # The table's maximum 4095 -> 12 bits; no black in the table -> 1/32 of the 12-bit range.
    assert (rebel.white_level, rebel.bits, rebel.black_level) == (4095, 12, (128.0,) * 4)
    assert rebel.source == "LibRaw colour table (LibRaw @ e419de0, colordata.cpp line 111)"
    # black < 0: "use -black when the file gives none", and a synthesised file gives none.
    d750 = library_profile(entry("Nikon D750"))
    assert (d750.black_level[0], d750.white_level, d750.bits) == (600.0, 16383, 14)
    # black > 0 and a maximum: both from the table.
    imx219 = library_profile(entry("libraw-broadcom-rpi-imx219"))
    assert (imx219.black_level[0], imx219.white_level, imx219.bits) == (66.0, 1023, 10)
    # Neither: the generic profile's 14-bit levels.
    a57 = library_profile(entry("Sony SLT-A5"))
    assert (a57.black_level[0], a57.white_level, a57.bits) == (512.0, 16383, 14)
    assert a57.dng_sensor().unique_camera_model == "rawback libraw-sony-slt-a5"


def test_every_usable_entry_makes_a_valid_profile() -> None:
    cameras = library_cameras()
    assert len(cameras) == 814 and sum(c.unusable is not None for c in cameras) == 15
    slugs = {c.slug for c in cameras}
    assert len(slugs) == len(cameras)
    assert not any(name.startswith(LIBRARY_PREFIX) for name in camera.shipped_profiles())
    for cam in cameras:
        if cam.unusable is None:
            profile = library_profile(cam)
            neutral = profile.daylight_neutral()
            assert np.all(neutral > 0) and np.all(np.isfinite(neutral)), cam.name


# --- the order of the choice ---------------------------------------------------------------------


def test_the_library_comes_after_the_profiles_and_before_generic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RAWBACK_PROFILE_DIR", str(tmp_path))
    chosen = select_profile(None, "Canon", "Canon EOS DIGITAL REBEL XT")
    assert (chosen.source, chosen.profile.name) == (ProfileSource.LIBRARY, "libraw-canon-eos-350d")
    assert chosen.reason == (
        "camera profile libraw-canon-eos-350d (camera library: Canon EOS 350D, LibRaw colour table; "
        "EXIF Canon EOS DIGITAL REBEL XT)"
    )
    # The library has a PowerShot S40 too; the built-in profile wins.
    assert identify("Canon", "Canon PowerShot S40") is not None
    chosen = select_profile(None, "Canon", "Canon PowerShot S40")
    assert (chosen.source, chosen.profile.name) == (ProfileSource.BUILTIN, "canon-powershot-s40")
    assert select_profile(None, "Apple", "iPhone XR").source is ProfileSource.GENERIC
    assert select_profile(None, None, None).source is ProfileSource.GENERIC
    assert (
        select_profile("canon-powershot-g2", "Canon", "Canon EOS DIGITAL REBEL XT").source
        is ProfileSource.GIVEN
    )
    # choose_profile keeps its old form.
    assert (
        camera.choose_profile(None, "Canon", "Canon EOS DIGITAL REBEL XT")[0].name == "libraw-canon-eos-350d"
    )


def test_a_user_profile_beats_built_in_and_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAWBACK_PROFILE_DIR", str(tmp_path))
    s40 = camera.builtin_profiles()["canon-powershot-s40"]
    camera.save_profile(dataclasses.replace(s40, name="my-s40"), camera.user_folder())
    chosen = select_profile(None, "Canon", "Canon PowerShot S40")
    assert (chosen.source, chosen.profile.name) == (ProfileSource.USER, "my-s40")
    assert "user profile" in chosen.reason
    # A profile made from a 350D's CR2 says "EOS 350D" (LibRaw's name); it is found for a JPEG
    # that says "EOS Kiss Digital N", ahead of the library.
    mine = dataclasses.replace(library_profile(entry("Canon EOS 350D")), name="my-350d", source="mine")
    camera.save_profile(mine, camera.user_folder())
    chosen = select_profile(None, "Canon", "Canon EOS Kiss Digital N")
    assert (chosen.source, chosen.profile.name) == (ProfileSource.USER, "my-350d")


@pytest.mark.parametrize(
    "spec",
    ["libraw-canon-eos-350d", "Canon EOS 350D", "canon  eos 350D", "EOS 350D", "Canon EOS DIGITAL REBEL XT"],
)
def test_camera_option_takes_library_names(spec: str) -> None:
    assert resolve_profile(spec).name == "libraw-canon-eos-350d"
    chosen = select_profile(spec, "Nikon", "D90")
    assert (chosen.source, chosen.profile.name) == (ProfileSource.GIVEN, "libraw-canon-eos-350d")


def test_camera_option_prefers_profiles_and_refuses_what_it_cannot_use() -> None:
    assert resolve_profile("Canon PowerShot S40").name == "canon-powershot-s40"  # built-in first
    with pytest.raises(ProfileError, match="four-colour"):
        resolve_profile("Canon PowerShot G1")
    with pytest.raises(ProfileError, match="rawback profile list --library"):
        resolve_profile("Canon PowerShot SX150 IS")


def test_cameras_named_filters_by_name_or_profile_name() -> None:
    assert {c.make for c in cameras_named("canon")} == {"Canon"}
    assert [c.slug for c in cameras_named("libraw-nikon-d90")] == ["libraw-nikon-d90"]
    assert len(cameras_named("")) == 814


# --- the data file -------------------------------------------------------------------------------


def test_the_data_file_ships_in_the_wheel() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "data/*.json" in config["tool"]["setuptools"]["package-data"]["rawback"]
    data = json.loads((REPO / "rawback" / "data" / "camera_library.json").read_text())
    assert data["counts"]["cameras"] == 814 and data["counts"]["usable"] == 799
    assert data["libraw"]["commit"] == "e419de08001de28ae6988ecb22df47e52b9c5eaa"


@pytest.mark.shared_data
def test_the_data_file_equals_a_rebuild() -> None:
    if not COLORDATA.is_file():
        pytest.skip(f"{COLORDATA} not found")
    sys.path.insert(0, str(REPO / "tools"))
    try:
        import build_camera_library
    finally:
        sys.path.pop(0)
    rebuilt = build_camera_library.build(COLORDATA, REPO / "tools" / "libraw_names.json")
    assert rebuilt == (REPO / "rawback" / "data" / "camera_library.json").read_text()


# --- a conversion --------------------------------------------------------------------------------


def test_a_jpeg_of_a_library_camera_converts_with_its_profile(tmp_path: Path) -> None:
    from rawback.convert import ConvertOptions, convert_file

    exif = piexif.dump({"0th": {271: b"NIKON CORPORATION", 272: b"NIKON D90"}})
    rgb = np.random.default_rng(0).integers(0, 255, (64, 96, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "d90.jpg", "JPEG", quality=92, exif=exif)
    result = convert_file(tmp_path / "d90.jpg", tmp_path / "d90.dng", ConvertOptions(method="analytic"))
    assert result.profile == "libraw-nikon-d90"
    assert any(
        note.startswith("camera profile libraw-nikon-d90 (camera library: Nikon D90") for note in result.notes
    )


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40), st.lists(st.text(max_size=30), max_size=2))
def test_any_exif_text_gives_an_entry_or_none(make: str, model: str, alt_names: list[str]) -> None:
    """EXIF strings come from files: whatever they hold, identification answers and never raises."""
    found = identify(make, model, alt_names=alt_names)
    assert found is None or found in library_cameras()
    assert isinstance(normalise(make, model), tuple)
    assert find_camera(make + model) is None or find_camera(make + model) in library_cameras()

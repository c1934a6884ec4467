"""The camera identity a DNG states (rawback.io.dng_identity, docs/dng-layout.md "Make and Model"):
the decision, the tags as written, and what LibRaw does with them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rawpy
import tifffile

import rawback
from rawback.io.dng import write_dng
from rawback.io.dng_identity import RAWBACK_MAKE, DngIdentity, client_key, decide_identity
from rawback.io.dng_quirks import CROPPED_OR_REBLACKED
from rawback.io.raw import read_raw
from tests.test_dng import NEUTRAL, grey_mosaic, make_profile
from tools.build_dng_quirks import INSTALLED, changes_the_image, names, read_camconst


def decide(known: bool = True, exif: tuple[str | None, str | None] = (None, None), **kw) -> DngIdentity:
    args = dict(profile_make="Nikon", profile_model="D90", profile_name="libraw-nikon-d90")
    args.update(kw)
    return decide_identity(profile_is_known=known, exif_make=exif[0], exif_model=exif[1], **args)  # type: ignore[arg-type]


# --- the decision --------------------------------------------------------------------------------


def test_known_camera_is_named_as_its_exif_names_it() -> None:
    identity = decide(exif=("NIKON CORPORATION", "NIKON D90"))
    assert identity == DngIdentity("NIKON CORPORATION", "NIKON D90", "Nikon D90")
    assert identity.is_real


def test_unique_camera_model_is_the_exif_camera_normalised_or_the_callers_name() -> None:
    # A library profile's model is LibRaw's model prefix ("SLT-A5"): the EXIF names the camera.
    sony = dict(profile_make="Sony", profile_model="SLT-A5", profile_name="libraw-sony-slt-a5")
    assert decide(exif=("SONY", "SLT-A57"), **sony) == DngIdentity("SONY", "SLT-A57", "Sony SLT-A57")
    canon = dict(profile_make="Canon", profile_model="EOS 350D", profile_name="libraw-canon-eos-350d")
    exif = ("Canon", "Canon EOS DIGITAL REBEL XT")
    assert decide(exif=exif, **canon).unique_camera_model == "Canon EOS DIGITAL REBEL XT"
    # The caller may give LibRaw's normalised name (camera_library.normalise).
    identity = decide(exif=exif, unique_camera_model="Canon EOS 350D", **canon)
    assert identity == DngIdentity("Canon", "Canon EOS DIGITAL REBEL XT", "Canon EOS 350D")


def test_exif_strings_are_kept_whole_and_only_stripped() -> None:
    model = "KODAK CX7530 ZOOM DIGITAL CAMERA"  # 32 characters
    identity = decide(
        exif=(" EASTMAN KODAK COMPANY ", model + "  "), profile_make="Kodak", profile_model="CX7530"
    )
    assert (identity.make, identity.model) == ("EASTMAN KODAK COMPANY", model)


def test_known_camera_without_exif_names_the_profiles_camera() -> None:
    """A profile chosen with --camera for a photo whose EXIF names no camera."""
    assert decide() == DngIdentity("Nikon", "D90", "Nikon D90")


def test_a_name_the_exif_lacks_comes_from_the_profile() -> None:
    assert decide(exif=(None, "NIKON D90")) == DngIdentity("Nikon", "NIKON D90", "Nikon D90")
    assert decide(exif=("NIKON CORPORATION", None)) == DngIdentity("NIKON CORPORATION", "D90", "Nikon D90")


@pytest.mark.parametrize(
    ("exif", "model"),
    [
        (("Apple", "iPhone 12"), "Apple iPhone 12"),  # the photo's camera, named once
        (("NIKON CORPORATION", "NIKON D90"), "NIKON D90"),
        ((None, None), "rawback generic camera"),  # the profile's
    ],
)
def test_unknown_camera_keeps_make_rawback(exif: tuple[str | None, str | None], model: str) -> None:
    identity = decide(
        known=False, exif=exif, profile_make="rawback", profile_model="generic camera", profile_name="generic"
    )
    assert identity == DngIdentity(RAWBACK_MAKE, model, "rawback generic")
    assert not identity.is_real and identity.reason == ""


def test_another_cameras_profile_keeps_make_rawback() -> None:
    """--camera forced the D90's colours onto a Canon photo: neither name is true of the data."""
    identity = decide(exif=("Canon", "Canon EOS 350D DIGITAL"), exif_is_profile_camera=False)
    assert identity == DngIdentity(
        RAWBACK_MAKE, "Canon EOS 350D DIGITAL", "rawback libraw-nikon-d90", identity.reason
    )
    assert "not the Canon EOS 350D DIGITAL's" in identity.reason


@pytest.mark.parametrize(
    ("exif", "profile"),
    [
        (("Canon", "Canon EOS 5D Mark IV"), ("Canon", "EOS 5D Mark IV")),  # RawTherapee re-blacks
        (("LEICA CAMERA AG", "LEICA SL2"), ("Leica", "S")),  # LibRaw and RawTherapee crop rows
        (("Panasonic", "DMC-LX100"), ("Panasonic", "DMC-LX100")),  # LibRaw widens to 4288
        ((None, None), ("Canon", "EOS 5D Mark IV")),  # the profile's name, same rule
    ],
)
def test_cameras_whose_dngs_clients_crop_or_re_black_keep_make_rawback(
    exif: tuple[str | None, str | None], profile: tuple[str, str]
) -> None:
    identity = decide(exif=exif, profile_make=profile[0], profile_model=profile[1], profile_name="p")
    assert identity.make == RAWBACK_MAKE
    assert identity.unique_camera_model == "rawback p"
    assert "crop or re-black" in identity.reason


def test_make_rawback_model_is_not_mistaken_for_a_pentax_that_clients_crop() -> None:
    """Clients read any model starting "PENTAX" as a Pentax whatever the Make: Model "PENTAX K-S1"
    under Make "rawback" still lost 8 columns in RawTherapee."""
    exif = ("RICOH IMAGING COMPANY, LTD.", "PENTAX K-S1")
    for known in (True, False):
        identity = decide(known=known, exif=exif, profile_make="Pentax", profile_model="K-S1")
        assert identity.make == RAWBACK_MAKE
        assert identity.model == "RICOH IMAGING COMPANY, LTD. PENTAX K-S1"
        assert client_key(identity.make, identity.model) not in CROPPED_OR_REBLACKED
    assert decide(known=False, exif=("PENTAX", "PENTAX K-S1")).model == "K-S1"
    assert decide(known=False, exif=("PENTAX Corporation", "PENTAX *ist DL")).model == "PENTAX *ist DL"


@pytest.mark.parametrize(
    ("make", "model", "key"),
    [
        ("NIKON CORPORATION", "NIKON D90", "NIKON D90"),
        ("Canon", "Canon EOS 5D Mark IV", "CANON EOS 5D MARK IV"),
        ("LEICA CAMERA AG", "LEICA SL2", "LEICA SL2"),
        ("PENTAX Corporation", "PENTAX *ist DL", "PENTAX *IST DL"),
        ("RICOH IMAGING COMPANY, LTD.", "PENTAX K-3 Mark III", "PENTAX K-3 MARK III"),
        ("EASTMAN KODAK COMPANY", "KODAK EasyShare Z981 Digital Camera", "KODAK EASYSHARE Z981"),
        ("OLYMPUS IMAGING CORP.", "E-M5MarkII", "OLYMPUS E-M5MARKII"),
        ("FUJIFILM", "FinePix S5600", "FUJIFILM S5600"),
        ("SONY", "ILCE-7RM3", "SONY ILCE-7RM3"),
        ("GoPro", "HERO7 Black", "GOPRO HERO7 BLACK"),
    ],
)
def test_client_key_normalises_as_dcraw_and_rawtherapee(make: str, model: str, key: str) -> None:
    assert client_key(make, model) == key


def test_quirk_list_names_the_measured_cameras_and_spares_the_harmless_ones() -> None:
    assert {"CANON EOS 5D MARK IV", "LEICA SL2", "PANASONIC DMC-LX100"} <= CROPPED_OR_REBLACKED
    # Entries with only matrices, white levels or a crop at the origin larger than any JPEG.
    assert not {"NIKON D90", "FUJIFILM X-A5", "FUJIFILM GFX 50S", "PENTAX K-70"} & CROPPED_OR_REBLACKED
    assert all(key == " ".join(key.upper().split()) for key in CROPPED_OR_REBLACKED)


@pytest.mark.skipif(not INSTALLED.is_file(), reason="RawTherapee's camconst.json is not installed")
def test_quirk_list_covers_the_installed_rawtherapee() -> None:
    missing = (
        {
            " ".join(name.upper().split())
            for entry in read_camconst(INSTALLED)
            if changes_the_image(entry)
            for name in names(entry)
        }
        - CROPPED_OR_REBLACKED
        - {"DUMMYMAKE DUMMYMODEL"}
    )
    assert not missing, f"rebuild rawback/io/dng_quirks.py (tools/build_dng_quirks.py): {sorted(missing)}"


@pytest.mark.parametrize(
    ("entry", "changes"),
    [
        ({"make_model": "A", "masked_areas": [54, 4, 4534, 132]}, True),
        ({"make_model": "A", "raw_crop": [0, 0, 0, -18]}, True),  # LEICA SL2: 18 rows less
        ({"make_model": "A", "raw_crop": [0, 0, -36, 0]}, True),
        ({"make_model": "A", "raw_crop": [{"frame": [0, 0], "crop": [24, 34, -28, -14]}]}, True),
        # Positive sizes: no change to a DNG smaller than the camera's raw frame (measured).
        ({"make_model": "A", "raw_crop": [136, 42, 6740, 4500]}, False),
        ({"make_model": "A", "raw_crop": [0, 0, 8280, 6208]}, False),
        ({"make_model": "A", "dcraw_matrix": [1] * 9, "ranges": {"white": 16100}}, False),
    ],
)
def test_which_camconst_entries_change_a_dng(entry: dict, changes: bool) -> None:
    assert changes_the_image(entry) is changes


# --- the file ------------------------------------------------------------------------------------


def write(path: Path, identity: DngIdentity | None, shape: tuple[int, int] = (96, 128)) -> Path:
    profile = make_profile()
    write_dng(
        path, grey_mosaic(profile, shape, 0.18), sensor=profile.dng_sensor(), as_shot_neutral=NEUTRAL,
        identity=identity,
    )  # fmt: skip
    return path


def test_real_identity_tags_read_back(tmp_path: Path) -> None:
    path = write(tmp_path / "a.dng", decide(exif=("NIKON CORPORATION", "NIKON D90")))
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        assert tags["Make"].value == "NIKON CORPORATION"
        assert tags["Model"].value == "NIKON D90"
        assert tags["UniqueCameraModel"].value == "Nikon D90"
        assert tags["Software"].value == f"rawback {rawback.__version__}"


def test_libraw_reads_the_real_identity_and_renders_grey_grey(tmp_path: Path) -> None:
    path = write(tmp_path / "a.dng", decide(exif=("NIKON CORPORATION", "NIKON D90")))
    raw = read_raw(path)
    assert (raw.make, raw.model) == ("Nikon", "D90")
    with rawpy.imread(str(path)) as decoded:
        rgb = decoded.postprocess(use_camera_wb=True, no_auto_bright=True, output_bps=8)
    patch = rgb[16:-16, 16:-16].reshape(-1, 3).astype(np.float64).mean(axis=0)
    assert np.ptp(patch) < 1.0, f"grey came out {patch}"


def test_libraw_crops_a_dng_named_leica_sl2(tmp_path: Path) -> None:
    """Why LEICA SL2 is on the quirk list: LibRaw cuts 19 rows off any DNG with that name (an
    SL2's own DNGs carry garbage rows), whatever its size. If this starts failing, LibRaw changed
    and the list can be rebuilt."""
    shape = (96, 128)
    real = write(tmp_path / "sl2.dng", DngIdentity("LEICA CAMERA AG", "LEICA SL2", "Leica SL2"), shape)
    ours = write(tmp_path / "ours.dng", None, shape)
    with rawpy.imread(str(real)) as a, rawpy.imread(str(ours)) as b:
        assert (b.sizes.height, b.sizes.width) == shape
        assert (a.sizes.height, a.sizes.width) == (shape[0] - 19, shape[1])

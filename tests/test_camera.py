"""Camera profiles: built-ins, matching, extraction from RAW files, the user folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from rawback import camera
from rawback.errors import ProfileError
from tests.conftest import shared_raw_files

# The documented commands that made the built-in profiles (docs/profiles.md).
BUILTIN_SOURCES = {
    "canon-powershot-g2": "canon_g2/CRW_0304.CRW",
    "canon-powershot-s40": "canon_s40/CRW_0118.CRW",
    "canon-eos-d30": "canon_eos_d30/CRW_1446.CRW",
    "kodak-dc50": "kodak_dc50/DC0008L.KDC",
    "kodak-dc120": "kodak_dc120/P003917.KDC",
    "gopro-hero6-black": "gopro/HERO6_GOPR0024.dng",
    "gopro-hero7-black": "gopro/HERO7_GOPR9231.dng",
    "gopro-hero8-black": "gopro/HERO8_GOPR0009.dng",
    "gopro-fusion": "gopro/FUSION_GPBK7066.dng",
}


def test_builtin_profiles_load_and_derive() -> None:
    profiles = camera.builtin_profiles()
    assert set(BUILTIN_SOURCES) | {"generic"} <= set(profiles)
    for profile in profiles.values():
        neutral = profile.daylight_neutral()
        assert neutral[1] == pytest.approx(1.0)
        assert np.all(neutral > 0) and np.all(np.isfinite(neutral))
        rgb_cam = profile.srgb_from_camera()
        assert np.allclose(rgb_cam.sum(axis=1), 1.0)


def test_profile_json_round_trip() -> None:
    profile = camera.builtin_profiles()["gopro-hero8-black"]
    again = camera.CameraProfile.from_json(profile.to_json())
    assert again == profile
    assert again.color_matrix_2 is not None and again.illuminant_2 == 23


def test_two_matrix_profile_renders_with_the_matrix_nearest_d65() -> None:
    gopro = camera.builtin_profiles()["gopro-hero8-black"]
    # GoPro ships tungsten (3) and D50 (23) matrices; LibRaw renders with the D50 one.
    assert np.array_equal(gopro.rendering_matrix(), np.reshape(gopro.color_matrix_2, (3, 3)))


@pytest.mark.parametrize(
    ("make", "model", "expected"),
    [
        ("Canon", "Canon PowerShot S40", "canon-powershot-s40"),
        ("canon", "powershot  s40", "canon-powershot-s40"),
        ("GoPro", "HERO8 Black", "gopro-hero8-black"),
        ("Kodak", "DC120", "kodak-dc120"),
        # the cameras' own EXIF names (LibRaw normalises them to the line above)
        ("Eastman Kodak Company", "Kodak DC120 ZOOM Digital Camera", "kodak-dc120"),
        ("Eastman Kodak Company", "Kodak Digital Science DC50 Zoom Camera", "kodak-dc50"),
        ("Nikon", "D850", None),
        (None, None, None),
    ],
)
def test_match_by_exif(make: str | None, model: str | None, expected: str | None) -> None:
    match = camera.match_profile(make, model)
    assert (match.name if match else None) == expected


def test_choose_profile_falls_back_to_generic_and_says_why() -> None:
    profile, reason = camera.choose_profile(None, "Apple", "iPhone XR")  # a phone: not in the library
    assert profile.name == "generic"
    assert "Apple iPhone XR" in reason and "--camera" in reason
    profile, reason = camera.choose_profile("kodak-dc50", "Nikon", "D850")
    assert profile.name == "kodak-dc50" and "--camera" in reason


def test_unknown_camera_is_a_one_line_error() -> None:
    with pytest.raises(ProfileError, match="unknown camera 'no-such-camera'") as info:
        camera.resolve_profile("no-such-camera")
    assert "\n" not in str(info.value)


def test_bad_profile_values_are_refused() -> None:
    generic = camera.builtin_profiles()["generic"]
    with pytest.raises(ProfileError, match="white level"):
        dataclasses.replace(generic, white_level=100)
    with pytest.raises(ValueError, match="CFA pattern"):
        dataclasses.replace(generic, cfa_pattern="RGBW")
    with pytest.raises(ProfileError, match="not a valid camera profile"):
        camera.CameraProfile.from_json('{"name": "x"}')


def test_user_profiles_are_found_and_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAWBACK_PROFILE_DIR", str(tmp_path))
    mine = dataclasses.replace(camera.builtin_profiles()["generic"], name="my-camera", model="Mine 1")
    saved = camera.save_profile(mine, camera.user_folder())
    assert saved == tmp_path / "my-camera.json"
    assert camera.resolve_profile("my-camera") == mine
    assert camera.resolve_profile(str(saved)) == mine
    assert camera.match_profile("rawback", "Mine 1") == mine
    with pytest.raises(Exception, match="already exists"):
        camera.save_profile(mine, camera.user_folder())


def test_a_user_profile_of_a_builtin_camera_is_matched_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A profile saved under another name (say, with the camera's measured tone curve) is the one
    that camera's photos get from their EXIF, ahead of the built-in profile."""
    monkeypatch.setenv("RAWBACK_PROFILE_DIR", str(tmp_path))
    s40 = camera.builtin_profiles()["canon-powershot-s40"]
    assert camera.match_profile("Canon", "Canon PowerShot S40") == s40
    mine = dataclasses.replace(s40, name="my-s40", tone_curve=(-0.5, -0.3))
    camera.save_profile(mine, camera.user_folder())
    assert camera.match_profile("Canon", "Canon PowerShot S40") == mine
    assert camera.resolve_profile("canon-powershot-s40") == s40  # still there by name


@pytest.mark.shared_data
@pytest.mark.parametrize("name", sorted(BUILTIN_SOURCES))
def test_builtin_profiles_are_reproducible(shared_raw: Path, name: str) -> None:
    """Everything but a measured finish comes from the one file (the finish, from the camera's
    other files, is checked by test_cli's test_documented_profile_add_reproduces_builtin)."""
    extracted = camera.profile_from_raw(shared_raw / BUILTIN_SOURCES[name], name=name)
    builtin = camera.builtin_profiles()[name]
    notes = tuple(n for n in builtin.notes if not n.startswith("tone curve:"))
    assert extracted == dataclasses.replace(builtin, tone_curve=None, saturation=None, notes=notes)


@pytest.mark.shared_data
@pytest.mark.parametrize("path", shared_raw_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_profile_extraction_from_every_shared_raw(path: Path) -> None:
    profile = camera.profile_from_raw(path)
    assert profile.make and profile.model
    assert profile.bits >= 8
    builtin = camera.match_profile(profile.make, profile.model)
    assert builtin is not None
    # The neutral is derived from the matrix, never the file's as-shot white balance, so every
    # file of a camera gives the same one.
    assert np.allclose(profile.daylight_neutral(), builtin.daylight_neutral())


def test_the_reason_names_the_exif_camera_once() -> None:
    _, reason = camera.choose_profile(None, "Canon", "Canon PowerShot S40")
    assert reason == "camera profile canon-powershot-s40 (matched EXIF Canon PowerShot S40)"
    _, reason = camera.choose_profile(None, "NIKON CORPORATION", "NIKON D750")
    assert reason == (
        "camera profile libraw-nikon-d750 (camera library: Nikon D750, LibRaw colour table; EXIF NIKON D750)"
    )
    _, reason = camera.choose_profile(None, "Hewlett-Packard", "hp photosmart 735")
    assert reason == (
        "camera profile generic (no profile for EXIF camera Hewlett-Packard hp photosmart 735, nor in the "
        "camera library; choose one with --camera)"
    )

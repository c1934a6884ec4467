"""Who the DNG says made it: the Make, Model and UniqueCameraModel tags (docs/dng-layout.md,
"Make and Model").

A DNG of a known camera (its profile came from the camera library, a built-in or user profile, or
`--camera`) carries that camera's real identity, so raw developers name the camera as its RAW files
do and apply their per-camera data (RawTherapee's camera colour profiles, lens and noise profiles).
A DNG of an unknown camera keeps Make "rawback": its colour data is the generic profile's guess.

A few cameras keep Make "rawback" although they are known: raw developers crop or re-black every
file labelled as them, DNGs included, and a DNG made from a JPEG has neither the raw frame's
margins nor its masked pixels (`dng_quirks.CROPPED_OR_REBLACKED`; measured in docs/dng-layout.md).

Plain strings in, plain strings out: the caller (rawback.convert) knows how the profile was chosen;
this module must not import rawback.camera (tests/test_layout.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from rawback.io.dng_quirks import CROPPED_OR_REBLACKED
from rawback.io.exif import camera_display_name

RAWBACK_MAKE = "rawback"  # Make of a DNG whose camera is unknown

# dcraw's (and RawTherapee 5.9's) "simplify company names": a make containing one of these
# becomes it. RawTherapee looks its camconst.json up by the simplified make and model.
_CORPORATIONS = (
    "AgfaPhoto", "Canon", "Casio", "Epson", "Fujifilm", "Mamiya", "Minolta", "Motorola", "Kodak",
    "Konica", "Leica", "Nikon", "Nokia", "Olympus", "Ricoh", "Pentax", "Phase One", "Samsung",
    "Sigma", "Sinar", "Sony", "YI",
)  # fmt: skip


@dataclass(frozen=True)
class DngIdentity:
    """The three tags that name the camera of a DNG, and why they were chosen."""

    make: str  # Make (271): what raw developers look a camera up by, with Model
    model: str  # Model (272)
    unique_camera_model: str  # UniqueCameraModel (50708): what Adobe keys camera profiles on
    reason: str = ""  # one line for convert's notes, e.g. why a known camera kept Make "rawback"

    @property
    def is_real(self) -> bool:
        return self.make != RAWBACK_MAKE


def decide_identity(
    *,
    profile_is_known: bool,
    profile_make: str,
    profile_model: str,
    profile_name: str,
    exif_make: str | None,
    exif_model: str | None,
    exif_is_profile_camera: bool = True,
    unique_camera_model: str | None = None,
) -> DngIdentity:
    """The identity a DNG states, from how its camera profile was chosen and the photo's EXIF.

    - Known camera, EXIF names it: Make and Model exactly as the camera wrote them in EXIF
      ("NIKON CORPORATION" / "NIKON D90"; the profile's make or model where EXIF lacks one), since
      rawspeed's cameras.xml, RawTherapee's camconst.json and LibRaw all look cameras up by those
      strings and each normalises them its own way. UniqueCameraModel names the same camera
      Adobe-style, "Make Model" normalised: `unique_camera_model` when given (LibRaw's name from
      the camera library, "Canon EOS 350D" for a "Canon EOS DIGITAL REBEL XT"), else the EXIF
      names simplified as dcraw does ("Nikon D90", "Sony SLT-A57", "Pentax *ist DL").
    - Known camera, EXIF names none (a profile chosen with `--camera`): the profile's make and
      model; UniqueCameraModel `unique_camera_model` or the profile's camera.
    - Unknown camera (the generic profile), a profile that is not the photo's camera
      (`exif_is_profile_camera=False`: `--camera` forced another camera's colour onto the photo),
      or a camera whose DNGs a raw developer crops or re-blacks (`CROPPED_OR_REBLACKED`): Make
      "rawback", Model the photo's camera (else the profile's), UniqueCameraModel
      "rawback <profile name>", which no real camera has.

    Parameters:
        profile_is_known: the profile describes a real camera (not the generic fallback).
        profile_make, profile_model, profile_name: the profile's fields.
        exif_make, exif_model: the photo's EXIF Make and Model; None when absent.
        exif_is_profile_camera: whether the EXIF camera is the camera the profile describes
            (True when the profile was matched from the EXIF).
        unique_camera_model: the camera's normalised name for UniqueCameraModel, if the caller
            has one (a library profile's model is LibRaw's model *prefix*, "SLT-A5" for an
            SLT-A57, so the profile's names are not used when the EXIF names the camera).
    """
    exif_make, exif_model = (exif_make or "").strip(), (exif_model or "").strip()
    profile_make, profile_model = profile_make.strip(), profile_model.strip()
    exif_names_camera = bool(exif_make or exif_model)
    profile_camera = camera_display_name(profile_make, profile_model)
    camera = camera_display_name(exif_make, exif_model) if exif_names_camera else profile_camera

    def rawback_identity(reason: str) -> DngIdentity:
        model = _unrecognised(camera, f"{exif_make} {exif_model}".strip())
        return DngIdentity(RAWBACK_MAKE, model, f"{RAWBACK_MAKE} {profile_name}", reason)

    if not profile_is_known:
        return rawback_identity("")
    if exif_names_camera and not exif_is_profile_camera:
        return rawback_identity(f'DNG Make "rawback": the colour profile is not the {camera}\'s')
    if exif_names_camera:  # the EXIF's strings; a name the camera left out is the profile's
        make, model = exif_make or profile_make, exif_model or profile_model
        unique = unique_camera_model or " ".join(simplified_name(make, model))
    else:
        make, model = profile_make, profile_model
        unique = unique_camera_model or profile_camera
    if client_key(make, model) in CROPPED_OR_REBLACKED:
        named = camera_display_name(make, model)
        return rawback_identity(f'DNG Make "rawback": raw developers crop or re-black files named {named}')
    return DngIdentity(make, model, unique.strip())


def _unrecognised(camera: str, full_name: str) -> str:
    """A Model for Make "rawback" that clients do not map back to a camera they crop or re-black.

    dcraw, LibRaw and RawTherapee take any model that starts with "PENTAX" for a Pentax whatever
    the Make, so Model "PENTAX K-S1" alone made RawTherapee cut 8 columns off. The EXIF Make in
    front ("RICOH IMAGING COMPANY, LTD. PENTAX K-S1") or, failing that, the model without its
    first word avoids that.
    """
    if client_key(RAWBACK_MAKE, camera) not in CROPPED_OR_REBLACKED:
        return camera
    ours = RAWBACK_MAKE.upper() + " "
    for candidate in (full_name, camera.partition(" ")[2]):
        if candidate and client_key(RAWBACK_MAKE, candidate).startswith(ours):
            return candidate
    return camera


def client_key(make: str, model: str) -> str:
    """ "MAKE MODEL" as RawTherapee looks a camera up in camconst.json: `simplified_name`,
    upper-cased ("NIKON CORPORATION" + "NIKON D90" -> "NIKON D90")."""
    return " ".join(" ".join(simplified_name(make, model)).upper().split())


def simplified_name(make: str, model: str) -> tuple[str, str]:
    """A camera's make and model as dcraw and RawTherapee 5.9 simplify them (dcraw.c identify():
    company names cut to one word, Kodak's and Leica's " DIGITAL CAMERA" dropped, a model that
    starts with "PENTAX" made a Pentax, the make removed from the start of the model, "FinePix "
    dropped): ("NIKON CORPORATION", "NIKON D90") -> ("Nikon", "D90"), ("LEICA CAMERA AG",
    "LEICA SL2") -> ("Leica", "SL2")."""
    make, model = make.strip(), model.strip()
    for corporation in _CORPORATIONS:
        if corporation.lower() in make.lower():
            make = corporation
    if make in ("Kodak", "Leica"):
        at = model.lower().find(" digital camera")
        at = at if at >= 0 else model.find("FILE VERSION")
        if at >= 0:
            model = model[:at]
    if model.lower().startswith("pentax"):
        make = "Pentax"
    model = model.rstrip()
    if model.lower().startswith(make.lower() + " "):
        model = model[len(make) + 1 :]
    for prefix in ("FinePix ", "Digital Camera "):
        if model.startswith(prefix):
            model = model[len(prefix) :]
    return make, model.strip()

"""Camera profiles: what the DNG writer and the inverters need to know about a camera.

A profile is a small JSON file. It holds the sensor layout (CFA pattern, levels, bit depth) and
the colour matrices with their calibration illuminants; the daylight neutral is *derived* from the
matrix, never copied from a file's as-shot white balance (that belongs to one scene and would leak
the answer into evaluations).

Built-in profiles live in `rawback/profiles/*.json`; they were made from the files in
`../shared/data` with `rawback profile add FILE --name NAME --builtin` (see docs/profiles.md).
A camera without one gets a profile made from LibRaw's colour table (rawback.camera_library,
`library_profile`); the order of the choice is in `select_profile` (docs/cameras.md).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import os
import re
from collections.abc import Sequence
from dataclasses import MISSING, asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rawback.camera_library import LibraryCamera, find_camera, identify, library_source, normalise
from rawback.errors import ProfileError
from rawback.io.exif import camera_display_name
from rawback.isp import color
from rawback.isp.bayer import check_pattern

if TYPE_CHECKING:
    from rawback.io.dng import DngSensor
    from rawback.io.raw import RawImage
GENERIC_NAME = "generic"
PROFILE_SUFFIX = ".json"
_LIST_FIELDS = ("black_level", "color_matrix_1", "color_matrix_2", "aliases", "notes", "tone_curve")


@dataclass(frozen=True)
class CameraProfile:
    """Everything rawback needs to know about one camera model."""

    name: str  # short key, e.g. "canon-powershot-s40"
    make: str  # as LibRaw/EXIF names it, e.g. "Canon"
    model: str  # e.g. "PowerShot S40"
    cfa_pattern: str  # top-left 2x2 of the visible mosaic, row-major: "RGGB", "GRBG", ...
    black_level: tuple[float, float, float, float]  # per CFA site, row-major over the 2x2 block
    white_level: int
    bits: int  # bits needed to hold white_level (e.g. 10, 12, 14)
    color_matrix_1: tuple[float, ...]  # XYZ -> camera RGB, 9 values row-major
    illuminant_1: int = color.D65  # EXIF LightSource code of color_matrix_1
    color_matrix_2: tuple[float, ...] | None = None
    illuminant_2: int | None = None
    aliases: tuple[str, ...] = ()  # other EXIF "Make Model" strings this profile matches
    source: str = ""  # where it came from, for `profile show`
    notes: tuple[str, ...] = field(default_factory=tuple)
    # The camera JPEG engine's tone curve, measured from RAW+JPEG pairs (`rawback profile curve`):
    # knot values of its inverse (rawback.isp.tone). None: not measured, and nothing is assumed.
    tone_curve: tuple[float, ...] | None = None
    # The saturation that engine adds about luminance after the curve, measured with it (1 = none).
    saturation: float | None = None
    # The program that rendered the JPEGs the finish was measured on, as rawback.provenance names
    # it (e.g. "Lightroom"); None: the camera's own JPEG engine. convert undoes the finish only for
    # photos from the same renderer.
    finish_renderer: str | None = None

    def dng_sensor(self) -> DngSensor:
        """The DNG's sensor and colour fields for a mosaic in this camera's layout."""
        from rawback.io.dng import DngSensor  # the DNG writer loads only when a DNG is written

        return DngSensor(
            cfa_pattern=self.cfa_pattern,
            black_level=self.black_level,
            white_level=self.white_level,
            bits=self.bits,
            color_matrix_1=self.color_matrix_1,
            illuminant_1=self.illuminant_1,
            color_matrix_2=self.color_matrix_2,
            illuminant_2=self.illuminant_2,
            unique_camera_model=f"rawback {self.name}",
            camera=camera_display_name(self.make, self.model),
        )

    def __post_init__(self) -> None:
        check_pattern(self.cfa_pattern)
        if len(self.black_level) != 4:
            raise ProfileError(f"profile {self.name}: black_level needs 4 values (one per CFA site)")
        if not max(self.black_level) < self.white_level <= 65535:
            raise ProfileError(f"profile {self.name}: white level {self.white_level} is not above black")
        for m in (self.color_matrix_1, self.color_matrix_2):
            if m is not None and len(m) != 9:
                raise ProfileError(f"profile {self.name}: a colour matrix needs 9 values")
        if self.tone_curve is not None and (
            len(self.tone_curve) < 2 or not np.all(np.isfinite(self.tone_curve))
        ):
            raise ProfileError(f"profile {self.name}: tone_curve needs at least 2 finite knot values")
        if self.saturation is not None and not 0.25 <= self.saturation <= 4.0:
            raise ProfileError(f"profile {self.name}: saturation must be between 0.25 and 4")
        if self.finish_renderer is not None and self.tone_curve is None:
            raise ProfileError(f"profile {self.name}: finish_renderer needs a tone_curve")

    # --- derived quantities ----------------------------------------------------------------------

    def finish_applies_to(self, renderer: str | None) -> bool:
        """Whether the measured finish is right for a photo from `renderer` (rawback.provenance's
        family, None for the camera's engine): only the renderer it was measured on made it."""
        return self.tone_curve is not None and self.finish_renderer == renderer

    def matrices(self) -> list[tuple[int, np.ndarray]]:
        out = [(self.illuminant_1, np.array(self.color_matrix_1, dtype=np.float64).reshape(3, 3))]
        if self.color_matrix_2 is not None and self.illuminant_2 is not None:
            out.append((self.illuminant_2, np.array(self.color_matrix_2, np.float64).reshape(3, 3)))
        return out

    def rendering_matrix(self) -> np.ndarray:
        """The XYZ -> camera matrix a raw developer uses for daylight scenes.

        With two matrices LibRaw (and so rawpy) takes the one whose illuminant is nearest D65; the
        inverse ISP must use the same one so that a round trip through LibRaw is consistent.
        """
        d65 = color.ILLUMINANT_CCT[color.D65]
        pairs = self.matrices()
        best = min(pairs, key=lambda p: abs(1e6 / color.ILLUMINANT_CCT.get(p[0], d65) - 1e6 / d65))
        return best[1]

    def daylight_neutral(self) -> np.ndarray:
        """Camera RGB of a D65 white, green = 1: the scene-independent white balance estimate."""
        return color.daylight_neutral(self.rendering_matrix())

    def srgb_from_camera(self) -> np.ndarray:
        """LibRaw's `rgb_cam`: white-balanced camera RGB -> linear sRGB."""
        return color.srgb_from_camera_balanced(self.rendering_matrix())

    # --- (de)serialisation -----------------------------------------------------------------------

    def to_json(self) -> str:
        data = asdict(self)
        for key in _LIST_FIELDS:
            if data[key] is not None:
                data[key] = list(data[key])
        for key in ("tone_curve", "saturation", "finish_renderer"):
            if data[key] is None:
                del data[key]  # profiles without a measured finish read and write as before
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, origin: str = "profile") -> CameraProfile:
        try:
            data = json.loads(text)
            fields = {f.name: f for f in dataclasses.fields(cls)}
            required = [n for n, f in fields.items() if f.default is MISSING and f.default_factory is MISSING]
            problems = []
            if missing := [n for n in required if n not in data]:
                problems.append(f"missing {', '.join(missing)}")
            if unknown := sorted(set(data) - set(fields)):
                problems.append(f"unknown {', '.join(unknown)}")
            if problems:
                raise ValueError("; ".join(problems))
            for key in _LIST_FIELDS:
                if data.get(key) is not None:
                    data[key] = tuple(data[key])
            return cls(**data)
        except (json.JSONDecodeError, TypeError, ValueError, AttributeError) as exc:
            raise ProfileError(f"{origin}: not a valid camera profile ({exc})") from exc


def slugify(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _normalise_camera_name(text: str) -> str:
    return " ".join(text.lower().replace("_", " ").split())


# --- built-in profiles ---------------------------------------------------------------------------


def builtin_folder() -> Path:
    return Path(str(resources.files("rawback") / "profiles"))


def user_folder() -> Path:
    """Where `rawback profile add` saves: $RAWBACK_PROFILE_DIR, else the XDG config folder."""
    if os.environ.get("RAWBACK_PROFILE_DIR"):
        return Path(os.environ["RAWBACK_PROFILE_DIR"]).expanduser()
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "rawback" / "profiles"


def builtin_profiles() -> dict[str, CameraProfile]:
    """The user's profiles, then the built-in ones: a user profile replaces a built-in of the same
    name, and comes first when a photo's EXIF camera is matched (so a profile saved by `rawback
    profile curve` under any name is the one that camera's photos get)."""
    profiles = profiles_in(user_folder())
    for name, profile in profiles_in(builtin_folder()).items():
        profiles.setdefault(name, profile)
    return profiles


def profiles_in(folder: Path) -> dict[str, CameraProfile]:
    """The profiles saved in one folder, by name (the first file of a name wins); one line when
    the folder cannot be listed."""
    try:
        paths = sorted(folder.glob(f"*{PROFILE_SUFFIX}"))
    except OSError as exc:  # e.g. `docker run --user` with another user's HOME
        raise ProfileError(
            f"{folder}: cannot read the profile folder ({exc.strerror}); fix its permissions "
            "or point RAWBACK_PROFILE_DIR to another folder"
        ) from exc
    profiles: dict[str, CameraProfile] = {}
    for path in paths:
        profile = load_profile_file(path)
        profiles.setdefault(profile.name, profile)
    return profiles


def shadowed_finish(profile: CameraProfile, make: str | None, model: str | None) -> CameraProfile | None:
    """The built-in profile of the photo's camera (its EXIF make and model) when it carries a
    measured finish and `profile`, in use instead, has none. User profiles are matched first, so
    one made by `rawback profile add` (colours only) hides the built-in S40's or G2's finish;
    convert says so rather than drop it silently."""
    if profile.tone_curve is not None:
        return None
    match = match_profile(make, model, shipped_profiles())
    return match if match is not None and match.tone_curve is not None else None


@functools.cache
def shipped_profiles() -> dict[str, CameraProfile]:
    """The built-in profiles alone, as the package ships them (user profiles can replace them)."""
    return profiles_in(builtin_folder())


def load_profile_file(path: Path) -> CameraProfile:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ProfileError(f"{path}: cannot read ({exc.strerror})") from exc
    return CameraProfile.from_json(text, origin=str(path))


def resolve_profile(spec: str) -> CameraProfile:
    """`--camera NAME|PATH`: a built-in or user profile's name, a profile JSON file, any RAW/DNG
    of the camera, a camera name as EXIF would write it, or a camera of the library (its profile
    name "libraw-canon-eos-350d" or its name "Canon EOS 350D")."""
    profiles = builtin_profiles()
    if spec in profiles:
        return profiles[spec]
    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix.lower() == PROFILE_SUFFIX:
            return load_profile_file(path)
        stat = path.stat()
        return _cached_profile_from_raw(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    match = match_profile(spec, "", profiles)
    if match is not None:
        return match
    found = find_camera(spec)
    if found is not None:
        return library_profile(found)
    known = ", ".join(sorted(profiles))
    raise ProfileError(
        f"unknown camera {spec!r}: not a profile ({known}), a camera of the library (rawback profile "
        "list --library), a camera name nor a file"
    )


@functools.lru_cache(maxsize=16)
def _cached_profile_from_raw(path: str, mtime_ns: int, size: int) -> CameraProfile:
    """A batch with `--camera PHOTO.CR2` decodes that RAW once, not once per photo; the file's
    modification time and size are part of the key, so an edited file is read again."""
    return profile_from_raw(Path(path))


def match_profile(
    make: str | None, model: str | None, profiles: dict[str, CameraProfile] | None = None
) -> CameraProfile | None:
    """The built-in profile for an EXIF Make/Model, or None. Case and spacing are ignored, a model
    that repeats the make ("Canon" + "Canon PowerShot S40") matches too, and so do the names LibRaw
    gives both ("Canon EOS Kiss Digital N" is the "EOS 350D" a profile made from its CR2 names)."""
    profiles = builtin_profiles() if profiles is None else profiles
    wanted = _exif_names(make, model)
    if not wanted:
        return None
    if make and model and make.strip() and model.strip():
        wanted.add(_libraw_name(make, model))
    for profile in profiles.values():
        if profile.name == GENERIC_NAME:
            continue
        names = {
            _normalise_camera_name(f"{profile.make} {profile.model}"),
            _libraw_name(profile.make, profile.model),
        }
        names |= {_normalise_camera_name(a) for a in profile.aliases}
        if wanted & names:
            return profile
    return None


def _exif_names(make: str | None, model: str | None) -> set[str]:
    """The names an EXIF Make and Model may give a profile's "make model", normalised."""
    make_n = _normalise_camera_name(make or "")
    model_n = _normalise_camera_name(model or "")
    if not make_n and not model_n:
        return set()
    return {f"{make_n} {model_n}".strip(), model_n}


def _libraw_name(make: str | None, model: str | None) -> str:
    return _normalise_camera_name(" ".join(normalise(make, model)))


@functools.cache
def library_profile(camera: LibraryCamera) -> CameraProfile:
    """A profile of a camera of the library: its D65 matrix as ColorMatrix1 and the levels of
    `LibraryCamera.levels`. ProfileError for an entry rawback cannot use (four colours)."""
    if camera.xyz_to_cam is None:
        raise ProfileError(f"{camera.name} in LibRaw's colour table: {camera.unusable}")
    black, white, bits, levels = camera.levels()
    return CameraProfile(
        name=camera.slug,
        make=camera.make,
        model=camera.model,
        cfa_pattern="RGGB",
        black_level=(black, black, black, black),
        white_level=white,
        bits=bits,
        color_matrix_1=camera.xyz_to_cam,
        illuminant_1=color.D65,
        source=library_source(camera),
        notes=(
            "colour matrix: LibRaw's (from Adobe's DNG Converter, D65) for the models whose name starts "
            f"with {camera.model or 'anything'!r}",
            f"levels: {levels}",
            "CFA pattern: RGGB, a free choice: the table has none, and a synthesised mosaic may take any "
            "Bayer phase",
        ),
    )


class ProfileSource(enum.Enum):
    """Where a conversion's profile came from, in the order they are tried."""

    GIVEN = "given"  # --camera
    USER = "user"  # a user profile matched by EXIF
    BUILTIN = "built-in"  # a built-in profile matched by EXIF
    LIBRARY = "library"  # the camera library (LibRaw's colour table)
    GENERIC = "generic"  # none of them


@dataclass(frozen=True)
class ChosenProfile:
    profile: CameraProfile
    source: ProfileSource
    reason: str  # one line, printed in verbose mode


def select_profile(
    camera: str | None, make: str | None, model: str | None, *, alt_names: Sequence[str] = ()
) -> ChosenProfile:
    """The profile for a conversion: --camera, else a user profile, a built-in profile or the
    camera library by the EXIF camera, else generic. `alt_names`: the camera's other model names
    (a maker-note model name), tried in the library when the EXIF model finds nothing."""
    if camera:
        profile = resolve_profile(camera)
        return ChosenProfile(profile, ProfileSource.GIVEN, f"camera profile {profile.name} (from --camera)")
    exif = camera_display_name(make, model)
    match = match_profile(make, model)
    if match is not None:
        if shipped_profiles().get(match.name) == match:
            return ChosenProfile(
                match, ProfileSource.BUILTIN, f"camera profile {match.name} (matched EXIF {exif})"
            )
        reason = f"camera profile {match.name} (user profile, matched EXIF {exif})"
        return ChosenProfile(match, ProfileSource.USER, reason)
    found = identify(make, model, alt_names=alt_names)
    if found is not None and found.xyz_to_cam is not None:
        profile = library_profile(found)
        reason = (
            f"camera profile {profile.name} (camera library: {found.name}, LibRaw colour table; EXIF {exif})"
        )
        return ChosenProfile(profile, ProfileSource.LIBRARY, reason)
    if found is not None:
        why = f"EXIF camera {exif} is LibRaw's {found.name}, {found.unusable}"
    elif make or model:
        why = f"no profile for EXIF camera {exif}, nor in the camera library"
    else:
        why = "the photo's EXIF names no camera"
    generic = builtin_profiles()[GENERIC_NAME]
    return ChosenProfile(
        generic, ProfileSource.GENERIC, f"camera profile {GENERIC_NAME} ({why}; choose one with --camera)"
    )


def choose_profile(
    camera: str | None, make: str | None, model: str | None, *, alt_names: Sequence[str] = ()
) -> tuple[CameraProfile, str]:
    """The profile for a conversion and a one-line reason (`select_profile` says which kind too)."""
    chosen = select_profile(camera, make, model, alt_names=alt_names)
    return chosen.profile, chosen.reason


# --- extraction from RAW files -------------------------------------------------------------------


def _dng_matrices(path: Path) -> list[tuple[int, tuple[float, ...]]]:
    """ColorMatrix1/2 with their illuminants from a TIFF-based RAW's IFD0, if present."""
    import tifffile

    try:
        with tifffile.TiffFile(path) as tif:
            tags = tif.pages[0].tags
            out = []
            for mtag, itag in ((50721, 50778), (50722, 50779)):
                if mtag in tags:
                    v = np.asarray(tags[mtag].value, dtype=np.float64).reshape(-1, 2)
                    matrix = tuple(round(float(x), 6) for x in v[:, 0] / v[:, 1])
                    illum = int(tags[itag].value) if itag in tags else color.D65
                    out.append((illum, matrix))
            return out
    except Exception:  # not a TIFF: CRW, KDC, RAF... have no such tags
        return []


def profile_from_raw(path: Path | str, name: str | None = None) -> CameraProfile:
    """Extract a profile from any RAW or DNG that rawpy reads."""
    from rawback.io.raw import read_raw

    return profile_from_raw_image(read_raw(Path(path)), name)


def profile_from_raw_image(raw: RawImage, name: str | None = None) -> CameraProfile:
    """The profile of an already decoded RAW file (see `profile_from_raw`)."""
    from rawback.io.raw import read_tiff_make_model

    path = raw.path
    notes: list[str] = []
    matrices = _dng_matrices(path)
    if not matrices:
        if raw.color_matrix is not None:
            matrices = [(color.D65, tuple(round(float(x), 6) for x in raw.color_matrix.reshape(-1)))]
            notes.append("colour matrix: LibRaw's built-in (Adobe DNG Converter D65) matrix")
        else:
            # LibRaw has no matrix and renders camera RGB as sRGB; the equivalent ColorMatrix is
            # sRGB's own, so a DNG we write renders the same way.
            matrices = [(color.D65, tuple(round(float(x), 6) for x in color.SRGB_FROM_XYZ.reshape(-1)))]
            notes.append("colour matrix: none known to LibRaw; camera RGB treated as linear sRGB")
    else:
        notes.append("colour matrices: the file's DNG ColorMatrix tags")
    make = raw.make or "Unknown"
    model = raw.model or path.stem
    bits = max(1, int(raw.white_level).bit_length())
    (illum1, m1), *rest = matrices
    m2 = rest[0] if rest else (None, None)
    profile = CameraProfile(
        name=name or slugify(f"{make} {model}"),
        make=make,
        model=model,
        cfa_pattern=raw.pattern,
        black_level=tuple(float(b) for b in raw.black_level),  # type: ignore[arg-type]
        white_level=int(raw.white_level),
        bits=bits,
        color_matrix_1=m1,
        illuminant_1=illum1,
        color_matrix_2=m2[1],
        illuminant_2=m2[0],
        source=f"extracted from {path.name} by rawback profile add",
        notes=tuple(notes),
    )
    # The camera's own names, as its JPEGs' EXIF gives them, when LibRaw's normalised ones would
    # not match them ("Eastman Kodak Company Kodak DC120 ZOOM Digital Camera" against "Kodak DC120").
    # (Compared as written: matching would find them through LibRaw's names too, but the alias
    # keeps the profile's file what it was, and complete for readers that do not rename.)
    own_make, own_model = read_tiff_make_model(path)
    if (own_make or own_model) and _normalise_camera_name(f"{make} {model}") not in _exif_names(
        own_make, own_model
    ):
        profile = dataclasses.replace(profile, aliases=(f"{own_make} {own_model}".strip(),))
    return profile


PROFILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def profile_target(name: str, folder: Path, *, overwrite: bool = False) -> Path:
    """Where a profile of this name is saved, checked before any measuring: the name becomes a
    file name (no path, no spaces, so `--camera NAME` works unquoted), a user profile cannot take
    the place of `generic` (it would colour every unknown camera), and an existing file needs
    `overwrite`."""
    from rawback.io.atomic import check_writable

    if not PROFILE_NAME.fullmatch(name):
        raise ProfileError(f"profile name {name!r}: use letters, digits, '.', '_' and '-' only")
    if name.lower() == GENERIC_NAME and folder != builtin_folder():
        raise ProfileError(f"profile name {name!r} is reserved for photos of unknown cameras")
    target = folder / f"{name}{PROFILE_SUFFIX}"
    check_writable(target, overwrite=overwrite)
    return target


def save_profile(profile: CameraProfile, folder: Path, *, overwrite: bool = False) -> Path:
    from rawback.io.atomic import atomic_output, make_folder

    target = profile_target(profile.name, folder, overwrite=overwrite)
    make_folder(folder)
    with atomic_output(target, overwrite=overwrite) as tmp:
        tmp.write_text(profile.to_json())
    return target

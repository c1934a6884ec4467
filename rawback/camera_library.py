"""The camera library: LibRaw's colour table of 814 cameras, and finding a photo's camera in it.

LibRaw gives a camera its colour matrix by maker and model (`adobe_coeff`, src/tables/
colordata.cpp): it normalises the maker ("NIKON CORPORATION" -> Nikon) and the model ("NIKON D90"
-> "D90", "*ist DL" -> "*istDL"), then takes the FIRST entry, in table order, of that maker whose
model prefix starts the model, case-insensitively ("SLT-A57" takes the "SLT-A5" entry). `identify`
follows the same rules for a photo's EXIF Make and Model, so a JPEG gets the matrix LibRaw would
give the camera's RAW files. The data is `rawback/data/camera_library.json`, built from the table
by tools/build_camera_library.py (docs/cameras.md).

This module knows the table only; `rawback.camera.library_profile` makes a profile of an entry.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources

LIBRARY_PREFIX = "libraw-"  # of every library profile's name; no built-in profile name has it
TYPICAL_BITS = 14  # the bit depth assumed where the table gives no maximum (the generic profile's)

# Models LibRaw names by a substring of the EXIF model (normalize_model.cpp GetNormalizedModel).
# Kodak's: not followed by a digit here, so that a DC5000 JPEG is not taken for a DC50 (LibRaw
# never meets one: the DC5000 wrote no RAW files).
_KODAK_BY_SUBSTRING = re.compile(r"DC(25|50|120)(?!\d)")
_SAMSUNG_BY_SUBSTRING = (("WB5500", "HZ50W"), ("WB5000", "HZ25W"), ("WB550", "HZ15W"), ("WB500", "HZ10W"))


@dataclass(frozen=True)
class LibraryCamera:
    """One entry of LibRaw's colour table."""

    make: str  # LibRaw's maker name, e.g. "Canon"
    model: str  # the model prefix the entry matches, e.g. "EOS 350D" ("" matches any model)
    xyz_to_cam: tuple[float, ...] | None  # XYZ(D65) -> camera RGB, 9 values row-major; None: unusable
    black: int  # as the table gives it: > 0 the black level, < 0 "-black if the file has none", 0 unknown
    maximum: int  # the white level, 0 unknown
    line: int  # in LibRaw's src/tables/colordata.cpp
    order: int  # position in the table: the first match wins
    unusable: str | None = None  # why rawback cannot use it (a four-colour CMYG sensor)

    @property
    def name(self) -> str:
        return f"{self.make} {self.model}".strip()

    @property
    def slug(self) -> str:
        """The profile name, e.g. "libraw-canon-eos-350d" (tools/build_camera_library.py checks
        that no two entries share one)."""
        return LIBRARY_PREFIX + re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")

    def levels(self) -> tuple[float, int, int, str]:
        """(black, white, bits, how they were chosen) for a DNG of this camera.

        The table states a white level for 146 of its cameras and a black level for 119, where
        LibRaw corrects what a RAW file says. Where it states no white level, rawback assumes a
        14-bit sensor (16383, as the generic profile); where no black level, 1/32 of the range
        (512 at 14 bits, 128 at 12): a pedestal below black as real sensors have, and what the
        table gives its few Bayer cameras of 12 and 14 bits other than Panasonic's (Casio EX-Z10
        and Fujifilm GX680 128, Fujifilm S20 512). The median stated black (15) is no guide: 61
        are Panasonic's offset of 15 and 4 Sigma's Foveon sensors' (docs/cameras.md)."""
        if self.maximum > 0:
            white, bits, why = self.maximum, self.maximum.bit_length(), "white level from LibRaw's table"
        else:
            white, bits = 2**TYPICAL_BITS - 1, TYPICAL_BITS
            why = f"white level not in LibRaw's table: a typical {TYPICAL_BITS}-bit sensor's"
        if self.black != 0 and abs(self.black) < white:
            # < 0: LibRaw's black for files that state none, which is what a synthesised file is.
            return float(abs(self.black)), white, bits, f"{why}; black level from LibRaw's table"
        black = float(2 ** (bits - 5))
        return black, white, bits, f"{why}; black level not in the table: 1/32 of the {bits}-bit range"


@dataclass(frozen=True)
class _Library:
    cameras: tuple[LibraryCamera, ...]
    by_make: dict[str, tuple[LibraryCamera, ...]]  # lower-case make -> entries in table order
    makers: tuple[tuple[str, str], ...]  # (text found in an EXIF Make, LibRaw's maker name)
    aliases: dict[str, dict[str, tuple[str, str]]]  # make -> lower-case alias -> (make, model)
    commit: str
    source_file: str


@functools.cache
def _library() -> _Library:
    text = (resources.files("rawback") / "data" / "camera_library.json").read_text(encoding="utf-8")
    data = json.loads(text)
    cameras = tuple(
        LibraryCamera(
            make=row["make"],
            model=row["model"],
            xyz_to_cam=None if row["xyz_to_cam"] is None else tuple(row["xyz_to_cam"]),
            black=row["black"],
            maximum=row["maximum"],
            line=row["line"],
            order=order,
            unusable=row.get("unusable"),
        )
        for order, row in enumerate(data["cameras"])
    )
    by_make: dict[str, list[LibraryCamera]] = {}
    for cam in cameras:
        by_make.setdefault(cam.make.lower(), []).append(cam)
    aliases: dict[str, dict[str, tuple[str, str]]] = {}
    for group in data["aliases"]:
        for make in group["makes"]:
            table = aliases.setdefault(make, {})
            for alias, model in group["names"].items():
                table.setdefault(alias.lower(), (group["sets_make"] or make, model))
    return _Library(
        cameras=cameras,
        by_make={make: tuple(entries) for make, entries in by_make.items()},
        makers=tuple((match, make) for match, make in data["makers"]),
        aliases=aliases,
        commit=data["libraw"]["commit"],
        source_file=data["libraw"]["file"],
    )


def library_cameras() -> tuple[LibraryCamera, ...]:
    """Every entry, in LibRaw's table order."""
    return _library().cameras


def cameras_named(text: str) -> list[LibraryCamera]:
    """The entries whose name or profile name holds `text`, case ignored ("" for all)."""
    low = text.lower()
    return [c for c in library_cameras() if low in c.name.lower() or low in c.slug]


def library_source(camera: LibraryCamera) -> str:
    """Where an entry comes from, for a profile's `source`."""
    lib = _library()
    file = lib.source_file.rsplit("/", 1)[-1]
    return f"LibRaw colour table (LibRaw @ {lib.commit[:7]}, {file} line {camera.line})"


# --- names ---------------------------------------------------------------------------------------


def _clean(text: str | None) -> str:
    # EXIF strings arrive NUL-padded or space-padded ("PENTAX Corporation ", "GoPro\0\0...").
    return (text or "").replace("\0", " ").strip()


def _maker(make: str, model: str) -> str | None:
    """LibRaw's maker for an EXIF Make: the first of its names found inside it, case-insensitively."""
    low = make.lower()
    maker = next((name for match, name in _library().makers if match.lower() in low), None)
    # Makers whose cameras carry another brand's name (identify.cpp simplify_make_model).
    for company, prefix, brand in (("HMD Global", "nokia", "Nokia"), ("JK Imaging", "kodak", "Kodak")):
        if maker == company and model.lower().startswith(prefix):
            return brand
    if maker == "Ricoh" and model.lower().startswith("pentax"):
        return "Pentax"
    return maker


def _cut_case(text: str, part: str) -> str:
    at = text.lower().find(part.lower())
    return text if at < 0 else text[:at]


def normalise(make: str | None, model: str | None) -> tuple[str, str]:
    """LibRaw's maker and model names for an EXIF Make and Model, e.g. ("NIKON CORPORATION",
    "NIKON D90") -> ("Nikon", "D90"), ("Canon", "Canon EOS DIGITAL REBEL XT") -> ("Canon",
    "EOS 350D"). A maker LibRaw does not know keeps its EXIF name."""
    make, model = _clean(make), _clean(model)
    maker = _maker(make, model)
    if maker in ("Kodak", "Leica"):  # "KODAK DC280 ZOOM DIGITAL CAMERA" -> "KODAK DC280 ZOOM"
        model = _cut_case(model, " DIGITAL CAMERA").split("FILE VERSION")[0]
    make, model = (maker or make).strip(), model.strip()
    if model.lower().startswith(make.lower() + " "):  # "Canon EOS 5D" -> "EOS 5D"
        model = model[len(make) + 1 :]
    if make == "Fujifilm" and model.startswith("FinePix"):
        model = model[len("FinePix") :].lstrip()
    elif make in ("Kodak", "Konica") and model.startswith("Digital Camera "):
        model = model[len("Digital Camera ") :]
    return _normalise_model(make, model.strip())


def _normalise_model(make: str, model: str) -> tuple[str, str]:
    """LibRaw's GetNormalizedModel, for what a JPEG's EXIF can say (no maker-note IDs, lenses or
    mounts): re-badged makers, the alias tables and a few makers' fixed rules."""
    if make == "OM Digital":
        make = "Olympus"
    elif make == "Canon" and model.startswith(("EOS D2000", "EOS D6000", "EOSDCS")):
        make = "Kodak"  # Kodak DCS bodies sold as Canon EOS
    elif make == "Photo Control" and model.lower().startswith("camerz zds 14"):
        make = "Kodak"
    elif make == "Konica" and model.lower().startswith("dimage"):
        make = "Minolta"
    if make == "Kodak" and model.startswith(("DCS4", "NC2000")) and model[6:7] == " ":
        model = model[:6]
    alias = _library().aliases.get(make, {}).get(model.lower())
    if alias is not None:
        return alias
    if make == "Kodak":
        for word in ("EasyShare", "ZOOM"):
            model = re.sub(re.escape(word), "", model, flags=re.IGNORECASE)
        model = " ".join(model.split())
        found = _KODAK_BY_SUBSTRING.search(model)
        model = found.group(0) if found else model
        model = "DC40" if model == "40" else model
    elif make == "Samsung":
        model = next((names[0] for names in _SAMSUNG_BY_SUBSTRING if any(n in model for n in names)), model)
    elif make == "Leaf":
        model = model.split("(")[0]
    elif make == "Pentax" and model.startswith("GR"):
        make = "Ricoh"
    return make, model


def alternative_models(name: str) -> list[str]:
    """The model names in a maker-note model name: ExifTool's Canon:CanonModelID "EOS Digital
    Rebel XT / 350D / Kiss Digital N" -> ["EOS Digital Rebel XT", "EOS 350D", "EOS Kiss
    Digital N"] (a later name without the first one's series word gets it)."""
    parts = [p.strip() for p in _clean(name).split(" / ") if p.strip()]
    if not parts:
        return []
    series = parts[0].split()[0]
    return [parts[0], *(p if p.split()[0] == series else f"{series} {p}" for p in parts[1:])]


# --- lookup --------------------------------------------------------------------------------------


def _first_match(make: str, model: str) -> LibraryCamera | None:
    low = model.lower()
    return next(
        (c for c in _library().by_make.get(make.lower(), ()) if low.startswith(c.model.lower())), None
    )


def identify(make: str | None, model: str | None, *, alt_names: Sequence[str] = ()) -> LibraryCamera | None:
    """The table entry LibRaw would give the camera of this EXIF Make and Model, or None.

    `alt_names`: other model names of the same camera, e.g. the maker-note model name another
    reader found ("EOS Digital Rebel XT / 350D / Kiss Digital N"); tried, with the same rules,
    when the EXIF model finds no entry. The entry may be `unusable` (a four-colour sensor): that
    is the camera LibRaw would take, and no other entry stands in for it."""
    if not _clean(make):
        return None
    candidates = [model] + [alt for name in alt_names for alt in alternative_models(name)]
    for candidate in candidates:
        if _clean(candidate):
            found = _first_match(*normalise(make, candidate))
            if found is not None:
                return found
    return None


def _key(text: str) -> str:
    return re.sub(r"[\s_]+", "", text.lower())


def find_camera(name: str) -> LibraryCamera | None:
    """A library camera a user names: its profile name ("libraw-canon-eos-350d"), its maker and
    model prefix or the prefix alone ("Canon EOS 350D", "eos 350d"; case and spaces ignored), else
    a camera name as EXIF or a user writes it, identified by its first word as the maker ("Canon
    EOS DIGITAL REBEL XT", "Sony SLT-A57")."""
    key = _key(name)
    if not key:
        return None
    cameras = library_cameras()
    exact = next((c for c in cameras if key in (c.slug, _key(c.name))), None)
    exact = exact or next((c for c in cameras if c.model and key == _key(c.model)), None)
    if exact is not None:
        return exact
    words = _clean(name).split()
    return identify(words[0], " ".join(words)) if words else None

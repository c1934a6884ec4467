"""Which program rendered a JPEG's tones: its camera's JPEG engine, or a raw converter or editor.

A measured finish (`rawback profile curve`: a tone curve and a saturation) belongs to whatever
rendered the JPEGs it was measured on: usually the camera's engine, or, for a photographer who
exports from Lightroom with one preset, Lightroom. Undoing it is right only for photos from that
same renderer: a camera finish undone on a photo Lightroom rendered from the RAW, or edited
afterwards, bends tones that photo never had (on the "finished" protocol a wrong curve costs
several dB), and the other way round. Raw converters and editors name themselves in EXIF Software
(or ProcessingSoftware), where cameras write their firmware version, so the renderer of a photo is
the first program family below its Software names, or the camera when it names none.

The list is of programs, not of cameras, on purpose: firmware strings ("Firmware Version 1.10",
"17.1.1", "HD8.01.01.60.00") follow no pattern, while programs' names are stable. A program
missing here counts as a camera; the convert note says which curve was undone, so a user can turn
it off (`--tone-curve none`) or force it (`--tone-curve measured`).
"""

from __future__ import annotations

import re

from rawback.io.exif import ExifData

# (family, pattern) of raw converters, photo editors and libraries that write EXIF Software when
# they save a JPEG. Specific names come before the vendor's: "Adobe Photoshop Lightroom Classic"
# is Lightroom, "Adobe Photoshop 25.0" is Photoshop.
PROGRAMS: tuple[tuple[str, str], ...] = (
    ("Lightroom", r"lightroom"), ("Adobe Camera Raw", r"camera raw"), ("Photoshop", r"photoshop"),
    ("Adobe", r"adobe"), ("darktable", r"darktable"), ("RawTherapee", r"rawtherapee"),
    ("Capture One", r"capture one"), ("DxO", r"dxo"), ("GIMP", r"gimp"), ("Affinity", r"affinity"),
    ("Luminar", r"luminar"), ("ON1", r"\bon1\b"), ("Snapseed", r"snapseed"),
    ("Digital Photo Professional", r"digital photo professional"), ("Pixelmator", r"pixelmator"),
    ("PaintShop", r"paint ?shop"), ("ACDSee", r"acdsee"), ("Picasa", r"picasa"),
    ("iPhoto", r"iphoto"), ("Aperture", r"aperture"), ("NX Studio", r"nx studio"),
    ("Capture NX", r"capture nx"), ("Imaging Edge", r"imaging edge"), ("SILKYPIX", r"silkypix"),
    ("LightZone", r"lightzone"), ("Photomatix", r"photomatix"), ("VSCO", r"vsco"),
    ("Polarr", r"polarr"), ("PhotoScape", r"photoscape"), ("IrfanView", r"irfanview"),
    ("XnView", r"xnview"), ("Paint.NET", r"paint\.net"), ("ImageMagick", r"imagemagick"),
    ("GraphicsMagick", r"graphicsmagick"), ("digiKam", r"digikam"), ("Shotwell", r"shotwell"),
    ("rawpy", r"rawpy"), ("LibRaw", r"libraw"), ("dcraw", r"dcraw"), ("rawback", r"rawback"),
    ("Filmulator", r"filmulator"), ("Corel", r"corel"), ("Apple Photos", r"^photos \d"),
)  # fmt: skip
_PATTERNS = [(family, re.compile(pattern, re.IGNORECASE)) for family, pattern in PROGRAMS]

CAMERA = "the camera's JPEG engine"  # how notes name the renderer of a photo that names no program


def rendering_program(exif: ExifData) -> tuple[str, str] | None:
    """(family, the Software value naming it) of the program that rendered the photo, from its
    EXIF Software and ProcessingSoftware; None when they name none (the camera's own JPEG)."""
    return program_named(exif.software)


def program_named(software_values: tuple[str, ...]) -> tuple[str, str] | None:
    """(family, value) of the first known program among Software values, else None."""
    for software in software_values:
        for family, pattern in _PATTERNS:
            if pattern.search(software):
                return family, software
    return None


def renderer(software_values: tuple[str, ...]) -> str | None:
    """The program family a file's Software values name, or None for its camera (program_named)."""
    program = program_named(software_values)
    return None if program is None else program[0]


def describe(family: str | None) -> str:
    return CAMERA if family is None else family

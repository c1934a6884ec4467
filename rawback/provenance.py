"""Whether a photo may come straight from its camera's JPEG engine, or a program rendered or edited it.

A camera profile's measured finish (`rawback profile curve`: the tone curve and saturation of the
camera's JPEG engine) is right only for the JPEGs that engine wrote. A photo that Lightroom,
darktable or any other raw converter rendered from the RAW has that program's curve instead, and
an edited photo has had its tones moved; undoing the camera's curve there would bend it the wrong
way (on the "finished" protocol a wrong curve costs several dB). Such programs name themselves in
EXIF Software (or ProcessingSoftware), where cameras write their firmware version, so a photo that
names a known editor keeps its curve unless the user asks (`--tone-curve measured`).

The list is of programs, not of cameras, on purpose: firmware strings ("Firmware Version 1.10",
"17.1.1", "HERO8 Black H19.03...") follow no pattern, while editors' names are stable. A program
missing here is treated as a camera; the convert note says which curve was undone, so a user can
turn it off with `--tone-curve none`.
"""

from __future__ import annotations

import re

from rawback.io.exif import ExifData

# Raw converters, photo editors and libraries that write EXIF Software when they save a JPEG.
EDITORS: tuple[str, ...] = (
    r"adobe", r"photoshop", r"lightroom", r"camera raw", r"darktable", r"rawtherapee",
    r"capture one", r"dxo", r"gimp", r"affinity", r"luminar", r"\bon1\b", r"snapseed",
    r"digital photo professional", r"pixelmator", r"paint ?shop", r"acdsee", r"picasa", r"iphoto",
    r"aperture", r"nx studio", r"capture nx", r"imaging edge", r"silkypix", r"lightzone",
    r"photomatix", r"vsco", r"polarr", r"photoscape", r"irfanview", r"xnview", r"paint\.net",
    r"imagemagick", r"graphicsmagick", r"digikam", r"shotwell", r"rawpy", r"libraw", r"dcraw",
    r"rawback", r"filmulator", r"corel", r"^photos \d",
)  # fmt: skip
_EDITOR = re.compile("|".join(EDITORS), re.IGNORECASE)


def editing_program(exif: ExifData) -> str | None:
    """The photo's EXIF Software or ProcessingSoftware value that names a known photo editor or raw
    converter, else None (no such tag, or a camera's firmware)."""
    for software in exif.software:
        if _EDITOR.search(software):
            return software
    return None

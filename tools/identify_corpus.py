#!/usr/bin/env python3
"""How many photos of a folder get a camera profile, and which do not and why.

Reads every photo's EXIF Make and Model (rawback.io.exif, as `convert` does) and runs rawback's
profile choice on it (rawback.camera.select_profile: user, built-in, camera library, generic).
Prints the share of photos that get a camera's own profile (built-in or library), the choice per
camera, and every camera that gets `generic`, with the reason:

    python tools/identify_corpus.py /work/digicam
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rawback.camera import ProfileSource, select_profile  # noqa: E402
from rawback.camera_library import identify, library_cameras, normalise  # noqa: E402
from rawback.io.exif import camera_display_name, read_exif  # noqa: E402
from rawback.io.files import find_images  # noqa: E402


def exif_camera(path: Path) -> tuple[str | None, str | None]:
    try:
        with Image.open(path) as image:
            exif = read_exif(image.info.get("exif"))
    except OSError:
        return None, None
    return exif.make, exif.model


def why_not(make: str | None, model: str | None) -> str:
    """Why a photo's camera gets no profile."""
    if not (make or model):
        return "no EXIF Make/Model"
    found = identify(make, model)
    if found is not None:
        return f"LibRaw's {found.name}: {found.unusable}"
    maker, name = normalise(make, model)
    if maker.lower() not in {c.make.lower() for c in library_cameras()}:
        return f"maker {maker!r} has no camera in LibRaw's table"
    return f"{maker} {name!r}: no entry of LibRaw's table starts it"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    photos, _ = find_images(args.folder)
    per_camera: Counter[tuple[str, str, str]] = Counter()
    misses: Counter[tuple[str, str]] = Counter()
    sources: Counter[ProfileSource] = Counter()
    for path in photos:
        make, model = exif_camera(path)
        chosen = select_profile(None, make, model)
        sources[chosen.source] += 1
        name = camera_display_name(make, model) or "(none)"
        per_camera[(name, chosen.source.value, chosen.profile.name)] += 1
        if chosen.source is ProfileSource.GENERIC:
            misses[(name, why_not(make, model))] += 1
    total = len(photos)
    own = sources[ProfileSource.BUILTIN] + sources[ProfileSource.USER] + sources[ProfileSource.LIBRARY]
    with_camera = total - misses[("(none)", "no EXIF Make/Model")]
    print(f"{total} photos; a camera's own profile for {own} ({100 * own / max(total, 1):.1f} %)")
    print(
        f"of the {with_camera} naming a camera in EXIF: {own} ({100 * own / max(with_camera, 1):.1f} %); "
        + ", ".join(f"{s.value} {sources[s]}" for s in ProfileSource if sources[s])
    )
    print("\nper camera (photos, EXIF camera, source, profile):")
    for (name, source, profile), n in sorted(per_camera.items()):
        print(f"  {n:3d}  {name:40.40}  {source:8}  {profile}")
    print("\ngeneric, and why:")
    for (name, why), n in sorted(misses.items()):
        print(f"  {n:3d}  {name:40.40}  {why}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

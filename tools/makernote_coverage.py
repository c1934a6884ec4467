"""How often the camera's as-shot white balance can be read from JPEG maker notes, per make, with
exiftool (what rawback uses, rawback.io.makernotes) and with the exiv2 Python binding (the
alternative that was weighed), and what each costs per photo:

    python tools/makernote_coverage.py FOLDER [FOLDER...] [--exiv2-python PYTHON] [--decode N]

exiv2 runs in this interpreter when it can import `exiv2`, else under --exiv2-python (a virtual
environment with `pip install exiv2`); its tags go through the same rules and checks as exiftool's
(`as_shot_from_record`), renamed to exiftool's names. --decode N also measures, on N photos, what
reading the maker notes adds to a JPEG decode when exiftool is started before the decode.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rawback.io.exiftool import ExifTool
from rawback.io.makernotes import as_shot_from_record, read_maker_notes, request

JPEG_SUFFIXES = {".jpg", ".jpeg", ".jpe"}

# EXIF Make (upper case) starts with -> the make's short name.
_MAKES = {"CANON": "Canon", "NIKON": "Nikon", "SONY": "Sony", "PENTAX": "Pentax", "RICOH": "Ricoh",
          "OLYMPUS": "Olympus", "OM DIGITAL": "Olympus", "PANASONIC": "Panasonic", "FUJIFILM": "Fujifilm",
          "SAMSUNG": "Samsung", "EASTMAN KODAK": "Kodak", "KODAK": "Kodak", "SEIKO EPSON": "Epson",
          "HEWLETT-PACKARD": "HP", "APPLE": "Apple", "GOPRO": "GoPro", "CASIO": "Casio", "SIGMA": "Sigma",
          "MINOLTA": "Minolta", "KONICA MINOLTA": "Minolta", "LEICA": "Leica"}  # fmt: skip

# exiv2 groups -> exiftool's family-1 group, for the tags the rules read.
_EXIV2_GROUPS = {"Nikon3": "Nikon", "NikonCb1": "Nikon", "NikonCb2": "Nikon", "NikonCb2a": "Nikon",
                 "NikonCb2b": "Nikon", "NikonCb3": "Nikon", "NikonCb4": "Nikon", "Pentax": "Pentax",
                 "OlympusIp": "Olympus", "Olympus": "Olympus", "Olympus2": "Olympus",
                 "Panasonic": "Panasonic", "Sony2010e": "Sony", "Canon": "Canon"}  # fmt: skip


def photos(folders: list[str]) -> list[Path]:
    found = []
    for folder in folders:
        for root, _, files in os.walk(folder):
            found += [Path(root) / f for f in files if Path(f).suffix.lower() in JPEG_SUFFIXES]
    return sorted(found)


def make_of(path: Path) -> str:
    from PIL import Image

    try:
        with Image.open(path) as im:
            make = im.getexif().get(271)
    except Exception:
        return "(unreadable)"
    if not isinstance(make, str) or not make.strip("\0 "):
        return "(no Make)"
    upper = make.strip("\0 ").upper()
    return next((v for k, v in _MAKES.items() if upper.startswith(k)), make.strip("\0 ").title())


Found = list[list | None]  # per file: [tag, multipliers], or None when no usable white balance


def _found(reading) -> list | None:
    return [reading.as_shot.tag, reading.as_shot.multipliers] if reading.as_shot else None


def with_exiftool(files: list[Path]) -> tuple[Found, list[float]]:
    """What each file gave and the seconds it took, the first with exiftool's start-up."""
    found, seconds = [], []
    before = _children_cpu()
    with ExifTool() as tool:
        for path in files:
            start = time.perf_counter()
            reading = read_maker_notes(path, tool)
            seconds.append(time.perf_counter() - start)
            found.append(_found(reading))
    cpu = _children_cpu() - before
    print(f"exiftool's own CPU time: {cpu:.2f} s for {len(files)} photos, start-up included")
    return found, seconds


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def exiv2_record(path: Path) -> dict[str, object]:
    """What exiv2 decodes of the tags the rules read, under exiftool's names."""
    import exiv2

    exiv2.LogMsg.setLevel(exiv2.LogMsg.Level.mute)
    image = exiv2.ImageFactory.open(str(path))
    image.readMetadata()
    record: dict[str, object] = {}
    for datum in image.exifData():
        _, group, name = datum.key().split(".", 2)
        if group not in _EXIV2_GROUPS:
            continue
        value = datum.value()
        numbers = [value.toFloat(i) for i in range(value.count())]
        if group.startswith("Olympus") and name in ("RedBalance", "BlueBalance"):
            numbers = numbers[:1] and [numbers[0] / 256]  # exiftool's ValueConv
        text = " ".join(f"{n:g}" for n in numbers)
        record[f"{_EXIV2_GROUPS[group]}:{name}"] = float(text) if len(numbers) == 1 else text
    return record


def with_exiv2(files: list[Path]) -> tuple[Found, list[float]]:
    found, seconds = [], []
    for path in files:
        start = time.perf_counter()
        try:
            found.append(_found(as_shot_from_record(exiv2_record(path))))
        except Exception:  # exiv2 raises on files it cannot open
            found.append(None)
        seconds.append(time.perf_counter() - start)
    return found, seconds


def exiv2_elsewhere(python: str, files: list[Path]) -> tuple[Found, list[float]]:
    names = json.dumps([os.fsdecode(p) for p in files])
    done = subprocess.run(
        [python, __file__, "--exiv2-json"], input=names, capture_output=True, text=True, check=True
    )
    answer = json.loads(done.stdout)
    return answer["found"], answer["seconds"]


def decode_overhead(files: list[Path]) -> dict[str, float]:
    """Median seconds a photo takes to decode alone, and with its maker notes requested before the
    decode and collected after it, as `convert` does: from a fresh exiftool (the first photo of a
    run) and from a running one that has met the make before."""
    from rawback.io.image import read_image

    alone, cold, warm = [], [], []
    warm_tool = ExifTool()
    for path in files:
        start = time.perf_counter()
        read_image(path)
        alone.append(time.perf_counter() - start)
        with ExifTool() as tool:
            start = time.perf_counter()
            pending = request(path, tool)
            read_image(path)
            pending.result()
            cold.append(time.perf_counter() - start)
        read_maker_notes(path, warm_tool)
        start = time.perf_counter()
        pending = request(path, warm_tool)
        read_image(path)
        pending.result()
        warm.append(time.perf_counter() - start)
    warm_tool.close()
    median = statistics.median
    return {"decode": median(alone), "first photo": median(cold), "later photos": median(warm)}


def report(files: list[Path], results: dict[str, tuple[Found, list[float]]]) -> None:
    makes = [make_of(p) for p in files]
    counts = collections.Counter(makes)
    names = list(results)
    print(f"{'make':<14}{'files':>6}" + "".join(f"{n:>16}" for n in names) + "   tags (exiftool)")
    for make in sorted(counts, key=lambda m: (-counts[m], m)):
        rows = [i for i, m in enumerate(makes) if m == make]
        cells = ""
        for name in names:
            usable = sum(results[name][0][i] is not None for i in rows)
            cells += f"{usable:>7} ({100 * usable / len(rows):3.0f} %)"
        used = collections.Counter(results[names[0]][0][i][0] for i in rows if results[names[0]][0][i])
        print(f"{make:<14}{len(rows):>6}{cells}   " + ", ".join(f"{t} {n}" for t, n in used.most_common()))
    total = ""
    for name in names:
        usable = sum(t is not None for t in results[name][0])
        total += f"{usable:>7} ({100 * usable / max(len(files), 1):3.0f} %)"
    print(f"{'all':<14}{len(files):>6}{total}")
    if "exiv2" in results:
        both = [
            (a[1], b[1]) for a, b in zip(results["exiftool"][0], results["exiv2"][0], strict=True) if a and b
        ]
        worst = max((abs(x - y) for a, b in both for x, y in zip(a, b, strict=True)), default=0.0)
        print(
            f"exiv2 and exiftool both read {len(both)} photos; largest difference in a multiplier {worst:.2g}"
        )
    for name, (_, seconds) in results.items():
        later = seconds[1:] or seconds
        print(
            f"{name}: first photo {seconds[0] * 1e3:.0f} ms (start-up included), then median "
            f"{statistics.median(later) * 1e3:.1f} ms, mean {statistics.mean(later) * 1e3:.1f} ms, "
            f"max {max(later) * 1e3:.0f} ms per photo ({len(later)} photos)"
        )


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="*")
    parser.add_argument("--exiv2-python", help="a Python that can import exiv2")
    parser.add_argument("--decode", type=int, default=0, help="measure the decode overhead on N photos")
    parser.add_argument("--exiv2-json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.exiv2_json:  # the exiv2 half, run under another interpreter
        found, seconds = with_exiv2([Path(n) for n in json.loads(sys.stdin.read())])
        print(json.dumps({"found": found, "seconds": seconds}))
        return 0
    files = photos(args.folders)
    if not files:
        print("no JPEGs found", file=sys.stderr)
        return 1
    results = {"exiftool": with_exiftool(files)}
    try:
        import exiv2  # noqa: F401

        results["exiv2"] = with_exiv2(files)
    except ImportError:
        if args.exiv2_python:
            results["exiv2"] = exiv2_elsewhere(args.exiv2_python, files)
        else:
            print("(exiv2 not importable here and no --exiv2-python: exiftool only)")
    report(files, results)
    if args.decode:
        step = max(1, len(files) // args.decode)
        overhead = decode_overhead(files[::step][: args.decode])
        print(
            f"decode alone {overhead['decode'] * 1e3:.0f} ms; with maker notes requested before the "
            f"decode: first photo {overhead['first photo'] * 1e3:.0f} ms, later photos "
            f"{overhead['later photos'] * 1e3:.0f} ms (medians over {args.decode} photos)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Fingerprint what `rawback` writes and prints, to check that a refactor changed no behaviour.

Runs the installed `rawback` command (never the package's internals, so the script works on both
sides of a reorganisation) on a fixed set of inputs with several option sets, and prints one line
per output: the SHA-256 of each DNG, and of each command's --help text. Run it before and after a
change and compare the two listings with `diff`:

    python tools/dng_fingerprints.py --inputs /tmp/fp-inputs > before.txt
    ... change the code ...
    python tools/dng_fingerprints.py --inputs /tmp/fp-inputs > after.txt
    diff before.txt after.txt

The inputs are made once into --inputs (kept, so both runs read the same bytes): rawback's
synthetic chart, JPEGs rendered by LibRaw from a few RAW files of ../shared/data/raw, and a few real
camera JPEGs of ../shared/data/jpeg. Without ../shared/data only the chart is used.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# One file per camera family of ../shared/data/raw, validation and training files alike.
RAW_FILES = (
    "canon_s40/CRW_0118.CRW",
    "canon_g2/CRW_0304.CRW",
    "gopro/HERO8_GOPR0009.dng",
    "kodak_dc120/P003917.KDC",
)
CAMERA_JPEG_COUNT = 1  # per camera folder of ../shared/data/jpeg
OPTION_SETS: dict[str, list[str]] = {
    "diffusion": [],
    "analytic": ["--method", "analytic"],
    "undo-tone": ["--undo-tone-curve", "--undo-exposure"],
    "residual-full": ["--residual", "full", "--steps", "2", "--sampler", "heun"],
    "generic-camera": ["--camera", "generic", "--compression", "none", "--no-preview"],
}
COMMANDS = (
    [],
    ["convert"],
    ["batch"],
    ["sample"],
    ["eval"],
    ["train"],
    ["calibrate"],
    ["profile"],
    ["profile", "list"],
    ["profile", "show"],
    ["profile", "add"],
    ["profile", "curve"],
)


def make_inputs(folder: Path, rawback: str) -> None:
    import rawpy
    from PIL import Image

    folder.mkdir(parents=True)
    subprocess.run([rawback, "sample", str(folder / "chart.jpg"), "--width", "640", "--height", "448"],
                   check=True, capture_output=True)  # fmt: skip
    if not SHARED.is_dir():
        return
    for name in RAW_FILES:
        path = SHARED / "raw" / name
        if not path.is_file():
            continue
        with rawpy.imread(str(path)) as raw:
            rgb = raw.postprocess(use_camera_wb=True, output_bps=8)
        out = folder / f"render-{path.parent.name}-{path.stem}.jpg"
        Image.fromarray(rgb).save(out, quality=90)
    for camera in sorted(p for p in (SHARED / "jpeg").glob("*") if p.is_dir()):
        for jpeg in sorted(camera.glob("*.JPG"))[:CAMERA_JPEG_COUNT]:
            shutil.copy(jpeg, folder / f"camera-{camera.name}-{jpeg.name}")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inputs", type=Path, required=True, help="Folder of inputs (made if absent).")
    parser.add_argument("--rawback", default=str(Path(sys.executable).with_name("rawback")))
    parser.add_argument("--only", help="Comma list of option sets to run (default: all).")
    args = parser.parse_args()
    if not args.inputs.exists():
        make_inputs(args.inputs, args.rawback)
    photos = sorted(args.inputs.glob("*.[jJ][pP][gG]"))
    for words in COMMANDS:
        shown = subprocess.run([args.rawback, *words, "--help"], capture_output=True, env={"COLUMNS": "100"})
        print(f"help {' '.join(words) or '(top)'}: {sha256(shown.stdout)} exit {shown.returncode}")
    with tempfile.TemporaryDirectory() as tmp:
        chosen = args.only.split(",") if args.only else list(OPTION_SETS)
        for label, options in ((k, v) for k, v in OPTION_SETS.items() if k in chosen):
            out = Path(tmp) / label
            out.mkdir()
            command = [args.rawback, "convert", *map(str, photos), "-o", str(out), "-q", *options]
            done = subprocess.run(command, capture_output=True, text=True)
            print(f"convert {label}: exit {done.returncode} {done.stderr.strip()[:200]}")
            for dng in sorted(out.glob("*.dng")):
                print(f"  {label} {dng.name}: {sha256(dng.read_bytes())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

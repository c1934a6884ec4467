"""How scene-linear the DNG's tones are on the grey row of the ColorChecker charts in
../shared/data/jpeg (18 unedited JPEGs of 4 cameras, no RAW): a measure of the tone curve undone
that needs no RAW truth (docs/experiments.md#the-tone-curve-of-camera-jpegs-by-provenance).

The six grey patches reflect 88.7, 59.1, 36.2, 19.8, 9.0 and 3.1 % (Munsell renotation Y of N9.5,
N8, N6.5, N5, N3.5, N2). In a scene-linear DNG the green sites of the patches are proportional to
these: on log axes, slope 1 and no residual after one gain. The script reports, per photo and
setting, that slope and the RMS residual in stops (all six patches, and without the black one,
which flare lifts). Each photo is converted as a user would (`rawback.convert.invert_image`), from
a copy 768 px wide (EXIF and ICC profile kept) to keep the CPU time small.

    PYTHONPATH=. python tools/chart_grey_row.py [../shared/data/jpeg] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from rawback.convert import ConvertOptions, invert_image
from rawback.diffusion_settings import DiffusionSettings
from rawback.io.image import read_image

REFLECTANCE = np.array([0.887, 0.591, 0.362, 0.198, 0.090, 0.031])
WIDTH = 768  # of the converted copies
HALF_BOX = 12  # patch boxes of 24 x 24 px at that width
# Grey-row patch centres (x of each, y of the row) read off a 600 px wide view of one photo per
# camera, with that view's size; the photos of one camera share the framing.
GRID = {
    "canon_eos_digital_rebel_xt": ((80, 167, 253, 340, 427, 514), 335, 600, 400),
    "nikon_d90": ((97, 183, 269, 354, 439, 521), 338, 600, 399),
    "pentax_ist_dl": ((84, 167, 250, 335, 419, 503), 318, 600, 400),
    "sony_slt-a57": ((86, 170, 253, 337, 420, 504), 320, 600, 398),
}
SETTINGS = {
    "kept (--keep-tone-curve)": ConvertOptions(diffusion=DiffusionSettings(undo_tone_curve=False)),
    "undone (--undo-tone-curve)": ConvertOptions(diffusion=DiffusionSettings(undo_tone_curve=True)),
    "default (auto)": ConvertOptions(),
}


def small_copy(source: Path, folder: Path) -> Path:
    with Image.open(source) as image:
        extra = {key: image.info[key] for key in ("exif", "icc_profile") if key in image.info}
        height = round(image.height * WIDTH / image.width)
        small = image.convert("RGB").resize((WIDTH, height), Image.Resampling.BOX)
    path = folder / f"{source.parent.name}__{source.name}"
    small.save(path, "JPEG", quality=95, **extra)
    return path


def patch_greens(counts: np.ndarray, pattern: str, centres: list[tuple[int, int]]) -> np.ndarray:
    green = np.zeros(counts.shape, dtype=bool)
    for site, colour in enumerate(pattern):
        if colour == "G":
            green[site // 2 :: 2, site % 2 :: 2] = True
    r = HALF_BOX
    return np.array(
        [counts[y - r : y + r, x - r : x + r][green[y - r : y + r, x - r : x + r]].mean() for x, y in centres]
    )


def linearity(values: np.ndarray) -> dict[str, float]:
    log_v, log_y = np.log2(np.maximum(values, 1e-6)), np.log2(REFLECTANCE)
    residual = log_v - log_y - np.mean(log_v - log_y)
    five = residual[:5] - residual[:5].mean()
    return {
        "slope": float(np.polyfit(log_y, log_v, 1)[0]),
        "rms_stops": float(np.sqrt(np.mean(residual**2))),
        "rms_stops_no_black": float(np.sqrt(np.mean(five**2))),
    }


def measure(data: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for camera, (xs, y, view_w, view_h) in GRID.items():
            for source in sorted((data / camera).glob("*.JPG")):
                image = read_image(small_copy(source, Path(tmp)))
                h, w = image.rgb.shape[:2]
                centres = [(int(x / view_w * w), int(y / view_h * h)) for x in xs]
                for label, options in SETTINGS.items():
                    inversion = invert_image(image, options)
                    profile = inversion.profile
                    black = float(np.mean(profile.black_level))
                    linear = (inversion.counts.astype(np.float64) - black) / (profile.white_level - black)
                    scores = linearity(patch_greens(linear, profile.cfa_pattern, centres))
                    rows.append(
                        {"file": f"{camera}/{source.name}", "camera": camera, "setting": label, **scores}
                    )
                    line = f"slope {scores['slope']:.2f} rms {scores['rms_stops']:.3f}"
                    print(f"{camera}/{source.name:14s} {label:28s} {line}", flush=True)
    return rows


def summary(rows: list[dict[str, object]]) -> None:
    print(
        "\n| camera | photos | setting | slope | RMS (stops) | RMS without black |\n|---|---|---|---|---|---|"
    )
    for camera in [*GRID, "all"]:
        for label in SETTINGS:
            chosen = [r for r in rows if r["setting"] == label and camera in ("all", r["camera"])]
            mean = {k: np.mean([r[k] for r in chosen]) for k in ("slope", "rms_stops", "rms_stops_no_black")}
            print(f"| {camera} | {len(chosen)} | {label} | {mean['slope']:.2f} | {mean['rms_stops']:.3f} | "
                  f"{mean['rms_stops_no_black']:.3f} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, nargs="?", default=Path("../shared/data/jpeg"))
    parser.add_argument("--json", type=Path, help="write every row here")
    args = parser.parse_args()
    rows = measure(args.data)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    summary(rows)


if __name__ == "__main__":
    main()

"""Score rawback's DNGs of real camera JPEGs against the white balance the camera applied.

For every JPEG listed in a truth file (../shared/data/jpeg/truth.json: each photo's as-shot neutral
read from its maker notes, and its camera's LibRaw colour-table entry), convert it as a user would
and measure, as ../shared/data/jpeg/README.md defines it:

  identified   the DNG names the camera: its Make/Model identify (LibRaw's rules) to the truth's entry
  error        the angle, in linear sRGB, between the DNG's white, inv(ColorMatrix1) @ AsShotNeutral,
               and the true white, inv(LibRaw xyz_to_cam) @ neutral
  opens        LibRaw (rawpy) opens the DNG
  seconds      the conversion's wall time

for several variants: the default method, `--method analytic`, and copies with the maker notes
removed (`exiftool -makernotes:all=`), where rawback must fall back to its other sources.

    python tools/measure_as_shot.py [--truth ../shared/data/jpeg/truth.json] [--variants ...]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

REPO = Path(__file__).resolve().parents[1]
DEFAULT_TRUTH = REPO.parent / "shared" / "data" / "jpeg" / "truth.json"
# XYZ (D65) -> linear sRGB (IEC 61966-2-1)
SRGB_FROM_XYZ = np.array(
    [
        [3.2404542, -1.5371385, -0.4985314],
        [-0.9692660, 1.8760108, 0.0415560],
        [0.0556434, -0.2040259, 1.0572252],
    ]
)
VARIANTS = {
    "default": [],
    "analytic": ["--method", "analytic"],
    "default, maker notes removed": ["@stripped"],
    "analytic, maker notes removed": ["@stripped", "--method", "analytic"],
}


def angle_degrees(a: np.ndarray, b: np.ndarray) -> float:
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))


def srgb_white(xyz_to_cam: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    return SRGB_FROM_XYZ @ np.linalg.solve(xyz_to_cam, neutral)


def dng_fields(path: Path) -> dict[str, object]:
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        matrix = np.array(tags["ColorMatrix1"].value, dtype=np.float64)
        if matrix.size == 18:  # SRATIONAL pairs as tifffile may give them
            matrix = matrix[0::2] / matrix[1::2]
        neutral = np.array(tags["AsShotNeutral"].value, dtype=np.float64)
        if neutral.size == 6:
            neutral = neutral[0::2] / neutral[1::2]
        return {
            "make": str(tags["Make"].value).strip(),
            "model": str(tags["Model"].value).strip(),
            "unique": str(tags["UniqueCameraModel"].value).strip(),
            "matrix": matrix.reshape(3, 3),
            "neutral": neutral,
        }


def identified_as(make: str, model: str) -> tuple[str, str] | None:
    try:
        from rawback.camera_library import identify
    except ImportError:  # a rawback from before the camera library: nothing is identified
        return None
    found = identify(make, model)
    return None if found is None else (found.make, found.model)


def opens_in_libraw(path: Path) -> bool:
    import rawpy

    try:
        with rawpy.imread(str(path)) as raw:
            return raw.raw_image_visible.size > 0
    except Exception:
        return False


def strip_maker_notes(source: Path, target: Path) -> None:
    subprocess.run(["exiftool", "-q", "-q", "-makernotes:all=", "-o", str(target), str(source)], check=True)


def run(
    truth_path: Path, variants: list[str], rawback: list[str], weights: Path | None = None
) -> dict[str, object]:
    truth = json.loads(truth_path.read_text())
    folder = truth_path.parent
    report: dict[str, object] = {"truth": str(truth_path), "variants": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_dir = Path(tmp)
        stripped_dir = tmp_dir / "stripped"
        stripped_dir.mkdir()
        for variant in variants:
            args = VARIANTS[variant]
            rows = []
            for entry in truth["files"]:
                source = folder / entry["path"]
                if "@stripped" in args:
                    photo = stripped_dir / source.name
                    if not photo.exists():
                        strip_maker_notes(source, photo)
                else:
                    photo = source
                out = tmp_dir / "out" / variant.replace(" ", "_").replace(",", "") / f"{source.stem}.dng"
                out.parent.mkdir(parents=True, exist_ok=True)
                options = [a for a in args if a != "@stripped"]
                if weights is not None and "analytic" not in options:
                    options += ["--weights", str(weights)]
                start = time.perf_counter()
                done = subprocess.run(
                    [*rawback, "convert", str(photo), "-o", str(out), "--overwrite", "-q", *options],
                    capture_output=True,
                    text=True,
                )
                seconds = time.perf_counter() - start
                if done.returncode != 0:
                    rows.append({"file": entry["path"], "failed": done.stderr.strip()})
                    continue
                dng = dng_fields(out)
                lib = entry["libraw"]
                true_white = srgb_white(
                    np.array(lib["xyz_to_cam"], dtype=np.float64)[:3], np.array(entry["neutral"])
                )
                dng_white = srgb_white(dng["matrix"], dng["neutral"])
                rows.append(
                    {
                        "file": entry["path"],
                        "make": dng["make"],
                        "model": dng["model"],
                        "unique_camera_model": dng["unique"],
                        "identified": identified_as(dng["make"], dng["model"])
                        == (lib["make"], lib["model_prefix"]),
                        "error_deg": angle_degrees(true_white, dng_white),
                        "opens": opens_in_libraw(out),
                        "seconds": seconds,
                    }
                )
            scored = [r for r in rows if "error_deg" in r]
            errors = [r["error_deg"] for r in scored]
            report["variants"][variant] = {
                "files": len(rows),
                "failed": len(rows) - len(scored),
                "identified": sum(r["identified"] for r in scored),
                "opens": sum(r["opens"] for r in scored),
                "median_error_deg": statistics.median(errors) if errors else None,
                "mean_error_deg": statistics.fmean(errors) if errors else None,
                "max_error_deg": max(errors) if errors else None,
                "under_0.5_deg": sum(e < 0.5 for e in errors),
                "under_3_deg": sum(e < 3 for e in errors),
                "mean_seconds": statistics.fmean(r["seconds"] for r in scored) if scored else None,
                "rows": rows,
            }
    return report


def print_table(report: dict[str, object]) -> None:
    print(f"truth: {report['truth']}")
    print(
        f"{'variant':34} {'files':>5} {'ident.':>6} {'opens':>5} {'median°':>8} {'mean°':>7} {'max°':>7} "
        f"{'<0.5°':>6} {'<3°':>5} {'s/photo':>8}"
    )
    for name, v in report["variants"].items():
        fmt = lambda x: "-" if x is None else f"{x:.2f}"  # noqa: E731
        print(
            f"{name:34} {v['files']:>5} {v['identified']:>6} {v['opens']:>5} {fmt(v['median_error_deg']):>8} "
            f"{fmt(v['mean_error_deg']):>7} {fmt(v['max_error_deg']):>7} {v['under_0.5_deg']:>6} "
            f"{v['under_3_deg']:>5} {fmt(v['mean_seconds']):>8}"
        )
        for row in v["rows"]:
            if "failed" in row:
                print(f"    {row['file']}: FAILED {row['failed']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--truth", type=Path, default=DEFAULT_TRUTH)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--json", type=Path, help="also write the full report here")
    parser.add_argument("--rawback", default=f"{sys.executable} -m rawback", help="the command to run")
    parser.add_argument("--weights", type=Path, help="model of the non-analytic variants (default: shipped)")
    args = parser.parse_args()
    if not args.truth.is_file():
        print(f"no truth file at {args.truth}", file=sys.stderr)
        return 2
    if shutil.which("exiftool") is None and any("stripped" in v for v in args.variants):
        print("exiftool is needed to strip maker notes", file=sys.stderr)
        return 2
    report = run(args.truth, args.variants, args.rawback.split(), args.weights)
    print_table(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

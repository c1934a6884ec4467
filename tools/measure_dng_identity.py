"""Measure what raw developers do with a DNG's camera identity (docs/dng-layout.md, "Make and Model").

For each camera, the same synthetic chart (a grey ramp and the 24 ColorChecker patches on an 18 %
grey background, under a warm light) is mosaicked with the camera's colour matrix and levels and
written twice: once with the camera's real identity (EXIF Make and Model as the camera writes them,
UniqueCameraModel "Make Model"), once with Make "rawback". Each DNG is rendered at the as-shot white
balance by LibRaw (rawpy), dcraw, darktable-cli and rawtherapee-cli, and the two renders of each
client are compared: image size, where the real-identity render sits in the rawback one (a crop),
mean absolute difference of the overlap (8-bit levels), and how neutral the grey patches are (the
largest R, G, B spread of a mid-grey patch's mean). "rawback writes Make" is what
rawback.io.dng_identity.decide_identity chooses for the camera when its profile is known.

Matrices and levels come from LibRaw's colour table (../shared/data/cameras/libraw_colordata.json;
black and white level where the table gives them, else 512/16383 scaled to the bit depth), or from
rawback's built-in profile where one exists (GoPro, Kodak DC120). `--mismatch` adds the case that
../shared/docs/dng.md section 5 measured: the real identity on data made with another camera's
(the generic profile's) matrix and levels.

    python tools/measure_dng_identity.py [--size 1536x1024] [--cameras 5D,SL2] [--mismatch]
        [--json out.json] [--keep FOLDER]

Needs rawpy and, for their columns, dcraw, darktable-cli and rawtherapee-cli (Debian packages).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rawpy
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rawback.camera import CameraProfile, builtin_profiles  # noqa: E402
from rawback.io.dng import write_dng  # noqa: E402
from rawback.io.dng_identity import DngIdentity, decide_identity, simplified_name  # noqa: E402
from rawback.io.exif import ExifData  # noqa: E402
from rawback.isp import bayer, color  # noqa: E402
from rawback.samplechart import COLOR_CHECKER_SRGB  # noqa: E402

COLORDATA = REPO.parent / "shared" / "data" / "cameras" / "libraw_colordata.json"
TIMEOUT = 300


@dataclass(frozen=True)
class Camera:
    label: str
    exif_make: str  # as the camera writes EXIF Make / Model
    exif_model: str
    table: tuple[str, str] | None = None  # LibRaw table entry (maker, model prefix)
    builtin: str | None = None  # or a rawback built-in profile


CAMERAS = (
    Camera("Canon EOS 350D", "Canon", "Canon EOS 350D DIGITAL", ("Canon", "EOS 350D")),
    Camera("Canon Rebel XT", "Canon", "Canon EOS DIGITAL REBEL XT", ("Canon", "EOS 350D")),
    Camera("Canon EOS 5D Mark IV", "Canon", "Canon EOS 5D Mark IV", ("Canon", "EOS 5D Mark IV")),
    Camera("Nikon D90", "NIKON CORPORATION", "NIKON D90", ("Nikon", "D90")),
    Camera("Sony SLT-A57", "SONY", "SLT-A57", ("Sony", "SLT-A5")),
    Camera("Pentax *istDL", "PENTAX Corporation", "PENTAX *ist DL", ("Pentax", "*istDL")),
    # Clients take a Model starting "PENTAX" for a Pentax whatever the Make.
    Camera("Pentax K-70", "RICOH IMAGING COMPANY, LTD.", "PENTAX K-70", ("Pentax", "K-70")),
    # LibRaw's table has no SL2: its first Leica prefix that matches "SL2" is "S".
    Camera("Leica SL2", "LEICA CAMERA AG", "LEICA SL2", ("Leica", "S")),
    # LibRaw sets the width of DMC-LX100 DNGs to 4288 (src/utils/open.cpp).
    Camera("Panasonic DMC-LX100", "Panasonic", "DMC-LX100", ("Panasonic", "DMC-LX100")),
    Camera("Fujifilm X-A5", "FUJIFILM", "X-A5", ("Fujifilm", "X-A5")),
    Camera("Fujifilm GFX 50S", "FUJIFILM", "GFX 50S", ("Fujifilm", "GFX 50")),
    Camera("GoPro HERO7 Black", "GoPro", "HERO7 Black", builtin="gopro-hero7-black"),
    Camera("Kodak Z981", "EASTMAN KODAK COMPANY", "KODAK EasyShare Z981 Digital Camera", ("Kodak", "Z981")),
    Camera("Kodak DC120", "Eastman Kodak Company", "Kodak DC120 ZOOM Digital Camera", builtin="kodak-dc120"),
)


# --- profiles and the chart ----------------------------------------------------------------------


def table_profile(camera: Camera, table: list[dict]) -> CameraProfile:
    make, prefix = camera.table  # type: ignore[misc]
    entry = next(e for e in table if e["make"] == make and e["model_prefix"] == prefix)
    white = entry["maximum"] if entry["maximum"] > 0 else 16383
    bits = white.bit_length()
    black = abs(entry["black"]) if entry["black"] else round(512 * (white + 1) / 16384)
    matrix = tuple(round(x, 6) for row in entry["xyz_to_cam"][:3] for x in row)
    return CameraProfile(
        name=f"measure-{camera.label.lower().replace(' ', '-')}",
        make=make,
        model=prefix or camera.exif_model,
        cfa_pattern="RGGB",
        black_level=(black,) * 4,
        white_level=white,
        bits=bits,
        color_matrix_1=matrix,
        illuminant_1=color.D65,
    )


def profile_for(camera: Camera, table: list[dict]) -> CameraProfile:
    return builtin_profiles()[camera.builtin] if camera.builtin else table_profile(camera, table)


# Chart layout: an 8 x 4 grid of patches; row 0 the grey ramp, rows 1-3 the ColorChecker.
GRID_COLS, GRID_ROWS = 8, 4
GREYS = np.geomspace(0.03, 0.85, GRID_COLS)  # linear reflectances
MID_GREYS = range(2, 7)  # the patches whose neutrality is scored (not near black or white)
LIGHT_TINT = np.array([1.25, 1.0, 0.75])  # the scene light: warmer than D65


def cell(row: int, col: int, height: int, width: int, inner: float = 1.0) -> tuple[slice, slice]:
    """The patch at (row, col), or its central `inner` fraction, in pixels of the chart."""
    ch, cw = height / (GRID_ROWS + 1), width / (GRID_COLS + 1)
    cy, cx = ch * (row + 1), cw * (col + 1)
    hh, hw = 0.35 * ch * inner, 0.35 * cw * inner
    return slice(round(cy - hh), round(cy + hh)), slice(round(cx - hw), round(cx + hw))


def chart_linear_srgb(height: int, width: int) -> np.ndarray:
    scene = np.full((height, width, 3), 0.18)
    for col, grey in enumerate(GREYS):
        scene[cell(0, col, height, width)] = grey
    checker = color.srgb_to_linear(np.array(COLOR_CHECKER_SRGB, dtype=np.float64) / 255)
    for index, rgb in enumerate(checker):
        scene[cell(1 + index // GRID_COLS, index % GRID_COLS, height, width)] = rgb
    return scene


def chart_mosaic(profile: CameraProfile, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(mosaic, as-shot neutral): the chart seen by this camera's sensor under the warm light."""
    matrix = profile.rendering_matrix()
    balanced_from_srgb = np.linalg.inv(color.srgb_from_camera_balanced(matrix))
    balanced = chart_linear_srgb(height, width) @ balanced_from_srgb.T
    neutral = color.daylight_neutral(matrix) * LIGHT_TINT
    neutral /= neutral[1]
    camera_rgb = np.clip(balanced * neutral / neutral.max(), 0, 1)
    signal = bayer.mosaic_rgb(camera_rgb, profile.cfa_pattern)
    black = bayer.per_site(profile.black_level, height, width)
    mosaic = np.round(black + signal * (profile.white_level - black)).astype(np.uint16)
    return mosaic, neutral


def preview_image(height: int, width: int) -> np.ndarray:
    """The chart as sRGB 8-bit: RawTherapee fits its automatic tone curve to the embedded preview."""
    return np.round(255 * color.linear_to_srgb(np.clip(chart_linear_srgb(height, width), 0, 1))).astype(
        np.uint8
    )


# --- clients -------------------------------------------------------------------------------------


def read_pnm(data: bytes) -> np.ndarray:
    match = re.match(rb"P6\s+(\d+)\s+(\d+)\s+(\d+)\s", data)
    assert match, data[:40]
    width, height, maxval = (int(g) for g in match.groups())
    dtype = ">u2" if maxval > 255 else "u1"
    pixels = np.frombuffer(data, dtype, count=width * height * 3, offset=match.end())
    return pixels.reshape(height, width, 3).astype(np.uint8)


def render_libraw(path: Path, work: Path) -> tuple[np.ndarray, dict]:
    with rawpy.imread(str(path)) as raw:
        rgb = raw.postprocess(use_camera_wb=True, no_auto_bright=True, output_bps=8)
        facts = {
            "black": [int(b) for b in raw.black_level_per_channel],
            "white": int(raw.white_level),
            "raw_size": [int(raw.sizes.raw_height), int(raw.sizes.raw_width)],
            "margins": [int(raw.sizes.top_margin), int(raw.sizes.left_margin)],
            "matrix": [round(float(x), 4) for x in np.asarray(raw.rgb_xyz_matrix)[:3].reshape(-1)],
            "camera_wb": [round(float(x), 4) for x in raw.camera_whitebalance[:3]],
        }
    return rgb, facts


def render_dcraw(path: Path, work: Path) -> tuple[np.ndarray, dict]:
    result = subprocess.run(["dcraw", "-c", "-w", str(path)], capture_output=True, timeout=TIMEOUT)
    info = subprocess.run(["dcraw", "-i", "-v", str(path)], capture_output=True, text=True, timeout=TIMEOUT)
    facts = dict(
        re.findall(
            r"^(Camera|Image size|Output size|Camera multipliers|Raw colors|Filter pattern): (.*)$",
            info.stdout,
            re.M,
        )
    )
    return read_pnm(result.stdout), facts


def render_darktable(path: Path, work: Path) -> tuple[np.ndarray, dict]:
    out, config = work / f"{path.stem}-dt.png", work / f"{path.stem}-dt-config"
    config.mkdir()
    cmd = [
        "darktable-cli",
        str(path),
        str(out),
        "--core",
        "--configdir",
        str(config),
        "--library",
        ":memory:",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    if result.returncode != 0 or not out.is_file():
        raise RuntimeError(f"darktable failed: {result.stdout[-300:]} {result.stderr[-300:]}")
    return np.asarray(Image.open(out).convert("RGB")), {}


def render_rawtherapee(path: Path, work: Path) -> tuple[np.ndarray, dict]:
    out, home = work / f"{path.stem}-rt.png", work / f"{path.stem}-rt-home"
    home.mkdir()
    cmd = ["rawtherapee-cli", "-q", "-d", "-Y", "-n", "-o", str(out), "-c", str(path)]
    subprocess.run(
        cmd, capture_output=True, text=True, timeout=TIMEOUT, env={**os.environ, "HOME": str(home)}
    )
    if not out.is_file():
        raise RuntimeError("rawtherapee wrote no image")
    return np.asarray(Image.open(out).convert("RGB")), {}


CLIENTS = {
    "libraw": (None, render_libraw),
    "dcraw": ("dcraw", render_dcraw),
    "darktable": ("darktable-cli", render_darktable),
    "rawtherapee": ("rawtherapee-cli", render_rawtherapee),
}


# --- comparison ----------------------------------------------------------------------------------


def find_offset(big: np.ndarray, small: np.ndarray) -> tuple[int, int]:
    """Where `small` (a crop) sits in `big`: the (dy, dx) of least mean absolute difference,
    searched on a 4x smaller grey image, then refined."""
    dh, dw = big.shape[0] - small.shape[0], big.shape[1] - small.shape[1]
    g_big, g_small = big.mean(axis=2), small.mean(axis=2)

    def cost(dy: int, dx: int, step: int) -> float:
        window = g_big[dy : dy + small.shape[0] : step, dx : dx + small.shape[1] : step]
        return float(np.abs(window - g_small[::step, ::step]).mean())

    coarse = min(
        ((dy, dx) for dy in range(0, dh + 1, 4) for dx in range(0, dw + 1, 4)), key=lambda p: cost(*p, 4)
    )
    near = [
        (dy, dx)
        for dy in range(max(0, coarse[0] - 4), min(dh, coarse[0] + 4) + 1)
        for dx in range(max(0, coarse[1] - 4), min(dw, coarse[1] + 4) + 1)
    ]
    return min(near, key=lambda p: cost(*p, 1))


def grey_spread(rgb: np.ndarray, shape: tuple[int, int], origin: tuple[int, int]) -> tuple[float, float]:
    """(largest R,G,B spread of a mid-grey patch mean, mean level of the middle grey patch) of a
    render whose pixel (0, 0) is chart pixel `origin` (renders keep the chart's scale)."""
    height, width = shape
    spreads, middle = [], 0.0
    for col in MID_GREYS:
        rows, cols = cell(0, col, height, width, inner=0.5)
        patch = rgb[
            rows.start - origin[0] : rows.stop - origin[0], cols.start - origin[1] : cols.stop - origin[1]
        ]
        mean = patch.reshape(-1, 3).astype(np.float64).mean(axis=0)
        spreads.append(float(np.ptp(mean)))
        if col == 4:
            middle = float(mean.mean())
    return max(spreads), middle


def compare(real: np.ndarray, ours: np.ndarray, shape: tuple[int, int]) -> dict:
    """The real-identity render against the rawback one: sizes, crop, difference, neutrality."""
    out: dict = {
        "dims_real": f"{real.shape[1]}x{real.shape[0]}",
        "dims_rawback": f"{ours.shape[1]}x{ours.shape[0]}",
    }
    # Client borders (RawTherapee drops 4 px each side) put a render's (0, 0) off the chart's.
    border = ((shape[0] - ours.shape[0]) // 2, (shape[1] - ours.shape[1]) // 2)
    if real.shape == ours.shape:
        offset = (0, 0)
        overlap_real, overlap_ours = real, ours
    elif real.shape[0] <= ours.shape[0] and real.shape[1] <= ours.shape[1]:
        offset = find_offset(ours, real)
        overlap_real = real
        overlap_ours = ours[offset[0] : offset[0] + real.shape[0], offset[1] : offset[1] + real.shape[1]]
    else:
        out.update(offset=None, mad=None)
        return out
    out["offset"] = list(offset)
    out["mad"] = round(float(np.abs(overlap_real.astype(np.float64) - overlap_ours).mean()), 2)
    origin_real = (border[0] + offset[0], border[1] + offset[1])
    out["grey_spread_real"], out["grey_level_real"] = (
        round(v, 1) for v in grey_spread(real, shape, origin_real)
    )
    out["grey_spread_rawback"], out["grey_level_rawback"] = (
        round(v, 1) for v in grey_spread(ours, shape, border)
    )
    return out


# --- the run -------------------------------------------------------------------------------------


def write_pair(
    camera: Camera, profile: CameraProfile, mosaic: np.ndarray, neutral: np.ndarray, folder: Path, tag: str
) -> tuple[Path, Path]:
    """The same mosaic as two DNGs: named as the camera (whatever rawback would decide) and with
    Make "rawback"."""
    exif = ExifData(make=camera.exif_make, model=camera.exif_model, datetime="2024:05:01 12:00:00")
    preview = preview_image(*mosaic.shape)
    unique = " ".join(simplified_name(camera.exif_make, camera.exif_model))
    real = DngIdentity(camera.exif_make, camera.exif_model, unique)
    ours = decide_identity(
        profile_is_known=False,
        profile_make=profile.make,
        profile_model=profile.model,
        profile_name=profile.name,
        exif_make=camera.exif_make,
        exif_model=camera.exif_model,
    )
    paths = []
    for name, identity in (("real", real), ("rawback", ours)):
        path = folder / f"{profile.name}-{tag}-{name}.dng"
        write_dng(
            path, mosaic, sensor=profile.dng_sensor(), as_shot_neutral=neutral, exif=exif,
            preview=preview, identity=identity, overwrite=True,
        )  # fmt: skip
        paths.append(path)
    return paths[0], paths[1]


def decision(camera: Camera, profile: CameraProfile) -> str:
    """The Make rawback writes for this camera when its profile is known."""
    identity = decide_identity(
        profile_is_known=True,
        profile_make=profile.make,
        profile_model=profile.model,
        profile_name=profile.name,
        exif_make=camera.exif_make,
        exif_model=camera.exif_model,
    )
    return identity.make


def measure(args: argparse.Namespace) -> list[dict]:
    table = json.loads(COLORDATA.read_text())
    height, width = (int(v) for v in args.size.lower().split("x")[::-1])
    wanted = [
        c
        for c in CAMERAS
        if not args.cameras or any(k.lower() in c.label.lower() for k in args.cameras.split(","))
    ]
    clients = {n: f for n, (tool, f) in CLIENTS.items() if tool is None or shutil.which(tool)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for camera in wanted:
            profile = profile_for(camera, table)
            cases = [("own", profile)]
            if args.mismatch:
                generic = builtin_profiles()["generic"]
                cases.append(
                    ("generic", replace(generic, name=profile.name, make=profile.make, model=profile.model))
                )
            for tag, data_profile in cases:
                mosaic, neutral = chart_mosaic(data_profile, height, width)
                real, ours = write_pair(camera, data_profile, mosaic, neutral, folder, tag)
                for name, render in clients.items():
                    row = {
                        "camera": camera.label,
                        "data": tag,
                        "client": name,
                        "writes": decision(camera, profile),
                    }
                    try:
                        real_rgb, real_facts = render(real, folder)
                        ours_rgb, ours_facts = render(ours, folder)
                        row.update(compare(real_rgb, ours_rgb, (height, width)))
                        changed = {
                            k: (ours_facts[k], real_facts[k])
                            for k in real_facts
                            if real_facts[k] != ours_facts.get(k)
                        }
                        if changed:
                            row["changed"] = changed
                    except Exception as exc:  # one failing client must not hide the others
                        row["error"] = str(exc)[:200]
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    return rows


def markdown(rows: list[dict]) -> str:
    header = (
        "camera", "rawback writes Make", "data", "client", "dims real / rawback", "crop (dy, dx)", "MAD",
        "grey spread real / rawback", "mid grey real / rawback", "notes",
    )  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        head = [r["camera"], r["writes"], r["data"], r["client"]]
        if "error" in r:
            lines.append("| " + " | ".join([*head, "error", "", "", "", "", r["error"]]) + " |")
            continue
        notes = "; ".join(
            "LibRaw reports its own table matrix" if k == "matrix" else f"{k}: {a} -> {b}"
            for k, (a, b) in r.get("changed", {}).items()
        )
        cells = [
            f"{r['dims_real']} / {r['dims_rawback']}",
            str(r.get("offset")),
            str(r.get("mad")),
            f"{r.get('grey_spread_real')} / {r.get('grey_spread_rawback')}",
            f"{r.get('grey_level_real')} / {r.get('grey_level_rawback')}",
            notes,
        ]
        lines.append("| " + " | ".join([*head, *cells]) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1536x1024", help="chart size WxH (default 1536x1024)")
    parser.add_argument("--cameras", default="", help="comma-separated parts of camera labels")
    parser.add_argument("--mismatch", action="store_true", help="also the real identity on generic data")
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--keep", help="keep the DNGs and renders in this folder")
    args = parser.parse_args()
    rows = measure(args)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()

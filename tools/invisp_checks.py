"""Replication checks of the Invertible-ISP baseline (issue 20, docs/invisp.md): the paper's
qualitative claims measured on centre crops of RAW files.

For each file, a centre crop (--crop photo pixels) of its true RAW, as the training kind sees it:
L = scene-linear sRGB of the bilinear-demosaicked truth under LibRaw's as-shot white balance
(rawback.train.invisp_kind.scene_linear). Then

  (a) inversion without JPEG: the largest error of f^-1(f(L)) against L, in float32 and float64
      (the flow's own numerical exactness), and the PSNR with the photo f(L) stored as 8 bits
      (clipped, rounded), and the share of that photo's pixels clipped;
  (b) the drop with a real JPEG: f(L) stored as a Pillow JPEG (4:2:0) at each --quality, decoded,
      inverted, against L;
  (c) over-exposed regions, on the whole frame: the default protocol's input (LibRaw's
      camera-WB render as a q90 4:2:0 JPEG, what `rawback eval` gives every method) inverted by
      the flow and by the analytic inverse, both given the true white balance, scored against
      the true mosaic (packed PSNR) overall and where the photo is clipped
      (rawback.metrics.overexposed_mask), and the WB-oracle PSNR (one gain per channel fitted:
      structure only) and exposure error in stops of each.

PSNRs in (a) and (b) are of L with peak 1 (L is unclipped, so values above 1 count as they are).

    python tools/invisp_checks.py ../shared/data/raw --weights models/rawback-invisp.pt \\
        --crop 512 --out runs/invisp-checks
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rawback import metrics
from rawback.invisp_inference import invert_photo, linear_to_mosaic
from rawback.invisp_weights import load_flow
from rawback.isp.bayer import pack_rggb
from rawback.isp.unprocess import UnprocessSettings, raw_from_srgb_matrix, unprocess
from rawback.train.data import build_cache, default_cache_dir, load_cached
from rawback.train.invisp_kind import scene_linear

VALIDATION = (
    "canon_s40/CRW_0118.CRW",
    "canon_g2/CRW_0304.CRW",
    "gopro/HERO8_GOPR0009.dng",
    "kodak_dc120/P003917.KDC",
)


GENERAL = ("pixels", "a_max_error_fp32", "a_max_error_fp64")  # printed with %g, not 2 decimals


def centre(shape: tuple[int, ...], crop: int) -> tuple[slice, slice]:
    h, w = shape[:2]
    ch, cw = min(crop, h) // 2 * 2, min(crop, w) // 2 * 2
    y, x = (h - ch) // 4 * 2, (w - cw) // 4 * 2
    return slice(y, y + ch), slice(x, x + cw)


def jpeg(rgb8: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb8).save(buffer, "JPEG", quality=quality, subsampling=2)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def to8(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def flow_mosaic(model, rgb: np.ndarray, profile, neutral: np.ndarray) -> np.ndarray:
    return linear_to_mosaic(invert_photo(model, rgb), raw_from_srgb_matrix(profile, neutral), "RGGB")


@torch.no_grad()
def check_file(model, model64, folder: Path, crop: int, qualities: list[int]) -> dict:
    item = load_cached(folder)
    window = centre(item.truth.shape, crop)
    truth = np.asarray(item.truth[window], dtype=np.float32)
    camera = metrics.bilinear_demosaic(truth, "RGGB").astype(np.float32)
    linear = scene_linear(camera, item.profile, item.neutral)
    x = torch.from_numpy(np.ascontiguousarray(linear)).permute(2, 0, 1)[None]
    photo = model(x)
    scores: dict[str, float | None] = {"pixels": float(truth.size)}
    # Max abs error: the PSNRs of an exact inverse reach rawback.metrics' cap (100 dB).
    scores["a_max_error_fp32"] = float((model.inverse(photo) - x).abs().max())
    scores["a_max_error_fp64"] = float((model64.inverse(model64(x.double())) - x.double()).abs().max())
    photo8 = to8(photo[0].permute(1, 2, 0).numpy())
    scores["a_8bit"] = metrics.psnr(invert_photo(model, photo8 / np.float32(255.0)), linear)
    scores["photo_clipped_share"] = float((photo8 >= 250).any(axis=-1).mean())
    for quality in qualities:
        decoded = jpeg(photo8, quality) / np.float32(255.0)
        scores[f"b_jpeg_q{quality}"] = metrics.psnr(invert_photo(model, decoded), linear)
    # (c) the default protocol's input: LibRaw's render, stored as a q90 4:2:0 JPEG, whole frame
    # (centre crops of these files hold few clipped pixels)
    render8 = jpeg(np.asarray(item.libraw), 90)
    render = render8 / np.float32(255.0)
    truth = np.asarray(item.truth, dtype=np.float32)
    truth_packed = pack_rggb(truth, "RGGB")
    start = time.perf_counter()
    flow = pack_rggb(flow_mosaic(model, render, item.profile, item.neutral), "RGGB")
    scores["flow_seconds_per_mp"] = (time.perf_counter() - start) / (truth.size / 1e6)
    analytic = pack_rggb(
        unprocess(render, item.profile, item.neutral, UnprocessSettings(transfer="bt709")), "RGGB"
    )
    over = metrics.overexposed_mask(render8)
    scores["c_overexposed_share"] = float(over.mean())
    for name, packed in (("flow", flow), ("analytic", analytic)):
        scores[f"c_{name}_psnr"] = metrics.psnr(packed, truth_packed)
        scores[f"c_{name}_psnr_overexposed"] = metrics.masked_psnr(packed, truth_packed, over)
        # the structure with the per-channel scale factored out, and the brightness error
        scores[f"c_{name}_psnr_wb_oracle"] = metrics.wb_oracle_psnr(packed, truth_packed)
        scores[f"c_{name}_exposure_error_stops"] = metrics.exposure_error_stops(packed, truth_packed)
    return {"file": item.name, "camera": item.profile.name, **scores}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data", type=Path)
    parser.add_argument("--weights", type=Path, default=Path("models/rawback-invisp.pt"))
    parser.add_argument("--files", nargs="*", default=list(VALIDATION))
    parser.add_argument("--crop", type=int, default=512)
    parser.add_argument("--quality", type=int, action="append", default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/invisp-checks"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    qualities = args.quality or [90, 75]
    model = load_flow(args.weights)
    model64 = load_flow(args.weights).double()
    folders, errors = build_cache([args.data / name for name in args.files], default_cache_dir())
    if errors:
        raise SystemExit("\n".join(errors))
    rows = [check_file(model, model64, folder, args.crop, qualities) for folder in folders]
    keys = [k for k in rows[0] if k not in ("file", "camera")]
    mean = {
        k: float(np.mean([r[k] for r in rows if r[k] is not None]))
        for k in keys
        if any(r[k] is not None for r in rows)
    }
    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "weights": str(args.weights),
        "crop": args.crop,
        "qualities": qualities,
        "files": rows,
        "mean": mean,
    }
    (args.out / "invisp-checks.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = ["| file | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for r in [*rows, {"file": "mean", **mean}]:
        cells = [
            ("n/a" if r.get(k) is None else f"{r[k]:.2g}" if k in GENERAL else f"{r[k]:.2f}") for k in keys
        ]
        lines.append(f"| {r['file']} | " + " | ".join(cells) + " |")
    (args.out / "invisp-checks.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

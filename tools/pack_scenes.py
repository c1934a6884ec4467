"""Pack the synthetic scenes' photographs small enough to travel to a lent GPU (docs/training.md,
"Training on a lent GPU").

Training never reads a scene larger than SceneSettings.scene_side's upper end (short side 768
pixels): every photo is reduced to that short side (never enlarged), as `load_scene` does, and
re-encoded as JPEG. MANIFEST.tsv and SOURCES.md (the licences and attributions) are copied beside,
so they travel with the photos. The pack must stay under --max-mib: its default (30) leaves room in
the 64 MiB a device call carries for the repository (about 4.5 MiB) and a checkpoint of the medium
preset (27 MiB). Measured on the 269 photos of ../shared/data/scenes at short side 768: q90 4:2:0
59 MiB, q80 39, q75 33, q70 30 (4:4:4 costs a fifth more at every quality), hence q70 4:2:0.

    python tools/pack_scenes.py ../shared/data/scenes .pack/scenes [--quality 70] [--max-mib 30]

A pack over the cap is removed again and the command fails; lower --quality or --side.
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
from pathlib import Path

from PIL import Image

from rawback.train.scenes import SceneSettings, find_scenes, load_scene

BESIDE = ("MANIFEST.tsv", "SOURCES.md", "LICENSE", "README.md")
DEFAULT_SIDE = max(SceneSettings().scene_side)
DEFAULT_QUALITY = 70
DEFAULT_SUBSAMPLING = 2  # 4:2:0; 4:4:4 costs a fifth more bytes
DEFAULT_MAX_MIB = 30.0


def encode(path: Path, side: int, quality: int, subsampling: int) -> bytes:
    """The photo with its short side `side` (never enlarged) as a baseline JPEG."""
    buffer = io.BytesIO()
    rgb = load_scene(path, side)
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality, subsampling=subsampling, optimize=True)
    return buffer.getvalue()


def pack(
    scenes: Path,
    out: Path,
    *,
    side: int = DEFAULT_SIDE,
    quality: int = DEFAULT_QUALITY,
    subsampling: int = DEFAULT_SUBSAMPLING,
    max_mib: float = DEFAULT_MAX_MIB,
) -> tuple[int, float]:
    """Write the pack; (photos, MiB). A pack over `max_mib` is removed and raises ValueError."""
    paths = find_scenes(scenes)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out}: exists and is not empty")
    out.mkdir(parents=True, exist_ok=True)
    total = 0
    for path in paths:
        relative = path.relative_to(scenes).with_suffix(".jpg")
        target = out / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        data = encode(path, side, quality, subsampling)
        target.write_bytes(data)
        total += len(data)
    for name in BESIDE:
        if (scenes / name).is_file():
            shutil.copyfile(scenes / name, out / name)
            total += (out / name).stat().st_size
    mib = total / 2**20
    if mib > max_mib:
        shutil.rmtree(out)
        raise ValueError(
            f"the pack would be {mib:.1f} MiB, over --max-mib {max_mib}: lower --quality or --side"
        )
    return len(paths), mib


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenes", type=Path, help="folder of scene photographs (any depth)")
    parser.add_argument("out", type=Path, help="the pack folder to write (new or empty)")
    parser.add_argument("--side", type=int, default=DEFAULT_SIDE, help="short side in pixels")
    parser.add_argument("--quality", type=int, default=DEFAULT_QUALITY, help="JPEG quality")
    parser.add_argument(
        "--subsampling", type=int, default=DEFAULT_SUBSAMPLING, choices=(0, 1, 2), help="0 4:4:4, 2 4:2:0"
    )
    parser.add_argument("--max-mib", type=float, default=DEFAULT_MAX_MIB, help="refuse a larger pack")
    args = parser.parse_args(argv)
    try:
        count, mib = pack(
            args.scenes, args.out, side=args.side, quality=args.quality, subsampling=args.subsampling,
            max_mib=args.max_mib,
        )  # fmt: skip
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"packed {count} photos into {args.out}: {mib:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

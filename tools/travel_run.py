"""Carry a training run to and from a lent GPU (docs/training.md, "Training on a lent GPU").

A device call brings back at most 8 files of 16 MiB each (64 MiB in all) and carries up at most
64 MiB; nothing persists between sessions. `pack` cuts a run folder's files into parts of at most
--part-mib (15 MiB) with a MANIFEST.json of their SHA-256 digests; `unpack` checks every digest and
joins the parts back into the run folder, so `rawback train --out RUN --resume` continues exactly.

    python tools/travel_run.py pack runs/gpu $OUT/run             # on the device, after training
    python tools/travel_run.py pack runs/gpu .travel --up         # here: only what a resume reads
    python tools/travel_run.py unpack .travel runs/gpu            # on the device, before training

`--up` leaves out model.pt and model.json: the next checkpoint writes them again from the EMA in
checkpoint.pt, and the medium preset's checkpoint plus the scene pack and the repository only just
fit the 64 MiB that travels up.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

RUN_FILES = ("checkpoint.pt", "model.pt", "model.json", "train_config.json", "log.jsonl")
UP_FILES = ("checkpoint.pt", "train_config.json", "log.jsonl")  # all a resume reads
MANIFEST = "MANIFEST.json"
PART_MIB = 15.0


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def pack(run: Path, dest: Path, *, names: tuple[str, ...] = RUN_FILES, part_mib: float = PART_MIB) -> dict:
    """Write RUN's files (those of `names` it holds; checkpoint.pt is required) to DEST as parts
    of at most `part_mib` MiB and MANIFEST.json; returns the manifest."""
    if not (run / "checkpoint.pt").is_file():
        raise FileNotFoundError(f"{run}: no checkpoint.pt to carry")
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise FileExistsError(f"{dest}: exists and is not empty")
    size = int(part_mib * 2**20)
    manifest: dict = {"files": []}
    for name in names:
        path = run / name
        if not path.is_file():
            continue
        data = path.read_bytes()
        parts = []
        for index, start in enumerate(range(0, max(len(data), 1), size)):
            chunk = data[start : start + size]
            part = f"{name}.part{index:02d}"
            (dest / part).write_bytes(chunk)
            parts.append({"name": part, "bytes": len(chunk), "sha256": sha256(chunk)})
        manifest["files"].append({"name": name, "bytes": len(data), "sha256": sha256(data), "parts": parts})
    (dest / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def unpack(source: Path, run: Path) -> dict:
    """Check every part's and every file's digest, then write the files into RUN (each atomically,
    the checkpoint last, so a failed unpack never leaves a checkpoint beside older weights)."""
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{source}: no readable {MANIFEST} ({exc})") from exc
    joined: dict[str, bytes] = {}
    for entry in manifest["files"]:
        name = entry["name"]
        if Path(name).name != name or name not in RUN_FILES:
            raise ValueError(f"{source}: {name!r} is not a run file")
        chunks = []
        for part in entry["parts"]:
            path = source / part["name"]
            if Path(part["name"]).name != part["name"] or not path.is_file():
                raise ValueError(f"{source}: part {part['name']} is missing")
            chunk = path.read_bytes()
            if sha256(chunk) != part["sha256"]:
                raise ValueError(f"{path}: SHA-256 differs from the manifest (damaged in transit)")
            chunks.append(chunk)
        data = b"".join(chunks)
        if len(data) != entry["bytes"] or sha256(data) != entry["sha256"]:
            raise ValueError(f"{source}: {name} does not join back to the file packed")
        joined[name] = data
    if "checkpoint.pt" not in joined:
        raise ValueError(f"{source}: carries no checkpoint.pt")
    run.mkdir(parents=True, exist_ok=True)
    for name in sorted(joined, key=lambda n: n == "checkpoint.pt"):
        tmp = run / f".{name}.tmp"
        tmp.write_bytes(joined[name])
        os.replace(tmp, run / name)
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("pack", help="cut RUN's files into parts in DEST (new or empty)")
    p.add_argument("run", type=Path)
    p.add_argument("dest", type=Path)
    p.add_argument("--up", action="store_true", help="only what a resume reads (no model.pt/model.json)")
    p.add_argument("--part-mib", type=float, default=PART_MIB)
    u = commands.add_parser("unpack", help="check SOURCE's digests and rebuild the run folder RUN")
    u.add_argument("source", type=Path)
    u.add_argument("run", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "pack":
            names = UP_FILES if args.up else RUN_FILES
            manifest = pack(args.run, args.dest, names=names, part_mib=args.part_mib)
            verb, where = "packed", args.dest
        else:
            manifest = unpack(args.source, args.run)
            verb, where = "unpacked", args.run
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    parts = sum(len(f["parts"]) for f in manifest["files"])
    mib = sum(f["bytes"] for f in manifest["files"]) / 2**20
    names = ", ".join(f["name"] for f in manifest["files"])
    print(f"{verb} {names} ({mib:.1f} MiB, {parts} parts) into {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

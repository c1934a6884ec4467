#!/usr/bin/env python3
"""Build rawback's camera library (rawback/data/camera_library.json) from LibRaw's colour table.

Reads ../shared/data/cameras/libraw_colordata.json (LibRaw's adobe_coeff table as facts, see the
README beside it) and tools/libraw_names.json (how LibRaw normalises maker and model names, made
by tools/extract_libraw_names.py), and keeps what rawback uses, in LibRaw's table order (the
order decides which entry a model matches):

* per camera: maker, model prefix, the XYZ(D65) -> camera matrix (9 values, row-major), LibRaw's
  black and maximum as the table gives them (signed: see rawback/camera_library.py), and the
  line of src/tables/colordata.cpp it comes from;
* a four-colour (CMYG) entry keeps its place with no matrix and the reason: a model that matches
  it is that camera in LibRaw too, and an RGB Bayer DNG cannot hold its colours;
* LibRaw's maker names and model aliases, and Canon's regional EOS names.

The output is deterministic: building twice gives the same bytes, and tests/test_camera_library.py
checks that the committed file equals a rebuild when the shared file is there.

    python tools/build_camera_library.py            # from the repository root
    python tools/build_camera_library.py --check    # exit 1 if the committed file is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "cameras" / "libraw_colordata.json"
DEFAULT_NAMES = REPO / "tools" / "libraw_names.json"
DEFAULT_OUT = REPO / "rawback" / "data" / "camera_library.json"
COLORDATA = "src/tables/colordata.cpp"


def slug(make: str, model: str) -> str:
    """The profile name of a library camera (rawback.camera_library.LibraryCamera.slug)."""
    return "libraw-" + re.sub(r"[^a-z0-9]+", "-", f"{make} {model}".lower()).strip("-")


def camera_row(entry: dict) -> dict:
    row = {"make": entry["make"], "model": entry["model_prefix"]}
    matrix = entry["xyz_to_cam"]
    if matrix is None:
        row["xyz_to_cam"] = None
        row["unusable"] = "LibRaw's table gives no colour matrix"
    elif len(matrix) != 3:
        row["xyz_to_cam"] = None
        row["unusable"] = "a four-colour (CMYG) sensor: an RGB Bayer DNG cannot hold its colours"
    else:
        row["xyz_to_cam"] = [v for r in matrix for v in r]
    row["black"] = entry["black"]
    row["maximum"] = entry["maximum"]
    row["line"] = entry["line"]
    return row


def source_commit(entries: list[dict]) -> str:
    commits = {re.match(r"LibRaw@([0-9a-f]+) ", e["source"]).group(1) for e in entries}  # type: ignore[union-attr]
    if len(commits) != 1:
        raise SystemExit(f"the table's entries name several LibRaw commits: {sorted(commits)}")
    return commits.pop()


def alias_groups(names: dict) -> list[dict]:
    """LibRaw's alias tables and Canon's regional names as {alias: LibRaw's name} per group."""
    groups = [
        {
            "makes": table["makes"],
            "sets_make": table["sets_make"],
            "names": {alias: name for name, aliases in table["names"] for alias in aliases},
            "source": f"LibRaw {table['source']} ({table['table']})",
        }
        for table in names["aliases"]
    ]
    canon = names["canon_names"]
    groups.append(
        {
            "makes": ["Canon"],
            "sets_make": None,
            "names": {alias: name for name, aliases in canon["names"] for alias in aliases},
            "source": f"LibRaw {canon['source']} {names['exiftool']['version']}",
        }
    )
    return groups


def build(source: Path, names_path: Path) -> str:
    entries = json.loads(source.read_text())
    names = json.loads(names_path.read_text())
    if [e["order"] for e in entries] != list(range(len(entries))):
        raise SystemExit(f"{source}: entries are not in table order")
    commit = source_commit(entries)
    if commit != names["libraw"]["commit"]:
        raise SystemExit(
            f"{names_path} was extracted from LibRaw {names['libraw']['commit']}, the table from {commit}"
        )
    rows = [camera_row(e) for e in entries]
    slugs = [slug(r["make"], r["model"]) for r in rows]
    if len(set(slugs)) != len(slugs):
        raise SystemExit("two library cameras would get the same profile name")
    unusable: dict[str, int] = {}
    for row in rows:
        if "unusable" in row:
            unusable[row["unusable"]] = unusable.get(row["unusable"], 0) + 1
    header = {
        "about": "rawback's camera library: LibRaw's colour table (adobe_coeff), one camera per line in "
        "LibRaw's order; the first entry of the photo's maker whose model prefix starts its model wins. "
        "Built by tools/build_camera_library.py; see docs/cameras.md.",
        "libraw": {
            "repository": names["libraw"]["repository"],
            "commit": commit,
            "file": COLORDATA,
        },
        "counts": {"cameras": len(rows), "usable": len(rows) - sum(unusable.values()), "unusable": unusable},
        "makers": names["makers"]["names"],
        "makers_source": f"LibRaw {names['makers']['source']}",
        "aliases": alias_groups(names),
    }
    header["cameras"] = rows
    return dump(header) + "\n"


def dump(value: object, depth: int = 0) -> str:
    """JSON with one line per camera, alias or maker: small enough to read, and to diff when
    LibRaw's table changes."""
    pad, inner = " " * depth, " " * (depth + 1)
    flat = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, dict | list) or depth >= 2 or len(flat) <= 100:
        return flat
    if isinstance(value, dict):
        items = [
            f"{inner}{json.dumps(k, ensure_ascii=False)}: {dump(v, depth + 1)}" for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    return "[\n" + ",\n".join(f"{inner}{dump(v, depth + 1)}" for v in value) + f"\n{pad}]"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="libraw_colordata.json")
    parser.add_argument("--names", type=Path, default=DEFAULT_NAMES, help="libraw_names.json")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="compare with --out instead of writing it")
    args = parser.parse_args(argv)
    if not args.source.is_file():
        parser.error(f"{args.source}: not found (LibRaw's table as JSON; see --source)")
    text = build(args.source, args.names)
    if args.check:
        same = args.out.is_file() and args.out.read_text() == text
        print(f"{args.out}: {'up to date' if same else 'differs from a rebuild'}")
        return 0 if same else 1
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    data = json.loads(text)
    print(f"wrote {args.out}: {data['counts']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Extract how LibRaw names cameras, as facts, into tools/libraw_names.json.

LibRaw finds a camera's colour matrix by its maker and a model name it first normalises
(src/metadata/identify.cpp, src/metadata/normalize_model.cpp). rawback follows the same rules for a
JPEG's EXIF Make/Model (rawback/camera_library.py); the data those rules need is copied here from
the sources, so that tools/build_camera_library.py can rebuild the package's camera library from
this file and ../shared/data/cameras/libraw_colordata.json alone:

* `makers`: LibRaw's CorpTable (identify.cpp), in order: the first name found, case-insensitively,
  inside the EXIF Make names the maker (a maker listed twice takes its first spelling).
* `aliases`: LibRaw's model alias tables (normalize_model.cpp: "@NAME" starts the names that mean
  NAME), with the makers each applies to and the maker it sets, as the code around them says
  (written down below in ALIAS_TABLES, checked by hand against that code).
* `canon_names`: Canon's regional names for the EOS models LibRaw names by their model ID
  (normalize_model.cpp `unique[]`, IDs from internal/libraw_cameraids.h): ExifTool's
  %canonModelID (lib/Image/ExifTool/Canon.pm) spells every name a model ID has, e.g.
  0x80000189 'EOS Digital Rebel XT / 350D / Kiss Digital N', which LibRaw calls "EOS 350D". A
  camera's JPEG says "Canon EOS DIGITAL REBEL XT" where its CR2 gives LibRaw that ID.

Usage (from the repository root; the git directories may be bare clones):

    python tools/extract_libraw_names.py --libraw-git LIBRAW.git --exiftool-git EXIFTOOL.git \
        > tools/libraw_names.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys

LIBRAW_COMMIT = "e419de08001de28ae6988ecb22df47e52b9c5eaa"  # the commit of libraw_colordata.json
IDENTIFY = "src/metadata/identify.cpp"
NORMALIZE = "src/metadata/normalize_model.cpp"
CAMERA_IDS = "internal/libraw_cameraids.h"
CANON_PM = "lib/Image/ExifTool/Canon.pm"

# alias table -> (the makers whose models it renames, the maker it sets or None), from the code
# of LibRaw::GetNormalizedModel that reads each table.
ALIAS_TABLES = {
    "fujialias": (["Fujifilm"], None),
    "kodakalias": (["Kodak"], None),
    "leafalias": (["Leaf", "Mamiya"], "Leaf"),  # Mamiya: re-badged Leaf backs become Leaf
    "KonicaMinolta_aliases": (["Minolta", "Konica"], "Minolta"),
    "nikonalias": (["Nikon"], None),
    "olyalias": (["Olympus"], None),
    "panalias": (["Panasonic", "Leica", "Yuneec"], "Panasonic"),  # re-badged Panasonics
    "phase1alias": (["Phase One", "Mamiya"], "Phase One"),  # Mamiya: re-badged Phase One backs
    "SamsungPentax_aliases": (["Pentax"], None),
    "samsungalias": (["Samsung"], None),
}


def git_show(git_dir: str, commit: str, path: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", git_dir, "show", f"{commit}:{path}"], check=True, capture_output=True, text=True
    ).stdout


def git_rev(git_dir: str, commit: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", git_dir, "rev-parse", commit], check=True, capture_output=True, text=True
    ).stdout.strip()


def strip_c_comments(src: str) -> str:
    """C/C++ comments replaced by spaces (newlines kept, so line numbers stay), string literals kept."""
    out, i, n = [], 0, len(src)
    while i < n:
        if src[i] == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append(src[i : j + 1])
            i = j + 1
        elif src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append("".join(c if c == "\n" else " " for c in src[i:j]))
            i = j
        else:
            out.append(src[i])
            i += 1
    return "".join(out)


def line_of(src: str, offset: int) -> int:
    return src.count("\n", 0, offset) + 1


def c_string_array(code: str, name: str) -> tuple[list[str], int]:
    """The strings of `static const char NAME[][N] = { ... };` (adjacent literals joined, as C
    joins them) and the line it starts on."""
    m = re.search(rf"\b{re.escape(name)}\s*\[\]\s*\[\s*\d+\s*\]\s*=\s*\{{(.*?)\}};", code, re.S)
    if not m:
        raise SystemExit(f"{name} not found in {NORMALIZE}")
    items, current = [], []
    for token in re.findall(r'"(?:[^"\\]|\\.)*"|,', m.group(1)):  # commas inside quotes stay
        if token == ",":
            items.append("".join(current))
            current = []
        else:
            current.append(token[1:-1])
    items.append("".join(current))
    return [item for item in items if item], line_of(code, m.start())


def alias_groups(items: list[str]) -> list[list]:
    """["@A", "a1", "a2", "@B", "b1"] -> [["A", ["a1", "a2"]], ["B", ["b1"]]]."""
    groups: list[list] = []
    for item in items:
        if item.startswith("@"):
            groups.append([item[1:], []])
        elif groups:
            groups[-1][1].append(item)
    return groups


def corp_table(identify: str) -> list[list[str]]:
    code = strip_c_comments(identify)
    m = re.search(r"CorpTable\[\]\s*=\s*\{(.*?)\n\};", code, re.S)
    if not m:
        raise SystemExit(f"CorpTable not found in {IDENTIFY}")
    first: dict[str, str] = {}
    out = []
    for enum, name in re.findall(r'\{\s*LIBRAW_CAMERAMAKER_(\w+)\s*,\s*"([^"]*)"\s*\}', m.group(1)):
        first.setdefault(enum, name)
        out.append([name, first[enum]])
    return out


def canon_ids(header: str) -> dict[str, int]:
    ids = {}
    for name, expr in re.findall(r"#define\s+(CanonID_\w+)\s+(.+)", header):
        terms = re.findall(r"0[xX][0-9a-fA-F]+|\d+", expr)
        ids[name] = sum(int(t, 0) for t in terms)
    return ids


def canon_unique(code: str) -> tuple[list[tuple[str, str]], int]:
    m = re.search(r"\}\s*unique\[\]\s*=\s*\{(.*?)\n\s*\},", code, re.S)
    if not m:
        raise SystemExit(f"unique[] not found in {NORMALIZE}")
    return re.findall(r'\{\s*(CanonID_\w+)\s*,\s*"([^"]*)"\s*\}', m.group(1)), line_of(code, m.start())


def exiftool_canon_models(pm: str) -> dict[int, str]:
    m = re.search(r"%canonModelID\s*=\s*\((.*?)\n\);", pm, re.S)
    if not m:
        raise SystemExit(f"%canonModelID not found in {CANON_PM}")
    return {
        int(key, 0): name
        for key, name in re.findall(r"^\s*(0x[0-9a-fA-F]+|\d+)\s*=>\s*'([^']*)'", m.group(1), re.M)
    }


def canon_names(code: str, header: str, pm: str) -> tuple[list[list], int]:
    """[LibRaw's name, [the other names ExifTool gives the same model ID, with "EOS " prefixed]]."""
    ids, exiftool = canon_ids(header), exiftool_canon_models(pm)
    entries, line = canon_unique(code)
    out = []
    for enum, libraw_name in entries:
        spelled = exiftool.get(ids[enum])
        if spelled is None:
            continue
        others = []
        for part in spelled.split(" / "):
            full = part if part.startswith("EOS") else f"EOS {part}"
            if full.lower() != libraw_name.lower() and full not in others:
                others.append(full)
        if others:
            out.append([libraw_name, others])
    return out, line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--libraw-git", required=True, help="a LibRaw git directory (bare is fine)")
    parser.add_argument("--libraw-commit", default=LIBRAW_COMMIT)
    parser.add_argument("--exiftool-git", required=True, help="an ExifTool git directory")
    parser.add_argument("--exiftool-commit", default="HEAD")
    args = parser.parse_args(argv)

    libraw = git_rev(args.libraw_git, args.libraw_commit)
    exiftool = git_rev(args.exiftool_git, args.exiftool_commit)
    normalize = strip_c_comments(git_show(args.libraw_git, libraw, NORMALIZE))
    aliases = []
    for table, (makes, to_make) in ALIAS_TABLES.items():
        items, line = c_string_array(normalize, table)
        aliases.append(
            {
                "table": table,
                "source": f"{NORMALIZE} line {line}",
                "makes": makes,
                "sets_make": to_make,
                "names": alias_groups(items),
            }
        )
    names, unique_line = canon_names(
        normalize,
        git_show(args.libraw_git, libraw, CAMERA_IDS),
        git_show(args.exiftool_git, exiftool, CANON_PM),
    )
    version = re.search(
        r"\$VERSION\s*=\s*'([^']+)'", git_show(args.exiftool_git, exiftool, "lib/Image/ExifTool.pm")
    )
    facts = {
        "about": "How LibRaw names cameras, extracted by tools/extract_libraw_names.py (see its docstring).",
        "libraw": {"repository": "https://github.com/LibRaw/LibRaw", "commit": libraw},
        "exiftool": {
            "repository": "https://github.com/exiftool/exiftool",
            "commit": exiftool,
            "version": version.group(1) if version else None,
        },
        "makers": {
            "source": f"{IDENTIFY} CorpTable",
            "names": corp_table(git_show(args.libraw_git, libraw, IDENTIFY)),
        },
        "aliases": aliases,
        "canon_names": {
            "source": f"{NORMALIZE} unique[] (line {unique_line}), {CAMERA_IDS}; "
            f"ExifTool {CANON_PM} %canonModelID",
            "names": names,
        },
    }
    json.dump(facts, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

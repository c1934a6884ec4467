"""Issue 21: `rawback batch` and `rawback convert` on a corpus of hostile and broken inputs
(tools/make_bad_inputs.py), run as the user runs them, in a subprocess with a time limit.

The contract: exit status 0 or 1, never a traceback, every stderr line an `error: ` or `warning: `
line, each photo that fails named in exactly one error line, no temporary files left, nothing
written outside the output folder, and every DNG written readable by LibRaw (rawpy).

Corpus files that still break the contract are listed in KNOWN_BUGS: they are taken out of the
main runs and checked one by one as strict xfails, so a fix shows up as an XPASS to clean up.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import rawpy

from rawback.console import printable
from rawback.io.image import IMAGE_SUFFIXES, read_image
from tools.make_bad_inputs import make_corpus

REPO = Path(__file__).resolve().parents[1]
BATCH_TIMEOUT_S = 300
CONVERT_ONE_TIMEOUT_S = 20

# Corpus files on which rawback breaks the contract today (see the report of issue 21).
KNOWN_BUGS: dict[str, str] = {}  # none today

# A few files for the slower diffusion method: valid, unusual and broken ones.
DIFFUSION_SAMPLE = (
    "png-16-bit-rgb.png",
    "png-palette-with-transparency.png",
    "jpeg-exif-control-characters-in-make-model.jpg",
    "jpeg-truncated-half.jpg",
    "tiff-xmp-nested-5000.tif",
    "zero-bytes-jpg.jpg",
)

_SUMMARY = re.compile(r"(\d+) converted(?: \(\d+ with warnings\))?, (\d+) skipped, (\d+) failed")


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def rawback(*args: str | Path, cwd: Path, timeout: float) -> Run:
    """The CLI as a user runs it; a hang fails the test at `timeout`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    start = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "rawback", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"rawback {args[0]} still running after {timeout} s (a hang)")
    decode = lambda b: b.decode("utf-8", errors="backslashreplace")  # noqa: E731
    return Run(done.returncode, decode(done.stdout), decode(done.stderr), time.monotonic() - start)


def shown(path: Path) -> str:
    """A path as rawback prints it: control characters escaped, undecodable bytes as \\udcXX."""
    return printable(str(path)).encode("utf-8", errors="backslashreplace").decode("ascii", "backslashreplace")


def listing(root: Path, skip: Path) -> set[str]:
    found = set()
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = [d for d in dirs if here / d != skip]
        found |= {os.fsencode(here / name).decode("latin-1") for name in [*dirs, *files]}
    return found


def photos_in(root: Path) -> list[Path]:
    """What `batch` should pick up, found independently of rawback's own walk: photo suffixes,
    not hidden, links to folders not followed."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [
            Path(folder) / f
            for f in files
            if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES
        ]
    return found


def check_contract(run: Run, expected: dict[Path, Path], out: Path) -> tuple[list[Path], list[Path]]:
    """Assert the issue 21 contract for a run that was given the photos `expected` (photo -> where
    its DNG goes); return the photos converted and failed."""
    assert run.returncode in (0, 1), f"exit status {run.returncode}\n{run.stderr[-3000:]}"
    for stream in (run.stdout, run.stderr):
        assert "Traceback" not in stream, stream[-3000:]
    errors = []
    for line in run.stderr.splitlines():
        assert line.startswith(("error: ", "warning: ")), f"stray stderr line: {line!r}"
        if line.startswith("error: "):
            errors.append(line)
    converted, failed = [], []
    for photo, dng in expected.items():
        named = [line for line in errors if line.startswith(f"error: {shown(photo)}: ")]
        if dng.is_file():
            converted.append(photo)
            assert not named, f"{photo} was converted but also reported: {named}"
        else:
            failed.append(photo)
            assert len(named) == 1, f"{shown(photo)} failed; error lines naming it: {named}"
    assert len(errors) == len(failed), "error lines for photos that were not given: " + "\n".join(
        line for line in errors if not any(line.startswith(f"error: {shown(p)}: ") for p in failed)
    )
    assert run.returncode == (1 if failed else 0)
    leftovers = [p for p in out.rglob("*") if p.is_file() and p.suffix != ".dng"]
    assert not leftovers, f"partial or temporary files left: {leftovers}"
    assert {p for p in out.rglob("*.dng")} == {expected[p] for p in converted}
    for photo in converted:
        # A file object: rawpy cannot open a path whose name is not UTF-8.
        with expected[photo].open("rb") as handle, rawpy.imread(handle) as raw:
            shape = raw.raw_image_visible.shape
        height, width = read_image(photo, min_side=2).rgb.shape[:2]
        assert shape in ((height, width), (height & ~1, width & ~1)), f"{photo}: DNG is {shape}"
    return converted, failed


def summary(run: Run, converted: list[Path], failed: list[Path], files: int) -> str:
    counts = f"files {files}, converted {len(converted)}, failed {len(failed)}, {run.seconds:.1f} s"
    match = _SUMMARY.search(run.stdout)
    if match:  # batch prints its own count; convert of several photos too
        assert (int(match[1]), int(match[3])) == (len(converted), len(failed)), counts
    return counts


# --- the corpus ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """The corpus without its KNOWN_BUGS files, and every entry made at its top level."""
    root = tmp_path_factory.mktemp("corpus")
    made = make_corpus(root / "in")
    for name in KNOWN_BUGS:
        (root / "in" / name).unlink()
    return root, [p for p in made if p.name not in KNOWN_BUGS]


def test_corpus_is_large_small_and_quick(tmp_path: Path) -> None:
    start = time.monotonic()
    made = make_corpus(tmp_path / "c")
    assert time.monotonic() - start < 10
    assert len(made) >= 60
    assert len({p.name for p in made}) == len(made)
    sizes = [p.lstat().st_size for p in made if p.is_file() and not p.is_symlink()]
    assert max(sizes) < 64_000
    assert set(KNOWN_BUGS) <= {p.name for p in made}
    assert {"fifo.jpg", "symlink-dangling.jpg", "folder-named-x.jpg"} <= {p.name for p in made}


def test_batch_on_the_corpus_keeps_the_contract(corpus: tuple[Path, list[Path]]) -> None:
    root, _ = corpus
    corpus_in, out = root / "in", root / "out-batch"
    before = listing(root, out)
    run = rawback("batch", corpus_in, "-o", out, "--method", "analytic", cwd=root, timeout=BATCH_TIMEOUT_S)
    assert listing(root, out) == before, "written outside the output folder"
    photos = photos_in(corpus_in)
    expected = {p: out / p.relative_to(corpus_in).parent / (p.stem + ".dng") for p in photos}
    converted, failed = check_contract(run, expected, out)
    counts = summary(run, converted, failed, len(photos))
    assert converted and failed, counts
    print("batch:", counts)


def test_convert_every_file_keeps_the_contract(corpus: tuple[Path, list[Path]]) -> None:
    root, made = corpus
    out = root / "out-convert"
    before = listing(root, out)
    run = rawback("convert", *made, "-o", out, "--method", "analytic", cwd=root, timeout=BATCH_TIMEOUT_S)
    assert listing(root, out) == before, "written outside the output folder"
    # Several photos with one stem (none in the corpus) would fail as a collision; every other one
    # either converts to OUT/<stem>.dng or fails alone.
    expected = {p: out / (p.stem + ".dng") for p in made}
    converted, failed = check_contract(run, expected, out)
    counts = summary(run, converted, failed, len(made))
    assert converted and failed, counts
    print("convert:", counts)


def test_diffusion_on_a_few_corpus_files(corpus: tuple[Path, list[Path]], tmp_path: Path) -> None:
    root, _ = corpus
    picked = tmp_path / "in"
    picked.mkdir()
    for name in DIFFUSION_SAMPLE:
        shutil.copy(root / "in" / name, picked / name)
    out = tmp_path / "out"
    run = rawback("batch", picked, "-o", out, "--method", "diffusion", cwd=tmp_path, timeout=BATCH_TIMEOUT_S)
    expected = {p: out / (p.stem + ".dng") for p in photos_in(picked)}
    converted, failed = check_contract(run, expected, out)
    assert len(converted) == 4 and len(failed) == 2, summary(run, converted, failed, len(expected))


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            name,
            marks=[pytest.mark.xfail(strict=True, reason=reason)]
            + ([pytest.mark.slow] if reason.startswith("hangs") else []),
        )
        for name, reason in KNOWN_BUGS.items()
    ],
)
def test_known_bug_files(name: str, tmp_path: Path) -> None:
    made = {p.name: p for p in make_corpus(tmp_path / "in")}
    out = tmp_path / "out"
    run = rawback(
        "convert", made[name], "-o", out, "--method", "analytic", cwd=tmp_path, timeout=CONVERT_ONE_TIMEOUT_S
    )
    check_contract(run, {made[name]: out / (made[name].stem + ".dng")}, out)


# --- the checks themselves catch what they are for -----------------------------------------------


@pytest.mark.parametrize(
    ("returncode", "stderr", "catches"),
    [
        (1, "Traceback (most recent call last):\n", "Traceback"),
        (2, "error: x.jpg: broken\n", "exit status"),
        (1, "error: x.jpg: broken\nZIPDecode: Decoding error\n", "stray stderr line"),
        (1, "", "x.jpg failed"),
        (1, "error: x.jpg: broken\nerror: x.jpg: again\n", "x.jpg failed"),
    ],
)
def test_contract_check_catches_breakage(tmp_path: Path, returncode: int, stderr: str, catches: str) -> None:
    photo = tmp_path / "x.jpg"
    with pytest.raises(AssertionError, match=catches):
        check_contract(
            Run(returncode, "", stderr.replace("x.jpg", str(photo)), 0.0),
            {photo: tmp_path / "x.dng"},
            tmp_path,
        )


def test_contract_check_catches_leftover_part_file(tmp_path: Path) -> None:
    photo = tmp_path / "x.jpg"
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x.dng.part").write_bytes(b"half")
    with pytest.raises(AssertionError, match="partial or temporary"):
        check_contract(
            Run(1, "", f"error: {photo}: broken\n", 0.0), {photo: tmp_path / "out/x.dng"}, tmp_path / "out"
        )

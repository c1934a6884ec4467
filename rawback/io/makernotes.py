"""The white balance the camera applied, read from a photo's maker notes with exiftool.

Cameras store the gains they applied to the sensor's red, green and blue (camera RGB, before the
colour matrix) in their maker notes, each make in its own tags. exiftool decodes (and for Nikon,
Sony and Samsung decrypts) them; `RULES` below says which tag means what, make by make, and where
each rule comes from. The result is the multipliers (r, 1, b) and, for the DNG, the neutral
1/multipliers (AsShotNeutral). docs/white-balance.md explains the order rawback takes its white
balance in and why exiftool rather than exiv2.

Use: `start()` when the command starts; per photo `request(path)` before decoding it and
`.result()` after (or `read_maker_notes(path)` / `read_as_shot(path)` in one call);
`missing_notice()` once, to tell the user exiftool is missing.

Nothing from the file is trusted: values that are not numbers, wrong counts, zero, negative or
non-finite gains and ratios outside 0.1..10 are rejected with a warning, never an exception.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import stat
import tempfile
import threading
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rawback.io.exiftool import INSTALL_HINT, Answer, ExifTool, Pending, argument_line

if TYPE_CHECKING:
    import numpy as np

GAIN_RANGE = (0.1, 10.0)  # red and blue gain over green; real cameras stay within ~0.3..5


@dataclass(frozen=True)
class AsShot:
    """The camera's as-shot white balance."""

    multipliers: tuple[float, float, float]  # camera-RGB gains (r, 1, b) the camera applied
    tag: str  # the exiftool tag(s) it came from, e.g. "Canon:WB_RGGBLevelsAsShot"
    raw_value: str  # the tag's value as exiftool gave it (-n), e.g. "1991 1016 1022 1678"
    # The camera's names from its maker-note model ID, e.g. ("EOS Digital Rebel XT", "350D",
    # "Kiss Digital N") for Canon's CanonModelID: LibRaw names cameras by these.
    model_names: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # tags that were tried first and rejected


@dataclass(frozen=True)
class MakerNoteReading:
    """What the maker notes gave: the as-shot white balance or None, and why."""

    as_shot: AsShot | None
    model_names: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()  # for the user: a white balance was there but is unusable, ...
    notes: tuple[str, ...] = ()  # for --verbose: no maker notes, exiftool missing, its messages


# --- the rules: which tag holds the as-shot white balance, make by make ---------------------------

Gains = tuple[float, float]  # (red, blue) over green
Values = Sequence[tuple[float, ...]]  # each requested tag's numbers, in the rule's order


class Rejected(ValueError):
    """A tag's value cannot be a white balance; the message says why."""


def _counts(values: Values, *allowed: int) -> None:
    for numbers in values:
        if len(numbers) not in allowed:
            raise Rejected(f"{len(numbers)} values, expected {' or '.join(map(str, allowed))}")


def _positive(*levels: float) -> None:
    # Checked before dividing: two negative levels (a black level above the value) would make a
    # plausible positive ratio.
    for level in levels:
        if not level > 0:
            raise Rejected(f"a level is {level:g}, not positive")


def _channels(order: str) -> Callable[[Values], Gains]:
    """Levels of one tag in `order` ("RGGB", "GRBG", "RGB"...): red and blue over the mean green."""

    def gains(values: Values) -> Gains:
        _counts(values, len(order))
        levels = values[0]
        _positive(*levels)
        green = [v for c, v in zip(order, levels, strict=True) if c == "G"]
        g = sum(green) / len(green)
        return levels[order.index("R")] / g, levels[order.index("B")] / g

    return gains


def _nikon_rb(values: Values) -> Gains:
    # 0x000c: "r b g g" as rationals (LibRaw: cam_mul = r, g, b, g); ColorBalanceA (Coolpix
    # E5400...): two int16u over 256.
    _counts(values, 2, 4)
    levels = values[0]
    _positive(*levels)
    if len(levels) == 4:
        g = (levels[2] + levels[3]) / 2
        return levels[0] / g, levels[1] / g
    return levels[0] / 256, levels[1] / 256


def _olympus_rb(values: Values) -> Gains:
    # 2 values (red, blue) or 4 (red, blue, green, green) on a scale of 256; green is 256.
    _counts(values, 2, 4)
    _positive(*values[0][:2])
    return values[0][0] / 256, values[0][1] / 256


def _red_blue(values: Values) -> Gains:
    _counts(values, 1)
    _positive(values[0][0], values[1][0])
    return values[0][0], values[1][0]


def _red_green_blue(values: Values) -> Gains:
    _counts(values, 1)
    red, green, blue = (v[0] for v in values)
    _positive(red, green, blue)
    return red / green, blue / green


def _pentax_white_point(values: Values) -> Gains:
    _counts(values, 4)
    if len(set(values[0])) == 1:
        raise Rejected("all four equal: a JPEG shot with a fixed preset holds 8192 x4 here")
    return _channels("RGGB")(values)


def _samsung(values: Values) -> Gains:
    _counts(values, 4)
    levels = tuple(u - b for u, b in zip(values[0], values[1], strict=True))
    return _channels("RGGB")((levels,))


@dataclass(frozen=True)
class Rule:
    make: str  # for the docs' table
    tags: tuple[str, ...]  # exiftool group:name tags (family 1 groups), all present
    gains: Callable[[Values], Gains]
    source: str  # where the rule comes from
    when: tuple[str, int | None] | None = None  # another tag that must hold this value (None: be there)


# Pentax's fixed presets (Pentax:WhiteBalance) and the tag holding each one's levels (exiftool
# Pentax.pm, 0x0019 and the WB_RGGBLevels table); 3 "Fluorescent" names none of the three.
_PENTAX_PRESETS = {1: "Daylight", 2: "Shade", 4: "Tungsten", 6: "FluorescentD", 7: "FluorescentN",
                   8: "FluorescentW", 9: "Flash", 10: "Cloudy"}  # fmt: skip

# In order of preference: the first rule whose tags are all there and give a usable value wins.
RULES: tuple[Rule, ...] = (
    Rule("Canon", ("Canon:WB_RGGBLevelsAsShot",), _channels("RGGB"),
         "LibRaw canon.cpp, tag 0x4001 ColorData: cam_mul from the AsShot levels; 18 shared JPEGs"),
    # Older EOS (ColorBalance 0xa9, e.g. 300D) keep levels per setting, not an as-shot entry:
    # exiftool's composite takes the set of the Canon:WhiteBalance setting (Auto: its result for
    # this shot), as dcraw does for the 1D's 0xa4 table (cam_mul at wbi*48).
    Rule("Canon", ("Composite:WB_RGGBLevels",), _channels("RGGB"),
         "exiftool Canon.pm composite WB_RGGBLevels; dcraw/LibRaw 0xa4 (levels of the set WB)",
         when=("Canon:WhiteBalance", None)),
    Rule("Nikon", ("Nikon:WB_RBLevels",), _nikon_rb,
         "LibRaw nikon.cpp: 0x000c (r b g g rationals), 0x0014 ColorBalanceA (/256); D90, D3100"),
    # ColorBalance 0x0097, decrypted by exiftool; the tag's name gives the channel order
    # (versions 0100 RBGG, 0102 RGGB, 0103 RGBG, 02xx mostly GRBG).
    *(Rule("Nikon", (f"Nikon:WB_{order}Levels",), _channels(order),
           "LibRaw nikon.cpp, tag 0x0097 ColorBalance; D90 GRBG = its 0x000c, D70, D2Hs")
      for order in ("GRBG", "RGGB", "RGBG", "RBGG")),
    Rule("Sony", ("Sony:WB_RGBLevels",), _channels("RGB"),
         "exiftool Sony.pm Tag2010/Tag9400 WB_RGBLevels (decrypted); SLT-A57 shared JPEGs"),
    Rule("Pentax", ("Pentax:WhitePoint",), _pentax_white_point,
         "LibRaw pentax.cpp: tag 0x0201 'Pentax As Shot WB' (RGGB); *ist DL shared JPEGs"),
    *(Rule("Pentax", (f"Pentax:WB_RGGBLevels{name}",), _channels("RGGB"),
           "exiftool Pentax.pm: JPEGs shot with a fixed preset hold 8192 x4 in 0x0201",
           when=("Pentax:WhiteBalance", index))
      for index, name in _PENTAX_PRESETS.items()),
    Rule("Olympus", ("Olympus:WB_RBLevels",), _olympus_rb,
         "LibRaw olympus.cpp: ImageProcessing 0x0100, red and blue / 256"),
    Rule("Olympus", ("Olympus:RedBalance", "Olympus:BlueBalance"), _red_blue,
         "LibRaw olympus.cpp: 0x1017 and 0x1018 / 256 (exiftool already divides)"),
    Rule("Panasonic", ("Panasonic:WBRedLevel", "Panasonic:WBGreenLevel", "Panasonic:WBBlueLevel"),
         _red_green_blue,
         "exiftool Panasonic.pm 0x8004-0x8006; DMC-LX3 = the RW2 levels LibRaw reads (0x24-0x26)"),
    Rule("Samsung", ("Samsung:WB_RGGBLevelsUncorrected", "Samsung:WB_RGGBLevelsBlack"), _samsung,
         "dcraw/LibRaw samsung.cpp: 0xa021 minus 0xa028 (exiftool decrypts both)"),
)  # fmt: skip

# Maker-note model IDs as exiftool prints them, and how several names are joined.
_MODEL_ID_TAGS = {"Canon:CanonModelID": " / ", "Pentax:PentaxModelID": None, "Sony:SonyModelID": None,
                  "Samsung:SamsungModelID": None, "Olympus:CameraType2": ","}  # fmt: skip
_MESSAGE_TAGS = ("ExifTool:Warning", "ExifTool:Error")


def _requested_tags() -> list[str]:
    numeric = dict.fromkeys(t for rule in RULES for t in (*rule.tags, *(rule.when or ())[:1]))
    # "#": the value without print conversion (numbers); model IDs are wanted as printed names.
    return [f"-{tag}#" for tag in numeric] + [f"-{tag}" for tag in (*_MODEL_ID_TAGS, *_MESSAGE_TAGS)]


EXIFTOOL_ARGUMENTS: tuple[bytes, ...] = tuple(
    a.encode() for a in ("-json", "-G1", "-fast", "-charset", "filename=utf8", *_requested_tags())
)


# --- from exiftool's answer to an as-shot white balance -------------------------------------------

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _numbers(value: object) -> tuple[float, ...]:
    if isinstance(value, bool):
        raise Rejected("not a number")
    if isinstance(value, int | float):
        return (float(value),)
    if not isinstance(value, str):
        raise Rejected("not numbers")
    tokens = value.split()
    if not tokens or len(tokens) > 64 or not all(_NUMBER.fullmatch(t) for t in tokens):
        raise Rejected("not numbers")
    return tuple(float(t) for t in tokens)


def _checked(gains: Gains) -> Gains:
    low, high = GAIN_RANGE
    for name, gain in zip(("red", "blue"), gains, strict=True):
        if not math.isfinite(gain):
            raise Rejected(f"{name} gain is not finite")
        if not low <= gain <= high:
            raise Rejected(f"{name} gain {gain:.3g} is outside {low:g}..{high:g}")
    return gains


def _shown(value: object, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _model_names(record: Mapping[str, object]) -> tuple[str, ...]:
    names: list[str] = []
    for tag, separator in _MODEL_ID_TAGS.items():
        value = record.get(tag)
        if not isinstance(value, str):
            continue
        for name in value.split(separator) if separator else [value]:
            name = name.strip()
            if name and len(name) <= 64 and not name.startswith("Unknown") and name not in names:
                names.append(name)
    return tuple(names)


def as_shot_from_record(record: Mapping[str, object]) -> MakerNoteReading:
    """The as-shot white balance in one file's exiftool record (`-json -G1`, numbers with `#`)."""
    model_names = _model_names(record)
    rejected: list[str] = []
    seen: set[str] = set()  # values already rejected (Canon's composite repeats AsShot's)
    for rule in RULES:
        if rule.when is not None:
            needed, wanted = rule.when
            if needed not in record or (wanted is not None and record[needed] != wanted):
                continue
        if not all(tag in record for tag in rule.tags):
            continue
        raw = [record[tag] for tag in rule.tags]
        if json.dumps(raw) in seen:
            continue
        tag = rule.tags[0] + "".join("/" + t.split(":", 1)[1] for t in rule.tags[1:])
        shown = " | ".join(_shown(v) for v in raw)
        try:
            gains = _checked(rule.gains([_numbers(v) for v in raw]))
        except (Rejected, ZeroDivisionError, IndexError, ValueError) as error:
            reason = str(error) if isinstance(error, Rejected) else "unusable levels"
            rejected.append(f"maker-note white balance {tag} = {shown!r} ignored: {reason}")
            seen.add(json.dumps(raw))
            continue
        multipliers = (gains[0], 1.0, gains[1])
        as_shot = AsShot(multipliers, tag, " | ".join(map(str, raw)), model_names, tuple(rejected))
        return MakerNoteReading(as_shot, model_names, tuple(rejected))
    notes = [] if rejected else ["no as-shot white balance in the maker notes"]
    for tag in _MESSAGE_TAGS:
        if isinstance(record.get(tag), str):
            notes.append(f"exiftool: {_shown(record[tag], 100)}")
    return MakerNoteReading(None, model_names, tuple(rejected), tuple(notes))


def as_shot_neutral(as_shot: AsShot) -> np.ndarray:
    """The DNG's AsShotNeutral: 1 / multipliers in camera RGB, normalised to green = 1."""
    import numpy as np

    multipliers = np.asarray(as_shot.multipliers, dtype=np.float64)
    neutral = 1.0 / multipliers
    return neutral / neutral[1]


# --- one exiftool for the run -----------------------------------------------------------------------

_shared: ExifTool | None = None
_shared_lock = threading.Lock()
_notice_given = False


def shared_exiftool() -> ExifTool:
    """The run's exiftool process (created on first use; closed at exit)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ExifTool()
        return _shared


def start() -> bool:
    """Start the run's exiftool now, so that Perl's start-up overlaps the caller's JPEG decode;
    False when it is missing or off."""
    return shared_exiftool().start()


def missing_notice() -> str | None:
    """Once per run, when exiftool is missing (or could not be started; known after `start()` or
    the first request): the line to tell the user. None otherwise, and every later time."""
    global _notice_given
    tool = shared_exiftool()
    with _shared_lock:
        if _notice_given or not tool.missing:
            return None
        _notice_given = True
    why = "" if tool.off_reason == "exiftool is not on PATH" else f" ({tool.off_reason})"
    return (
        f"exiftool not found{why}: the camera's as-shot white balance cannot be read from maker "
        f"notes; {INSTALL_HINT}"
    )


class PendingReading:
    """Maker notes asked for: `result()` waits for exiftool's answer (or has the reading already,
    when there was nothing to ask)."""

    def __init__(self, done: MakerNoteReading | None = None) -> None:
        self._done = done
        self._tool: ExifTool | None = None
        self._pending: Pending | None = None
        self._remove_temporary: Callable[[], object] = lambda: None

    @classmethod
    def asked(cls, tool: ExifTool, pending: Pending, temporary: str) -> PendingReading:
        asked = cls()
        asked._tool, asked._pending = tool, pending
        # The temporary EXIF file goes once read, or when the request is dropped unread, or at exit.
        asked._remove_temporary = weakref.finalize(asked, _remove, temporary)
        return asked

    def result(self) -> MakerNoteReading:
        """The reading (never raises); waits for exiftool at most its timeout."""
        if self._done is None:
            assert self._tool is not None and self._pending is not None
            self._done = _reading(self._pending.answer(), missing=self._tool.missing)
            self._remove_temporary()
        return self._done


def request(path: Path | str, exiftool: ExifTool | None = None) -> PendingReading:
    """Ask exiftool for `path`'s maker notes and return at once: call it before decoding the
    photo, so that exiftool's work (its start-up for the first photo, ~0.1 s of module loading the
    first time it meets a make, ~20 ms a photo after that) overlaps the decode, and collect the
    answer with `result()` after.

    exiftool gets the photo's EXIF block alone, in a temporary file: it then parses nothing else
    (its XMP parser takes minutes on XMP nested a few thousand deep, which a TIFF's IFD0 can hold
    too, so TIFF files are not read), and the photo's name, whatever it is, never has to pass
    through exiftool's argument file.
    """
    try:
        exif = _exif_block(path)
    except (OSError, ValueError):  # exiftool would wait forever on a FIFO, read /dev/zero to its end
        return _done(notes=("maker notes not read: not a readable regular file",))
    if exif is None:
        return _done(notes=("no EXIF block, so no maker notes (read from JPEG, HEIF, PNG)",))
    try:
        handle, name = tempfile.mkstemp(prefix="rawback-", suffix=".exif")
        with os.fdopen(handle, "wb") as temporary:
            temporary.write(exif)
    except OSError as error:
        problem = f"maker notes not read: no temporary file ({error.strerror or error})"
        return _done(warnings=(problem,), notes=(problem,))
    line = argument_line(name)
    if line is None:  # a temporary folder whose name holds a newline and a `$`
        _remove(name)
        return _done(notes=("maker notes not read: exiftool cannot take the temporary file's name",))
    tool = exiftool or shared_exiftool()
    return PendingReading.asked(tool, tool.submit([*EXIFTOOL_ARGUMENTS, line]), name)


def read_maker_notes(path: Path | str, exiftool: ExifTool | None = None) -> MakerNoteReading:
    """The as-shot white balance and model names in `path`'s maker notes (never raises); see
    `request` to let exiftool work while the photo is decoded."""
    return request(path, exiftool).result()


def _done(**fields: tuple[str, ...]) -> PendingReading:
    return PendingReading(done=MakerNoteReading(None, **fields))


def _remove(name: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(name)


def _exif_block(path: Path | str) -> bytes | None:
    """The TIFF structure of a JPEG's, HEIF's or PNG's EXIF (maker-note offsets count from its
    start), or None. OSError unless `path` is a readable regular file, checked on a descriptor
    opened without blocking, so that a FIFO cannot hang here either."""
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise OSError("not a regular file")
        head = handle.read(4096)
    try:
        if head.startswith((b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")):
            from PIL import Image

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # about odd segments: read_image tells the user
                with Image.open(path, formats=("JPEG", "PNG")) as image:  # MPO comes as JPEG
                    exif = image.info.get("exif")
        else:
            from rawback.io.heif import heif_exif, is_heif

            exif = heif_exif(Path(path)) if is_heif(head) else None
    except Exception:  # a file Pillow or libheif cannot open has no EXIF worth asking about
        return None
    if not isinstance(exif, bytes):
        return None
    exif = exif[6:] if exif.startswith(b"Exif\0\0") else exif
    return exif if exif[:4] in (b"II*\0", b"MM\0*") else None


def _reading(answer: Answer, missing: bool) -> MakerNoteReading:
    if answer.output is None:
        # A missing exiftool is told once per run (missing_notice), a failure when it happens.
        problem = (f"maker notes not read: {answer.problem}",)
        fresh = answer.fresh and not missing
        return MakerNoteReading(None, warnings=problem if fresh else (), notes=problem)
    try:
        records = json.loads(answer.output) if answer.output.strip() else []
    except ValueError:
        return MakerNoteReading(None, warnings=("maker notes not read: exiftool's answer is not JSON",))
    if not records:
        return MakerNoteReading(None, notes=("maker notes not read: exiftool could not read the file",))
    if not isinstance(records, list) or not isinstance(records[0], dict):
        return MakerNoteReading(None, warnings=("maker notes not read: unexpected answer from exiftool",))
    return as_shot_from_record(records[0])


def read_as_shot(path: Path | str, exiftool: ExifTool | None = None) -> AsShot | None:
    """The camera's as-shot white balance from `path`'s maker notes, or None (see
    `read_maker_notes` for why)."""
    return read_maker_notes(path, exiftool).as_shot

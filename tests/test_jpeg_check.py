"""Damaged JPEG data: libjpeg's warnings reach the user as a warning line, and the photo still
converts (the DNG holds what decoded); intact JPEGs of every kind raise no warning."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from rawback.cli import app
from rawback.io.image import read_image
from rawback.io.jpeg_check import jpeg_damage
from tests.test_batch import write_photo


def jpeg_bytes(mode: str = "RGB", size: tuple[int, int] = (96, 64), **save) -> bytes:
    rng = np.random.default_rng(0)
    w, h = size
    pixels = np.clip(rng.normal(128, 40, (h, w, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, "JPEG", quality=90, **save)
    return buffer.getvalue()


def cut_short(data: bytes) -> bytes:
    """The first two thirds of the file, closed with an EOI marker: a copy that stopped early
    (a card pulled out, a download broken off) as a repair tool would leave it."""
    return data[: len(data) * 2 // 3] + b"\xff\xd9"


def stray_bytes(data: bytes) -> bytes:
    """Bytes that belong to no marker segment between the image data and EOI."""
    return data[:-2] + b"\x00" * 10 + b"\xff\xd9"


@pytest.mark.parametrize(
    "data",
    [
        jpeg_bytes(),
        jpeg_bytes(progressive=True),
        jpeg_bytes(subsampling=0),
        jpeg_bytes("L"),
        jpeg_bytes("CMYK"),
        jpeg_bytes(restart_marker_blocks=4),
        jpeg_bytes() + b"a trailer after EOI, as some phones append",
    ],
    ids=["baseline", "progressive", "4:4:4", "grey", "cmyk", "restart-markers", "trailer"],
)
def test_intact_jpegs_raise_no_warning(data: bytes) -> None:
    assert jpeg_damage(data) is None


@pytest.mark.parametrize("progressive", [False, True])
def test_a_jpeg_cut_short_is_reported_in_libjpegs_words(progressive: bool) -> None:
    message = jpeg_damage(cut_short(jpeg_bytes(progressive=progressive)))
    assert message is not None and message.startswith("Corrupt JPEG data")


def test_stray_bytes_are_reported() -> None:
    # libjpeg counts the bytes it had not already buffered, so not always all 10
    message = jpeg_damage(stray_bytes(jpeg_bytes())) or ""
    assert re.fullmatch(r"Corrupt JPEG data: \d+ extraneous bytes before marker 0xd9", message)


def test_read_image_carries_the_warning_and_still_decodes(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    path.write_bytes(cut_short(jpeg_bytes()))
    image = read_image(path, min_side=8)
    assert image.rgb.shape == (64, 96, 3)
    (warning,) = image.warnings
    assert warning.startswith("the JPEG data is damaged (libjpeg: Corrupt JPEG data")
    clean = tmp_path / "clean.jpg"
    clean.write_bytes(jpeg_bytes())
    assert read_image(clean, min_side=8).warnings == ()


def test_convert_warns_and_writes_the_dng(tmp_path: Path) -> None:
    photo = tmp_path / "cut.jpg"
    photo.write_bytes(cut_short(write_photo(tmp_path / "whole.jpg", size=(96, 64)).read_bytes()))
    result = CliRunner().invoke(app, ["convert", str(photo), "--method", "analytic"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "cut.dng").is_file()
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"warning: {photo}: the JPEG data is damaged (libjpeg: Corrupt JPEG data")
    assert "1 converted (1 with warnings), 0 skipped, 0 failed" in result.stdout
    quiet = CliRunner().invoke(app, ["convert", str(photo), "-o", str(tmp_path / "q.dng"), "-q"])
    assert quiet.exit_code == 0 and quiet.stderr == ""  # --quiet: errors only


def test_batch_counts_the_damaged_photo_and_goes_on(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    write_photo(folder / "a.jpg", size=(96, 64))
    damaged = folder / "b.jpg"
    damaged.write_bytes(stray_bytes(write_photo(folder / "b.jpg", size=(96, 64), seed=1).read_bytes()))
    args = ["batch", str(folder), "-o", str(tmp_path / "out"), "--method", "analytic"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.dng", "b.dng"]
    (line,) = result.stderr.splitlines()
    assert re.fullmatch(
        f"warning: {re.escape(str(damaged))}: the JPEG data is damaged \\(libjpeg: Corrupt JPEG data: \\d+ "
        "extraneous bytes before marker 0xd9\\); parts of the photo may be grey or garbled",
        line,
    )
    assert "2 converted (1 with warnings), 0 skipped, 0 failed" in result.stdout
    again = CliRunner().invoke(app, args)  # converted is converted: a rerun skips it, silently
    assert again.exit_code == 0 and "0 converted, 2 skipped" in again.stdout and again.stderr == ""

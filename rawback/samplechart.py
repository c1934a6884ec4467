"""rawback's synthetic test chart: the demo input, drawn by code (nothing is downloaded).

The chart holds what shows whether a JPEG-to-RAW conversion worked: a 24-patch colour checker for
colour, a grey step wedge and smooth ramps for tone and banding, clipped highlights (pure white and
bright colours with one or two channels at 255) for highlight reconstruction, and a zone plate, line
pairs and small text for detail and demosaicking artefacts.

Layout (fractions of the frame): colour checker top left, zone plate top middle, highlights top
right; then the step wedge, a grey ramp and a hue ramp across the width; line pairs and text along
the bottom. Any size from 64x64 works; the default is 3:2 like most cameras.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from rawback.io.atomic import atomic_output
from rawback.io.exif import ExifData, to_jpeg_exif

# X-Rite ColorChecker Classic, sRGB (D65) values as X-Rite publishes them, row by row:
# dark skin .. cyan, then the neutral row white 9.5 .. black 2.
COLOR_CHECKER_SRGB: tuple[tuple[int, int, int], ...] = (
    (115, 82, 68), (194, 150, 130), (98, 122, 157), (87, 108, 67), (133, 128, 177), (103, 189, 170),
    (214, 126, 44), (80, 91, 166), (193, 90, 99), (94, 60, 108), (157, 188, 64), (224, 163, 46),
    (56, 61, 150), (70, 148, 73), (175, 54, 60), (231, 199, 31), (187, 86, 149), (8, 133, 161),
    (243, 243, 242), (200, 200, 200), (160, 160, 160), (122, 122, 121), (85, 85, 85), (52, 52, 52),
)  # fmt: skip
BACKGROUND = 118  # sRGB code of an 18% grey card
WEDGE_STEPS = 16  # 0, 17, 34, ... 255

# Bright colours that clip one or two channels, as skies, skin and lamps do in real JPEGs.
HIGHLIGHT_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 255, 255), (255, 246, 214), (255, 214, 160), (255, 255, 140),
    (170, 225, 255), (255, 190, 230), (200, 255, 190), (250, 250, 250),
)  # fmt: skip
EXIF_DATETIME = "2024:01:01 12:00:00"  # fixed, so the same chart gives the same bytes


def make_sample_chart(width: int = 1536, height: int = 1024) -> np.ndarray:
    """The chart as (height, width, 3) uint8 sRGB."""
    if width < 64 or height < 64:
        raise ValueError(f"the sample chart needs at least 64x64 pixels, not {width}x{height}")
    chart = np.full((height, width, 3), BACKGROUND, dtype=np.uint8)
    box = _Boxes(width, height)
    _color_checker(chart, *box(0.02, 0.03, 0.50, 0.48))
    _zone_plate(chart, *box(0.52, 0.03, 0.76, 0.48))
    _highlights(chart, *box(0.78, 0.03, 0.98, 0.48))
    _step_wedge(chart, *box(0.02, 0.51, 0.98, 0.62))
    _grey_ramp(chart, *box(0.02, 0.64, 0.98, 0.71))
    _hue_ramp(chart, *box(0.02, 0.73, 0.98, 0.84))
    _line_pairs(chart, *box(0.02, 0.87, 0.50, 0.97))
    _text(chart, *box(0.52, 0.87, 0.98, 0.97))
    return chart


def write_sample_jpeg(
    path: Path, *, width: int = 1536, height: int = 1024, quality: int = 92, overwrite: bool = True
) -> Path:
    """Write the chart as a baseline JPEG with camera-like EXIF, atomically.

    `overwrite` defaults to True because the CLI checks `--overwrite` itself before calling.
    """
    path = Path(path)
    exif = ExifData(
        make="rawback",
        model="sample chart",
        datetime=EXIF_DATETIME,
        exif={
            33434: (1, 125),  # ExposureTime
            33437: (8, 1),  # FNumber
            34855: 100,  # ISOSpeedRatings
            36864: b"0230",  # ExifVersion
            36867: EXIF_DATETIME.encode(),  # DateTimeOriginal
            37386: (35, 1),  # FocalLength
        },
    )
    image = Image.fromarray(make_sample_chart(width, height))
    with atomic_output(path, overwrite=overwrite) as tmp:
        # The temporary name ends in .part, so name the format.
        image.save(tmp, format="JPEG", quality=quality, exif=to_jpeg_exif(exif))
    return path


class _Boxes:
    """Fractions of the frame -> pixel boxes (x0, y0, x1, y1), at least 1 pixel each way."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height

    def __call__(self, fx0: float, fy0: float, fx1: float, fy1: float) -> tuple[int, int, int, int]:
        x0, y0 = round(fx0 * self.width), round(fy0 * self.height)
        return x0, y0, max(x0 + 1, round(fx1 * self.width)), max(y0 + 1, round(fy1 * self.height))


def _srgb_encode(linear: np.ndarray) -> np.ndarray:
    """Linear light -> sRGB code values 0..255, clipped (that is where highlights clip)."""
    v = np.clip(linear, 0.0, 1.0)
    v = np.where(v <= 0.0031308, 12.92 * v, 1.055 * v ** (1 / 2.4) - 0.055)
    return np.rint(v * 255).astype(np.uint8)


def _color_checker(chart: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
    chart[y0:y1, x0:x1] = 24  # the checker's black frame
    cols, rows = 6, 4
    pitch_x, pitch_y = (x1 - x0) / cols, (y1 - y0) / rows
    gap = max(1, round(min(pitch_x, pitch_y) * 0.12))
    for index, color in enumerate(COLOR_CHECKER_SRGB):
        row, col = divmod(index, cols)
        px0, py0 = x0 + round(col * pitch_x) + gap, y0 + round(row * pitch_y) + gap
        px1, py1 = x0 + round((col + 1) * pitch_x) - gap, y0 + round((row + 1) * pitch_y) - gap
        chart[py0 : max(py0 + 1, py1), px0 : max(px0 + 1, px1)] = color


def _zone_plate(chart: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
    """Concentric rings whose frequency rises linearly to Nyquist at the rim: aliasing and
    demosaicking errors show as moire. On a mid-grey disc, in code values."""
    size = min(x1 - x0, y1 - y0)
    cx, cy = x0 + (x1 - x0 - size) // 2, y0 + (y1 - y0 - size) // 2
    radius = size / 2
    y, x = np.mgrid[0:size, 0:size] - (size - 1) / 2
    r2 = x**2 + y**2
    # Local frequency d(phase)/dr / 2pi = r / (2 radius): 0.5 cycles per pixel at the rim.
    plate = 0.5 + 0.5 * np.cos(np.pi * r2 / (2 * radius))
    inside = r2 <= radius**2
    region = chart[cy : cy + size, cx : cx + size]
    region[inside] = np.rint(16 + plate[inside] * 223).astype(np.uint8)[:, None]


def _highlights(chart: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
    """A lamp-like blob that clips to white in the middle and one channel at a time around it,
    above a row of bright patches (pure white, and colours with channels at 255)."""
    split = y0 + (y1 - y0) * 3 // 5
    h, w = split - y0, x1 - x0
    y, x = np.mgrid[0:h, 0:w]
    r2 = ((x - w / 2) / (w / 2)) ** 2 + ((y - h / 2) / (h / 2)) ** 2
    glow = 3.0 * np.exp(-3.0 * r2)  # peak 3x over white: clipped core, warm fringe
    warm = np.array([1.0, 0.62, 0.30])
    background = 0.03
    chart[y0:split, x0:x1] = _srgb_encode(background + glow[..., None] * warm)
    cols = len(HIGHLIGHT_COLORS) // 2
    pitch_x, pitch_y = w / cols, (y1 - split) / 2
    for index, color in enumerate(HIGHLIGHT_COLORS):
        row, col = divmod(index, cols)
        px0, py0 = x0 + round(col * pitch_x), split + round(row * pitch_y)
        px1, py1 = x0 + round((col + 1) * pitch_x), split + round((row + 1) * pitch_y)
        chart[py0 : max(py0 + 1, py1), px0 : max(px0 + 1, px1)] = color


def _step_wedge(chart: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
    """16 flat greys from 0 to 255, framed in near-black so the step near 18% grey stays visible
    against the background."""
    chart[y0:y1, x0:x1] = 24
    inset = max(1, min(x1 - x0, y1 - y0) // 25)
    x0, y0, x1, y1 = x0 + inset, y0 + inset, max(x0 + inset + 1, x1 - inset), max(y0 + inset + 1, y1 - inset)
    edges = np.linspace(x0, x1, WEDGE_STEPS + 1).round().astype(int)
    for step in range(WEDGE_STEPS):
        chart[y0:y1, edges[step] : max(edges[step] + 1, edges[step + 1])] = step * 255 // (WEDGE_STEPS - 1)


def _grey_ramp(chart: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
    """0..255 left to right: banding after conversion shows here first."""
    ramp = np.rint(np.linspace(0, 255, x1 - x0)).astype(np.uint8)
    chart[y0:y1, x0:x1] = ramp[None, :, None]


def _hue_ramp(chart: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
    """Every hue at full saturation along the top edge, fading to white along the bottom."""
    w, h = x1 - x0, y1 - y0
    hue = np.linspace(0.0, 1.0, w, endpoint=False)
    # HSV with S = V = 1: each channel is a clipped triangle wave of the hue.
    offsets = np.array([0.0, 2 / 3, 1 / 3])  # R, G, B peak at hues 0, 1/3, 2/3
    phase = (hue[:, None] + offsets[None, :]) % 1.0
    rgb = np.clip(np.abs(phase * 6 - 3) - 1, 0, 1)
    fade = np.linspace(0.0, 0.85, h)[:, None, None]  # towards white, never fully there
    code = rgb[None, :, :] * (1 - fade) + fade
    chart[y0:y1, x0:x1] = np.rint(code * 255).astype(np.uint8)


def _line_pairs(chart: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
    """Black/white bars 1, 2, 3 and 4 pixels wide, vertical then horizontal."""
    groups = [(period, axis) for axis in (1, 0) for period in (1, 2, 3, 4)]
    edges = np.linspace(x0, x1, len(groups) + 1).round().astype(int)
    for (period, axis), gx0, gx1 in zip(groups, edges[:-1], edges[1:], strict=True):
        gx1 = max(gx0 + 1, gx1 - max(1, (gx1 - gx0) // 8))  # a small gap between groups
        y, x = np.mgrid[y0:y1, gx0:gx1]
        coord = x if axis == 1 else y
        chart[y0:y1, gx0:gx1] = np.where((coord // period) % 2 == 0, 255, 0).astype(np.uint8)[..., None]


def _text(chart: np.ndarray, x0: int, y0: int, x1: int, y1: int) -> None:
    """Lines of text at shrinking sizes, like an eye chart: fine, irregular, high-contrast detail
    of the kind real photos have (signs, labels)."""
    w, h = x1 - x0, y1 - y0
    canvas = Image.new("L", (w, h), 235)
    draw = ImageDraw.Draw(canvas)
    lines = (
        "rawback sample chart - sRGB, drawn by code",
        "0123456789 ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz",
        "The quick brown fox jumps over the lazy dog. 0123456789",
        "Pack my box with five dozen liquor jugs. ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    )
    top = 1.0
    for line, share in zip(lines, (0.30, 0.24, 0.20, 0.16), strict=True):
        size = max(5, int(h * share))
        font = ImageFont.load_default(size=size)  # Pillow's bundled font
        while size > 5 and draw.textlength(line, font=font) > w - 4:  # fit the width
            size -= 1
            font = ImageFont.load_default(size=size)
        draw.text((2, top), line, fill=10, font=font)
        top += size * 1.05
    chart[y0:y1, x0:x1] = np.asarray(canvas)[..., None]

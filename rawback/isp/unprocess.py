"""The analytic inverse ISP: Brooks et al., "Unprocessing Images for Learned Raw Denoising"
(CVPR 2019), adapted to a camera profile and to LibRaw's rendering conventions.

A raw developer renders  sRGB8 = curve(rgb_cam @ demosaic(min(1, raw * wb)))  (plus, in a camera,
a tone curve). We undo each step in reverse order:

    1. inverse tone curve (optional: Brooks' smoothstep on display values, or the camera's own
       curve measured from RAW+JPEG pairs and kept in its profile, rawback.isp.tone_fit),
    2. inverse transfer curve (sRGB for camera JPEGs, BT.709-shaped for LibRaw renders),
    3. linear sRGB -> white-balanced camera RGB (the inverse of LibRaw's `rgb_cam`),
    4. inverse white balance with a *neutral* (camera RGB of the scene white): divide by the
       multipliers normalised as LibRaw normalises them (smallest = 1),
    5. mosaic to the profile's CFA and scale to its black and white levels.

Clipped highlights and JPEG loss cannot be undone analytically; that is the learned model's job.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rawback.camera import CameraProfile
from rawback.choices import ToneCurve
from rawback.isp import color, tone
from rawback.isp.bayer import channel_index

_LINEAR_STEPS = np.linspace(0.0, 1.0, 65536)


@dataclass(frozen=True)
class UnprocessSettings:
    transfer: str = "srgb"  # transfer curve of the input: "srgb", "bt709" (LibRaw), "gamma2.2"
    # Tone curve to undo (choices.ToneCurve); "auto" and "measured" name the profile's measured
    # curve, which rawback.finish decides on and passes to `unprocess` as `curve`.
    tone_curve: str = ToneCurve.AUTO.value

    def __post_init__(self) -> None:
        if self.transfer not in color.TRANSFER_CURVES:
            raise ValueError(f"unknown transfer curve {self.transfer!r}")
        if self.tone_curve not in tuple(ToneCurve):
            known = tuple(t.value for t in ToneCurve)
            raise ValueError(f"unknown tone curve {self.tone_curve!r}; known: {known}")


def inverse_smoothstep(y: np.ndarray) -> np.ndarray:
    """Inverse of Brooks et al.'s global tone curve 3x^2 - 2x^3 (their eq. in section 3.4)."""
    y = np.clip(y, 0.0, 1.0)
    return 0.5 - np.sin(np.arcsin(1.0 - 2.0 * y) / 3.0)


def linearisation_table(settings: UnprocessSettings, levels: int) -> np.ndarray:
    """Display code value (0..levels-1) -> linear light, with the tone curve undone first.

    Inputs are 8- or 16-bit, so a table over every code is exact and far faster than evaluating
    powers per pixel.
    """
    v = np.arange(levels, dtype=np.float64) / (levels - 1)
    if settings.tone_curve == "smoothstep":
        v = inverse_smoothstep(v)
    return color.to_linear(v, settings.transfer).astype(np.float32)


def white_balance_scale(neutral: np.ndarray) -> np.ndarray:
    """Per-channel gains LibRaw applies for this neutral: multipliers 1/neutral, smallest = 1."""
    neutral = np.asarray(neutral, dtype=np.float64)
    if neutral.shape != (3,) or not np.all(np.isfinite(neutral)) or np.any(neutral <= 0):
        raise ValueError(f"a neutral needs three positive values, got {neutral!r}")
    multipliers = 1.0 / neutral
    return multipliers / multipliers.min()


def neutral_for_illuminant(profile: CameraProfile, cct: float) -> np.ndarray:
    """Camera neutral of a blackbody-like illuminant at `cct` kelvin.

    With two calibrated matrices the matrix is interpolated linearly in inverse CCT between them
    (DNG specification, chapter 6) and clamped outside their range; the illuminant's white is taken
    on the daylight/Planckian locus via its sRGB white, so with one matrix only D65 is exact.
    """
    pairs = profile.matrices()
    if len(pairs) == 1:
        matrix = pairs[0][1]
    else:
        (i1, m1), (i2, m2) = pairs
        t1, t2 = color.ILLUMINANT_CCT.get(i1, 6504.0), color.ILLUMINANT_CCT.get(i2, 6504.0)
        if t1 > t2:
            (t1, m1), (t2, m2) = (t2, m2), (t1, m1)
        w = (1 / cct - 1 / t2) / (1 / t1 - 1 / t2) if t1 != t2 else 0.0
        w = float(np.clip(w, 0.0, 1.0))
        matrix = w * m1 + (1 - w) * m2
    white = color.XYZ_FROM_SRGB.sum(axis=1) if abs(cct - 6504) < 1 else _blackbody_xyz(cct)
    neutral = matrix @ white
    return neutral / neutral[1]


def _blackbody_xyz(cct: float) -> np.ndarray:
    """XYZ (Y = 1) of the CIE daylight locus (>= 4000 K) or Planckian locus (Kim et al. 2002)."""
    t = float(np.clip(cct, 1667.0, 25000.0))
    if t >= 4000:  # CIE 15:2004 daylight x, one polynomial to 7000 K and another above
        if t <= 7000:
            x = -4.6070e9 / t**3 + 2.9678e6 / t**2 + 0.09911e3 / t + 0.244063
        else:
            x = -2.0064e9 / t**3 + 1.9018e6 / t**2 + 0.24748e3 / t + 0.237040
        y = -3.0 * x * x + 2.87 * x - 0.275  # CIE daylight locus
    else:
        x = -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910
        if t < 2222:
            y = -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
        else:
            y = -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867
    return np.array([x / y, 1.0, (1 - x - y) / y])


@dataclass(frozen=True)
class LinearTables:
    """What `unprocess` looks values up in, so that the same tables serve its NumPy form and the
    device form (rawback.isp.on_device): display code -> linear sRGB, then, after the finish's
    saturation is undone on the mixed values, the finish's curve over 16-bit linear steps."""

    levels: int  # display codes: 256 or 65536
    table: np.ndarray  # (levels,) float32; the curve is folded in unless the saturation is undone
    saturation: float  # the finish's saturation to divide out (1 = none)
    curve_table: np.ndarray | None  # (65536,) float32 on linear steps; None: no curve after saturation


def linear_tables(
    settings: UnprocessSettings, bit_depth: int, curve: np.ndarray | None = None, saturation: float = 1.0
) -> LinearTables:
    """`unprocess`'s tables for an input of `bit_depth` bits, a finish `curve` and `saturation`."""
    desaturate = saturation != 1.0
    levels = 65536 if bit_depth > 8 else 256
    table = linearisation_table(settings, levels)
    # Without saturation the curve is per channel and folds into the per-code table; with it the
    # channels mix first, so the curve is applied to the mixed values instead.
    if curve is not None and not desaturate:
        table = tone.apply_inverse(table, curve)
    # The curve on mixed values: a table over 16-bit linear steps, far finer than an 8-bit input
    # and several times faster than interpolating every value.
    curve_table = tone.apply_inverse(_LINEAR_STEPS, curve) if desaturate and curve is not None else None
    return LinearTables(levels, table, float(saturation), curve_table)


def unprocess(
    rgb: np.ndarray,
    profile: CameraProfile,
    neutral: np.ndarray,
    settings: UnprocessSettings = UnprocessSettings(),
    *,
    bit_depth: int = 8,
    curve: np.ndarray | None = None,
    saturation: float = 1.0,
) -> np.ndarray:
    """sRGB-encoded image (H, W, 3) in [0, 1] -> normalised mosaic (H, W) float32 in [0, 1].

    The mosaic has the profile's CFA; 0 is black and 1 the white level. `neutral` is the scene
    white in camera RGB (green = 1): the white balance the inverse assumes. `curve` (knot values of
    rawback.isp.tone) undoes the finish's global tone curve after the transfer curve, and
    `saturation` the saturation the finish added about luminance after its curve (1 = none).
    """
    h, w, _ = rgb.shape
    tables = linear_tables(settings, bit_depth, curve, saturation)
    codes = display_codes(rgb, tables.levels)

    def quarter(dy: int, dx: int) -> np.ndarray:  # (h/2, w/2, 3) linear sRGB
        lin = tables.table[codes[dy::2, dx::2]]
        if tables.saturation != 1.0:
            lin = _undo_saturation(lin, tables.saturation)
            if tables.curve_table is not None:
                steps = len(tables.curve_table) - 1
                lin = tables.curve_table[np.rint(lin * steps).astype(np.intp)]
        return lin

    return mosaic_from_linear(quarter, raw_from_srgb_matrix(profile, neutral), profile.cfa_pattern, (h, w))


def mosaic_from_linear(
    quarter: Callable[[int, int], np.ndarray], raw_from_srgb: np.ndarray, pattern: str, shape: tuple[int, int]
) -> np.ndarray:
    """Linear sRGB -> (H, W) normalised mosaic on `pattern`, clipped to [0, 1]. The linear image
    comes a quarter at a time, `quarter(dy, dx)` being its pixels at rows dy::2 and columns dx::2,
    so that no whole-size three-channel copy need exist: each CFA site needs only its own camera
    channel, one row of `raw_from_srgb` per quarter."""
    sites = channel_index(pattern)
    out = np.empty(shape, dtype=np.float32)
    for dy in (0, 1):
        for dx in (0, 1):
            out[dy::2, dx::2] = quarter(dy, dx) @ raw_from_srgb[sites[dy, dx]].astype(np.float32)
    return np.clip(out, 0.0, 1.0, out=out)


def _undo_saturation(linear: np.ndarray, saturation: float) -> np.ndarray:
    """Divide each colour's offset from its luminance by the saturation the finish multiplied it by."""
    luma = (linear @ color.LUMA_709)[..., None]
    return np.clip(luma + (linear - luma) / np.float32(saturation), 0.0, 1.0)


def raw_from_srgb_matrix(profile: CameraProfile, neutral: np.ndarray) -> np.ndarray:
    """Linear sRGB -> raw camera RGB (3x3). Linear sRGB -> balanced camera RGB is the
    row-normalised `cam_xyz @ xyz_rgb` (LibRaw inverts exactly this matrix for rendering);
    dividing by the white-balance gains gives raw values."""
    balanced_from_srgb = np.linalg.inv(profile.srgb_from_camera())
    return balanced_from_srgb / white_balance_scale(neutral)[:, None]


def display_codes(rgb: np.ndarray, levels: int) -> np.ndarray:
    """sRGB in [0, 1] -> the integer display codes the tables are indexed by."""
    codes = np.rint(np.asarray(rgb, dtype=np.float32) * (levels - 1)).astype(np.intp)
    return np.clip(codes, 0, levels - 1, out=codes)


def unprocess_rgb(
    rgb: np.ndarray,
    profile: CameraProfile,
    neutral: np.ndarray,
    settings: UnprocessSettings = UnprocessSettings(),
    *,
    bit_depth: int = 8,
) -> np.ndarray:
    """Like `unprocess` but keeps all three camera channels at every pixel (H, W, 3): the
    demosaicked estimate, used for the model's whole-photo thumbnail."""
    tables = linear_tables(settings, bit_depth)
    matrix = raw_from_srgb_matrix(profile, neutral).T.astype(np.float32)
    out = tables.table[display_codes(rgb, tables.levels)] @ matrix
    return np.clip(out, 0.0, 1.0, out=out)


def to_counts(normalised: np.ndarray, profile: CameraProfile) -> np.ndarray:
    """Normalised mosaic -> uint16 raw counts between the profile's black and white levels."""
    from rawback.isp.bayer import per_site

    h, w = normalised.shape
    black = per_site(profile.black_level, h, w)
    counts = black + normalised * (profile.white_level - black)
    return np.clip(np.rint(counts), 0, profile.white_level).astype(np.uint16)

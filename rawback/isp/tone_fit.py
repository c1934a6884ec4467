"""Measure a camera's tone curve from pairs of its RAW and its own JPEG of the same shot.

A camera's JPEG engine applies the same global tone curve (for one picture style) to every photo,
so the curve measured once from a RAW+JPEG pair holds for every JPEG-only photo of that camera.
From a single JPEG the curve is not identifiable: a filmic lift and a bright scene look alike, and
the global head's guess is only as good as the training scenes (docs/experiments.md). With the pair
it is a regression: the RAW gives the linear value x the curve received, the JPEG the value y it
produced, and rawback.isp.tone's knots describe x as a log gain over y,

    ln x = ln y + d(u(y)),   d piecewise linear through the knot values.

The fit is least squares on ln x - ln y of the pixels' luminance where neither side is clipped,
robust to misregistered edges and noise (Huber
reweighting), and smoothed by a small second-difference penalty so that knots with few pixels
follow their neighbours instead of the noise. `fit_saturation` then measures the saturation the
camera added about luminance after the curve, from the colours.

Luminance, not the channels, for the curve: cameras add saturation about luminance after the
curve, which pushes the channels of every colour apart but leaves its luminance where the curve
put it (measured on the "finished" protocol: pooled channels missed the curve by 0.03-0.28 in knot
RMS, luminance by 0.03-0.05).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rawback.isp import tone
from rawback.isp.color import LUMA_709, linear_to_srgb, srgb_to_linear
from rawback.isp.tone import knot_positions

# A pixel counts only where neither side is clipped: the RAW's linear value below this (LibRaw
# clips at 1 after white balance, and a channel at 1 says nothing about where the curve took it)
# and the JPEG strictly between its darkest and brightest codes.
_RAW_CLIP = 0.98
_JPEG_LOW, _JPEG_HIGH = 1.5 / 255.0, 253.5 / 255.0
# Fewer pixels than this under a knot's hat and the knot is "unmeasured": it follows its
# neighbours through the smoothness penalty and is reported as such.
MIN_PIXELS_PER_KNOT = 50
_SMOOTHNESS = 1.0  # weight of the second-difference penalty, in units of a knot's pixel weight
_HUBER = 0.1  # ln-units: residuals beyond this (about 10 %) count linearly, not squared
_IRLS_ROUNDS = 5
# A few hundred thousand values fix 16 knots far below 8-bit precision; more only cost memory.
MAX_SAMPLES = 400_000
LUMINANCE = LUMA_709  # Rec. 709 weights of linear sRGB
SATURATION_RANGE = (0.25, 4.0)  # beyond this a measured saturation is a failed fit, not a camera
# Mean squared colour offset below which samples are too grey to measure a saturation by.
_MIN_COLOUR = 1e-6
_SATURATION_ROUNDS = 4
_UNCLIPPED = (0.002, 0.95)  # linear: a saturated channel outside this was (nearly) clipped


@dataclass(frozen=True)
class ToneCurveFit:
    """A measured tone curve and how well the pairs support it."""

    knots: np.ndarray  # (K,) knot values d_k of rawback.isp.tone (the inverse log gain)
    pixels_per_knot: np.ndarray  # (K,) hat-weighted pixel count under each knot
    rms_residual: float  # RMS of ln x - ln g(y) over the pixels used, after the fit (ln units)
    pixels: int  # pixels the fit used

    @property
    def measured(self) -> np.ndarray:
        """Which knots had enough pixels to be measured rather than interpolated."""
        return self.pixels_per_knot >= MIN_PIXELS_PER_KNOT


def raw_unclipped(linear: np.ndarray) -> np.ndarray:
    """Where no channel of the RAW's linear sRGB (H, W, 3) is clipped or black: (H, W) bool."""
    lin = np.asarray(linear, dtype=np.float32)
    return np.all((lin > 1e-4) & (lin < _RAW_CLIP), axis=-1)


def jpeg_unclipped(encoded: np.ndarray) -> np.ndarray:
    """Where no channel of the JPEG's sRGB-encoded values (H, W, 3) in [0, 1] sits at its darkest
    or brightest codes: (H, W) bool."""
    enc = np.asarray(encoded, dtype=np.float32)
    return np.all((enc > _JPEG_LOW) & (enc < _JPEG_HIGH), axis=-1)


def fit_tone_curve(x: np.ndarray, y: np.ndarray, knots: int = 16) -> ToneCurveFit:
    """Fit the inverse tone curve's knots to linear values x (what the curve received) and y (what
    it gave), as rawback.profile_curve samples them from pairs (pool several pairs by concatenating)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("x and y must be 1-D arrays of the same length")
    if x.size < MIN_PIXELS_PER_KNOT:
        raise ValueError(f"only {x.size} unclipped pixels: too few to measure a tone curve")
    used = x.size
    if x.size > MAX_SAMPLES:  # an evenly spread, reproducible subset
        pick = np.random.default_rng(0).choice(x.size, MAX_SAMPLES, replace=False)
        x, y = x[pick], y[pick]
    basis = _hat_basis(linear_to_srgb(y.astype(np.float32)).astype(np.float64), knots)  # (N, K)
    target = np.log(x) - np.log(y)
    # Dark values carry 8-bit quantisation and noise that are large in log units: weight each pixel
    # by how well its log ratio is determined, about y / (y + one code step) in the linear domain.
    step = srgb_to_linear(np.array([1.0 / 255.0]))[0]
    base_weight = y / (y + step)
    penalty = _second_differences(knots)
    counts = basis.sum(axis=0)
    scale = _SMOOTHNESS * max(1.0, float(np.median(basis.T @ base_weight)))
    weight = base_weight
    d = np.zeros(knots)
    for _ in range(_IRLS_ROUNDS):
        wb = basis * weight[:, None]
        normal = basis.T @ wb + scale * penalty.T @ penalty
        d = np.linalg.solve(normal, wb.T @ target)
        residual = target - basis @ d
        huber = np.minimum(1.0, _HUBER / np.maximum(np.abs(residual), 1e-12))
        weight = base_weight * huber
    residual = target - basis @ d
    return ToneCurveFit(
        knots=d.astype(np.float32),
        pixels_per_knot=counts,
        rms_residual=float(np.sqrt(np.mean(residual**2))),
        pixels=int(used),
    )


def fit_saturation(x_rgb: np.ndarray, y_rgb: np.ndarray, curve: np.ndarray) -> float:
    """The saturation factor s a finish applied about luminance after its tone curve,

        y = clip(L + s (F(x) - L)),   F the curve (`curve`: its inverse's knots), L the luminance of F(x),

    from linear RGB samples (N, 3) of the RAW (x) and the JPEG (y): least squares on the colours'
    offsets from their luminance. Samples whose saturated colour would leave [0, 1] are dropped
    and s fitted again (a few rounds): the finish clipped them, which would pull s towards 1.
    1 when the samples hold no colour to measure it by."""
    x_rgb = np.asarray(x_rgb, dtype=np.float64)
    y_rgb = np.asarray(y_rgb, dtype=np.float64)
    if len(x_rgb) > MAX_SAMPLES:
        pick = np.random.default_rng(0).choice(len(x_rgb), MAX_SAMPLES, replace=False)
        x_rgb, y_rgb = x_rgb[pick], y_rgb[pick]
    curved = tone.forward_values(x_rgb, curve).astype(np.float64)
    luma = (curved @ LUMINANCE)[:, None]
    offset_curved = curved - luma
    offset_jpeg = y_rgb - (y_rgb @ LUMINANCE)[:, None]
    keep = np.ones(len(x_rgb), dtype=bool)
    s = 1.0
    for _ in range(_SATURATION_ROUNDS):
        energy = float(np.sum(offset_curved[keep] ** 2))
        if energy < _MIN_COLOUR * max(1, int(keep.sum())):
            return 1.0
        s = float(np.clip(np.sum(offset_curved[keep] * offset_jpeg[keep]) / energy, *SATURATION_RANGE))
        predicted = luma + s * offset_curved
        keep = np.all((predicted > _UNCLIPPED[0]) & (predicted < _UNCLIPPED[1]), axis=1)
    return s


def _hat_basis(u: np.ndarray, knots: int) -> np.ndarray:
    """Linear-interpolation weights of each encoded value u on the knots (constant beyond the
    first and last knot, as rawback.isp.tone.log_gain evaluates the curve)."""
    centres = knot_positions(knots)
    pos = np.interp(u, centres, np.arange(knots, dtype=np.float64))
    low = np.floor(pos).astype(np.intp)
    frac = pos - low
    high = np.minimum(low + 1, knots - 1)
    basis = np.zeros((u.size, knots))
    rows = np.arange(u.size)
    np.add.at(basis, (rows, low), 1.0 - frac)
    np.add.at(basis, (rows, high), frac)
    return basis


def _second_differences(knots: int) -> np.ndarray:
    if knots < 3:
        return np.zeros((0, knots))
    return np.diff(np.eye(knots), n=2, axis=0)

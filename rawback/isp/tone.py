"""A finish's global tone curve and its inverse, described by a few numbers the global head can
predict.

A camera JPEG is not LibRaw's render: an exposure lift, a filmic or S-shaped curve and a highlight
shoulder bend every value, and the analytic inverse, which only undoes the transfer curve, leaves
that bend in its estimate (docs/experiments.md measures what knowing the curve is worth on the
"finished" evaluation protocol). We describe the inverse as a log gain over the linear value the
transfer curve gives back:

    g(y) = y * exp(d(u)),   u = sRGB encoding of y,

with d piecewise linear through `knots` values at the centres u = (k + 1/2) / K of K equal steps
of the encoded range, and constant beyond the first and the last.
No correction is d = 0, an exposure gain e alone is d = -ln e, and g(0) = 0 always. Knots are
evenly spaced in the encoded domain so that the shadows, where curves differ most, get as many as
the highlights; none sits at white itself, where every input a finish pushed into 255 reads the
same and the inverse is not defined.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rawback.isp.color import linear_to_srgb, srgb_to_linear

# Where the forward response is sampled to invert it: fine enough that interpolation error is far
# below 8-bit quantisation, coarse enough to cost well under a millisecond.
_FORWARD_SAMPLES = 4097


def knot_positions(knots: int) -> np.ndarray:
    """Encoded positions u_k = (k + 1/2) / K, k = 0..K-1, of the knots."""
    if knots < 1:
        raise ValueError(f"a tone curve needs at least one knot, got {knots}")
    return (np.arange(knots, dtype=np.float64) + 0.5) / knots


def inverse_log_gains(forward: Callable[[np.ndarray], np.ndarray], knots: int) -> np.ndarray:
    """The knots d_k = ln(x_k / y_k) of the inverse of a monotone `forward` response on [0, 1]:
    x_k is the smallest input whose response reaches y_k (a response that never reaches y_k, such
    as a darkening exposure, maps it to input 1)."""
    x = np.linspace(0.0, 1.0, _FORWARD_SAMPLES)
    y = np.asarray(forward(x), dtype=np.float64)
    # Clipping makes plateaus; a tiny ramp makes the samples strictly increasing for interpolation.
    y = np.maximum.accumulate(y) + 1e-9 * x
    targets = srgb_to_linear(knot_positions(knots)).astype(np.float64)
    inverse = np.interp(targets, y, x, right=1.0)
    return np.log(np.maximum(inverse, 1e-6) / targets).astype(np.float32)


def log_gain(linear: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """d(u(y)) for linear values y, from the knot values `curve`."""
    curve = np.asarray(curve, dtype=np.float64)
    u = linear_to_srgb(np.asarray(linear, dtype=np.float32)).astype(np.float64)
    return np.interp(u, knot_positions(len(curve)), curve)


def apply_inverse(linear: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """g(y) = y exp(d(u(y))) for increasing linear values y (a table over display codes), forced
    monotone: a predicted curve that bends back would swap the order of two tones."""
    linear = np.asarray(linear, dtype=np.float64)
    out = linear * np.exp(log_gain(linear, curve))
    return np.maximum.accumulate(out).astype(np.float32)


def forward_values(linear: np.ndarray, curve: np.ndarray) -> np.ndarray:
    """The forward response g^-1(x) the knots describe, for linear values x: what the finish made
    of a linear value (past the inverse's range, white)."""
    grid, inverse = _inverse_table(curve)
    return np.interp(linear, inverse, grid, right=1.0).astype(np.float32)


def _inverse_table(curve: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The inverse sampled on linear values evenly spaced in the encoded domain, made strictly
    increasing (a tiny ramp) so that both directions interpolate."""
    encoded = np.linspace(0.0, 1.0, _FORWARD_SAMPLES)
    grid = srgb_to_linear(encoded).astype(np.float64)
    inverse = apply_inverse(grid, curve).astype(np.float64) + 1e-9 * encoded
    return grid, inverse


def identity(knots: int) -> np.ndarray:
    return np.zeros(knots, dtype=np.float32)


def exposure_only(knots: int, exposure: float) -> np.ndarray:
    """The curve that undoes a plain exposure gain."""
    return np.full(knots, -np.log(exposure), dtype=np.float32)

"""Colour maths shared by the inverse ISP, the DNG writer and evaluation.

Conventions follow dcraw/LibRaw and the DNG specification:
- a *colour matrix* maps CIE XYZ to camera RGB (DNG ColorMatrix, dcraw's `cam_xyz`);
- a *neutral* is the camera RGB of a white surface, green = 1 (DNG AsShotNeutral);
- white-balance *multipliers* are the reciprocal of a neutral.
"""

from __future__ import annotations

import numpy as np

from rawback.choices import Transfer

# Linear sRGB (D65) -> XYZ, IEC 61966-2-1. The same numbers as dcraw's `xyz_rgb`, so that our
# camera -> sRGB matrix equals the one LibRaw derives from a DNG's ColorMatrix.
XYZ_FROM_SRGB = np.array(
    [
        [0.412453, 0.357580, 0.180423],
        [0.212671, 0.715160, 0.072169],
        [0.019334, 0.119193, 0.950227],
    ]
)
SRGB_FROM_XYZ = np.linalg.inv(XYZ_FROM_SRGB)
# Rec. 709 luminance weights of linear sRGB (also used on display values as "luma").
LUMA_709 = np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)

# EXIF LightSource codes (also DNG CalibrationIlluminant) -> correlated colour temperature in K.
ILLUMINANT_CCT: dict[int, float] = {
    1: 5500.0,  # daylight
    2: 4200.0,  # fluorescent
    3: 2850.0,  # tungsten
    4: 5500.0,  # flash
    9: 5500.0,  # fine weather
    10: 6500.0,  # cloudy
    11: 7500.0,  # shade
    12: 6430.0,  # daylight fluorescent
    13: 5000.0,  # day white fluorescent
    14: 4150.0,  # cool white fluorescent
    15: 3450.0,  # white fluorescent
    16: 2940.0,  # warm white fluorescent
    17: 2856.0,  # standard light A
    18: 4874.0,  # standard light B
    19: 6774.0,  # standard light C
    20: 5503.0,  # D55
    21: 6504.0,  # D65
    22: 7504.0,  # D75
    23: 5003.0,  # D50
    24: 3200.0,  # ISO studio tungsten
}
D65 = 21


# --- transfer curves -----------------------------------------------------------------------------
# Each pair maps display-encoded values in [0, 1] to linear light and back. "bt709" is the curve
# LibRaw's postprocess applies by default (gamm = 0.45, toe slope 4.5): a pure power of 1/2.222
# with a linear toe, *not* the sRGB curve, which is why evaluation must name the curve it used.


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4).astype(np.float32)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    v = np.clip(np.asarray(v, dtype=np.float32), 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055).astype(np.float32)


def _bt709_constants(power: float = 0.45, slope: float = 4.5) -> tuple[float, float, float]:
    """The toe of dcraw's `gamma_curve(power, slope)`: (linear breakpoint, encoded one, offset).

    The curve is `slope * x` below the breakpoint and `(1 + a) x^power - a` above it, joined with
    equal value and equal slope; we find the breakpoint by bisection as dcraw does.
    """
    lo, hi = 1e-9, 1.0
    for _ in range(100):
        x = (lo + hi) / 2
        a = (x**power - slope * x) / (1 - x**power)  # equal value at x
        if (1 + a) * power * x ** (power - 1) > slope:  # power part still steeper: move right
            lo = x
        else:
            hi = x
    x = (lo + hi) / 2
    a = (x**power - slope * x) / (1 - x**power)
    return x, slope * x, a


_BT709_X, _BT709_Y, _BT709_A = _bt709_constants()


def bt709_to_linear(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    lin = ((v + _BT709_A) / (1 + _BT709_A)) ** (1 / 0.45)
    return np.where(v < _BT709_Y, v / 4.5, lin).astype(np.float32)


def linear_to_bt709(v: np.ndarray) -> np.ndarray:
    v = np.clip(np.asarray(v, dtype=np.float32), 0.0, 1.0)
    enc = (1 + _BT709_A) * v**0.45 - _BT709_A
    return np.where(v < _BT709_X, v * 4.5, enc).astype(np.float32)


def gamma22_to_linear(v: np.ndarray) -> np.ndarray:
    return (np.clip(np.asarray(v, dtype=np.float32), 0, None) ** 2.2).astype(np.float32)


def linear_to_gamma22(v: np.ndarray) -> np.ndarray:
    return (np.clip(np.asarray(v, dtype=np.float32), 0, 1) ** (1 / 2.2)).astype(np.float32)


TRANSFER_CURVES = {
    Transfer.SRGB: (srgb_to_linear, linear_to_srgb),
    Transfer.BT709: (bt709_to_linear, linear_to_bt709),
    Transfer.GAMMA22: (gamma22_to_linear, linear_to_gamma22),
    # Not an input option: the simulator's and tests' identity.
    "linear": (lambda v: np.asarray(v, dtype=np.float32), lambda v: np.asarray(v, np.float32)),
}


def to_linear(v: np.ndarray, curve: str) -> np.ndarray:
    """Decode display values with the named transfer curve ("srgb", "bt709", "gamma2.2")."""
    try:
        return TRANSFER_CURVES[curve][0](v)
    except KeyError:
        raise ValueError(f"unknown transfer curve {curve!r}; known: {sorted(TRANSFER_CURVES)}") from None


def from_linear(v: np.ndarray, curve: str) -> np.ndarray:
    try:
        return TRANSFER_CURVES[curve][1](v)
    except KeyError:
        raise ValueError(f"unknown transfer curve {curve!r}; known: {sorted(TRANSFER_CURVES)}") from None


# --- camera matrices -----------------------------------------------------------------------------


def camera_from_srgb(color_matrix: np.ndarray) -> np.ndarray:
    """Camera RGB from linear sRGB, unnormalised: `cam_xyz @ xyz_rgb` (dcraw `cam_xyz_coeff`)."""
    return np.asarray(color_matrix, dtype=np.float64).reshape(3, 3) @ XYZ_FROM_SRGB


def daylight_neutral(color_matrix: np.ndarray) -> np.ndarray:
    """Camera response to a D65 white (sRGB (1,1,1)) through `color_matrix`, green = 1.

    This is the neutral LibRaw's `pre_mul` encodes for a DNG without AsShotNeutral, and the
    scene-independent white balance estimate of the analytic inverse.
    """
    neutral = camera_from_srgb(color_matrix).sum(axis=1)
    if not np.all(np.isfinite(neutral)) or np.any(neutral <= 0):
        raise ValueError("colour matrix gives a non-positive response to white")
    return neutral / neutral[1]


def srgb_from_camera_balanced(color_matrix: np.ndarray) -> np.ndarray:
    """Linear sRGB from *white-balanced* camera RGB, as LibRaw computes `rgb_cam` for rendering.

    LibRaw normalises the rows of `cam_xyz @ xyz_rgb` to sum to 1 (so balanced white stays white)
    and inverts the result.
    """
    cam_rgb = camera_from_srgb(color_matrix)
    cam_rgb = cam_rgb / cam_rgb.sum(axis=1, keepdims=True)
    return np.linalg.inv(cam_rgb)


def neutral_angle_degrees(a: np.ndarray, b: np.ndarray) -> float:
    """Angle between two camera-RGB illuminant vectors: the colour-constancy 'recovery error'."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    cos = float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))
    return float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))

"""A synthetic camera RAW from an sRGB photograph (the scene engine of training, docs/training.md).

The photograph stands for the scene's reflectances as a D65 white-balanced sRGB image. To film it
with a camera under another light we

    1. decode sRGB to linear light (the photo's own tone curve is not known and stays in the scene),
    2. move its white from D65 to an illuminant on the daylight (>= 4000 K) or Planckian (below)
       locus, offset by a small tint along the locus normal (Bradford adaptation in XYZ),
    3. map XYZ to the camera's RGB with its XYZ -> camera matrix (the one LibRaw renders with),
    4. scale so the scene's brightest camera value sits below the white level (headroom: the truth
       is never clipped, so a condition rendered brighter clips while the truth above it is known),
    5. sample the camera's CFA in the profile's Bayer phase,
    6. add heteroscedastic sensor noise, variance = shot * signal + read (Brooks et al. 2019),
    7. quantise to integer counts between the camera's black and white levels.

A grey scene gives camera values proportional to the camera RGB of the illuminant's white
(`light_neutral`). The as-shot neutral the RAW records (`neutral`, green = 1) is what the camera's
auto white balance chose: the light's, moved part of the way towards mean daylight, so a warm
light stays a little warm in the photo, as it does in real cameras' JPEGs. The light is drawn
outdoors or indoors with a scene exposure value to match. Pure numpy; the camera is given, not
chosen here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rawback.camera import CameraProfile
from rawback.isp import color
from rawback.isp.bayer import mosaic_rgb, per_site

BAYER_PHASES = ("RGGB", "GRBG", "GBRG", "BGGR")
D65_WHITE = color.XYZ_FROM_SRGB.sum(axis=1)  # XYZ of sRGB (1, 1, 1), Y = 1
# Bradford cone response matrix (Lam 1985; ICC v4 annex E): the usual chromatic adaptation.
BRADFORD = np.array(
    [
        [0.8951, 0.2664, -0.1614],
        [-0.7502, 1.7135, 0.0367],
        [0.0389, -0.0685, 1.0296],
    ]
)
# Brooks et al., "Unprocessing Images for Learned Raw Denoising" (CVPR 2019), section 3.2 and their
# released code (`random_noise_levels`): shot-noise gain log-uniform in [1e-4, 1.2e-2] on the 0..1
# scale, and log(read variance) = 2.18 log(shot) + 1.20 + N(0, 0.26), fitted to the Darmstadt
# Noise Dataset's cameras. The shot gain grows in proportion to ISO, so we call its low end ISO 100.
BROOKS_SHOT = (1e-4, 1.2e-2)
BROOKS_READ_SLOPE, BROOKS_READ_OFFSET, BROOKS_READ_SIGMA = 2.18, 1.20, 0.26
SHOT_AT_ISO_100 = BROOKS_SHOT[0]


def shot_at_iso(iso: float) -> float:
    """The shot-noise gain of a sensor at `iso` (it grows in proportion; Capture.iso inverts it)."""
    return iso / 100.0 * SHOT_AT_ISO_100


# Where a camera's auto white balance pulls a warm or cool light's neutral towards (about mean
# daylight): it leaves part of the light's colour in the photo, as a viewer expects.
AWB_TARGET_CCT = 5500.0


@dataclass(frozen=True)
class SceneRawSettings:
    """The synthetic camera's random draws; ranges are sampled uniformly unless said otherwise."""

    adapt: bool = True  # chromatic adaptation to a sampled illuminant; False: every scene under D65
    # The light, drawn as photographs are lit (docs/training.md, "The light of a synthetic shot"):
    # outdoors (sun, shade, overcast) or, with chance `indoor_share`, indoors (tungsten, warm LED,
    # fluorescent); kelvin ranges uniform in mireds, with the scene exposure value (EV at ISO 100)
    # such a light goes with, which the shot's EXIF then carries. A light's colour is not in a
    # white-balanced photo; its brightness and the warmth a camera leaves are what tell it.
    indoor_share: float = 0.35
    outdoor_cct: tuple[float, float] = (4500.0, 9000.0)
    indoor_cct: tuple[float, float] = (2500.0, 4500.0)
    outdoor_ev: tuple[float, float] = (9.0, 15.5)
    indoor_ev: tuple[float, float] = (3.0, 10.0)
    tint_range: tuple[float, float] = (-0.006, 0.006)  # Duv off the locus (CIE 1960 uv), + greenish
    # A camera's auto white balance leaves part of a warm or cool light's colour in the photo (its
    # as-shot neutral lies between the light and ~5500 K): the share of that mired gap it leaves
    # uncorrected, uniform. The as-shot neutral, not the light, is the truth a RAW records.
    awb_leaves: tuple[float, float] = (0.0, 0.4)
    headroom: tuple[float, float] = (0.5, 0.95)  # the scene's brightest camera value, x white level
    phases: tuple[str, ...] = BAYER_PHASES
    noise: bool = True
    shot_range: tuple[float, float] = BROOKS_SHOT  # log-uniform
    read_slope: float = BROOKS_READ_SLOPE
    read_offset: float = BROOKS_READ_OFFSET
    read_sigma: float = BROOKS_READ_SIGMA


@dataclass(frozen=True)
class Capture:
    """Everything sampled for one synthetic shot, except the noise itself."""

    profile: CameraProfile  # the camera, with the sampled Bayer phase as its cfa_pattern
    cct: float  # the light's
    tint: float  # Duv
    white_xyz: np.ndarray  # the illuminant's white, Y = 1
    camera_from_srgb: np.ndarray  # 3x3: linear sRGB (D65) -> normalised camera RGB, scale included
    neutral: np.ndarray  # the as-shot neutral (the camera's white balance), green = 1
    light_neutral: np.ndarray  # camera RGB of the illuminant's white, green = 1
    as_shot_cct: float  # the colour temperature the camera's white balance chose (same tint)
    exposure_value: float  # scene EV at ISO 100, as the shot's EXIF gives it
    indoor: bool
    scale: float  # the headroom scale folded into camera_from_srgb
    shot: float  # shot-noise gain (variance per unit signal), 0..1 scale
    read: float  # read-noise variance, 0..1 scale

    @property
    def iso(self) -> float:
        return 100.0 * self.shot / SHOT_AT_ISO_100

    def camera_rgb(self, linear_srgb: np.ndarray) -> np.ndarray:
        """Noise-free normalised camera RGB of linear sRGB pixels (negative values, colours outside
        the camera's gamut, become 0: a sensor counts no negative light)."""
        out = np.asarray(linear_srgb, dtype=np.float32) @ self.camera_from_srgb.T.astype(np.float32)
        return np.maximum(out, 0.0)

    def params(self) -> dict[str, Any]:
        return {
            "camera": self.profile.name,
            "cfa_pattern": self.profile.cfa_pattern,
            "cct": self.cct,
            "tint": self.tint,
            "as_shot_cct": self.as_shot_cct,
            "exposure_value": self.exposure_value,
            "indoor": self.indoor,
            "neutral": self.neutral.tolist(),
            "scale": self.scale,
            "iso": self.iso,
            "shot": self.shot,
            "read": self.read,
        }


@dataclass(frozen=True)
class SyntheticRaw:
    mosaic: np.ndarray  # (H, W) float32: (counts - black) / (white - black), clipped to 0..1
    counts: np.ndarray  # (H, W) uint16 raw counts, black level included
    clean: np.ndarray  # (H, W, 3) float32 noise-free normalised camera RGB (for tests and logs)
    capture: Capture
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def profile(self) -> CameraProfile:
        return self.capture.profile

    @property
    def neutral(self) -> np.ndarray:
        return self.capture.neutral


# --- illuminants ---------------------------------------------------------------------------------


def _xyz_to_uv(xyz: np.ndarray) -> np.ndarray:
    x, y, z = xyz
    d = x + 15 * y + 3 * z
    return np.array([4 * x / d, 6 * y / d])


def _uv_to_xyz(uv: np.ndarray) -> np.ndarray:
    u, v = uv
    x, y = 3 * u / (2 * u - 8 * v + 4), 2 * v / (2 * u - 8 * v + 4)
    return np.array([x / y, 1.0, (1 - x - y) / y])


def locus_xy(cct: float) -> tuple[float, float]:
    """Chromaticity of a natural light: the CIE daylight locus from 4000 K (CIE 15, the D-series
    formula: 6504 K is D65's (0.3127, 0.3290)), the Planckian locus below it (Kim et al. 2002's
    cubic fit, valid from 1667 K)."""
    t = float(np.clip(cct, 1667.0, 25000.0))
    if t >= 4000:
        if t <= 7000:
            x = -4.6070e9 / t**3 + 2.9678e6 / t**2 + 0.09911e3 / t + 0.244063
        else:
            x = -2.0064e9 / t**3 + 1.9018e6 / t**2 + 0.24748e3 / t + 0.237040
        return x, -3.0 * x * x + 2.87 * x - 0.275
    x = -0.2661239e9 / t**3 - 0.2343589e6 / t**2 + 0.8776956e3 / t + 0.179910
    if t < 2222:
        return x, -1.1063814 * x**3 - 1.34811020 * x**2 + 2.18555832 * x - 0.20219683
    return x, -0.9549476 * x**3 - 1.37418593 * x**2 + 2.09137015 * x - 0.16748867


def _locus_uv(cct: float) -> np.ndarray:
    x, y = locus_xy(cct)
    return _xyz_to_uv(np.array([x / y, 1.0, (1 - x - y) / y]))


def illuminant_xyz(cct: float, tint: float = 0.0) -> np.ndarray:
    """XYZ (Y = 1) of a light `cct` kelvin on the daylight/Planckian locus, moved `tint` (Duv) along
    the locus's normal in CIE 1960 uv: positive is greener (above the locus), negative magenta."""
    uv = _locus_uv(cct)
    if tint == 0.0:
        return _uv_to_xyz(uv)
    tangent = _locus_uv(cct * 0.99) - _locus_uv(cct * 1.01)
    normal = np.array([-tangent[1], tangent[0]]) / np.linalg.norm(tangent)
    if normal[1] < 0:  # point up in v, towards green
        normal = -normal
    return _uv_to_xyz(uv + tint * normal)


def bradford(source_white: np.ndarray, target_white: np.ndarray) -> np.ndarray:
    """3x3 on XYZ that takes colours seen under `source_white` to the same surfaces under `target_white`."""
    gains = (BRADFORD @ target_white) / (BRADFORD @ source_white)
    return np.linalg.inv(BRADFORD) @ np.diag(gains) @ BRADFORD


# --- one shot ------------------------------------------------------------------------------------


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def sample_capture(
    profile: CameraProfile,
    rng: np.random.Generator,
    settings: SceneRawSettings = SceneRawSettings(),
    *,
    peak_linear: np.ndarray | None = None,
) -> Capture:
    """Sample a Bayer phase, an illuminant and the noise levels for `profile`; `peak_linear`
    (pixels of linear sRGB, any shape ending in 3) sets the headroom scale (none: white = 1)."""
    phase = settings.phases[int(rng.integers(len(settings.phases)))]
    profile = dataclasses.replace(profile, cfa_pattern=phase)
    indoor = bool(rng.random() < settings.indoor_share)
    exposure_value = _uniform(rng, settings.indoor_ev if indoor else settings.outdoor_ev)
    if settings.adapt:
        lo, hi = sorted(1e6 / t for t in (settings.indoor_cct if indoor else settings.outdoor_cct))
        mired = _uniform(rng, (lo, hi))  # uniform in mireds: equal steps of perceived shift
        cct = 1e6 / mired
        as_shot_cct = 1e6 / (mired + _uniform(rng, settings.awb_leaves) * (1e6 / AWB_TARGET_CCT - mired))
        tint = _uniform(rng, settings.tint_range)
        white, as_shot_white = illuminant_xyz(cct, tint), illuminant_xyz(as_shot_cct, tint)
    else:
        cct, tint, white = color.ILLUMINANT_CCT[color.D65], 0.0, D65_WHITE
        as_shot_cct, as_shot_white = cct, white
    # The matrix LibRaw renders with, so the simulator's render and `unprocess` agree with the RAW.
    xyz_to_camera = profile.rendering_matrix()
    unscaled = xyz_to_camera @ bradford(D65_WHITE, white) @ color.XYZ_FROM_SRGB
    neutral, as_shot = xyz_to_camera @ white, xyz_to_camera @ as_shot_white
    if not np.all(np.isfinite(neutral)) or np.any(neutral <= 0) or np.any(as_shot <= 0):
        raise ValueError(f"{profile.name}: the illuminant's white has no positive camera response")
    peak = 1.0 if peak_linear is None else brightest_response(peak_linear, unscaled)
    scale = _uniform(rng, settings.headroom) / max(peak, 1e-6)
    shot = float(np.exp(_uniform(rng, tuple(np.log(settings.shot_range)))))
    log_read = settings.read_slope * np.log(shot) + settings.read_offset
    read = float(np.exp(log_read + rng.normal(0.0, settings.read_sigma)))
    if not settings.noise:
        shot = read = 0.0
    return Capture(
        profile=profile,
        cct=float(cct),
        tint=float(tint),
        white_xyz=white,
        camera_from_srgb=unscaled * scale,
        neutral=as_shot / as_shot[1],
        light_neutral=neutral / neutral[1],
        as_shot_cct=float(as_shot_cct),
        exposure_value=float(exposure_value),
        indoor=indoor,
        scale=float(scale),
        shot=shot,
        read=read,
    )


def brightest_response(linear: np.ndarray, matrix: np.ndarray) -> float:
    """max over pixels and channels of `matrix @ pixel`, one channel plane at a time (numpy's
    (N, 3) @ (3, 3) takes no fast path: five times slower on a photo)."""
    planes = [np.ascontiguousarray(linear[..., c], dtype=np.float32) for c in range(3)]
    return max(float(np.max(row[0] * planes[0] + row[1] * planes[1] + row[2] * planes[2])) for row in matrix)


def synthesize_raw(
    srgb: np.ndarray,
    profile: CameraProfile,
    rng: np.random.Generator,
    settings: SceneRawSettings = SceneRawSettings(),
    *,
    window: tuple[slice, slice] | None = None,
) -> SyntheticRaw:
    """One synthetic RAW of the sRGB image `srgb` ((H, W, 3): uint8, or float in 0..1) filmed with
    `profile`'s camera; `window` (rows, columns) picks the part that is mosaicked while the whole
    image sets the exposure, so a patch is exposed as part of its scene."""
    linear = srgb_to_linear(srgb)
    capture = sample_capture(profile, rng, settings, peak_linear=linear)
    part = linear if window is None else linear[window]
    if part.shape[0] % 2 or part.shape[1] % 2:
        raise ValueError(f"the mosaicked part must have even sides, got {part.shape[:2]}")
    clean = capture.camera_rgb(part)
    signal = mosaic_rgb(clean, capture.profile.cfa_pattern)
    noisy = add_sensor_noise(signal, capture.shot, capture.read, rng)
    counts = to_counts(noisy, capture.profile)
    return SyntheticRaw(
        mosaic=normalise_counts(counts, capture.profile),
        counts=counts,
        clean=clean,
        capture=capture,
        params=capture.params(),
    )


_SRGB_TABLE = color.srgb_to_linear(np.arange(256) / 255.0)


def srgb_to_linear(srgb: np.ndarray) -> np.ndarray:
    """sRGB-encoded pixels -> linear light, float32 (a table for 8-bit input: the usual case)."""
    srgb = np.asarray(srgb)
    if srgb.dtype == np.uint8:
        return _SRGB_TABLE[srgb]
    return color.srgb_to_linear(np.clip(srgb, 0.0, 1.0))


def add_sensor_noise(signal: np.ndarray, shot: float, read: float, rng: np.random.Generator) -> np.ndarray:
    """Brooks et al.'s heteroscedastic Gaussian: N(signal, shot * signal + read), float32."""
    if shot == 0.0 and read == 0.0:
        return signal.astype(np.float32)
    std = np.sqrt(np.maximum(signal, 0.0) * shot + read).astype(np.float32)
    return (signal + std * rng.standard_normal(signal.shape, dtype=np.float32)).astype(np.float32)


def to_counts(normalised: np.ndarray, profile: CameraProfile) -> np.ndarray:
    """Normalised values -> integer counts; noise may swing below the black level down to 0, as in a
    real RAW, and nothing goes past the white level."""
    h, w = normalised.shape
    black = per_site(profile.black_level, h, w)
    counts = np.rint(black + normalised * (profile.white_level - black))
    return np.clip(counts, 0, profile.white_level).astype(np.uint16)


def normalise_counts(counts: np.ndarray, profile: CameraProfile) -> np.ndarray:
    """Counts -> (counts - black) / (white - black) clipped to 0..1: what the RAW reader gives."""
    h, w = counts.shape
    black = per_site(profile.black_level, h, w)
    out = (counts.astype(np.float32) - black) / (profile.white_level - black)
    return np.clip(out, 0.0, 1.0)

"""The randomised forward ISP that renders training inputs from linear camera RGB (design.md, "Data").

A training pair is a RAW patch (the target) and a JPEG made from the same pixels by one of two
*members*, chosen at random:

- "libraw": LibRaw's own camera-WB, BT.709-curve 8-bit render of the patch (the renderer of the
  "rawback" evaluation protocol), passed through unchanged;
- "parametric": our own camera-like pipeline with every stage randomised:

      camera RGB --white balance, clip--> --camera matrix, clip--> linear sRGB --exposure-->
      --[highlight roll-off]--> --transfer curve (sRGB / BT.709 / gamma 2.2)--> display values
      --[tone curve]--> --[saturation]--> --[denoise]--> --[local contrast]--> --[sharpen]--> 8 bits

  The white balance and matrix steps are exactly the ones `rawback.isp.unprocess.unprocess`
  inverts (LibRaw's conventions), so with no optional stage the analytic inverse given the
  reported neutral and transfer curve recovers `exposure * linear_rgb` wherever nothing clipped.

Both members end in the same JPEG stage (Pillow, quality 60-100, 4:2:0 / 4:2:2 / 4:4:4, sometimes
lossless). Everything is vectorised numpy/scipy/Pillow; a 256x256 patch takes a few milliseconds.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from rawback.camera import CameraProfile
from rawback.choices import Transfer
from rawback.isp import color
from rawback.isp.unprocess import neutral_for_illuminant, white_balance_scale

MEMBERS = ("libraw", "parametric")
WB_MODES = ("as-shot", "jitter", "cct")
TONE_CURVES = ("none", "smoothstep", "sigmoid", "power", "rolloff")
TRANSFERS = tuple(t.value for t in Transfer)
SUBSAMPLING_NAMES = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}  # Pillow's `subsampling` codes

Weights = tuple[tuple[str, float], ...]


@dataclass(frozen=True)
class SimulatorSettings:
    """Every knob of the simulator; probabilities are per image, ranges are sampled uniformly."""

    libraw_weight: float = 0.35  # chance of the "libraw" member when a LibRaw render is given
    # white balance: as-shot, log-normal jitter of R and B around it, or a random colour temperature
    wb_modes: Weights = (("as-shot", 0.5), ("jitter", 0.3), ("cct", 0.2))
    wb_jitter_sigma: float = 0.12  # standard deviation of log(R) and log(B) gains in "jitter"
    cct_range: tuple[float, float] = (2500.0, 10000.0)  # kelvin; sampled uniformly in mireds
    exposure_prob: float = 0.5  # chance of a digital exposure gain (else 1.0)
    exposure_stops: tuple[float, float] = (-0.7, 0.7)  # gain = 2 ** U(range)
    tone_curves: Weights = (  # tone-curve families and their weights
        ("none", 0.2),
        ("smoothstep", 0.2),
        ("sigmoid", 0.25),
        ("power", 0.15),
        ("rolloff", 0.2),
    )
    sigmoid_strength: tuple[float, float] = (2.0, 7.0)  # logistic slope of the contrast S-curve
    sigmoid_pivot: tuple[float, float] = (0.35, 0.6)  # display value the S-curve pivots around
    power_stops: tuple[float, float] = (-0.4, 0.4)  # display power = 2 ** U(range)
    rolloff_lift: tuple[float, float] = (0.2, 1.0)  # stops of mid-tone lift under the shoulder
    rolloff_knee: tuple[float, float] = (0.5, 0.85)  # display-linear value where the shoulder starts
    transfers: Weights = (("srgb", 0.6), ("bt709", 0.2), ("gamma2.2", 0.2))
    saturation_prob: float = 0.7  # chance of a saturation change
    saturation_range: tuple[float, float] = (0.8, 1.4)  # chroma scale around display luma
    denoise_prob: float = 0.2  # chance of a light Gaussian blur (camera noise reduction)
    denoise_sigma: tuple[float, float] = (0.3, 0.8)  # pixels
    local_contrast_prob: float = 0.3  # chance of a large-radius unsharp mask of luma
    local_contrast_sigma: tuple[float, float] = (8.0, 24.0)  # pixels
    local_contrast_amount: tuple[float, float] = (0.05, 0.35)
    sharpen_prob: float = 0.6  # chance of a small-radius unsharp mask of luma
    sharpen_sigma: tuple[float, float] = (0.5, 1.5)  # pixels
    sharpen_amount: tuple[float, float] = (0.2, 1.0)
    jpeg_prob: float = 0.95  # chance of JPEG compression (else the 8-bit image is lossless)
    jpeg_quality: tuple[int, int] = (60, 100)  # inclusive
    jpeg_subsampling: tuple[tuple[int, float], ...] = ((2, 0.5), (1, 0.15), (0, 0.35))  # Pillow codes

    def __post_init__(self) -> None:
        for weights, known in (
            (self.wb_modes, WB_MODES),
            (self.tone_curves, TONE_CURVES),
            (self.transfers, TRANSFERS),
            (self.jpeg_subsampling, tuple(SUBSAMPLING_NAMES)),
        ):
            names = [name for name, _ in weights]
            if not names or any(name not in known for name in names):
                raise ValueError(f"weights {weights!r}: choose among {known}")
            if any(w < 0 for _, w in weights) or sum(w for _, w in weights) <= 0:
                raise ValueError(f"weights {weights!r} must be non-negative with a positive sum")


@dataclass(frozen=True)
class Simulated:
    rgb8: np.ndarray  # (H, W, 3) uint8: the decoded photo the model sees
    neutral: np.ndarray  # white balance applied, as a camera neutral (green = 1)
    exposure: float  # linear gain applied before the curves (1.0 = none)
    transfer: str  # UnprocessSettings transfer curve closest to the one used
    params: dict[str, Any] = field(default_factory=dict)  # everything sampled, for logs and tests


def simulate(
    linear_rgb: np.ndarray,
    profile: CameraProfile,
    as_shot_neutral: np.ndarray,
    rng: np.random.Generator,
    *,
    libraw_rgb8: np.ndarray | None = None,
    libraw_exposure: float = 1.0,
    settings: SimulatorSettings = SimulatorSettings(),
) -> Simulated:
    """Render a training input from a patch of normalised, unbalanced, demosaicked camera RGB.

    `libraw_rgb8` is LibRaw's render of the same pixels, made `libraw_exposure` times brighter (the
    synthetic scenes render theirs with extra exposure; real RAWs' renders have none)."""
    linear_rgb = np.asarray(linear_rgb, dtype=np.float32)
    if linear_rgb.ndim != 3 or linear_rgb.shape[-1] != 3:
        raise ValueError(f"linear_rgb must be (H, W, 3), got {linear_rgb.shape}")
    as_shot = _as_neutral(as_shot_neutral)
    if libraw_rgb8 is not None and (libraw_rgb8.shape != linear_rgb.shape or libraw_rgb8.dtype != np.uint8):
        raise ValueError(f"libraw_rgb8 must be uint8 of shape {linear_rgb.shape}")
    if libraw_rgb8 is not None and rng.random() < settings.libraw_weight:
        exposure = float(libraw_exposure)
        params: dict[str, Any] = {"member": "libraw", "neutral": as_shot.tolist(), "exposure": exposure}
        rgb8, neutral, transfer = libraw_rgb8, as_shot, "bt709"
    else:
        params = {"member": "parametric"}
        neutral = _sample_neutral(profile, as_shot, rng, settings, params)
        exposure = _sample_exposure(rng, settings, params)
        transfer = _choose(rng, settings.transfers)
        params["transfer"] = transfer
        rgb8 = _parametric(linear_rgb, profile, neutral, exposure, transfer, rng, settings, params)
    rgb8 = _jpeg_stage(rgb8, rng, settings, params)
    return Simulated(rgb8=rgb8, neutral=neutral, exposure=exposure, transfer=transfer, params=params)


# --- sampling helpers ----------------------------------------------------------------------------


def _as_neutral(neutral: np.ndarray) -> np.ndarray:
    n = np.asarray(neutral, dtype=np.float64).reshape(-1)
    if n.shape != (3,) or not np.all(np.isfinite(n)) or np.any(n <= 0):
        raise ValueError(f"a neutral needs three positive values, got {neutral!r}")
    return n / n[1]


def _choose(rng: np.random.Generator, weights: tuple[tuple[Any, float], ...]) -> Any:
    names = [name for name, _ in weights]
    p = np.array([w for _, w in weights], dtype=np.float64)
    return names[int(rng.choice(len(names), p=p / p.sum()))]


def _uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _sample_neutral(
    profile: CameraProfile,
    as_shot: np.ndarray,
    rng: np.random.Generator,
    settings: SimulatorSettings,
    params: dict[str, Any],
) -> np.ndarray:
    """The white balance the 'camera' applies: right (as-shot), a little off, or a preset."""
    mode = _choose(rng, settings.wb_modes)
    params["wb_mode"] = mode
    if mode == "jitter":
        gains = np.exp(rng.normal(0.0, settings.wb_jitter_sigma, size=2))
        neutral = as_shot * np.array([gains[0], 1.0, gains[1]])
    elif mode == "cct":
        # Uniform in mireds: equal steps of perceived colour shift, as WB presets are spaced.
        lo, hi = (1e6 / t for t in settings.cct_range)
        cct = 1e6 / _uniform(rng, (min(lo, hi), max(lo, hi)))
        params["cct"] = cct
        neutral = neutral_for_illuminant(profile, cct)
    else:
        neutral = as_shot
    neutral = neutral / neutral[1]
    params["neutral"] = neutral.tolist()
    return neutral


def _sample_exposure(rng: np.random.Generator, settings: SimulatorSettings, params: dict[str, Any]) -> float:
    stops = _uniform(rng, settings.exposure_stops) if rng.random() < settings.exposure_prob else 0.0
    params["exposure_stops"] = stops
    params["exposure"] = float(2.0**stops)
    return float(2.0**stops)


# --- the parametric pipeline ---------------------------------------------------------------------


def _parametric(
    linear_rgb: np.ndarray,
    profile: CameraProfile,
    neutral: np.ndarray,
    exposure: float,
    transfer: str,
    rng: np.random.Generator,
    settings: SimulatorSettings,
    params: dict[str, Any],
) -> np.ndarray:
    lin = camera_to_linear_srgb(linear_rgb, profile, neutral)
    if exposure != 1.0:
        lin *= np.float32(exposure)
    tone = _choose(rng, settings.tone_curves)
    params["tone_curve"] = tone
    if tone == "rolloff":
        lin = _rolloff(lin, max(exposure, 1.0), rng, settings, params)
    enc = color.from_linear(lin, transfer)  # clips to [0, 1] first
    if tone not in ("none", "rolloff"):
        enc = _display_tone_curve(enc, tone, rng, settings, params)
    params["saturation"] = (
        _uniform(rng, settings.saturation_range) if rng.random() < settings.saturation_prob else 1.0
    )
    if params["saturation"] != 1.0:
        luma = enc @ color.LUMA_709
        enc = luma[..., None] + np.float32(params["saturation"]) * (enc - luma[..., None])
    enc = _detail_stages(enc, rng, settings, params)
    return np.rint(np.clip(enc, 0.0, 1.0) * 255.0).astype(np.uint8)


def camera_to_linear_srgb(
    linear_rgb: np.ndarray, profile: CameraProfile, neutral: np.ndarray, *, clipped: bool = True
) -> np.ndarray:
    """White balance and colour matrix as LibRaw applies them, the steps `unprocess` inverts.

    LibRaw multiplies by the white-balance gains (smallest = 1) and clips at the white level, then
    applies `rgb_cam` and clips to the output range: both clips are part of what the inverse sees.
    With `clipped` False neither clip is made: the scene-linear image, the exact inverse of
    rawback.isp.unprocess.raw_from_srgb_matrix (what Invertible ISP's flow learns to give back).
    """
    scale = white_balance_scale(neutral).astype(np.float32)
    balanced = linear_rgb * scale
    matrix = profile.srgb_from_camera().astype(np.float32)
    if not clipped:
        return balanced @ matrix.T
    return np.clip(np.clip(balanced, 0.0, 1.0) @ matrix.T, 0.0, 1.0)


def _rolloff(
    lin: np.ndarray,
    peak: float,
    rng: np.random.Generator,
    settings: SimulatorSettings,
    params: dict[str, Any],
) -> np.ndarray:
    lift = float(2.0 ** _uniform(rng, settings.rolloff_lift))
    knee = _uniform(rng, settings.rolloff_knee)
    params["rolloff"] = {"lift": lift, "knee": knee}
    return rolloff_curve(lin, peak, lift, knee)


def rolloff_curve(lin: np.ndarray, peak: float, lift: float, knee: float) -> np.ndarray:
    """A camera-style highlight shoulder in linear light: lift the mid-tones by `lift`, keep that
    line up to the knee, then compress so the brightest possible input `peak` lands on 1.

    Above the knee y = k + (1 - k)(1 - (1 - t)^p) with t running 0..1 up to `peak`; p is chosen so
    the slope is continuous (p >= 1 because lift * peak >= 1, so the shoulder is concave).
    """
    x_knee = knee / lift
    p = lift * (peak - x_knee) / (1.0 - knee)
    t = np.clip((lin - x_knee) / (peak - x_knee), 0.0, 1.0)
    shoulder = knee + (1.0 - knee) * (1.0 - (1.0 - t) ** p)
    return np.where(lin < x_knee, lin * lift, shoulder).astype(np.float32)


def _display_tone_curve(
    enc: np.ndarray, tone: str, rng: np.random.Generator, settings: SimulatorSettings, params: dict[str, Any]
) -> np.ndarray:
    """Sample the parameters of a global curve on display values, then apply it."""
    if tone == "sigmoid":
        k, pivot = _uniform(rng, settings.sigmoid_strength), _uniform(rng, settings.sigmoid_pivot)
        params["sigmoid"] = {"strength": k, "pivot": pivot}
    elif tone == "power":
        params["power"] = float(2.0 ** _uniform(rng, settings.power_stops))
    return display_curve(enc, tone, params)


def display_curve(enc: np.ndarray, tone: str, params: dict[str, Any]) -> np.ndarray:
    """Global curves on display values, each fixing 0 and 1, with the parameters in `params`."""
    if tone == "smoothstep":  # Brooks et al.'s curve, which `unprocess` can undo exactly
        return enc * enc * (3.0 - 2.0 * enc)
    if tone == "sigmoid":  # a logistic contrast curve, rescaled to pass through 0 and 1
        k, pivot = params["sigmoid"]["strength"], params["sigmoid"]["pivot"]
        lo, hi = _logistic(k * (0.0 - pivot)), _logistic(k * (1.0 - pivot))
        return ((_logistic(k * (enc - pivot)) - lo) / (hi - lo)).astype(np.float32)
    if tone == "power":  # brighter or darker mid-tones
        return (enc ** params["power"]).astype(np.float32)
    raise ValueError(f"{tone!r} is not a display-value tone curve")


def tone_response(params: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """The global tone response of a simulated finish: linear sRGB after the camera matrix (the
    value `unprocess` reaches with no curve) -> the linear value `unprocess` reads back from the
    photo with the finish's transfer curve. Identity for the LibRaw member (its BT.709 curve is the
    transfer the inverse assumes); exposure, roll-off and display tone curve otherwise. Saturation
    and the detail stages are not global per-channel curves and are left out."""
    x = np.asarray(x, dtype=np.float32)
    if params["member"] == "libraw":
        return np.clip(x, 0.0, 1.0)
    exposure, tone, transfer = params["exposure"], params["tone_curve"], params["transfer"]
    lin = x * np.float32(exposure)
    if tone == "rolloff":
        lin = rolloff_curve(lin, max(exposure, 1.0), params["rolloff"]["lift"], params["rolloff"]["knee"])
    enc = color.from_linear(lin, transfer)
    if tone not in ("none", "rolloff"):
        enc = display_curve(enc, tone, params)
    return color.to_linear(enc, transfer)


def _logistic(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float32)))


def _detail_stages(
    enc: np.ndarray, rng: np.random.Generator, settings: SimulatorSettings, params: dict[str, Any]
) -> np.ndarray:
    """Noise reduction, local contrast and sharpening, in a camera's order."""
    params["denoise_sigma"] = None
    if rng.random() < settings.denoise_prob:
        sigma = _uniform(rng, settings.denoise_sigma)
        params["denoise_sigma"] = sigma
        enc = ndimage.gaussian_filter(enc, sigma=(sigma, sigma, 0.0), mode="reflect")
    params["local_contrast"] = None
    if rng.random() < settings.local_contrast_prob:
        sigma, amount = (
            _uniform(rng, settings.local_contrast_sigma),
            _uniform(rng, settings.local_contrast_amount),
        )
        params["local_contrast"] = {"sigma": sigma, "amount": amount}
        enc = _unsharp_luma(enc, sigma, amount, coarse=True)
    params["sharpen"] = None
    if rng.random() < settings.sharpen_prob:
        sigma, amount = _uniform(rng, settings.sharpen_sigma), _uniform(rng, settings.sharpen_amount)
        params["sharpen"] = {"sigma": sigma, "amount": amount}
        enc = _unsharp_luma(enc, sigma, amount, coarse=False)
    return enc


def _unsharp_luma(enc: np.ndarray, sigma: float, amount: float, *, coarse: bool) -> np.ndarray:
    """Add `amount` times the high-pass of luma to every channel (cameras sharpen Y, not colour).

    A large blur (local contrast) is computed at quarter resolution and upsampled: the low-pass is
    smooth anyway, and a 20-pixel Gaussian at full size would dominate the simulator's run time.
    """
    luma = enc @ color.LUMA_709
    if coarse and min(luma.shape) >= 16:
        h, w = luma.shape
        small = luma[: h // 4 * 4, : w // 4 * 4].reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3))
        small = ndimage.gaussian_filter(small, sigma / 4.0, mode="reflect")
        zoom = (h / small.shape[0], w / small.shape[1])
        blurred = ndimage.zoom(small, zoom, order=1, grid_mode=True, mode="nearest")
    else:
        blurred = ndimage.gaussian_filter(luma, sigma, mode="reflect")
    return enc + np.float32(amount) * (luma - blurred)[..., None]


# --- JPEG ----------------------------------------------------------------------------------------


def _jpeg_stage(
    rgb8: np.ndarray, rng: np.random.Generator, settings: SimulatorSettings, params: dict[str, Any]
) -> np.ndarray:
    """Compress and decode with Pillow, as a camera or an upload would; sometimes lossless."""
    if rng.random() >= settings.jpeg_prob:
        params["jpeg"] = None
        return np.ascontiguousarray(rgb8)
    quality = int(rng.integers(settings.jpeg_quality[0], settings.jpeg_quality[1] + 1))
    subsampling = int(_choose(rng, settings.jpeg_subsampling))
    params["jpeg"] = {"quality": quality, "subsampling": SUBSAMPLING_NAMES[subsampling]}
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb8)).save(buffer, "JPEG", quality=quality, subsampling=subsampling)
    buffer.seek(0)
    with Image.open(buffer) as image:
        return np.asarray(image.convert("RGB"))

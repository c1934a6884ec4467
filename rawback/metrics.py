"""Image-quality metrics for RAW reconstruction, as `protocols.md` defines them.

All mosaic metrics take packed RGGB arrays (h, w, 4) normalised to [0, 1] (peak 1).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# PSNR of a perfect match is infinite; report it as this value so tables and JSON stay finite.
PSNR_CAP_DB = 100.0


def psnr(prediction: np.ndarray, target: np.ndarray, peak: float = 1.0) -> float:
    """10 log10(peak^2 / MSE) over every element, in dB."""
    diff = np.asarray(prediction, dtype=np.float64) - np.asarray(target, dtype=np.float64)
    mse = float(np.mean(diff * diff))
    if mse <= peak * peak * 10 ** (-PSNR_CAP_DB / 10):
        return PSNR_CAP_DB
    return float(10.0 * np.log10(peak * peak / mse))


def three_channel(packed: np.ndarray) -> np.ndarray:
    """(R, (G1 + G2) / 2, B) at half resolution: RAW-Diffusion's comparison space."""
    p = np.asarray(packed, dtype=np.float64)
    return np.stack([p[..., 0], (p[..., 1] + p[..., 2]) / 2, p[..., 3]], axis=-1)


def ssim(prediction: np.ndarray, target: np.ndarray) -> float:
    """Mean SSIM of Wang et al. (2004): Gaussian window sigma 1.5 (11 taps), data range 1,
    population covariances; the torchmetrics/RAW-Diffusion settings, averaged over channels."""
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(
            np.asarray(prediction, dtype=np.float64),
            np.asarray(target, dtype=np.float64),
            data_range=1.0,
            channel_axis=-1,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
        )
    )


def oracle_gains(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    """One least-squares gain per packed channel mapping prediction onto target."""
    p = prediction.reshape(-1, prediction.shape[-1]).astype(np.float64)
    t = target.reshape(-1, target.shape[-1]).astype(np.float64)
    denom = np.maximum((p * p).sum(axis=0), 1e-12)
    return (p * t).sum(axis=0) / denom


def wb_oracle_psnr(prediction: np.ndarray, target: np.ndarray) -> float:
    """PSNR after the per-channel gains that best fit the target: structure error only, with the
    illuminant (a per-channel scale in camera space) factored out."""
    gains = oracle_gains(prediction, target)
    return psnr(np.clip(prediction * gains, 0.0, 1.0), target)


def overexposed_mask(input_rgb8: np.ndarray, threshold: int = 250, dilation: int = 2) -> np.ndarray:
    """Packed-resolution mask of 2x2 blocks where the input photo has any channel >= threshold,
    dilated by `dilation` packed pixels. `input_rgb8` must already be cropped to the RGGB phase."""
    h, w = input_rgb8.shape[0] // 2, input_rgb8.shape[1] // 2
    hot = (input_rgb8[: 2 * h, : 2 * w] >= threshold).any(axis=-1)
    blocks = hot.reshape(h, 2, w, 2).any(axis=(1, 3))
    if dilation > 0 and blocks.any():
        structure = np.ones((2 * dilation + 1, 2 * dilation + 1), dtype=bool)
        blocks = ndimage.binary_dilation(blocks, structure=structure)
    return blocks


def masked_psnr(prediction: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float | None:
    """PSNR over the packed pixels in `mask` (all four channels); None when the mask is empty."""
    if not mask.any():
        return None
    return psnr(prediction[mask], target[mask])


def grid_patches(height: int, width: int, grid: int = 3, multiple: int = 32) -> list[tuple[slice, slice]]:
    """A grid x grid tiling with patch sides rounded down to a multiple of `multiple`, as the
    RAW-Diffusion and Invertible-ISP test scripts cut their test images."""
    ph = max(multiple, height // grid // multiple * multiple)
    pw = max(multiple, width // grid // multiple * multiple)
    ph, pw = min(ph, height // grid), min(pw, width // grid)
    return [
        (slice(i * ph, (i + 1) * ph), slice(j * pw, (j + 1) * pw)) for i in range(grid) for j in range(grid)
    ]


def bilinear_demosaic(mosaic: np.ndarray, pattern: str) -> np.ndarray:
    """Bilinear demosaicking (H, W) -> (H, W, 3) with the classic 3x3 kernels."""
    from rawback.isp.bayer import channel_index

    h, w = mosaic.shape
    sites = channel_index(pattern)
    which = sites[np.arange(h)[:, None] % 2, np.arange(w)[None, :] % 2]
    k_rb = np.array([[0.25, 0.5, 0.25], [0.5, 1.0, 0.5], [0.25, 0.5, 0.25]])
    k_g = np.array([[0.0, 0.25, 0.0], [0.25, 1.0, 0.25], [0.0, 0.25, 0.0]])
    out = np.empty((h, w, 3), dtype=np.float64)
    m = mosaic.astype(np.float64)
    for c, kernel in ((0, k_rb), (1, k_g), (2, k_rb)):
        out[..., c] = ndimage.convolve(np.where(which == c, m, 0.0), kernel, mode="mirror")
    return out


def illuminant_error_degrees(predicted_neutral: np.ndarray, true_neutral: np.ndarray) -> float:
    """Angle between predicted and true scene white in camera RGB (colour-constancy convention)."""
    from rawback.isp.color import neutral_angle_degrees

    return neutral_angle_degrees(predicted_neutral, true_neutral)


def exposure_error_stops(prediction: np.ndarray, target: np.ndarray, clip: float = 0.98) -> float:
    """Global brightness error of a prediction, in stops: log2 of the least-squares gain g that maps
    the target onto the prediction, g = sum(p t) / sum(t t); positive = prediction too bright.

    Only packed pixels where no channel of either image reaches `clip` count: a clipped value
    says nothing about the gain. A 2-D input counts every element as a pixel. NaN when no pixel
    qualifies or either image is black there.
    """
    p = np.asarray(prediction, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if p.ndim == 2:
        p, t = p[..., None], t[..., None]
    usable = ((p < clip) & (t < clip)).all(axis=-1)
    p, t = p[usable], t[usable]
    denom = float((t * t).sum())
    gain = float((p * t).sum()) / denom if denom > 0 else float("nan")
    return float(np.log2(gain)) if gain > 0 else float("nan")

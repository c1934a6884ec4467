"""What the model is told about a photo besides its pixels, as numbers: the camera's colour, the
scene's exposure value, a thumbnail of the whole photo. This is the bridge from camera profiles,
EXIF and the ISP (numpy) to the model's input tensors, so that rawback.model knows neither files
nor camera profiles."""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from rawback.camera import CameraProfile
from rawback.isp.unprocess import UnprocessSettings, unprocess_rgb
from rawback.model.config import camera_key
from rawback.model.denoiser import encode_linear


def camera_features(profile: CameraProfile) -> np.ndarray:
    """12 numbers describing a camera's colour: its XYZ->camera matrix nearest D65, normalised so
    its largest row sum is 1, and the log of its daylight neutral."""
    matrix = np.asarray(profile.rendering_matrix(), dtype=np.float64)
    matrix = matrix / max(np.abs(matrix.sum(axis=1)).max(), 1e-6)
    neutral = np.log(np.clip(profile.daylight_neutral(), 1e-3, None))
    return np.concatenate([matrix.reshape(-1), neutral]).astype(np.float32)


def exif_features(exposure_value: float | None) -> np.ndarray:
    """The scene exposure value (EV at ISO 100; daylight scenes ~12-15, indoor ~5-8) when known."""
    if exposure_value is None or not np.isfinite(exposure_value):
        return np.zeros(2, dtype=np.float32)
    return np.array([exposure_value / 10.0, 1.0], dtype=np.float32)


def area_resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(H, W, C) -> (height, width, C) by area averaging (float32)."""
    t = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    return F.interpolate(t, size=(height, width), mode="area")[0].permute(1, 2, 0).numpy()


def thumbnail_input(rgb: np.ndarray, profile: CameraProfile, transfer: str, size: int) -> torch.Tensor:
    """(6, size, size): the photo and its analytic camera-RGB estimate under daylight, both
    reduced by area averaging (aspect ratio ignored: only global statistics matter)."""
    small = area_resize(rgb, size, size)
    linear = unprocess_rgb(small, profile, profile.daylight_neutral(), UnprocessSettings(transfer=transfer))
    photo = torch.from_numpy(small).permute(2, 0, 1) * 2.0 - 1.0
    return torch.cat([photo, encode_linear(torch.from_numpy(linear).permute(2, 0, 1))], dim=0)


def profile_camera(profile: CameraProfile) -> str:
    """The camera a profile describes, as `known_cameras` names it."""
    return camera_key(f"{profile.make} {profile.model}")

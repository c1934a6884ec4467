"""Training pairs from natural photographs: the synthetic data engine (docs/training.md, "Synthetic
scenes").

A scene item films a photograph with a camera of the library (rawback.isp.scene_raw: illuminant,
matrix, headroom, Bayer phase, sensor noise, levels) and renders the condition from the synthetic
RAW with the same randomised finishes as the real pairs (rawback.isp.simulate), but always with
extra exposure, so the JPEG clips where the truth does not. Items come out in the real pairs'
format (`Draw`), so `TrainingPairs` mixes them in and the training loop does not know the
difference. Photos are decoded on the fly at a reduced size (JPEG's DCT scaling makes that a few
milliseconds); nothing is cached on disk.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from rawback.camera import CameraProfile
from rawback.errors import InputError, ProfileError, UsageError
from rawback.isp.bayer import mosaic_rgb, rggb_crop
from rawback.isp.scene_raw import SceneRawSettings, SyntheticRaw, srgb_to_linear, synthesize_raw, to_counts
from rawback.isp.simulate import SimulatorSettings, simulate
from rawback.isp.unprocess import neutral_for_illuminant
from rawback.train.data import SYMMETRIES, THUMB_SOURCE, Draw, PairSettings, bayer_augment, head_thumbnail

SCENE_SUFFIXES = (".jpg", ".jpeg", ".png")
SCENE_STREAM = 2  # scene items draw from the generator (seed, index, SCENE_STREAM)


@dataclass(frozen=True)
class SceneSettings:
    raw: SceneRawSettings = field(default_factory=SceneRawSettings)
    # The condition's exposure over the RAW's: 2 ** U(range), in place of the simulator's own draw.
    condition_stops: tuple[float, float] = (0.0, 1.5)
    # Short side the photo is reduced to before a patch is cut, in mosaic pixels: how much of the
    # scene a patch sees (the photos are <= 1920 px; reducing also hides their JPEG artefacts).
    scene_side: tuple[int, int] = (256, 768)
    # Chance that the shot's EXIF gives no exposure (photos from the web often carry none), so the
    # head learns to do without it.
    exposure_unknown: float = 0.25
    # Chance that the condition is LibRaw's render of the synthetic RAW (the default protocol's
    # input) instead of a parametric finish. Off by default: measured on 9 unseen cameras it cost
    # the residual 0.7 dB WB-oracle PSNR (docs/experiments.md, "LibRaw renders of synthetic RAWs").
    libraw_share: float = 0.0


@dataclass(frozen=True)
class SceneShot:
    """A scene item's source, in the shape `TrainingPairs` reads (rawback.train.data.PairCamera)."""

    name: str
    profile: CameraProfile  # RGGB, as the item's truth
    neutral: np.ndarray
    exposure_value: float | None = None  # the synthetic shot's (its light's), not the photo's EXIF
    params: dict[str, Any] = field(default_factory=dict)


def find_scenes(folder: Path) -> list[Path]:
    """The photographs under `folder` (JPEG and PNG, any depth), sorted; a usage error if none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"--scenes {folder}: not a folder")
    paths = sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in SCENE_SUFFIXES and not p.name.startswith(".")
    )
    if not paths:
        raise UsageError(f"--scenes {folder}: no JPEG or PNG photographs in it")
    return paths


def check_scenes(paths: list[Path], min_side: int) -> tuple[list[Path], list[str]]:
    """The photos whose header reads and whose short side holds a patch; the others as messages."""
    usable, errors = [], []
    for path in paths:
        try:
            with Image.open(path) as image:
                size = image.size
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            errors.append(str(InputError(path, f"cannot read the scene ({exc})")))
            continue
        if min(size) < min_side:
            errors.append(str(InputError(path, f"{size[0]}x{size[1]} is smaller than a patch ({min_side})")))
        else:
            usable.append(path)
    return usable, errors


@functools.cache
def library_profiles() -> tuple[CameraProfile, ...]:
    """Every library camera a scene can be filmed with: a three-colour matrix whose response to
    white stays positive over the illuminants sampled."""
    from rawback.camera import library_profile
    from rawback.camera_library import library_cameras

    out = []
    for camera in library_cameras():
        try:
            profile = library_profile(camera)
            for cct in (2000.0, 6504.0, 12000.0):
                if np.any(neutral_for_illuminant(profile, cct) <= 0):
                    raise ValueError(cct)
            profile.srgb_from_camera()
        except (ProfileError, ValueError, np.linalg.LinAlgError):
            continue
        out.append(profile)
    return tuple(out)


def load_scene(path: Path, short_side: int) -> np.ndarray:
    """The photo as uint8 sRGB with its short side `short_side` (never enlarged): JPEG decodes
    straight at a reduced scale, then an area filter brings it to size."""
    try:
        with Image.open(path) as image:
            scale = short_side / min(image.size)
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            if scale < 1:
                image.draft("RGB", size)
            rgb = image.convert("RGB")
            if scale < 1:
                rgb = rgb.resize(size, Image.Resampling.BOX)
            return np.asarray(rgb)
    except (OSError, ValueError) as exc:
        raise InputError(path, f"cannot read the scene ({exc})") from exc


def condition_settings(simulator: SimulatorSettings, stops: tuple[float, float]) -> SimulatorSettings:
    """The simulator with its exposure draw replaced by the scene condition's extra exposure."""
    return dataclasses.replace(simulator, exposure_prob=1.0, exposure_stops=tuple(stops))


def box_resize(image: np.ndarray, side: int) -> np.ndarray:
    """(H, W, 3) float -> (side, side, 3) by area averaging, aspect ratio ignored as in the RAW
    cache's thumbnails (Pillow's box filter per channel: several times faster than torch's here)."""
    planes = [
        np.asarray(
            Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32), mode="F").resize(
                (side, side), Image.Resampling.BOX
            )
        )
        for c in range(3)
    ]
    return np.stack(planes, axis=-1)


class ScenePairs:
    """Draws of training items from photographs; item i depends only on (seed, i)."""

    def __init__(
        self, paths: list[Path], settings: PairSettings, *, seed: int, scene: SceneSettings = SceneSettings()
    ) -> None:
        if not paths:
            raise ValueError("no scene photographs")
        self.paths = list(paths)
        self.seed = seed
        self.scene = scene
        # The finish of the patch and of the head's thumbnail: the simulator with the extra exposure.
        self.settings = dataclasses.replace(
            settings, simulator=condition_settings(settings.simulator, scene.condition_stops)
        )

    def draw(self, index: int) -> Draw:
        from rawback.metrics import bilinear_demosaic

        rng = np.random.default_rng([self.seed, index, SCENE_STREAM])
        path = self.paths[int(rng.integers(len(self.paths)))]
        cameras = library_profiles()
        camera = cameras[int(rng.integers(len(cameras)))]
        p = self.settings.patch
        big = p + 4  # 2 for the RGGB crop of any phase, 2 for the Bayer-consistent augmentation
        lo, hi = self.scene.scene_side
        srgb = load_scene(path, int(rng.integers(max(lo, big), max(hi, big) + 1)))
        h, w = srgb.shape[:2]
        if min(h, w) < big:
            raise InputError(path, f"{w}x{h} is smaller than a patch ({big})")
        y, x = int(rng.integers(0, h - big + 1)), int(rng.integers(0, w - big + 1))
        raw = synthesize_raw(srgb, camera, rng, self.scene.raw, window=(slice(y, y + big), slice(x, x + big)))
        pattern = raw.profile.cfa_pattern
        # The whole scene, reduced in linear light, as the RAW cache's thumbnails are.
        thumb_linear = np.minimum(raw.capture.camera_rgb(box_resize(srgb_to_linear(srgb), THUMB_SOURCE)), 1.0)
        # The default protocol's input is LibRaw's render of a RAW: a share of the scene items may
        # show the network exactly that (its AHD demosaic, its clipping), the rest a parametric finish.
        # (no draw at all when off: the item stream stays that of the engine without the member)
        use_libraw = self.scene.libraw_share > 0 and rng.random() < self.scene.libraw_share
        libraw = LibrawView.of(raw, thumb_linear, self.scene.condition_stops, rng) if use_libraw else None
        # The camera's own demosaic of the noisy mosaic is what its JPEG engine starts from.
        linear = bilinear_demosaic(raw.mosaic, pattern).astype(np.float32)
        rows, cols = rggb_crop(big, big, pattern)
        planes = [raw.mosaic, linear] + ([] if libraw is None else [libraw.patch])
        crops = [a[rows, cols][: p + 2, : p + 2] for a in planes]
        symmetry = SYMMETRIES[rng.integers(len(SYMMETRIES))] if self.settings.augment else SYMMETRIES[0]
        truth, linear, *patch8 = bayer_augment(crops, p, symmetry)
        profile = dataclasses.replace(raw.profile, cfa_pattern="RGGB")
        finish_seed = int(rng.integers(2**63))  # the patch and the thumbnail share one finish
        settings = self.settings
        if libraw is not None:  # the LibRaw member, chosen above
            always = dataclasses.replace(settings.simulator, libraw_weight=1.0)
            settings = dataclasses.replace(settings, simulator=always)
        exposure = 1.0 if libraw is None else libraw.exposure
        sim = simulate(
            linear, profile, raw.neutral, np.random.default_rng(finish_seed),
            libraw_rgb8=patch8[0] if patch8 else None, libraw_exposure=exposure, settings=settings.simulator,
        )  # fmt: skip
        view = (thumb_linear, None if libraw is None else libraw.thumb)
        thumb, target = head_thumbnail(
            profile, raw.neutral, view, np.random.default_rng(finish_seed), settings, libraw_exposure=exposure
        )
        known = rng.random() >= self.scene.exposure_unknown
        shot = SceneShot(
            name=path.name,
            profile=profile,
            neutral=raw.neutral,
            exposure_value=raw.capture.exposure_value if known else None,
            params={**raw.params, "scene": path.name},
        )
        return Draw.of(shot, truth, sim, thumb, target, rng)


@dataclass(frozen=True)
class LibrawView:
    """LibRaw's renders of a synthetic shot, as the default protocol renders a real RAW: the patch's
    noisy mosaic and a noise-free mosaic of the whole-scene thumbnail, through an in-memory DNG,
    with the scene condition's extra exposure (LibRaw's `bright`)."""

    patch: np.ndarray  # (big, big, 3) uint8, the geometry of the patch's mosaic
    thumb: np.ndarray  # (THUMB_SOURCE, THUMB_SOURCE, 3) uint8
    exposure: float

    @classmethod
    def of(
        cls, raw: SyntheticRaw, thumb_linear: np.ndarray, stops: tuple[float, float], rng: np.random.Generator
    ) -> LibrawView:
        from rawback.io.dng import dng_bytes
        from rawback.io.raw import render_dng

        exposure = float(2.0 ** rng.uniform(*stops))
        sensor = raw.profile.dng_sensor()
        thumb_counts = to_counts(mosaic_rgb(thumb_linear, raw.profile.cfa_pattern), raw.profile)
        patch, thumb = (
            render_dng(dng_bytes(counts, sensor=sensor, as_shot_neutral=raw.neutral), exposure=exposure)
            for counts in (raw.counts, thumb_counts)
        )
        return cls(patch=patch, thumb=thumb, exposure=exposure)

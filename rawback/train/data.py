"""Training pairs from a folder of RAW files.

Each RAW file is decoded once into a cache folder (memory-mapped .npy arrays, so DataLoader worker
processes share pages instead of copies): the normalised mosaic cropped to the RGGB phase, LibRaw's
linear demosaic of the same pixels (camera RGB, no white balance), LibRaw's own camera-WB render
(the evaluation renderer, one member of the simulator), whole-photo thumbnails of both, larger
overviews to crop the head's thumbnails from, and the metadata (camera profile, the white balance
LibRaw applies, scene EV).

A training item is a random patch: Bayer-consistent flip/transpose, a randomised ISP finish and
JPEG (rawback.isp.simulate), the analytic estimate given the finish's white balance and exposure
or whole inverse tone curve (slightly jittered, as the global head's estimate will be), plus a
thumbnail with the same finish for the global head: of the whole photo, or of a random crop of it
(a few dozen training photos are too few scenes for a head that reads tones: it learns them by
heart, and crops are new scenes). Items depend only on
(seed, index), so a resumed run sees exactly the data it would have seen.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch

from rawback.camera import CameraProfile, profile_from_raw_image
from rawback.choices import Transfer
from rawback.errors import InputError, OutputError, RawbackError
from rawback.features import area_resize, camera_features, exif_features, thumbnail_input
from rawback.io.atomic import current_umask
from rawback.io.exif import scene_exposure_value
from rawback.isp.bayer import pack_rggb, rggb_crop, rggb_offset
from rawback.isp.simulate import SimulatorSettings
from rawback.isp.unprocess import UnprocessSettings, unprocess
from rawback.model.heads import GLOBAL_OUTPUTS

if TYPE_CHECKING:
    from rawback.isp.simulate import Simulated

CACHE_VERSION = 3  # 3: the key samples the file's content
THUMB_SOURCE = 128  # thumbnails are simulated at this size, then reduced to the head's input size
OVERVIEW = 512  # side of the cached whole-photo overviews that thumbnails are cut from


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rawback" / "train"


@dataclass(frozen=True)
class CachedRaw:
    """One decoded training file; arrays are memory-mapped from the cache folder."""

    name: str
    truth: np.ndarray  # (H, W) float32 normalised mosaic, RGGB phase, H and W even
    linear: np.ndarray  # (H, W, 3) float16 LibRaw linear demosaic, camera RGB, not white-balanced
    libraw: np.ndarray  # (H, W, 3) uint8 LibRaw camera-WB sRGB render (the eval protocol's)
    thumb_linear: np.ndarray  # (THUMB_SOURCE, THUMB_SOURCE, 3) float32
    thumb_libraw: np.ndarray  # (THUMB_SOURCE, THUMB_SOURCE, 3) uint8
    overview_linear: np.ndarray  # (OVERVIEW, OVERVIEW, 3) float32, aspect ratio ignored
    overview_libraw: np.ndarray  # (OVERVIEW, OVERVIEW, 3) float32 display values 0..255
    profile: CameraProfile  # with cfa_pattern RGGB (the crop)
    neutral: np.ndarray  # the white balance LibRaw applies with use_camera_wb
    exposure_value: float | None

    @property
    def megapixels(self) -> float:
        return self.truth.size / 1e6


FINGERPRINT_BLOCK = 65536  # bytes read at the start, middle and end of a RAW for its cache key


def cache_key(path: Path) -> str:
    """Path, size, modification time and samples of the content: a file replaced by another of
    the same size and time (Kodak DC120 files are all 843,328 bytes; tar, rsync -a and cp -p keep
    times) gets a new key, for three 64 KiB reads instead of reading the whole file."""
    try:
        stat = path.stat()
        key = f"{CACHE_VERSION}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        digest = hashlib.sha1(key.encode("utf-8", "surrogateescape"))  # any file name
        with path.open("rb") as handle:
            for offset in (
                0,
                max(0, stat.st_size // 2 - FINGERPRINT_BLOCK // 2),
                max(0, stat.st_size - FINGERPRINT_BLOCK),
            ):
                handle.seek(offset)
                digest.update(handle.read(FINGERPRINT_BLOCK))
    except OSError as exc:  # reported and skipped like any file LibRaw cannot read
        raise InputError(path, f"cannot read ({exc.strerror or exc})") from exc
    return digest.hexdigest()[:16]


def build_cached(path: Path, cache_dir: Path) -> Path:
    """Decode one RAW into cache_dir/<key>/ unless a readable copy is there; returns the folder.
    The folder is written under a temporary name and renamed, so an interrupted run never leaves
    half a cache."""
    folder = cache_dir / f"{path.stem}-{cache_key(path)}"
    if (folder / "meta.json").is_file():
        if readable_cache(folder):
            return folder
        shutil.rmtree(folder, ignore_errors=True)  # damaged (a full disk, an edit): decode again
    return _decode_into(path, cache_dir, folder)


def readable_cache(folder: Path) -> bool:
    """Whether a cache folder loads whole: every array's header matches its file's length."""
    try:
        load_cached(folder)
    except (OSError, ValueError, EOFError, RawbackError):  # cut short, or its meta.json damaged
        return False
    return True


def _decode_into(path: Path, cache_dir: Path, folder: Path) -> Path:
    from rawback.io.raw import CAMERA_WB_RENDER, read_linear_rgb, read_raw, render_raw, to_mosaic_geometry

    raw = read_raw(path)
    h, w = raw.mosaic.shape
    rows, cols = rggb_crop(h, w, raw.pattern)
    linear = read_linear_rgb(path).rgb[rows, cols]
    render = render_raw(path, **CAMERA_WB_RENDER)
    libraw = to_mosaic_geometry(render.rgb, h, w)[rows, cols]
    truth = raw.normalized()[rows, cols]
    profile = dataclasses.replace(profile_from_raw_image(raw), cfa_pattern="RGGB")
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache_dir))
    except OSError as exc:
        raise _unwritable(cache_dir, exc) from exc
    try:
        np.save(tmp / "truth.npy", truth.astype(np.float32))
        np.save(tmp / "linear.npy", linear.astype(np.float16))
        np.save(tmp / "libraw.npy", libraw.astype(np.uint8))
        np.save(tmp / "thumb_linear.npy", area_resize(linear, THUMB_SOURCE, THUMB_SOURCE))
        thumb8 = area_resize(libraw.astype(np.float32), THUMB_SOURCE, THUMB_SOURCE)
        np.save(tmp / "thumb_libraw.npy", np.clip(np.rint(thumb8), 0, 255).astype(np.uint8))
        np.save(tmp / "overview_linear.npy", area_resize(linear, OVERVIEW, OVERVIEW))
        np.save(tmp / "overview_libraw.npy", area_resize(libraw.astype(np.float32), OVERVIEW, OVERVIEW))
        meta = {
            "source": str(path),
            "camera": f"{raw.make} {raw.model}".strip(),
            "profile": json.loads(profile.to_json()),
            "neutral": [float(v) for v in render.neutral],
            "exposure_value": scene_exposure_value(raw.f_number, raw.exposure_time, raw.iso),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2))
        # mkdtemp makes the folder private (0700); a cache may be shared like any other folder.
        os.chmod(tmp, 0o777 & ~current_umask())
        try:
            tmp.rename(folder)
        except OSError:  # another process finished it first
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:  # a full disk, or a folder gone read-only
        shutil.rmtree(tmp, ignore_errors=True)
        raise _unwritable(cache_dir, exc) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _unwritable(cache_dir: Path, exc: OSError) -> OutputError:
    reason = exc.strerror or str(exc)
    return OutputError(cache_dir, f"cannot write the training cache ({reason}); choose another --cache-dir")


def load_cached(folder: Path) -> CachedRaw:
    meta = json.loads((folder / "meta.json").read_text())

    def arr(name: str) -> np.ndarray:
        return np.load(folder / f"{name}.npy", mmap_mode="r")

    return CachedRaw(
        name=Path(meta["source"]).name,
        truth=arr("truth"),
        linear=arr("linear"),
        libraw=arr("libraw"),
        thumb_linear=np.asarray(arr("thumb_linear")),
        thumb_libraw=np.asarray(arr("thumb_libraw")),
        overview_linear=arr("overview_linear"),
        overview_libraw=arr("overview_libraw"),
        profile=CameraProfile.from_json(json.dumps(meta["profile"]), origin=str(folder)),
        neutral=np.asarray(meta["neutral"], dtype=np.float64),
        exposure_value=meta["exposure_value"],
    )


def build_cache(files: list[Path], cache_dir: Path, progress=None) -> tuple[list[Path], list[str]]:
    """Cache every file; a file LibRaw cannot read is reported and skipped, never fatal."""
    folders, errors = [], []
    for index, path in enumerate(files):
        if progress:
            progress(index, len(files), path.name)
        try:
            folders.append(build_cached(path, cache_dir))
        except InputError as exc:
            errors.append(str(exc))
    return folders, errors


# The 8 symmetries of the square as (transpose, flip rows, flip columns).
SYMMETRIES = [(t, fr, fc) for t in (False, True) for fr in (False, True) for fc in (False, True)]


def apply_symmetry(image: np.ndarray, symmetry: tuple[bool, bool, bool]) -> np.ndarray:
    transpose, flip_rows, flip_cols = symmetry
    if transpose:
        image = np.swapaxes(image, 0, 1)
    if flip_rows:
        image = image[::-1]
    if flip_cols:
        image = image[:, ::-1]
    return image


def symmetric_pattern(symmetry: tuple[bool, bool, bool]) -> str:
    """The CFA pattern an RGGB crop of even size has after the symmetry."""
    codes = np.array([["R", "G"], ["G", "B"]])
    return "".join(apply_symmetry(codes, symmetry).reshape(-1))


def bayer_augment(arrays: list[np.ndarray], size: int, symmetry: tuple[bool, bool, bool]) -> list[np.ndarray]:
    """Transform (size+2)-square crops of an RGGB mosaic and aligned images, then re-crop `size`
    from the first red site, so the result is RGGB again: a flip of a mosaic moves its CFA phase,
    and moving the crop by one pixel moves it back (never a channel relabelling)."""
    dy, dx = rggb_offset(symmetric_pattern(symmetry))
    return [np.ascontiguousarray(apply_symmetry(a, symmetry)[dy : dy + size, dx : dx + size]) for a in arrays]


@dataclass(frozen=True)
class PairSettings:
    patch: int = 128  # mosaic pixels per side (packed: half); even
    thumb: int = 64  # the global head's input size
    prior_jitter: float = 0.03  # log-std of the white-balance/exposure error put into the prior
    augment: bool = True  # Bayer-consistent flips and transposes
    tone_knots: int = 0  # the head's inverse tone curve (model config); 0: exposure only
    scene_crops: float = 0.0  # chance that the head's thumbnail is a random crop, not the whole photo
    simulator: SimulatorSettings = field(default_factory=SimulatorSettings)  # the condition's finish


class PairCamera(Protocol):
    """What a training item needs of its source: a cached RAW file, or a synthetic scene's shot."""

    name: str
    profile: CameraProfile  # RGGB, as the item's truth
    neutral: np.ndarray  # the as-shot white balance
    exposure_value: float | None


class DrawSource(Protocol):
    def draw(self, index: int) -> Draw: ...


MIX_STREAM = 1  # the generator that decides an item's source: (seed, index, MIX_STREAM)


@dataclass(frozen=True)
class Draw:
    """One random training item before the prior is made (see TrainingPairs.draw)."""

    item: PairCamera
    truth: np.ndarray  # (patch, patch) normalised RGGB mosaic
    rgb: np.ndarray  # (patch, patch, 3) float32 simulated photo in [0, 1]
    sim: Simulated
    transfer: str  # the transfer curve the inverse assumes for this photo
    thumb: torch.Tensor  # the global head's input (whole photo, same finish)
    global_target: torch.Tensor  # the head's target
    rng: np.random.Generator  # the item's generator, for draws that follow

    @classmethod
    def of(
        cls, item: PairCamera, truth: np.ndarray, sim: Simulated, thumb: torch.Tensor,
        global_target: torch.Tensor, rng: np.random.Generator,
    ) -> Draw:  # fmt: skip
        """The item with what its simulated photo implies: pixels in [0, 1], and the transfer
        the inverse assumes (a simulator family rawback cannot name is decoded as sRGB)."""
        transfer = sim.transfer if sim.transfer in tuple(Transfer) else Transfer.SRGB.value
        rgb = sim.rgb8.astype(np.float32) / 255.0
        return cls(item, truth, rgb, sim, transfer, thumb, global_target, rng)


class TrainingPairs(torch.utils.data.Dataset):
    """Random training items from cached RAW files, and with chance `scene_fraction` from a second
    source of draws (the synthetic scenes, rawback.train.scenes); item i depends only on (seed, i)."""

    def __init__(
        self,
        folders: list[Path],
        settings: PairSettings,
        *,
        seed: int,
        length: int = 10**9,
        scenes: DrawSource | None = None,
        scene_fraction: float = 0.0,
    ) -> None:
        if settings.patch % 2 or settings.patch < 8:
            raise ValueError(f"patch must be even and >= 8, got {settings.patch}")
        if not 0.0 <= scene_fraction <= 1.0:
            raise ValueError(f"scene_fraction is a probability, not {scene_fraction}")
        self.folders = list(folders)
        self.scenes = scenes
        self.scene_fraction = scene_fraction if scenes is not None else 0.0
        self.settings = settings
        self.seed = seed
        self.length = length
        self._files: list[CachedRaw] | None = None  # opened lazily in each worker process

    def __len__(self) -> int:
        return self.length

    def files(self) -> list[CachedRaw]:
        """The cached files large enough for a patch (every item of a batch has one size)."""
        if self._files is None:
            need = self.settings.patch + 2
            self._files = [f for f in map(load_cached, self.folders) if min(f.truth.shape) >= need]
            if not self._files:
                raise RawbackError(f"no training file has {need} pixels on each side (lower --set patch=...)")
        return self._files

    def draw(self, index: int) -> Draw:
        """Item `index` before any estimate is made from it: a RAW patch and its simulated photo,
        and the whole photo's thumbnail under the same finish (the draw depends on (seed, index))."""
        from rawback.isp.simulate import simulate

        if self.is_scene(index):
            return self.scenes.draw(index)  # type: ignore[union-attr]
        rng = np.random.default_rng([self.seed, index])
        files = self.files()
        # Bigger photos hold more distinct patches: weight by the square root of their size.
        weights = np.sqrt([f.megapixels for f in files])
        item = files[rng.choice(len(files), p=weights / weights.sum())]
        p = self.settings.patch
        h, w = item.truth.shape
        big = p + 2
        y = 2 * rng.integers(0, (h - big) // 2 + 1)
        x = 2 * rng.integers(0, (w - big) // 2 + 1)
        crops = [
            np.asarray(item.truth[y : y + big, x : x + big], dtype=np.float32),
            np.asarray(item.linear[y : y + big, x : x + big], dtype=np.float32),
            np.asarray(item.libraw[y : y + big, x : x + big]),
        ]
        symmetry = SYMMETRIES[rng.integers(len(SYMMETRIES))] if self.settings.augment else SYMMETRIES[0]
        truth, linear, libraw = bayer_augment(crops, p, symmetry)
        # The patch and the whole-photo thumbnail get the same finish: the simulator's draws do not
        # depend on the image, so two generators with one seed sample identical parameters.
        finish_seed = int(rng.integers(2**63))
        sim = simulate(
            linear,
            item.profile,
            item.neutral,
            np.random.default_rng(finish_seed),
            libraw_rgb8=libraw,
            settings=self.settings.simulator,
        )
        view = self.head_view(item, rng)
        thumb, target = self.thumbnail(item, view, np.random.default_rng(finish_seed))
        return Draw.of(item, truth, sim, thumb, target, rng)

    def is_scene(self, index: int) -> bool:
        """Whether item `index` is drawn from the scenes. Its own generator, so the real items are
        the ones they were without scenes (with no scenes no number is drawn at all)."""
        if not self.scene_fraction:
            return False
        return bool(np.random.default_rng([self.seed, index, MIX_STREAM]).random() < self.scene_fraction)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        d = self.draw(index)
        item, sim = d.item, d.sim
        jitter = np.exp(d.rng.normal(0.0, self.settings.prior_jitter, 3) * np.array([1.0, 0.0, 1.0]))
        gain_error = float(d.rng.normal(0.0, self.settings.prior_jitter))
        settings = UnprocessSettings(transfer=d.transfer)
        if self.settings.tone_knots:  # the finish's true inverse tone curve, exposure jittered
            curve = d.global_target[GLOBAL_OUTPUTS:].numpy() + np.float32(gain_error)
            prior = unprocess(d.rgb, item.profile, sim.neutral * jitter, settings, curve=curve)
        else:
            prior = unprocess(d.rgb, item.profile, sim.neutral * jitter, settings)
            prior = np.clip(prior / (sim.exposure * np.exp(gain_error)), 0.0, 1.0)
        return {
            "rgb": torch.from_numpy(d.rgb).permute(2, 0, 1),
            "prior": torch.from_numpy(pack_rggb(prior, "RGGB")).permute(2, 0, 1),
            "truth": torch.from_numpy(pack_rggb(d.truth, "RGGB")).permute(2, 0, 1),
            "camera": torch.from_numpy(camera_features(item.profile)),
            "exif": torch.from_numpy(exif_features(item.exposure_value)),
            "thumb": d.thumb,
            "global_target": d.global_target,
        }

    def head_view(self, item: CachedRaw, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The (linear, LibRaw uint8) THUMB_SOURCE-square pictures the head's thumbnail is rendered
        from: the whole photo, or with chance `scene_crops` a crop of 30-100% of each side of the
        overview, mirrored half the time (docs/training.md, "Scene crops for the head"). With
        `scene_crops` 0 no random number is drawn, so items are what they were before crops."""
        if not (self.settings.scene_crops > 0 and rng.random() < self.settings.scene_crops):
            return item.thumb_linear, item.thumb_libraw
        h, w = (int(OVERVIEW * rng.uniform(0.3, 1.0)) for _ in range(2))
        y, x = int(rng.integers(0, OVERVIEW - h + 1)), int(rng.integers(0, OVERVIEW - w + 1))
        window = (slice(y, y + h), slice(x, x + w))
        # Copies of the window only: the overviews stay memory-mapped (and read-only) until cropped.
        linear, libraw = np.array(item.overview_linear[window]), np.array(item.overview_libraw[window])
        if rng.random() < 0.5:
            linear, libraw = linear[:, ::-1], libraw[:, ::-1]
        small = area_resize(linear, THUMB_SOURCE, THUMB_SOURCE)
        small8 = np.clip(np.rint(area_resize(libraw, THUMB_SOURCE, THUMB_SOURCE)), 0, 255).astype(np.uint8)
        return small, small8

    def thumbnail(
        self, item: CachedRaw, view: tuple[np.ndarray, np.ndarray], rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's input and target for `view` under the patch's finish (see `head_thumbnail`)."""
        return head_thumbnail(item.profile, item.neutral, view, rng, self.settings)


def head_thumbnail(
    profile: CameraProfile,
    neutral: np.ndarray,
    view: tuple[np.ndarray, np.ndarray | None],
    rng: np.random.Generator,
    settings: PairSettings,
    *,
    libraw_exposure: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The head's input from a finish of `view` (the patch's finish, given the same generator), and
    its target (log R/G and log B/G of the applied neutral relative to daylight, log2 of the
    applied exposure, then the knots of the finish's inverse tone curve when configured)."""
    from rawback.isp import tone
    from rawback.isp.simulate import simulate, tone_response

    sim = simulate(
        view[0], profile, neutral, rng, libraw_rgb8=view[1], libraw_exposure=libraw_exposure,
        settings=settings.simulator,
    )  # fmt: skip
    transfer = sim.transfer if sim.transfer in tuple(Transfer) else Transfer.SRGB.value
    rgb = sim.rgb8.astype(np.float32) / 255.0
    thumb = thumbnail_input(rgb, profile, transfer, settings.thumb)
    daylight = profile.daylight_neutral()
    target = np.array(
        [
            np.log(sim.neutral[0] / daylight[0]),
            np.log(sim.neutral[2] / daylight[2]),
            np.log2(sim.exposure),
        ],
        dtype=np.float32,
    )
    if settings.tone_knots:
        knots = tone.inverse_log_gains(lambda x: tone_response(sim.params, x), settings.tone_knots)
        target = np.concatenate([target, knots])
    return thumb, torch.from_numpy(target)

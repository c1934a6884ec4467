"""Run the learned inverter on a photo: global head -> analytic prior -> tiled diffusion.

Data flow for one photo (stored orientation, CFA of the camera profile):
  1. crop the photo to the mosaic's RGGB phase (an even-sized region starting at the first red site);
  2. the global head sees a thumbnail of the whole photo and estimates the scene white balance,
     the finish's exposure, the finish's tone curve (models trained with one) and a finish
     embedding (it always runs: the denoiser needs the embedding; a white balance the user or EXIF
     gives replaces its estimate);
  3. the analytic inverse with that white balance and tone curve gives the prior (packed RGGB);
  4. a sampler (rawback.sampling) integrates the residual from sigma_max to 0 through the tiled
     denoiser (rawback.tiling), noise drawn once per photo from (seed, photo pixels);
  5. a calibrated model's residual gate (rawback.model.heads) weights the residual by its per-photo
     trust, in full where the photo is clipped;
  6. prior + residual, clipped, is unpacked into the profile's CFA.
On a GPU steps 1, 3 and 6 run there too (rawback.isp.on_device, the same bits), and for `convert`
the mosaic stays there for its highlights and raw counts (rawback.device_mosaic).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from rawback.camera import CameraProfile
from rawback.choices import Residual
from rawback.device import resolve_device, uses_bf16
from rawback.device_mosaic import DeviceMosaic
from rawback.diffusion_settings import DiffusionSettings
from rawback.features import camera_features, exif_features, profile_camera, thumbnail_input
from rawback.finish import UndoneFinish, learned_finish, model_finish
from rawback.inverse import InverseRequest, InverseResult, NeutralSource, estimate_neutral
from rawback.isp.bayer import pack_rggb, packed_to_pattern, rggb_crop
from rawback.isp.on_device import unprocess_packed
from rawback.isp.unprocess import UnprocessSettings, unprocess
from rawback.model.denoiser import RawbackModel, condition
from rawback.model.heads import GLOBAL_OUTPUTS, clipped_blocks, gated_residual
from rawback.network import TileNetwork, tile_network
from rawback.sampling import (
    Noise,
    NoiseDrawnAhead,
    get_sampler,
    initial_noise,
    karras_sigmas,
    network_evaluations,
)
from rawback.tiling import TiledDenoiser
from rawback.weights import BUNDLED, load_weights

Progress = Callable[[float], None]  # fraction of a photo's network work done, 0..1
RECONSTRUCTION_SIGMAS = 3.0  # a lift above the prior that counts as reconstructed, in sigma_data


def as_run(settings: DiffusionSettings) -> DiffusionSettings:
    """`settings` with what it resolves to on its device filled in, for reports: the tile, the
    tile batch and the precision."""
    device = resolve_device(settings.device)
    tile, tile_batch = settings.tiling(device.type)
    if tile_batch is None:  # chosen from the GPU's free memory when the network was set up
        tile_batch = tile_network(model_for(settings), settings).scheduler.batch
    precision = "bf16" if uses_bf16(settings.precision, device) else "fp32"
    return dataclasses.replace(settings, tile=tile, tile_batch=tile_batch, precision=precision)


@functools.lru_cache(maxsize=4)
def cached_model(weights: str, device: str) -> RawbackModel:
    # Channels-last (NHWC) weights and tiles let oneDNN and cuDNN run the convolutions without
    # reordering every activation: faster for the small model on the CPU, the same results to 1e-6
    # (docs/experiments.md#speed).
    return load_weights(weights, device=device).to(memory_format=torch.channels_last)


def model_for(settings: DiffusionSettings) -> RawbackModel:
    device = resolve_device(settings.device)
    return cached_model(str(settings.weights or BUNDLED), str(device))


def photo_seed(seed: int, rgb: np.ndarray) -> int:
    """A per-photo seed from the user's seed and the photo's pixels: the same photo and seed give
    the same noise whatever else is in the batch, and two photos never share noise."""
    digest = hashlib.sha256(np.ascontiguousarray(rgb).view(np.uint8)).digest()
    return int.from_bytes(
        hashlib.sha256(digest + seed.to_bytes(8, "little", signed=True)).digest()[:8], "little"
    )


@dataclass(frozen=True)
class GlobalEstimate:
    """What the global head says about a whole photo."""

    neutral: np.ndarray  # camera neutral of the scene white (green = 1)
    exposure: float  # linear exposure gain the finish applied (1 = none)
    finish: torch.Tensor  # (1, finish_channels) embedding for every U-Net block
    learned_white_balance: bool  # False: a camera the model never saw, the daylight estimate kept
    trust: float = 1.0  # the residual gate's weight on the denoiser's residual (1: no gate)
    curve: np.ndarray | None = None  # knots of the finish's inverse tone curve (rawback.isp.tone)
    saturation: float = 1.0  # the finish's saturation after its curve (measured finishes only)

    def with_neutral(self, neutral: np.ndarray) -> GlobalEstimate:
        return dataclasses.replace(self, neutral=np.asarray(neutral, dtype=np.float64))

    def with_finish(self, finish: UndoneFinish) -> GlobalEstimate:
        """The estimate with the finish the prior undoes (rawback.finish decides it)."""
        return dataclasses.replace(
            self, curve=finish.curve, exposure=finish.exposure, saturation=finish.saturation
        )

    def with_learned_finish(self, settings: DiffusionSettings) -> GlobalEstimate:
        """The estimate with the part of its own curve and exposure that `settings` ask to undo
        (rawback.finish.learned_finish): what `convert` does for a profile without a measured
        finish."""
        return self.with_finish(learned_finish(self.curve, self.exposure, settings))


@torch.no_grad()
def estimate_global(
    model: RawbackModel, rgb: np.ndarray, profile: CameraProfile, transfer: str, exposure_value: float | None
) -> GlobalEstimate:
    """The global head (and the residual gate, when calibrated) on a thumbnail of the whole photo."""
    device = next(model.parameters()).device
    thumb = thumbnail_input(rgb, profile, transfer, model.config.global_head.thumb_size)[None].to(device)
    camera = torch.from_numpy(camera_features(profile))[None].to(device)
    exif = torch.from_numpy(exif_features(exposure_value))[None].to(device)
    return estimate_from_thumbnail(model, thumb, camera, exif, profile)


@torch.no_grad()
def estimate_from_thumbnail(
    model: RawbackModel, thumb: torch.Tensor, camera: torch.Tensor, exif: torch.Tensor, profile: CameraProfile
) -> GlobalEstimate:
    """(1, ...) model inputs of one photo -> its GlobalEstimate (shared with `rawback calibrate`)."""
    corrections, finish = model.global_head(thumb, camera, exif)
    out = corrections[0].double().cpu().numpy()
    daylight = profile.daylight_neutral()
    learned = model.config.knows(profile_camera(profile))
    if learned:
        neutral = np.array([daylight[0] * np.exp(out[0]), 1.0, daylight[2] * np.exp(out[1])])
    else:
        neutral = np.asarray(daylight, dtype=np.float64)
    trust = 1.0
    if model.gate is not None:
        trust = float(torch.sigmoid(model.gate(thumb, camera, exif, finish))[0])
    curve = out[GLOBAL_OUTPUTS:].astype(np.float32) if len(out) > GLOBAL_OUTPUTS else None
    return GlobalEstimate(neutral, float(2.0 ** out[2]), finish, learned, trust, curve)


def residual_trust(estimate: GlobalEstimate, mode: str) -> tuple[float, str | None]:
    """(trust, -v note) of the denoiser's residual outside the photo's clipped blocks under
    `--residual` (rawback.choices.Residual). Where the photo is clipped it always applies
    in full, because there the analytic inverse knows nothing."""
    if mode == Residual.FULL:
        return 1.0, None
    if mode == Residual.CLIPPED:
        return 0.0, "residual only where the photo is clipped (--residual clipped)"
    if mode == Residual.AUTO and not estimate.learned_white_balance:
        # On a camera absent from training the residual outside clipped areas cost round-trip PSNR,
        # SSIM and WB-oracle PSNR and gained nothing, while the gate, calibrated on the training
        # cameras, trusted it fully (docs/experiments.md#leave-one-camera-out).
        return 0.0, "residual only where the photo is clipped (the model was not trained on this camera)"
    if estimate.trust < 1.0:
        return (
            estimate.trust,
            f"residual gate: trust {estimate.trust:.2f} (full trust where the photo is clipped)",
        )
    return estimate.trust, None


def analytic_prior(
    crop: np.ndarray,
    profile: CameraProfile,
    estimate: GlobalEstimate,
    settings: UnprocessSettings,
    bit_depth: int,
) -> np.ndarray:
    """The analytic estimate the denoiser refines, (h, w, 4) packed: the inverse ISP with the
    estimate's white balance, tone curve and exposure gain, as rawback.finish chose them. `crop`
    is in RGGB phase."""
    rggb = _as_rggb(profile)
    mosaic = unprocess(
        crop, rggb, estimate.neutral, settings, bit_depth=bit_depth, curve=estimate.curve,
        saturation=estimate.saturation,
    )  # fmt: skip
    return pack_rggb(np.clip(mosaic / estimate.exposure, 0.0, 1.0), "RGGB")


def tiled_denoiser(
    model: RawbackModel,
    camera: torch.Tensor,
    finish: torch.Tensor,
    settings: DiffusionSettings,
    progress: Callable[[int, int], None] | None = None,
) -> TiledDenoiser:
    """The model's D(x, sigma, cond) over a whole packed image, tile by tile; camera and finish
    are the photo's global conditions. Its tiles go to the model's one tile scheduler
    (rawback.network.tile_network), where they share network calls with the tiles of any other
    photo sampled in this process at the same time (rawback.pipeline)."""
    network = tile_network(model, settings)
    return TiledDenoiser(
        network.scheduler,
        tile=network.tile // 2,
        overlap=settings.overlap // 2,
        progress=progress,
        conditions=(camera, finish),
        blend_dtype=network.blend_dtype,
    )


@torch.no_grad()
def sample_residual(
    model: RawbackModel,
    cond: torch.Tensor,
    camera: torch.Tensor,
    finish: torch.Tensor,
    settings: DiffusionSettings,
    seed: int,
    progress: Progress | None = None,
    only_where: torch.Tensor | None = None,
    noise: Noise = initial_noise,
) -> torch.Tensor:
    """Integrate the packed residual (1, 4, h, w) from pure noise at sigma_max to sigma = 0.
    `progress` gets the fraction of the network's work done, after every batch of tiles. With
    `only_where` ((1, 1, h, w) bool, not all false) only the tiles holding those pixels run
    (TiledDenoiser): the residual is then meant to be read there only. `noise` draws the noise
    of each member, seeded `seed + member` (rawback.sampling.NoiseDrawnAhead: drawn earlier)."""
    config = model.config
    evaluations = network_evaluations(settings.sampler, settings.steps) * settings.ensemble
    finished = 0  # network evaluations completed over the whole photo

    def tiles_done(done: int, total: int) -> None:
        nonlocal finished
        if progress is not None:
            progress(min(1.0, (finished + done / total) / evaluations))
        if done == total:
            finished += 1

    tiled = tiled_denoiser(model, camera, finish, settings, tiles_done)
    network = tile_network(model, settings)
    # On a GPU the photo stays there while it is sampled: x, the condition and the blend; nothing
    # in the sampler loop then waits for the GPU (only_where stays on the CPU, where it is read).
    cond = network.upload(cond)
    sigmas = karras_sigmas(settings.steps, config.sigma_min, config.sigma_max)
    sampler = get_sampler(settings.sampler)
    total = []
    with network.scheduler.client():  # other photos wait for this one's tiles between its steps
        for member in range(settings.ensemble):
            shape = (cond.shape[0], 4, *cond.shape[2:])
            x = network.upload(noise(shape, (seed + member) % 2**63) * sigmas[0])
            total.append(sampler(lambda x_, sigma: tiled(x_, sigma, cond, only_where), x, sigmas))
    return torch.stack(total).mean(dim=0)


class Reconstruction(NamedTuple):
    packed: torch.Tensor  # (h, w, 4) float32 prediction, RGGB-phase crop of the photo, on `device`
    prior: torch.Tensor  # (h, w, 4) float32 analytic estimate it refined, on `device`
    # False when the residual had no trust and nothing was clipped, so no tile was worth a network call
    network_ran: bool


def keeps_on_device(device: torch.device) -> bool:
    """Whether a photo's per-pixel work around the network runs on the model's device (a GPU):
    the analytic prior, and for `convert` the highlights and raw counts (rawback.device_mosaic).
    On the CPU the NumPy forms are faster (placing a 24 MP prediction and its reconstructed sites
    on the CFA: 0.14 s against torch's 0.46 s on the 2-core EPYC) and need no copies."""
    return device.type == "cuda"


def analytic_prior_on_device(
    photo: torch.Tensor, profile: CameraProfile, estimate: GlobalEstimate, settings: UnprocessSettings,
    bit_depth: int,
) -> torch.Tensor:  # fmt: skip
    """`analytic_prior` of an RGGB-phase photo (3, H, W) on its device -> (1, 4, h, w), the same bits."""
    packed = unprocess_packed(
        photo, _as_rggb(profile), estimate.neutral, settings, bit_depth=bit_depth, curve=estimate.curve,
        saturation=estimate.saturation,
    )  # fmt: skip
    exposure = torch.tensor(estimate.exposure, dtype=torch.float32, device=photo.device)
    return torch.div(packed, exposure).clamp_(0.0, 1.0)[None]


def reconstruct(
    model: RawbackModel,
    rgb: np.ndarray,
    profile: CameraProfile,
    *,
    estimate: GlobalEstimate,
    settings: UnprocessSettings,
    bit_depth: int,
    diffusion: DiffusionSettings,
    seed: int,
    progress: Progress | None = None,
) -> Reconstruction:
    """RGGB-phase crop of a photo -> its packed prediction and prior, left on the model's device."""
    rows, cols = rggb_crop(rgb.shape[0], rgb.shape[1], profile.cfa_pattern)
    network = tile_network(model, diffusion)
    device = network.device
    on_device = keeps_on_device(device)
    if on_device:
        # The photo goes up once, as decoded, and everything per pixel is made there from it.
        photo = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32))
        photo_t = network.upload(photo)[rows, cols].permute(2, 0, 1)[None]
    else:
        crop = np.ascontiguousarray(rgb[rows, cols], dtype=np.float32)
        photo_t = network.upload(torch.from_numpy(crop).permute(2, 0, 1)[None])
    clipped = clipped_blocks(photo_t) if estimate.trust < 1.0 else None
    # With no trust the residual is read only where the photo is clipped: only the tiles that hold
    # a clipped block run, and none at all when nothing is clipped.
    only_clipped = clipped is not None and not estimate.trust > 0.0
    network_ran = not only_clipped or bool(clipped.any())
    if network_ran:  # its noise is drawn while the prior and the condition are made
        noise: Noise = NoiseDrawnAhead((1, 4, photo_t.shape[2] // 2, photo_t.shape[3] // 2), seed % 2**63)
    if on_device:
        prior_t = analytic_prior_on_device(photo_t[0], profile, estimate, settings, bit_depth)
    else:
        prior = analytic_prior(crop, profile, estimate, settings, bit_depth)
        prior_t = network.upload(torch.from_numpy(prior).permute(2, 0, 1)[None])
    cond = condition(photo_t, prior_t)
    camera = torch.from_numpy(camera_features(profile))[None].to(device)
    if network_ran:
        where = (clipped > 0).cpu() if only_clipped else None  # the tiler reads it on the CPU
        residual = sample_residual(
            model, cond, camera, estimate.finish.to(device), diffusion, seed, progress, where, noise
        )
    else:
        residual = torch.zeros_like(prior_t, dtype=torch.float64)
        if progress is not None:
            progress(1.0)
    # A residual on the GPU stays there: the gate and the sum are made there.
    if clipped is not None:
        trust = torch.tensor([estimate.trust])
        residual = gated_residual(residual, network.upload(trust), clipped.double())
    packed_t = (prior_t.double() + residual).clamp(0.0, 1.0)[0].permute(1, 2, 0).float()
    return Reconstruction(packed_t, prior_t[0].permute(1, 2, 0), network_ran)


def reconstruct_packed(
    model: RawbackModel, rgb: np.ndarray, profile: CameraProfile, **kwargs
) -> tuple[np.ndarray, np.ndarray, bool]:
    """`reconstruct`'s prediction and prior as NumPy arrays on the host, and whether the network
    ran (training's validation and the gate's calibration); keyword arguments as there."""
    packed, prior, network_ran = reconstruct(model, rgb, profile, **kwargs)
    network = tile_network(model, kwargs["diffusion"])
    return network.download(packed).numpy(), network.download(prior).numpy(), network_ran


def _as_rggb(profile: CameraProfile) -> CameraProfile:
    return dataclasses.replace(profile, cfa_pattern="RGGB")


def invert_with_model(request: InverseRequest) -> InverseResult:
    """The "diffusion" method of rawback.methods."""
    settings = request.diffusion
    model = model_for(settings)
    notes = [f"diffusion: {settings.sampler}, {settings.steps} step(s), seed {settings.seed}"]
    estimate = estimate_global(
        model, request.rgb, request.profile, request.settings.transfer, request.exposure_value
    )
    stated = estimate_neutral(request)
    source = stated.source
    if stated.source is not NeutralSource.DAYLIGHT:
        # Given, or the camera's own record (maker notes, EXIF LightSource): each beats any
        # estimate from the pixels.
        estimate = estimate.with_neutral(stated.neutral)
        notes.append(stated.note)
    elif estimate.learned_white_balance:
        source = NeutralSource.MODEL
        r, _, b = estimate.neutral
        notes.append(f"white balance estimated by the model (neutral {r:.3f}, 1, {b:.3f})")
    else:
        notes.append("white balance: daylight estimate (the model was not trained on this camera)")
    trust, trust_note = residual_trust(estimate, settings.residual)
    estimate = dataclasses.replace(estimate, trust=trust)
    if trust_note is not None:
        notes.append(trust_note)
    network_note_at = len(notes)  # said after the trust note, once the reconstruction knows
    # After a measured saturation the residual stays gated as usual, although it was trained on
    # priors that never undo one (docs/experiments.md has what either choice costs).
    finish, decoding = model_finish(
        request.profile, request.settings, estimate.curve, estimate.exposure, settings
    )
    notes.extend(finish.notes)
    estimate = estimate.with_finish(finish)
    reconstruction = reconstruct(
        model,
        request.rgb,
        request.profile,
        estimate=estimate,
        settings=decoding,
        bit_depth=request.bit_depth,
        diffusion=settings,
        seed=photo_seed(settings.seed, request.rgb),
        progress=request.progress,
    )
    if not reconstruction.network_ran:
        notes.insert(network_note_at, "nothing in the photo is clipped, so the network did not run")
    network = tile_network(model, settings)
    mosaic, reconstructed = _mosaic(reconstruction, request, network, model.config.sigma_data)
    return InverseResult(
        mosaic=mosaic,
        neutral=estimate.neutral,
        notes=tuple(notes),
        exposure=finish.undone_exposure,
        neutral_source=source,
        tone_curve_undone=finish.curve is not None,
        reconstructed=reconstructed,
    )


def _mosaic(
    reconstruction: Reconstruction, request: InverseRequest, network: TileNetwork, sigma_data: float
) -> tuple[np.ndarray | DeviceMosaic, np.ndarray | None]:
    """The reconstruction in the profile's CFA and the sites it reconstructed, on the host; or, on a
    GPU and where the caller takes it (`convert`), left there as a DeviceMosaic."""
    packed, prior, network_ran = reconstruction
    h, w = request.rgb.shape[:2]
    pattern = request.profile.cfa_pattern
    # Sites the residual lifted above the analytic prior by more than its own spread (3 sigma_data
    # of the training residuals): light the photo lost that the model restores. Smaller lifts are
    # the residual's noise, and kept in a blown area they would read as unclipped data.
    margin = RECONSTRUCTION_SIGMAS * sigma_data
    if keeps_on_device(packed.device):
        lifted = packed > prior + margin if network_ran else None
        on_device = DeviceMosaic(packed, lifted, pattern, h, w, network)
        return (on_device, None) if request.mosaic_on_device else on_device.to_host()
    packed, prior = network.download(packed).numpy(), network.download(prior).numpy()
    mosaic = packed_to_pattern(packed, pattern, h, w)
    if not network_ran:
        return mosaic, None
    lifted = (packed > prior + margin).astype(np.float32)
    return mosaic, packed_to_pattern(lifted, pattern, h, w) > 0.5

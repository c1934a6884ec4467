"""`rawback calibrate`: fit the residual gate (rawback.model.heads) of trained weights.

Everything else in the model stays frozen. On simulated finishes of the calibration files (the
training simulator, LibRaw member included), each item goes through exactly what `convert` does
by default: the head's white balance makes the analytic prior, exposure and tone curve are left
alone, and one Euler step from sigma_max gives the residual. For a per-photo trust t the packed error on the
item's unclipped pixels is quadratic in t:

    sum (truth - prior - t * residual)^2 = C - 2 t B + t^2 A,  A = sum r^2, B = sum (truth - prior) r

so only (A, B, C) are kept per item, and the gate, which sees only what it will see at inference
(the whole-photo thumbnail, the camera, the EXIF exposure, the head's finish embedding), is fitted
to maximise the mean over items of their PSNR, the average `rawback eval` reports. A tenth of the
items is held out to report whether the fitted gate beats "always trust" and "never trust" on
items it did not see.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from rawback.errors import RawbackError
from rawback.model.denoiser import RawbackModel, condition
from rawback.model.heads import ResidualGate, clipped_blocks
from rawback.train.data import PairSettings, TrainingPairs, build_cache, default_cache_dir

Progress = Callable[[int, int, str], None]  # (index, total, what): CountProgress's signature
HELD_OUT = 0.1
PSNR_FLOOR = 1e-8  # added to each item's MSE: caps an item's PSNR at 80 dB (e.g. all clipped)


@dataclass(frozen=True)
class CalibrateOptions:
    data: Path  # folder of RAW files (never the validation files; best, files the model never saw)
    weights: Path  # trained weights (a gate they already have is fitted again from scratch)
    out: Path  # the calibrated weights file
    include: tuple[str, ...] = ()  # glob patterns (relative to data) of the files to use; empty = all
    exclude: tuple[str, ...] = ()  # glob patterns of files left out
    samples: int = 4096  # simulated items (patch + whole-photo finish)
    patch: int = 128  # mosaic pixels per side, as in training
    batch: int = 32  # items per denoiser call
    steps: int = 2000  # optimiser steps of the gate
    seed: int = 0
    cache_dir: Path | None = None
    device: str = "auto"


@dataclass
class GateSamples:
    """The gate's inputs and the quadratic error coefficients of each item (see the module doc)."""

    thumb: torch.Tensor  # (n, 6, t, t)
    camera: torch.Tensor  # (n, 12)
    exif: torch.Tensor  # (n, 2)
    finish: torch.Tensor  # (n, finish_channels)
    a: torch.Tensor  # (n,) float64: sum of residual^2 over unclipped packed values
    b: torch.Tensor  # (n,) sum of (truth - prior) * residual
    c: torch.Tensor  # (n,) sum of (truth - prior)^2
    values: int  # packed values per item (4 * h * w), to turn sums into mean squared errors

    def subset(self, index: torch.Tensor) -> GateSamples:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "values"}
        return GateSamples(**{k: v[index] for k, v in fields.items()}, values=self.values)

    def mse(self, trust: torch.Tensor) -> torch.Tensor:
        """(n,) mean squared error of each item's unclipped values, for per-item trust (n,)."""
        t = trust.to(torch.float64)
        return ((self.c - 2.0 * t * self.b + t * t * self.a) / self.values).clamp_min(0.0)

    def mean_psnr(self, trust: torch.Tensor) -> torch.Tensor:
        """Mean over the items of their PSNR (peak 1), as `rawback eval` averages photos: every
        photo counts alike, however large its error (a mean of squared errors would leave the
        decision to the few photos the analytic prior gets badly wrong)."""
        return (-10.0 * torch.log10(self.mse(trust) + PSNR_FLOOR)).mean()


@torch.no_grad()
def collect_samples(
    model: RawbackModel, pairs: TrainingPairs, count: int, batch: int, progress: Progress | None = None
) -> GateSamples:
    """Run the frozen model on `count` items as `convert` would, keeping what the fit needs."""
    from rawback.diffusion_settings import DiffusionSettings
    from rawback.features import camera_features, exif_features
    from rawback.inference import analytic_prior, estimate_from_thumbnail
    from rawback.isp.bayer import pack_rggb
    from rawback.isp.unprocess import UnprocessSettings
    from rawback.sampling import initial_noise

    device = next(model.parameters()).device
    sigma_max = model.config.sigma_max
    kept = ("thumb", "camera", "exif", "finish", "a", "b", "c")
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in kept}
    values = 0
    for start in range(0, count, batch):
        if progress:
            progress(start, count, "running the model on simulated photos")
        rows: dict[str, list[torch.Tensor]] = {k: [] for k in ("rgb", "prior", "truth", "finish")}
        for index in range(start, min(start + batch, count)):
            d = pairs.draw(index)
            camera = torch.from_numpy(camera_features(d.item.profile))[None]
            exif = torch.from_numpy(exif_features(d.item.exposure_value))[None]
            estimate = estimate_from_thumbnail(
                model, d.thumb[None].to(device), camera.to(device), exif.to(device), d.item.profile
            )
            estimate = estimate.with_learned_finish(DiffusionSettings())  # as `convert` does by default
            prior = analytic_prior(d.rgb, d.item.profile, estimate, UnprocessSettings(transfer=d.transfer), 8)
            rows["rgb"].append(torch.from_numpy(d.rgb).permute(2, 0, 1))
            rows["prior"].append(torch.from_numpy(prior).permute(2, 0, 1))
            rows["truth"].append(torch.from_numpy(pack_rggb(d.truth, "RGGB")).permute(2, 0, 1))
            rows["finish"].append(estimate.finish.cpu())
            parts["thumb"].append(d.thumb[None])
            parts["camera"].append(camera)
            parts["exif"].append(exif)
        rgb, prior, truth = (torch.stack(rows[k]) for k in ("rgb", "prior", "truth"))
        finish = torch.cat(rows["finish"])
        n = rgb.shape[0]
        # One Euler step from sigma_max is the denoiser's output at sigma_max (the default sampler).
        noise = initial_noise((n, 4, *prior.shape[2:]), pairs.seed * 1_000_003 + start) * sigma_max
        residual = model.denoiser(
            noise.to(device),
            torch.full((n,), sigma_max, device=device),
            condition(rgb, prior).to(device),
            torch.cat(parts["camera"][start : start + n]).to(device),
            finish.to(device),
        ).to("cpu", torch.float64)
        keep = 1.0 - clipped_blocks(rgb).double()  # the gate has no say where the photo clipped
        error = (truth.double() - prior.double()) * keep
        r = residual * keep
        parts["a"].append((r * r).sum(dim=(1, 2, 3)))
        parts["b"].append((error * r).sum(dim=(1, 2, 3)))
        parts["c"].append((error * error).sum(dim=(1, 2, 3)))
        parts["finish"].append(finish)
        values = residual[0].numel()
    return GateSamples(**{k: torch.cat(v) for k, v in parts.items()}, values=values)


def fit_gate(
    gate: ResidualGate, samples: GateSamples, steps: int, seed: int, progress: Progress | None = None
) -> None:
    """Adam on mini-batches of items, maximising the mean PSNR of the gated output."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(gate.parameters(), lr=1e-3)
    gate.train()
    n = samples.a.shape[0]
    for step in range(steps):
        if progress and step % 100 == 0:
            progress(step, steps, "fitting the gate")
        index = torch.randint(0, n, (min(256, n),), generator=generator)
        part = samples.subset(index)
        trust = torch.sigmoid(gate(part.thumb, part.camera, part.exif, part.finish))
        loss = -part.mean_psnr(trust) / 10.0  # in bels: gradients of order one
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    gate.eval()


@torch.no_grad()
def gate_report(gate: ResidualGate, samples: GateSamples) -> dict[str, float]:
    """Mean PSNR of the items' unclipped packed values under each trust policy."""
    trust = torch.sigmoid(gate(samples.thumb, samples.camera, samples.exif, samples.finish))
    ones = torch.ones_like(trust)
    grid = torch.linspace(0.0, 1.0, 101)
    constant = float(grid[torch.stack([samples.mean_psnr(t * ones) for t in grid]).argmax()])
    per_item = (samples.b / samples.a.clamp_min(1e-20)).clamp(0.0, 1.0)
    return {
        "items": int(trust.shape[0]),
        "psnr_prior_only": float(samples.mean_psnr(0.0 * ones)),
        "psnr_full_residual": float(samples.mean_psnr(ones)),
        "psnr_best_constant": float(samples.mean_psnr(constant * ones)),
        "best_constant": constant,
        "psnr_gate": float(samples.mean_psnr(trust)),
        "psnr_per_item_oracle": float(samples.mean_psnr(per_item)),
        "mean_trust": float(trust.mean()),
    }


def calibrate(options: CalibrateOptions, progress: Progress | None = None) -> tuple[Path, dict]:
    """Fit the gate of `options.weights` and write the calibrated weights to `options.out`;
    returns the path and the held-out report."""
    from rawback.device import resolve_device
    from rawback.io.files import find_raw_files, no_raw_files
    from rawback.weights import load_weights, save_weights, weights_meta

    if options.samples < 20:
        raise RawbackError(f"--samples {options.samples}: calibrate needs at least 20 items")
    device = resolve_device(options.device)
    if not options.out.parent.is_dir():  # found out before the fit, not after it
        raise RawbackError(f"{options.out.parent}: the output folder does not exist")
    trained = load_weights(options.weights)
    files = find_raw_files(options.data, options.include, options.exclude)
    if not files:
        raise no_raw_files(options.data, options.include, "to calibrate on")
    folders, skipped = build_cache(
        files, options.cache_dir or default_cache_dir(), lambda i, n, name: progress and progress(i, n, name)
    )
    if not folders:
        raise RawbackError(f"{options.data}: no RAW file could be decoded")
    torch.manual_seed(options.seed)  # the fresh gate's initial weights
    model = RawbackModel(dataclasses.replace(trained.config, residual_gate=True))
    state = {k: v for k, v in trained.state_dict().items() if not k.startswith("gate.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("gate.") for k in missing):
        raise RawbackError(f"{options.weights}: weights do not fit this version of rawback's model")
    model = model.to(device).eval().requires_grad_(False)
    thumb = model.config.global_head.thumb_size
    pairs = TrainingPairs(
        folders, PairSettings(patch=options.patch, thumb=thumb, prior_jitter=0.0), seed=options.seed
    )
    samples = collect_samples(model, pairs, options.samples, options.batch, progress)
    order = torch.randperm(options.samples, generator=torch.Generator().manual_seed(options.seed))
    held = max(1, int(options.samples * HELD_OUT))
    fit_part, held_part = samples.subset(order[held:]), samples.subset(order[:held])
    # The gate is fitted and scored on the CPU, where the samples are; Module.to moves a module in
    # place, so it goes back to the model's device only after the report.
    gate = model.gate.to("cpu").requires_grad_(True)
    fit_gate(gate, fit_part, options.steps, options.seed, progress)
    gate.requires_grad_(False)
    report = {"held_out": gate_report(gate, held_part), "fitted_on": gate_report(gate, fit_part)}
    model.gate = gate.to(device)
    meta = dict(weights_meta(options.weights))
    meta["calibration"] = {
        "files": len(folders),
        "skipped_files": len(skipped),
        "include": list(options.include),
        "exclude": list(options.exclude),
        "samples": options.samples,
        "patch": options.patch,
        "steps": options.steps,
        "seed": options.seed,
        **report,
    }
    save_weights(model, options.out, meta=meta)
    return options.out, report

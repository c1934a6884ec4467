"""The training loop: AdamW with warm-up and cosine decay, gradient clipping, EMA weights, bf16
autocast on GPU, checkpoints (every N steps and on Ctrl-C) that resume exactly, validation against
the analytic baseline, a JSONL log, and DistributedDataParallel under `torchrun`.

Progress leaves through a callback (dicts); only the CLI draws.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from rawback.device import autocast, resolve_device, uses_bf16
from rawback.errors import OutputError, RawbackError, UsageError
from rawback.features import profile_camera
from rawback.isp.scene_raw import SceneRawSettings, shot_at_iso
from rawback.train.checkpoint import (
    CHECKPOINT,
    LOG,
    changed_settings,
    check_run_folder,
    check_same_files,
    describe_changes,
    read_checkpoint,
    relative_paths,
    write_checkpoint,
    write_train_config,
)
from rawback.train.config import TrainConfig
from rawback.train.data import PairSettings, TrainingPairs, build_cache, default_cache_dir, load_cached
from rawback.train.init import resumed_config
from rawback.train.kinds import ModelKind, get_kind
from rawback.train.scenes import ScenePairs, SceneSettings
from rawback.train.validation import prepare_validation

Progress = Callable[[dict], None]


@dataclass(frozen=True)
class TrainOptions:
    data: Path | None  # folder of RAW files; None: scenes only (config.scene_fraction 1)
    out: Path  # run folder (rawback.train.checkpoint)
    config: TrainConfig
    resume: bool = False
    cache_dir: Path | None = None  # decoded RAW cache; default ~/.cache/rawback/train
    device: str = "auto"


def split_files(data: Path, config: TrainConfig) -> tuple[list[Path], list[Path]]:
    """(training, validation) RAW files under `data`, by the config's glob patterns."""
    from rawback.io.files import find_raw_files, matches_glob

    files = find_raw_files(data, exclude=config.exclude)
    for pattern in config.validation:  # a typo would silently train without validation
        if not any(matches_glob(f.relative_to(data), (pattern,)) for f in files):
            raise RawbackError(f"--validation {pattern}: matches no RAW file under {data}")
    validation = [f for f in files if matches_glob(f.relative_to(data), config.validation)]
    training = [f for f in files if f not in validation]
    if not training:
        raise RawbackError(f"{data}: no RAW files left to train on")
    return training, validation


class StepSampler(torch.utils.data.Sampler):
    """Dataset indices for steps start..total: item indices depend only on (step, rank, k), so a
    resumed run, or a run on more processes, never repeats or skips data."""

    def __init__(self, start: int, total: int, batch: int, rank: int = 0, world: int = 1) -> None:
        self.start, self.total, self.batch, self.rank, self.world = start, total, batch, rank, world

    def __iter__(self):
        for step in range(self.start, self.total):
            base = (step * self.world + self.rank) * self.batch
            yield from range(base, base + self.batch)

    def __len__(self) -> int:
        return max(0, self.total - self.start) * self.batch


class KindItems(torch.utils.data.Dataset):
    """The data engine's items as a kind makes them from its draws (ModelKind.item)."""

    def __init__(self, pairs: TrainingPairs, kind: ModelKind) -> None:
        self.pairs, self.item = pairs, kind.item

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return self.item(self.pairs, index)


def learning_rate(step: int, config: TrainConfig) -> float:
    if step < config.warmup:
        return config.lr * (step + 1) / config.warmup
    progress = (step - config.warmup) / max(1, config.steps - config.warmup)
    return config.lr_final + 0.5 * (config.lr - config.lr_final) * (
        1 + math.cos(math.pi * min(1.0, progress))
    )


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters(), strict=False):
        e.lerp_(p.detach(), 1.0 - decay)


def _dist() -> tuple[int, int, int]:
    """(rank, local rank, world size) under torchrun, else (0, 0, 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0")), world


# ---------------------------------------------------------------- the loop


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM while the block runs, then deliver them to the handlers that were
    there. An interrupt between the optimiser step and the step count would save a checkpoint
    whose weights are one step ahead of its count, which then does not resume exactly."""
    if threading.current_thread() is not threading.main_thread():  # only it can set handlers
        yield
        return
    received: list[int] = []
    held = (signal.SIGINT, signal.SIGTERM)
    previous = {
        signum: signal.signal(signum, lambda signum, frame: received.append(signum)) for signum in held
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(received):
            signal.raise_signal(signum)


def scene_photos(config: TrainConfig, emit: Progress) -> list[Path]:
    """The synthetic scenes' photographs when the config names a folder and gives them a share
    (none otherwise); read before any RAW is decoded, so a bad folder stops the run at once."""
    from rawback.train.scenes import check_scenes, find_scenes

    if not config.scenes or config.scene_fraction <= 0:
        return []
    paths, errors = check_scenes(find_scenes(Path(config.scenes)), config.patch + 4)
    for message in errors:
        emit({"event": "skipped", "message": message})
    if not paths:
        raise UsageError(f"--scenes {config.scenes}: no photograph in it is large enough for a patch")
    return paths


def train(options: TrainOptions, progress: Progress | None = None) -> Path:
    """Train (or resume) a model; returns the path of the EMA weights (fp16)."""
    config = options.config
    rank, local_rank, world = _dist()
    distributed = world > 1
    device = resolve_device(options.device, local_rank=local_rank)
    if distributed:
        backend = "nccl" if device.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend)
        if device.type == "cuda":
            torch.cuda.set_device(device)
    out = options.out
    checkpoint_path = out / CHECKPOINT
    # A resumed run is read and checked before any decoding: it must continue on the same files.
    state = read_checkpoint(checkpoint_path) if options.resume else None
    check_run_folder(out)
    emit = progress if (progress and rank == 0) else (lambda event: None)

    config.check_data(options.data)
    scenes_only = options.data is None
    training, validation = ([], []) if scenes_only else split_files(options.data, config)
    scenes = scene_photos(config, emit)
    if scenes_only:
        emit({"event": "note", "message": "scenes only: no RAW files, so no validation on real files"})
    files = {
        "training": relative_paths(training, options.data) if training else [],
        "validation": relative_paths(validation, options.data) if validation else [],
    }
    changed: dict[str, list] = {}
    if state is not None:
        config = resumed_config(config, state["config"])
        check_same_files(checkpoint_path, state.get("files"), files)
        changed = changed_settings(state["config"], json.loads(config.to_json()))
        if changed:
            emit({"event": "note", "message": f"resuming with changed settings: {describe_changes(changed)}"})
    cache_dir = options.cache_dir or default_cache_dir()
    # Rank 0 decodes; the others wait, then find every file cached.
    if rank == 0:
        train_folders, errors = build_cache(
            training,
            cache_dir,
            lambda i, n, name: emit({"event": "cache", "index": i, "total": n, "file": name}),
        )
        val_folders, val_errors = build_cache(validation, cache_dir)
    if distributed:
        torch.distributed.barrier()
    if rank != 0:
        train_folders, errors = build_cache(training, cache_dir)
        val_folders, val_errors = build_cache(validation, cache_dir)
    for message in errors + val_errors:
        emit({"event": "skipped", "message": message})
    if not train_folders and not scenes_only:
        raise RawbackError("no training file could be decoded")
    try:
        out.mkdir(parents=True, exist_ok=True)  # after the checks and the cache: no empty run left
    except OSError as exc:
        raise OutputError(out, f"cannot create the run folder ({exc.strerror or exc})") from exc

    torch.manual_seed(config.seed + rank)
    # A model trained on the synthetic scenes has seen hundreds of library cameras and reads the
    # camera from its matrix: it knows every camera (an empty list). One trained on RAW files alone
    # knows the cameras of those files only (ModelConfig.known_cameras).
    known = (
        [] if scenes else sorted({profile_camera(load_cached(folder).profile) for folder in train_folders})
    )
    kind = get_kind(config.kind)
    if state is not None and "model_config" in state:  # the run's own architecture (a fine-tuned one)
        model = kind.rebuild(state["model_config"])
    else:
        model = kind.build(config, tuple(known))
        if config.init:
            emit({"event": "note", "message": f"starting from the weights of {config.init}"})
    model = model.to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    step_module = kind.loss(model, config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    start = 0
    if state is not None:
        try:
            model.load_state_dict(state["model"])
            ema.load_state_dict(state["ema"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError) as exc:
            raise RawbackError(f"{checkpoint_path}: made with another model (--set model=...?)") from exc
        start = state["step"]
        if start >= config.steps:
            emit({"event": "note", "message": f"the run is already at step {start}: nothing to do "
                  f"(--set steps=N above {start} continues it)"})  # fmt: skip
    write_train_config(out, config)
    wrapped: nn.Module = step_module
    if distributed:
        wrapped = nn.parallel.DistributedDataParallel(
            step_module, device_ids=[device.index] if device.type == "cuda" else None
        )

    thumb, tone_knots = kind.head_inputs(model) if kind.head_inputs else (PairSettings.thumb, 0)
    pair_settings = PairSettings(
        patch=config.patch,
        prior_jitter=config.prior_jitter,
        thumb=thumb,
        tone_knots=tone_knots,
        scene_crops=config.scene_crops,
        simulator=config.simulator_settings(),
    )
    shot = tuple(shot_at_iso(iso) for iso in config.scene_iso)
    scene_settings = SceneSettings(
        raw=SceneRawSettings(shot_range=shot),
        condition_stops=tuple(config.scene_exposure_stops),
        libraw_share=config.scene_libraw,
    )
    scene_source = None
    if scenes:
        scene_source = ScenePairs(scenes, pair_settings, seed=config.seed, scene=scene_settings)
    dataset = TrainingPairs(
        train_folders,
        pair_settings,
        seed=config.seed,
        scenes=scene_source,
        scene_fraction=config.scene_fraction,
    )
    loader = torch.utils.data.DataLoader(
        dataset if kind.item is None else KindItems(dataset, kind),
        batch_size=config.batch_size,
        sampler=StepSampler(start, config.steps, config.batch_size, rank, world),
        num_workers=config.workers,
        # rawpy/LibRaw use OpenMP, which deadlocks in forked children: spawn (rawpy's README).
        multiprocessing_context="spawn" if config.workers > 0 else None,
        persistent_workers=False,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if config.workers > 0 else None,
    )
    validating = rank == 0 and val_folders and kind.validate is not None
    val_images = prepare_validation(val_folders, config.val_crop) if validating else []
    use_bf16 = uses_bf16(config.precision, device, training=True)

    def save_checkpoint(step: int) -> None:
        if rank != 0:
            return
        write_checkpoint(
            checkpoint_path, step=step, model=model, model_config=kind.config_of(model), ema=ema,
            optimizer=optimizer, device=device,
            config=config, files=files,
        )  # fmt: skip
        kind.save(ema, out / "model.pt", {"step": step, "train_config": json.loads(config.to_json())})

    log = (out / LOG).open("a") if rank == 0 else None
    if log and state is not None:  # TRAIN_CONFIG holds the latest settings; the log keeps the history
        record = {"event": "resume", "step": start, "changed": changed, "time": time.time()}
        log.write(json.dumps(record) + "\n")
    emit({"event": "start", "step": start, "total": config.steps, "files": len(train_folders),
          "validation": len(val_images), "device": str(device), "bf16": use_bf16,
          "scenes": len(scenes), "scene_fraction": dataset.scene_fraction})  # fmt: skip
    step = start
    window_start, window_steps = time.perf_counter(), 0
    # Creating the loader's iterator draws from torch's global RNG: restore a checkpoint's RNG state
    # after it, so a resumed run continues with exactly the noise an uninterrupted run would draw.
    batches = iter(loader)
    if state is not None and not distributed:
        torch.set_rng_state(state["rng"])
        if device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], device)
    elif state is not None:
        # Only rank 0's generator is saved; giving it to every rank would make all ranks draw the
        # same noise. Each rank starts a fresh stream instead (data stays exact: indices by step).
        torch.manual_seed(config.seed + 1_000_003 * (start + 1) + rank)
    try:
        model.train()
        for batch in batches:
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(step, config)
            with autocast(device, use_bf16):
                loss, parts = wrapped(batch)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            with signals_deferred():  # the weights and the step counter change together
                optimizer.step()
                update_ema(ema, model, config.ema_decay if step >= config.warmup else 0.0)
                step += 1
            window_steps += 1
            if step % config.log_every == 0 or step == config.steps:
                # note: .item() is a CPU-GPU sync point, hence only every log_every steps
                rate = window_steps / (time.perf_counter() - window_start)
                record = {"event": "step", "step": step, "total": config.steps, "loss": float(loss.item()),
                          **{name: float(part.item()) for name, part in parts.items()},
                          "grad_norm": float(grad_norm), "lr": learning_rate(step - 1, config),
                          "steps_per_s": rate, "time": time.time()}  # fmt: skip
                if log:  # the log first: an interrupt during drawing must not lose the record
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                emit(record)
                window_start, window_steps = time.perf_counter(), 0
            if step % config.checkpoint_every == 0 or step == config.steps:
                save_checkpoint(step)
            if val_images and (step % config.validate_every == 0 or step == config.steps):
                scores = kind.validate(ema, val_images)
                record = {"event": "validation", "step": step, **scores, "time": time.time()}
                if log:
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                emit(record)
    except KeyboardInterrupt:
        save_checkpoint(step)
        emit({"event": "interrupted", "step": step})
        raise
    finally:
        if log:
            log.close()
        if distributed:
            torch.distributed.destroy_process_group()
    if step == start:
        save_checkpoint(step)
    return out / "model.pt"

"""Fine-tuning (`rawback train --init WEIGHTS`): a run that starts its model, and the model's EMA
copy, from a weights file instead of random initialisation. The architecture is the file's own; the
run's training config records the file's path and SHA-256, so a model card can name what it started
from and a resume needs neither the flag nor the file (the checkpoint holds the model's config)."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from rawback.errors import RawbackError, UsageError
from rawback.model.config import PRESETS
from rawback.model.denoiser import RawbackModel
from rawback.train.config import TrainConfig

SHIPPED = "shipped"  # `--init shipped`: the bundled model, as `convert` uses it by default


def init_weights_path(init: str | Path) -> Path:
    """The weights file `--init` names: `shipped` (or the shipped file's own name, where no such
    file is in the working folder) is the bundled model."""
    from rawback.weights import BUNDLED, WEIGHTS_NAME

    text = str(init)
    if text == SHIPPED or (text == WEIGHTS_NAME and not Path(text).exists()):
        return BUNDLED
    return Path(init)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def with_init(settings: TrainConfig, *, model_named: bool) -> TrainConfig:
    """The settings of a run that starts from `settings.init`, checked before any decoding: the
    file loads (one line otherwise, from rawback.weights), a model preset the user named agrees with
    the file's architecture, and a SHA-256 already recorded (a run's train_config.json given as
    --config) still matches. `model` becomes the file's preset and the path and digest are recorded."""
    from rawback.weights import load_weights

    path = init_weights_path(settings.init)
    name = load_weights(path).config.name
    if model_named and settings.model != name:
        raise UsageError(
            f"--init {settings.init} holds a {name!r} model, so model={settings.model!r} contradicts it "
            "(a fine-tuned model keeps its weights' architecture; drop --set model)"
        )
    digest = file_sha256(path)
    if settings.init_sha256 and settings.init_sha256 != digest:
        raise RawbackError(f"{path}: not the weights this config started from (its SHA-256 differs)")
    model = name if name in PRESETS else settings.model  # a custom architecture: the file says it all
    return dataclasses.replace(settings, init=str(path), init_sha256=digest, model=model)


def initial_model(config: TrainConfig, known_cameras: tuple[str, ...]) -> RawbackModel:
    """The model a fine-tuning run starts from: the init weights (in fp32), knowing the cameras they
    knew and the run's training cameras (none listed: every camera, as before). A residual gate is
    dropped: it was fitted to the old residual (`rawback calibrate` fits one to the new model)."""
    from rawback.weights import load_weights

    path = Path(config.init)
    if config.init_sha256 and file_sha256(path) != config.init_sha256:
        raise RawbackError(f"{path}: changed since the run was configured (its SHA-256 differs)")
    start = load_weights(path)
    known = start.config.known_cameras
    if known:
        known = tuple(sorted(set(known) | set(known_cameras)))
    model = RawbackModel(dataclasses.replace(start.config, known_cameras=known, residual_gate=False))
    model.load_state_dict({k: v for k, v in start.state_dict().items() if not k.startswith("gate.")})
    return model


def resumed_config(config: TrainConfig, saved: dict) -> TrainConfig:
    """A resume is given without --init: it keeps the init the run started from (and its model
    preset), so they are not reported as changed settings."""
    if config.init or not saved.get("init"):
        return config
    return dataclasses.replace(
        config, init=saved["init"], init_sha256=saved.get("init_sha256", ""), model=saved["model"]
    )

"""What `rawback train` can train, by the config's `kind` (rawback.choices.ModelKind).

The loop (rawback.train.loop) is the same for every kind: the data engine, AdamW with warm-up and
cosine decay, gradient clipping, EMA weights, checkpoints that resume exactly, the JSONL log. A kind
says only what is particular to its model: how it is built (and rebuilt on resume), its loss on a
batch, how its shipped weights are written, and optionally what a training item holds and how it is
validated. Kinds are imported by name when used, so that `rawback train --help` imports none.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rawback.choices import ModelKind as KindName

if TYPE_CHECKING:
    import torch
    from torch import nn

    from rawback.train.config import TrainConfig
    from rawback.train.data import TrainingPairs


@dataclass(frozen=True)
class ModelKind:
    name: str
    # A new model for the config, given the cameras of the training RAW files (empty when synthetic
    # scenes show it every library camera).
    build: Callable[[TrainConfig, tuple[str, ...]], nn.Module]
    rebuild: Callable[[dict], nn.Module]  # from the checkpoint's `model_config` (a resume)
    config_of: Callable[[nn.Module], dict]  # the JSON-able model config the checkpoint keeps
    # A module whose forward(batch) gives (loss, {part name: detached scalar}); a module so that
    # DistributedDataParallel can wrap it. Part names go into the log as they are ("loss_...").
    loss: Callable[[nn.Module, TrainConfig], nn.Module]
    save: Callable[[nn.Module, Path, dict], None]  # the shipped (fp16) weights from the EMA copy
    # Training item `index` of the data engine; None: the engine's own item (TrainingPairs[index]).
    # A module-level function: DataLoader workers receive it by reference.
    item: Callable[[TrainingPairs, int], dict[str, torch.Tensor]] | None = None
    # Scores of the EMA model on the validation crops (rawback.train.validation); None: not validated.
    validate: Callable[[nn.Module, list], dict[str, float]] | None = None
    # (thumbnail side, tone-curve knots) the data engine makes for the model's global head.
    head_inputs: Callable[[nn.Module], tuple[int, int]] | None = None


# Each kind lives in its own module, as "module:attribute".
KINDS: dict[str, str] = {
    KindName.DIFFUSION: "rawback.train.diffusion_kind:KIND",
    KindName.INVISP: "rawback.train.invisp_kind:KIND",
    KindName.LATENT: "rawback.train.latent_kind:KIND",
}


def get_kind(name: str) -> ModelKind:
    try:
        where = KINDS[name]
    except KeyError:
        known = ", ".join(KINDS)
        raise ValueError(f"no training for kind {name!r}; available: {known}") from None
    module, attribute = where.split(":")
    return getattr(importlib.import_module(module), attribute)

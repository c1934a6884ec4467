"""A training run's folder: the checkpoint that resumes it exactly, the checks that a resume
continues the same run, and the training config written beside the weights.

A run folder holds `checkpoint.pt` (model, EMA, optimiser, RNG states, the training config and
the file lists), `model.pt` and `model.json` (the EMA weights, rawback.weights), `train_config.json`
(the training config of the latest start; the model's own config is in `model.json`) and
`log.jsonl`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import nn

from rawback.errors import OutputError, RawbackError, UsageError
from rawback.train.config import TrainConfig

TRAIN_CONFIG = "train_config.json"
LOG = "log.jsonl"


CHECKPOINT = "checkpoint.pt"


def read_checkpoint(path: Path) -> dict:
    """A run's checkpoint, loaded on the CPU (the RNG states must stay CPU byte tensors;
    load_state_dict moves the rest); one line when it is missing or unreadable.

    Loaded with `weights_only=True`: a checkpoint holds only tensors, numbers, strings, lists and
    dicts, and unpickling anything else would run code chosen by whoever wrote the file (a run
    folder on a shared cluster, a downloaded run).
    """
    if not path.is_file():
        raise RawbackError(f"{path}: nothing to resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged file (EOFError, RuntimeError...) or a refused object
        # (UnpicklingError): either way nothing in it ran
        raise RawbackError(
            f"{path}: unreadable checkpoint ({type(exc).__name__}); start a new --out"
        ) from exc
    if not isinstance(state, dict) or not {"step", "model", "ema", "optimizer", "config"} <= state.keys():
        raise RawbackError(f"{path}: not a rawback training checkpoint")
    return state


def check_run_folder(out: Path) -> None:
    """Before decoding: the run folder is made only once the cache is built (a failed start
    leaves none), so find out now whether it can be."""
    if out.exists():
        if not out.is_dir():
            raise OutputError(out, "is a file, not a run folder")
        writable = os.access(out, os.W_OK | os.X_OK)
    else:
        parent = next(p for p in out.absolute().parents if p.exists())
        writable = parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)
    if not writable:
        raise OutputError(out, "the run folder cannot be written here")


def relative_paths(paths: list[Path], data: Path) -> list[str]:
    return [path.relative_to(data).as_posix() for path in paths]


def check_same_files(path: Path, saved: dict | None, files: dict[str, list[str]]) -> None:
    """--resume continues a run exactly, so on the files it started with (checkpoints older than
    this check carry no list and are not checked)."""
    if saved is None or saved == files:
        return
    for part in ("training", "validation"):
        added = sorted(set(files[part]) - set(saved.get(part, [])))
        missing = sorted(set(saved.get(part, [])) - set(files[part]))
        if added or missing:
            listed = ", ".join([*(f"+{f}" for f in added[:3]), *(f"-{f}" for f in missing[:3])])
            more = " ..." if len(added) > 3 or len(missing) > 3 else ""
            raise RawbackError(
                f"{path}: the run's {part} files differ ({listed}{more}); resume with the same --data, "
                "--validation and --exclude, or start a new --out"
            )


def changed_settings(saved: dict, current: dict) -> dict[str, list]:
    """{key: [old, new]} for every setting a resume changes; nested settings (the simulator's)
    by their own keys ("simulator.jpeg_quality")."""
    old, new = _flat(saved), _flat(current)
    return {k: [old.get(k), new.get(k)] for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)}


def _flat(settings: dict, prefix: str = "") -> dict:
    flat: dict = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def describe_changes(changed: dict[str, list]) -> str:
    return ", ".join(f"{key} {old!r} -> {new!r}" for key, (old, new) in changed.items())


def write_checkpoint(
    path: Path,
    *,
    step: int,
    model: nn.Module,
    model_config: dict,
    ema: nn.Module,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    config: TrainConfig,
    files: dict[str, list[str]],
) -> None:
    """Everything a resume needs to continue exactly, written atomically (a kill leaves the last
    complete checkpoint)."""
    checkpoint = {
        "step": step,
        "model": model.state_dict(),
        "ema": ema.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "config": json.loads(config.to_json()),
        "files": files,  # a resume must find the same training and validation files
        # the architecture, for a resume that cannot rebuild it from a preset (a fine-tuned run)
        "model_config": model_config,
    }
    tmp = path.with_suffix(".tmp")
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)


def write_train_config(out: Path, config: TrainConfig) -> None:
    """The training config of the latest start, readable without torch (the log keeps the
    history of changes across resumes)."""
    (out / TRAIN_CONFIG).write_text(config.to_json() + "\n")


def check_new_run(out: Path, *, resume: bool) -> None:
    """Before anything is decoded: a run folder that holds a checkpoint is only continued
    (--resume), never started over, which would overwrite its checkpoint and weights."""
    if (out / CHECKPOINT).exists() and not resume:
        raise UsageError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")

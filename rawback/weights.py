"""Weights files: a state dict in half precision with the model config embedded, plus the same
config as JSON beside it (so `cat model.json` says what a file is without loading torch)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from rawback.errors import RawbackError
from rawback.model.config import ModelConfig
from rawback.model.denoiser import RawbackModel

FORMAT = "rawback-weights-1"
WEIGHTS_NAME = "rawback-small.pt"


def bundled_weights() -> Path:
    """The shipped model: models/ of a source checkout (editable install), else the copy a wheel
    installs under <prefix>/share/rawback/models (pyproject's data-files)."""
    checkout = Path(__file__).resolve().parents[1] / "models" / WEIGHTS_NAME
    if checkout.is_file():
        return checkout
    return Path(sys.prefix) / "share" / "rawback" / "models" / WEIGHTS_NAME


BUNDLED = bundled_weights()


def save_weights(model: RawbackModel, path: Path, *, meta: dict | None = None) -> None:
    """Write weights (fp16: half the size, no measurable loss for inference) atomically."""
    from rawback.io.atomic import atomic_output

    state = {k: v.detach().to("cpu", torch.float16) for k, v in model.state_dict().items()}
    payload = {
        "format": FORMAT,
        "config": model.config.to_json(),
        "meta": json.dumps(meta or {}),
        "state": state,
    }
    with atomic_output(path, overwrite=True) as tmp:
        torch.save(payload, tmp)
    with atomic_output(path.with_suffix(".json"), overwrite=True) as tmp:
        Path(tmp).write_text(model.config.to_json() + "\n")


def load_weights(path: Path | str, device: str | torch.device = "cpu") -> RawbackModel:
    path = Path(path)
    if not path.is_file():
        raise RawbackError(f"{path}: model weights not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise RawbackError(f"{path}: not a rawback weights file ({type(exc).__name__})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise RawbackError(f"{path}: not a rawback weights file")
    model = RawbackModel(ModelConfig.from_dict(json.loads(payload["config"])))
    try:
        model.load_state_dict({_current_name(k): v.float() for k, v in payload["state"].items()})
    except RuntimeError as exc:  # missing or mis-shaped tensors: another model version
        raise RawbackError(f"{path}: weights do not fit this version of rawback's model") from exc
    return model.to(device).eval()


def _current_name(key: str) -> str:
    """A state-dict key as the model names it now: files written before the global head was
    renamed (the shipped model among them) call it `illuminant`."""
    legacy = "illuminant."
    return "global_head." + key[len(legacy) :] if key.startswith(legacy) else key


def weights_meta(path: Path | str) -> dict:
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    return json.loads(payload.get("meta", "{}"))

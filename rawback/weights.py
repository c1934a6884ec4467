"""Weights files: a state dict in half precision with the model config embedded, plus the same
config as JSON beside it (so `cat model.json` says what a file is without loading torch)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rawback.errors import RawbackError
from rawback.model.config import ModelConfig
from rawback.model.denoiser import RawbackModel
from rawback.weights_file import bundled_path, read_weights_payload, write_weights_file

FORMAT = "rawback-weights-1"
WEIGHTS_NAME = "rawback-small.pt"


def bundled_weights() -> Path:
    """The shipped diffusion model (rawback.weights_file.bundled_path)."""
    return bundled_path(WEIGHTS_NAME)


BUNDLED = bundled_weights()


def save_weights(model: RawbackModel, path: Path, *, meta: dict | None = None) -> None:
    """Write weights (fp16: half the size, no measurable loss for inference) atomically."""
    write_weights_file(
        path, format=FORMAT, config_json=model.config.to_json(), state=model.state_dict(), meta=meta
    )


def load_weights(path: Path | str, device: str | torch.device = "cpu") -> RawbackModel:
    """A weights file as a model on `device`. Whatever the file holds, the answer is the model or
    one RawbackError: the config is checked, and the tensors' names and shapes are compared with
    a model built on the meta device (no memory) before the real one is allocated."""
    path = Path(path)
    payload = read_weights_payload(
        path, format=FORMAT, what="model weights", wrong_format="not a rawback weights file"
    )
    config = _config(path, payload.get("config"))
    state = payload.get("state")
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise RawbackError(f"{path}: damaged weights file (no tensors where the weights should be)")
    state = {_current_name(k): v for k, v in state.items()}
    try:
        with torch.device("meta"):
            expected = {k: tuple(v.shape) for k, v in RawbackModel(config).state_dict().items()}
    except (RuntimeError, ValueError, TypeError, ZeroDivisionError) as exc:  # sizes no layer takes
        raise RawbackError(f"{path}: damaged weights file (its model config: {type(exc).__name__})") from exc
    if expected != {k: tuple(v.shape) for k, v in state.items()}:  # another model version
        raise RawbackError(f"{path}: weights do not fit this version of rawback's model")
    model = RawbackModel(config)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.to(device).eval()


# No model of rawback's comes near these; a config beyond them is damaged or hostile, and building
# it (before its tensors could be compared) would take the machine's memory or time.
MAX_CONFIG_INTEGER = 4096
MAX_CONFIG_LIST = 16


def _config(path: Path, text: object) -> ModelConfig:
    try:
        data = json.loads(text)  # type: ignore[arg-type]
        numbers = [v for v in _leaves(data) if isinstance(v, int | float)]
        if any(abs(v) > MAX_CONFIG_INTEGER for v in numbers if isinstance(v, int)):
            raise ValueError("a size beyond any model's")
        return ModelConfig.from_dict(data)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:  # JSONDecodeError is a ValueError
        raise RawbackError(f"{path}: damaged weights file (its model config: {type(exc).__name__})") from exc


def _leaves(data: object) -> list[object]:
    if isinstance(data, dict):
        return [leaf for value in data.values() for leaf in _leaves(value)]
    if isinstance(data, list):
        if len(data) > MAX_CONFIG_LIST and not all(isinstance(v, str) for v in data):
            raise ValueError("a list longer than any model's")
        return [leaf for value in data for leaf in _leaves(value)]
    return [data]


def _current_name(key: str) -> str:
    """A state-dict key as the model names it now: files written before the global head was
    renamed (the shipped model among them) call it `illuminant`."""
    legacy = "illuminant."
    return "global_head." + key[len(legacy) :] if key.startswith(legacy) else key


def weights_meta(path: Path | str) -> dict:
    payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    return json.loads(payload.get("meta", "{}"))

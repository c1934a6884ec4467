"""The latent variant's weights file (models/rawback-latent.pt): both autoencoders and the
denoiser in half precision, the LatentConfig embedded and beside it as JSON, like rawback.weights."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rawback.errors import RawbackError
from rawback.model.latent import LatentConfig, LatentModel
from rawback.weights_file import bundled_path, read_weights_payload, write_weights_file

FORMAT = "rawback-latent-1"
WEIGHTS_NAME = "rawback-latent.pt"


def bundled_latent_weights() -> Path:
    """The shipped latent model (rawback.weights_file.bundled_path)."""
    return bundled_path(WEIGHTS_NAME)


def save_latent_weights(
    model: LatentModel, path: Path, *, meta: dict | None = None, dtype: torch.dtype = torch.float16
) -> None:
    """Write the model (fp16 by default: what is shipped) atomically, and its config as JSON."""
    write_weights_file(
        path, format=FORMAT, config_json=model.config.to_json(), state=model.state_dict(), meta=meta,
        dtype=dtype,
    )  # fmt: skip


def read_latent_payload(path: Path | str) -> dict:
    return read_weights_payload(
        path,
        format=FORMAT,
        what="latent model weights",
        wrong_format="not a rawback latent weights file (--method latent needs one)",
    )


def load_latent_weights(path: Path | str, device: str | torch.device = "cpu") -> LatentModel:
    """A latent weights file as a float32 model on `device`, or one RawbackError."""
    payload = read_latent_payload(path)
    try:
        config = LatentConfig.from_dict(json.loads(payload["config"]))
        model = LatentModel(config)
        model.load_state_dict({k: v.float() for k, v in payload["state"].items()})
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise RawbackError(f"{path}: damaged latent weights file ({type(exc).__name__})") from exc
    return model.to(device).eval()


def latent_weights_meta(path: Path | str) -> dict:
    return json.loads(read_latent_payload(path).get("meta", "{}"))

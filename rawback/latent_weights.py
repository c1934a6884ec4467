"""The latent variant's weights file (models/rawback-latent.pt): both autoencoders and the
denoiser in half precision, the LatentConfig embedded and beside it as JSON, like rawback.weights."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from rawback.errors import RawbackError
from rawback.model.latent import LatentConfig, LatentModel

FORMAT = "rawback-latent-1"
WEIGHTS_NAME = "rawback-latent.pt"


def bundled_latent_weights() -> Path:
    """The shipped latent model: models/ of a source checkout, else a wheel's share/rawback/models."""
    checkout = Path(__file__).resolve().parents[1] / "models" / WEIGHTS_NAME
    if checkout.is_file():
        return checkout
    return Path(sys.prefix) / "share" / "rawback" / "models" / WEIGHTS_NAME


def save_latent_weights(
    model: LatentModel, path: Path, *, meta: dict | None = None, dtype: torch.dtype = torch.float16
) -> None:
    """Write the model (fp16 by default: what is shipped) atomically, and its config as JSON."""
    from rawback.io.atomic import atomic_output

    state = {k: v.detach().to("cpu", dtype) for k, v in model.state_dict().items()}
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


def read_latent_payload(path: Path | str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise RawbackError(f"{path}: latent model weights not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise RawbackError(f"{path}: not a rawback latent weights file ({type(exc).__name__})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise RawbackError(f"{path}: not a rawback latent weights file (--method latent needs one)")
    return payload


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

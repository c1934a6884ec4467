"""Weights files of the Invertible-ISP flow (rawback.model.invisp): its state dict in half
precision with the flow's config embedded, the config also as JSON beside it (as rawback.weights
does for the diffusion model)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from rawback.errors import RawbackError
from rawback.model.invisp import FlowConfig, InvertibleIsp

FORMAT = "rawback-invisp-1"
WEIGHTS_NAME = "rawback-invisp.pt"


def bundled_invisp() -> Path:
    """The shipped flow: models/ of a source checkout, else the copy a wheel installs."""
    checkout = Path(__file__).resolve().parents[1] / "models" / WEIGHTS_NAME
    if checkout.is_file():
        return checkout
    return Path(sys.prefix) / "share" / "rawback" / "models" / WEIGHTS_NAME


def save_flow(model: InvertibleIsp, path: Path, meta: dict | None = None) -> None:
    """Write the flow in fp16 (the inverse stays within 1e-3 of fp32's, docs/invisp.md) atomically."""
    from rawback.io.atomic import atomic_output

    state = {k: v.detach().to("cpu", torch.float16) for k, v in model.state_dict().items()}
    config = json.dumps(model.config.to_dict())
    payload = {"format": FORMAT, "config": config, "meta": json.dumps(meta or {}), "state": state}
    with atomic_output(path, overwrite=True) as tmp:
        torch.save(payload, tmp)
    with atomic_output(path.with_suffix(".json"), overwrite=True) as tmp:
        Path(tmp).write_text(config + "\n")


def load_flow(path: Path | str, device: str | torch.device = "cpu") -> InvertibleIsp:
    """A flow weights file as a model in float32 on `device`, or one RawbackError."""
    path = Path(path)
    if not path.is_file():
        raise RawbackError(f"{path}: Invertible-ISP weights not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise RawbackError(f"{path}: not a rawback weights file ({type(exc).__name__})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise RawbackError(f"{path}: not Invertible-ISP weights (made by `rawback train --set kind=invisp`)")
    try:
        config = FlowConfig.from_dict(json.loads(payload["config"]))
        model = InvertibleIsp(config)
        model.load_state_dict({k: v.float() for k, v in payload["state"].items()})
    except (TypeError, ValueError, KeyError, RuntimeError, AttributeError) as exc:
        raise RawbackError(f"{path}: damaged Invertible-ISP weights ({type(exc).__name__})") from exc
    return model.to(device).eval()

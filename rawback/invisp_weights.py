"""Weights files of the Invertible-ISP flow (rawback.model.invisp): its state dict in half
precision with the flow's config embedded, the config also as JSON beside it (as rawback.weights
does for the diffusion model)."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from rawback.errors import RawbackError
from rawback.model.invisp import FlowConfig, InvertibleIsp
from rawback.weights_file import bundled_path, read_weights_payload, write_weights_file

FORMAT = "rawback-invisp-1"
WEIGHTS_NAME = "rawback-invisp.pt"


def bundled_invisp() -> Path:
    """The shipped flow (rawback.weights_file.bundled_path)."""
    return bundled_path(WEIGHTS_NAME)


def save_flow(model: InvertibleIsp, path: Path, meta: dict | None = None) -> None:
    """Write the flow in fp16 (the inverse stays within 1e-3 of fp32's, docs/invisp.md) atomically."""
    config = json.dumps(model.config.to_dict())
    write_weights_file(path, format=FORMAT, config_json=config, state=model.state_dict(), meta=meta)


def load_flow(path: Path | str, device: str | torch.device = "cpu") -> InvertibleIsp:
    """A flow weights file as a model in float32 on `device`, or one RawbackError."""
    payload = read_weights_payload(
        path,
        format=FORMAT,
        what="Invertible-ISP weights",
        wrong_format="not Invertible-ISP weights (made by `rawback train --set kind=invisp`)",
    )
    try:
        config = FlowConfig.from_dict(json.loads(payload["config"]))
        model = InvertibleIsp(config)
        model.load_state_dict({k: v.float() for k, v in payload["state"].items()})
    except (TypeError, ValueError, KeyError, RuntimeError, AttributeError) as exc:
        raise RawbackError(f"{path}: damaged Invertible-ISP weights ({type(exc).__name__})") from exc
    return model.to(device).eval()

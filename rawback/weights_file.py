"""The one layout of every weights file rawback writes, whatever the method: a torch payload of
{"format", "config" (JSON text), "meta" (JSON text), "state" (tensors, half precision)}, written
atomically with the config as JSON beside it (so `cat model.json` says what a file is without
loading torch), and where a method's bundled file lies. Each method's own module
(rawback.weights, rawback.invisp_weights, rawback.latent_weights) says which format it reads and
how its model is rebuilt from the config."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from rawback.errors import RawbackError


def bundled_path(name: str) -> Path:
    """A shipped weights file: models/ of a source checkout (editable install), else the copy a
    wheel installs under <prefix>/share/rawback/models (pyproject's data-files)."""
    checkout = Path(__file__).resolve().parents[1] / "models" / name
    if checkout.is_file():
        return checkout
    return Path(sys.prefix) / "share" / "rawback" / "models" / name


def write_weights_file(
    path: Path,
    *,
    format: str,
    config_json: str,
    state: dict[str, torch.Tensor],
    meta: dict | None = None,
    dtype: torch.dtype = torch.float16,
) -> None:
    """Write a weights file (fp16 by default: half the size, what is shipped) and its JSON config."""
    from rawback.io.atomic import atomic_output

    payload = {
        "format": format,
        "config": config_json,
        "meta": json.dumps(meta or {}),
        "state": {k: v.detach().to("cpu", dtype) for k, v in state.items()},
    }
    with atomic_output(path, overwrite=True) as tmp:
        torch.save(payload, tmp)
    with atomic_output(path.with_suffix(".json"), overwrite=True) as tmp:
        Path(tmp).write_text(config_json + "\n")


def read_weights_payload(path: Path | str, *, format: str, what: str, wrong_format: str) -> dict:
    """The payload of a weights file of `format`, or one RawbackError: `what` names the file when
    it is missing ("model weights"), `wrong_format` says what a readable file of another kind is."""
    path = Path(path)
    if not path.is_file():
        raise RawbackError(f"{path}: {what} not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a damaged file
        raise RawbackError(f"{path}: not a rawback weights file ({type(exc).__name__})") from exc
    if not isinstance(payload, dict) or payload.get("format") != format:
        raise RawbackError(f"{path}: {wrong_format}")
    return payload

"""What an evaluation ran with, recorded in its reports: what it takes to reproduce a table or to
compare its timings with another machine's."""

from __future__ import annotations

import datetime
import hashlib
import platform
from collections.abc import Sequence
from pathlib import Path


def run_record(
    *,
    data: Path,
    include: Sequence[str],
    limit: int | None,
    device: str | None,
    weights: str | None,
    method_weights: dict[str, str] | None = None,
) -> dict[str, object]:
    """Versions, the date, the machine, the selection (`data`, `include`, `limit`) and, for the
    diffusion method, the `device` it ran on and the `weights` (None: the bundled model) by content
    (None when the file cannot be read); for the other learned methods (invisp, latent), the
    weights each ran, as `<method>_weights` and its SHA-256, likewise."""
    import numpy as np

    import rawback
    from rawback.machine import cpu_model, usable_cores

    record: dict[str, object] = {
        "rawback": rawback.__version__,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": f"{cpu_model()}, {usable_cores()} usable cores, {platform.system()} {platform.machine()}",
        "data": str(Path(data).resolve()),
        "include": list(include),
        "limit": limit,
    }
    if device is not None:
        import torch

        from rawback.weights import BUNDLED

        path = Path(weights or BUNDLED).resolve()
        record |= {
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "device": device,
            "weights": str(path),
            "weights_sha256": _sha256(path),
        }
    for method, weights_path in (method_weights or {}).items():
        path = Path(weights_path).resolve()
        record |= {f"{method}_weights": str(path), f"{method}_weights_sha256": _sha256(path)}
    return record


def _sha256(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None

"""What an evaluation ran with, recorded in its reports: what it takes to reproduce a table or to
compare its timings with another machine's."""

from __future__ import annotations

import datetime
import hashlib
import platform
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rawback.evaluate.run import EvalOptions


def run_record(options: EvalOptions, device: str | None) -> dict[str, object]:
    """Versions, the date, the machine, the selection and, for the learned method, the device it
    ran on and the weights by content (None when the file cannot be read)."""
    import numpy as np

    import rawback
    from rawback.machine import cpu_model, usable_cores

    record: dict[str, object] = {
        "rawback": rawback.__version__,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "machine": f"{cpu_model()}, {usable_cores()} usable cores, {platform.system()} {platform.machine()}",
        "data": str(Path(options.data).resolve()),
        "include": list(options.include),
        "limit": options.limit,
    }
    if device is not None:
        import torch

        from rawback.model.weights import BUNDLED

        weights = Path(options.diffusion.weights or BUNDLED).resolve()
        record |= {
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "device": device,
            "weights": str(weights),
            "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else None,
        }
    return record

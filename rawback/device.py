"""Where the network runs and in what arithmetic: `--device` and `--precision` of every command,
decided here and nowhere else."""

from __future__ import annotations

import torch

from rawback.choices import DEVICE_HELP, DEVICE_PATTERN, Precision
from rawback.errors import RawbackError, UsageError


def resolve_device(name: str, *, local_rank: int = 0) -> torch.device:
    """`--device` of every command: auto (this process's CUDA GPU, `local_rank` under torchrun,
    else the CPU), cpu, cuda, cuda:N or mps; one line when it is malformed or not present."""
    if not DEVICE_PATTERN.fullmatch(name):
        raise UsageError(f"--device must be {DEVICE_HELP}, not {name!r}")
    if name == "auto":
        return torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RawbackError(f"--device {name}: no CUDA GPU is available to this process")
        # The index as written: torch.device keeps it in 8 bits, so "cuda:999" would read as -25.
        index = int(name.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise RawbackError(f"--device {name}: this process sees {torch.cuda.device_count()} CUDA GPU(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise RawbackError(f"--device {name}: no Apple GPU (MPS) is available to this process")
    return device


def uses_bf16(precision: str, device: torch.device, *, training: bool = False) -> bool:
    """Whether the network runs under bfloat16 autocast for `precision` (choices.Precision) on
    `device`: the one precision policy of inference and training.

    "auto" means bf16 on CUDA. On a CPU, inference uses it only where the vector units compute
    bf16 natively (AVX512-BF16, AMX): there a 12 MP convert ran faster at the same scores, while
    elsewhere bf16 is emulated and slower than fp32 (docs/experiments.md#speed). Training on a CPU
    stays in fp32 under "auto": its gradients were never measured in bf16 there.
    """
    if precision == Precision.FP32:
        return False
    if device.type not in ("cpu", "cuda"):
        if precision == Precision.BF16:
            raise RawbackError(f"--precision bf16: not supported on {device.type}; use fp32")
        return False
    if precision == Precision.BF16 or device.type == "cuda":
        return True
    if training:
        return False
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def autocast(device: torch.device, enabled: bool) -> torch.autocast:
    """The network's bf16 autocast region (sampler and blend arithmetic stay outside it)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)

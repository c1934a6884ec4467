"""How fast is the learned inverter, beside the analytic baseline and the hardware's limit?

    python bench/bench_diffusion.py [--repeat 2] [--width 4000 --height 3000] [--device auto]

Measures, on the machine it runs on:

1. `convert_file` (the function `rawback convert` calls) on a synthetic 12-megapixel JPEG with the
   default settings (the bundled model, default sampler and steps) and with `--method analytic`,
   median of --repeat runs after a warm-up; the issue's CPU target is < 2 minutes for 12 MP;
2. the network alone: packed megapixels per second per network evaluation through the tiled
   denoiser at the default tile size, on the CPU and, when one is present, on the GPU;
3. the hardware limit: the model's FLOPs per packed pixel (counted by torch's FlopCounterMode)
   divided by the measured peak of a large float32 matrix multiply (bf16 on GPU), i.e. the
   throughput the network would reach if every convolution ran at matmul speed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_convert import cpu_model, make_photo, usable_cores

import rawback
from rawback.convert import ConvertOptions, convert_file
from rawback.inference import model_for, resolve_device, tiled_denoiser
from rawback.methods import DiffusionSettings


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int = 2048, repeat: int = 5) -> float:
    """FLOP/s of a large square matrix multiply: a practical ceiling for dense network layers."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(repeat + 1):
        _sync(device)
        start = time.perf_counter()
        a @ b
        _sync(device)  # note: a CPU-GPU sync point, so the time covers the kernel
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def flops_per_packed_pixel(model, size: int = 128) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 4, size, size)
    cond = torch.zeros(1, 16, size, size)
    camera = torch.zeros(1, 12)
    model = model.to("cpu")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.denoiser(
            x, torch.tensor(0.5), cond, camera, torch.zeros(1, model.config.illuminant.finish_channels)
        )
    return counter.get_total_flops() / (size * size)


def network_throughput(settings: DiffusionSettings, device: torch.device, packed: int, repeat: int) -> float:
    """Packed megapixels per second per network evaluation through the tiled denoiser."""
    model = model_for(DiffusionSettings(device=str(device)))
    camera = torch.zeros(1, 12, device=device)
    finish = torch.zeros(1, model.config.illuminant.finish_channels, device=device)
    tiled = tiled_denoiser(model, camera, finish, settings)  # exactly what `convert` runs
    x = torch.randn(1, 4, packed, packed, dtype=torch.float64)
    cond = torch.randn(1, 16, packed, packed)
    sigma = torch.tensor(0.5, dtype=torch.float64)
    with torch.no_grad():
        tiled(x, sigma, cond)  # warm-up
    times = []
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        with torch.no_grad():
            tiled(x, sigma, cond)
        _sync(device)
        times.append(time.perf_counter() - start)
    return packed * packed / 1e6 / statistics.median(times)


def time_convert(photo: Path, out: Path, options: ConvertOptions, repeat: int) -> float:
    convert_file(photo, out, options)  # warm-up: model load, lazy imports
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        convert_file(photo, out, options)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--device", default="auto", help="device of the model in the convert timing")
    parser.add_argument("--skip-convert", action="store_true", help="only the network and hardware numbers")
    args = parser.parse_args()
    mp = args.width * args.height / 1e6
    settings = DiffusionSettings(device=args.device)
    device = resolve_device(args.device)
    print(f"rawback {rawback.__version__} diffusion benchmark")
    print(
        f"machine: {cpu_model()}, {usable_cores()} usable cores ({os.cpu_count()} in the machine), "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"Python {platform.python_version()}"
        + (f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU")
    )
    print(
        f"model: bundled weights, sampler {settings.sampler}, {settings.steps} step(s), "
        f"tile {settings.tile} px, overlap {settings.overlap} px, tile batch {settings.tile_batch}"
    )
    if not args.skip_convert:
        with tempfile.TemporaryDirectory(prefix="rawback-bench-") as tmp:
            photo = Path(tmp) / "bench.jpg"
            make_photo(photo, args.width, args.height)
            out = Path(tmp) / "bench.dng"
            learned = time_convert(
                photo, out, ConvertOptions(overwrite=True, diffusion=settings), args.repeat
            )
            analytic = time_convert(
                photo, out, ConvertOptions(method="analytic", overwrite=True), args.repeat
            )
        print(
            f"convert_file, synthetic {args.width}x{args.height} JPEG ({mp:.1f} MP), median of {args.repeat}:"
        )
        print(f"  diffusion (defaults, {device.type}): {learned:7.2f} s  ({learned / mp:.3f} s/MP)")
        print(f"  analytic baseline:            {analytic:7.2f} s  ({analytic / mp:.3f} s/MP)")
        print(
            f"  the model costs {learned / analytic:.0f}x the analytic inverse; CPU target < 120 s for 12 MP"
        )
    model = model_for(DiffusionSettings(device="cpu"))
    flops = flops_per_packed_pixel(model)
    print(f"network: {flops / 1e6:.3f} MFLOP per packed pixel (4 photo pixels) per evaluation")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for dev in devices:
        packed = 1024 if dev.type == "cuda" else 512
        rate = network_throughput(settings, dev, packed, args.repeat)
        dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
        peak = matmul_peak(dev, dtype)
        bound = peak / flops / 1e6
        print(
            f"  {dev.type}: {rate:8.2f} packed MP/s per evaluation ({4 * rate:.2f} photo MP/s); "
            f"matmul peak {peak / 1e12:.3f} TFLOP/s {str(dtype).removeprefix('torch.')} -> compute bound "
            f"{bound:.2f} packed MP/s; the network runs at {100 * rate / bound:.0f}% of it"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()

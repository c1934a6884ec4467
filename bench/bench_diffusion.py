"""How fast is the learned inverter, beside the analytic baseline and the hardware's limit?

    python bench/bench_diffusion.py [--repeat 2] [--width 4000 --height 3000] [--device auto]

Measures, on the machine it runs on:

1. `convert_file` (the function `rawback convert` calls) on a synthetic 12-megapixel JPEG with the
   default settings (the bundled model, default sampler and steps) and with `--method analytic`,
   median of --repeat runs after a warm-up; the issue's CPU target is < 2 minutes for 12 MP. The
   synthetic photo has no camera in its EXIF, and by default the residual of a camera the model
   was not trained on applies only where the photo is clipped, so only the tiles holding clipped
   pixels run: the first timing uses `--residual full` to measure the whole network (the cost of
   a photo from a camera the model knows), the second the defaults on this photo;
2. the network alone: packed megapixels per second per network evaluation through the tiled
   denoiser at the default tile size, on the CPU and, when one is present, on the GPU;
3. the hardware limit: the model's FLOPs per packed pixel (counted by torch's FlopCounterMode at
   the tile size in use, overlap included) divided by the measured peak of its commonest layer, a
   64-channel 3x3 convolution in the precision the network runs in (`--precision`), i.e. the
   throughput the network would reach if every layer ran as fast as that convolution.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_convert import at_least, make_photo

import rawback
from rawback.convert import ConvertOptions, convert_file
from rawback.device import resolve_device, uses_bf16
from rawback.diffusion_settings import DiffusionSettings
from rawback.errors import RawbackError
from rawback.inference import model_for, tiled_denoiser
from rawback.machine import cpu_model, usable_cores
from rawback.network import tile_network
from rawback.tiling import tile_grid


def conv_peak(device: torch.device, dtype: torch.dtype, repeat: int = 5) -> float:
    """FLOP/s (counted as a direct convolution does them) of the network's commonest layer, a 3x3
    convolution of 64 channels, channels-last, at the best of a few sizes: the practical ceiling
    for this network. A matrix multiply's peak is not: on the 2-core EPYC of models/README.md
    oneDNN ran this convolution at 0.52 "TFLOP/s" against 0.22 for a 2048x2048 float32 matmul, and
    the network itself beat that matmul "bound"."""
    best_rate = 0.0
    for size in (40, 80, 160):
        conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(device=device, dtype=dtype)
        conv = conv.to(memory_format=torch.channels_last)
        x = torch.randn(4, 64, size, size, device=device, dtype=dtype).contiguous(
            memory_format=torch.channels_last
        )
        best = float("inf")
        with torch.no_grad():
            for _ in range(repeat + 1):
                _sync(device)
                start = time.perf_counter()
                conv(x)
                _sync(device)  # note: a CPU-GPU sync point, so the time covers the kernel
                best = min(best, time.perf_counter() - start)
        best_rate = max(best_rate, 2 * 64 * 64 * 9 * 4 * size * size / best)
    return best_rate


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def flops_per_packed_pixel(model, size: int) -> float:
    """FLOPs per packed pixel of one network evaluation on a size x size packed tile (attention
    makes it grow with the tile). Counted on the math attention path: the counter does not see
    inside the fused kernel that inference uses, which does the same products."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 4, size, size)
    cond = torch.zeros(1, 16, size, size)
    camera = torch.zeros(1, 12)
    model = model.to("cpu")
    with FlopCounterMode(display=False) as counter, torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
        model.denoiser(
            x, torch.tensor(0.5), cond, camera, torch.zeros(1, model.config.global_head.finish_channels)
        )
    return counter.get_total_flops() / (size * size)


def network_throughput(settings: DiffusionSettings, device: torch.device, packed: int, repeat: int) -> float:
    """Packed megapixels per second per network evaluation through the tiled denoiser."""
    model = model_for(DiffusionSettings(device=str(device)))
    camera = torch.zeros(1, 12, device=device)
    finish = torch.zeros(1, model.config.global_head.finish_channels, device=device)
    tiled = tiled_denoiser(model, camera, finish, settings)  # exactly what `convert` runs
    state = tile_network(model, settings).state_device  # where convert keeps a photo: the GPU on CUDA
    x = torch.randn(1, 4, packed, packed, dtype=torch.float64).to(state)
    cond = torch.randn(1, 16, packed, packed).to(state)
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


def clipped_share(photo: Path) -> float:
    """Fraction of the photo's pixels with a channel at or above the clip threshold of the gate."""
    from rawback.io.image import read_image
    from rawback.model.heads import CLIP_THRESHOLD

    return float((read_image(photo).rgb >= CLIP_THRESHOLD).any(axis=2).mean())


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
    parser.add_argument("--repeat", type=at_least(1), default=2)
    parser.add_argument("--width", type=at_least(64), default=4000)
    parser.add_argument("--height", type=at_least(64), default=3000)
    parser.add_argument("--device", default="auto", help="device of the model in the convert timing")
    parser.add_argument("--skip-convert", action="store_true", help="only the network and hardware numbers")
    parser.add_argument("--tile", type=int, help="tile side in photo pixels (default: convert's)")
    parser.add_argument("--overlap", type=int, help="tile overlap in photo pixels (default: convert's)")
    parser.add_argument("--tile-batch", type=int, help="tiles per network call (default: convert's)")
    parser.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "fp32", "bf16"),
        help="network arithmetic (default: convert's)",
    )
    args = parser.parse_args()
    mp = args.width * args.height / 1e6
    tiling = {"tile": args.tile, "overlap": args.overlap, "tile_batch": args.tile_batch}
    try:  # the same checks, and the same one-line messages, as `rawback convert`
        settings = DiffusionSettings(
            device=args.device, precision=args.precision, **{k: v for k, v in tiling.items() if v is not None}
        )
        device = resolve_device(args.device)
    except (ValueError, RawbackError) as exc:
        parser.error(str(exc))
    tile, tile_batch = settings.tiling(device.type)
    print(f"rawback {rawback.__version__} diffusion benchmark")
    print(
        f"machine: {cpu_model()}, {usable_cores()} usable cores ({os.cpu_count()} in the machine), "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"Python {platform.python_version()}"
        + (f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU")
    )
    print(
        f"model: bundled weights, sampler {settings.sampler}, {settings.steps} step(s), "
        f"tile {tile} px, overlap {settings.overlap} px, "
        f"tile batch {tile_batch if tile_batch is not None else 'from the free memory'}, "
        f"{'bf16' if uses_bf16(settings.precision, device) else 'fp32'} ({device.type})"
    )
    if not args.skip_convert:
        with tempfile.TemporaryDirectory(prefix="rawback-bench-") as tmp:
            photo = Path(tmp) / "bench.jpg"
            make_photo(photo, args.width, args.height)
            out = Path(tmp) / "bench.dng"
            full = dataclasses.replace(settings, residual="full")
            learned = time_convert(photo, out, ConvertOptions(overwrite=True, diffusion=full), args.repeat)
            clipped = clipped_share(photo)
            default_options = ConvertOptions(overwrite=True, diffusion=settings)
            default = time_convert(photo, out, default_options, args.repeat)
            analytic = time_convert(
                photo, out, ConvertOptions(method="analytic", overwrite=True), args.repeat
            )
        print(
            f"convert_file, synthetic {args.width}x{args.height} JPEG ({mp:.1f} MP), median of {args.repeat}:"
        )
        label = f"diffusion (whole network, {device.type}):"
        print(f"  {label:<38} {learned:7.2f} s  ({learned / mp:.3f} s/MP)")
        label = "diffusion (defaults, unknown camera):"
        if model_for(settings).config.known_cameras:
            note = f"{clipped:.1%} of this photo's pixels are clipped: " + (
                "only the tiles holding them run" if clipped else "the network does not run, the best case"
            )
        else:  # weights trained on scenes know every camera: the gate decides, the network runs
            note = "the model knows every camera: the whole network runs"
        print(f"  {label:<38} {default:7.2f} s  ({default / mp:.3f} s/MP; {note})")
        print(f"  {'analytic baseline:':<38} {analytic:7.2f} s  ({analytic / mp:.3f} s/MP)")
        print(
            f"  the model costs {learned / analytic:.0f}x the analytic inverse; at this rate 12 MP takes "
            f"{12 * learned / mp:.1f} s (the issue's CPU target: < 120 s for 12 MP)"
        )
    model = model_for(DiffusionSettings(device="cpu"))
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for dev in devices:
        packed = 1024 if dev.type == "cuda" else 512
        dev_tile, dev_batch = settings.tiling(dev.type)
        # The balanced grid shrinks tiles below --tile to fit the image: count FLOPs at the real size.
        grid = tile_grid(packed, packed, dev_tile // 2, settings.overlap // 2)
        real_tile = grid[0][0].stop - grid[0][0].start
        flops = flops_per_packed_pixel(model, real_tile)
        # Overlapping tiles evaluate some pixels more than once: the bound counts that work too.
        evaluated = sum((rows.stop - rows.start) * (cols.stop - cols.start) for rows, cols in grid)
        work = flops * evaluated / packed**2  # FLOPs per packed pixel of the image
        rate = network_throughput(settings, dev, packed, args.repeat)
        dtype = torch.bfloat16 if uses_bf16(settings.precision, dev) else torch.float32
        peak = conv_peak(dev, dtype)
        bound = peak / work / 1e6
        print(
            f"  {dev.type}, {packed}x{packed} packed in {len(grid)} tiles of {2 * real_tile} px "
            f"(--tile {dev_tile}) "
            f"(batch {dev_batch}): {flops / 1e6:.3f} MFLOP per tile pixel, "
            f"{work / 1e6:.3f} MFLOP per image pixel with the overlap"
        )
        print(
            f"    {rate:8.3f} packed MP/s per evaluation ({4 * rate:.2f} photo MP/s); "
            f"3x3 conv peak {peak / 1e12:.3f} TFLOP/s {str(dtype).removeprefix('torch.')} -> bound "
            f"{bound:.3f} packed MP/s; the network runs at {100 * rate / bound:.0f}% of it"
        )
    sys.stdout.flush()


if __name__ == "__main__":
    main()

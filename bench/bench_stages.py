"""Where does a conversion's time go? Per stage, on the CPU or a GPU, as JSON and a table.

    python bench/bench_stages.py [--device auto] [--sizes 4000x3000,6000x4000] [--repeat 2]
        [--methods diffusion,analytic] [--batch-photos N] [--batch-size 4000x3000]
        [--compare-host-pixels] [--json stages.json] [--table stages.txt] [--profile profile.txt]

For each size and method, `convert_file` (what `rawback convert` runs) on a synthetic JPEG: one
warm-up, --repeat plain timings (the end-to-end number: median), then one instrumented run that
splits the time into stages. Then `batch.run_jobs` (what `rawback batch` runs) over a folder of
--batch-photos synthetic photos, plain (sustained MP/s) and instrumented. The stages:

    decode   reading the photo (rawback.io.image.read_image)
    head     the global head on the thumbnail (inference.estimate_global)
    seed     the per-photo noise seed, a hash of the pixels (inference.photo_seed)
    prior    the analytic inverse (inference.analytic_prior, or analytic_prior_on_device on a GPU;
             methods' unprocess_with_finish for `analytic`)
    network  the network's forward passes (hooks on model.denoiser)
    blend    the tiled denoiser minus the network: cutting tiles, host-device copies, blending
    mosaic   highlights and raw counts (convert.raw_counts: on a GPU, where the method left its
             mosaic, also the CFA placement, and the download of the counts)
    encode   lossless-JPEG tiles and the preview JPEG (rawback.io.dng)
    write    the rest of write_dng: the TIFF layout, the file, the rename
    other    the rest of the total: EXIF, maker notes, sampler arithmetic, packing...

Stages are timed by wrapping those functions by name (each also opens a torch.profiler
`record_function` range), so the product code runs unchanged; on CUDA each wrapper synchronises
the device before reading its clock, which is why the instrumented total can exceed the plain
one. A stage whose function is not called in this process (moved to a worker process, or
renamed) shows as "-". In a pipelined batch stages overlap, so their sum can exceed the wall time.

The network's FLOPs are counted once per tile shape with torch's FlopCounterMode (on the meta
device: nothing is computed) and multiplied by the tiles evaluated; the achieved FLOP/s is set
against a bound measured in the same run (at its start and its end, the better kept): the best
rate of a 64-channel 3x3 convolution, channels-last, in the dtype the network runs in (bf16 on
CUDA, else what `--precision` gives).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import functools
import importlib
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import rawback
from rawback import batch
from rawback.convert import ConvertOptions, convert_file
from rawback.device import resolve_device, uses_bf16
from rawback.diffusion_settings import DiffusionSettings
from rawback.inference import as_run, model_for
from rawback.machine import cpu_model, usable_cores

# (module, attribute, stage): the functions wrapped; "Class.method" patches the class.
WRAPPED = (
    ("rawback.io.image", "read_image", "decode"),
    ("rawback.inference", "estimate_global", "head"),
    ("rawback.inference", "photo_seed", "seed"),
    ("rawback.inference", "analytic_prior", "prior"),
    ("rawback.inference", "analytic_prior_on_device", "prior"),
    ("rawback.methods", "unprocess_with_finish", "prior"),
    ("rawback.tiling", "TiledDenoiser.__call__", "tiled"),
    ("rawback.convert", "raw_counts", "mosaic"),
    ("rawback.io.dng", "write_dng", "write_dng"),
    ("rawback.io.dng", "_ljpeg_tiles", "encode"),
    ("rawback.io.dng", "_preview_ifd", "encode"),
)
STAGES = ("decode", "head", "seed", "prior", "network", "blend", "mosaic", "encode", "write", "other")
TOP_LEVEL = ("decode", "head", "seed", "prior", "tiled", "mosaic", "write_dng")  # not nested in each other


class Stages:
    """Seconds per stage while `installed`, and the network's tile evaluations."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self.tiles: dict[tuple[int, int], int] = defaultdict(int)  # (h, w) -> tiles evaluated
        self.calls = 0  # network calls (batches of tiles)
        self._lock = threading.Lock()

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # note: a CPU-GPU sync point, for the timers only

    def _wrap(self, stage: str, func: Callable) -> Callable:
        def timed(*args, **kwargs):
            with torch.profiler.record_function(f"rawback:{stage}"):
                self._sync()
                start = time.perf_counter()
                try:
                    return func(*args, **kwargs)
                finally:
                    self._sync()
                    with self._lock:
                        self.seconds[stage] += time.perf_counter() - start

        return timed

    @contextlib.contextmanager
    def installed(self, model: torch.nn.Module | None) -> Iterator[Stages]:
        undo = []
        for module_name, attribute, stage in WRAPPED:
            owner = importlib.import_module(module_name)
            *path, name = attribute.split(".")
            for part in path:
                owner = getattr(owner, part)
            if hasattr(owner, name):
                original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
                setattr(owner, name, self._wrap(stage, original))
                undo.append((owner, name, original))
        hooks = []
        if model is not None:
            starts: list[float] = []

            def before(module, args) -> None:
                self._sync()
                starts.append(time.perf_counter())

            def after(module, args, output) -> None:
                self._sync()
                with self._lock:
                    self.seconds["network"] += time.perf_counter() - starts.pop()
                    x = args[0]
                    self.tiles[(x.shape[2], x.shape[3])] += x.shape[0]
                    self.calls += 1

            hooks = [
                model.denoiser.register_forward_pre_hook(before),
                model.denoiser.register_forward_hook(after),
            ]
        try:
            yield self
        finally:
            for owner, name, original in reversed(undo):
                setattr(owner, name, original)
            for hook in hooks:
                hook.remove()

    def exclusive(self, total: float) -> dict[str, float | None]:
        """The stages of the table: nested ones taken out of their parents, the rest as other."""
        seen = self.seconds
        out: dict[str, float | None] = {
            s: seen.get(s) for s in ("decode", "head", "seed", "prior", "network", "mosaic", "encode")
        }
        out["blend"] = seen["tiled"] - seen.get("network", 0.0) if "tiled" in seen else None
        out["write"] = seen["write_dng"] - seen.get("encode", 0.0) if "write_dng" in seen else None
        out["other"] = total - sum(seen.get(s, 0.0) for s in TOP_LEVEL)
        return {s: out[s] for s in STAGES}


@contextlib.contextmanager
def per_pixel_work_on_host(on_host: bool) -> Iterator[None]:
    """With `on_host`, the learned method's per-pixel steps run in NumPy on the host even on a GPU
    (rawback.inference.keeps_on_device says no): the path before they moved to the device."""
    import rawback.inference as inference

    keeps = inference.keeps_on_device
    if on_host:
        inference.keeps_on_device = lambda device: False
    try:
        yield
    finally:
        inference.keeps_on_device = keeps


# --- the network's work and the hardware's bound ---------------------------------------------------


@functools.lru_cache(maxsize=16)
@torch.no_grad()
def flops_per_tile(model, h: int, w: int) -> tuple[float, float]:
    """(all, convolutions) FLOPs of one network evaluation of an h x w packed tile, counted on the
    meta device on the math attention path (the counter does not see inside fused kernels, which
    do the same products)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    meta = copy.deepcopy(model).to("meta")
    finish = model.config.global_head.finish_channels
    shapes = [(1, 4, h, w), (), (1, 16, h, w), (1, 12), (1, finish)]
    with FlopCounterMode(display=False) as counter, sdpa_kernel(SDPBackend.MATH):
        meta.denoiser(*(torch.full(shape, 0.5, device="meta") for shape in shapes))
    by_op = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    return float(counter.get_total_flops()), float(by_op.get("aten.convolution", 0))


@torch.no_grad()
def conv_bound(device: torch.device, dtype: torch.dtype) -> dict:
    """The best FLOP/s of a 64-channel 3x3 convolution, channels-last, over a few shapes: the
    network's commonest layer at its best, the ceiling the network is measured against."""
    shapes = [(8, 256), (16, 256), (32, 128)] if device.type == "cuda" else [(1, 160), (1, 320), (4, 160)]
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).to(
        device=device, dtype=dtype, memory_format=torch.channels_last
    )
    best = {"flop_per_s": 0.0}
    for n, side in shapes:
        x = torch.randn(n, 64, side, side, device=device, dtype=dtype).contiguous(
            memory_format=torch.channels_last
        )
        flops = 2 * 64 * 64 * 9 * n * side * side
        iterations = 20 if device.type == "cuda" else 3
        conv(x)  # warm-up (cuDNN picks its algorithm)
        times = []
        for _ in range(5):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            for _ in range(iterations):
                conv(x)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append((time.perf_counter() - start) / iterations)
        rate = flops / min(times)
        if rate > best["flop_per_s"]:
            best = {
                "flop_per_s": rate,
                "shape": [n, 64, side, side],
                "dtype": str(dtype).removeprefix("torch."),
            }
    return best


def network_record(stages: Stages, model, bound: float) -> dict | None:
    if not stages.calls:
        return None
    flops = conv = 0.0
    for (h, w), count in stages.tiles.items():
        every, convs = flops_per_tile(model, h, w)
        flops, conv = flops + count * every, conv + count * convs
    seconds = stages.seconds["network"]
    return {
        "calls": stages.calls,
        "tiles": dict(sorted((f"{h}x{w}", n) for (h, w), n in stages.tiles.items())),
        "tile_pixels": sum(h * w * n for (h, w), n in stages.tiles.items()),
        "flops": flops,
        "conv_flops": conv,
        "seconds": seconds,
        "flop_per_s": flops / seconds,
        "fraction_of_bound": flops / seconds / bound,
    }


# --- photos and runs -----------------------------------------------------------------------------


def synthetic_photo(path: Path, width: int, height: int, seed: int = 0) -> Path:
    """A photo-like JPEG (gradients, hard edges, sensor-like noise; quality 92), different per seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = rng.uniform(0, 6.28, 3).astype(np.float32)
    rgb = np.stack(
        [
            128 + 100 * np.sin(x / width * 6.0 + phase[0]),
            128 + 100 * np.cos(y / height * 5.0 + phase[1]),
            128 + 60 * np.sin((x + y) / (width + height) * 9.0 + phase[2]),
        ],
        axis=-1,
    )
    rgb[(x // 250 + y // 250) % 2 == 0] *= 0.7
    rgb += rng.normal(0.0, 4.0, rgb.shape).astype(np.float32)
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path, quality=92)
    return path


def run_batch(jobs: list[batch.Job], options: ConvertOptions, in_flight: int | None) -> batch.Summary:
    """What `rawback batch` runs, without the CLI's drawing (`in_flight` None: its default)."""
    return batch.run_jobs(jobs, options, in_flight=in_flight)


def measure(
    kind: str,
    label: str,
    megapixels: float,
    photos: int,
    plain: Callable[[], None],
    repeat: int,
    model,
    stages_device: torch.device,
    bound: float,
    split: Callable[[], None] | None = None,
) -> dict:
    """One row: `plain()` timed `repeat` times (median), then `split()` (default `plain()`) once
    instrumented. A batch's split runs one photo at a time: with photos in flight their stages
    overlap, and per-thread stage times would add up to more than the wall time."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        plain()
        times.append(time.perf_counter() - start)
    stages = Stages(stages_device)
    with stages.installed(model):
        start = time.perf_counter()
        (split or plain)()
        instrumented = time.perf_counter() - start
    total = statistics.median(times)
    return {
        "kind": kind,
        "label": label,
        "photos": photos,
        "megapixels": megapixels,
        "seconds": total,
        "seconds_each": times,
        "mp_per_s": megapixels / total,
        "instrumented_seconds": instrumented,
        "stages": stages.exclusive(instrumented),
        "network": network_record(stages, model, bound) if model else None,
    }


def size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height)


def machine(device: torch.device) -> dict:
    info = {
        "cpu": cpu_model(),
        "usable_cores": usable_cores(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "rawback": rawback.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=props.name,
            gpu_memory_gib=round(props.total_memory / 2**30, 1),
            gpu_capability=f"{props.major}.{props.minor}",
            cuda=torch.version.cuda,
        )
    return info


def table(report: dict) -> str:
    m = report["machine"]
    gpu = f", GPU {m['gpu']} ({m['gpu_memory_gib']} GiB, CUDA {m['cuda']})" if "gpu" in m else ", no GPU used"
    s, bound = report["settings"], report["bound"]
    lines = [
        f"rawback {m['rawback']} stage benchmark on {m['device']}: {m['cpu']}, {m['usable_cores']} usable of "
        f"{m['cpu_count']} cores (load {m['load_average'][0]:.1f}), torch {m['torch']} with "
        f"{m['torch_threads']} threads{gpu}",
        f"model: {s['sampler']}, {s['steps']} step(s), tile {s['tile']} px, overlap {s['overlap']} px, "
        f"tile batch {s['tile_batch']}, {s['precision']}; conv bound: 64-ch 3x3 conv "
        f"{bound['dtype']} {bound['flop_per_s'] / 1e12:.3f} TFLOP/s (shape {bound['shape']})",
        "total s and MP/s: median of plain runs; the stages split one instrumented run (instr s)",
        f"{'run':<34}{'MP':>6}{'total s':>9}{'MP/s':>7}{'instr s':>9} |"
        + "".join(f"{name:>8}" for name in STAGES)
        + f" |{'TFLOP/s':>8}{'bound':>7}",
    ]
    for row in report["runs"]:
        cells = "".join(f"{v:8.3f}" if v is not None else f"{'-':>8}" for v in row["stages"].values())
        net = row["network"]
        tail = (
            f"{net['flop_per_s'] / 1e12:8.3f}{net['fraction_of_bound']:7.1%}" if net else f"{'-':>8}{'-':>7}"
        )
        lines.append(
            f"{row['label']:<34}{row['megapixels']:6.1f}{row['seconds']:9.2f}{row['mp_per_s']:7.2f}"
            f"{row['instrumented_seconds']:9.2f} |"
            f"{cells} |{tail}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="the model's device: auto, cpu, cuda, cuda:N")
    parser.add_argument("--sizes", default="4000x3000", help="photo sizes for convert, comma-separated")
    parser.add_argument("--methods", default="diffusion,analytic", help="methods, comma-separated")
    parser.add_argument("--repeat", type=int, default=2, help="plain timings per row (median)")
    parser.add_argument(
        "--batch-photos", type=int, help="photos in the batch (default 8 on CUDA, 3 else; 0: none)"
    )
    parser.add_argument("--batch-size", default="4000x3000", help="size of the batch's photos")
    parser.add_argument("--tile", type=int, help="tile side in photo pixels (default: convert's)")
    parser.add_argument("--tile-batch", type=int, help="tiles per network call (default: convert's)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    parser.add_argument(
        "--in-flight", type=int, help="photos the batch converts at once (default: `rawback batch`'s)"
    )
    parser.add_argument(
        "--compare-host-pixels",
        action="store_true",
        help="also convert with the per-pixel steps around the network (prior, highlights, counts) in "
        "NumPy on the host, as before rawback.isp.on_device: a 'host-pixels' row per size",
    )
    parser.add_argument("--json", type=Path, help="write the report here")
    parser.add_argument("--table", type=Path, help="write the table here too")
    parser.add_argument("--profile", type=Path, help="write torch.profiler's op table of one convert here")
    args = parser.parse_args()
    device = resolve_device(args.device)
    tiling = {k: v for k, v in {"tile": args.tile, "tile_batch": args.tile_batch}.items() if v is not None}
    settings = DiffusionSettings(device=str(device), precision=args.precision, **tiling)
    methods = args.methods.split(",")
    model = model_for(settings) if "diffusion" in methods else None
    dtype = torch.bfloat16 if uses_bf16(settings.precision, device) else torch.get_default_dtype()
    bound = conv_bound(device, dtype)
    ran = as_run(settings)
    report = {
        "machine": machine(device),
        "settings": {
            k: getattr(ran, k) for k in ("sampler", "steps", "tile", "overlap", "tile_batch", "precision")
        },
        "bound": bound,
        "runs": [],
    }
    photos = args.batch_photos if args.batch_photos is not None else (8 if device.type == "cuda" else 3)
    with tempfile.TemporaryDirectory(prefix="rawback-stages-") as tmp:
        folder = Path(tmp)
        for text in args.sizes.split(","):
            width, height = size(text)
            photo = synthetic_photo(folder / f"{text}.jpg", width, height)
            on_host_too = ["diffusion"] if args.compare_host_pixels and "diffusion" in methods else []
            for method, on_host in [(m, False) for m in methods] + [(m, True) for m in on_host_too]:
                options = ConvertOptions(method=method, overwrite=True, diffusion=settings)
                out = folder / f"{text}-{method}.dng"
                with per_pixel_work_on_host(on_host):
                    convert_file(photo, out, options)  # warm-up: lazy imports, the model, cuDNN's choice
                    row = measure(
                        "convert",
                        f"convert {method} {text}" + (" host-pixels" if on_host else ""),
                        width * height / 1e6,
                        1,
                        lambda photo=photo, out=out, options=options: convert_file(photo, out, options),
                        args.repeat,
                        model if method == "diffusion" else None,
                        device,
                        bound["flop_per_s"],
                    )
                report["runs"].append(row)
                print(table({**report, "runs": [row]}).splitlines()[-1], flush=True)
        if photos:
            width, height = size(args.batch_size)
            (folder / "batch").mkdir()
            for index in range(photos):
                synthetic_photo(folder / "batch" / f"{index:03d}.jpg", width, height, seed=index + 1)
            for method in methods:
                options = ConvertOptions(method=method, overwrite=True, diffusion=settings)
                jobs = batch.plan_folder(folder / "batch", folder / f"out-{method}")
                row = measure(
                    "batch",
                    f"batch {method} {photos}x{args.batch_size}",
                    photos * width * height / 1e6,
                    photos,
                    lambda jobs=jobs, options=options: run_batch(jobs, options, args.in_flight),
                    1,
                    model if method == "diffusion" else None,
                    device,
                    bound["flop_per_s"],
                    split=lambda jobs=jobs, options=options: run_batch(jobs, options, 1),
                )
                report["runs"].append(row)
                print(table({**report, "runs": [row]}).splitlines()[-1], flush=True)
        if args.profile is not None:
            profile_one(folder, args.sizes.split(",")[0], methods[0], settings, device, args.profile)
    # Measured again at the end, the better of the two kept: on a shared CPU one short measurement
    # can fall into a busy moment (the network then seemed to beat its own bound).
    again = conv_bound(device, dtype)
    report["bound"] = {**max(bound, again, key=lambda b: b["flop_per_s"]),
                       "measured": [bound["flop_per_s"], again["flop_per_s"]]}  # fmt: skip
    for row in report["runs"]:
        if row["network"] is not None:
            row["network"]["fraction_of_bound"] = row["network"]["flop_per_s"] / report["bound"]["flop_per_s"]
    if device.type == "cuda":
        report["machine"]["gpu_peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    text = table(report)
    print(text)
    if args.table is not None:
        args.table.write_text(text + "\n")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=1) + "\n")


def profile_one(folder: Path, text: str, method: str, settings, device: torch.device, path: Path) -> None:
    """torch.profiler's table of the ops of one instrumented convert (the stages appear as
    `rawback:STAGE` ranges), by device time on CUDA, CPU time otherwise."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    options = ConvertOptions(method=method, overwrite=True, diffusion=settings)
    stages = Stages(device)
    with (
        profile(activities=activities) as prof,
        stages.installed(model_for(settings) if method == "diffusion" else None),
    ):
        convert_file(folder / f"{text}.jpg", folder / "profiled.dng", options)
    key = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    path.write_text(prof.key_averages().table(sort_by=key, row_limit=40) + "\n")


if __name__ == "__main__":
    sys.exit(main())

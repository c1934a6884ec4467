"""How fast is `rawback convert --method analytic`, and how far from what the hardware allows?

    python bench/bench_convert.py [--repeat 3] [--width 4000 --height 3000]

Makes a synthetic 12-megapixel JPEG, converts it with `convert_file` (the function `rawback
convert` calls) a few times, and times its three stages (reading the photo, inverting it, writing
the DNG) by wrapping the real functions, so what is timed is exactly the product path. Then it
measures two references on the same machine:

- the memory-bandwidth bound of the inversion: the bytes the inversion must at least read and write
  (the float32 RGB photo in, the uint16 mosaic out), divided by this machine's numpy copy bandwidth;
- the time to merely decode the JPEG with Pillow: a floor for any method, since every method must
  first decode the photo.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

import rawback
import rawback.convert
import rawback.io.dng
import rawback.io.image
from rawback.convert import ConvertOptions, convert_file
from rawback.machine import cpu_model, usable_cores


def at_least(minimum: int):
    """An argparse type: an integer of at least `minimum`, one line otherwise."""

    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return parse


def make_photo(path: Path, width: int, height: int) -> None:
    """A photo-like JPEG: smooth colour gradients, some hard edges and sensor-like noise, so the
    JPEG has realistic detail to decode (a flat image would decode unrealistically fast)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rgb = np.stack(
        [
            128 + 100 * np.sin(x / width * 6.0),
            128 + 100 * np.cos(y / height * 5.0),
            128 + 60 * np.sin((x + y) / (width + height) * 9.0),
        ],
        axis=-1,
    )
    rgb[(x // 250 + y // 250) % 2 == 0] *= 0.7  # a checkerboard of edges
    rgb += rng.normal(0.0, 4.0, rgb.shape).astype(np.float32)
    Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8)).save(path, quality=92)


class StageTimer:
    """Wraps a function so each call's duration is recorded under a stage name."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = {}

    def wrap(self, name: str, func: Callable) -> Callable:
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return func(*args, **kwargs)
            finally:
                self.seconds.setdefault(name, []).append(time.perf_counter() - start)

        return timed


def copy_bandwidth(n_bytes: int = 512 * 2**20, repeat: int = 5) -> float:
    """Bytes per second that numpy moves in a large copy (read + write), best of `repeat`."""
    src = np.ones(n_bytes // 4, dtype=np.float32)
    dst = np.empty_like(src)
    best = min(_time(lambda: np.copyto(dst, src)) for _ in range(repeat))
    return 2 * n_bytes / best


def _time(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def decode_seconds(path: Path, repeat: int) -> float:
    def decode() -> None:
        with Image.open(path) as im:
            im.load()

    decode()  # warm the file cache
    return min(_time(decode) for _ in range(repeat))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=at_least(1), default=3, help="timed conversions (after one warm-up)")
    parser.add_argument("--width", type=at_least(64), default=4000)
    parser.add_argument("--height", type=at_least(64), default=3000)
    args = parser.parse_args()
    mp = args.width * args.height / 1e6

    timer = StageTimer()
    # convert_file imports read_image and write_dng from their modules at call time, and calls
    # invert_image as a global of rawback.convert: wrapping those three names times each stage.
    rawback.io.image.read_image = timer.wrap("read", rawback.io.image.read_image)
    rawback.convert.invert_image = timer.wrap("invert", rawback.convert.invert_image)
    rawback.io.dng.write_dng = timer.wrap("write", rawback.io.dng.write_dng)

    with tempfile.TemporaryDirectory(prefix="rawback-bench-") as tmp:
        photo = Path(tmp) / "bench.jpg"
        # Made in another process: this one's peak memory is then the conversions' alone.
        maker = multiprocessing.get_context("spawn").Process(
            target=make_photo, args=(photo, args.width, args.height)
        )
        maker.start()
        maker.join()
        if maker.exitcode != 0:
            raise SystemExit("making the test photo failed")
        options = ConvertOptions(method="analytic", overwrite=True)
        totals = []
        for i in range(args.repeat + 1):
            start = time.perf_counter()
            convert_file(photo, Path(tmp) / "bench.dng", options)
            if i > 0:  # the first run warms caches and lazy imports
                totals.append(time.perf_counter() - start)
        for stage in timer.seconds.values():
            del stage[0]
        dng_mb = (Path(tmp) / "bench.dng").stat().st_size / 1e6
        jpeg_mb = photo.stat().st_size / 1e6
        decode = decode_seconds(photo, args.repeat)
    peak_rss_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB on Linux

    bandwidth = copy_bandwidth()
    pixels = args.width * args.height
    touched = pixels * 3 * 4 + pixels * 2  # float32 RGB read + uint16 mosaic written
    invert_bound = touched / bandwidth

    def line(name: str, seconds: float) -> str:
        return f"  {name:<28} {seconds:7.3f} s   {seconds / mp:6.3f} s/MP   {mp / seconds:7.1f} MP/s"

    median = {name: statistics.median(values) for name, values in timer.seconds.items()}
    total = statistics.median(totals)
    print(f"rawback {rawback.__version__} conversion benchmark, method analytic")
    print(
        f"machine: {cpu_model()}, {usable_cores()} usable cores ({os.cpu_count()} in the machine), "
        f"Python {platform.python_version()}, numpy {np.__version__}, {platform.system()}"
    )
    print(
        f"input: synthetic {args.width}x{args.height} JPEG ({mp:.1f} MP, {jpeg_mb:.1f} MB, quality 92); "
        f"output DNG {dng_mb:.1f} MB (lossless JPEG tiles, with preview)"
    )
    runs = f"{args.repeat} conversion{'s' if args.repeat > 1 else ''}"
    print(f"median of {runs} after one warm-up (best total {min(totals):.3f} s):")
    print(line("read (decode + to float)", median["read"]))
    print(line("invert (analytic)", median["invert"]))
    print(line("write DNG", median["write"]))
    print(line("other (checks, preview)", total - sum(median.values())))
    print(line("total convert_file", total))
    print(
        f"peak memory of the conversions (this process; the photo was made in another): {peak_rss_gb:.2f} GB"
    )
    print("hardware references, measured on this machine:")
    print(f"  numpy copy bandwidth: {bandwidth / 1e9:.1f} GB/s (one large copy, read + write counted)")
    print(
        f"  memory bound of the inversion: {touched / 1e6:.0f} MB must be touched "
        f"(float32 RGB in, uint16 mosaic out) -> {1e3 * invert_bound:.1f} ms; "
        f"the inversion takes {median['invert'] / invert_bound:.1f}x that"
    )
    print(
        f"  decoding the JPEG with Pillow alone: {decode:.3f} s ({decode / mp:.3f} s/MP), "
        f"the floor for any method; the whole conversion takes {total / decode:.1f}x that"
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()

"""Time and memory against photo size for every inversion method: does latent diffusion reach
higher resolutions than the pixel-space model on this machine?

    python bench/bench_methods.py [--methods analytic diffusion invisp latent] [--sizes 2 6 12 24] \
        [--limit 240] [--out bench/results/methods]

For each method and each size (megapixels, 4:3), a synthetic photo (bench_convert.make_photo) is
converted by `convert_file` (what `rawback convert` runs) in a fresh subprocess, whose peak
resident memory (VmHWM) is that conversion's alone: Python, torch, the weights and the photo.
Reported per run: the conversion's seconds (convert_file only, no imports), seconds per megapixel,
peak RSS, and the method's weight count. A method whose last
conversion predicts (linearly in pixels) more than --limit seconds for the next size skips it, and
the report says so. Writes OUT.json and OUT.md (a table naming the machine and the torch build).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_convert import make_photo

from rawback.machine import cpu_model, usable_cores


def child(photo: Path, out: Path, method: str) -> None:
    """Convert one photo and print the seconds convert_file took, as JSON (the child's half)."""
    from rawback.convert import ConvertOptions, convert_file

    options = ConvertOptions(method=method, overwrite=True, maker_notes=False)
    start = time.perf_counter()
    convert_file(photo, out, options)
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "peak_rss_mib": peak_rss_mib()}))


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM). Not getrusage's ru_maxrss: Linux carries into
    it the parent's memory at the fork before exec, so every child would report the parent's size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError("no VmHWM in /proc/self/status (peak memory is measured on Linux only)")


def run_child(photo: Path, out: Path, method: str, threads: int | None) -> dict:
    """One conversion in a fresh process: its record, with the process's wall time and peak RSS."""
    env = dict(os.environ)
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    command = [sys.executable, __file__, "--child", str(photo), str(out), method]
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, env=env, text=True)
        _, status = os.waitpid(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        output, errors = stdout.read(), stderr.read()
    if process.returncode != 0:
        return {"error": (errors.strip().splitlines() or [f"exit status {process.returncode}"])[-1]}
    record = json.loads(output.strip().splitlines()[-1])
    record["process_seconds"] = wall
    return record


def parameters(method: str) -> int | None:
    """Weights of a method's model (None: it has none, or none is installed)."""
    if method == "diffusion":
        from rawback.weights import BUNDLED, load_weights

        return sum(p.numel() for p in load_weights(BUNDLED).parameters())
    if method == "latent":
        from rawback.latent_weights import bundled_latent_weights, load_latent_weights

        path = bundled_latent_weights()
        return sum(p.numel() for p in load_latent_weights(path).parameters()) if path.is_file() else None
    if method == "invisp":
        from rawback.invisp_weights import bundled_invisp, load_flow

        path = bundled_invisp()
        return sum(p.numel() for p in load_flow(path).parameters()) if path.is_file() else None
    return None if method != "analytic" else 0


def torch_build() -> str:
    import torch

    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU build"
    return f"torch {torch.__version__} ({build})"


def table(report: dict) -> str:
    lines = [
        f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} usable cores, "
        f"{report['machine']['torch']}, Python {report['machine']['python']}.",
        "",
        "| method | MP | s per MP | s (convert) | peak RSS (MiB) | parameters |",
        "|---|---|---|---|---|---|",
    ]
    for run in report["runs"]:
        params = "-" if run["parameters"] is None else f"{run['parameters']:,}"
        head = f"| {run['method']} | {run['megapixels']:g} |"
        if "skipped" in run:
            lines.append(f"{head} skipped: {run['skipped']} | | | {params} |")
        elif "error" in run:
            lines.append(f"{head} failed: {run['error']} | | | {params} |")
        else:
            speed = f"{run['seconds_per_mp']:.2f} | {run['seconds']:.1f} | {run['peak_rss_mib']:.0f}"
            lines.append(f"{head} {speed} | {params} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", nargs=3, metavar=("PHOTO", "OUT", "METHOD"), help=argparse.SUPPRESS)
    parser.add_argument("--methods", nargs="+", default=["analytic", "diffusion", "latent"])
    parser.add_argument("--sizes", nargs="+", type=float, default=[2, 6, 12, 24], help="megapixels")
    parser.add_argument("--limit", type=float, default=240.0, help="skip a size predicted to take longer (s)")
    parser.add_argument("--threads", type=int, default=None, help="OMP_NUM_THREADS of the conversions")
    parser.add_argument("--out", type=Path, default=Path("bench/results/methods"))
    args = parser.parse_args()
    if args.child:
        photo, out, method = args.child
        child(Path(photo), Path(out), method)
        return
    from rawback.methods import METHODS

    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown method(s): {', '.join(unknown)}; available: {', '.join(METHODS)}")
    report = {
        "machine": {
            "cpu": cpu_model(), "cores": usable_cores(), "torch": torch_build(),
            "python": platform.python_version(), "threads": args.threads,
        },
        "limit_seconds": args.limit,
        "runs": [],
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        photos = {}
        for mp in sorted(args.sizes):
            width = round(math.sqrt(mp * 1e6 * 4 / 3) / 2) * 2
            height = round(width * 3 / 4 / 2) * 2
            photos[mp] = Path(tmp) / f"photo-{mp:g}mp.jpg"
            make_photo(photos[mp], width, height)
        for method in args.methods:
            count = parameters(method)
            last: tuple[float, float] | None = None  # (megapixels, seconds) of the last conversion
            for mp, photo in photos.items():
                run: dict = {"method": method, "megapixels": mp, "parameters": count}
                predicted = None if last is None else last[1] * mp / last[0]
                if predicted is not None and predicted > args.limit:
                    run["skipped"] = f"predicted {predicted:.0f} s > {args.limit:.0f} s"
                else:
                    run.update(run_child(photo, Path(tmp) / "out.dng", method, args.threads))
                    if "seconds" in run:
                        run["seconds_per_mp"] = run["seconds"] / mp
                        last = (mp, run["seconds"])
                print(json.dumps(run), flush=True)
                report["runs"].append(run)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(table(report))
    print(table(report))


if __name__ == "__main__":
    main()

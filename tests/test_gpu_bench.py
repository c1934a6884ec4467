"""The lent GPU's speed check (tools/gpu_bench.sh, docs/model.md "Where the time goes"): the
script is valid and finds what it needs, and a CPU rehearsal of it brings back the stage
benchmark's report within the device's limits on what returns."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO

SCRIPT = REPO / "tools" / "gpu_bench.sh"


def test_the_gpu_bench_script_is_valid_and_what_it_needs_is_there() -> None:
    assert os.access(SCRIPT, os.X_OK)
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    text = SCRIPT.read_text()
    assert (REPO / "bench" / "bench_stages.py").is_file() and "bench/bench_stages.py" in text
    # The wheels it checks for are the ones `tools/fetch_wheels.sh all` downloads.
    wheels = (REPO / "tools" / "fetch_wheels.sh").read_text()
    for module in ("piexif", "rawpy", "imagecodecs", "simplejpeg"):
        assert f"{module}==" in wheels and module in text, module
    assert "/.whl/" in (REPO / ".gitignore").read_text().split()
    # The tests it runs: the `gpu` marker is registered, and some test carries it.
    markers = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]
    assert any(m.startswith("gpu:") for m in markers) and "-m gpu" in text
    assert any("pytest.mark.gpu" in p.read_text() for p in (REPO / "tests").glob("test_*.py"))


def test_every_function_the_stage_bench_times_exists() -> None:
    """A stage whose function was renamed would show as "-" (the analytic prior did, once)."""
    import importlib
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_stages", REPO / "bench" / "bench_stages.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for module, attribute, stage in bench.WRAPPED:
        owner = importlib.import_module(module)
        for part in attribute.split("."):
            owner = getattr(owner, part)  # AttributeError names what is gone
        assert callable(owner) and stage in (*bench.STAGES, *bench.TOP_LEVEL), (module, attribute)


@pytest.mark.slow
def test_a_cpu_rehearsal_of_the_gpu_bench_brings_back_the_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {
        **os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "OUT": str(out),
        "SITE": str(tmp_path / "site"), "DEVICE": "cpu", "SIZES": "320x240", "BATCH_PHOTOS": "1",
        "BATCH_SIZE": "256x192", "REPEAT": "1", "OMP_NUM_THREADS": "1",
    }  # fmt: skip
    done = subprocess.run([str(SCRIPT)], env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    files = sorted(p.name for p in out.iterdir())
    assert files == [
        "device.txt",
        "gpu-bench.log",
        "profile.txt",
        "pytest-gpu.log",
        "stages.json",
        "stages.txt",
    ]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", name) for name in files)  # what the device brings back
    report = json.loads((out / "stages.json").read_text())
    assert (
        report["machine"]["cpu_count"] >= 1 and report["machine"]["torch"] == __import__("torch").__version__
    )
    assert report["bound"]["flop_per_s"] > 0 and report["bound"]["dtype"] in ("float32", "bfloat16")
    rows = {row["label"]: row for row in report["runs"]}
    assert set(rows) == {"convert diffusion 320x240", "convert analytic 320x240", "batch diffusion 1x256x192",
                         "batch analytic 1x256x192", "convert diffusion 320x240 host-pixels"}  # fmt: skip
    convert = rows["convert diffusion 320x240"]
    stages = convert["stages"]
    assert all(
        stages[name] is not None and stages[name] >= 0 for name in ("decode", "prior", "network", "encode")
    )
    assert sum(stages.values()) == pytest.approx(convert["instrumented_seconds"])  # nothing counted twice
    network = convert["network"]
    assert network["tiles"] == {"120x160": 1} and network["flops"] > network["conv_flops"] > 0
    assert 0 < network["fraction_of_bound"] < 5
    assert rows["convert analytic 320x240"]["network"] is None
    assert rows["convert analytic 320x240"]["stages"]["prior"] > 0
    assert rows["batch diffusion 1x256x192"]["photos"] == 1
    assert "rawback:tiled" in (out / "profile.txt").read_text()  # the stages are ranges of the profile
    assert "convert diffusion 320x240" in (out / "stages.txt").read_text()

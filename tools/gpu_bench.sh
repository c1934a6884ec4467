#!/usr/bin/env bash
# The GPU speed check of issue 19 (docs/model.md, "Where the time goes"), as ONE device call of
# about 5 minutes (at most 8, each step under `timeout`): the CUDA tests, then bench/bench_stages.py
# on the GPU: a 24 MP JPEG -> DNG end to end (and 12 MP; each size again with the per-pixel steps
# around the network on the host, the "host-pixels" rows: before and after), a batch of 12 MP
# photos for sustained MP/s, the time per stage and the network's fraction of a 64-channel convolution's bound measured
# in the same run. The numbers, the logs and the device's description come back under $OUT.
#
# Before the call, here (once; .whl is git-ignored):
#   tools/fetch_wheels.sh all       # .whl/: piexif, rawpy, imagecodecs, simplejpeg (28.5 MiB)
# The files must be in the checkout the session was started in: that checkout is what travels.
#
# The call (the device tool's `run`):
#   run(command="tools/gpu_bench.sh", timeout_s=600, carry=[".whl"])
# Up: repository 4.7 MiB + .whl 28.5 MiB: under 64 MiB.
#
# What comes back, under files_at (6 files, well under 1 MiB):
#   gpu-bench.log     everything the script printed
#   device.txt        nvidia-smi, the CPU, Python, torch
#   pytest-gpu.log    the tests marked `gpu` (docs/architecture.md, markers)
#   stages.json       bench_stages's report (machine, settings, bound, one record per run)
#   stages.txt        its table
#   profile.txt       torch.profiler's op table of one 12 MP convert, by GPU time
#
# Settings: DEVICE (default cuda), SIZES (convert sizes, default 4000x3000,6000x4000), BATCH_PHOTOS
# (default 8), BATCH_SIZE (default 4000x3000), REPEAT (default 2), METHODS (default
# diffusion,analytic), EXTRA (more bench_stages options, e.g. "--tile 768 --tile-batch 8"),
# TESTS_BUDGET and BENCH_BUDGET (seconds, default 150 and 330), SITE (where wheels go, default
# /tmp/site). A CPU rehearsal here, in a minute or two (tests/test_gpu_bench.py runs one):
#   PATH=.venv/bin:$PATH OUT=/tmp/out SITE=/tmp/site DEVICE=cpu SIZES=320x240 BATCH_PHOTOS=1 \
#     BATCH_SIZE=320x240 REPEAT=1 tools/gpu_bench.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
SITE=${SITE:-/tmp/site}
DEVICE=${DEVICE:-cuda}
start=$(date +%s)
mkdir -p "$OUT" "$SITE"
exec > >(tee "$OUT/gpu-bench.log") 2>&1

# The modules the machine lacks travel as wheels (tools/fetch_wheels.sh); pip installs them offline.
shopt -s nullglob
wheels=(.whl/*.whl)
if ((${#wheels[@]})); then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        "${wheels[@]}" || { echo "installing the wheels failed"; exit 3; }
fi
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
python3 -c "import torch, numpy, PIL, scipy, skimage, tifffile, typer, rich, piexif, imagecodecs, simplejpeg, rawpy" \
    || { echo "missing a module: run tools/fetch_wheels.sh all here and carry .whl"; exit 3; }
{
    nvidia-smi 2>/dev/null || echo "no nvidia-smi"
    echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2) x $(nproc)"
    python3 -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__,
        'cuda', torch.version.cuda, torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU')"
} > "$OUT/device.txt" 2>&1
cat "$OUT/device.txt"

# 1. The CUDA tests: only the files that hold tests marked `gpu` are collected (the others import
#    what this machine need not have, pi-heif for one).
mapfile -t gpu_tests < <(grep -l "pytest.mark.gpu" tests/test_*.py)
echo "== tests marked gpu in: ${gpu_tests[*]}"
timeout -k 10 "${TESTS_BUDGET:-150}" python3 -m pytest -q -rs -m gpu -p no:cacheprovider "${gpu_tests[@]}" \
    > "$OUT/pytest-gpu.log" 2>&1
tests=$?
tail -n 15 "$OUT/pytest-gpu.log"

# 2. Where the time goes, on the GPU.
echo "== bench_stages on $DEVICE"
timeout -k 10 "${BENCH_BUDGET:-330}" python3 bench/bench_stages.py --device "$DEVICE" \
    --sizes "${SIZES:-4000x3000,6000x4000}" --batch-photos "${BATCH_PHOTOS:-8}" \
    --batch-size "${BATCH_SIZE:-4000x3000}" --repeat "${REPEAT:-2}" --methods "${METHODS:-diffusion,analytic}" \
    --compare-host-pixels --json "$OUT/stages.json" --table "$OUT/stages.txt" --profile "$OUT/profile.txt" ${EXTRA:-}
bench=$?

echo "gpu_bench: tests exited with $tests, the benchmark with $bench (124: out of time), after $(($(date +%s) - start)) s"
ls -l "$OUT"
((tests == 0 && bench == 0))

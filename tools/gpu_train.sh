#!/usr/bin/env bash
# One training session on a lent GPU (docs/training.md, "Training on a lent GPU"), as ONE device
# call of at most 9 minutes: the medium preset on the synthetic scenes alone, resumed from the
# previous session's run when one is carried, stopped by SIGTERM (which saves a checkpoint) before
# the call's 10-minute limit, and packed into $OUT in 15 MiB parts for the next session.
#
# Before the call, here (once; .pack, .whl and .travel are git-ignored):
#   python tools/pack_scenes.py ../shared/data/scenes .pack/scenes     # 27.6 MiB
#   tools/fetch_wheels.sh                                              # .whl/: piexif only
#   (not `fetch_wheels.sh all`: imagecodecs' 25 MiB would not fit beside the pack and checkpoint)
#   # second and later sessions: the run that came back, as parts to carry up
#   rm -rf .travel && python tools/travel_run.py pack runs/gpu .travel --up
#
# The call (the device tool's `run`):
#   run(command="tools/gpu_train.sh", timeout_s=600, carry=[".pack", ".whl", ".travel"])
#   (first session: no .travel here, so none is carried and training starts at step 0)
# Up: repository 4.5 MiB + .pack 27.6 MiB + .travel <= 27 MiB (checkpoint.pt, train_config.json,
# log.jsonl) + .whl 0.02 MiB: under 64 MiB.
#
# What comes back, under files_at (7 files, 31 MiB for medium):
#   run/MANIFEST.json, run/checkpoint.pt.part00-01, run/model.pt.part00, run/model.json.part00,
#   run/train_config.json.part00, run/log.jsonl.part00
# Then, here:
#   rm -rf runs/gpu && python tools/travel_run.py unpack <files_at>/run runs/gpu
#   rawback convert photo.jpg --weights runs/gpu/model.pt         # the EMA weights so far
#
# Settings: BUDGET (seconds of training before SIGTERM, default 420, so that the checkpoint and
# the packing end well inside the 10-minute call), STEPS (the run's total, default 20000, about
# seven sessions: a session stops on time, not on steps, and the cosine schedule spans the run),
# EXTRA (more --set options), DEVICE (default cuda), SITE (where wheels go, default /tmp/site).
# Keep STEPS and EXTRA the same in every session of one run (a resume with other settings
# continues, but says which changed). A CPU rehearsal here, with a few seconds of training:
#   PATH=.venv/bin:$PATH OUT=/tmp/out SITE=/tmp/site DEVICE=cpu BUDGET=60 \
#     EXTRA="--set model=tiny --set workers=0 --set batch_size=2 --set patch=32" tools/gpu_train.sh
set -uo pipefail
cd "$(dirname "$0")/.."
BUDGET=${BUDGET:-420}
STEPS=${STEPS:-20000}
RUN=runs/gpu
OUT=${OUT:-/tmp/out}
start=$(date +%s)

SITE=${SITE:-/tmp/site}
mkdir -p "$SITE" "$OUT"
for wheel in .whl/*.whl; do  # a wheel is a zip: unpacked it is installed (no pip needed)
    [[ -e "$wheel" ]] && python3 -m zipfile -e "$wheel" "$SITE"
done
export PYTHONPATH="$PWD:$SITE${PYTHONPATH:+:$PYTHONPATH}"
du -sh .pack .whl .travel 2>/dev/null
python3 -c "import torch, numpy, PIL, scipy, typer, rich, piexif; print('torch', torch.__version__,
      'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" \
    || { echo "missing a module: see tools/fetch_wheels.sh"; exit 3; }
nproc

resume=()
if [[ -f .travel/MANIFEST.json ]]; then
    python3 tools/travel_run.py unpack .travel "$RUN" || exit 4
    resume=(--resume)
fi

# --foreground: the signal goes to the trainer alone, which saves a checkpoint and then stops its
# DataLoader workers (a signal to the whole group would kill the workers under it first).
# workers: 14 of the 16 cores make pairs (input-bound: docs/training.md); the main process feeds
# the GPU. log_every 50 keeps log.jsonl small enough to travel for a long run.
timeout --foreground -s TERM -k 90 "$BUDGET" python3 -m rawback train --scenes .pack/scenes --out "$RUN" \
    --set scene_fraction=1.0 --set model=medium --set workers=14 --set batch_size=32 \
    --set steps="$STEPS" --set warmup=1000 --set log_every=50 --set checkpoint_every=1000 \
    --device "${DEVICE:-cuda}" ${EXTRA:-} "${resume[@]}" --quiet
status=$?
echo "train exited with $status after $(($(date +%s) - start)) s (124 or 130: stopped by the budget, checkpoint saved)"
tail -n 3 "$RUN/log.jsonl" 2>/dev/null

rm -rf "$OUT/run"
python3 tools/travel_run.py pack "$RUN" "$OUT/run" || exit 5
ls -l "$OUT/run"
echo "session took $(($(date +%s) - start)) s"

#!/usr/bin/env bash
# The comparison table of docs/methods.md and the model card: every learned method and the analytic
# baseline on the 4 validation files of the model card, on every protocol, then time and memory
# of one 12 MP `convert` per method, then the table.
#
#   bash tools/compare_methods.sh [OUT]      # OUT defaults to runs/compare; about 45 min on 2 cores
#
# Needs ../shared/data/raw. Each eval is one method at a time (its s/MP is then its own), and the
# benchmark runs after them, alone on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/compare}
BIN=${BIN:-.venv/bin}
DATA=../shared/data/raw
FILES=(canon_s40/CRW_0118.CRW canon_g2/CRW_0304.CRW gopro/HERO8_GOPR0009.dng kodak_dc120/P003917.KDC)
INCLUDE=()
for f in "${FILES[@]}"; do INCLUDE+=(--include "$f"); done
mkdir -p "$OUT"
for method in diffusion invisp latent; do
    for protocol in rawback raw-diffusion invertible-isp finished camera-preview; do
        "$BIN/rawback" eval --data "$DATA" "${INCLUDE[@]}" --method "$method" --protocol "$protocol" \
            --report-dir "$OUT/$method-$protocol" -q
    done
done
"$BIN/python" bench/bench_methods.py --methods analytic diffusion invisp latent --sizes 12 --threads 2 \
    --out "$OUT/bench"
"$BIN/python" tools/method_table.py "$OUT"/*/eval-*.json --bench "$OUT/bench.json" > "$OUT/table.md"
echo "wrote $OUT/table.md"

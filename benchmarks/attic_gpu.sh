#!/usr/bin/env bash
# ATTIC's grid on one GPU, as one script: the generator of world 0, the legibility screen, then
# benchmarks/attic_synth.py's cells in SHARDS processes sharing the GPU, then the summary.
#
#   bash benchmarks/attic_gpu.sh [RUN] [attic_synth.py options...]
#
# RUN (default runs/attic_gpu) keeps everything; a second start skips what is done. Run from the
# source tree (PYTHONPATH=src) with a CUDA build of PyTorch; SHARDS (default 8) processes. The
# summary's JSON is the last line of RUN/summary.log and RUN/result.json.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
run="${1:-runs/attic_gpu}"
shift || true
shards="${SHARDS:-8}"
mkdir -p "$run"
started=$(date +%s)

if [ ! -f "$run/generator/generator.pt" ]; then
    python benchmarks/generator.py --seed 0 --run "$run/generator" --out "$run/generator.json" \
        > "$run/generator.log" 2>&1
fi
grid=(python benchmarks/attic_synth.py --generator "$run/generator/generator.pt" --run "$run/grid" "$@")
"${grid[@]}" --prepare > "$run/prepare.log" 2>&1
pids=()
for ((i = 0; i < shards; i++)); do
    "${grid[@]}" --shard "$i/$shards" > "$run/shard_$i.log" 2>&1 &
    pids+=("$!")
done
failed=0
for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
if [ "$failed" = 1 ]; then
    echo "a shard failed: see $run/shard_*.log" >&2
    exit 1
fi
"${grid[@]}" --out "$run/result.json" > "$run/summary.log" 2>&1
echo "wall ${SECONDS}s (since $(date -d "@$started" +%T)); result: $run/result.json"

#!/usr/bin/env bash
# ATTIC's grids on one GPU, as one script: benchmarks/attic_synth.py (Tables I-II), then
# benchmarks/attic_active.py (Fig. 5), each in SHARDS processes sharing the GPU and one run
# folder (the two configs differ only in their grids), then their summaries.
#
#   bash benchmarks/attic_gpu.sh [RUN] [--set key=value ...]
#
# RUN (default runs/attic_gpu) keeps everything; a second start skips what is done. The shards
# start together: one renders the world and trains the generator and the screen while the
# others wait for it. Run from the source tree (PYTHONPATH=src) with a CUDA build of PyTorch;
# SHARDS (default 8) processes. Summaries: RUN/tables.json, RUN/active.json, RUN/pairs_map.json
# (where the created pairs fall, with RUN/pairs_map.png); report: RUN/report.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="src${PYTHONPATH:+:$PYTHONPATH}"
run="${1:-runs/attic_gpu}"
shift || true
shards="${SHARDS:-8}"
mkdir -p "$run"

grid() {  # grid NAME SCRIPT [options]: SHARDS shards on RUN, then the summary
    local name=$1 script=$2
    shift 2
    local pids=() failed=0
    for ((i = 0; i < shards; i++)); do
        python "$script" --run "$run" --shard "$i/$shards" "$@" > "$run/${name}_shard_$i.log" 2>&1 &
        pids+=("$!")
    done
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    if [ "$failed" = 1 ]; then
        echo "a shard failed: see $run/${name}_shard_*.log" >&2
        exit 1
    fi
    python "$script" --run "$run" --out "$run/$name.json" "$@" > "$run/$name.log" 2>&1
}

grid tables benchmarks/attic_synth.py "$@"
grid active benchmarks/attic_active.py "$@"
python benchmarks/attic_pairs_map.py --run "$run" --figure "$run/pairs_map.png" \
    --out "$run/pairs_map.json" > "$run/pairs_map.log" 2>&1
echo "wall ${SECONDS}s; summaries: $run/tables.json $run/active.json $run/pairs_map.json;" \
    "report: $run/report"

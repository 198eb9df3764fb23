#!/usr/bin/env bash
# The whole GPU check of the CUDA backend in one command, from the repository root, on a
# machine with a CUDA GPU (benchmarks/README.md, "GPU check"):
#
#   OUT=/some/folder bash benchmarks/gpu_check.sh [BUDGET_SECONDS]     # default 420 (7 minutes)
#
# In order of priority, each step skipped when too little of the budget is left:
#  1. the CUDA tests: the oracle tests with the eager and the triton backend (Triton kernels
#     compiled for real), and the CUDA-graph replay test of dartsrenet/steps.py;
#  2. whole engine epochs (benchmarks/epoch_time.py): search and evaluation, triton + capture
#     (what a run uses), triton without capture, eager; one profiled epoch (launches per step);
#  3. train steps of the GRU/LSTM networks and of our cells (bench_cells.py) per backend;
#  4. 1, 2 and 4 search trials sharing the GPU (gpu_sharing.py), triton + capture.
# Every step writes logs/NAME.out and logs/NAME.err; at the end all figures are gathered
# into one file, $OUT/gpu_check.json (benchmarks/gpu_check_summary.py), beside
# $OUT/summary.txt and $OUT/logs.tar.gz (three files: the device tool returns at most eight).
# DEVICE=cpu SIZE=demo runs the same flow on a CPU (a dry run of the script itself).
set -u
export PYTHONUNBUFFERED=1
export PYTHONPATH="${PWD}${PYTHONPATH:+:$PYTHONPATH}"
export OMP_WAIT_POLICY=PASSIVE
OUT="${OUT:-gpu_out}"
BUDGET="${1:-420}"
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"
SIZE="${SIZE:-paper}"
FUSED=triton
CAPTURE=(--cuda-graph)
if [ "$DEVICE" = cpu ]; then FUSED=native; CAPTURE=(); fi
LOGS="$OUT/logs"
mkdir -p "$LOGS"
: >"$OUT/summary.txt"
START=$(date +%s)
left() { echo $((BUDGET - ($(date +%s) - START))); }

# step NAME NEEDED_SECONDS LIMIT_SECONDS COMMAND…: run if at least NEEDED seconds are left.
step() {
    local name=$1 needed=$2 limit=$3
    shift 3
    local remaining
    remaining=$(left)
    if [ "$remaining" -lt "$needed" ]; then
        echo "$name: skipped ($remaining s left)" | tee -a "$OUT/summary.txt"
        return
    fi
    [ "$limit" -gt "$remaining" ] && limit=$remaining
    local t0=$(date +%s)
    timeout "$limit" "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.err"
    local rc=$?
    echo "$name: rc=$rc in $(($(date +%s) - t0)) s (limit $limit s)" | tee -a "$OUT/summary.txt"
}

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    "$PY" -c "import sys, torch; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0))"
    "$PY" -c "import triton; print('triton', triton.__version__)" 2>&1
} >"$LOGS/environment.txt" 2>&1

# 1. CUDA tests
step tests_cuda 60 150 env DARTSRENET_TEST_DEVICE="$DEVICE" "$PY" -m pytest -q -x -p no:cacheprovider \
    tests/test_reference_oracle.py tests/test_steps.py

# 2. whole epochs
EPOCH=("$PY" benchmarks/epoch_time.py --device "$DEVICE" --size "$SIZE" --json)
step epoch_triton_capture 40 120 "${EPOCH[@]}" --backend "$FUSED" --steps 40 --profile
step epoch_triton 30 90 "${EPOCH[@]}" --backend "$FUSED" --no-capture --steps 20
step epoch_eager 30 90 "${EPOCH[@]}" --backend eager --no-capture --steps 5

# 3. train steps against the GRU/LSTM networks
BENCH=("$PY" benchmarks/bench_cells.py --device "$DEVICE" --size "$SIZE" --json --only train --no-reference
       --cells gru,lstm,vanilla,search --search-variants vanilla --rounds 3)
step train_triton_capture 30 90 "${BENCH[@]}" --backend "$FUSED" ${CAPTURE[@]+"${CAPTURE[@]}"}
step train_triton 30 90 "${BENCH[@]}" --backend "$FUSED"
step train_eager 30 90 "${BENCH[@]}" --backend eager

# 4. search trials sharing the GPU
step sharing 40 120 "$PY" benchmarks/gpu_sharing.py --device "$DEVICE" --trials 1,2,4 --steps 20 -- \
    --size "$SIZE" --backend "$FUSED" ${CAPTURE[@]+"${CAPTURE[@]}"}

echo "total $(($(date +%s) - START)) s" | tee -a "$OUT/summary.txt"
"$PY" benchmarks/gpu_check_summary.py "$LOGS" >"$OUT/gpu_check.json" 2>"$LOGS/gpu_check_summary.err"
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$LOGS"
cat "$OUT/gpu_check.json"

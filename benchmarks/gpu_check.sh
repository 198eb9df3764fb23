#!/usr/bin/env bash
# One-shot GPU check of issue 6, run from the repository root on a machine with a CUDA GPU:
#
#   OUT=/some/folder bash benchmarks/gpu_check.sh [BUDGET_SECONDS]
#
# 1. the oracle tests on the GPU (tests/test_reference_oracle.py, DARTSRENET_TEST_DEVICE=cuda),
# 2. bench_cells.py at paper size (eager: sweeps, train steps, references, search-epoch estimate),
# 3. train steps replayed from CUDA graphs, with bf16 autocast, with torch.compile, and
#    1, 2 and 4 search trials sharing the GPU (separate processes started together).
# Steps run in that order of priority; a step is skipped when the budget left is too small.
# Everything goes to $OUT (one .json/.out and one .err per step, summary.txt).
# Needs python3 with torch; the package is pure Python (PYTHONPATH=.). pytest is optional:
# build/gpu_pydeps (if carried; make it with `cp -r .venv/lib/python3.*/site-packages/
# {_pytest,pytest,pluggy,iniconfig,packaging,pygments,py.py} build/gpu_pydeps/`) provides
# it, otherwise benchmarks/oracle_tests_without_pytest.py runs the same tests.
set -u
export PYTHONUNBUFFERED=1
export PYTHONPATH="${PWD}${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-gpu_out}"
BUDGET="${1:-400}"
PY="${PYTHON:-python3}"
DEVICE="${DEVICE:-cuda}"  # DEVICE=cpu SIZE=demo: a dry run of the flow on a CPU
SIZE="${SIZE:-paper}"
mkdir -p "$OUT"
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
    timeout "$limit" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
    local rc=$?
    echo "$name: rc=$rc in $(($(date +%s) - t0)) s (limit $limit s)" | tee -a "$OUT/summary.txt"
}

{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    "$PY" -c "import sys, torch; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0))"
} >"$OUT/environment.txt" 2>&1

# 1. oracle tests on the GPU
if [ -d build/gpu_pydeps ] && ! "$PY" -c "import pytest" 2>/dev/null; then
    export PYTHONPATH="$PYTHONPATH:$PWD/build/gpu_pydeps"
fi
if "$PY" -c "import pytest" 2>/dev/null; then
    step oracle_tests_cuda 30 60 env DARTSRENET_TEST_DEVICE="$DEVICE" "$PY" -m pytest tests/test_reference_oracle.py -q -p no:cacheprovider
else
    step oracle_tests_cuda 30 60 env DARTSRENET_TEST_DEVICE="$DEVICE" "$PY" benchmarks/oracle_tests_without_pytest.py
fi

BENCH=("$PY" benchmarks/bench_cells.py --device "$DEVICE" --size "$SIZE" --json)
TRAIN=(--only train --no-reference --cells vanilla,search --search-variants vanilla --rounds 3)

# 2. the full benchmark in eager mode (references at full size, the search cell's for vanilla)
step bench_eager 60 120 "${BENCH[@]}" --quick --rounds 1 --reference-divisor 1
# 3. what CUDA graphs, bf16 and torch.compile buy on the train steps; trials sharing the GPU
step train_cuda_graph 20 45 "${BENCH[@]}" "${TRAIN[@]}" --cuda-graph
step sharing_eager 35 60 "$PY" benchmarks/gpu_sharing.py --device "$DEVICE" --trials 1,2,4 --steps 10 -- --size "$SIZE"
step train_bf16 15 30 "${BENCH[@]}" "${TRAIN[@]}" --bf16
step train_cuda_graph_bf16 20 40 "${BENCH[@]}" "${TRAIN[@]}" --cuda-graph --bf16
step sharing_cuda_graph 25 50 "$PY" benchmarks/gpu_sharing.py --device "$DEVICE" --trials 1,2,4 --steps 30 -- --size "$SIZE" --cuda-graph
step train_compile 40 120 "${BENCH[@]}" "${TRAIN[@]}" --compile
echo "total $(($(date +%s) - START)) s" | tee -a "$OUT/summary.txt"

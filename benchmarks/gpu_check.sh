#!/usr/bin/env bash
# The whole GPU check of the CUDA backend in one command, from the repository root, on a
# machine with a CUDA GPU (benchmarks/README.md, "GPU check"):
#
#   OUT=/some/folder bash benchmarks/gpu_check.sh [--dry-run] [BUDGET_SECONDS]   # default 480 (8 minutes)
#
# Each measurement is its own step with its own limit (timeout -k), in order of priority —
# the headline first — and $OUT/gpu_check.json is rewritten after every step, so a step that
# hangs or crashes loses only its own figure. A step is skipped when too little of the
# budget is left (the JSON says so). The steps:
#  1. epoch_search_capture: the paper-size search epoch as a run runs it (triton + capture),
#     timed over a window after the warm-up and capture steps, with and without the
#     validation pass, and the capture report (benchmarks/epoch_time.py);
#  2. equivalence: one paper-size float32 search step (TF32 off), triton against eager, and
#     3 graph-replayed search steps against eager ones (benchmarks/gpu_equivalence.py);
#  3. epoch_train_capture: the evaluation epoch, likewise;
#  4. tests: the CUDA tests (oracle tests with eager and triton, CUDA-graph replay, capture
#     readiness) — with benchmarks/oracle_tests_without_pytest.py where pytest is missing;
#  5. epoch_triton, epoch_eager: the other two variants, without capture;
#  6. train_triton_capture, train_triton, train_eager: train steps against the GRU/LSTM
#     networks (bench_cells.py; the baselines are never captured, as in the engine);
#  7. epoch_bf16 (optional), profile (launches and kernels per step; the profiler's
#     post-processing is slow, so it comes late), sharing (1/2/4 trials, with and without
#     CUDA MPS where nvidia-cuda-mps-control exists: benchmarks/gpu_sharing.py).
# A step that crashes (not a plain failure or a timeout) makes the script rerun the smallest
# case once with CUDA_LAUNCH_BLOCKING=1, which names the failing kernel (crash_rerun in
# the JSON). Every step writes logs/NAME.out and logs/NAME.err; at the end
# $OUT/gpu_check.json, $OUT/summary.txt and $OUT/logs.tar.gz remain.
#
# ONLY=name,name… runs just those steps (the others are recorded as skipped).
# --dry-run: the same steps and the same JSON on this machine's CPU, at tiny sizes, with the
# native backend in place of triton (eager where the native kernels are not built): checks
# the script end to end without a GPU (tests/test_gpu_check.py runs its headline step).
set -u
DRY_RUN=0
if [ "${1:-}" = --dry-run ]; then DRY_RUN=1; shift; fi
export PYTHONUNBUFFERED=1
export PYTHONPATH="${PWD}${PYTHONPATH:+:$PYTHONPATH}"
export OMP_WAIT_POLICY=PASSIVE
OUT="${OUT:-gpu_out}"
BUDGET="${1:-480}"
PY="${PYTHON:-python3}"
if [ "$DRY_RUN" = 1 ]; then
    DEVICE=cpu SIZE=tiny BENCH_SIZE=demo STEPS=1 EAGER_STEPS=1 TRIALS=1 SHARING_STEPS=1
    FUSED=$("$PY" -c "from dartsrenet.kernels import native_build as native; print('native' if native.library() is not None else 'eager')")
    CAPTURE=()
    TESTS=(tests/test_capture_readiness.py -k "detector or root_cause")
    BENCH_CELLS=gru,vanilla
    BENCH_ROUNDS=(--rounds 1 --quick)
else
    DEVICE=cuda SIZE=paper BENCH_SIZE=paper STEPS=20 EAGER_STEPS=3 TRIALS=1,2,4 SHARING_STEPS=20
    FUSED=triton
    CAPTURE=(--cuda-graph)
    TESTS=(tests/test_reference_oracle.py tests/test_steps.py tests/test_capture_readiness.py)
    BENCH_CELLS=gru,lstm,vanilla,search
    BENCH_ROUNDS=(--rounds 3)
fi
LOGS="$OUT/logs"
mkdir -p "$LOGS"
: >"$OUT/summary.txt"
START=$(date +%s)
CRASH_RERUN_DONE=0
left() { echo $((BUDGET - ($(date +%s) - START))); }

write_json() {  # the figures so far; replaced atomically so a reader never sees half a file
    "$PY" benchmarks/gpu_check_summary.py "$LOGS" >"$OUT/gpu_check.json.tmp" 2>>"$LOGS/gpu_check_summary.err" &&
        mv "$OUT/gpu_check.json.tmp" "$OUT/gpu_check.json"
}

crashed() {  # a crash, not a failed check (rc 1) or a timeout (124, 137): a signal or a CUDA error
    local name=$1 rc=$2
    [ "$rc" -ne 0 ] && [ "$rc" -ne 1 ] && [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] && return 0
    grep -qE "CUDA error|illegal memory access|device-side assert|unspecified launch failure" "$LOGS/$name.err" 2>/dev/null
}

# step NAME NEEDED_SECONDS LIMIT_SECONDS COMMAND…: run if at least NEEDED seconds are left.
step() {
    local name=$1 needed=$2 limit=$3
    shift 3
    local remaining
    remaining=$(left)
    if [ -n "${ONLY:-}" ] && [[ ",$ONLY," != *",$name,"* ]]; then
        echo "$name: skipped (not in ONLY=$ONLY)" | tee -a "$OUT/summary.txt"
        echo "$name: skipped (not in ONLY=$ONLY)" >"$LOGS/$name.err"
        return
    fi
    if [ "$remaining" -lt "$needed" ]; then
        echo "$name: skipped ($remaining s left)" | tee -a "$OUT/summary.txt"
        echo "$name: skipped ($remaining s left)" >"$LOGS/$name.err"
        write_json
        return
    fi
    [ "$limit" -gt "$remaining" ] && limit=$remaining
    local t0=$(date +%s)
    timeout -k 10 "$limit" "$@" >"$LOGS/$name.out" 2>"$LOGS/$name.err"
    local rc=$?
    echo "$name: rc=$rc in $(($(date +%s) - t0)) s (limit $limit s)" | tee -a "$OUT/summary.txt"
    echo "$rc" >"$LOGS/$name.rc"
    if [ "$CRASH_RERUN_DONE" = 0 ] && crashed "$name" "$rc"; then
        CRASH_RERUN_DONE=1
        echo "$name crashed: rerunning the smallest case with CUDA_LAUNCH_BLOCKING=1" | tee -a "$OUT/summary.txt"
        echo "$name" >"$LOGS/crash_rerun.step"
        CUDA_LAUNCH_BLOCKING=1 timeout -k 10 90 "$PY" benchmarks/gpu_equivalence.py --device "$DEVICE" --size tiny \
            --backend "$FUSED" >"$LOGS/crash_rerun.out" 2>"$LOGS/crash_rerun.err"
        echo "$?" >"$LOGS/crash_rerun.rc"
    fi
    write_json
}

{
    date -u
    echo "dry_run $DRY_RUN"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
    "$PY" -c "import sys, torch; print(sys.version); print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0))"
    "$PY" -c "import triton; print('triton', triton.__version__)" 2>&1
} >"$LOGS/environment.txt" 2>&1
write_json

EPOCH=("$PY" benchmarks/epoch_time.py --device "$DEVICE" --size "$SIZE" --json)
# 1–3: the headline, then whether it computes the right thing
step epoch_search_capture 40 100 "${EPOCH[@]}" --kind search --backend "$FUSED" --steps "$STEPS"
step equivalence 30 60 "$PY" benchmarks/gpu_equivalence.py --device "$DEVICE" --size "$SIZE" --backend "$FUSED"
step epoch_train_capture 30 60 "${EPOCH[@]}" --kind train --backend "$FUSED" --steps "$STEPS"

# 4. tests
if "$PY" -c "import pytest" 2>/dev/null; then
    step tests 40 90 env DARTSRENET_TEST_DEVICE="$DEVICE" "$PY" -m pytest -q -x -p no:cacheprovider "${TESTS[@]}"
else
    step tests 40 90 env DARTSRENET_TEST_DEVICE="$DEVICE" "$PY" benchmarks/oracle_tests_without_pytest.py
fi

# 5. the other two variants
step epoch_triton 30 60 "${EPOCH[@]}" --backend "$FUSED" --no-capture --steps "$STEPS"
step epoch_eager 30 60 "${EPOCH[@]}" --backend eager --no-capture --steps "$EAGER_STEPS"

# 6. train steps against the GRU/LSTM networks
BENCH=("$PY" benchmarks/bench_cells.py --device "$DEVICE" --size "$BENCH_SIZE" --json --only train --no-reference
       --cells "$BENCH_CELLS" --search-variants vanilla "${BENCH_ROUNDS[@]}")
step train_triton_capture 25 40 "${BENCH[@]}" --backend "$FUSED" ${CAPTURE[@]+"${CAPTURE[@]}"}
step train_triton 25 40 "${BENCH[@]}" --backend "$FUSED"
step train_eager 25 40 "${BENCH[@]}" --backend eager

# 7. optional and slow ones
step epoch_bf16 40 50 "${EPOCH[@]}" --kind search --backend "$FUSED" --autocast bf16 --steps "$STEPS"
step profile 40 60 "${EPOCH[@]}" --kind search --backend "$FUSED" --steps "$EAGER_STEPS" --profile
step sharing 40 100 "$PY" benchmarks/gpu_sharing.py --device "$DEVICE" --trials "$TRIALS" --steps "$SHARING_STEPS" \
    --mps auto -- --size "$BENCH_SIZE" --backend "$FUSED" ${CAPTURE[@]+"${CAPTURE[@]}"}

echo "total $(($(date +%s) - START)) s" | tee -a "$OUT/summary.txt"
write_json
tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$LOGS"
cat "$OUT/gpu_check.json"

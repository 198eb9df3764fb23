"""Aggregate throughput of 1, 2, 4 … search trials sharing one GPU (separate processes).

Usage::

    python benchmarks/gpu_sharing.py [--trials 1,2,4] [--steps 20] [--device cuda] [-- EXTRA bench_cells.py options]

For each count N, starts N processes of ``bench_cells.py --search-trial STEPS`` at
once (paper-size search network, vanilla variant, synthetic CIFAR-10-shaped batches),
each timing STEPS search steps after a warm-up step, and prints one JSON object:
per N the per-trial images/s, their sum, and the images of all trials ÷ the wall time
from the first trial's timed start to the last one's end.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def run_trials(count: int, steps: int, device: str, extra: list[str]) -> dict:
    command = [sys.executable, str(HERE / "bench_cells.py"), "--device", device, "--search-trial", str(steps), *extra]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(count)]
    trials, errors = [], []
    for process in processes:
        out, err = process.communicate()
        try:
            trials.append(json.loads(out.strip().splitlines()[-1]))
        except (ValueError, IndexError):
            errors.append(err[-2000:])
    result = {"trials": count, "completed": len(trials), "per_trial": trials}
    if trials:
        batch_images = sum(t["images_per_s"] * t["seconds"] for t in trials)
        span = max(t["end"] for t in trials) - min(t["start"] for t in trials)
        result["sum_images_per_s"] = round(sum(t["images_per_s"] for t in trials), 1)
        result["aggregate_images_per_s"] = round(batch_images / span, 1)
        result["mean_step_ms"] = round(1e3 * sum(t["seconds"] / t["steps"] for t in trials) / len(trials), 2)
    if errors:
        result["errors"] = errors
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", default="1,2,4")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more bench_cells.py options")
    args = parser.parse_args()
    extra = [a for a in args.extra if a != "--"]
    results = [run_trials(int(n), args.steps, args.device, extra) for n in args.trials.split(",")]
    print(json.dumps({"steps": args.steps, "options": extra, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

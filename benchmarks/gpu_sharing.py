"""Aggregate throughput of 1, 2, 4 … search trials sharing one GPU (separate processes), with and without CUDA MPS.

Usage::

    python benchmarks/gpu_sharing.py [--trials 1,2,4] [--steps 20] [--device cuda] [--mps auto|on|off]
                                     [-- EXTRA bench_cells.py options]

For each count N, starts N processes of ``bench_cells.py --search-trial STEPS`` at
once (paper-size search network, vanilla variant, synthetic CIFAR-10-shaped batches);
each warms up, waits at a start barrier until all N are warmed up (a folder of ready
files: start-up and compilation take seconds, the timed windows must overlap), then
times STEPS search steps. Per N: the per-trial images/s, their sum, and the images of all
trials ÷ the wall time from the first timed start to the last end.

Why MPS: a trial replaying CUDA graphs keeps the GPU busy with small grids (a few dozen
programs per kernel on 132 SMs, ``benchmarks/README.md``), and processes sharing a GPU by
time-slicing take turns instead of running side by side. CUDA MPS (Multi-Process Service)
runs the kernels of several processes on the GPU at the same time. With ``--mps auto``
(the default) the measurement is repeated under MPS when ``nvidia-cuda-mps-control`` is
installed and the device is CUDA: the script starts the daemon with its pipe and log
folders in a temporary folder (no root needed), runs the trials with the same
environment, and stops it (``quit``) afterwards, also after an error. Where MPS is not
available the output says why (``mps.available`` false, ``mps.reason``). ``--mps on``
makes its absence an error; ``--mps off`` skips it. docs/cluster.md says how to run
several trials per GPU with MPS on a cluster.

Prints one JSON object: ``{"steps", "options", "results": [...], "mps": {"available",
"reason" | "results"}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
MPS_CONTROL = "nvidia-cuda-mps-control"


def run_trials(count: int, steps: int, device: str, extra: list[str], environment: dict[str, str]) -> dict:
    command = [sys.executable, str(HERE / "bench_cells.py"), "--device", device, "--search-trial", str(steps), *extra]
    with tempfile.TemporaryDirectory(prefix="barrier-") as barrier:
        env = {**environment, "DARTSRENET_BARRIER": f"{barrier}:{count}"}
        processes = [
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            for _ in range(count)
        ]
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
        result["start_skew_s"] = round(max(t["start"] for t in trials) - min(t["start"] for t in trials), 3)
    if errors:
        result["errors"] = errors
    return result


def mps_unavailable_reason(device: str) -> str | None:
    """Why MPS cannot be used here, or None when it can."""
    if not device.startswith("cuda"):
        return f"device {device} is not a CUDA device"
    if shutil.which(MPS_CONTROL) is None:
        return f"{MPS_CONTROL} is not installed (it ships with the CUDA toolkit / NVIDIA driver utilities)"
    return None


@contextmanager
def mps_daemon():
    """A CUDA MPS control daemon for this measurement, its pipes and logs in a temporary folder;
    yields the environment the trials need to reach it, and always stops it."""
    with tempfile.TemporaryDirectory(prefix="mps-") as folder:
        env = {**os.environ, "CUDA_MPS_PIPE_DIRECTORY": f"{folder}/pipe", "CUDA_MPS_LOG_DIRECTORY": f"{folder}/log"}
        os.makedirs(env["CUDA_MPS_PIPE_DIRECTORY"])
        os.makedirs(env["CUDA_MPS_LOG_DIRECTORY"])
        subprocess.run([MPS_CONTROL, "-d"], env=env, check=True, timeout=30)
        try:
            yield env
        finally:
            subprocess.run([MPS_CONTROL], input="quit\n", text=True, env=env, timeout=30, check=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", default="1,2,4")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--mps", choices=("auto", "on", "off"), default="auto",
                        help="also measure under CUDA MPS: where available (auto), or required (on)")
    parser.add_argument("extra", nargs=argparse.REMAINDER, help="after --: more bench_cells.py options")
    args = parser.parse_args(argv)
    extra = [a for a in args.extra if a != "--"]
    counts = [int(n) for n in args.trials.split(",")]
    reason = mps_unavailable_reason(args.device) if args.mps != "off" else "--mps off"
    if args.mps == "on" and reason is not None:
        parser.error(f"--mps on: MPS is not available: {reason}")
    output = {"steps": args.steps, "options": extra,
              "results": [run_trials(n, args.steps, args.device, extra, dict(os.environ)) for n in counts]}
    if reason is not None:
        output["mps"] = {"available": False, "reason": reason}
    else:
        try:
            with mps_daemon() as environment:
                output["mps"] = {"available": True,
                                 "results": [run_trials(n, args.steps, args.device, extra, environment) for n in counts]}
        except (OSError, subprocess.SubprocessError) as error:
            output["mps"] = {"available": False, "reason": f"starting {MPS_CONTROL} failed: {error}"}
    print(json.dumps(output, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

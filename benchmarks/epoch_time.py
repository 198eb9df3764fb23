"""Wall time of whole engine epochs: a first-order search epoch and an evaluation epoch.

Usage::

    python benchmarks/epoch_time.py [--device cuda] [--size paper|demo] [--backend auto|eager|native|triton]
                                    [--no-capture] [--autocast none|bf16] [--steps N] [--kind search,train]
                                    [--profile] [--json]

Runs :func:`dartsrenet.search.search_epoch` (α step + weight step per batch) and
:func:`dartsrenet.training.train_epoch` (the vanilla evaluation network) exactly as a run
does — backend, CUDA-graph capture, precision — on synthetic CIFAR-10-shaped batches that
already sit on the device (so the figure is the model's time, not the data loader's).
A paper-size search epoch is 390 steps of batch 64 (25,000 train_cs images); an
evaluation epoch 704 steps (45,000 training images). The epoch runs the graph warm-up steps
and the capture step first, untimed (they also compile the kernels), then ``--steps``
timed steps, scaled to a full epoch. The validation pass a run adds to every epoch (the
whole val_cs split, 390 batches, for a search; 79 batches of the 5,000-image validation
split for an evaluation run) is timed on its own, so both ``epoch_s`` and
``epoch_with_validation_s`` are reported, with the capture report (steps replayed, why
capture was abandoned). ``--profile`` runs one more epoch under the profiler.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_cells.py

import torch

from dartsrenet.cells import model_backend
from dartsrenet.config import SearchConfig
from dartsrenet.networks import build_eval_model, build_search_model
from dartsrenet.search import make_optimizers, search_epoch
from dartsrenet.steps import GRAPH_WARMUP_STEPS, CaptureReport, apply_matmul_precision, select_device
from dartsrenet.training import evaluate, train_epoch

SIZES = {"paper": {"search_channels": 128, "eval_channels": 256, "batch": 64},
         "demo": {"search_channels": 16, "eval_channels": 32, "batch": 32},
         "tiny": {"search_channels": 4, "eval_channels": 4, "batch": 4}}
EPOCH_STEPS = {"search": 390, "train": 704}
VALIDATION_BATCHES = {"search": 390, "train": 79}
UNTIMED_STEPS = GRAPH_WARMUP_STEPS + 1
"""Steps before the timed window: the graph warm-up steps, then the capture step."""


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batches(steps: int, batch: int, device: torch.device) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.randn(batch, 3, 32, 32, device=device), torch.randint(0, 10, (batch,), device=device))
            for _ in range(steps)]


class StepClock:
    """The ``on_step`` callback of an epoch: the time from the end of step ``skip`` to :meth:`stop`
    (the device synchronised only at those two points)."""

    def __init__(self, device: torch.device, skip: int):
        self.device, self.skip, self.count, self.start = device, skip, 0, None

    def __call__(self, images: int) -> None:
        self.count += 1
        if self.count == self.skip:
            synchronise(self.device)
            self.start = time.perf_counter()

    def stop(self) -> tuple[float, int]:
        """(seconds, steps) of the window."""
        synchronise(self.device)
        return time.perf_counter() - self.start, self.count - self.skip


def timed_epoch(run, device: torch.device) -> tuple[float, int]:
    """``run(on_step)`` once; the seconds and steps after the untimed warm-up and capture steps."""
    clock = StepClock(device, UNTIMED_STEPS)
    run(clock)
    return clock.stop()


def validation_seconds(
    model: torch.nn.Module, data: list, device: torch.device, kind: str, capture: bool
) -> tuple[float, CaptureReport]:
    """Seconds of the run's validation pass over its whole split, scaled from ``data``, as a run
    validates: with ``capture``, its forward replayed from a graph kept for the run (warmed up
    and captured by an untimed pass first)."""
    report, run_steps = CaptureReport(mode=capture), {}
    evaluate(model, data[:3], device, capture=capture, capture_report=report, run_steps=run_steps)
    synchronise(device)
    start = time.perf_counter()
    evaluate(model, data, device, capture=capture, capture_report=report, run_steps=run_steps)
    synchronise(device)
    return (time.perf_counter() - start) * VALIDATION_BATCHES[kind] / len(data), report


def epoch_figures(
    kind: str, seconds: float, steps: int, batch: int, validation: tuple[float, CaptureReport], report: CaptureReport
) -> dict:
    epoch_s, (validation_s, validation_report) = seconds * EPOCH_STEPS[kind] / steps, validation
    return {"steps": steps, "seconds": round(seconds, 3), "epoch_s": round(epoch_s, 2),
            "validation_s": round(validation_s, 2), "epoch_with_validation_s": round(epoch_s + validation_s, 2),
            "images_per_s": round(steps * batch / seconds, 1), "capture": report.as_dict(),
            "validation_capture": validation_report.as_dict()}


def profile_epoch(run, device: torch.device) -> dict:
    """CPU-side launches (kernel and graph launches, each a few µs of the host) and GPU kernels of one epoch."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        run()
        synchronise(device)
    events = prof.events()
    launches = sum(1 for e in events if "LaunchKernel" in e.name or "GraphLaunch" in e.name)
    graph_launches = sum(1 for e in events if "GraphLaunch" in e.name)
    kernels = sum(1 for e in events if e.device_type == torch.autograd.DeviceType.CUDA)
    syncs = sum(1 for e in events if "Synchronize" in e.name or "MemcpyDtoH" in e.name or "cudaMemcpy" == e.name)
    table = sorted(prof.key_averages(), key=lambda a: -getattr(a, "device_time_total", 0))[:10]
    return {"launches": launches, "graph_launches": graph_launches, "gpu_kernels": kernels, "host_syncs": syncs,
            "top_kernels": [{"name": a.key[:80], "ms": round(getattr(a, "device_time_total", 0) / 1e3, 2),
                             "count": a.count} for a in table]}


def search_epoch_time(args, device: torch.device) -> dict:
    size = SIZES[args.size]
    torch.manual_seed(0)
    model = build_search_model("vanilla", 10, channels=size["search_channels"], backend=args.backend).to(device)
    capture = not args.no_capture
    weights, arch = make_optimizers(model, SearchConfig(), capturable=capture and device.type == "cuda")
    steps = args.steps + UNTIMED_STEPS
    train, val = batches(steps, size["batch"], device), batches(steps, size["batch"], device)
    report = CaptureReport(mode=capture)

    def run(on_step=None):
        return search_epoch(model, train, val, weights, arch, device, 1.0, on_step, capture=capture,
                            autocast_mode=args.autocast, capture_report=report)  # fmt: skip

    seconds, timed = timed_epoch(run, device)
    validation = validation_seconds(model, val[: max(args.steps, 3)], device, "search", capture)
    result = {"backend": model_backend(model), **epoch_figures("search", seconds, timed, size["batch"], validation, report)}
    if args.profile and device.type == "cuda":
        result.update(per_step(profile_epoch(run, device), steps))
    return result


def per_step(profile: dict | None, steps: int) -> dict:
    if not profile:
        return {}
    return {"profile": {**profile, **{f"{key}_per_step": round(profile[key] / steps, 1)
                                      for key in ("launches", "gpu_kernels", "host_syncs")}}}


def train_epoch_time(args, device: torch.device) -> dict:
    size = SIZES[args.size]
    torch.manual_seed(0)
    model = build_eval_model("vanilla", num_classes=10, channels=size["eval_channels"], backend=args.backend).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.7, weight_decay=3e-4)
    steps = args.steps + UNTIMED_STEPS
    data = batches(steps, size["batch"], device)
    report = CaptureReport(mode=not args.no_capture)

    def run(on_step=None):
        return train_epoch(model, data, optimizer, device, 1.0, on_step=on_step, capture=not args.no_capture,
                           autocast_mode=args.autocast, capture_report=report)  # fmt: skip

    seconds, timed = timed_epoch(run, device)
    validation = validation_seconds(model, data[: max(3, min(args.steps, VALIDATION_BATCHES["train"]))], device, "train",
                                    not args.no_capture)  # fmt: skip
    result = {"backend": model_backend(model), **epoch_figures("train", seconds, timed, size["batch"], validation, report)}
    if args.profile and device.type == "cuda":
        result.update(per_step(profile_epoch(run, device), steps))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", choices=sorted(SIZES), default="paper")
    parser.add_argument("--backend", default="auto", choices=("auto", "eager", "native", "triton"))
    parser.add_argument("--no-capture", action="store_true", help="no CUDA-graph replay")
    parser.add_argument("--autocast", choices=("none", "bf16"), default="none")
    parser.add_argument("--matmul-precision", choices=("tf32", "highest"), default="tf32")
    parser.add_argument("--steps", type=int, default=20, help="steps timed (the epoch time is scaled from them)")
    parser.add_argument("--kind", default="search,train", help="search, train or both")
    parser.add_argument("--profile", action="store_true", help="CUDA: one more epoch under the profiler (launches, kernels)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    device = torch.device(args.device)
    select_device(device)
    apply_matmul_precision(args.matmul_precision, device)
    result = {"device": str(device), "size": args.size, "capture": not args.no_capture, "autocast": args.autocast,
              "matmul_precision": args.matmul_precision}
    for kind in args.kind.split(","):
        if kind not in EPOCH_STEPS:
            parser.error(f"unknown --kind {kind!r}; valid: search, train")
        result[kind] = (search_epoch_time if kind == "search" else train_epoch_time)(args, device)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for kind in EPOCH_STEPS:
            if kind in result:
                r = result[kind]
                print(f"{kind:6s} {r['backend']:7s} epoch {r['epoch_s']:8.2f} s, with validation "
                      f"{r['epoch_with_validation_s']:8.2f} s ({r['images_per_s']:,.0f} images/s, {r['steps']} steps timed, "
                      f"{r['capture']['replayed_steps']} replayed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A fused backend against eager on the real network, and graphed steps against eager ones.

Usage::

    python benchmarks/gpu_equivalence.py [--device cuda] [--size paper|tiny] [--backend triton] [--json]

1. **Backend vs eager**: one search-network step (forward, loss, backward) in float32 with
   TF32 off, from the same weights and batch, on ``--backend`` and on the eager backend:
   the largest difference of the logits and of every gradient (α's included), relative to
   the largest value of each. The CUDA tests check the kernels in float64 at tiny sizes;
   this checks the paper's sizes and float32 on the GPU itself (expected: float32
   round-off, ~1e-5 relative; anything ≥ 1e-3 is reported as a failure).
2. **Graphed vs eager**: first-order search steps (α step, weight step, both optimisers)
   with CUDA-graph capture against the same steps run eagerly from the same start — 3
   warm-up steps, then 3 replayed — and the weights afterwards compared; the capture
   report says how many steps were replayed and why capture was abandoned, if it was.

On the CPU (``benchmarks/gpu_check.sh --dry-run``) the same flow runs at tiny sizes with
the native backend; capture does not apply there (the report says so: no replayed steps).
Prints one JSON object; exit status 1 when a comparison fails.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_cells.py

import torch
import torch.nn.functional as F

from dartsrenet.config import SearchConfig
from dartsrenet.networks import build_search_model
from dartsrenet.search import make_optimizers, search_epoch
from dartsrenet.steps import GRAPH_WARMUP_STEPS, CaptureReport, apply_matmul_precision, select_device

SIZES = {"paper": {"channels": 128, "batch": 64}, "tiny": {"channels": 4, "batch": 4}}
TOLERANCE = 1e-3
"""Largest accepted difference relative to the largest value (float32 round-off is ~1e-5)."""


def relative_difference(actual: torch.Tensor, expected: torch.Tensor, floor: float = 1e-30) -> float:
    """max |actual − expected| over the largest |expected| (at least ``floor``)."""
    scale = max(float(expected.abs().max()), floor)
    return float((actual.double() - expected.double()).abs().max()) / scale


def backend_step(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    logits = model(images)
    F.cross_entropy(logits, labels).backward()
    grads = {name: parameter.grad.detach().clone() for name, parameter in model.named_parameters() if parameter.grad is not None}
    return {"logits": logits.detach().clone(), **grads}


def compare_backends(backend: str, size: dict, device: torch.device) -> dict:
    torch.manual_seed(0)
    eager = build_search_model("vanilla", num_classes=10, channels=size["channels"], backend="eager").to(device)
    fused = build_search_model("vanilla", num_classes=10, channels=size["channels"], backend=backend).to(device)
    fused.load_state_dict(eager.state_dict())
    images = torch.randn(size["batch"], 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (size["batch"],), device=device)
    expected, actual = backend_step(eager, images, labels), backend_step(fused, images, labels)
    # a gradient that is ~0 by construction (the bias of a BatchNorm followed by another one)
    # is compared at 1 % of the largest gradient's scale, not at its own round-off
    floor = 1e-2 * max(float(value.abs().max()) for name, value in expected.items() if name != "logits")
    differences = {name: relative_difference(actual[name], expected[name], floor) for name in expected}
    worst = max(differences, key=differences.get)
    return {
        "backend": backend, "dtype": "float32", "tf32": False, "tensors": len(differences),
        "largest_relative_difference": differences[worst], "where": worst,
        "logits_relative_difference": differences["logits"], "ok": differences[worst] < TOLERANCE,
    }


def graphed_steps(backend: str, size: dict, device: torch.device, replayed: int = 3) -> dict:
    steps = GRAPH_WARMUP_STEPS + replayed
    generator = torch.Generator(device="cpu").manual_seed(1)
    data = [(torch.randn(size["batch"], 3, 32, 32, generator=generator).to(device),
             torch.randint(0, 10, (size["batch"],), generator=generator).to(device)) for _ in range(2 * steps)]
    train, val = data[:steps], data[steps:]
    torch.manual_seed(2)
    start = build_search_model("vanilla", num_classes=10, channels=size["channels"], backend=backend).to(device)
    results = {}
    for capture in (True, False):
        model = copy.deepcopy(start)
        weights, arch = make_optimizers(model, SearchConfig(), capturable=capture and device.type == "cuda")
        report = CaptureReport(mode=capture)
        search_epoch(model, train, val, weights, arch, device, 1.0, capture=capture, capture_report=report)
        results[capture] = (torch.cat([p.detach().flatten() for p in model.parameters()]), report)
    (graphed, report), (eager, _) = results[True], results[False]
    difference = relative_difference(graphed, eager)
    return {
        "steps": steps, "capture": report.as_dict(), "weights_relative_difference": difference,
        "ok": difference < TOLERANCE and report.abandoned is None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--size", choices=sorted(SIZES), default="paper")
    parser.add_argument("--backend", default="triton", help="the fused backend compared with eager")
    parser.add_argument("--json", action="store_true", help="(the output is always JSON; kept for symmetry)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    select_device(device)
    apply_matmul_precision("highest", device)  # TF32 off: float32 products as float32
    size = SIZES[args.size]
    result = {"device": str(device), "size": args.size, "backend_vs_eager": compare_backends(args.backend, size, device)}
    print(json.dumps(result), flush=True)  # the first figure is out even if the second step crashes
    result["graphed_vs_eager"] = graphed_steps(args.backend, size, device)
    print(json.dumps(result), flush=True)
    return 0 if result["backend_vs_eager"]["ok"] and result["graphed_vs_eager"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

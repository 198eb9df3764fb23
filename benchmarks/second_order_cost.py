"""Cost of a second-order DARTS search step relative to a first-order one, in one process.

Usage::

    python benchmarks/second_order_cost.py [--device cpu] [--size demo|paper] [--backend native]
                                           [--steps N] [--rounds R] [--json]

Runs :func:`dartsrenet.search.search_epoch` with ``arch_order=1`` and ``arch_order=2`` on
the same synthetic CIFAR-10-shaped batches (already on the device), alternating the two
for ``--rounds`` rounds after one untimed warm-up epoch of each, and reports the median
seconds per step of each and their ratio. Alternating within one process keeps the ratio
meaningful on a shared machine where absolute times drift. A second-order step does five
forward/backward passes (virtual step, validation loss at w', two finite-difference
passes, the weight step) where first order does two, so the ratio should be near 2.5.
Capture is off for both (second order runs eagerly; see ``search_epoch``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_cells.py

import torch

from dartsrenet.cells.backends import BACKENDS
from dartsrenet.config import SearchConfig
from dartsrenet.networks import build_search_model
from dartsrenet.search import make_optimizers, search_epoch

SIZES = {"demo": {"channels": 16, "batch": 32}, "paper": {"channels": 128, "batch": 64}}


def synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_batches(steps: int, batch: int, device: torch.device, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(batch, 3, 32, 32, generator=generator).to(device),
         torch.randint(0, 10, (batch,), generator=generator).to(device))
        for _ in range(steps)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", choices=sorted(SIZES), default="demo")
    parser.add_argument("--backend", choices=BACKENDS, default="native")
    parser.add_argument("--steps", type=int, default=4, help="steps per timed epoch (>= 1)")
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs of each order (>= 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.rounds < 1:
        parser.error(f"--steps and --rounds must be >= 1, got --steps {args.steps} --rounds {args.rounds}")
    device = torch.device(args.device)
    size = SIZES[args.size]
    torch.manual_seed(0)
    model = build_search_model("vanilla", channels=size["channels"], backend=args.backend).to(device)
    weight_optimizer, arch_optimizer = make_optimizers(model, SearchConfig())
    train = make_batches(args.steps, size["batch"], device, seed=1)
    val = make_batches(args.steps, size["batch"], device, seed=2)

    def epoch(order: int) -> float:
        synchronise(device)
        start = time.perf_counter()
        search_epoch(model, train, val, weight_optimizer, arch_optimizer, device, capture=False, arch_order=order)
        synchronise(device)
        return (time.perf_counter() - start) / args.steps

    epoch(1), epoch(2)  # warm-up: lazily created state, BatchNorm slots, optimiser moments
    per_step: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(args.rounds):
        for order in (1, 2):
            per_step[order].append(epoch(order))
    first, second = statistics.median(per_step[1]), statistics.median(per_step[2])
    result = {
        "device": str(device), "backend": args.backend, "size": args.size, "channels": size["channels"],
        "batch": size["batch"], "steps": args.steps, "rounds": args.rounds, "threads": torch.get_num_threads(),
        "first_order_s_per_step": first, "second_order_s_per_step": second, "ratio": second / first,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.size} size ({size['channels']} channels, batch {size['batch']}), {args.backend} backend on {device}, "
              f"{torch.get_num_threads()} threads, median of {args.rounds} × {args.steps} steps:")
        print(f"  first order  {first * 1000:8.1f} ms/step")
        print(f"  second order {second * 1000:8.1f} ms/step   ratio {second / first:.2f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())

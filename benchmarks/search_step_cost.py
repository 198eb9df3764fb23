"""Cost of a search step under each strategy and α-gradient order relative to first-order
DARTS, in one process.

Usage::

    python benchmarks/search_step_cost.py [--arms darts darts_order2 sdarts_rs gdas rsws]
                                          [--device cpu] [--size demo|paper] [--backend native]
                                          [--steps N] [--rounds R] [--json]

Runs :func:`dartsrenet.search.search_epoch` for each arm on the same synthetic
CIFAR-10-shaped batches (already on the device), alternating the arms for ``--rounds``
rounds after one untimed warm-up epoch of each, and reports the median seconds per step
and the ratio to ``darts`` (first-order DARTS, always measured). Alternating within one
process keeps the ratios meaningful on a shared machine where absolute times drift.

The arms: ``darts`` and ``darts_order2`` (second-order DARTS, eq. 7–8 of the DARTS paper:
five forward/backward passes — virtual step, validation loss at w′, two finite-difference
passes, the weight step — where first order does two, so a ratio near 2.5); ``sdarts_rs``,
``gdas`` and ``rsws`` (``darts_pt`` trains as ``darts``; docs/search-strategies.md). GDAS's
weight step and RSWS's only step compute the sampled path alone (plain PyTorch, whatever
the backend); GDAS's α step runs the whole cell with the straight-through sample as mixing
weights on the chosen backend. Capture is off for all (second order runs eagerly).
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
from dartsrenet.strategies import make_strategy

SIZES = {"demo": {"channels": 16, "batch": 32}, "paper": {"channels": 128, "batch": 64}}
#: arm → (strategy, α-gradient order).
ARMS: dict[str, tuple[str, int]] = {
    "darts": ("darts", 1),
    "darts_order2": ("darts", 2),
    "sdarts_rs": ("sdarts_rs", 1),
    "gdas": ("gdas", 1),
    "rsws": ("rsws", 1),
}
BASELINE = "darts"


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
    parser.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS),
                        help=f"what to time (default: all; {BASELINE} is always timed as the baseline)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", choices=sorted(SIZES), default="demo")
    parser.add_argument("--backend", choices=BACKENDS, default="native")
    parser.add_argument("--steps", type=int, default=4, help="steps per timed epoch (>= 1)")
    parser.add_argument("--rounds", type=int, default=3, help="timed epochs of each arm (>= 1)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.rounds < 1:
        parser.error(f"--steps and --rounds must be >= 1, got --steps {args.steps} --rounds {args.rounds}")
    arms = [BASELINE] + [arm for arm in dict.fromkeys(args.arms) if arm != BASELINE]
    device = torch.device(args.device)
    size = SIZES[args.size]
    torch.manual_seed(0)
    model = build_search_model("vanilla", channels=size["channels"], backend=args.backend).to(device)
    weight_optimizer, arch_optimizer = make_optimizers(model, SearchConfig())
    train = make_batches(args.steps, size["batch"], device, seed=1)
    val = make_batches(args.steps, size["batch"], device, seed=2)
    strategies = {arm: make_strategy(SearchConfig(strategy=ARMS[arm][0], epochs=10)) for arm in arms}

    def epoch(arm: str) -> float:
        synchronise(device)
        start = time.perf_counter()
        search_epoch(model, train, val, weight_optimizer, arch_optimizer, device, capture=False,
                     arch_order=ARMS[arm][1], strategy=strategies[arm])
        synchronise(device)
        return (time.perf_counter() - start) / args.steps

    for arm in arms:  # warm-up: lazily created state, BatchNorm slots, optimiser moments
        epoch(arm)
    per_step: dict[str, list[float]] = {arm: [] for arm in arms}
    for _ in range(args.rounds):
        for arm in arms:
            per_step[arm].append(epoch(arm))
    medians = {arm: statistics.median(times) for arm, times in per_step.items()}
    ratios = {arm: medians[arm] / medians[BASELINE] for arm in arms}
    result = {
        "device": str(device), "backend": args.backend, "size": args.size, "channels": size["channels"],
        "batch": size["batch"], "steps": args.steps, "rounds": args.rounds, "threads": torch.get_num_threads(),
        "s_per_step": medians, "ratio_to_darts": ratios,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.size} size ({size['channels']} channels, batch {size['batch']}), {args.backend} backend on {device}, "
              f"{torch.get_num_threads()} threads, median of {args.rounds} × {args.steps} steps:")
        for arm in arms:
            print(f"  {arm:<13} {medians[arm] * 1000:8.1f} ms/step   {ratios[arm]:.2f}× DARTS")
    return 0


if __name__ == "__main__":
    sys.exit(main())

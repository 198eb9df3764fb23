"""What each optimisation of the DARTS cells' sweep bought: an ablation in one process.

Usage::

    python benchmarks/ablation.py [--revision REV] [--sequences N] [--rounds R] [--search]

Times one forward + backward sweep (the first ReNet layer's horizontal sweep, as in
``bench_cells.py``) of:

* ``nn.GRU`` (the bar);
* ``before``: ``dartsrenet/cells.py`` as of git revision REV (default ``ca019c8``, the
  code before the speed work), loaded from git;
* ``before+unbind``: the same, its sweep reading the steps with ``unbind`` instead of
  ``x[t]`` (each ``x[t]`` of a tensor that needs a gradient costs a zero-filled gradient
  of the whole (T, 2, B, C) input in the backward pass);
* ``eager step path``: today's cells in eager PyTorch (fused kernels off) through the plain
  step loop (batch-major states, ``lerp`` node update, the search mixture's algebra, no
  hoisting);
* ``eager sweep``: today's sweep in eager PyTorch (+ the input projection hoisted out of the
  recurrence);
* ``fused kernels``: today's sweep as it runs by default on a CPU, with the C kernels of
  ``dartsrenet/kernels/native.py`` run by ``dartsrenet/cells/fused_sweep.py`` (one autograd
  node per sweep);
* ``oracle``: ``dartsrenet/testing/reference_cells.py``.

Figures are the fastest of ``--rounds`` round-robin rounds.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_cells.py

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

from dartsrenet import cells
from dartsrenet.genotypes import NUM_NODES, PAPER_GENOTYPES, num_edges


def load_module(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def old_cells(revision: str, directory: Path):
    """cells.py at ``revision``, and a copy whose sweep uses ``unbind``."""
    source = subprocess.run(
        ["git", "show", f"{revision}:dartsrenet/cells.py"], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    before = directory / "cells_before.py"
    before.write_text(source)
    old_loop = "        for t in range(length):\n            output, state = self.step(both[t], state)"
    if old_loop not in source:
        raise SystemExit(f"cells.py at {revision} has no x[t] sweep loop to patch")
    patched = source.replace(old_loop, "        for t, step_input in enumerate(both.unbind(0)):\n            output, state = self.step(step_input, state)")
    unbound = directory / "cells_before_unbind.py"
    unbound.write_text(patched)
    return load_module("cells_before", before), load_module("cells_before_unbind", unbound)


def with_backend(cell, backend: str, sweep):
    """``sweep`` with ``cell`` computing on ``backend`` for its forward pass."""

    def run(inputs):
        cell.use_backend(backend)
        return sweep(inputs)

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--revision", default="ca019c8")
    parser.add_argument("--sequences", type=int, default=1024)
    parser.add_argument("--length", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--search", action="store_true", help="the search cell (N = 128) instead of the vanilla genotype")
    args = parser.parse_args()
    from dartsrenet.testing import reference_cells
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as directory:
        before, before_unbind = old_cells(args.revision, Path(directory))
        channels = 128 if args.search else 256
        input_size, hidden = 4 * channels, channels // 2
        if args.search:
            architecture = cells.ArchitectureWeights()
            with torch.no_grad():
                architecture.alpha.normal_()
            make = lambda module: module.DartsSearchCell(input_size, hidden, architecture, "vanilla")
            flops_per_step = 2 * 2 * ((input_size + hidden) * 2 * hidden + num_edges(NUM_NODES) * hidden * 2 * hidden)
        else:
            genotype = PAPER_GENOTYPES["vanilla"]
            make = lambda module: module.DartsCell(input_size, hidden, genotype, "vanilla")
            flops_per_step = 2 * 2 * ((input_size + hidden) * 2 * hidden + NUM_NODES * hidden * 2 * hidden)
        today = make(cells)
        old, old_unbind = make(before), make(before_unbind)
        weights = {name: value for name, value in today.state_dict().items() if "running" not in name}
        old.load_state_dict(weights, strict=False)  # the same weights (BatchNorm statistics differ in layout)
        old_unbind.load_state_dict(weights, strict=False)
        oracle = reference_cells.reference_from_library(today)
        alpha = architecture.alpha if args.search else None
        gru = cells.GRUCell(input_size, hidden)
        x = torch.randn(args.length, args.sequences, input_size, requires_grad=True)
        sweeps = {
            "nn.GRU": gru.sweep,
            "before": old.sweep,
            "before+unbind": old_unbind.sweep,
            "eager step path": with_backend(today, "eager", lambda inputs: cells.BidirectionalCell.sweep(today, inputs)),
            "eager sweep": with_backend(today, "eager", today.sweep),
            "fused kernels": with_backend(today, "native", today.sweep),
            "oracle": lambda inputs: oracle.sweep(inputs, alpha),
        }
        best = {name: float("inf") for name in sweeps}
        for round_index in range(args.rounds + 1):  # round 0 warms up
            for name, sweep in sweeps.items():
                start = time.perf_counter()
                out = sweep(x)
                out.backward(torch.ones_like(out))
                x.grad = None
                if round_index:
                    best[name] = min(best[name], time.perf_counter() - start)
        flops = 3 * args.sequences * args.length * flops_per_step
        gru_flops = 3 * args.sequences * args.length * 2 * 2 * (input_size * 3 * hidden + hidden * 3 * hidden)
        gru_rate = gru_flops / best["nn.GRU"]
        print(f"{'sweep':16s} {'ms':>9s} {'GFLOP/s':>8s} {'×GRU':>6s} {'×before':>8s}")
        for name, seconds in best.items():
            rate = (gru_flops if name == "nn.GRU" else flops) / seconds
            print(f"{name:16s} {seconds * 1e3:9.1f} {rate / 1e9:8.1f} {rate / gru_rate:6.2f} {best['before'] / seconds:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

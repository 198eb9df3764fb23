"""Kernels per train step, counted on the CPU: the launch proxy for GPUs (``bench_cells.py --count-kernels``).

On a GPU a DARTS cell's step is launch-bound: each dispatched element-wise op is a kernel
of a few microseconds. This counts, for one train step run through the engine's own epoch
functions (:func:`dartsrenet.search.search_epoch`: an α step and a weight step;
:func:`dartsrenet.training.train_epoch`: the vanilla evaluation network's step):

* ``kernels``: every dispatched aten op that would launch a GPU kernel — views
  (``OpOverload.is_view``) and bare allocations (``empty*``) launch none and are left
  out — plus every Triton kernel launch;
* ``aten_ops``: every dispatched aten op, views and allocations included (how the eager
  path's ~61,000 was counted before the backends existed).

The ``triton`` backend runs under Triton's interpreter (``TRITON_INTERPRET=1``): its
kernels are counted when launched and run for real, and its Python glue's aten ops are
counted like everything else. Each Triton kernel is a custom op
(``torch.ops.dartsrenet.triton_*``) that the dispatch mode sees as one op; its launches
are counted instead of the op itself.

The counts depend on the image size (how many ReNet steps a sweep has) and on the
network's structure, not on the batch or the channel width, so they are taken at 32×32
images with a small batch and width (``COUNT_BATCH``, ``COUNT_CHANNELS``): the same
launches as paper size, in seconds instead of the interpreter's hours. The optimisers run
their ``foreach`` paths here, as on CUDA by default; gradient clipping runs per tensor on
the CPU (a few dozen ops more than CUDA's ``foreach`` norm).
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

COUNT_BATCH = 4
COUNT_CHANNELS = 8
ALLOCATIONS = {"empty", "empty_strided", "new_empty", "new_empty_strided", "empty_like", "lift_fresh"}


class KernelCounter(TorchDispatchMode):
    """Counts dispatched aten ops (all, and those that launch a kernel) and Triton launches."""

    def __init__(self) -> None:
        super().__init__()
        self.aten_ops = 0
        self.kernels = 0
        self.by_name: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        namespace = func.namespace
        if namespace == "dartsrenet":  # a Triton custom op: its launches count (see count_triton_launches)
            return func(*args, **(kwargs or {}))
        self.aten_ops += 1
        if not (func.is_view or name in ALLOCATIONS):
            self.kernels += 1
            self.by_name[name] += 1
        return func(*args, **(kwargs or {}))


class TritonLaunches:
    """Counts Triton kernel launches (each ``kernel[grid](...)`` call), interpreted or compiled."""

    def __init__(self) -> None:
        self.count = 0
        self._patched: list[tuple[type, Any]] = []

    def __enter__(self) -> TritonLaunches:
        from triton.runtime.interpreter import InterpretedFunction
        from triton.runtime.jit import JITFunction

        for cls in (InterpretedFunction, JITFunction):
            original = cls.run

            def run(kernel, *args, _original=original, **kwargs):
                self.count += 1
                return _original(kernel, *args, **kwargs)

            cls.run = run
            self._patched.append((cls, original))
        return self

    def __exit__(self, *exc) -> None:
        for cls, original in self._patched:
            cls.run = original
        self._patched.clear()


def _foreach(*optimizers: torch.optim.Optimizer) -> None:
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["foreach"] = True


def _batches(count: int, classes: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.randn(COUNT_BATCH, 3, 32, 32), torch.randint(0, classes, (COUNT_BATCH,))) for _ in range(count)]


def _count(run_step) -> dict[str, int]:
    run_step()  # warm-up: lazily created state (BatchNorm slots, optimiser moments) is not per step
    launches = TritonLaunches() if os.environ.get("TRITON_INTERPRET") == "1" else None
    counter = KernelCounter()
    if launches is not None:
        with launches, counter:
            run_step()
    else:
        with counter:
            run_step()
    triton = launches.count if launches is not None else 0
    return {"kernels": counter.kernels + triton, "aten_ops": counter.aten_ops, "triton_launches": triton,
            "top_ops": dict(counter.by_name.most_common(8))}


def search_step_counts(backend: str) -> dict[str, int]:
    """Kernels of one first-order search step (α step + weight step) of the vanilla search network."""
    from dartsrenet.config import SearchConfig
    from dartsrenet.networks import build_search_model
    from dartsrenet.search import make_optimizers, search_epoch

    torch.manual_seed(0)
    model = build_search_model("vanilla", 10, channels=COUNT_CHANNELS, backend=backend)
    weights, arch = make_optimizers(model, SearchConfig())
    _foreach(weights, arch)
    train, val = _batches(1, 10), _batches(1, 10)
    device = torch.device("cpu")
    return _count(lambda: search_epoch(model, train, val, weights, arch, device, grad_clip=1.0))


def train_step_counts(backend: str) -> dict[str, int]:
    """Kernels of one train step of the vanilla evaluation network."""
    from dartsrenet.networks import build_eval_model
    from dartsrenet.training import train_epoch

    torch.manual_seed(0)
    model = build_eval_model("vanilla", num_classes=10, channels=COUNT_CHANNELS, backend=backend)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.7, weight_decay=3e-4, foreach=True)
    batches = _batches(1, 10)
    return _count(lambda: train_epoch(model, batches, optimizer, torch.device("cpu"), grad_clip=1.0))


def kernels_per_step(backends: tuple[str, ...] = ("eager", "triton")) -> dict[str, Any]:
    """``{"kernels_per_step": {"search": {backend: N}, "train": {backend: N}}, "details": …}``."""
    details: dict[str, dict[str, Any]] = {"search": {}, "train": {}}
    for backend in backends:
        details["search"][backend] = search_step_counts(backend)
        details["train"][backend] = train_step_counts(backend)
    return {
        "kernels_per_step": {kind: {b: counts["kernels"] for b, counts in per.items()} for kind, per in details.items()},
        "details": details,
        "shape": {"image": 32, "batch": COUNT_BATCH, "channels": COUNT_CHANNELS},
    }

"""A train step's autograd graph is freed by reference counting alone, on every backend.

A tensor kept alive only by a reference cycle (e.g. an autograd Function that keeps its
own output on ``ctx``: output → grad_fn → ctx → output) is freed only when Python's
cycle collector happens to run — for the large activations of a sweep, too late: a
search trial grew by ~50 MB a step until the machine ran out of memory. These tests
make such a cycle an error: after a forward and backward pass, nothing the step created
may be left for the cycle collector.
"""

from __future__ import annotations

import gc

import pytest
import torch

from dartsrenet.kernels import native_build as native
from dartsrenet.cells import ArchitectureWeights, DartsCell, DartsSearchCell
from dartsrenet.genotypes import PAPER_GENOTYPES

HIDDEN, BATCH, STEPS = 6, 3, 4

BACKENDS = ["eager", pytest.param("native", marks=pytest.mark.skipif(
    native.library() is None, reason=f"no C kernels: {native.unavailable_reason()}"
))]


def make_cell(kind: str, variant: str) -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "derived":
        return DartsCell(5, HIDDEN, PAPER_GENOTYPES[variant], variant)
    return DartsSearchCell(5, HIDDEN, ArchitectureWeights(), variant)


def tensors_left_for_the_cycle_collector(step) -> list[tuple[int, ...]]:
    """Run ``step`` with the cycle collector off; return the shapes of the tensors it left
    in reference cycles (shapes only: the tensors themselves are released here)."""
    gc.collect()
    gc.disable()
    # Tensors alive before the step (e.g. kept by a failed test's traceback) are not its own.
    before = {id(obj) for obj in gc.get_objects() if issubclass(type(obj), torch.Tensor)}
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        step()
        gc.collect()
        return [tuple(obj.shape) for obj in gc.garbage if issubclass(type(obj), torch.Tensor) and id(obj) not in before]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
        gc.collect()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["derived", "search"])
@pytest.mark.parametrize("variant", ["vanilla", "sigmoid_weighting", "directional_weight_sharing"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_a_sweep_leaves_nothing_for_the_cycle_collector(backend, kind, variant, training):
    cell = make_cell(kind, variant)
    cell.use_backend(backend)
    cell.train(training)

    def step():
        x = torch.randn(STEPS, BATCH, 5, requires_grad=True)
        out = cell.sweep(x)
        out.square().sum().backward()

    step()  # warm-up: lazily built state (kernel plans, statistics buffers) is not a leak
    left = tensors_left_for_the_cycle_collector(step)
    assert left == [], f"{len(left)} tensor(s) freed only by the cycle collector, of shapes {left}"

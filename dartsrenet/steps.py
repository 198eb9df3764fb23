"""Train steps without host syncs: epoch totals kept on the device, steps replayed from CUDA graphs.

Two pieces the training loops (:func:`dartsrenet.training.train_epoch`,
:func:`dartsrenet.search.search_epoch`) use:

* :class:`EpochTotals` — the epoch's loss sum, correct predictions and image count, and
  the first step whose loss was not finite, all as tensors on the device: a step adds to
  them without reading anything back, and the epoch reads them once at its end (one host
  sync per epoch instead of three per step). A non-finite loss is still an error that
  names its step (:class:`~dartsrenet.runs.NonFiniteLossError`), raised at the end of the
  epoch, before anything of that epoch is written.
* :class:`GraphedStep` — on CUDA, records a step function (forward, backward, optimiser
  steps) once as a CUDA graph after a few eager warm-up steps and replays it for every
  later batch of the same shape: one launch per step instead of thousands. Inputs are
  copied into static buffers; a batch of another shape (an epoch's last, smaller batch)
  runs eagerly. On the CPU, or with capture switched off, the step simply runs. A capture
  that fails warns once and the steps run eagerly from then on: slower, never different.

What a step function must do to be capturable: zero gradients in place
(``zero_grad(set_to_none=False)``), use optimisers that keep their step counters on the
device (Adam's ``capturable=True``), no ``.item()``, and no Python branches on tensor
values. A learning rate changed by a schedule is baked into the graph, so the loops make
one :class:`GraphedStep` per epoch (capturing costs milliseconds).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from dartsrenet.runs import NonFiniteLossError

GRAPH_WARMUP_STEPS = 3
"""Eager steps before capture: lazily created state (optimiser moments, BatchNorm slots,
cuBLAS workspaces) must exist before a graph records the memory it uses."""


class EpochTotals:
    """Loss, accuracy and finiteness of an epoch's steps, accumulated on ``device``.

    Args:
        device: where the steps' losses live.
        where: the steps' name in error messages, e.g. ``"epoch 3"`` (→ "loss became nan
            at epoch 3 step 17") or ``"search α"``.
    """

    def __init__(self, device: torch.device, where: str):
        self.where = where
        self.device = device
        self.loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        self.correct = torch.zeros((), dtype=torch.int64, device=device)
        self.seen = torch.zeros((), dtype=torch.int64, device=device)
        self.steps = torch.zeros((), dtype=torch.int64, device=device)
        self.first_bad_step = torch.full((), -1, dtype=torch.int64, device=device)
        self.first_bad_loss = torch.zeros((), dtype=torch.float64, device=device)

    def add(self, loss: Tensor, logits: Tensor | None = None, labels: Tensor | None = None) -> None:
        """Count one step's mean ``loss`` (and its accuracy when ``logits`` and ``labels`` are given)."""
        loss = loss.detach().double()
        finite = torch.isfinite(loss)
        first = (self.first_bad_step < 0) & ~finite
        self.first_bad_loss.copy_(torch.where(first, loss, self.first_bad_loss))
        self.first_bad_step.copy_(torch.where(first, self.steps, self.first_bad_step))
        if labels is not None:
            count = labels.numel()
            self.loss_sum.add_(loss * count)
            self.seen.add_(count)
            if logits is not None:
                self.correct.add_((logits.detach().argmax(dim=1) == labels).sum())
        self.steps.add_(1)

    def check_finite(self) -> None:
        """Raise :class:`NonFiniteLossError` naming the first step whose loss was not finite (one sync)."""
        step = int(self.first_bad_step)
        if step >= 0:
            raise NonFiniteLossError(
                f"loss became {float(self.first_bad_loss)} at {self.where} step {step}; stopping without writing "
                "a checkpoint (lower the learning rate or check the data)"
            )

    def result(self) -> tuple[float, float]:
        """(mean loss, accuracy) of the steps so far; raises if any loss was not finite."""
        self.check_finite()
        seen = int(self.seen)
        loss = float(self.loss_sum) / max(seen, 1)
        if not math.isfinite(loss):  # finite per-step losses can still overflow their sum
            raise NonFiniteLossError(f"{self.where} loss sum overflowed ({loss}); stopping without writing a checkpoint")
        return loss, int(self.correct) / max(seen, 1)


class FiniteWatch:
    """The first step after which a tensor (α, say) held a NaN or an infinity, tracked on the device.

    Args:
        device: where the watched tensor lives.
        message: the error's text, with ``{step}`` for the step, e.g.
            ``"α became non-finite after search α step {step}; …"``.
    """

    def __init__(self, device: torch.device, message: str):
        self.message = message
        self.steps = torch.zeros((), dtype=torch.int64, device=device)
        self.first_bad_step = torch.full((), -1, dtype=torch.int64, device=device)

    def add(self, tensor: Tensor) -> None:
        """Look at ``tensor`` after one more step (no host sync)."""
        first = (self.first_bad_step < 0) & ~torch.isfinite(tensor.detach()).all()
        self.first_bad_step.copy_(torch.where(first, self.steps, self.first_bad_step))
        self.steps.add_(1)

    def check(self) -> None:
        """Raise :class:`NonFiniteLossError` if the tensor was ever non-finite (one sync)."""
        step = int(self.first_bad_step)
        if step >= 0:
            raise NonFiniteLossError(self.message.format(step=step))


def checks_every_step(device: torch.device) -> bool:
    """Whether the loops read the finiteness back after every step: on the CPU, where that costs
    nothing and stops a diverged run at once; on GPUs once per epoch (no host syncs in a step)."""
    return device.type == "cpu"


def apply_matmul_precision(precision: str, device: torch.device) -> None:
    """On CUDA: float32 matmuls and cuDNN convolutions/RNNs on TF32 tensor cores (``"tf32"``, the
    default: ~10 mantissa bits in the products, fp32 accumulation) or in full fp32 (``"highest"``).
    Process-wide (PyTorch's own switches); nothing to do elsewhere."""
    if device.type == "cuda":
        tf32 = precision == "tf32"
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32


def autocast(device: torch.device, mode: str):
    """``torch.autocast`` for ``mode`` ``"bf16"`` on ``device`` (a no-op context for ``"none"``).

    The cells' fused backends then run their matmuls in bf16 and keep BatchNorm statistics
    and element-wise kernels in float32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode == "bf16")


class GraphedStep:
    """``step(*inputs)``, replayed from a CUDA graph on CUDA (see the module docstring).

    Args:
        step: the step function; returns nothing (it adds to an :class:`EpochTotals`).
        capture: record and replay on CUDA (ignored elsewhere).
        warmup_steps: eager steps before capture.
    """

    failed_once: bool = False  # a capture failed in this process: warn only once

    def __init__(self, step: Callable[..., None], capture: bool = True, warmup_steps: int = GRAPH_WARMUP_STEPS):
        self.step = step
        self.capture = capture
        self.warmup_steps = warmup_steps
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_inputs: list[Tensor] | None = None
        self.replays = 0
        self.failed = False

    def active_for(self, inputs: Sequence[Tensor]) -> bool:
        return self.capture and not self.failed and all(tensor.is_cuda for tensor in inputs)

    def __call__(self, *inputs: Tensor) -> None:
        if not self.active_for(inputs):
            self.step(*inputs)
            return
        if self.static_inputs is not None and [t.shape for t in inputs] != [t.shape for t in self.static_inputs]:
            self.step(*inputs)  # an epoch's last, smaller batch
            return
        if self.warmup_steps > 0:
            self.warmup_steps -= 1
            self._on_side_stream(self.step, inputs)
            return
        if self.graph is None:
            self._record(inputs)
            if self.graph is None:  # capture failed: this batch runs eagerly
                self.step(*inputs)
                return
        for static, tensor in zip(self.static_inputs, inputs, strict=True):
            static.copy_(tensor, non_blocking=True)
        self.graph.replay()
        self.replays += 1

    @staticmethod
    def _on_side_stream(step: Callable[..., None], inputs: Sequence[Tensor]) -> None:
        """Warm-up on a side stream, as capture requires."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            step(*inputs)
        torch.cuda.current_stream().wait_stream(stream)

    def _record(self, inputs: Sequence[Tensor]) -> None:
        self.static_inputs = [tensor.clone() for tensor in inputs]
        graph = torch.cuda.CUDAGraph()
        try:
            torch.cuda.synchronize()
            with torch.cuda.graph(graph):
                self.step(*self.static_inputs)
        except Exception as error:  # noqa: BLE001 — any capture failure: run eagerly from now on
            self.failed = True
            self.static_inputs = None
            torch.cuda.synchronize()
            if not GraphedStep.failed_once:
                GraphedStep.failed_once = True
                warnings.warn(
                    f"dartsrenet: CUDA graph capture failed, running the steps eagerly (same results, slower): "
                    f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}",
                    stacklevel=3,
                )
            return
        self.graph = graph

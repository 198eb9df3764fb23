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
  that fails warns once with its root cause (the first error of the chain, with where it
  was raised) and the run's steps go eager from then on: slower, never different. With
  ``capture="strict"`` the failure is raised instead. A :class:`CaptureReport` counts the
  replayed and eager steps and keeps the reason capture was abandoned (``summary.json``).
  The validation pass uses a second :class:`GraphedStep` for its eval-mode forward
  (:func:`dartsrenet.training.evaluate`), kept for the run like the train step's.
* :class:`HostSyncDetector` — a dispatch mode that raises on what a graph cannot hold: a
  tensor's value read back to the host (``.item()``, ``int(t)``, ``if t:``) or a host list
  copied into a tensor (``torch.tensor(list)``); the tests run steps under it on the CPU.
* :func:`select_device` — the run's CUDA device made the current one, once, so that
  Triton launches, streams and graphs all use the model's device (``cuda:1`` included).

What a step function must do to be capturable: zero gradients in place
(``zero_grad(set_to_none=False)``), use optimisers that keep their step counters on the
device (Adam's ``capturable=True``), no ``.item()``, and no Python branches on tensor
values. The loops keep one :class:`GraphedStep` (and the totals its step adds to, reset in
place each epoch) for the whole run, so a run captures one graph per batch shape: the
learning rate a schedule changes lives on the device (:func:`learning_rates_on_device`),
filled in place by the scheduler between epochs, never baked into the graph.
"""

from __future__ import annotations

import math
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

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

    def reset(self, where: str | None = None) -> None:
        """Start a new epoch in place (the same tensors: a captured step keeps adding to them)."""
        self.where = where if where is not None else self.where
        for tensor in (self.loss_sum, self.correct, self.seen, self.steps, self.first_bad_loss):
            tensor.zero_()
        self.first_bad_step.fill_(-1)

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

    def reset(self) -> None:
        """Start a new epoch in place (see :meth:`EpochTotals.reset`)."""
        self.steps.zero_()
        self.first_bad_step.fill_(-1)

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


CAPTURE_MODES = (False, True, "strict")
"""``capture`` settings: off, on (a failed capture warns and the steps run eagerly), strict
(a failed capture is raised, with the first error's full traceback)."""


class HostSyncError(RuntimeError):
    """A step did something a CUDA graph cannot hold (raised by :class:`HostSyncDetector`)."""


class HostSyncDetector(TorchDispatchMode):
    """Raises :class:`HostSyncError` on an op that reads a tensor's value back to the host
    (``.item()``, ``int(t)``, ``float(t)``, a Python branch on a tensor) or turns a host value
    into a tensor (``torch.tensor(list)``): on CUDA each is a host sync or a host-to-device copy,
    which graph capture refuses. Device-independent, so it checks steps on the CPU."""

    FORBIDDEN = {
        "aten._local_scalar_dense.default": "a tensor's value read back to the host (.item(), int(t), a Python branch)",
        "aten.lift_fresh.default": "a host value copied into a new tensor (torch.tensor(...))",
    }

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 — torch's protocol
        reason = self.FORBIDDEN.get(str(func))
        if reason is not None:
            raise HostSyncError(f"{func}: {reason}; a captured step cannot do this")
        return func(*args, **(kwargs or {}))


@dataclass
class CaptureReport:
    """What CUDA-graph capture did in a run (``summary.json``'s ``capture``).

    Attributes:
        mode: the ``capture`` setting (False, True or ``"strict"``).
        graphs: graphs captured.
        replayed_steps: steps replayed from a graph.
        eager_steps: steps run eagerly (warm-up, a batch of another shape, no CUDA, or after
            capture was abandoned).
        abandoned: why capture was abandoned (the root error, where it was raised), or None.
    """

    mode: bool | str = True
    graphs: int = 0
    replayed_steps: int = 0
    eager_steps: int = 0
    abandoned: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def root_cause(error: BaseException) -> BaseException:
    """The first error of ``error``'s chain (``__cause__``, else ``__context__``, followed to its end)."""
    seen = {id(error)}
    while True:
        earlier = error.__cause__ or error.__context__
        if earlier is None or id(earlier) in seen:
            return error
        seen.add(id(earlier))
        error = earlier


def describe_error(error: BaseException) -> str:
    """``Type: first line (at file:line)`` of ``error``, the place being its innermost frame."""
    text = str(error).splitlines()[0] if str(error) else ""
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(error).__name__}: {text}{where}"


def learning_rates_on_device(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Each param group's learning rate as a 0-dim tensor on ``device``, so that one captured step
    serves the whole run: PyTorch's schedulers fill a tensor learning rate in place. SGD switches
    to its fused kernel, which reads the tensor on the device (its foreach kernel would read it
    back to the host, a sync capture refuses); Adam reads it on the device when ``capturable``."""
    for group in optimizer.param_groups:
        if not isinstance(group["lr"], Tensor):
            group["lr"] = torch.tensor(float(group["lr"]), device=device)
        if isinstance(optimizer, torch.optim.SGD):
            group["fused"], group["foreach"] = True, False


def select_device(device: torch.device) -> None:
    """Make ``device`` the current CUDA device (nothing elsewhere): Triton launches and CUDA streams
    use the current device, so a run on ``cuda:1`` sets it once, before building anything."""
    if device.type == "cuda":
        torch.cuda.set_device(device)


class GraphedStep:
    """``step(*inputs)``, replayed from a CUDA graph on CUDA (see the module docstring).

    Args:
        step: the step function; returns nothing (it adds to an :class:`EpochTotals`).
        capture: one of :data:`CAPTURE_MODES`: record and replay on CUDA (ignored elsewhere);
            ``"strict"`` raises a failed capture instead of going eager.
        warmup_steps: eager steps before capture.
        report: the run's :class:`CaptureReport`, shared by its steps (a new one if None). Once
            it holds a reason, capture stays abandoned for the run.
    """

    def __init__(
        self, step: Callable[..., None], capture: bool | str = True, warmup_steps: int = GRAPH_WARMUP_STEPS,
        report: CaptureReport | None = None,
    ):  # fmt: skip
        if capture not in CAPTURE_MODES:
            raise ValueError(f"capture must be one of {', '.join(map(repr, CAPTURE_MODES))}, got {capture!r}")
        self.step = step
        self.capture = capture
        self.strict = capture == "strict"
        self.warmup_steps = warmup_steps
        self.report = report if report is not None else CaptureReport(mode=capture)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.static_inputs: list[Tensor] | None = None
        self.replays = 0

    @property
    def failed(self) -> bool:
        return self.report.abandoned is not None

    def active_for(self, inputs: Sequence[Tensor]) -> bool:
        return bool(self.capture) and not self.failed and all(tensor.is_cuda for tensor in inputs)

    def __call__(self, *inputs: Tensor) -> None:
        if not self.active_for(inputs):
            self._eager(inputs)
            return
        if self.static_inputs is not None and [t.shape for t in inputs] != [t.shape for t in self.static_inputs]:
            self._eager(inputs)  # an epoch's last, smaller batch
            return
        device = inputs[0].device
        if self.warmup_steps > 0:
            self.warmup_steps -= 1
            self._on_side_stream(self.step, inputs, device)
            self.report.eager_steps += 1
            return
        if self.graph is None:
            self._record(inputs, device)
            if self.graph is None:  # capture failed: this batch runs eagerly
                self._eager(inputs)
                return
        for static, tensor in zip(self.static_inputs, inputs, strict=True):
            static.copy_(tensor, non_blocking=True)
        self.graph.replay()
        self.replays += 1
        self.report.replayed_steps += 1

    def _eager(self, inputs: Sequence[Tensor]) -> None:
        self.step(*inputs)
        self.report.eager_steps += 1

    @staticmethod
    def _on_side_stream(step: Callable[..., None], inputs: Sequence[Tensor], device: torch.device) -> None:
        """Warm-up on a side stream of the inputs' device, as capture requires."""
        with torch.cuda.device(device):
            stream = torch.cuda.Stream(device)
            stream.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(stream):
                step(*inputs)
            torch.cuda.current_stream(device).wait_stream(stream)

    def _record(self, inputs: Sequence[Tensor], device: torch.device) -> None:
        self.static_inputs = [tensor.clone() for tensor in inputs]
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.device(device):
                torch.cuda.synchronize(device)
                with torch.cuda.graph(graph):
                    self.step(*self.static_inputs)
        except Exception as error:
            self.abandon(error, device)
            return
        self.graph = graph
        self.report.graphs += 1

    def abandon(self, error: BaseException, device: torch.device | None = None) -> None:
        """Handle a failed capture: raise its root cause (strict), or warn with it, record it in the
        report and run this and every later step of the run eagerly."""
        self.static_inputs = None
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
        root = root_cause(error)
        if self.strict:
            raise root
        self.report.abandoned = describe_error(root)
        warnings.warn(
            f"dartsrenet: CUDA graph capture failed, running the steps eagerly (same results, slower): "
            f"{self.report.abandoned}",
            stacklevel=3,
        )

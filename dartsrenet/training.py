"""Training as plain functions: one epoch, evaluation, seeding, and the progress of an epoch's steps.

The pieces the run engine (:mod:`dartsrenet.engine`) and the phases use:
:func:`train_epoch` (SGD over a loader), :func:`evaluate` and :func:`validation_metrics`
(eval mode, summed on the device), :func:`seed_epoch` (every epoch reseeded from
``(seed, epoch)``, so a resumed run repeats an uninterrupted one), :func:`cosine_schedule`,
and :class:`StepProgress`.

Nothing non-finite is ever a result: a NaN or infinite training loss raises
:class:`~dartsrenet.runs.NonFiniteLossError`; non-finite outputs on an evaluation split raise
:class:`~dartsrenet.runs.NonFiniteOutputError`, which :func:`validation_metrics` records as
``val_finite`` false (the epoch is then not eligible for selection:
:mod:`dartsrenet.selection_rule`).

Progress: each epoch shows a tqdm bar (steps, images/s, ETA) when stderr is a
terminal, and a plain progress line every 30 s otherwise (log files, Ray workers).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any, TextIO

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from dartsrenet.steps import CaptureReport, EpochTotals, GraphedStep, autocast, checks_every_step
from dartsrenet.runs import NonFiniteOutputError

Report = Callable[[dict[str, Any], Any], None]
Log = Callable[[str], None]
StepCallback = Callable[[int], None]
"""Called after every training step with the number of images of that step."""

PROGRESS_INTERVAL_S = 30.0


class StepProgress:
    """Progress through one epoch's steps, for people watching a run.

    On a terminal (``stream.isatty()``) a tqdm bar shows steps, images/s and the ETA
    and disappears when the epoch ends (the epoch line follows). Otherwise — log
    files, Ray workers — a plain line goes to ``log`` every ``interval_s`` seconds:
    ``[train] epoch 3/300: step 120/700 (17%), 850 images/s, ETA 0:01:10``.
    With ``log=None`` nothing is shown.

    Args:
        label: e.g. ``"[train] epoch 3/300"``.
        total_steps: steps in the epoch.
        log: where plain lines go (None: silent, no bar either).
        stream: the terminal the bar is drawn on (default: stderr).
        interval_s: seconds between plain lines.
    """

    def __init__(
        self,
        label: str,
        total_steps: int,
        log: Log | None,
        *,
        stream: TextIO | None = None,
        interval_s: float = PROGRESS_INTERVAL_S,
    ):
        stream = sys.stderr if stream is None else stream
        self.label = label
        self.total_steps = total_steps
        self.log = log
        self.interval_s = interval_s
        self.steps = 0
        self.images = 0
        self._started = self._last_line = time.monotonic()
        interactive = log is not None and _is_terminal(stream)
        self.bar = (
            tqdm(total=total_steps, desc=label, unit="step", file=stream, leave=False, dynamic_ncols=True)
            if interactive else None
        )

    def __call__(self, images: int) -> None:
        """Count one finished step of ``images`` images."""
        self.steps += 1
        self.images += images
        now = time.monotonic()
        if self.bar is not None:
            self.bar.set_postfix_str(f"{self.images / max(now - self._started, 1e-9):.0f} images/s", refresh=False)
            self.bar.update(1)
        elif self.log is not None and now - self._last_line >= self.interval_s and self.steps < self.total_steps:
            self._last_line = now
            self.log(self.line(now - self._started))

    def line(self, elapsed_s: float) -> str:
        """The plain progress line after ``elapsed_s`` seconds."""
        rate = self.images / max(elapsed_s, 1e-9)
        remaining = (self.total_steps - self.steps) * elapsed_s / max(self.steps, 1)
        percent = 100 * self.steps / max(self.total_steps, 1)
        return (
            f"{self.label}: step {self.steps}/{self.total_steps} ({percent:.0f}%), {rate:.0f} images/s, "
            f"ETA {timedelta(seconds=round(remaining))}"
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> StepProgress:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def epoch_seed(seed: int, epoch: int, stream: int = 0) -> int:
    """A seed for ``(run seed, epoch, stream)``, well spread and below 2**63."""
    return (seed * 1_000_003 + epoch * 10_007 + stream * 101) % (2**63 - 1)


def seed_epoch(seed: int, epoch: int, loaders: Iterable[DataLoader]) -> None:
    """Reseed torch's RNG (augmentation) and every loader's generator (order) for an epoch."""
    torch.manual_seed(epoch_seed(seed, epoch))
    random.seed(epoch_seed(seed, epoch))
    for stream, loader in enumerate(loaders, start=1):
        generator = getattr(loader, "generator", None)
        if generator is not None:
            generator.manual_seed(epoch_seed(seed, epoch, stream))


def train_epoch(
    model: nn.Module,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
    grad_clip: float = 0.0,
    where: str = "training",
    on_step: StepCallback | None = None,
    *,
    capture: bool | str = False,
    autocast_mode: str = "none",
    capture_report: CaptureReport | None = None,
    run_steps: dict | None = None,
) -> tuple[float, float]:
    """One epoch of SGD on ``loader``; returns (mean loss, accuracy).

    The loss, accuracy and finiteness are summed on the device (:class:`~dartsrenet.steps.EpochTotals`)
    and read back per step on the CPU, once per epoch on GPUs; with ``capture`` (True or
    ``"strict"``) on CUDA each step is replayed from a CUDA graph
    (:class:`~dartsrenet.steps.GraphedStep`), counted in ``capture_report``. With ``run_steps``
    (a dict the run keeps) the step, its graph and its totals are reused by later epochs.

    Raises:
        NonFiniteLossError: a step's loss is NaN or infinite (``where`` and the step are
            named); nothing of the epoch is kept.
    """
    model.train()
    run_steps = {} if run_steps is None else run_steps
    if "train" in run_steps:
        run_step, totals = run_steps["train"]
        totals.reset(where)
        return _run_train_steps(loader, device, on_step, run_step, totals)
    totals = EpochTotals(device, where)
    parameters = list(model.parameters())
    graphed = capture if device.type == "cuda" else False

    def step(images: torch.Tensor, labels: torch.Tensor) -> None:
        optimizer.zero_grad(set_to_none=not graphed)  # a graph's gradients keep their memory
        with autocast(device, autocast_mode):
            logits = model(images)
            loss = F.cross_entropy(logits.float(), labels)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(parameters, grad_clip)
        optimizer.step()
        totals.add(loss, logits, labels)

    run_step = GraphedStep(step, capture=graphed, report=capture_report)
    run_steps["train"] = (run_step, totals)
    return _run_train_steps(loader, device, on_step, run_step, totals)


def _run_train_steps(
    loader: DataLoader, device: torch.device, on_step: StepCallback | None, run_step: GraphedStep, totals: EpochTotals
) -> tuple[float, float]:
    """The epoch's loop of :func:`train_epoch`."""
    every_step = checks_every_step(device)
    for images, labels in loader:
        run_step(images.to(device, non_blocking=True), labels.to(device, non_blocking=True))
        if every_step:
            totals.check_finite()
        if on_step is not None:
            on_step(labels.numel())
    return totals.result()


@torch.no_grad()
def evaluate(
    model: nn.Module, loader: DataLoader, device: torch.device, where: str = "evaluation", *, autocast_mode: str = "none",
    capture: bool | str = False, capture_report: CaptureReport | None = None, run_steps: dict | None = None,
) -> tuple[float, float]:
    """Loss and accuracy in eval mode (BatchNorm on running statistics: docs/architecture.md §6.3),
    summed on the device and read back once.

    With ``capture`` on CUDA the eval-mode forward pass of a batch is replayed from a CUDA
    graph (a second graph beside the train step's, :class:`~dartsrenet.steps.GraphedStep`,
    counted in ``capture_report``); with ``run_steps`` (the run's dict) that graph and the sums
    it adds to are kept for the next validation pass (the sums reset in place).

    Raises:
        NonFiniteOutputError: some logits are NaN or infinite — their accuracy would be
            chance and their loss meaningless, so no number is returned.
    """
    model.eval()
    run_steps = {} if run_steps is None else run_steps
    if "evaluate" in run_steps:
        run_forward, (loss_sum, correct, finite) = run_steps["evaluate"]
        loss_sum.zero_(), correct.zero_(), finite.fill_(True)
    else:
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct = torch.zeros((), dtype=torch.int64, device=device)
        finite = torch.ones((), dtype=torch.bool, device=device)

        def forward(images: torch.Tensor, labels: torch.Tensor) -> None:
            with torch.no_grad(), autocast(device, autocast_mode):
                logits = model(images).float()
            finite.logical_and_(torch.isfinite(logits).all())
            loss_sum.add_(F.cross_entropy(logits, labels, reduction="sum").double())
            correct.add_((logits.argmax(dim=1) == labels).sum())

        graphed = capture if device.type == "cuda" else False
        run_forward = GraphedStep(forward, capture=graphed, warmup_steps=1, report=capture_report)
        run_steps["evaluate"] = (run_forward, (loss_sum, correct, finite))
    seen = 0
    for images, labels in loader:
        run_forward(images.to(device, non_blocking=True), labels.to(device, non_blocking=True))
        seen += labels.numel()
    if not bool(finite):
        raise NonFiniteOutputError(f"the network's outputs on the {where} are not finite (NaN or infinite)")
    return float(loss_sum) / max(seen, 1), int(correct) / max(seen, 1)


def validation_metrics(
    model: nn.Module, loader: DataLoader, device: torch.device, where: str = "validation split", *, autocast_mode: str = "none",
    **capture: Any,
) -> dict[str, Any]:
    """``val_loss``, ``val_accuracy`` and ``val_finite`` of an epoch (see :mod:`dartsrenet.selection_rule`).

    Non-finite outputs are recorded as ``val_loss = val_accuracy = None`` with
    ``val_finite = False``: the epoch is then not eligible for selection. ``capture``:
    :func:`evaluate`'s ``capture``, ``capture_report`` and ``run_steps``.
    """
    try:
        val_loss, val_accuracy = evaluate(model, loader, device, where, autocast_mode=autocast_mode, **capture)
    except NonFiniteOutputError:
        return {"val_loss": None, "val_accuracy": None, "val_finite": False}
    return {"val_loss": val_loss, "val_accuracy": val_accuracy, "val_finite": True}


def cosine_schedule(optimizer: torch.optim.Optimizer, epochs: int, lr_min: float) -> torch.optim.lr_scheduler.LRScheduler:
    """Cosine annealing from the optimiser's lr to ``lr_min`` over ``epochs`` (docs/architecture.md §3, §6)."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1), eta_min=lr_min)

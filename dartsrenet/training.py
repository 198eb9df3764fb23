"""Training as plain functions: one epoch, evaluation, seeding, and the run driver.

:class:`RunDriver` is what :func:`~dartsrenet.search.run_search` and
:func:`~dartsrenet.train.run_train` share: it resumes from a checkpoint, tracks the
best validation epoch, stops early, writes the checkpoint and metrics of every
epoch, calls ``report(metrics, checkpoint_dir)`` and writes the summary.

Reproducibility: the model is initialised after ``torch.manual_seed(seed)``, and
every epoch reseeds torch's RNG (augmentation) and each loader's generator (order)
from ``(seed, epoch)``. So an epoch depends only on the state at its start, and a
run resumed after epoch k ends with the same metrics as an uninterrupted one.

Nothing non-finite is ever a result: a NaN or infinite training loss stops the run
(:class:`~dartsrenet.runs.NonFiniteLossError`); an epoch whose validation outputs are
not finite is recorded with ``val_loss``/``val_accuracy`` null and ``val_finite``
false, and is never selected as the best epoch; non-finite test outputs stop the run
(:class:`~dartsrenet.runs.NonFiniteOutputError`).

Progress: each epoch shows a tqdm bar (steps, images/s, ETA) when stderr is a
terminal, and a plain progress line every 30 s otherwise (log files, Ray workers).
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any, TextIO

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from dartsrenet.cells import model_backend
from dartsrenet.config import Config
from dartsrenet.steps import CaptureReport, EpochTotals, GraphedStep, autocast, checks_every_step
from dartsrenet.runs import (
    CHECKPOINT_FILE,
    CheckpointError,
    JsonViews,
    NonFiniteOutputError,
    RunFolder,
    code_revision,
    library_versions,
    load_checkpoint,
)

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
    """``val_loss``, ``val_accuracy`` and ``val_finite`` of an epoch (see :meth:`RunDriver.end_epoch`).

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


class RunDriver:
    """Resume, best-epoch tracking, early stopping, checkpoints, metrics, report, summary.

    Args:
        kind: ``"search"`` or ``"train"``.
        config: the run's config (``config.out`` is the run folder).
        stateful: objects with ``state_dict``/``load_state_dict`` saved in every
            checkpoint (model, optimisers, scheduler), by name; ``"model"`` is required.
        report: called once per epoch with (metrics, checkpoint folder).
        resume_from: a checkpoint folder to resume from (e.g. given back by Ray Tune);
            default: the run folder's own checkpoint, if any.
        log: where progress lines go.
        views: the run kind's own files derived from its history (a search's α history
            and genotype), written with every commit and repaired on resume.
    """

    def __init__(
        self,
        kind: str,
        config: Config,
        stateful: dict[str, Any],
        report: Report | None = None,
        resume_from: Any = None,
        log: Log | None = print,
        views: JsonViews | None = None,
    ):
        self.kind = kind
        self.views = views
        self.config = config
        self.folder = RunFolder(config.out)
        self.stateful = stateful
        self.report = report
        self.log = log or (lambda message: None)
        self._progress_log = log
        self.history: list[dict[str, Any]] = []
        self.best_val_accuracy: float | None = None  # None until an epoch is selected
        self.best_epoch = 0  # 0: no epoch selected yet
        self.best_weights: dict[str, Any] | None = None
        self.epochs_without_improvement = 0
        self.finished = False
        self.wall_time_s = 0.0
        self._started = time.perf_counter()
        self._resume_from = resume_from

    @property
    def model(self) -> nn.Module:
        return self.stateful["model"]

    @property
    def start_epoch(self) -> int:
        return len(self.history) + 1

    def start(self, device: torch.device) -> None:
        """Check the folder, resume from a checkpoint if there is one, then write the config.

        The folder's saved config is compared with this run's whenever it exists, so a
        folder holding another run is refused before anything is written — whether or
        not its checkpoint is still there. Then the folder's other files are made to
        agree with the checkpoint (:meth:`~dartsrenet.runs.RunFolder.repair`: the state
        of a run killed at any instant).
        """
        config_dict = asdict(self.config)
        self.folder.check_config(config_dict, ignore=("device", "num_workers", "out"))
        source = self._resume_from or (self.folder.checkpoint_dir if self.folder.has_checkpoint() else None)
        state = None
        if source is not None:
            state = load_checkpoint(source, map_location=device)
            try:
                for name, obj in self.stateful.items():
                    obj.load_state_dict(state[name] if name == "model" else state["stateful"][name])
            except (KeyError, RuntimeError, ValueError) as error:
                raise CheckpointError(
                    f"{source}: checkpoint does not fit this run ({type(error).__name__}: {error}); nothing was overwritten"
                ) from None
            self.history = state["history"]
            self.best_epoch = state["best_epoch"]
            self.best_val_accuracy = state["best_val_accuracy"] if self.best_epoch else None
            self.best_weights = state["best_weights"]
            self.epochs_without_improvement = state["epochs_without_improvement"]
            self.finished = state["finished"]
            self.wall_time_s = state["wall_time_s"]
            self.log(f"[{self.kind}] resumed from {source} after epoch {len(self.history)}")
        source_file = None if source is None else Path(source) / CHECKPOINT_FILE
        changes = self.folder.repair(state, self.views, source_file)
        if changes:
            self.log(f"[{self.kind}] run folder brought in line with its checkpoint: {', '.join(changes)}")
        self.folder.path.mkdir(parents=True, exist_ok=True)
        self.folder.write_config(config_dict)

    def should_continue(self) -> bool:
        return not self.finished and self.start_epoch <= self.config.epochs

    def epoch_progress(self, epoch: int, total_steps: int) -> StepProgress:
        """The progress display of an epoch's steps (a bar on a terminal, else a line every 30 s)."""
        return StepProgress(f"[{self.kind}] epoch {epoch}/{self.config.epochs}", total_steps, self._progress_log)

    def end_epoch(self, metrics: dict[str, Any]) -> bool:
        """Update best/early-stopping state from ``metrics``; returns True if this epoch is the last.

        An epoch is selected when its validation accuracy beats the best so far; an
        epoch with ``val_finite`` false is not eligible and counts as no improvement.
        """
        epoch = metrics["epoch"]
        eligible = metrics.get("val_finite", True)
        if eligible and (self.best_epoch == 0 or metrics["val_accuracy"] > self.best_val_accuracy):
            self.best_val_accuracy = metrics["val_accuracy"]
            self.best_epoch = epoch
            self.best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            self.epochs_without_improvement = 0
            metrics["improved"] = True
        else:
            self.epochs_without_improvement += 1
            metrics["improved"] = False
        metrics["best_val_accuracy"] = self.best_val_accuracy
        metrics["best_epoch"] = self.best_epoch
        patience = self.config.patience
        stopped_early = patience is not None and self.epochs_without_improvement >= patience
        last = stopped_early or epoch >= self.config.epochs
        metrics["stopped_early"] = stopped_early and epoch < self.config.epochs
        metrics["finished"] = last
        return last

    def commit_epoch(self, metrics: dict[str, Any]) -> None:
        """Commit a finished epoch (checkpoint, then the files derived from it), then progress line and report."""
        self.history.append(metrics)
        self.finished = metrics["finished"]
        now = time.perf_counter()
        self.wall_time_s += now - self._started
        self._started = now
        state = {
            "epoch": metrics["epoch"],
            "model": self.model.state_dict(),
            "stateful": {name: obj.state_dict() for name, obj in self.stateful.items() if name != "model"},
            "history": self.history,
            "best_val_accuracy": self.best_val_accuracy,
            "best_epoch": self.best_epoch,
            "best_weights": self.best_weights,
            "epochs_without_improvement": self.epochs_without_improvement,
            "finished": self.finished,
            "wall_time_s": self.wall_time_s,
        }
        checkpoint_dir = self.folder.commit(state, self.views, best_changed=metrics["improved"])
        self.log(self.progress_line(metrics))
        if self.report is not None:
            self.report(dict(metrics), checkpoint_dir)

    def require_selected_epoch(self) -> None:
        """Raise :class:`NonFiniteOutputError` if no epoch could be selected (every validation non-finite)."""
        if self.best_epoch == 0:
            raise NonFiniteOutputError(
                f"no epoch of {self.folder.path} had finite validation outputs, so none can be selected "
                "(lower the learning rate or check the data)"
            )

    def progress_line(self, metrics: dict[str, Any]) -> str:
        if metrics.get("val_finite", True):
            validation = f"val loss {metrics['val_loss']:.4f} acc {metrics['val_accuracy']:.4f}"
        else:
            validation = "val NOT FINITE (epoch not eligible for selection)"
        best = (
            f"best {metrics['best_val_accuracy']:.4f}@{metrics['best_epoch']}" if metrics["best_epoch"] else "best none"
        )
        line = (
            f"[{self.kind}] epoch {metrics['epoch']:>3}/{self.config.epochs}  "
            f"train loss {metrics['train_loss']:.4f} acc {metrics['train_accuracy']:.4f}  "
            f"{validation}  {best}  lr {metrics['lr']:.4g}  {metrics['epoch_time_s']:.1f}s"
        )
        if "test_accuracy" in metrics:
            line += f"  test acc {metrics['test_accuracy']:.4f}"
        if "genotype" in metrics:
            line += f"\n        genotype {metrics['genotype']}"
        return line

    def summary(self, device: torch.device, params: int, **extra: Any) -> dict[str, Any]:
        """Write and return ``summary.json``."""
        summary = {
            "kind": self.kind,
            "params": params,
            "best_val_accuracy": self.best_val_accuracy,
            "best_epoch": self.best_epoch,
            "epochs": len(self.history),
            "stopped_early": bool(self.history and self.history[-1].get("stopped_early")),
            "wall_time_s": round(self.wall_time_s, 3),
            "device": str(device),
            "backend": model_backend(self.model),  # which code computed the DARTS cells
            "versions": library_versions(),
            "code_revision": code_revision(),
            **extra,
            "config": asdict(self.config),
        }
        self.folder.write_summary(summary)
        return summary

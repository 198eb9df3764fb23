"""Training as plain functions (STYLE 8): one epoch, evaluation, seeding, and the run driver.

:class:`RunDriver` is what :func:`~dartsrenet.search.run_search` and
:func:`~dartsrenet.train.run_train` share: it resumes from a checkpoint, tracks the
best validation epoch, stops early, writes the checkpoint and metrics of every
epoch, calls ``report(metrics, checkpoint_dir)`` and writes the summary.

Reproducibility: the model is initialised after ``torch.manual_seed(seed)``, and
every epoch reseeds torch's RNG (augmentation) and each loader's generator (order)
from ``(seed, epoch)``. So an epoch depends only on the state at its start, and a
run resumed after epoch k ends with the same metrics as an uninterrupted one.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from dartsrenet import native
from dartsrenet.config import Config
from dartsrenet.runs import (
    CheckpointError,
    RunFolder,
    check_finite,
    code_revision,
    library_versions,
    load_checkpoint,
)

Report = Callable[[dict[str, Any], Any], None]
Log = Callable[[str], None]


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
) -> tuple[float, float]:
    """One epoch of SGD on ``loader``; returns (mean loss, accuracy)."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for step, (images, labels) in enumerate(loader):
        images, labels = images.to(device), labels.to(device)
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        check_finite(loss, f"{where} step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        total_loss += loss.item() * labels.numel()
        correct += (logits.argmax(dim=1) == labels).sum().item()
        seen += labels.numel()
    return total_loss / max(seen, 1), correct / max(seen, 1)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[float, float]:
    """Loss and accuracy in eval mode (BatchNorm on running statistics: SPEC §6 corrections)."""
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        logits = model(images)
        total_loss += F.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(dim=1) == labels).sum().item()
        seen += labels.numel()
    return total_loss / max(seen, 1), correct / max(seen, 1)


def cosine_schedule(optimizer: torch.optim.Optimizer, epochs: int, lr_min: float) -> torch.optim.lr_scheduler.LRScheduler:
    """Cosine annealing from the optimiser's lr to ``lr_min`` over ``epochs`` (SPEC §3, §6)."""
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
    """

    def __init__(
        self,
        kind: str,
        config: Config,
        stateful: dict[str, Any],
        report: Report | None = None,
        resume_from: Any = None,
        log: Log | None = print,
    ):
        self.kind = kind
        self.config = config
        self.folder = RunFolder(config.out)
        self.stateful = stateful
        self.report = report
        self.log = log or (lambda message: None)
        self.history: list[dict[str, Any]] = []
        self.best_val_accuracy = -1.0
        self.best_epoch = 0
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
        """Resume from a checkpoint if there is one (before anything is written), then write the config."""
        config_dict = asdict(self.config)
        source = self._resume_from or (self.folder.checkpoint_dir if self.folder.has_checkpoint() else None)
        if source is not None:
            self.folder.check_config(config_dict, ignore=("device", "num_workers", "out"))
            state = load_checkpoint(source, map_location=device)
            try:
                for name, obj in self.stateful.items():
                    obj.load_state_dict(state[name] if name == "model" else state["stateful"][name])
            except (KeyError, RuntimeError, ValueError) as error:
                raise CheckpointError(
                    f"{source}: checkpoint does not fit this run ({type(error).__name__}: {error}); nothing was overwritten"
                ) from None
            self.history = state["history"]
            self.best_val_accuracy = state["best_val_accuracy"]
            self.best_epoch = state["best_epoch"]
            self.best_weights = state["best_weights"]
            self.epochs_without_improvement = state["epochs_without_improvement"]
            self.finished = state["finished"]
            self.wall_time_s = state["wall_time_s"]
            self.log(f"[{self.kind}] resumed from {source} after epoch {len(self.history)}")
        self.folder.path.mkdir(parents=True, exist_ok=True)
        self.folder.write_config(config_dict)

    def should_continue(self) -> bool:
        return not self.finished and self.start_epoch <= self.config.epochs

    def end_epoch(self, metrics: dict[str, Any]) -> bool:
        """Update best/early-stopping state from ``metrics``; returns True if this epoch is the last."""
        epoch = metrics["epoch"]
        if metrics["val_accuracy"] > self.best_val_accuracy:
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
        """Checkpoint, metrics file, progress line and report for a finished epoch."""
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
        checkpoint_dir = self.folder.save_checkpoint(state)
        if metrics["improved"]:
            self.folder.save_best_weights(self.best_weights)
        self.folder.write_metrics(self.history)
        self.log(self.progress_line(metrics))
        if self.report is not None:
            self.report(dict(metrics), checkpoint_dir)

    def progress_line(self, metrics: dict[str, Any]) -> str:
        line = (
            f"[{self.kind}] epoch {metrics['epoch']:>3}/{self.config.epochs}  "
            f"train loss {metrics['train_loss']:.4f} acc {metrics['train_accuracy']:.4f}  "
            f"val loss {metrics['val_loss']:.4f} acc {metrics['val_accuracy']:.4f}  "
            f"best {metrics['best_val_accuracy']:.4f}@{metrics['best_epoch']}  "
            f"lr {metrics['lr']:.4g}  {metrics['epoch_time_s']:.1f}s"
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
            "fused_cpu_kernels": device.type == "cpu" and native.library() is not None,
            "versions": library_versions(),
            "code_revision": code_revision(),
            **extra,
            "config": asdict(self.config),
        }
        self.folder.write_summary(summary)
        return summary

"""The run engine: one resumable epoch loop for both phases (paper §3.3; docs/design.md, "Run folder").

A cell search (:func:`dartsrenet.search.run_search`) and an evaluation training
(:func:`dartsrenet.train.run_train`) are the same loop: reseed the epoch, train one epoch,
step the learning-rate schedule, validate, apply the selection rule, commit the epoch to
the run folder, report. What differs is a small :class:`Phase` object — how an epoch is
trained and validated, what each epoch records beyond the common metrics, what the last
epoch adds, and what the summary holds:

* :class:`dartsrenet.search.SearchPhase` — α and weight steps, the epoch's genotype and
  softmax(α), the best epoch's genotype (or a selection on the trained supernet);
* :class:`dartsrenet.train.TrainPhase` — weight steps, the test of the selected epoch's
  weights after the last epoch.

:class:`RunEngine` owns what both share: resuming from a checkpoint (the run folder's own,
or one handed back by Ray Tune), the selection rule (:class:`~dartsrenet.selection_rule.SelectionRule`)
and the selected epoch's weights, the checkpoint of every epoch and the files derived from
it (:meth:`~dartsrenet.runs.RunFolder.commit`), the progress lines, ``report(metrics,
checkpoint_dir)`` and ``summary.json`` with the run's provenance.

Reproducibility: the model is initialised after ``torch.manual_seed(seed)``, and every
epoch reseeds torch's RNG (augmentation) and each loader's generator (order) from
``(seed, epoch)`` (:func:`~dartsrenet.training.seed_epoch`). So an epoch depends only on
the state at its start, and a run resumed after epoch k ends with the same metrics as an
uninterrupted one.

Nothing non-finite is ever a result: a NaN or infinite training loss stops the run
(:class:`~dartsrenet.runs.NonFiniteLossError`); an epoch whose validation outputs are not
finite is recorded with ``val_loss``/``val_accuracy`` null and ``val_finite`` false, and is
never selected; a run with no selectable epoch, or non-finite test outputs, stops with
:class:`~dartsrenet.runs.NonFiniteOutputError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from torch.utils.data import DataLoader

from dartsrenet.cells import model_backend
from dartsrenet.config import Config
from dartsrenet.results.contract import CHECKPOINT_FILE, DIVERGED_FILE
from dartsrenet.runs import (
    CheckpointError, JsonViews, NonFiniteLossError, NonFiniteOutputError, RunFolder, code_revision, library_versions,
    load_checkpoint, resolve_device, write_json,
)
from dartsrenet.steps import select_device
from dartsrenet.selection_rule import SelectionRule
from dartsrenet.training import Log, Report, StepCallback, StepProgress, seed_epoch


class Phase(Protocol):
    """What a phase (search or train) adds to the engine's loop; built with its model, loaders and optimisers.

    Attributes:
        kind: ``"search"`` or ``"train"`` (log lines, ``summary.json``'s ``kind``).
        stateful: objects with ``state_dict``/``load_state_dict`` saved in every checkpoint
            (model, optimisers, scheduler), by name; ``"model"`` is required.
        views: the phase's own run-folder files derived from the history (a search's α
            history and genotype), or None.
        loaders: the loaders reseeded at every epoch, in seed-stream order.
        weight_optimizer: its first group's learning rate is the epoch's ``lr``.
        scheduler: stepped once after every epoch's training.
        steps_per_epoch: steps of one epoch (the progress display).
        params: the model's parameter count.
    """

    kind: str
    stateful: dict[str, Any]
    views: JsonViews | None
    loaders: Sequence[DataLoader]
    weight_optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    steps_per_epoch: int
    params: int

    def resumed(self) -> None:
        """After the checkpoint (if any) is loaded, before the first epoch: e.g. prepare capture."""

    def intro(self) -> str:
        """The line logged when the run starts at epoch 1."""

    def train_epoch(self, epoch: int, on_step: StepCallback) -> tuple[float, float]:
        """Train one epoch; (mean training loss, training accuracy)."""

    def validate(self) -> dict[str, Any]:
        """``val_loss``, ``val_accuracy``, ``val_finite`` of the epoch just trained."""

    def epoch_record(self) -> dict[str, Any]:
        """The phase's own metrics of the epoch, after the common ones."""

    def complete_epoch(self, metrics: dict[str, Any], engine: RunEngine) -> None:
        """Add to ``metrics`` what needs the selection rule's verdict, before the epoch is committed."""

    def summary_fields(self, engine: RunEngine) -> dict[str, Any]:
        """The phase's own fields of ``summary.json`` (after the loop; may write final files)."""


def run_phase(
    config: Config, build_phase: Callable[[torch.device], Phase], report: Report | None, resume_from: Any,
    log: Log | None,
) -> dict[str, Any]:
    """Run (or resume) a phase in the run folder ``config.out``; returns the summary.

    The folder is checked to be writable and the device resolved before ``build_phase(device)``
    reads any data or builds the model. A run that ends because its numbers stopped being
    finite (:class:`~dartsrenet.runs.NonFiniteLossError`, :class:`~dartsrenet.runs.NonFiniteOutputError`)
    leaves ``diverged.json`` (the error) in its folder before the error is raised.
    """
    RunFolder(config.out).check_writable()
    device = resolve_device(config.device)
    select_device(device)
    phase = build_phase(device)
    engine = RunEngine(phase.kind, config, phase.stateful, report, resume_from, log, views=phase.views)
    try:
        return engine.run(phase, device)
    except (NonFiniteLossError, NonFiniteOutputError) as error:
        # The run diverged: record it beside the records that led there, so the sweeps and
        # the analysis tell it from a crash (results contract: ``diverged``), then raise.
        write_json(engine.folder.path / DIVERGED_FILE, {"error": type(error).__name__, "message": str(error)})
        raise


class RunEngine:
    """Resume, epoch selection, checkpoints, metrics, progress lines, report and summary of one run.

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
        self.rule = SelectionRule(config.epochs, config.patience)
        self.best_weights: dict[str, Any] | None = None  # the selected epoch's model state
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

    @property
    def best_epoch(self) -> int:
        """The selected epoch (0 while none is)."""
        return self.rule.best_epoch

    @property
    def best_val_accuracy(self) -> float | None:
        return self.rule.best_val_accuracy

    def run(self, phase: Phase, device: torch.device) -> dict[str, Any]:
        """Start (or resume), run the remaining epochs of ``phase``, write and return the summary."""
        self.start(device)
        phase.resumed()
        if self.start_epoch == 1:
            self.log(phase.intro())
        while self.should_continue():
            epoch = self.start_epoch
            started = time.perf_counter()
            seed_epoch(self.config.seed, epoch, phase.loaders)
            lr = float(phase.weight_optimizer.param_groups[0]["lr"])
            with self.epoch_progress(epoch, phase.steps_per_epoch) as progress:
                train_loss, train_accuracy = phase.train_epoch(epoch, progress)
            phase.scheduler.step()
            validation = phase.validate()
            metrics: dict[str, Any] = {
                "epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy, **validation,
                "lr": lr, "params": phase.params, "epoch_time_s": time.perf_counter() - started,
                **phase.epoch_record(),
            }
            self.end_epoch(metrics)
            phase.complete_epoch(metrics, self)
            self.commit_epoch(metrics)
        return self.summary(device, phase.params, **phase.summary_fields(self))

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
            self._resume(state, source)
        source_file = None if source is None else Path(source) / CHECKPOINT_FILE
        changes = self.folder.repair(state, self.views, source_file)
        if changes:
            self.log(f"[{self.kind}] run folder brought in line with its checkpoint: {', '.join(changes)}")
        self.folder.path.mkdir(parents=True, exist_ok=True)
        self.folder.write_config(config_dict)

    def _resume(self, state: dict[str, Any], source: Any) -> None:
        """Load the checkpoint ``state`` into the stateful objects and the engine."""
        try:
            for name, obj in self.stateful.items():
                obj.load_state_dict(state[name] if name == "model" else state["stateful"][name])
        except (KeyError, RuntimeError, ValueError) as error:
            raise CheckpointError(
                f"{source}: checkpoint does not fit this run ({type(error).__name__}: {error}); nothing was overwritten"
            ) from None
        self.history = state["history"]
        self.rule.load_state_dict(state)
        self.best_weights = state["best_weights"]
        self.finished = state["finished"]
        self.wall_time_s = state["wall_time_s"]
        self.log(f"[{self.kind}] resumed from {source} after epoch {len(self.history)}")

    def should_continue(self) -> bool:
        return not self.finished and self.start_epoch <= self.config.epochs

    def epoch_progress(self, epoch: int, total_steps: int) -> StepProgress:
        """The progress display of an epoch's steps (a bar on a terminal, else a line every 30 s)."""
        return StepProgress(f"[{self.kind}] epoch {epoch}/{self.config.epochs}", total_steps, self._progress_log)

    def end_epoch(self, metrics: dict[str, Any]) -> bool:
        """Apply the selection rule to ``metrics`` and record its verdict in them; True if this epoch is the last.

        A newly selected epoch's model state becomes the best weights.
        """
        verdict = self.rule.observe(metrics["epoch"], metrics.get("val_accuracy"), metrics.get("val_finite", True))
        if verdict.improved:
            self.best_weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        metrics["improved"] = verdict.improved
        metrics["best_val_accuracy"] = self.best_val_accuracy
        metrics["best_epoch"] = self.best_epoch
        metrics["stopped_early"] = verdict.stopped_early
        metrics["finished"] = verdict.last
        return verdict.last

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
            "epochs_without_improvement": self.rule.epochs_without_improvement,
            "finished": self.finished,
            "wall_time_s": self.wall_time_s,
        }
        checkpoint_dir = self.folder.commit(state, self.views, best_changed=metrics["improved"])
        self.log(epoch_line(self.kind, self.config.epochs, metrics))
        if self.report is not None:
            self.report(dict(metrics), checkpoint_dir)

    def require_selected_epoch(self) -> None:
        """Raise :class:`NonFiniteOutputError` if no epoch could be selected (every validation non-finite)."""
        if self.best_epoch == 0:
            raise NonFiniteOutputError(
                f"no epoch of {self.folder.path} had finite validation outputs, so none can be selected "
                "(lower the learning rate or check the data)"
            )

    def summary(self, device: torch.device, params: int, **extra: Any) -> dict[str, Any]:
        """Write and return ``summary.json``: the selection, the run's provenance, ``extra`` and the config."""
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


def epoch_line(kind: str, epochs: int, metrics: dict[str, Any]) -> str:
    """The log line of a committed epoch: losses, accuracies, the selection, lr and time."""
    if metrics.get("val_finite", True):
        validation = f"val loss {metrics['val_loss']:.4f} acc {metrics['val_accuracy']:.4f}"
    else:
        validation = "val NOT FINITE (epoch not eligible for selection)"
    best = f"best {metrics['best_val_accuracy']:.4f}@{metrics['best_epoch']}" if metrics["best_epoch"] else "best none"
    line = (
        f"[{kind}] epoch {metrics['epoch']:>3}/{epochs}  "
        f"train loss {metrics['train_loss']:.4f} acc {metrics['train_accuracy']:.4f}  "
        f"{validation}  {best}  lr {metrics['lr']:.4g}  {metrics['epoch_time_s']:.1f}s"
    )
    if "test_accuracy" in metrics:
        line += f"  test acc {metrics['test_accuracy']:.4f}"
    if "genotype" in metrics:
        line += f"\n        genotype {metrics['genotype']}"
    return line

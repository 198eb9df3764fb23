"""Cell evaluation as a plain, resumable run (paper §3.3; docs/architecture.md §6).

Builds the evaluation network from a genotype (JSON file, string or paper variant
name) or a GRU/LSTM baseline, trains it from scratch with SGD + cosine schedule +
gradient clipping, selects the epoch on a validation split carved from the training
set (in eval mode), and reports the test accuracy of the selected epoch — the test
set is used once, at the end (docs/architecture.md §6.3).
"""

from __future__ import annotations

from typing import Any

import torch

from dartsrenet.config import TrainConfig, validate_config
from dartsrenet.data import make_train_loaders
from dartsrenet.engine import RunEngine, run_phase
from dartsrenet.genotypes import Genotype
from dartsrenet.latency import inference_ms_per_image
from dartsrenet.networks import build_eval_model, count_parameters, resolve_cell
from dartsrenet.steps import CaptureReport, apply_matmul_precision, learning_rates_on_device
from dartsrenet.training import (
    Log, Report, StepCallback, cosine_schedule, evaluate, train_epoch, validation_metrics,
)

Cell = tuple[str, Genotype | None, str]
"""``(kind, genotype, variant)`` of :func:`~dartsrenet.networks.resolve_cell`."""


def run_train(config: TrainConfig, report: Report | None = None, *, resume_from: Any = None, log: Log | None = print) -> dict[str, Any]:
    """Run (or resume) one evaluation training and write its run folder (docs/design.md).

    Args:
        config: the training configuration; ``config.out`` is the run folder.
        report: called once per epoch with (metrics, checkpoint folder); the last
            report carries ``test_accuracy`` and ``test_loss``.
        resume_from: checkpoint folder to resume from (default: the run folder's).
        log: where progress lines go (None: silent).

    Returns:
        The summary (also written to ``summary.json``).

    Raises:
        ConfigError: a config value out of range (before anything is read or written).
        NonFiniteLossError: a training loss became NaN or infinite.
        NonFiniteOutputError: the test outputs of the selected epoch are not finite, or no
            epoch had finite validation outputs (so none can be selected).
    """
    validate_config(config)
    cell = resolve_cell(config.cell, config.variant)  # fail fast on a bad cell
    return run_phase(config, lambda device: TrainPhase(config, cell, device, log), report, resume_from, log)


class TrainPhase:
    """The evaluation training's part of the run engine's loop (:class:`dartsrenet.engine.Phase`).

    Each epoch is :func:`~dartsrenet.training.train_epoch` (SGD, cosine schedule, gradient
    clipping), validated on the split carved from the training set; after the last epoch
    the selected epoch's weights are tested once (docs/architecture.md §6.3), and the
    inference latency is measured at every start when ``measure_latency`` is set.
    """

    kind = "train"

    def __init__(self, config: TrainConfig, cell: Cell, device: torch.device, log: Log | None):
        self.config, self.device = config, device
        self.cell_kind, self.genotype, self.variant = kind, genotype, variant = cell
        self.train_loader, self.val_loader, self.test_loader, info = make_train_loaders(
            config.dataset, config.data_root, batch_size=config.batch_size, seed=config.seed,
            val_fraction=config.val_fraction, augment=config.augment, cutout=config.cutout,
            download=config.download, svhn_extra=config.svhn_extra, limit=config.limit,
            num_workers=config.num_workers,
        )
        self.loaders, self.steps_per_epoch = [self.train_loader], len(self.train_loader)
        torch.manual_seed(config.seed)
        head_init_range = config.head_init_range if config.head_init_range is not None else info.head_init_range
        apply_matmul_precision(config.matmul_precision, device)
        self.model = build_eval_model(
            genotype if kind == "darts" else kind, variant if kind == "darts" else None,
            num_classes=info.num_classes, channels=config.channels, head_init_range=head_init_range,
            backend=config.backend, network=config.network,
        ).to(device)
        self.params = count_parameters(self.model)
        # measured at every start (a resumed run measures again), before the optimiser touches anything
        self.latency = (
            {"latency_ms": inference_ms_per_image(self.model, device, config.batch_size)} if config.measure_latency else {}
        )
        self.weight_optimizer = torch.optim.SGD(
            self.model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
        self.scheduler = cosine_schedule(self.weight_optimizer, config.epochs, config.lr_min)
        self.stateful = {"model": self.model, "optimizer": self.weight_optimizer, "scheduler": self.scheduler}
        self.views = None
        # CUDA-graph replay for DARTS cells only: GRU/LSTM run cuDNN's fused sweeps, not launch-bound,
        # and a captured cuDNN RNN step is unproven (an earlier capture attempt failed at its first replay)
        self.capture = config.capture if kind == "darts" else False
        self.capture_report, self.run_steps = CaptureReport(mode=self.capture), {}
        self.validation_capture = {  # the validation forward: a second graph, its own report
            "capture": self.capture_report.mode, "capture_report": CaptureReport(mode=self.capture_report.mode),
            "run_steps": {},
        }

    def resumed(self) -> None:
        if self.capture and self.device.type == "cuda":
            learning_rates_on_device(self.weight_optimizer, self.device)  # one captured step: the schedule fills lr in place

    def intro(self) -> str:
        kind, config = self.cell_kind, self.config
        model_name = kind if kind != "darts" else f"darts[{self.variant}] {self.genotype}"
        return f"[train] {model_name} on {config.dataset}, seed {config.seed}: {self.params:,} parameters on {self.device}"

    def train_epoch(self, epoch: int, on_step: StepCallback) -> tuple[float, float]:
        return train_epoch(
            self.model, self.train_loader, self.weight_optimizer, self.device, self.config.grad_clip,
            where=f"epoch {epoch}", on_step=on_step, capture=self.capture, autocast_mode=self.config.autocast,
            capture_report=self.capture_report, run_steps=self.run_steps,
        )

    def validate(self) -> dict[str, Any]:
        return validation_metrics(
            self.model, self.val_loader, self.device, autocast_mode=self.config.autocast, **self.validation_capture
        )

    def epoch_record(self) -> dict[str, Any]:
        return dict(self.latency)

    def complete_epoch(self, metrics: dict[str, Any], engine: RunEngine) -> None:
        if metrics["finished"]:
            metrics["test_loss"], metrics["test_accuracy"] = self._test_best(engine)

    def summary_fields(self, engine: RunEngine) -> dict[str, Any]:
        config, kind, genotype, variant = self.config, self.cell_kind, self.genotype, self.variant
        final = engine.history[-1]
        return dict(
            model=kind if kind != "darts" else variant, cell=config.cell, variant=variant,
            genotype=genotype.to_dict() if genotype else None, genotype_string=str(genotype) if genotype else None,
            dataset=config.dataset, seed=config.seed, network=config.network, **self.latency,
            test_accuracy=final.get("test_accuracy"), test_loss=final.get("test_loss"),
            capture=self.capture_report.as_dict(), validation_capture=self.validation_capture["capture_report"].as_dict(),
        )

    def _test_best(self, engine: RunEngine) -> tuple[float, float]:
        """Test loss and accuracy of the selected epoch's weights (the model keeps its last weights)."""
        engine.require_selected_epoch()
        model = self.model
        last_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(engine.best_weights)
        try:
            return evaluate(
                model, self.test_loader, self.device,
                where=f"test set (weights of the selected epoch {engine.best_epoch})", autocast_mode=self.config.autocast,
            )
        finally:
            model.load_state_dict(last_weights)

"""Cell evaluation as a plain, resumable run (paper §3.3; docs/architecture.md §6).

Builds the evaluation network from a genotype (JSON file, string or paper variant
name) or a GRU/LSTM baseline, trains it from scratch with SGD + cosine schedule +
gradient clipping, selects the epoch on a validation split carved from the training
set (in eval mode), and reports the test accuracy of the selected epoch — the test
set is used once, at the end (docs/architecture.md §6.3).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from dartsrenet.config import TrainConfig, validate_config
from dartsrenet.data import make_train_loaders
from dartsrenet.latency import inference_ms_per_image
from dartsrenet.networks import build_eval_model, count_parameters, resolve_cell
from dartsrenet.runs import RunFolder, resolve_device
from dartsrenet.steps import CaptureReport, apply_matmul_precision, learning_rates_on_device, select_device
from dartsrenet.training import (
    Log,
    Report,
    RunDriver,
    cosine_schedule,
    evaluate,
    seed_epoch,
    train_epoch,
    validation_metrics,
)


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
    kind, genotype, variant = resolve_cell(config.cell, config.variant)  # fail fast on a bad cell
    RunFolder(config.out).check_writable()
    device = resolve_device(config.device)
    select_device(device)
    train_loader, val_loader, test_loader, info = make_train_loaders(
        config.dataset, config.data_root, batch_size=config.batch_size, seed=config.seed,
        val_fraction=config.val_fraction, augment=config.augment, cutout=config.cutout,
        download=config.download, svhn_extra=config.svhn_extra, limit=config.limit,
        num_workers=config.num_workers,
    )
    torch.manual_seed(config.seed)
    head_init_range = config.head_init_range if config.head_init_range is not None else info.head_init_range
    apply_matmul_precision(config.matmul_precision, device)
    model = build_eval_model(
        genotype if kind == "darts" else kind, variant if kind == "darts" else None,
        num_classes=info.num_classes, channels=config.channels, head_init_range=head_init_range,
        backend=config.backend, network=config.network,
    ).to(device)
    # measured at every start (a resumed run measures again), before the optimiser touches anything
    latency = {"latency_ms": inference_ms_per_image(model, device, config.batch_size)} if config.measure_latency else {}
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    scheduler = cosine_schedule(optimizer, config.epochs, config.lr_min)
    driver = RunDriver("train", config, {"model": model, "optimizer": optimizer, "scheduler": scheduler}, report, resume_from, log)
    driver.start(device)
    params = count_parameters(model)
    # CUDA-graph replay for DARTS cells only: GRU/LSTM run cuDNN's fused sweeps, not launch-bound,
    # and a captured cuDNN RNN step is unproven (an earlier capture attempt failed at its first replay)
    capture_report, run_steps = CaptureReport(mode=config.capture if kind == "darts" else False), {}
    validation_capture = {  # the validation forward: a second graph, its own report
        "capture": capture_report.mode, "capture_report": CaptureReport(mode=capture_report.mode), "run_steps": {},
    }
    if config.capture and kind == "darts" and device.type == "cuda":
        learning_rates_on_device(optimizer, device)  # one captured step for the run: the schedule fills the lr in place
    model_name = kind if kind != "darts" else f"darts[{variant}] {genotype}"
    if driver.start_epoch == 1:
        log and log(f"[train] {model_name} on {config.dataset}, seed {config.seed}: {params:,} parameters on {device}")

    while driver.should_continue():
        epoch = driver.start_epoch
        started = time.perf_counter()
        seed_epoch(config.seed, epoch, [train_loader])
        lr = float(optimizer.param_groups[0]["lr"])
        with driver.epoch_progress(epoch, len(train_loader)) as progress:
            train_loss, train_accuracy = train_epoch(
                model, train_loader, optimizer, device, config.grad_clip, where=f"epoch {epoch}", on_step=progress,
                capture=config.capture if kind == "darts" else False, autocast_mode=config.autocast,
                capture_report=capture_report, run_steps=run_steps,
            )
        scheduler.step()
        metrics: dict[str, Any] = {
            "epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy,
            **validation_metrics(model, val_loader, device, autocast_mode=config.autocast, **validation_capture),
            "lr": lr, "params": params,
            "epoch_time_s": time.perf_counter() - started, **latency,
        }
        if driver.end_epoch(metrics):
            metrics["test_loss"], metrics["test_accuracy"] = _test_best(model, driver, test_loader, device)
        driver.commit_epoch(metrics)

    final = driver.history[-1]
    return driver.summary(
        device, params, model=kind if kind != "darts" else variant, cell=config.cell, variant=variant,
        genotype=genotype.to_dict() if genotype else None, genotype_string=str(genotype) if genotype else None,
        dataset=config.dataset, seed=config.seed, network=config.network, **latency,
        test_accuracy=final.get("test_accuracy"), test_loss=final.get("test_loss"), capture=capture_report.as_dict(),
        validation_capture=validation_capture["capture_report"].as_dict(),
    )


def _test_best(model: torch.nn.Module, driver: RunDriver, loader: Any, device: torch.device) -> tuple[float, float]:
    """Test loss and accuracy of the selected epoch's weights (the model keeps its last weights)."""
    driver.require_selected_epoch()
    last_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    model.load_state_dict(driver.best_weights)
    try:
        return evaluate(
            model, loader, device, where=f"test set (weights of the selected epoch {driver.best_epoch})",
            autocast_mode=driver.config.autocast,
        )
    finally:
        model.load_state_dict(last_weights)

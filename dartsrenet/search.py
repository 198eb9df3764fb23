"""First-order DARTS cell search as a plain, resumable run (paper §2.2, §3.3; SPEC §3).

Each step takes one α step on a val_cs batch (Adam: lr 3e-3, betas (0.5, 0.999),
weight decay 1e-3), then one weight step on a train_cs batch (SGD as the code, or
Adam as the paper). Every epoch records losses, accuracies, softmax(α) and the
derived genotype (eq. 9–10); the run keeps the genotype of its best val_cs epoch
(early stopping on val_cs, paper §3.3).
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from dartsrenet.config import SearchConfig, validate_config
from dartsrenet.data import make_search_loaders
from dartsrenet.genotypes import Genotype, derive_genotype
from dartsrenet.networks import SearchNetwork, build_search_model, count_parameters
from dartsrenet.runs import check_finite, check_finite_alpha, resolve_device, write_json
from dartsrenet.training import Log, Report, RunDriver, StepCallback, cosine_schedule, seed_epoch, validation_metrics


def make_optimizers(model: SearchNetwork, config: SearchConfig) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """(weight optimiser, α optimiser) over the two disjoint parameter sets (SPEC §3)."""
    if config.weight_optimizer == "sgd":
        weights = torch.optim.SGD(
            model.weight_parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    elif config.weight_optimizer == "adam":
        weights = torch.optim.Adam(model.weight_parameters(), lr=config.lr, weight_decay=config.weight_decay)
    else:
        raise ValueError(f"weight_optimizer must be 'sgd' or 'adam', got {config.weight_optimizer!r}")
    arch = torch.optim.Adam(
        model.arch_parameters(),
        lr=config.arch_lr,
        betas=(config.arch_beta1, config.arch_beta2),
        weight_decay=config.arch_weight_decay,
    )
    return weights, arch


def search_epoch(
    model: SearchNetwork,
    train_cs: DataLoader,
    val_cs: DataLoader,
    weight_optimizer: torch.optim.Optimizer,
    arch_optimizer: torch.optim.Optimizer,
    device: torch.device,
    grad_clip: float = 1.0,
    on_step: StepCallback | None = None,
) -> tuple[float, float]:
    """One epoch of first-order DARTS; returns (train_cs loss, train_cs accuracy).

    Per step: α ← α − ∇_α L_val(w, α) on a val_cs batch, then w ← w − ∇_w L_train(w, α)
    on a train_cs batch. Each optimiser only holds its own parameter set, and
    gradients are cleared before each step, so α changes only through the α
    optimiser and the weights only through the weight optimiser.

    Raises:
        NonFiniteLossError: the α-step or weight-step loss, or α itself after its
            step, is NaN or infinite (the step is named).
    """
    model.train()
    weights = model.weight_parameters()
    total_loss, correct, seen = 0.0, 0, 0
    for step, ((images, labels), (val_images, val_labels)) in enumerate(zip(train_cs, val_cs, strict=False)):
        images, labels = images.to(device), labels.to(device)
        val_images, val_labels = val_images.to(device), val_labels.to(device)

        arch_optimizer.zero_grad(set_to_none=True)
        val_loss = F.cross_entropy(model(val_images), val_labels)
        check_finite(val_loss, f"search α step {step}")
        val_loss.backward()
        arch_optimizer.step()
        check_finite_alpha(model.alpha, f"search α step {step}")

        weight_optimizer.zero_grad(set_to_none=True)
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        check_finite(loss, f"search weight step {step}")
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(weights, grad_clip)
        weight_optimizer.step()

        total_loss += loss.item() * labels.numel()
        correct += (logits.argmax(dim=1) == labels).sum().item()
        seen += labels.numel()
        if on_step is not None:
            on_step(labels.numel())
    model.zero_grad(set_to_none=True)
    return total_loss / max(seen, 1), correct / max(seen, 1)


def run_search(config: SearchConfig, report: Report | None = None, *, resume_from: Any = None, log: Log | None = print) -> dict[str, Any]:
    """Run (or resume) one cell search and write its run folder (docs/design.md).

    Args:
        config: the search configuration; ``config.out`` is the run folder.
        report: called once per epoch with (metrics, checkpoint folder).
        resume_from: checkpoint folder to resume from (default: the run folder's).
        log: where progress lines go (None: silent).

    Returns:
        The summary (also written to ``summary.json``), with the best epoch's genotype.

    Raises:
        ConfigError: a config value out of range (before anything is read or written).
        NonFiniteLossError: a loss or α became NaN or infinite.
        NonFiniteOutputError: no epoch had finite val_cs outputs, so no genotype can be selected.
    """
    validate_config(config)
    device = resolve_device(config.device)
    train_cs, val_cs, info = make_search_loaders(
        config.dataset, config.data_root, batch_size=config.batch_size, seed=config.seed,
        augment=config.augment, cutout=config.cutout, download=config.download,
        svhn_extra=config.svhn_extra, limit=config.limit, num_workers=config.num_workers,
    )
    torch.manual_seed(config.seed)
    model = build_search_model(
        config.variant, num_classes=info.num_classes, channels=config.channels, head_init_range=info.head_init_range
    ).to(device)
    weight_optimizer, arch_optimizer = make_optimizers(model, config)
    scheduler = cosine_schedule(weight_optimizer, config.epochs, config.lr_min)
    driver = RunDriver(
        "search", config,
        {"model": model, "weight_optimizer": weight_optimizer, "arch_optimizer": arch_optimizer, "scheduler": scheduler},
        report, resume_from, log,
    )
    driver.start(device)
    params = count_parameters(model)
    if driver.start_epoch == 1:
        log and log(f"[search] {config.variant} on {config.dataset}, seed {config.seed}: {params:,} parameters on {device}")

    while driver.should_continue():
        epoch = driver.start_epoch
        started = time.perf_counter()
        seed_epoch(config.seed, epoch, [train_cs, val_cs])
        lr = weight_optimizer.param_groups[0]["lr"]
        with driver.epoch_progress(epoch, min(len(train_cs), len(val_cs))) as progress:
            train_loss, train_accuracy = search_epoch(
                model, train_cs, val_cs, weight_optimizer, arch_optimizer, device, config.grad_clip, on_step=progress
            )
        scheduler.step()
        genotype = model.genotype()
        metrics: dict[str, Any] = {
            "epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy,
            **validation_metrics(model, val_cs, device, "val_cs split"), "lr": lr, "params": params,
            "epoch_time_s": time.perf_counter() - started, "genotype": genotype.to_string(),
        }
        driver.end_epoch(metrics)
        best = genotype if metrics["improved"] else _best_genotype(driver.history, driver.best_epoch)
        metrics["best_genotype"] = best.to_string() if best is not None else None
        metrics["alpha"] = model.architecture.probabilities().detach().cpu().tolist()
        # The run folder is complete for this epoch before report() sees its checkpoint.
        write_json(driver.folder.path / "alpha_history.json", [m["alpha"] for m in [*driver.history, metrics]])
        if best is not None:
            write_json(driver.folder.path / "genotype.json", best.to_dict())
        driver.commit_epoch(metrics)

    driver.require_selected_epoch()
    best = _best_genotype(driver.history, driver.best_epoch)
    return driver.summary(
        device, params, variant=config.variant, dataset=config.dataset, seed=config.seed,
        genotype=best.to_dict(), genotype_string=best.to_string(),
        final_genotype_string=derive_genotype(model.alpha).to_string(),
    )


def _best_genotype(history: list[dict[str, Any]], best_epoch: int) -> Genotype | None:
    """The genotype derived at the best val_cs epoch (history holds one metrics dict per epoch, from 1);
    None while no epoch is selected."""
    return Genotype.from_string(history[best_epoch - 1]["genotype"]) if best_epoch else None

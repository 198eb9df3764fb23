"""First-order DARTS cell search as a plain, resumable run (paper §2.2, §3.3; docs/architecture.md §3).

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
from dartsrenet.runs import resolve_device, write_json
from dartsrenet.steps import EpochTotals, FiniteWatch, GraphedStep, apply_matmul_precision, autocast, checks_every_step
from dartsrenet.training import Log, Report, RunDriver, StepCallback, cosine_schedule, seed_epoch, validation_metrics


def make_optimizers(
    model: SearchNetwork, config: SearchConfig, capturable: bool = False
) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """(weight optimiser, α optimiser) over the two disjoint parameter sets (docs/architecture.md §3).

    ``capturable``: Adam keeps its step counters on the device, as CUDA-graph capture needs.
    """
    if config.weight_optimizer == "sgd":
        weights = torch.optim.SGD(
            model.weight_parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    elif config.weight_optimizer == "adam":
        weights = torch.optim.Adam(
            model.weight_parameters(), lr=config.lr, weight_decay=config.weight_decay, capturable=capturable
        )
    else:
        raise ValueError(f"weight_optimizer must be 'sgd' or 'adam', got {config.weight_optimizer!r}")
    arch = torch.optim.Adam(
        model.arch_parameters(),
        lr=config.arch_lr,
        betas=(config.arch_beta1, config.arch_beta2),
        weight_decay=config.arch_weight_decay,
        capturable=capturable,
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
    *,
    capture: bool = False,
    autocast_mode: str = "none",
) -> tuple[float, float]:
    """One epoch of first-order DARTS; returns (train_cs loss, train_cs accuracy).

    Per step: α ← α − ∇_α L_val(w, α) on a val_cs batch, then w ← w − ∇_w L_train(w, α)
    on a train_cs batch. Each optimiser only holds its own parameter set, and
    gradients are cleared before each step, so α changes only through the α
    optimiser and the weights only through the weight optimiser. Losses, accuracy and
    the finiteness of the losses and of α are tracked on the device
    (:mod:`dartsrenet.steps`); with ``capture`` on CUDA the whole step, both optimiser
    steps included, is replayed from one CUDA graph.

    Raises:
        NonFiniteLossError: the α-step or weight-step loss, or α itself after its
            step, is NaN or infinite (the step is named).
    """
    model.train()
    weights = model.weight_parameters()
    graphed = capture and device.type == "cuda"
    arch_totals = EpochTotals(device, "search α")
    totals = EpochTotals(device, "search weight")
    alpha_watch = FiniteWatch(
        device, "α became non-finite after search α step {step}; stopping without writing a checkpoint "
        "(lower arch_lr or check the data)",
    )

    def step(images: torch.Tensor, labels: torch.Tensor, val_images: torch.Tensor, val_labels: torch.Tensor) -> None:
        arch_optimizer.zero_grad(set_to_none=not graphed)  # a graph's gradients keep their memory
        with autocast(device, autocast_mode):
            val_loss = F.cross_entropy(model(val_images).float(), val_labels)
        val_loss.backward()
        arch_optimizer.step()
        arch_totals.add(val_loss)
        alpha_watch.add(model.alpha)

        weight_optimizer.zero_grad(set_to_none=not graphed)
        with autocast(device, autocast_mode):
            logits = model(images)
            loss = F.cross_entropy(logits.float(), labels)
        loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(weights, grad_clip)
        weight_optimizer.step()
        totals.add(loss, logits, labels)

    run_step = GraphedStep(step, capture=graphed)
    every_step = checks_every_step(device)
    for (images, labels), (val_images, val_labels) in zip(train_cs, val_cs, strict=False):
        run_step(*(tensor.to(device, non_blocking=True) for tensor in (images, labels, val_images, val_labels)))
        if every_step:
            _check_search_step(arch_totals, alpha_watch, totals)
        if on_step is not None:
            on_step(labels.numel())
    _check_search_step(arch_totals, alpha_watch, totals)
    model.zero_grad(set_to_none=True)
    return totals.result()


def _make_capturable(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Adam with its step counters on ``device`` (``capturable``), as CUDA-graph capture needs."""
    if not isinstance(optimizer, torch.optim.Adam):
        return
    for group in optimizer.param_groups:
        group["capturable"] = True
    for state in optimizer.state.values():
        if "step" in state:
            state["step"] = torch.as_tensor(state["step"], dtype=torch.float32, device=device)


def _check_search_step(arch_totals: EpochTotals, alpha_watch: FiniteWatch, totals: EpochTotals) -> None:
    """The α loss, then α, then the weight loss: the order a step computes them in."""
    arch_totals.check_finite()
    alpha_watch.check()
    totals.check_finite()


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
    apply_matmul_precision(config.matmul_precision, device)
    model = build_search_model(
        config.variant, num_classes=info.num_classes, channels=config.channels, head_init_range=info.head_init_range,
        backend=config.backend,
    ).to(device)
    weight_optimizer, arch_optimizer = make_optimizers(model, config, capturable=config.capture and device.type == "cuda")
    scheduler = cosine_schedule(weight_optimizer, config.epochs, config.lr_min)
    driver = RunDriver(
        "search", config,
        {"model": model, "weight_optimizer": weight_optimizer, "arch_optimizer": arch_optimizer, "scheduler": scheduler},
        report, resume_from, log,
    )
    driver.start(device)
    if config.capture and device.type == "cuda":  # a resumed Adam keeps its checkpoint's setting: make it capturable
        for optimizer in (weight_optimizer, arch_optimizer):
            _make_capturable(optimizer, device)
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
                model, train_cs, val_cs, weight_optimizer, arch_optimizer, device, config.grad_clip, on_step=progress,
                capture=config.capture, autocast_mode=config.autocast,
            )
        scheduler.step()
        genotype = model.genotype()
        metrics: dict[str, Any] = {
            "epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy,
            **validation_metrics(model, val_cs, device, "val_cs split", autocast_mode=config.autocast), "lr": lr, "params": params,
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

"""DARTS cell search as a plain, resumable run (paper §2.2, §3.3; docs/architecture.md §3).

Each step takes one α step on a val_cs batch (Adam: lr 3e-3, betas (0.5, 0.999),
weight decay 1e-3), then one weight step on a train_cs batch (SGD as the code, or
Adam as the paper). The α step is first-order DARTS by default (``arch_order=1``, the
gradient of L_val at the current weights, as the paper) or second-order DARTS
(``arch_order=2``: the unrolled gradient of Liu et al. 2019, eq. 7–8, see
:func:`unrolled_arch_gradient`). Every epoch records losses, accuracies, softmax(α) and the
derived genotype (eq. 9–10); the run keeps the genotype of its best val_cs epoch
(early stopping on val_cs, paper §3.3).

``strategy`` other than ``darts`` (:mod:`dartsrenet.strategies`, docs/search-strategies.md)
changes the mixing weights of each step, the validation and, for RSWS and DARTS-PT, chooses
the genotype on the trained supernet after the last epoch (``selection.json``).
"""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from dartsrenet.config import SearchConfig, validate_config
from dartsrenet.data import make_search_loaders
from dartsrenet.genotypes import Genotype, derive_genotype
from dartsrenet.networks import SearchNetwork, build_search_model, count_parameters
from dartsrenet.runs import RunFolder, resolve_device, write_json
from dartsrenet.steps import (
    CaptureReport, EpochTotals, FiniteWatch, GraphedStep, apply_matmul_precision, autocast, checks_every_step,
    learning_rates_on_device, select_device,
)
from dartsrenet.strategies import SearchStrategy, SelectionContext, make_strategy
from dartsrenet.strategies.supernet import fixed_batches
from dartsrenet.training import Log, Report, RunDriver, StepCallback, cosine_schedule, seed_epoch, validation_metrics

FINITE_DIFFERENCE_SCALE = 0.01
"""r of DARTS's finite difference (eq. 8): the weights move by ε = r / ‖∇_{w'} L_val(w', α)‖."""


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
    capture: bool | str = False,
    autocast_mode: str = "none",
    arch_order: int = 1,
    strategy: SearchStrategy | None = None,
    capture_report: CaptureReport | None = None,
    run_steps: dict | None = None,
) -> tuple[float, float]:
    """One epoch of DARTS (or of another search strategy); returns (train_cs loss, train_cs accuracy).

    Per step: α ← α − ∇_α L_val(w, α) on a val_cs batch (``arch_order=1``; with
    ``arch_order=2`` the unrolled gradient of :func:`unrolled_arch_gradient`, which also
    reads the train_cs batch), then w ← w − ∇_w L_train(w, α) on a train_cs batch. Each
    optimiser only holds its own parameter set, and gradients are cleared before each
    step, so α changes only through the α optimiser and the weights only through the
    weight optimiser. Losses, accuracy and the finiteness of the losses and of α are
    tracked on the device (:mod:`dartsrenet.steps`); with ``capture`` on CUDA the whole
    step, both optimiser steps included, is replayed from one CUDA graph (``"strict"``: a
    failed capture is raised; counted in ``capture_report``). With ``run_steps`` (a dict the
    run keeps from epoch to epoch) the step, its graph and its totals are made on the first
    epoch and reused — reset in place — by the later ones: one capture per run. Capture does
    not apply to second-order steps (their finite difference scales by a norm and swaps
    the weights in and out): with ``arch_order=2`` the steps run eagerly, ``capture`` or
    not.

    ``strategy`` (:mod:`dartsrenet.strategies`; default DARTS) chooses the mixing weights
    of each step's forward pass (a Gumbel sample, noisy probabilities, a sampled path) and
    whether there is an α step; steps are captured only for strategies that draw nothing
    on the host (DARTS, DARTS-PT).

    Raises:
        ValueError: ``arch_order`` is neither 1 nor 2 (before any step).
        NonFiniteLossError: the α-step or weight-step loss, or α itself after its
            step, is NaN or infinite (the step is named).
    """
    if arch_order not in (1, 2):
        raise ValueError(f"arch_order must be 1 (first-order DARTS) or 2 (second-order, unrolled), got {arch_order!r}")
    model.train()
    weights = model.weight_parameters()
    architecture = model.architecture
    updates_alpha = strategy is None or strategy.updates_alpha
    capturable = arch_order == 1 and (strategy is None or strategy.capturable)
    graphed = capture if device.type == "cuda" and capturable else False
    arch_step = nullcontext if strategy is None else strategy.arch_step
    weight_step = nullcontext if strategy is None else strategy.weight_step
    run_steps = {} if run_steps is None else run_steps
    if "search" in run_steps:
        run_step, (arch_totals, totals, alpha_watch) = run_steps["search"]
        for tracker in (arch_totals, totals, alpha_watch):
            tracker.reset()
        return _run_search_steps(model, train_cs, val_cs, device, on_step, run_step, arch_totals, totals, alpha_watch)
    arch_totals = EpochTotals(device, "search α")
    totals = EpochTotals(device, "search weight")
    alpha_watch = FiniteWatch(
        device, "α became non-finite after search α step {step}; stopping without writing a checkpoint "
        "(lower arch_lr or check the data)",
    )

    def step(images: torch.Tensor, labels: torch.Tensor, val_images: torch.Tensor, val_labels: torch.Tensor) -> None:
        if updates_alpha:
            arch_optimizer.zero_grad(set_to_none=not graphed)  # a graph's gradients keep their memory
            with arch_step(architecture):
                if arch_order == 2:
                    val_loss = unrolled_arch_gradient(
                        model, images, labels, val_images, val_labels, weight_optimizer, autocast_mode=autocast_mode
                    )
                else:
                    with autocast(device, autocast_mode):
                        val_loss = F.cross_entropy(model(val_images).float(), val_labels)
                    val_loss.backward()
            arch_optimizer.step()
            arch_totals.add(val_loss)
            alpha_watch.add(model.alpha)

        weight_optimizer.zero_grad(set_to_none=not graphed)
        with weight_step(architecture):
            with autocast(device, autocast_mode):
                logits = model(images)
                loss = F.cross_entropy(logits.float(), labels)
            loss.backward()
        if grad_clip > 0:
            nn.utils.clip_grad_norm_(weights, grad_clip)
        weight_optimizer.step()
        totals.add(loss, logits, labels)

    run_step = GraphedStep(step, capture=graphed, report=capture_report)
    run_steps["search"] = (run_step, (arch_totals, totals, alpha_watch))
    return _run_search_steps(model, train_cs, val_cs, device, on_step, run_step, arch_totals, totals, alpha_watch)


def _run_search_steps(
    model: SearchNetwork, train_cs: DataLoader, val_cs: DataLoader, device: torch.device,
    on_step: StepCallback | None, run_step: GraphedStep, arch_totals: EpochTotals, totals: EpochTotals,
    alpha_watch: FiniteWatch,
) -> tuple[float, float]:  # fmt: skip
    """The epoch's loop of :func:`search_epoch`."""
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


def unrolled_arch_gradient(
    model: SearchNetwork,
    images: torch.Tensor,
    labels: torch.Tensor,
    val_images: torch.Tensor,
    val_labels: torch.Tensor,
    weight_optimizer: torch.optim.Optimizer,
    *,
    autocast_mode: str = "none",
    scale: float = FINITE_DIFFERENCE_SCALE,
) -> torch.Tensor:
    """Set α's gradient to second-order DARTS's (Liu et al. 2019, eq. 7–8); return L_val(w', α).

    The gradient of L_val at the weights after one virtual weight step,

        w' = w − ξ (∇_w L_train(w, α) + λ w + μ m),
        ∇_α L_val(w', α) − ξ ∇²_{α,w} L_train(w, α) ∇_{w'} L_val(w', α),

    with the Hessian-vector product by central finite differences (eq. 8):
    (∇_α L_train(w⁺, α) − ∇_α L_train(w⁻, α)) / 2ε, w± = w ± ε ∇_{w'} L_val(w', α),
    ε = ``scale`` / ‖∇_{w'} L_val(w', α)‖ (DARTS: 0.01). Only first-order gradients are
    taken, so every backend runs it. The difference is exact up to O(ε²) where the loss is
    smooth; a ReLU kink crossed between w⁻ and w⁺ adds an error that does not shrink
    with ε (on a small search network at DARTS's ε, a few per cent of the product).

    The virtual step is the one of the original DARTS code (``architect.py``): ξ is the
    weight optimiser's current learning rate, λ its weight decay, and μ m its momentum
    times its momentum buffer (SGD with a buffer; zero before the first weight step and
    for Adam, whose virtual step is then plain gradient descent with weight decay, as
    that code does with an optimiser without a momentum buffer). As there, the virtual
    step does not clip gradients. The momentum and weight-decay terms do not depend on
    α, so the formula above is the exact gradient of L_val(w'(α), α) up to the finite
    difference.

    Nothing else changes: the weights are swapped in place and copied back bit for bit,
    every buffer (BatchNorm running statistics, their slots and ``num_batches_tracked``)
    is restored as it was before the four passes, the optimiser's state is only read,
    and the weights' ``.grad`` is untouched. Only α's ``.grad`` is written (replaced).

    Args:
        model: the search network, in training mode.
        images, labels: the train_cs batch (the virtual step and the finite difference).
        val_images, val_labels: the val_cs batch.
        weight_optimizer: the weight optimiser (SGD or Adam); its parameter groups must
            share one learning rate (ξ).
        autocast_mode: as :func:`dartsrenet.steps.autocast`.
        scale: r of ε = r / ‖∇_{w'} L_val(w', α)‖.

    Returns:
        L_val(w', α), detached (the α step's loss).
    """
    weights = model.weight_parameters()
    arch = model.arch_parameters()
    settings = _virtual_step_settings(weight_optimizer, weights)
    xi = settings[0][0]
    device = val_images.device
    saved_buffers = _snapshot_buffers(model)
    saved_weights = [weight.detach().clone() for weight in weights]
    try:
        # w' = w − ξ (∇_w L_train(w, α) + λ w + μ m)
        train_grads = _gradients(_loss(model, images, labels, device, autocast_mode), weights)
        with torch.no_grad():
            for weight, grad, (lr, weight_decay, momentum_term) in zip(weights, train_grads, settings, strict=True):
                step = grad + weight_decay * weight if weight_decay else grad.clone()
                if momentum_term is not None:
                    step.add_(momentum_term)
                weight.sub_(lr * step)
        val_loss = _loss(model, val_images, val_labels, device, autocast_mode)
        val_grads = _gradients(val_loss, [*weights, *arch])
        direction, arch_grads = val_grads[: len(weights)], val_grads[len(weights) :]
        product = _finite_difference_product(
            model, images, labels, weights, saved_weights, direction, autocast_mode, scale
        )
    finally:
        _restore_weights(weights, saved_weights)
        _restore_buffers(saved_buffers)
    for parameter, grad, hessian_term in zip(arch, arch_grads, product, strict=True):
        parameter.grad = grad - xi * hessian_term
    return val_loss.detach()


def hessian_vector_product(
    model: SearchNetwork,
    images: torch.Tensor,
    labels: torch.Tensor,
    direction: list[torch.Tensor],
    *,
    autocast_mode: str = "none",
    scale: float = FINITE_DIFFERENCE_SCALE,
) -> list[torch.Tensor]:
    """∇²_{α,w} L_train(w, α) · ``direction`` by central finite differences (eq. 8), one tensor per α parameter.

    ``direction`` holds one tensor per weight (:meth:`SearchNetwork.weight_parameters`);
    ε = ``scale`` / ‖direction‖ (see :func:`unrolled_arch_gradient` on its accuracy). The
    weights and buffers are left exactly as they were.
    """
    weights = model.weight_parameters()
    saved_buffers = _snapshot_buffers(model)
    saved_weights = [weight.detach().clone() for weight in weights]
    try:
        return _finite_difference_product(
            model, images, labels, weights, saved_weights, direction, autocast_mode, scale
        )
    finally:
        _restore_weights(weights, saved_weights)
        _restore_buffers(saved_buffers)


def _finite_difference_product(
    model: SearchNetwork,
    images: torch.Tensor,
    labels: torch.Tensor,
    weights: list[nn.Parameter],
    saved_weights: list[torch.Tensor],
    direction: list[torch.Tensor],
    autocast_mode: str,
    scale: float,
) -> list[torch.Tensor]:
    """(∇_α L_train(w⁺, α) − ∇_α L_train(w⁻, α)) / 2ε about the weights ``saved_weights``;
    leaves the weights at w⁻ (the caller restores them)."""
    arch = model.arch_parameters()
    device = images.device
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(v) for v in direction]))
    # a zero direction gives a zero product (not 0/0): ε is then huge but multiplies zeros
    epsilon = scale / norm.clamp_min(torch.finfo(norm.dtype).tiny)
    sides = []
    for sign in (1.0, -1.0):
        with torch.no_grad():
            for weight, saved, v in zip(weights, saved_weights, direction, strict=True):
                weight.copy_(saved).add_(sign * epsilon * v)
        sides.append(_gradients(_loss(model, images, labels, device, autocast_mode), arch))
    return [(plus - minus) / (2 * epsilon) for plus, minus in zip(*sides, strict=True)]


def _loss(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device, autocast_mode: str
) -> torch.Tensor:
    """Cross-entropy of the model on a batch; logits in at least float32 (bf16 ones are upcast, float64 kept)."""
    with autocast(device, autocast_mode):
        logits = model(images)
    return F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), labels)


def _gradients(loss: torch.Tensor, parameters: list[nn.Parameter]) -> list[torch.Tensor]:
    """∂loss/∂parameters without touching ``.grad``; a parameter the loss does not use gets zeros."""
    grads = torch.autograd.grad(loss, parameters, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(parameters, grads, strict=True)]


def _virtual_step_settings(
    optimizer: torch.optim.Optimizer, weights: list[nn.Parameter]
) -> list[tuple[float, float, torch.Tensor | None]]:
    """Per weight: (learning rate, weight decay, momentum × momentum buffer or None) of the virtual step."""
    groups = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    missing = [k for k, weight in enumerate(weights) if id(weight) not in groups]
    if missing:
        raise ValueError(f"the weight optimiser does not hold {len(missing)} of the model's weights")
    rates = {group["lr"] for group in optimizer.param_groups}
    if len(rates) != 1:
        raise ValueError(
            f"second-order DARTS needs one weight learning rate ξ; the optimiser's groups have {sorted(rates)}"
        )
    settings = []
    for weight in weights:
        group = groups[id(weight)]
        momentum = group.get("momentum", 0.0) if isinstance(optimizer, torch.optim.SGD) else 0.0
        buffer = optimizer.state.get(weight, {}).get("momentum_buffer") if momentum else None
        momentum_term = None if buffer is None else momentum * buffer
        settings.append((float(group["lr"]), float(group["weight_decay"]), momentum_term))
    return settings


def _snapshot_buffers(model: nn.Module) -> list[tuple[nn.Module, str, torch.Tensor]]:
    """A copy of every buffer, with its module and name."""
    return [
        (module, name, buffer.detach().clone())
        for module in model.modules()
        for name, buffer in module.named_buffers(recurse=False)
    ]


def _restore_buffers(snapshot: list[tuple[nn.Module, str, torch.Tensor]]) -> None:
    """Put every buffer back as :func:`_snapshot_buffers` saw it (a buffer that grew slots is replaced)."""
    with torch.no_grad():
        for module, name, saved in snapshot:
            current = getattr(module, name)
            if current is not None and current.shape == saved.shape and current.dtype == saved.dtype:
                current.copy_(saved)
            else:
                setattr(module, name, saved)


def _restore_weights(weights: list[nn.Parameter], saved: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for weight, value in zip(weights, saved, strict=True):
            weight.copy_(value)


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
    RunFolder(config.out).check_writable()
    device = resolve_device(config.device)
    select_device(device)
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
    strategy = make_strategy(config)
    # second order, and strategies that draw on the host: eager steps
    graphed = bool(config.capture) and device.type == "cuda" and config.arch_order == 1 and strategy.capturable
    capture_report, run_steps = CaptureReport(mode=config.capture), {}  # one step (and graph) for the run
    validation_capture = {  # the validation forward: a second graph (not for strategies that draw on the host)
        "capture": config.capture if strategy.capturable else False, "capture_report": CaptureReport(mode=config.capture),
        "run_steps": {},
    }
    weight_optimizer, arch_optimizer = make_optimizers(model, config, capturable=graphed)
    scheduler = cosine_schedule(weight_optimizer, config.epochs, config.lr_min)
    driver = RunDriver(
        "search", config,
        {"model": model, "weight_optimizer": weight_optimizer, "arch_optimizer": arch_optimizer, "scheduler": scheduler},
        report, resume_from, log, views=selecting_search_views if strategy.selects else search_views,
    )
    driver.start(device)
    if graphed:  # a resumed Adam keeps its checkpoint's setting: make it capturable
        for optimizer in (weight_optimizer, arch_optimizer):
            _make_capturable(optimizer, device)
        learning_rates_on_device(weight_optimizer, device)  # the schedule then changes no graph
    params = count_parameters(model)
    if driver.start_epoch == 1:
        log and log(
            f"[search] {config.variant} on {config.dataset}, seed {config.seed}, strategy {config.strategy}: "
            f"{params:,} parameters on {device}"
        )

    while driver.should_continue():
        epoch = driver.start_epoch
        started = time.perf_counter()
        seed_epoch(config.seed, epoch, [train_cs, val_cs])
        strategy.start_epoch(epoch)
        lr = float(weight_optimizer.param_groups[0]["lr"])
        with driver.epoch_progress(epoch, min(len(train_cs), len(val_cs))) as progress:
            train_loss, train_accuracy = search_epoch(
                model, train_cs, val_cs, weight_optimizer, arch_optimizer, device, config.grad_clip, on_step=progress,
                capture=config.capture, autocast_mode=config.autocast, arch_order=config.arch_order, strategy=strategy,
                capture_report=capture_report, run_steps=run_steps,
            )
        scheduler.step()
        genotype = strategy.epoch_genotype(model)
        with strategy.validation(model.architecture):
            validation = validation_metrics(
                model, val_cs, device, "val_cs split", autocast_mode=config.autocast, **validation_capture
            )
        metrics: dict[str, Any] = {
            "epoch": epoch, "train_loss": train_loss, "train_accuracy": train_accuracy,
            **validation, "lr": lr, "params": params,
            "epoch_time_s": time.perf_counter() - started, "genotype": genotype.to_string(), **strategy.epoch_record(),
        }
        driver.end_epoch(metrics)
        best = genotype if metrics["improved"] else _best_genotype(driver.history, driver.best_epoch)
        metrics["best_genotype"] = best.to_string() if best is not None else None
        metrics["alpha"] = model.architecture.probabilities().detach().cpu().tolist()
        # also alpha_history.json and, unless the strategy selects at the end, genotype.json (search_views)
        driver.commit_epoch(metrics)

    driver.require_selected_epoch()
    best = _best_genotype(driver.history, driver.best_epoch)
    selection: dict[str, Any] = {}
    if strategy.selects:  # the genotype is chosen on the trained supernet, not by the best epoch
        context = selection_context(config, train_cs, val_cs, weight_optimizer, device, log)
        best, record = strategy.select(model, context)
        write_json(driver.folder.path / "selection.json", {**record, "genotype": best.to_string()})
        write_json(driver.folder.path / "genotype.json", best.to_dict())
        selection = {"selection": record["method"], "supernet_epoch_genotype_string": _best_genotype(
            driver.history, driver.best_epoch).to_string()}
        log and log(f"[{config.strategy}] selected {best.to_string()}")
    return driver.summary(
        device, params, variant=config.variant, dataset=config.dataset, seed=config.seed, strategy=config.strategy,
        genotype=best.to_dict(), genotype_string=best.to_string(),
        final_genotype_string=derive_genotype(model.alpha).to_string(), **selection, capture=capture_report.as_dict(),
        validation_capture=validation_capture["capture_report"].as_dict(),
    )


def selection_context(
    config: SearchConfig, train_cs: DataLoader, val_cs: DataLoader, weight_optimizer: torch.optim.Optimizer,
    device: torch.device, log: Log | None,
) -> SelectionContext:
    """What a selection after training uses: the first ``selection_batches`` val_cs batches
    (in the order of the selection's seed) and the train_cs loader, reseeded likewise."""
    seed_epoch(config.seed, 0, [train_cs, val_cs])
    return SelectionContext(
        val_batches=fixed_batches(val_cs, config.selection_batches, device), train_cs=train_cs,
        weight_optimizer=weight_optimizer, device=device, log=log,
    )


def search_views(history: list[dict[str, Any]], best_epoch: int) -> dict[str, Any]:
    """A search's own files, derived from its history (docs/design.md, "Run folder"):
    ``alpha_history.json`` (softmax(α) per epoch) and ``genotype.json`` (the best epoch's
    genotype; None while no epoch is selected)."""
    best = _best_genotype(history, best_epoch)
    return {**selecting_search_views(history, best_epoch), "genotype.json": best.to_dict() if best is not None else None}


def selecting_search_views(history: list[dict[str, Any]], best_epoch: int) -> dict[str, Any]:
    """The per-epoch files of a search whose strategy selects its genotype after training
    (``alpha_history.json`` only: ``genotype.json`` and ``selection.json`` are the
    selection's, written once at the end, and left alone by the repair)."""
    return {"alpha_history.json": [metrics["alpha"] for metrics in history]}


def _best_genotype(history: list[dict[str, Any]], best_epoch: int) -> Genotype | None:
    """The genotype derived at the best val_cs epoch (history holds one metrics dict per epoch, from 1);
    None while no epoch is selected."""
    return Genotype.from_string(history[best_epoch - 1]["genotype"]) if best_epoch else None

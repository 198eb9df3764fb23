"""DARTS cell search as a plain, resumable run (paper §2.2, §3.3; docs/architecture.md §3).

Each step takes one α step on a val_cs batch (Adam: lr 3e-3, betas (0.5, 0.999),
weight decay 1e-3), then one weight step on a train_cs batch (SGD as the code, or
Adam as the paper). The α step is first-order DARTS by default (``arch_order=1``, the
gradient of L_val at the current weights, as the paper) or second-order DARTS
(``arch_order=2``: the unrolled gradient of Liu et al. 2019, eq. 7–8, see
:func:`~dartsrenet.second_order.unrolled_arch_gradient`). Every epoch records losses,
accuracies, softmax(α) and the derived genotype (eq. 9–10); the run keeps the genotype of
its best val_cs epoch (early stopping on val_cs, paper §3.3). :func:`run_search` runs
:class:`SearchPhase` in the run engine's loop (:mod:`dartsrenet.engine`).

``strategy`` other than ``darts`` (:mod:`dartsrenet.strategies`, docs/search-strategies.md)
changes the mixing weights of each step, the validation and, for RSWS and DARTS-PT, chooses
the genotype on the trained supernet after the last epoch (``selection.json``).
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader

from dartsrenet.config import SearchConfig, validate_config
from dartsrenet.data import DatasetInfo, make_search_loaders
from dartsrenet.engine import RunEngine, run_phase
from dartsrenet.genotypes import Genotype, derive_genotype
from dartsrenet.networks import SearchNetwork, build_search_model, count_parameters
from dartsrenet.results.contract import ALPHA_HISTORY_FILE, GENOTYPE_FILE, SUPERNET_SELECTION_FILE
from dartsrenet.runs import write_json
from dartsrenet.second_order import unrolled_arch_gradient
from dartsrenet.steps import (
    CaptureReport, EpochTotals, FiniteWatch, GraphedStep, apply_matmul_precision, autocast, checks_every_step,
    learning_rates_on_device,
)
from dartsrenet.strategies import SearchStrategy, SelectionContext, make_strategy
from dartsrenet.strategies.supernet import fixed_batches
from dartsrenet.training import Log, Report, StepCallback, cosine_schedule, seed_epoch, validation_metrics

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
    ``arch_order=2`` the unrolled gradient of :func:`~dartsrenet.second_order.unrolled_arch_gradient`, which also
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
    return run_phase(config, lambda device: SearchPhase(config, device, log), report, resume_from, log)


def search_loaders(config: SearchConfig) -> tuple[DataLoader, DataLoader, DatasetInfo]:
    """(train_cs, val_cs, dataset info) of a search: the two halves of the training set (docs/architecture.md §3)."""
    return make_search_loaders(
        config.dataset, config.data_root, batch_size=config.batch_size, seed=config.seed,
        augment=config.augment, cutout=config.cutout, download=config.download,
        svhn_extra=config.svhn_extra, limit=config.limit, num_workers=config.num_workers,
    )


def search_network(config: SearchConfig, info: DatasetInfo, device: torch.device) -> SearchNetwork:
    """The search network of ``config`` for the dataset ``info``, on ``device`` (initialised from torch's RNG)."""
    return build_search_model(
        config.variant, num_classes=info.num_classes, channels=config.channels, head_init_range=info.head_init_range,
        backend=config.backend,
    ).to(device)


class SearchPhase:
    """The search's part of the run engine's loop (:class:`dartsrenet.engine.Phase`).

    Each epoch is :func:`search_epoch` under the run's strategy; it records the epoch's
    genotype (eq. 9–10) and softmax(α), and the best val_cs epoch's genotype. After the
    last epoch the run's genotype is the best epoch's — or, for a strategy that selects
    (RSWS, DARTS-PT), the one it chooses on the trained supernet (``selection.json``).
    """

    kind = "search"

    def __init__(self, config: SearchConfig, device: torch.device, log: Log | None):
        self.config, self.device, self.log = config, device, log
        self.train_cs, self.val_cs, info = search_loaders(config)
        self.loaders = [self.train_cs, self.val_cs]
        self.steps_per_epoch = min(len(self.train_cs), len(self.val_cs))
        torch.manual_seed(config.seed)
        apply_matmul_precision(config.matmul_precision, device)
        self.model = search_network(config, info, device)
        self.params = count_parameters(self.model)
        self.strategy = make_strategy(config)
        # second order, and strategies that draw on the host: eager steps
        self.graphed = (
            bool(config.capture) and device.type == "cuda" and config.arch_order == 1 and self.strategy.capturable
        )
        self.capture_report, self.run_steps = CaptureReport(mode=config.capture), {}  # one step (and graph) for the run
        self.validation_capture = {  # the validation forward: a second graph (not for strategies that draw on the host)
            "capture": config.capture if self.strategy.capturable else False,
            "capture_report": CaptureReport(mode=config.capture), "run_steps": {},
        }
        self.weight_optimizer, self.arch_optimizer = make_optimizers(self.model, config, capturable=self.graphed)
        self.scheduler = cosine_schedule(self.weight_optimizer, config.epochs, config.lr_min)
        self.stateful = {
            "model": self.model, "weight_optimizer": self.weight_optimizer, "arch_optimizer": self.arch_optimizer,
            "scheduler": self.scheduler,
        }
        self.views = selecting_search_views if self.strategy.selects else search_views
        self.genotype: Genotype | None = None  # the epoch's

    def resumed(self) -> None:
        if self.graphed:  # a resumed Adam keeps its checkpoint's setting: make it capturable
            for optimizer in (self.weight_optimizer, self.arch_optimizer):
                _make_capturable(optimizer, self.device)
            learning_rates_on_device(self.weight_optimizer, self.device)  # the schedule then changes no graph

    def intro(self) -> str:
        config = self.config
        return (
            f"[search] {config.variant} on {config.dataset}, seed {config.seed}, strategy {config.strategy}: "
            f"{self.params:,} parameters on {self.device}"
        )

    def train_epoch(self, epoch: int, on_step: StepCallback) -> tuple[float, float]:
        config = self.config
        self.strategy.start_epoch(epoch)
        return search_epoch(
            self.model, self.train_cs, self.val_cs, self.weight_optimizer, self.arch_optimizer, self.device,
            config.grad_clip, on_step=on_step, capture=config.capture, autocast_mode=config.autocast,
            arch_order=config.arch_order, strategy=self.strategy, capture_report=self.capture_report,
            run_steps=self.run_steps,
        )

    def validate(self) -> dict[str, Any]:
        self.genotype = self.strategy.epoch_genotype(self.model)
        with self.strategy.validation(self.model.architecture):
            return validation_metrics(
                self.model, self.val_cs, self.device, "val_cs split", autocast_mode=self.config.autocast,
                **self.validation_capture,
            )

    def epoch_record(self) -> dict[str, Any]:
        return {"genotype": self.genotype.to_string(), **self.strategy.epoch_record()}

    def complete_epoch(self, metrics: dict[str, Any], engine: RunEngine) -> None:
        best = self.genotype if metrics["improved"] else _best_genotype(engine.history, engine.best_epoch)
        metrics["best_genotype"] = best.to_string() if best is not None else None
        metrics["alpha"] = self.model.architecture.probabilities().detach().cpu().tolist()
        # also alpha_history.json and, unless the strategy selects at the end, genotype.json (search_views)

    def summary_fields(self, engine: RunEngine) -> dict[str, Any]:
        config = self.config
        engine.require_selected_epoch()
        best = epoch_best = _best_genotype(engine.history, engine.best_epoch)
        selection: dict[str, Any] = {}
        if self.strategy.selects:  # the genotype is chosen on the trained supernet, not by the best epoch
            context = selection_context(config, self.train_cs, self.val_cs, self.weight_optimizer, self.device, self.log)
            best, record = self.strategy.select(self.model, context)
            write_json(engine.folder.path / SUPERNET_SELECTION_FILE, {**record, "genotype": best.to_string()})
            write_json(engine.folder.path / GENOTYPE_FILE, best.to_dict())
            selection = {"selection": record["method"], "supernet_epoch_genotype_string": epoch_best.to_string()}
            self.log and self.log(f"[{config.strategy}] selected {best.to_string()}")
        return dict(
            variant=config.variant, dataset=config.dataset, seed=config.seed, strategy=config.strategy,
            genotype=best.to_dict(), genotype_string=best.to_string(),
            final_genotype_string=derive_genotype(self.model.alpha).to_string(), **selection,
            capture=self.capture_report.as_dict(), validation_capture=self.validation_capture["capture_report"].as_dict(),
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
    return {**selecting_search_views(history, best_epoch), GENOTYPE_FILE: best.to_dict() if best is not None else None}


def selecting_search_views(history: list[dict[str, Any]], best_epoch: int) -> dict[str, Any]:
    """The per-epoch files of a search whose strategy selects its genotype after training
    (``alpha_history.json`` only: ``genotype.json`` and ``selection.json`` are the
    selection's, written once at the end, and left alone by the repair)."""
    return {ALPHA_HISTORY_FILE: [metrics["alpha"] for metrics in history]}


def _best_genotype(history: list[dict[str, Any]], best_epoch: int) -> Genotype | None:
    """The genotype derived at the best val_cs epoch (history holds one metrics dict per epoch, from 1);
    None while no epoch is selected."""
    return Genotype.from_string(history[best_epoch - 1]["genotype"]) if best_epoch else None

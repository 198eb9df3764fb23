"""A selection after training (RSWS ranking, DARTS-PT) on an existing search run folder.

``python -m dartsrenet select --run RUN_DIR --method darts_pt`` rebuilds the run's search
network from its ``config.json``, loads the last checkpoint's weights, α and weight
optimiser, and chooses a genotype as :meth:`~dartsrenet.strategies.protocol.SearchStrategy.select`
does at the end of a search with that strategy. It writes ``selection-METHOD.json`` and
``genotype-METHOD.json`` beside the run's own files, which it never changes
(docs/search-strategies.md). :func:`score_on_run` scores given genotypes on a run's
supernet (the Kendall τ of ``sweeps/study.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from dartsrenet.config import SearchConfig, coerce_value, config_from_dict
from dartsrenet.genotypes import Genotype
from dartsrenet.networks import SearchNetwork
from dartsrenet.registry import lookup
from dartsrenet.results.contract import GENOTYPE_FILE, SUPERNET_SELECTION_FILE, method_file
from dartsrenet.runs import CheckpointError, RunFolder, load_checkpoint, resolve_device, write_json
from dartsrenet.strategies.supernet import supernet_metrics
from dartsrenet.training import Log

SELECTION_OVERRIDES = ("rsws_candidates", "pt_finetune_steps", "selection_batches", "device")
"""What a selection on a run folder may change of the run's config."""


def load_supernet(
    run_dir: str | Path, strategy: str, overrides: dict[str, Any] | None = None
) -> tuple[SearchConfig, SearchNetwork, torch.optim.Optimizer, DataLoader, DataLoader, dict[str, Any]]:
    """A finished (or interrupted) search run's network as its last checkpoint left it.

    Returns:
        (config with ``strategy``, network, weight optimiser, train_cs, val_cs, checkpoint state).

    Raises:
        UnknownNameError: an unknown override (the message lists the valid ones).
        CheckpointError: the folder holds no search run with a checkpoint.
    """
    from dartsrenet.search import make_optimizers, search_loaders, search_network  # the search loop imports this package

    overrides = dict(overrides or {})
    for name in overrides:
        lookup({field: field for field in SELECTION_OVERRIDES}, name, "selection override")
    folder = RunFolder(run_dir)
    if not folder.config_file.is_file() or not folder.has_checkpoint():
        raise CheckpointError(f"{folder.path} holds no search run with a checkpoint (config.json and checkpoint/)")
    saved = json.loads(folder.config_file.read_text())
    if "arch_lr" not in saved:
        raise CheckpointError(f"{folder.path} holds a training run, not a search run")
    values = {**saved, "strategy": strategy}
    for name in ("sdarts_epsilon_start", "sdarts_epsilon_end", "gdas_tau_max", "gdas_tau_min", "rsws_candidates",
                 "pt_finetune_steps", "selection_batches"):
        values.pop(name, None)  # the training's own strategy fields: a selection does not read them
    values.update({name: coerce_value(SearchConfig, name, value) for name, value in overrides.items()})
    if strategy in ("rsws", "gdas") and values.get("arch_order") == 2:
        values["arch_order"] = 1  # no α steps in a selection
    config = config_from_dict("search", values)
    device = resolve_device(config.device)
    train_cs, val_cs, info = search_loaders(config)
    model = search_network(config, info, device)
    weight_optimizer, _ = make_optimizers(model, config)
    state = load_checkpoint(folder.checkpoint_dir, map_location=device)
    try:
        model.load_state_dict(state["model"])
        weight_optimizer.load_state_dict(state["stateful"]["weight_optimizer"])
    except (KeyError, RuntimeError, ValueError) as error:
        raise CheckpointError(f"{folder.checkpoint_dir}: checkpoint does not fit the run's config ({error})") from None
    if not torch.isfinite(model.alpha).all():
        raise CheckpointError(f"{folder.path}: the checkpoint's α is not finite")
    return config, model, weight_optimizer, train_cs, val_cs, state


def select_on_run(run_dir: str | Path, method: str, overrides: dict[str, Any] | None = None, log: Log | None = print) -> dict[str, Any]:
    """Choose a genotype on the trained supernet of ``run_dir`` with ``method`` (rsws or darts_pt).

    Returns:
        The selection record, with ``genotype`` (a string) and the files written.

    Raises:
        UnknownNameError: an unknown method or override (the message lists the valid ones).
        CheckpointError: the folder holds no search run with a checkpoint.
    """
    from dartsrenet.search import selection_context
    from dartsrenet.strategies import SELECTION_METHODS, make_strategy

    lookup({name: name for name in SELECTION_METHODS}, method, "selection method")
    folder = RunFolder(run_dir)
    config, model, weight_optimizer, train_cs, val_cs, state = load_supernet(run_dir, method, overrides)
    run_strategy = json.loads(folder.config_file.read_text()).get("strategy", "darts")
    device = resolve_device(config.device)
    context = selection_context(config, train_cs, val_cs, weight_optimizer, device, log)
    genotype, record = make_strategy(config).select(model, context)
    record = {**record, "genotype": genotype.to_string(), "run": str(folder.path), "run_strategy": run_strategy,
              "epochs_trained": len(state["history"])}
    selection_file = folder.path / method_file(SUPERNET_SELECTION_FILE, method)
    genotype_file = folder.path / method_file(GENOTYPE_FILE, method)
    write_json(selection_file, record)
    write_json(genotype_file, genotype.to_dict())
    return {**record, "files": [str(selection_file), str(genotype_file)]}


def score_on_run(run_dir: str | Path, genotypes: Mapping[str, Genotype], batches: int | None = None) -> dict[str, float]:
    """The supernet accuracy of each named genotype's path on a search run's trained network
    (the first ``batches`` val_cs batches in the selection's order; None: all), by name."""
    from dartsrenet.search import selection_context

    overrides = {} if batches is None else {"selection_batches": batches}
    config, model, weight_optimizer, train_cs, val_cs, _ = load_supernet(run_dir, "rsws", overrides)
    context = selection_context(config, train_cs, val_cs, weight_optimizer, resolve_device(config.device), None)
    return {name: supernet_metrics(model, context.val_batches, path=genotype)[0] for name, genotype in genotypes.items()}

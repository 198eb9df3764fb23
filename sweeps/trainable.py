"""The trial: a plain function of its config that runs one library run and reports it.

The trainables :func:`search_trial` and :func:`train_trial` call the library's
:func:`dartsrenet.search.run_search` / :func:`dartsrenet.train.run_train` with a
``report`` callback that forwards every epoch's metrics and checkpoint to
``tune.report``, and resume from ``tune.get_checkpoint()``. The library's run folder is
written to ``<trial working dir>/run`` and synced into the trial folder of the
experiment (``SyncConfig(sync_artifacts=True)``, :mod:`sweeps.experiment`).

Configs are planned once, while the sweep is planned, and shipped to the trials as
data: a trial config carries :data:`PLANNED_CONFIGS_FIELD`, the field values of the
preset, its dataset section and the ``--set`` overrides, already layered, per dataset
(:func:`dartsrenet.config.preset_values`). The trial adds its own fields (variant or
cell, seed, dataset, run folder, tuned hyperparameters) and builds its
:class:`~dartsrenet.config.SearchConfig` / :class:`~dartsrenet.config.TrainConfig` from
that data alone (:func:`trial_run_config`): no preset is read inside a trial.
:func:`check_trial_configs` builds every planned trial's config the same way before Ray
starts, so a bad ``--dataset`` or ``--set`` value is one ``error:`` line, not a failure
of every trial.

Inside a trial the device comes from ``ray.get_gpu_ids()`` (:func:`trial_device`): a
trial that was given (a share of) a GPU runs on ``cuda`` (Ray sets
``CUDA_VISIBLE_DEVICES``), any other on ``cpu`` — never ``torch.cuda.is_available()``,
since a zero-GPU trial on a GPU node still sees every GPU. When Ray assigned a GPU that
CUDA cannot use (a *logical* GPU declared with ``ray.init(num_gpus=1)`` on a CPU
machine, as the tests do) the trial warns and falls back to the CPU. An explicit
``--set device=…`` wins over both.

This module and :mod:`sweeps.failure_drill` are shipped to Ray workers by value:
workers need only ``dartsrenet`` installed, not this folder on their path (``ray
submit`` uploads only the script to the head node).
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import ray
import ray.cloudpickle
from ray import tune

from dartsrenet.config import Config, config_from_values, preset_values
from dartsrenet.results import RUN_FOLDER
from sweeps import failure_drill
from sweeps.errors import SweepError
from sweeps.failure_drill import after_report

for _module in (sys.modules[__name__], failure_drill):
    ray.cloudpickle.register_pickle_by_value(_module)

TUNING_SPACE: dict[str, tuple[str, tuple[float, ...]]] = {
    "lr": ("loguniform", (1e-3, 0.3)),
    "weight_decay": ("loguniform", (1e-6, 1e-2)),
    "momentum": ("uniform", (0.5, 0.95)),
    "batch_size": ("choice", (32, 64, 128)),
    "cutout": ("choice", (0, 8, 12, 16)),
}
"""The hyperparameters that tune_hparams.py tunes: (distribution, bounds or choices);
the paper's values lie inside."""

HPARAM_FIELDS: tuple[str, ...] = tuple(TUNING_SPACE)
"""Training hyperparameters that a trial config may carry at top level (tune_hparams.py)."""

NETWORK_FIELDS: tuple[str, ...] = ("network",)
"""The network's shape, which a trial config may carry at top level (design_network.py)."""

PLANNED_CONFIGS_FIELD = "planned_configs"
"""The trial-config field with the planned config values per dataset (:func:`planned_configs`)."""


# --- planned once --------------------------------------------------------------------


def planned_configs(kind: str, preset: str, overrides: Mapping[str, Any], datasets: Iterable[str]) -> dict[str, Any]:
    """Per dataset, the config values its trials share: the preset's, its dataset
    section's and the overrides', layered (:func:`dartsrenet.config.preset_values`).
    Shipped to every trial (:data:`PLANNED_CONFIGS_FIELD`) and recorded in ``sweep.json``.

    Raises:
        SweepError: an unreadable preset file or unknown preset.
    """
    try:
        return {dataset: preset_values(kind, preset, {**overrides, "dataset": dataset}) for dataset in datasets}
    except (ValueError, FileNotFoundError) as error:
        raise SweepError(f"--preset {preset}: {error}") from None


def check_trial_configs(kind: str, planned: Iterable[Mapping[str, Any]], configs: Mapping[str, Any]) -> None:
    """Build the library config of every planned trial as the trial will
    (:func:`trial_run_config`; :func:`dartsrenet.config.validate_config` checks every
    field), so that a bad value stops the sweep while it is planned, before Ray starts,
    instead of failing every trial ``--max-failures`` + 1 times.

    Args:
        kind: ``"search"`` or ``"train"``.
        planned: trial entries as the sweep plans them (``dataset``, ``seed``, …).
        configs: the values planned per dataset (:func:`planned_configs`), as shipped to the trials.

    Raises:
        SweepError: with the library's one-line message for the first bad trial.
    """
    for entry in planned:
        try:
            trial_run_config(kind, {**entry, PLANNED_CONFIGS_FIELD: configs}, Path(RUN_FOLDER))
        except (ValueError, FileNotFoundError) as error:
            raise SweepError(str(error)) from None


# --- inside a trial ------------------------------------------------------------------


def trial_run_config(kind: str, trial_config: Mapping[str, Any], out: Path) -> Config:
    """The library config of a trial: its dataset's planned values
    (:data:`PLANNED_CONFIGS_FIELD`) ← the trial's own fields. Reads no preset.

    Raises:
        ValueError: a trial config without planned values (an experiment planned by an
            older version of the sweeps), or an invalid config.
    """
    planned = trial_config.get(PLANNED_CONFIGS_FIELD)
    if not isinstance(planned, Mapping) or trial_config["dataset"] not in planned:
        raise ValueError(
            f"trial config has no {PLANNED_CONFIGS_FIELD} for dataset {trial_config['dataset']!r}: an experiment "
            "planned by an older version of sweeps/; run it under a new --name"
        )
    values = dict(planned[trial_config["dataset"]])
    values.update(dataset=trial_config["dataset"], seed=trial_config["seed"], out=str(out))
    if kind == "search":
        values["variant"] = trial_config["variant"]
    else:
        values["cell"] = trial_config.get("genotype") or trial_config["model"]
        values["variant"] = trial_config.get("variant")
        values.update({name: trial_config[name] for name in (*HPARAM_FIELDS, *NETWORK_FIELDS) if name in trial_config})
    return config_from_values(kind, values)  # type: ignore[arg-type]


def trial_device(requested: str = "auto") -> tuple[str, list[str]]:
    """The device of the current trial and the GPU ids Ray assigned to it.

    ``requested`` other than ``auto`` (``--set device=…``) is used as is. Otherwise
    ``cuda`` if Ray assigned the trial a GPU (``ray.get_gpu_ids()``; Ray restricts
    ``CUDA_VISIBLE_DEVICES`` to it), else ``cpu``. A GPU that CUDA cannot use (Ray's
    logical GPUs on a CPU machine) falls back to ``cpu`` with a warning.
    """
    import torch

    gpu_ids = [str(gpu_id) for gpu_id in ray.get_gpu_ids()]
    if requested != "auto":
        return requested, gpu_ids
    if not gpu_ids:
        return "cpu", gpu_ids
    if not torch.cuda.is_available():
        warnings.warn(
            f"Ray assigned GPU(s) {gpu_ids} to this trial, but CUDA is not available here "
            "(a logical GPU, or a CPU-only torch); running on the CPU",
            RuntimeWarning,
            stacklevel=2,
        )
        return "cpu", gpu_ids
    return "cuda", gpu_ids


def _trial_threads() -> None:
    """As many torch threads as the trial's CPUs (Ray's default OMP setting may differ)."""
    import torch

    try:
        cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    except (AttributeError, RuntimeError):  # outside a Tune session
        return
    torch.set_num_threads(max(1, int(cpus)))


SCHEDULER_SCORE = "scheduler_score"
"""The per-epoch signal Tune's schedulers and searchers rank trials by (see :func:`scheduler_score`)."""


def scheduler_score(metrics: dict[str, Any]) -> float:
    """An epoch's validation accuracy, or −1 for an epoch whose validation outputs were not
    finite (its ``val_accuracy`` is null): a rank for ASHA and Optuna that puts such epochs
    last. Not an accuracy — tables and selection read ``val_accuracy`` from the run folder."""
    accuracy = metrics.get("val_accuracy")
    return float(accuracy) if metrics.get("val_finite", accuracy is not None) and accuracy is not None else -1.0


SELECTED_SCORE = "selected_score"
"""The validation accuracy of the epoch selected so far, or −1 while none is (a rank for
multi-objective searchers, which see a trial's last report only; see :func:`scheduler_score`)."""


def _run_trial(kind: str, trial_config: dict[str, Any]) -> None:
    from dartsrenet.search import run_search
    from dartsrenet.train import run_train

    workdir = Path.cwd()  # the trial's working directory, synced into the trial folder
    logging.getLogger("ray.train").setLevel(logging.WARNING)  # not a line per checkpoint
    config = trial_run_config(kind, trial_config, workdir / RUN_FOLDER)
    device, gpu_ids = trial_device(config.device)
    config = dataclasses.replace(config, device=device)
    _trial_threads()

    def report(metrics: dict[str, Any], checkpoint_dir: Any) -> None:
        tune.report(
            {
                **metrics, SCHEDULER_SCORE: scheduler_score(metrics), "device": device, "gpu_ids": gpu_ids,
                SELECTED_SCORE: -1.0 if metrics.get("best_val_accuracy") is None else float(metrics["best_val_accuracy"]),
            },
            checkpoint=tune.Checkpoint.from_directory(str(checkpoint_dir)),
        )
        after_report(trial_config, metrics["epoch"], workdir)

    run = run_search if kind == "search" else run_train
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        run(config, report, log=print)
    else:
        with checkpoint.as_directory() as directory:
            run(config, report, resume_from=directory, log=print)


def search_trial(config: dict[str, Any]) -> None:
    """Ray Tune trainable: one cell search
    (``{"variant", "seed", "dataset", "preset", "overrides", "planned_configs"}``)."""
    _run_trial("search", config)


def train_trial(config: dict[str, Any]) -> None:
    """Ray Tune trainable: one evaluation training
    (``{"model", "genotype", "variant", "dataset", "seed", "preset", "overrides", "planned_configs"}``)."""
    _run_trial("train", config)

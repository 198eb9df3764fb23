"""What the sweep scripts share: Ray start-up, resources, trainables, experiments.

Contracts (docs/design.md, "Sweeps — experiment layout"):

* An experiment is ``STORAGE/NAME/`` with Ray Tune's trial folders and our
  ``sweep.json`` marker (``kind``, ``created``, ``command``, ``planned``, …). Default
  names are deterministic, so running the same command again *resumes* the experiment
  (``Tuner.restore``): finished trials are not rerun, interrupted or failed ones
  continue from their last checkpoint.
* Trainables are plain functions of the trial config that call the library's
  ``run_search`` / ``run_train`` with a ``report`` callback forwarding every epoch's
  metrics and checkpoint to ``tune.report``, and resume from ``tune.get_checkpoint()``.
  The library's run folder is written to ``<trial working dir>/run`` and synced into
  the trial folder of the experiment (``SyncConfig(sync_artifacts=True)``).
* Inside a trial the device comes from ``ray.get_gpu_ids()``: a trial that was given
  (a share of) a GPU runs on ``cuda`` (Ray sets ``CUDA_VISIBLE_DEVICES``), any other on
  ``cpu`` — never ``torch.cuda.is_available()``, since a zero-GPU trial on a GPU node
  still sees every GPU. When Ray assigned a GPU that CUDA cannot use (a *logical* GPU
  declared with ``ray.init(num_gpus=1)`` on a CPU machine, as the tests do) the trial
  warns and falls back to the CPU. An explicit ``--set device=…`` wins over both.
* Every planned trial's library config is built (and so validated) while the sweep is
  planned (:func:`check_trial_configs`): a bad ``--dataset`` or ``--set`` value is one
  ``error:`` line and exit status 2 before Ray starts, not a failure of every trial.
* Ray's ``result.json`` / ``progress.csv`` keep every report of a trial that failed and
  was retried (:data:`RETRY_SAFE_LOGGERS`); the analysis reads the run folder anyway.
* Around each experiment (modules of their own): one driver at a time
  (:mod:`sweeps.experiment_lock`); a resume only of folders with our valid ``sweep.json``,
  checked before Ray unpickles anything (:mod:`sweeps.trusted_storage`); TensorBoard and
  MLflow loggers (:mod:`sweeps.tracking`); a local Ray on the loopback address only
  (:mod:`sweeps.ray_setup`).
* GPUs are checked before a sweep starts: Ray would leave a trial that asks for a GPU
  on a GPU-less cluster pending forever, so :func:`check_resources` fails at once
  unless ``--autoscale`` says that the autoscaler will add GPU nodes.

Test-only fault injection: a trial config with ``fail_once_at_epoch: k`` (set by the
hidden ``--fail-once-at-epoch`` flag) raises once, right after epoch k's report, so the
tests can check that Ray retries it from that checkpoint (``--max-failures``). With
``hold_once_after_epoch: k`` and ``hold_marker: PATH`` (hidden ``--hold-once-after-epoch
K PATH``) the first trial to finish epoch k's report creates PATH and waits there for
good, so a test can kill its node at a known point instead of guessing from the clock.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import logging
import os
import shlex
import sys
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ray
import ray.cloudpickle
from ray import tune
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from dartsrenet import results
from dartsrenet.config import CONFIG_CLASSES, coerce_value, load_preset, parse_overrides, resolve_config
from dartsrenet.data import IMAGEFOLDER_PREFIX, DatasetFileError, DatasetNotFoundError, check_image_folder
from dartsrenet.results import (
    RUN_FOLDER,
    SWEEP_MARKER,
    is_uri,
    join_location,
    read_text,
    write_json,
)
from dartsrenet.run_options import add_run_options
from dartsrenet.safe_paths import UnsafePathError, checked_name
from sweeps import ray_setup, tracking, trusted_storage
from sweeps.experiment_lock import ExperimentLockError, experiment_lock

# Trainables and helpers of this module are shipped to Ray workers by value: workers
# need only `dartsrenet` installed, not this folder on their path (`ray submit`
# uploads only the script to the head node).
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

DEFAULT_STORAGE = results.DEFAULT_RESULTS_ROOT
FAULT_MARKER = ".fault_injected"

SWEEP_MANAGED_FIELDS: dict[str, tuple[str, ...]] = {
    "search": ("variant", "seed", "dataset", "out"),
    "train": ("cell", "variant", "seed", "dataset", "out"),
}
"""Config fields that a sweep sets per trial (``--set`` may not override them)."""

EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE = 0, 1, 2


class SweepError(RuntimeError):
    """A problem found before any trial ran (bad arguments, resources, experiment)."""


# --- command line --------------------------------------------------------------------


def add_common_arguments(parser: argparse.ArgumentParser, *, default_name: str) -> None:
    """The flags every sweep script takes (presets, overrides, storage, Ray, resources)."""
    add_run_options(
        parser.add_argument_group("run configuration"),
        data_root_default="data",
        data_root_help="where datasets live (made absolute; must exist on every node; default: ./data)",
        set_help="override a config field in every trial, e.g. --set epochs=10 (repeatable)",
    )

    experiment = parser.add_argument_group("experiment")
    experiment.add_argument(
        "--storage", default=DEFAULT_STORAGE, metavar="PATH|URI",
        help="where experiments are stored: a local path (made absolute) or a URI such as "
        "s3://bucket/prefix; on a multi-node cluster it must be shared (default: ./results)",
    )
    experiment.add_argument(
        "--name", metavar="NAME",
        help=f"experiment name; the same name resumes the experiment (default: {default_name})",
    )
    experiment.add_argument(
        "--max-failures", type=int, default=2, metavar="M",
        help="retry a failed trial up to M times from its last checkpoint (default: 2)",
    )
    experiment.add_argument(
        "--verbose", type=int, default=1, choices=(0, 1, 2), help="Ray Tune's console output (default: 1)"
    )
    tracking.add_tracking_arguments(experiment)

    resources = parser.add_argument_group("Ray and resources")
    resources.add_argument(
        "--address", metavar="ADDR",
        help="Ray cluster to connect to (default: RAY_ADDRESS, else a cluster started with `ray start` "
        "on this machine, else a new local Ray; 'local' always starts a new one)",
    )
    resources.add_argument(
        "--num-cpus", type=int, metavar="N",
        help="start a new local Ray with N CPUs (default: detected); implies --address local",
    )
    resources.add_argument(
        "--num-gpus", type=int, metavar="N",
        help="start a new local Ray with N GPUs (default: detected); implies --address local",
    )
    resources.add_argument(
        "--cpus-per-trial", type=float, default=1.0, metavar="K", help="CPUs per trial (default: 1)"
    )
    resources.add_argument(
        "--gpus-per-trial", type=float, metavar="F",
        help="GPUs per trial; fractions share a GPU, e.g. 0.5 (default: 1 if the cluster has GPUs, else 0)",
    )
    resources.add_argument(
        "--autoscale", action="store_true",
        help="the cluster's autoscaler adds nodes on demand: do not refuse resources it does not have yet",
    )
    # Test-only fault injection (see the module docstring).
    parser.add_argument("--fail-once-at-epoch", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--hold-once-after-epoch", nargs=2, metavar=("K", "PATH"), help=argparse.SUPPRESS)


def namespace(parser: argparse.ArgumentParser, **values: Any) -> argparse.Namespace:
    """The arguments a sweep script's ``parser`` would give for ``values`` (by
    destination, e.g. ``num_seeds=2``), every other option at its default: how
    ``sweeps/demo.py`` and ``sweeps/study.py`` call a sweep's ``plan``/``run`` without
    building command lines.

    Raises:
        TypeError: for a name that is not one of the parser's destinations.
    """
    defaults = {
        action.dest: copy.deepcopy(action.default)
        for action in parser._actions  # argparse has no public list of its options
        if action.dest not in (argparse.SUPPRESS, "help")
    }
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise TypeError(f"{parser.prog}: no option with destination {', '.join(unknown)}; valid: {', '.join(sorted(defaults))}")
    return argparse.Namespace(**{**defaults, **values})


def sweep_overrides(kind: str, items: Sequence[str], data_root: str) -> dict[str, Any]:
    """``--set`` items as typed config values, plus the absolute ``data_root``.

    Raises:
        SweepError: for unknown fields, bad values, or fields the sweep sets per trial.
    """
    config_class = CONFIG_CLASSES[kind]
    try:
        raw = parse_overrides(list(items))
        overrides = {name: coerce_value(config_class, name, value) for name, value in raw.items()}
    except ValueError as error:
        raise SweepError(str(error)) from None
    managed = sorted(set(overrides) & set(SWEEP_MANAGED_FIELDS[kind]))
    if managed:
        raise SweepError(
            f"--set {', '.join(managed)}: set by the sweep for each trial "
            "(use the script's own flags, e.g. --variants, --num-seeds, --dataset)"
        )
    overrides.setdefault("data_root", os.path.abspath(os.path.expanduser(data_root)))
    return overrides


def preset_argument(preset: str) -> str:
    """A preset name as is, a preset file as an absolute path (trials run elsewhere).

    Raises:
        SweepError: if it is neither a known preset nor a readable preset file.
    """
    try:
        load_preset(preset)
    except (ValueError, FileNotFoundError, KeyError) as error:
        raise SweepError(f"--preset {preset}: {error}") from None
    path = Path(preset).expanduser()
    return str(path.resolve()) if path.is_file() else preset


def preset_tag(preset: str) -> str:
    """Short name of a preset for experiment names: the name, or a file's stem."""
    return Path(preset).stem if os.sep in preset or preset.endswith(".json") else preset


def overrides_tag(overrides: Mapping[str, Any]) -> str:
    """``""``, or ``_set-<hash>`` of the ``--set`` overrides, so different overrides get
    different default experiment names (``data_root`` is left out)."""
    relevant = {key: value for key, value in overrides.items() if key != "data_root"}
    if not relevant:
        return ""
    digest = hashlib.sha1(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:8]
    return f"_set-{digest}"


def dataset_argument(dataset: str) -> str:
    """A dataset name as every trial must see it: ``imagefolder:PATH`` with ``PATH`` made
    absolute (trials run in Ray's working folders, where a relative path leads nowhere)
    and its layout checked now (:func:`dartsrenet.data.check_image_folder`); other names
    as they are (:func:`check_trial_configs` checks them).

    Raises:
        SweepError: an image folder that is missing or unusable (one line, before Ray starts).
    """
    if not dataset.startswith(IMAGEFOLDER_PREFIX) or not dataset[len(IMAGEFOLDER_PREFIX):].strip():
        return dataset
    path = os.path.abspath(os.path.expanduser(dataset[len(IMAGEFOLDER_PREFIX):]))
    try:
        check_image_folder(path)
    except (DatasetNotFoundError, DatasetFileError) as error:
        raise SweepError(f"dataset {dataset}: {error}") from None
    return IMAGEFOLDER_PREFIX + path


def datasets_argument(datasets: Sequence[str]) -> list[str]:
    """:func:`dataset_argument` of each name, duplicates dropped (after resolving)."""
    return list(dict.fromkeys(dataset_argument(dataset) for dataset in datasets))


def dataset_tag(dataset: str) -> str:
    """Short, readable name of a dataset for experiment and trial folder names: the name
    itself, or an image folder's own folder name (``imagefolder:/data/pets`` → ``pets``),
    never a path."""
    if dataset.startswith(IMAGEFOLDER_PREFIX):
        return Path(dataset[len(IMAGEFOLDER_PREFIX):].rstrip("/")).name or "imagefolder"
    return dataset


def default_dataset(kind: str, preset: str) -> str:
    """The dataset a preset implies (``demo`` → digits; ``paper`` → cifar10).

    Raises:
        SweepError: if the preset's own values are invalid.
    """
    try:
        return resolve_config(kind, preset).dataset
    except ValueError as error:
        raise SweepError(f"--preset {preset}: {error}") from None


def check_trial_configs(kind: str, planned: Iterable[Mapping[str, Any]]) -> None:
    """Build the library config of every planned trial — :func:`resolve_config` checks
    every field — so that a bad value stops the sweep while it is planned, before Ray
    starts, instead of failing every trial ``--max-failures`` + 1 times.

    Args:
        kind: ``"search"`` or ``"train"``.
        planned: trial configs as the sweep plans them (see :func:`trial_run_config`).

    Raises:
        SweepError: with the library's one-line message for the first bad trial.
    """
    for entry in planned:
        try:
            trial_run_config(kind, entry, Path(RUN_FOLDER))
        except (ValueError, FileNotFoundError) as error:
            raise SweepError(str(error)) from None


# --- storage -------------------------------------------------------------------------


def storage_location(storage: str) -> str:
    """A local storage path made absolute (Ray requires it); URIs unchanged."""
    return storage if is_uri(storage) else os.path.abspath(os.path.expanduser(storage))


# --- Ray and resources ---------------------------------------------------------------


LOOPBACK = ray_setup.LOOPBACK


def start_ray(args: argparse.Namespace) -> bool:
    """Connect to a Ray cluster or start a local one; returns True if started here.

    A Ray already initialised in this process (tests, :mod:`sweeps.demo`) is reused.
    """
    if ray.is_initialized():
        return False
    local = args.num_cpus is not None or args.num_gpus is not None
    address = args.address
    if local and address not in (None, "local"):
        raise SweepError("--num-cpus/--num-gpus start a new local Ray; they cannot be combined with --address")
    if local or (address is None and not ray_setup.running_cluster()):
        address = "local"  # a new Ray of this machine (nothing to connect to)
    project_on_worker_path()
    if address == "local":
        # a Ray of this machine only, listening on the loopback address (sweeps/ray_setup.py)
        ray_setup.start_local_ray(args.num_cpus, args.num_gpus)
    else:
        ray.init(address=address, include_dashboard=False, log_to_driver=True)
    return True


def project_on_worker_path() -> None:
    """Put the project root on ``PYTHONPATH``: the workers of a Ray started here inherit
    it and import ``dartsrenet`` from this checkout even where it is not pip-installed
    (elsewhere, e.g. on cluster nodes, the installed package is used)."""
    root = str(Path(__file__).resolve().parents[1])
    paths = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])


def node_capacities() -> list[dict[str, float]]:
    """CPU and GPU count of every alive node of the connected cluster."""
    return [
        {"CPU": float(node["Resources"].get("CPU", 0)), "GPU": float(node["Resources"].get("GPU", 0))}
        for node in ray.nodes()
        if node.get("Alive")
    ]


def default_gpus_per_trial(nodes: Iterable[Mapping[str, float]]) -> float:
    """1 GPU per trial where the cluster has GPUs, else 0 (CPU trials)."""
    return 1.0 if any(node["GPU"] > 0 for node in nodes) else 0.0


def check_resources(cpus: float, gpus: float, nodes: Sequence[Mapping[str, float]], autoscale: bool) -> None:
    """Refuse a trial shape that no node can host — Ray would keep it pending forever.

    Args:
        cpus, gpus: resources of one trial.
        nodes: :func:`node_capacities` of the cluster.
        autoscale: the autoscaler will add nodes, so only the request's form is checked.

    Raises:
        SweepError: with what was asked, what the cluster has, and what to do.
    """
    if cpus <= 0:
        raise SweepError(f"--cpus-per-trial must be positive, got {cpus:g}")
    if gpus < 0:
        raise SweepError(f"--gpus-per-trial must be 0 or more, got {gpus:g}")
    if gpus > 1 and not float(gpus).is_integer():
        raise SweepError(f"--gpus-per-trial above 1 must be a whole number of GPUs, got {gpus:g}")
    if autoscale:
        return
    have = ", ".join(f"{node['CPU']:g} CPUs + {node['GPU']:g} GPUs" for node in nodes) or "no nodes"
    if gpus > 0 and not any(node["GPU"] > 0 for node in nodes):
        raise SweepError(
            f"--gpus-per-trial {gpus:g} asks for a GPU, but the Ray cluster has none ({have}). "
            "Run on CPU with --gpus-per-trial 0, connect to a cluster with GPUs (--address), "
            "or pass --autoscale if the cluster's autoscaler adds GPU nodes on demand."
        )
    if not any(node["CPU"] >= cpus and node["GPU"] >= gpus for node in nodes):
        raise SweepError(
            f"no node of the Ray cluster can host a trial of {cpus:g} CPUs and {gpus:g} GPUs ({have}); "
            "lower --cpus-per-trial/--gpus-per-trial, or pass --autoscale if bigger nodes will be added."
        )


def trial_resources(args: argparse.Namespace, log: Callable[[str], None] = print) -> dict[str, float]:
    """Resources of one trial from the flags and the connected cluster (checked)."""
    nodes = node_capacities()
    gpus = args.gpus_per_trial
    if gpus is None:
        gpus = default_gpus_per_trial(nodes)
        if args.autoscale and gpus == 0:
            log("note: --autoscale without --gpus-per-trial runs CPU trials (an autoscaling cluster "
                "shows no GPUs until it adds GPU nodes); pass --gpus-per-trial to use them")
    check_resources(args.cpus_per_trial, gpus, nodes, args.autoscale)
    total_cpus = sum(node["CPU"] for node in nodes)
    total_gpus = sum(node["GPU"] for node in nodes)
    log(f"Ray cluster: {len(nodes)} node(s), {total_cpus:g} CPUs, {total_gpus:g} GPUs; "
        f"each trial gets {args.cpus_per_trial:g} CPUs and {gpus:g} GPUs")
    return {"cpu": args.cpus_per_trial, "gpu": gpus}


# --- inside a trial ------------------------------------------------------------------


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


def inject_fault(fail_at: int | None, epoch: int, marker_dir: Path) -> None:
    """Test hook: raise once, after epoch ``fail_at``'s report (marker file in the trial dir)."""
    if fail_at is None or epoch != fail_at:
        return
    marker = marker_dir / FAULT_MARKER
    if marker.exists():
        return
    marker.write_text(f"failed once after epoch {epoch}\n")
    raise RuntimeError(f"injected fault after epoch {epoch} (test hook fail_once_at_epoch)")


def hold_once(hold_at: int | None, epoch: int, marker: str | None) -> None:
    """Test hook: after epoch ``hold_at``'s report, create ``marker`` and wait forever (until
    the test kills the process); a trial that finds ``marker`` already there goes on."""
    if hold_at is None or epoch != hold_at or marker is None:
        return
    try:
        Path(marker).open("x").close()
    except FileExistsError:
        return
    while True:
        time.sleep(1.0)


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


def trial_run_config(kind: str, trial_config: Mapping[str, Any], out: Path) -> Any:
    """The library config of a trial: preset ← overrides ← the trial's identity fields."""
    overrides = dict(trial_config.get("overrides") or {})
    overrides.update(dataset=trial_config["dataset"], seed=trial_config["seed"], out=str(out))
    if kind == "search":
        overrides["variant"] = trial_config["variant"]
    else:
        overrides["cell"] = trial_config.get("genotype") or trial_config["model"]
        overrides["variant"] = trial_config.get("variant")
        overrides.update({name: trial_config[name] for name in (*HPARAM_FIELDS, *NETWORK_FIELDS) if name in trial_config})
    return resolve_config(kind, trial_config["preset"], overrides)


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
    fail_at = trial_config.get("fail_once_at_epoch")

    def report(metrics: dict[str, Any], checkpoint_dir: Any) -> None:
        tune.report(
            {
                **metrics, SCHEDULER_SCORE: scheduler_score(metrics), "device": device, "gpu_ids": gpu_ids,
                SELECTED_SCORE: -1.0 if metrics.get("best_val_accuracy") is None else float(metrics["best_val_accuracy"]),
            },
            checkpoint=tune.Checkpoint.from_directory(str(checkpoint_dir)),
        )
        inject_fault(fail_at, metrics["epoch"], workdir)
        hold_once(trial_config.get("hold_once_after_epoch"), metrics["epoch"], trial_config.get("hold_marker"))

    run = run_search if kind == "search" else run_train
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        run(config, report, log=print)
    else:
        with checkpoint.as_directory() as directory:
            run(config, report, resume_from=directory, log=print)


def search_trial(config: dict[str, Any]) -> None:
    """Ray Tune trainable: one cell search (``{"variant", "seed", "dataset", "preset", "overrides"}``)."""
    _run_trial("search", config)


def train_trial(config: dict[str, Any]) -> None:
    """Ray Tune trainable: one evaluation training
    (``{"model", "genotype", "variant", "dataset", "seed", "preset", "overrides"}``)."""
    _run_trial("train", config)


class _DriverCopyFirst:
    """Keep the driver's own copy of a trial's log file when Ray restarts the trial.

    When a trial is retried after a failure, Ray's logger callbacks replace the log file
    they write on the driver with the copy in the experiment's storage, which is synced
    only now and then: the reports made since the last sync — typically the epoch just
    before the failure — would be lost. In the process that ran the trial, the driver's
    copy is the complete one; a new process (a resumed sweep) has none and still
    restores from storage.
    """

    def _restore_from_remote(self, file_name: str, trial: Any) -> None:
        if Path(trial.local_path, file_name).is_file():
            return
        super()._restore_from_remote(file_name, trial)  # type: ignore[misc]


class RetrySafeJsonLogger(_DriverCopyFirst, JsonLoggerCallback):
    """Ray's ``result.json`` logger that keeps every report of a retried trial."""


class RetrySafeCSVLogger(_DriverCopyFirst, CSVLoggerCallback):
    """Ray's ``progress.csv`` logger that keeps every report of a retried trial."""


RETRY_SAFE_LOGGERS: tuple[type, ...] = (RetrySafeJsonLogger, RetrySafeCSVLogger)
"""Passed as ``RunConfig(callbacks=…)``; Ray then adds no logger of these two kinds itself."""


def trial_dirname(trial: Any) -> str:
    """Readable trial folder names: ``vanilla_seed0_<id>``, ``gru_digits_seed0_<id>``."""
    config = trial.config
    parts = [str(config.get("model") or config.get("variant") or "trial")]
    if "model" in config:
        parts.append(dataset_tag(str(config.get("dataset"))))
    if "seed" in config:
        parts.append(f"seed{config['seed']}")
    parts.append(trial.trial_id)
    return "_".join(parts)


# --- experiments ---------------------------------------------------------------------


def planned_key(entry: Mapping[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, default=str)


IDENTITY_CONFIG_FIELDS = ("out", "seed", "variant", "cell", "device", "num_workers")
"""Fields left out of :func:`resolved_configs` (per trial, or irrelevant to results)."""


def resolved_configs(kind: str, preset: str, overrides: Mapping[str, Any], datasets: Sequence[str]) -> dict[str, Any]:
    """The config values every trial shares, per dataset (recorded in ``sweep.json`` so
    that resuming after a preset changed is refused instead of mixing configs)."""
    configs = {}
    for dataset in datasets:
        values = dataclasses.asdict(resolve_config(kind, preset, {**overrides, "dataset": dataset}))
        configs[dataset] = {key: value for key, value in values.items() if key not in IDENTITY_CONFIG_FIELDS}
    return configs


def config_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> str:
    """``"digits: epochs 4 → 6"`` for config values that differ ("" if none or unknown)."""
    if not old or not new:
        return ""
    changes = []
    for dataset in sorted(set(old) & set(new)):
        before, after = old[dataset], new[dataset]
        changes += [
            f"{dataset}: {key} {before.get(key)!r} → {after.get(key)!r}"
            for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)
        ]
    return "; ".join(changes)


def prepare_experiment(
    experiment: str, kind: str, planned: list[dict[str, Any]], command: str, details: Mapping[str, Any]
) -> bool:
    """Write or update ``sweep.json``; returns True if the experiment is resumed.

    Raises:
        SweepError: if the folder holds an experiment planned differently (another
            command under the same name), which restoring would silently ignore.
    """
    marker_location = join_location(experiment, SWEEP_MARKER)
    try:
        existing = trusted_storage.existing_marker(experiment)  # before Ray reads the folder
    except trusted_storage.UntrustedExperimentError as error:
        raise SweepError(str(error)) from None
    now = time.time()
    if existing is not None:
        old = sorted(planned_key(entry) for entry in existing.get("planned", []))
        new = sorted(planned_key(entry) for entry in planned)
        if results.canonical_kind(existing.get("kind")) != kind or old != new:
            raise SweepError(
                f"{experiment} holds a {existing.get('kind')} experiment planned differently "
                f"(by: {existing.get('command')}). Pass --name for a new experiment, "
                "or delete that folder to start over."
            )
        changed = config_changes(existing.get("configs"), details.get("configs"))
        if changed:
            raise SweepError(
                f"{experiment} was run with other config values ({changed}; the preset changed "
                "since?). Its finished trials would be reused as they are: pass --name for a new "
                "experiment, or delete that folder to start over."
            )
    resumable = tune.Tuner.can_restore(experiment)
    marker = dict(existing or {})
    marker.update(
        kind=kind,
        created=marker.get("created", now),
        command=marker.get("command", command),
        planned=planned,
        **details,
        ray_version=ray.__version__,
    )
    marker.setdefault("runs", []).append({"started": now, "command": command, "resumed": resumable})
    try:
        write_json(marker_location, marker)
    except OSError as error:
        raise SweepError(f"cannot write {marker_location}: {error.strerror or error}") from None
    return resumable


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """A sweep as planned from its arguments before Ray starts: every trial config resolved
    once to check it (each trial resolves it again from its trial config: :func:`trial_run_config`).

    Attributes:
        kind: the experiment kind (``search``, ``train``, ``random``, ``tune``; :data:`dartsrenet.results.KINDS`).
        planned: the trial configs (recorded in ``sweep.json``).
        param_space: Ray Tune's parameter space.
        name: the experiment name.
        storage: where experiments are stored (absolute path or URI).
        details: what ``sweep.json`` records besides (dataset, preset, overrides, configs, …).
        epochs: epochs of each trial, where a scheduler needs them (ASHA's ``max_t``).
    """

    kind: str
    planned: list[dict[str, Any]]
    param_space: dict[str, Any]
    name: str
    storage: str
    details: dict[str, Any]
    epochs: int | None = None

    def __post_init__(self) -> None:
        try:  # one folder of the storage, where the analysis finds it
            checked_name(self.name, "experiment name")
        except UnsafePathError as error:
            raise SweepError(f"{error} (--name names one folder inside --storage)") from None

    @property
    def experiment(self) -> str:
        """The experiment's location, ``STORAGE/NAME``."""
        return join_location(self.storage, self.name)


def run_plan(
    sweep: SweepPlan,
    args: argparse.Namespace,
    command: str,
    trainable: Callable[[dict[str, Any]], None],
    tune_config: tune.TuneConfig | None = None,
) -> tuple[tune.ResultGrid, frozenset[str], int]:
    """Run (or resume) a planned sweep and print what became of its trials.

    Returns:
        The results, the trial folders the scheduler stopped early, and the exit status
        of :func:`summarize`.
    """
    resources = trial_resources(args)
    results_grid = run_experiment(
        trainable=trainable,
        param_space=sweep.param_space,
        planned=sweep.planned,
        kind=sweep.kind,
        storage=sweep.storage,
        name=sweep.name,
        resources=resources,
        max_failures=args.max_failures,
        command=command,
        details={**sweep.details, "resources": resources},
        tune_config=tune_config,
        verbose=args.verbose,
        mlflow=getattr(args, "mlflow", None),
    )
    stopped = stopped_early_trials(sweep.experiment)
    return results_grid, stopped, summarize(results_grid, sweep.name, stopped)


def run_experiment(
    *,
    trainable: Callable[[dict[str, Any]], None],
    param_space: dict[str, Any],
    planned: list[dict[str, Any]],
    kind: str,
    storage: str,
    name: str,
    resources: Mapping[str, float],
    max_failures: int,
    command: str,
    details: Mapping[str, Any] | None = None,
    tune_config: tune.TuneConfig | None = None,
    verbose: int = 1,
    log: Callable[[str], None] = print,
    mlflow: str | None = None,
) -> tune.ResultGrid:
    """Run a new experiment, or resume the one under ``storage/name``; returns the results.
    ``mlflow``: ``--mlflow``'s value (sweeps/tracking.py)."""
    experiment = join_location(storage, name)
    # Short epochs (demos, tests) make Tune warn about frequent state snapshots: expected here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    try:
        with experiment_lock(experiment, command, log):  # one driver per experiment
            return _run_experiment_locked(
                trainable=trainable, param_space=param_space, planned=planned, kind=kind, storage=storage,
                name=name, resources=resources, max_failures=max_failures, command=command, details=details,
                tune_config=tune_config, verbose=verbose, log=log, mlflow=mlflow,
            )
    except ExperimentLockError as error:
        raise SweepError(str(error)) from None


def _run_experiment_locked(
    *,
    trainable: Callable[[dict[str, Any]], None],
    param_space: dict[str, Any],
    planned: list[dict[str, Any]],
    kind: str,
    storage: str,
    name: str,
    resources: Mapping[str, float],
    max_failures: int,
    command: str,
    details: Mapping[str, Any] | None,
    tune_config: tune.TuneConfig | None,
    verbose: int,
    log: Callable[[str], None],
    mlflow: str | None,
) -> tune.ResultGrid:
    experiment = join_location(storage, name)
    resumed = prepare_experiment(experiment, kind, planned, command, details or {})
    trainable = tune.with_resources(trainable, dict(resources))
    try:
        callbacks = tracking.sweep_callbacks([logger() for logger in RETRY_SAFE_LOGGERS], experiment, name,
                                             {"sweep_kind": kind, "sweep_command": command}, mlflow, log)
    except ValueError as error:
        raise SweepError(str(error)) from None
    if resumed:
        log(f"resuming experiment {experiment} (finished trials are kept)")
        tuner = tune.Tuner.restore(experiment, trainable, resume_errored=True)
        tracking.replace_callbacks(tuner, callbacks)
    else:
        log(f"starting experiment {experiment}: {len(planned)} trial(s) planned")
        base = tune_config or tune.TuneConfig()
        base.trial_dirname_creator = trial_dirname
        base.trial_name_creator = trial_dirname
        tuner = tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=base,
            run_config=tune.RunConfig(
                name=name,
                storage_path=storage,
                failure_config=tune.FailureConfig(max_failures=max_failures),
                checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                sync_config=tune.SyncConfig(sync_artifacts=True),
                callbacks=callbacks,
                verbose=verbose,
            ),
        )
    with tracking.own_loggers_only():
        results_grid = tuner.fit()
    # The scheduler that ran: ours, or the one Tuner.restore unpickled from the experiment.
    used = getattr(getattr(tuner, "_local_tuner", None), "_tune_config", None)
    stopped = getattr(getattr(used, "scheduler", None), "stopped_trials", None)
    if stopped:
        record_stopped_early(experiment, stopped)
    return results_grid


def record_stopped_early(experiment: str, trial_names: Iterable[str]) -> None:
    """Add trial folder names to ``sweep.json``'s list of trials the scheduler stopped."""
    location = join_location(experiment, SWEEP_MARKER)
    marker = json.loads(read_text(location) or "{}")
    known = set(marker.get(results.STOPPED_EARLY_FIELD) or [])
    marker[results.STOPPED_EARLY_FIELD] = sorted(known | set(trial_names))
    write_json(location, marker)


def stopped_early_trials(experiment: str) -> frozenset[str]:
    """The trial folder names that the scheduler stopped, from ``sweep.json``."""
    return results.read_experiment(experiment).stopped_early


# --- results -------------------------------------------------------------------------

class StopRecordingASHAScheduler(ASHAScheduler):
    """ASHA that remembers the trials it stopped before their last epoch (by trial folder
    name): Ray marks those ``TERMINATED`` like interrupted ones, but only an interrupted
    trial is resumed by running the sweep again. :func:`run_experiment` records them in
    ``sweep.json`` (:data:`dartsrenet.results.STOPPED_EARLY_FIELD`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stopped_trials: set[str] = set()

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP and not result.get("finished"):
            self.stopped_trials.add(os.path.basename(str(trial.path).rstrip("/")))
        return decision


def result_status(result: Any, stopped_early: Iterable[str] = ()) -> str:
    """A Ray result in the results contract's words (:func:`dartsrenet.results.trial_status`):
    ``finished`` (final report seen), ``failed``, ``stopped early`` (its trial folder is
    in ``stopped_early``: the scheduler stopped it), ``unfinished`` (reported, then
    interrupted) or ``missing`` (never reported)."""
    metrics = result.metrics or {}
    return results.trial_status(
        finished=metrics.get("finished") is True,
        failed=result.error is not None,
        reported=bool(metrics),
        stopped_early=Path(str(result.path)).name in set(stopped_early),
    )


def error_line(result: Any) -> str | None:
    if result.error is None:
        return None
    lines = [line for line in str(result.error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(result.error).__name__


def summarize(
    results_grid: tune.ResultGrid, name: str, stopped_early: Iterable[str] = (), log: Callable[[str], None] = print
) -> int:
    """Print what became of the trials; returns the exit status (1 if running the same
    command again would continue some trial: unfinished, failed or never started).

    Args:
        stopped_early: trial folder names the scheduler stopped (:func:`stopped_early_trials`).
    """
    statuses = [result_status(result, stopped_early) for result in results_grid]
    log(f"{name}: {results.status_counts_text(statuses)}")
    for result, status in zip(results_grid, statuses, strict=True):
        if status == results.FAILED:
            log(f"  failed: {Path(result.path).name}: {error_line(result)}")
    if not results.resumable(statuses):
        return EXIT_OK
    log("not every trial finished: run the same command again to resume the experiment")
    return EXIT_INCOMPLETE


def command_line(script: str, argv: Sequence[str]) -> str:
    return shlex.join(["python", script, *argv])


def with_ray(args: argparse.Namespace, body: Callable[[], int]) -> int:
    """Start or connect to Ray, run ``body``, shut down a Ray started here.

    :class:`SweepError` (e.g. a GPU asked of a cluster without one) becomes exit status 2
    with an ``error:`` line on stderr.
    """
    started = False
    try:
        started = start_ray(args)
        return body()
    except SweepError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if started:
            ray.shutdown()


def run_script(
    script: str,
    argv: Sequence[str] | None,
    parse_args: Callable[[Sequence[str]], argparse.Namespace],
    plan: Callable[[argparse.Namespace], SweepPlan],
    run: Callable[[argparse.Namespace, str, SweepPlan], int],
) -> int:
    """A sweep script's command-line entry: parse ``argv`` (default: ``sys.argv``), plan
    (a bad argument is one ``error:`` line and exit status 2, before Ray starts), then
    run in Ray with the command line recorded. Returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        sweep = plan(args)
    except SweepError as error:
        return usage_error(error)
    try:
        tracking.mlflow_store(getattr(args, "mlflow", None), sweep.experiment)  # checked before Ray starts
    except ValueError as error:
        return usage_error(error)
    return with_ray(args, lambda: run(args, command_line(script, argv), sweep))


def usage_error(error: Exception) -> int:
    """Report an argument error found before Ray starts; returns exit status 2."""
    print(f"error: {error}", file=sys.stderr)
    return EXIT_USAGE

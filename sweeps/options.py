"""The command line every sweep script shares, and the tags of experiment names.

* :func:`add_sweep_arguments`: presets, ``--set`` overrides, storage, experiment name,
  retries, tracking, Ray address and per-trial resources, and the hidden flags of the
  failure drill (:mod:`sweeps.failure_drill`).
* Arguments made fit for trials that run elsewhere: a preset file and an image folder
  made absolute (:func:`preset_argument`, :func:`dataset_argument`), ``--set`` values
  typed and checked (:func:`sweep_overrides`), storage made absolute
  (:func:`storage_location`). A bad value is a :class:`~sweeps.errors.SweepError`
  before Ray starts.
* Default experiment names are deterministic (``search_<dataset>_<preset>`` and the
  like, from :func:`dataset_tag`, :func:`preset_tag`, :func:`overrides_tag`), so running
  the same command again resumes the experiment (docs/design.md, "Sweeps — experiment
  layout").
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import os
import shlex
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dartsrenet import results
from dartsrenet.config import CONFIG_CLASSES, coerce_value, load_preset, parse_overrides, resolve_config
from dartsrenet.data import IMAGEFOLDER_PREFIX, DatasetFileError, DatasetNotFoundError, check_image_folder
from dartsrenet.results import is_uri
from dartsrenet.run_options import add_run_options
from sweeps import failure_drill, tracking
from sweeps.errors import SweepError

DEFAULT_STORAGE = results.DEFAULT_RESULTS_ROOT

SWEEP_MANAGED_FIELDS: dict[str, tuple[str, ...]] = {
    "search": ("variant", "seed", "dataset", "out"),
    "train": ("cell", "variant", "seed", "dataset", "out"),
}
"""Config fields that a sweep sets per trial (``--set`` may not override them)."""


def add_sweep_arguments(parser: argparse.ArgumentParser, *, default_name: str) -> None:
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
    failure_drill.add_drill_arguments(parser)


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
    as they are (:func:`sweeps.trainable.check_trial_configs` checks them).

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


def storage_location(storage: str) -> str:
    """A local storage path made absolute (Ray requires it); URIs unchanged."""
    return storage if is_uri(storage) else os.path.abspath(os.path.expanduser(storage))


def command_line(script: str, argv: Sequence[str]) -> str:
    """The command line recorded in ``sweep.json``: ``python SCRIPT ARGS…``."""
    return shlex.join(["python", script, *argv])

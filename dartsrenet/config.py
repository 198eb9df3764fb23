"""Run configurations and presets (docs/architecture.md §3 search, docs/architecture.md §6 evaluation).

One dataclass per phase — :class:`SearchConfig` and :class:`TrainConfig` — whose
defaults are the paper setup (docs/architecture.md; the original code where the paper is
silent). A *preset* is data: a mapping of field overrides per phase, optionally per
dataset. :func:`resolve_config` layers defaults ← preset ← preset's dataset
section ← explicit overrides, and every field can be overridden from the command
line as ``--set field=value``. Every config that :func:`resolve_config` builds is
checked by :func:`validate_config`: each field against its valid range, and no
field given that the chosen model or dataset would ignore.

Presets: ``paper`` (the setup of docs/architecture.md), ``demo`` (small widths, few epochs: a
search or an evaluation on ``digits`` in well under a minute on 2 CPU cores), ``design``
(short digits trainings for ``sweeps/design_network.py``, docs/network-design.md) and ``study``
(Fashion-MNIST subsets for ``sweeps/study.py``: a few minutes a trial on one core). A
JSON file with the same shape (``{"search": {...}, "train": {...}, "datasets":
{"svhn": {"train": {...}}}}``) is accepted wherever a preset name is, e.g. the best
configuration written by ``sweeps/tune_hparams.py``.

Why one module of ~590 lines: the fields, their presets and the check of every field's
range and relevance (:func:`validate_config`) change together whenever a field is added,
and read best side by side; dataset names live apart in :mod:`dartsrenet.dataset_names`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dartsrenet.cells.backends import BACKENDS
from dartsrenet.dataset_names import DATASET_NAMES, IMAGE_SIZE, is_dataset_name
from dartsrenet.network_spec import NetworkSpec
from dartsrenet.registry import UnknownNameError, lookup
from dartsrenet.variants import VARIANTS

SEARCH_STRATEGIES = ("darts", "sdarts_rs", "gdas", "rsws", "darts_pt")
"""The search strategies of :mod:`dartsrenet.strategies` (docs/search-strategies.md)."""


@dataclass
class SharedConfig:
    """The fields both phases have, with one meaning and one default (docs/architecture.md
    §3.7 and §6.2 data, §3.5 and §6.1 optimisation). :class:`SearchConfig` and
    :class:`TrainConfig` add their own fields, and those whose defaults differ."""

    dataset: str = "cifar10"  # a dartsrenet.data name, e.g. digits, imagefolder:PATH
    data_root: str = "data"  # where datasets live (and are downloaded to)
    download: bool = False  # let torchvision download missing datasets
    seed: int = 0  # controls init, split, data order and augmentation
    batch_size: int = 64
    lr: float = 0.1  # weight learning rate (SGD; use ~1e-3 with the search's adam)
    momentum: float = 0.7  # SGD only
    weight_decay: float = 3e-4
    grad_clip: float = 1.0  # gradient-norm clip of the weights; 0 = off
    augment: bool = True  # crop + pad 4, flip (not SVHN/digits)
    svhn_extra: bool = False  # SVHN: train + extra, as the original
    limit: int | None = None  # use only this many training examples (tests, demos)
    num_workers: int = 0
    device: str = "auto"  # auto (cuda → mps → cpu) | cpu | cuda | cuda:1 | mps
    backend: Literal[BACKENDS] = "auto"  # the DARTS cells' compute: auto | eager | native (CPU) | triton (CUDA)
    capture: bool | Literal["strict"] = True  # CUDA: replay each train step from a CUDA graph; strict: a failed capture is an error
    matmul_precision: Literal["tf32", "highest"] = "tf32"  # CUDA float32 matmuls on TF32 tensor cores, or full fp32
    autocast: Literal["none", "bf16"] = "none"  # bf16 matmuls (BatchNorm statistics and kernels stay fp32)


@dataclass
class SearchConfig(SharedConfig):
    """A DARTS cell search run (docs/architecture.md §3). Defaults: the original code's setup."""

    variant: str = "vanilla"  # vanilla | sigmoid_weighting | directional_weight_sharing
    out: str = "runs/search"  # the run folder (resumed if it holds a checkpoint)
    channels: int = 128  # N of the search network (h = N/2 per direction)
    epochs: int = 50
    patience: int | None = 10  # early stopping on val_cs accuracy (paper); None = off
    weight_optimizer: Literal["sgd", "adam"] = "sgd"  # sgd: the code (default); adam: the paper
    lr_min: float = 0.001  # end of the cosine schedule
    arch_lr: float = 3e-3  # α: Adam(lr, betas, weight decay)
    arch_beta1: float = 0.5
    arch_beta2: float = 0.999
    arch_weight_decay: float = 1e-3
    arch_order: int = 1  # α gradient: 1 first-order DARTS (the paper) | 2 second-order, unrolled (DARTS eq. 7–8)
    cutout: int = 0  # Cutout size; DARTS searches without Cutout
    # search strategy (dartsrenet/strategies, docs/search-strategies.md) and its fields
    strategy: Literal[SEARCH_STRATEGIES] = "darts"  # darts | sdarts_rs | gdas | rsws | darts_pt
    sdarts_epsilon_start: float = 0.03  # sdarts_rs: noise U(−ε, ε) on softmax(α), ε ramped linearly from start …
    sdarts_epsilon_end: float = 0.3  # … to end over the search (SDARTS's code)
    gdas_tau_max: float = 10.0  # gdas: Gumbel-softmax temperature, linearly from max (first epoch) …
    gdas_tau_min: float = 0.1  # … to min (last epoch), as GDAS
    rsws_candidates: int = 100  # rsws: N sampled genotypes ranked by the trained supernet
    pt_finetune_steps: int = 0  # darts_pt: weight steps between node decisions (0: none)
    selection_batches: int | None = None  # rsws/darts_pt: val_cs batches an architecture is scored on (None: all)


@dataclass
class TrainConfig(SharedConfig):
    """An evaluation run: train a derived cell or baseline from scratch (docs/architecture.md §6)."""

    cell: str = "vanilla"  # gru | lstm | paper genotype name | genotype JSON file | genotype string
    variant: str | None = None  # None: implied by a paper genotype name, else vanilla
    out: str = "runs/train"  # the run folder (resumed if it holds a checkpoint)
    channels: int = 256  # N of the evaluation network
    network: str | None = None  # ReNet layers "PATCHxWIDTH[/ORDERING],…" (docs/network-design.md); None: the paper's, N = channels
    measure_latency: bool = False  # time inference per image (eval mode, batch of batch_size) at start: latency_ms
    epochs: int = 300
    patience: int | None = 50  # early stopping on validation accuracy; None = off
    lr_min: float = 0.0  # end of the cosine schedule
    val_fraction: float = 0.1  # validation split carved from the training set
    cutout: int = 12  # Cutout after normalisation; 0 = off
    head_init_range: float | None = None  # None: the dataset's (0.5; SVHN 0.05)


Config = SearchConfig | TrainConfig
CONFIG_CLASSES: dict[str, type] = {"search": SearchConfig, "train": TrainConfig}

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "search": {},
        "train": {},
        "datasets": {
            # docs/architecture.md §6 (code): SVHN = train + extra, 100 epochs, weight decay 3e-5.
            "svhn": {"train": {"epochs": 100, "weight_decay": 3e-5, "svhn_extra": True}},
        },
    },
    "demo": {
        # Small enough for 2 CPU cores, large enough to learn for real on digits.
        # α: 30× the paper's learning rate and no weight decay, so that the ~90 α steps of
        # the demo's search visibly choose a cell (docs/architecture.md §8.3).
        "search": {
            "dataset": "digits", "channels": 16, "epochs": 4, "patience": None, "batch_size": 32,
            "arch_lr": 0.1, "arch_weight_decay": 0.0,
        },
        "train": {
            "dataset": "digits", "channels": 32, "epochs": 8, "patience": None, "batch_size": 32, "lr": 0.05, "cutout": 0,
        },
    },
    "design": {
        # sweeps/design_network.py on digits (docs/network-design.md): 15 s to 2 min a trial on one core.
        "train": {
            "dataset": "digits", "epochs": 3, "patience": None, "batch_size": 32, "lr": 0.05, "cutout": 0,
            "limit": 600,
        },
    },
    "study": {
        # Fashion-MNIST on 2 CPU cores in about an hour (sweeps/study.py, docs/study-fashion-mnist.md):
        # training subsets and narrow networks; α: ~7× the paper's learning rate and no weight
        # decay, as the search takes ~25× fewer α steps than the paper's (docs/architecture.md §8.3).
        "search": {
            "dataset": "fashion_mnist", "channels": 16, "epochs": 6, "patience": None, "batch_size": 32,
            "limit": 4000, "arch_lr": 0.02, "arch_weight_decay": 0.0,
        },
        "train": {
            "dataset": "fashion_mnist", "channels": 32, "epochs": 5, "patience": None, "batch_size": 32, "lr": 0.05,
            "cutout": 0, "limit": 5000,
        },
    },
}
"""Presets as data: per phase (``search``/``train``) field overrides, then per dataset."""


def load_preset(preset: str | os.PathLike[str]) -> dict[str, Any]:
    """A preset by name, or from a JSON file of the same shape.

    Raises:
        FileNotFoundError: a preset file that cannot be read.
        ValueError: a preset file that is not UTF-8 JSON of the preset's shape (one line
            naming the file and the part that is wrong, :func:`preset_shape_problem`).
        UnknownNameError: an unknown preset name (the message lists the known ones).
    """
    name = os.fspath(preset)
    if name in PRESETS:
        return PRESETS[name]
    if name.endswith(".json") or Path(name).is_file():
        path = Path(name)
        if path.exists() and not path.is_file():  # a FIFO would block the read forever
            raise ValueError(f"{path}: not a regular file, so not a preset file")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise FileNotFoundError(f"{path}: cannot read preset file ({error.strerror})") from None
        except UnicodeDecodeError as error:
            raise ValueError(f"{path}: a preset file is UTF-8 JSON text; byte {error.start} is not UTF-8") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: malformed preset JSON (preset files are JSON): {error}") from None
        problem = preset_shape_problem(data)
        if problem is not None:
            raise ValueError(f"{path}: {problem}")
        return data
    return lookup(PRESETS, name, "preset")


def preset_shape_problem(data: Any) -> str | None:
    """What makes ``data`` not a preset (``{"search": {field: value}, "train": {…},
    "datasets": {dataset: {"search": {…}, "train": {…}}}, "comment": …}``, field names
    those of :data:`CONFIG_CLASSES`), or ``None`` for a preset. Values are checked when a
    config is resolved (:func:`resolve_config`)."""
    if not isinstance(data, dict) or not set(data) <= {"search", "train", "datasets", "comment"}:
        return "a preset file is a JSON object with keys search, train, datasets (and comment)"
    sections = [(kind, data[kind], kind) for kind in ("search", "train") if kind in data]
    datasets = data.get("datasets", {})
    if not isinstance(datasets, dict):
        return f"'datasets' must be an object of dataset names, got {type(datasets).__name__}"
    for dataset, per_dataset in datasets.items():
        if not isinstance(per_dataset, dict) or not set(per_dataset) <= {"search", "train"}:
            return f"'datasets.{dataset}' must be an object with keys search, train"
        sections += [(f"datasets.{dataset}.{kind}", per_dataset[kind], kind) for kind in per_dataset]
    for where, section, kind in sections:
        if not isinstance(section, dict):
            return f"'{where}' must be an object of config fields, got {type(section).__name__}"
        unknown = sorted(set(section) - set(config_fields(CONFIG_CLASSES[kind])))
        if unknown:
            fields = ", ".join(sorted(config_fields(CONFIG_CLASSES[kind])))
            return f"'{where}': unknown {CONFIG_CLASSES[kind].__name__} field(s) {', '.join(unknown)}; valid fields: {fields}"
    return None


def config_fields(config_class: type) -> dict[str, dataclasses.Field]:
    """The fields of a config dataclass by name."""
    return {f.name: f for f in dataclasses.fields(config_class)}


def coerce_value(config_class: type, name: str, value: Any) -> Any:
    """Convert ``value`` (often a command-line string) to the type of field ``name``."""
    fields = config_fields(config_class)
    if name not in fields:
        raise UnknownNameError(
            f"unknown {config_class.__name__} field {name!r}; valid fields: {', '.join(sorted(fields))}"
        )
    hint = typing.get_type_hints(config_class)[name]
    return _coerce(hint, value, name)


def _coerce(hint: Any, value: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if type(None) in options and (value is None or (isinstance(value, str) and value.lower() in ("none", "null", ""))):
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, name)
            except ValueError as error:
                errors.append(str(error))
        raise ValueError("; ".join(errors))
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(map(str, allowed))}, got {value!r}")
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"{name} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if hint is float:
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a number, got {value!r}") from None
    if hint is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r}")
        return value
    return value


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """``["lr=0.05", "epochs=3"]`` → ``{"lr": "0.05", "epochs": "3"}``."""
    overrides = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"an override is field=value, got {item!r}")
        overrides[key.strip()] = value.strip()
    return overrides


def resolve_config(
    kind: Literal["search", "train"],
    preset: str | os.PathLike[str] = "paper",
    overrides: dict[str, Any] | None = None,
) -> Config:
    """Build a config: defaults ← preset[kind] ← preset's dataset section ← overrides.

    Args:
        kind: ``"search"`` or ``"train"``.
        preset: a :data:`PRESETS` name or a preset JSON file.
        overrides: field values (strings are converted to the field's type).

    Raises:
        UnknownNameError: an unknown preset or field name (the message lists the valid ones).
        ConfigError: a value outside its valid range, or a field the chosen model ignores
            (see :func:`validate_config`).
    """
    return config_from_values(kind, preset_values(kind, preset, overrides))


def preset_values(
    kind: Literal["search", "train"],
    preset: str | os.PathLike[str] = "paper",
    overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The field values a config gets besides its defaults: preset[kind] ← the preset's
    section of the dataset (``overrides``' dataset, else the preset's, else the default)
    ← ``overrides``. Plain data: :func:`config_from_values` builds the config from it
    without reading the preset again (the sweeps plan these values once and ship them
    to their trials, docs/design.md "Sweeps").

    Raises:
        UnknownNameError: an unknown preset or run kind.
        FileNotFoundError, ValueError: an unreadable or malformed preset file.
    """
    config_class = lookup(CONFIG_CLASSES, kind, "run kind")
    preset_data = load_preset(preset)
    overrides = dict(overrides or {})
    values: dict[str, Any] = {}
    values.update(preset_data.get(kind, {}))
    dataset = overrides.get("dataset", values.get("dataset", config_class.dataset))
    values.update(preset_data.get("datasets", {}).get(dataset, {}).get(kind, {}))
    values.update(overrides)
    return values


def config_from_values(kind: Literal["search", "train"], values: dict[str, Any]) -> Config:
    """The config with ``values`` (:func:`preset_values`) over the defaults, checked by
    :func:`validate_config` with ``values`` as the fields given.

    Raises:
        UnknownNameError: an unknown run kind or field name.
        ConfigError: see :func:`validate_config`.
    """
    config_class = lookup(CONFIG_CLASSES, kind, "run kind")
    coerced = {name: coerce_value(config_class, name, value) for name, value in values.items()}
    config = config_class(**coerced)
    validate_config(config, given=values)
    return config


def config_to_dict(config: Config) -> dict[str, Any]:
    """A JSON-ready dict of every field."""
    return dataclasses.asdict(config)


def config_from_dict(kind: Literal["search", "train"], data: dict[str, Any]) -> Config:
    """Rebuild a config from :func:`config_to_dict` output (unknown keys are an error)."""
    config_class = lookup(CONFIG_CLASSES, kind, "run kind")
    config = config_class(**{name: coerce_value(config_class, name, value) for name, value in data.items()})
    validate_config(config)
    return config


# --------------------------------------------------------------------------- validation


class ConfigError(ValueError):
    """A config that cannot run as asked. The message is one line naming the field(s) and the valid range."""


_DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
MAX_SEED = 2**63 - 1


def validate_config(config: Config, given: Iterable[str] = ()) -> None:
    """Check every field of a config against its valid range before any work starts.

    Ranges: ``epochs >= 1``; ``patience`` None or ``>= 1``; ``channels`` even and
    ``>= 2`` (each ReNet direction has channels/2 units); ``batch_size >= 1`` (``>= 2``
    for evaluation networks, whose BatchNorm1d before the head needs two examples);
    ``lr`` > 0; ``0 <= lr_min <= lr``; momentum and Adam betas in [0, 1); weight decays,
    ``grad_clip`` and ``cutout`` >= 0 (``cutout`` at most the 32-pixel image side);
    ``limit`` None or large enough that every training split keeps two examples;
    ``val_fraction`` in (0, 1); ``head_init_range`` None or > 0; ``num_workers >= 0``; ``arch_order`` 1 or 2;
    ``seed`` in [0, 2**63); every float finite; dataset, variant and device names known.

    A field the run would ignore is an error too, so that nothing given is silently
    dropped: ``variant`` (and, when given, ``backend``) with a GRU/LSTM baseline cell, ``svhn_extra`` for a dataset
    other than SVHN, and — when named in ``given`` — ``momentum`` with the Adam weight
    optimiser or a non-zero ``cutout`` with ``augment`` off.

    Args:
        config: a :class:`SearchConfig` or :class:`TrainConfig`.
        given: names of the fields set explicitly (by a preset or an override), as
            opposed to left at their defaults; only these are checked for being ignored.

    Raises:
        ConfigError: one line naming every offending field and its valid range.
    """
    problems = _type_problems(config)
    if not problems:
        problems = _range_problems(config) + _ignored_field_problems(config, set(given))
    if problems:
        kind = "search" if isinstance(config, SearchConfig) else "train"
        raise ConfigError(f"invalid {kind} config: " + "; ".join(problems))


def _describe_type(hint: Any) -> str:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe_type(option) for option in typing.get_args(hint))
    if typing.get_origin(hint) is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(hint)))
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "None"}.get(
        hint, str(hint)
    )


def _has_type(hint: Any, value: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(option, value) for option in typing.get_args(hint))
    if origin is Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_problems(config: Config) -> list[str]:
    hints = typing.get_type_hints(type(config))
    problems = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if not _has_type(hints[field.name], value):
            problems.append(f"{field.name} must be {_describe_type(hints[field.name])}, got {value!r}")
        elif isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{field.name} must be a finite number, got {value}")
    return problems


def _smallest_train_limit(val_fraction: float) -> int:
    """The smallest ``limit`` whose validation split (as in ``data.validation_split``) leaves 2 training examples."""
    limit = 3
    while limit - max(1, round(limit * val_fraction)) < 2:
        limit += 1
    return limit


def _range_problems(config: Config) -> list[str]:
    is_search = isinstance(config, SearchConfig)
    min_batch = 1 if is_search else 2
    lr = config.lr
    checks: list[tuple[str, Callable[[Any], bool], str]] = [
        ("seed", lambda v: 0 <= v <= MAX_SEED, "an integer in [0, 2**63)"),
        ("channels", lambda v: v >= 2 and v % 2 == 0, "an even integer >= 2 (channels/2 units per direction)"),
        ("epochs", lambda v: v >= 1, "an integer >= 1"),
        ("patience", lambda v: v is None or v >= 1, "None (no early stopping) or an integer >= 1"),
        ("batch_size", lambda v: v >= min_batch, f"an integer >= {min_batch}"),
        ("lr", lambda v: v > 0, "a number > 0"),
        ("lr_min", lambda v: 0 <= v <= lr, f"a number in [0, lr] = [0, {lr}]"),
        ("momentum", lambda v: 0 <= v < 1, "a number in [0, 1)"),
        ("weight_decay", lambda v: v >= 0, "a number >= 0"),
        ("grad_clip", lambda v: v >= 0, "0 (off) or a number > 0"),
        ("cutout", lambda v: 0 <= v <= IMAGE_SIZE, f"0 (off) or an integer up to the image side {IMAGE_SIZE}"),
        ("num_workers", lambda v: v >= 0, "an integer >= 0"),
        ("device", lambda v: _DEVICE_PATTERN.fullmatch(v) is not None, "auto, cpu, cuda, cuda:N or mps"),
    ]
    if is_search:
        checks += [
            ("limit", lambda v: v is None or v >= 4, "None (all examples) or an integer >= 4 (two halves of >= 2)"),
            ("arch_lr", lambda v: v > 0, "a number > 0"),
            ("arch_beta1", lambda v: 0 <= v < 1, "a number in [0, 1)"),
            ("arch_beta2", lambda v: 0 <= v < 1, "a number in [0, 1)"),
            ("arch_weight_decay", lambda v: v >= 0, "a number >= 0"),
            ("arch_order", lambda v: v in (1, 2), "1 (first-order DARTS) or 2 (second-order, unrolled)"),
            ("sdarts_epsilon_start", lambda v: 0 <= v <= 1, "a number in [0, 1] (noise on probabilities)"),
            ("sdarts_epsilon_end", lambda v: 0 <= v <= 1, "a number in [0, 1] (noise on probabilities)"),
            ("gdas_tau_max", lambda v: v > 0, "a number > 0"),
            ("gdas_tau_min", lambda v: 0 < v <= config.gdas_tau_max, f"a number in (0, gdas_tau_max={config.gdas_tau_max}]"),
            ("rsws_candidates", lambda v: v >= 1, "an integer >= 1"),
            ("pt_finetune_steps", lambda v: v >= 0, "an integer >= 0"),
            ("selection_batches", lambda v: v is None or v >= 1, "None (every val_cs batch) or an integer >= 1"),
        ]
    else:
        val_fraction_ok = 0 < config.val_fraction < 1
        smallest = _smallest_train_limit(config.val_fraction) if val_fraction_ok else 3
        checks += [
            ("val_fraction", lambda v: 0 < v < 1, "a number in (0, 1)"),
            (
                "limit", lambda v: v is None or v >= smallest,
                f"None (all examples) or an integer >= {smallest} (two training examples after the "
                f"val_fraction={config.val_fraction} validation split)",
            ),
            ("cell", lambda v: bool(v.strip()), "gru, lstm, a paper genotype name, a genotype JSON file or string"),
            ("head_init_range", lambda v: v is None or v > 0, "None (the dataset's) or a number > 0"),
            ("network", lambda v: v is None or _network_problem(v) is None,
             f"None (the paper's design) or PATCHxWIDTH[/ORDERING] layers fitting {IMAGE_SIZE}×{IMAGE_SIZE} images: "
             f"{_network_problem(config.network)}"),
        ]
    problems = []
    if not is_dataset_name(config.dataset):
        problems.append(f"unknown dataset {config.dataset!r}; valid datasets: {', '.join(DATASET_NAMES)} (PATH a directory)")
    if config.variant is not None and config.variant not in VARIANTS:
        problems.append(f"unknown variant {config.variant!r}; valid variants: {', '.join(sorted(VARIANTS))}")
    for name, is_valid, valid in checks:
        value = getattr(config, name)
        if not is_valid(value):
            problems.append(f"{name}={value!r} is out of range; valid: {valid}")
    return problems


def _network_problem(network: str | None) -> str | None:
    """Why a ``network`` string cannot build a network for the datasets' images, or None."""
    if network is None:
        return None
    try:
        NetworkSpec.from_string(network).output_size((IMAGE_SIZE, IMAGE_SIZE))
    except ValueError as error:
        return str(error)
    return None


BASELINE_CELL_NAMES = ("gru", "lstm")


def _ignored_field_problems(config: Config, given: set[str]) -> list[str]:
    problems = []
    if config.svhn_extra and config.dataset != "svhn":
        problems.append(f"svhn_extra=True only applies to dataset svhn, not {config.dataset!r}")
    if isinstance(config, TrainConfig) and config.cell in BASELINE_CELL_NAMES and config.variant is not None:
        problems.append(
            f"variant={config.variant!r} is ignored by the {config.cell} baseline (variants apply to DARTS cells "
            "only); leave variant unset"
        )
    if isinstance(config, SearchConfig) and config.weight_optimizer == "adam" and "momentum" in given:
        problems.append("momentum is ignored by weight_optimizer='adam' (SGD only); leave momentum unset")
    if isinstance(config, TrainConfig) and config.cell in BASELINE_CELL_NAMES and "backend" in given:
        problems.append(
            f"backend={config.backend!r} is ignored by the {config.cell} baseline (backends compute DARTS cells "
            "only); leave backend unset"
        )
    if isinstance(config, SearchConfig):
        problems += _strategy_field_problems(config, given)
    if isinstance(config, TrainConfig) and config.network is not None and "channels" in given:
        problems.append("channels is ignored with network set (the network gives every layer's width); leave channels unset")
    if not config.augment and config.cutout > 0 and "cutout" in given:
        problems.append(f"cutout={config.cutout} is ignored with augment=False; set cutout=0 or augment=True")
    return problems




STRATEGY_FIELDS: dict[str, tuple[str, ...]] = {
    "sdarts_rs": ("sdarts_epsilon_start", "sdarts_epsilon_end"),
    "gdas": ("gdas_tau_max", "gdas_tau_min"),
    "rsws": ("rsws_candidates", "selection_batches"),
    "darts_pt": ("pt_finetune_steps", "selection_batches"),
}
"""The fields each search strategy reads (besides DARTS's)."""


def _strategy_field_problems(config: SearchConfig, given: set[str]) -> list[str]:
    """A strategy's field given, with a value other than its default, with another strategy; or
    second-order α steps where there are none."""
    problems = []
    used = set(STRATEGY_FIELDS.get(config.strategy, ()))
    defaults = {field.name: field.default for field in dataclasses.fields(SearchConfig)}
    for field in sorted({name for names in STRATEGY_FIELDS.values() for name in names} - used):
        if field in given and getattr(config, field) != defaults[field]:
            users = [name for name, names in STRATEGY_FIELDS.items() if field in names]
            problems.append(f"{field} is ignored by strategy={config.strategy!r} (it applies to {' and '.join(users)}); leave it unset")
    if config.arch_order == 2 and config.strategy in ("gdas", "rsws"):
        problems.append(
            f"arch_order=2 does not apply to strategy={config.strategy!r} (second-order α steps: darts, sdarts_rs, darts_pt)"
        )
    return problems

"""Run configurations and presets (SPEC §3 search, SPEC §6 evaluation).

One dataclass per phase — :class:`SearchConfig` and :class:`TrainConfig` — whose
defaults are the paper setup (SPEC numbers, the original code where the paper is
silent). A *preset* is data: a mapping of field overrides per phase, optionally per
dataset. :func:`resolve_config` layers defaults ← preset ← preset's dataset
section ← explicit overrides, and every field can be overridden from the command
line as ``--set field=value``.

Presets: ``paper`` (the SPEC numbers) and ``demo`` (small widths, few epochs: a
search or an evaluation on ``digits`` in well under a minute on 2 CPU cores). A
JSON file with the same shape (``{"search": {...}, "train": {...}, "datasets":
{"svhn": {"train": {...}}}}``) is accepted wherever a preset name is, e.g. the best
configuration written by ``sweeps/tune_hparams.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from dartsrenet.registry import UnknownNameError, lookup


@dataclass
class SearchConfig:
    """A DARTS cell search run (SPEC §3). Defaults: the original code's setup."""

    variant: str = "vanilla"  # vanilla | sigmoid_weighting | directional_weight_sharing
    out: str = "runs/search"  # the run folder (resumed if it holds a checkpoint)
    dataset: str = "cifar10"  # a dartsrenet.data name, e.g. digits, imagefolder:PATH
    data_root: str = "data"  # where datasets live (and are downloaded to)
    download: bool = False  # let torchvision download missing datasets
    seed: int = 0  # controls init, split, data order and augmentation
    channels: int = 128  # N of the search network (h = N/2 per direction)
    epochs: int = 50
    patience: int | None = 10  # early stopping on val_cs accuracy (paper); None = off
    batch_size: int = 64
    weight_optimizer: Literal["sgd", "adam"] = "sgd"  # sgd: the code (default); adam: the paper
    lr: float = 0.1  # weight learning rate (use ~1e-3 with adam)
    lr_min: float = 0.001  # end of the cosine schedule
    momentum: float = 0.7  # SGD only
    weight_decay: float = 3e-4
    grad_clip: float = 1.0  # gradient-norm clip of the weights; 0 = off
    arch_lr: float = 3e-3  # α: Adam(lr, betas, weight decay)
    arch_beta1: float = 0.5
    arch_beta2: float = 0.999
    arch_weight_decay: float = 1e-3
    augment: bool = True  # crop + pad 4, flip (not SVHN/digits)
    cutout: int = 0  # Cutout size; DARTS searches without Cutout
    svhn_extra: bool = False
    limit: int | None = None  # use only this many training examples (tests, demos)
    num_workers: int = 0
    device: str = "auto"  # auto (cuda → mps → cpu) | cpu | cuda | cuda:1 | mps


@dataclass
class TrainConfig:
    """An evaluation run: train a derived cell or baseline from scratch (SPEC §6)."""

    cell: str = "vanilla"  # gru | lstm | paper genotype name | genotype JSON file | genotype string
    variant: str | None = None  # None: implied by a paper genotype name, else vanilla
    out: str = "runs/train"  # the run folder (resumed if it holds a checkpoint)
    dataset: str = "cifar10"
    data_root: str = "data"
    download: bool = False
    seed: int = 0
    channels: int = 256  # N of the evaluation network
    epochs: int = 300
    patience: int | None = 50  # early stopping on validation accuracy; None = off
    batch_size: int = 64
    lr: float = 0.1  # SGD
    lr_min: float = 0.0  # end of the cosine schedule
    momentum: float = 0.7
    weight_decay: float = 3e-4
    grad_clip: float = 1.0
    val_fraction: float = 0.1  # validation split carved from the training set
    augment: bool = True
    cutout: int = 12  # Cutout after normalisation; 0 = off
    head_init_range: float | None = None  # None: the dataset's (0.5; SVHN 0.05)
    svhn_extra: bool = False  # SVHN: train + extra, as the original
    limit: int | None = None
    num_workers: int = 0
    device: str = "auto"


Config = SearchConfig | TrainConfig
CONFIG_CLASSES: dict[str, type] = {"search": SearchConfig, "train": TrainConfig}

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "search": {},
        "train": {},
        "datasets": {
            # SPEC §6 (code): SVHN = train + extra, 100 epochs, weight decay 3e-5.
            "svhn": {"train": {"epochs": 100, "weight_decay": 3e-5, "svhn_extra": True}},
        },
    },
    "demo": {
        # Small enough for 2 CPU cores, large enough to learn for real on digits.
        "search": {"dataset": "digits", "channels": 16, "epochs": 4, "patience": None, "batch_size": 32},
        "train": {
            "dataset": "digits", "channels": 32, "epochs": 8, "patience": None, "batch_size": 32, "lr": 0.05, "cutout": 0,
        },
    },
}
"""Presets as data: per phase (``search``/``train``) field overrides, then per dataset."""


def load_preset(preset: str | os.PathLike[str]) -> dict[str, Any]:
    """A preset by name, or from a JSON file of the same shape."""
    name = os.fspath(preset)
    if name in PRESETS:
        return PRESETS[name]
    if name.endswith(".json") or Path(name).is_file():
        path = Path(name)
        try:
            data = json.loads(path.read_text())
        except OSError as error:
            raise FileNotFoundError(f"{path}: cannot read preset file ({error.strerror})") from None
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: malformed preset JSON: {error}") from None
        if not isinstance(data, dict) or not set(data) <= {"search", "train", "datasets", "comment"}:
            raise ValueError(f"{path}: a preset file is a JSON object with keys search, train, datasets")
        return data
    return lookup(PRESETS, name, "preset")


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
    """
    config_class = lookup(CONFIG_CLASSES, kind, "run kind")
    preset_data = load_preset(preset)
    overrides = dict(overrides or {})
    values: dict[str, Any] = {}
    values.update(preset_data.get(kind, {}))
    dataset = overrides.get("dataset", values.get("dataset", config_class.dataset))
    values.update(preset_data.get("datasets", {}).get(dataset, {}).get(kind, {}))
    values.update(overrides)
    coerced = {name: coerce_value(config_class, name, value) for name, value in values.items()}
    return config_class(**coerced)


def config_to_dict(config: Config) -> dict[str, Any]:
    """A JSON-ready dict of every field."""
    return dataclasses.asdict(config)


def config_from_dict(kind: Literal["search", "train"], data: dict[str, Any]) -> Config:
    """Rebuild a config from :func:`config_to_dict` output (unknown keys are an error)."""
    config_class = lookup(CONFIG_CLASSES, kind, "run kind")
    return config_class(**{name: coerce_value(config_class, name, value) for name, value in data.items()})



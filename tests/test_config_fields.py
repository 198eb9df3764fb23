"""The two phase configs: shared fields defined once, names, defaults and dict forms as
run folders and planned sweeps have always recorded them; dataset names without torchvision."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from dartsrenet import config
from dartsrenet.config import SearchConfig, SharedConfig, TrainConfig, config_from_dict, config_to_dict, resolve_config
from dartsrenet.dataset_names import DATASET_NAMES, FIXED_DATASETS, IMAGEFOLDER_PREFIX

# The default dict forms as config.json recorded them (field order of older runs kept).
SEARCH_DEFAULTS = {
    "variant": "vanilla", "out": "runs/search", "dataset": "cifar10", "data_root": "data", "download": False,
    "seed": 0, "channels": 128, "epochs": 50, "patience": 10, "batch_size": 64, "weight_optimizer": "sgd",
    "lr": 0.1, "lr_min": 0.001, "momentum": 0.7, "weight_decay": 3e-4, "grad_clip": 1.0, "arch_lr": 3e-3,
    "arch_beta1": 0.5, "arch_beta2": 0.999, "arch_weight_decay": 1e-3, "arch_order": 1, "augment": True,
    "cutout": 0, "svhn_extra": False, "limit": None, "num_workers": 0, "device": "auto", "backend": "auto",
    "capture": True, "matmul_precision": "tf32", "autocast": "none", "strategy": "darts",
    "sdarts_epsilon_start": 0.03, "sdarts_epsilon_end": 0.3, "gdas_tau_max": 10.0, "gdas_tau_min": 0.1,
    "rsws_candidates": 100, "pt_finetune_steps": 0, "selection_batches": None,
}
TRAIN_DEFAULTS = {
    "cell": "vanilla", "variant": None, "out": "runs/train", "dataset": "cifar10", "data_root": "data",
    "download": False, "seed": 0, "channels": 256, "network": None, "measure_latency": False, "epochs": 300,
    "patience": 50, "batch_size": 64, "lr": 0.1, "lr_min": 0.0, "momentum": 0.7, "weight_decay": 3e-4,
    "grad_clip": 1.0, "val_fraction": 0.1, "augment": True, "cutout": 12, "head_init_range": None,
    "svhn_extra": False, "limit": None, "num_workers": 0, "device": "auto", "backend": "auto", "capture": True,
    "matmul_precision": "tf32", "autocast": "none",
}


@pytest.mark.parametrize("config_class, defaults", [(SearchConfig, SEARCH_DEFAULTS), (TrainConfig, TRAIN_DEFAULTS)])
def test_field_names_and_defaults_are_those_recorded_by_older_runs(config_class, defaults):
    assert config_to_dict(config_class()) == defaults
    kind = "search" if config_class is SearchConfig else "train"
    # a config.json of an older run (its field order) loads to the same config
    recorded = json.loads(json.dumps({**defaults, "dataset": "digits", "seed": 3}))
    loaded = config_from_dict(kind, recorded)
    assert config_to_dict(loaded) == recorded and type(loaded) is config_class


def test_shared_fields_are_defined_once():
    shared = {field.name for field in dataclasses.fields(SharedConfig)}
    both = set(SEARCH_DEFAULTS) & set(TRAIN_DEFAULTS)
    assert shared <= both
    # a field of both phases is declared again only where its default differs
    redeclared = {name for name in both - shared if SEARCH_DEFAULTS[name] != TRAIN_DEFAULTS[name]}
    assert both - shared == redeclared | {"variant"}  # variant: another type (None in training)
    for config_class in (SearchConfig, TrainConfig):
        assert not shared & set(config_class.__dict__.get("__annotations__", {}))


def test_resolved_config_round_trips_through_its_dict():
    for kind in ("search", "train"):
        built = resolve_config(kind, "demo", {"seed": 2})
        assert config_from_dict(kind, config_to_dict(built)) == built


def test_dataset_names_are_the_data_modules_sources():
    from dartsrenet import data

    assert tuple(data.DATASETS) == FIXED_DATASETS
    assert data.DATASET_NAMES == DATASET_NAMES and data.IMAGEFOLDER_PREFIX == IMAGEFOLDER_PREFIX
    assert config.DATASET_NAMES == DATASET_NAMES


def test_config_module_does_not_load_torchvision_or_the_data_code():
    code = "import sys, dartsrenet.config; print(sorted(m for m in ('torchvision', 'dartsrenet.data') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert loaded.strip() == "[]"

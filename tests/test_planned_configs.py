"""Configs are planned once and shipped to the trials as data (sweeps/trainable.py): a
trial builds its config from the values planned for its dataset alone — equal to the
config the plan checked — and reads no preset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[sweeps]')")

from ray.tune.search.variant_generator import generate_variants

from dartsrenet.config import resolve_config
from sweeps import evaluate_genotypes, options, search_all_variants, trainable
from sweeps.errors import SweepError
from sweeps.experiment import prepare_experiment


def trial_configs(param_space: dict) -> list[dict]:
    """The configs Ray Tune gives the trials of a parameter space (grid and sample_from resolved)."""
    return [config for _, config in generate_variants(param_space)]


def planned_config(kind: str, trial: dict, out: str) -> object:
    """The config of a trial entry as the sweep planned it: the preset resolved on the driver."""
    overrides = {**trial["overrides"], "dataset": trial["dataset"], "seed": trial["seed"], "out": out}
    if kind == "search":
        overrides["variant"] = trial["variant"]
    else:
        overrides.update(cell=trial.get("genotype") or trial["model"], variant=trial.get("variant"))
    return resolve_config(kind, trial["preset"], overrides)


def test_search_trials_build_the_planned_config(tmp_path):
    args = options.namespace(search_all_variants.build_parser(), preset="demo", num_seeds=2,
                             overrides=["epochs=2"], storage=str(tmp_path))
    sweep = search_all_variants.plan(args)
    trials = trial_configs(sweep.param_space)
    assert len(trials) == len(sweep.planned) == 6
    for trial in trials:
        assert trial[trainable.PLANNED_CONFIGS_FIELD] == sweep.param_space[trainable.PLANNED_CONFIGS_FIELD]
        built = trainable.trial_run_config("search", trial, Path("run"))
        assert built == planned_config("search", trial, "run")
        assert built.epochs == 2 and built.channels == 16  # the override, and the demo preset


def test_each_dataset_gets_its_own_planned_values(tmp_path):
    """The paper preset has a section for SVHN: its trials get it, the others do not."""
    args = options.namespace(evaluate_genotypes.build_parser(), preset="paper", datasets=["cifar10", "svhn"],
                             models=["gru", "vanilla"], storage=str(tmp_path))
    sweep = evaluate_genotypes.plan(args)
    trials = trial_configs(sweep.param_space)
    assert {(trial["dataset"], trial["model"]) for trial in trials} == {
        (dataset, model) for dataset in ("cifar10", "svhn") for model in ("gru", "vanilla")
    }
    for trial in trials:
        built = trainable.trial_run_config("train", trial, Path("run"))
        assert built == planned_config("train", trial, "run")
        assert (built.epochs, built.svhn_extra) == ((100, True) if trial["dataset"] == "svhn" else (300, False))
    recorded = sweep.details["configs"]
    assert recorded["svhn"]["epochs"] == 100 and recorded["cifar10"]["epochs"] == 300


def test_trials_read_no_preset(tmp_path):
    """A preset file changed or gone after planning does not change what the trials run."""
    preset = tmp_path / "mine.json"
    preset.write_text(json.dumps({"search": {"dataset": "digits", "channels": 8, "epochs": 3, "patience": None}}))
    args = options.namespace(search_all_variants.build_parser(), preset=str(preset), variants=["vanilla"],
                             storage=str(tmp_path))
    sweep = search_all_variants.plan(args)
    (trial,) = trial_configs(sweep.param_space)
    expected = planned_config("search", trial, "run")
    preset.unlink()
    assert trainable.trial_run_config("search", trial, Path("run")) == expected
    assert expected.channels == 8 and expected.epochs == 3


def test_a_trial_config_without_planned_values_is_one_clear_error():
    trial = {"variant": "vanilla", "seed": 0, "dataset": "digits", "preset": "demo", "overrides": {}}
    with pytest.raises(ValueError, match="planned by an older version"):
        trainable.trial_run_config("search", trial, Path("run"))


def test_resuming_an_experiment_whose_trials_read_presets_is_refused(tmp_path):
    experiment = str(tmp_path / "exp")
    planned = [{"variant": "vanilla", "seed": 0, "dataset": "digits", "preset": "demo", "overrides": {}}]
    prepare_experiment(experiment, "search", planned, "cmd", {})  # as an older version recorded it
    shipped = trainable.planned_configs("search", "demo", {}, ["digits"])
    with pytest.raises(SweepError, match="older version"):
        prepare_experiment(experiment, "search", planned, "cmd", {trainable.PLANNED_CONFIGS_FIELD: shipped})

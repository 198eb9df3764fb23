"""Bad input is refused before any work starts: one line naming the field and its valid range.

Config values are checked when the config is built (``resolve_config`` →
``validate_config``); the CLI prints every library error as one ``error: ...`` line
with exit status 2, and no run folder is created.
"""

import dataclasses

import pytest

from dartsrenet import cli
from dartsrenet.config import (
    PRESETS,
    ConfigError,
    SearchConfig,
    TrainConfig,
    config_from_dict,
    config_to_dict,
    resolve_config,
    validate_config,
)
from dartsrenet.data import DATASETS
from dartsrenet.search import run_search
from dartsrenet.train import run_train


# --- ranges --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "overrides", "field", "valid"),
    [
        ("train", {"epochs": "0"}, "epochs", ">= 1"),
        ("search", {"epochs": "-3"}, "epochs", ">= 1"),
        ("train", {"patience": "0"}, "patience", "None (no early stopping) or an integer >= 1"),
        ("train", {"cutout": "-1"}, "cutout", "0 (off)"),
        ("train", {"cutout": "33"}, "cutout", "image side 32"),
        ("train", {"grad_clip": "-1"}, "grad_clip", "0 (off) or a number > 0"),
        ("train", {"lr": "0.1", "lr_min": "0.2"}, "lr_min", "[0, lr] = [0, 0.1]"),
        ("search", {"lr_min": "-0.001"}, "lr_min", "[0, lr]"),
        ("train", {"lr": "0"}, "lr", "> 0"),
        ("train", {"lr": "nan"}, "lr", "finite"),
        ("search", {"lr": "inf"}, "lr", "finite"),
        ("train", {"weight_decay": "nan"}, "weight_decay", "finite"),
        ("train", {"channels": "0"}, "channels", "even integer >= 2"),
        ("search", {"channels": "7"}, "channels", "even integer >= 2"),
        ("train", {"batch_size": "1"}, "batch_size", ">= 2"),
        ("search", {"batch_size": "0"}, "batch_size", ">= 1"),
        ("train", {"momentum": "1"}, "momentum", "[0, 1)"),
        ("train", {"weight_decay": "-1e-4"}, "weight_decay", ">= 0"),
        ("search", {"arch_weight_decay": "-1"}, "arch_weight_decay", ">= 0"),
        ("search", {"arch_lr": "0"}, "arch_lr", "> 0"),
        ("search", {"arch_beta2": "1"}, "arch_beta2", "[0, 1)"),
        ("train", {"limit": "1"}, "limit", ">= 3"),
        ("train", {"limit": "3", "val_fraction": "0.5"}, "limit", ">= 4 (two training examples"),
        ("search", {"limit": "3"}, "limit", ">= 4"),
        ("train", {"val_fraction": "1"}, "val_fraction", "(0, 1)"),
        ("train", {"head_init_range": "0"}, "head_init_range", "> 0"),
        ("train", {"num_workers": "-1"}, "num_workers", ">= 0"),
        ("train", {"seed": "-1"}, "seed", "[0, 2**63)"),
        ("train", {"device": "gpu"}, "device", "auto, cpu, cuda, cuda:N or mps"),
        ("train", {"dataset": "mnist"}, "dataset", "digits"),
        ("train", {"dataset": "imagefolder:"}, "dataset", "imagefolder:PATH"),
        ("search", {"variant": "vanila"}, "variant", "directional_weight_sharing"),
        ("train", {"cell": " "}, "cell", "gru, lstm"),
    ],
)
def test_out_of_range_values_are_refused_in_one_line(kind, overrides, field, valid):
    with pytest.raises(ConfigError) as info:
        resolve_config(kind, "demo", overrides)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"invalid {kind} config: ")
    assert field in message and valid in message, message


def test_every_problem_is_named_at_once():
    with pytest.raises(ConfigError) as info:
        resolve_config("train", "demo", {"epochs": "0", "patience": "0", "cutout": "-1", "grad_clip": "-1"})
    message = str(info.value)
    assert all(f"{name}=" in message for name in ("epochs", "patience", "cutout", "grad_clip"))
    assert "\n" not in message


def test_wrong_types_in_a_directly_built_config_are_refused():
    with pytest.raises(ConfigError, match="epochs must be an integer, got '3'"):
        validate_config(SearchConfig(epochs="3"))
    with pytest.raises(ConfigError, match="weight_optimizer must be one of sgd, adam, got 'rmsprop'"):
        validate_config(SearchConfig(weight_optimizer="rmsprop"))
    with pytest.raises(ConfigError, match="augment must be true or false"):
        validate_config(TrainConfig(augment=1))


@pytest.mark.parametrize("kind", ["search", "train"])
@pytest.mark.parametrize("preset", list(PRESETS))
@pytest.mark.parametrize("dataset", [*DATASETS, "imagefolder:./images"])
def test_presets_are_valid_for_every_dataset(kind, preset, dataset):
    config = resolve_config(kind, preset, {"dataset": dataset})
    validate_config(config)
    assert config_from_dict(kind, config_to_dict(config)) == config


# --- fields the run would ignore ------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "overrides", "words"),
    [
        ("train", {"cell": "gru", "variant": "vanilla"}, "variant='vanilla' is ignored by the gru baseline"),
        ("train", {"cell": "lstm", "variant": "sigmoid_weighting"}, "ignored by the lstm baseline"),
        ("search", {"weight_optimizer": "adam", "momentum": "0.9"}, "momentum is ignored by weight_optimizer='adam'"),
        ("train", {"augment": "false", "cutout": "8"}, "cutout=8 is ignored with augment=False"),
        ("search", {"svhn_extra": "true"}, "svhn_extra=True only applies to dataset svhn"),
    ],
)
def test_a_field_the_run_would_ignore_is_an_error(kind, overrides, words):
    with pytest.raises(ConfigError) as info:
        resolve_config(kind, "demo", overrides)
    assert words in str(info.value)


def test_defaults_of_ignored_fields_are_not_errors():
    # momentum and cutout keep their defaults: nothing given is dropped.
    assert resolve_config("search", "paper", {"weight_optimizer": "adam"}).momentum == 0.7
    assert resolve_config("train", "paper", {"augment": "false"}).cutout == 12
    assert resolve_config("train", "paper", {"cell": "gru"}).variant is None
    assert resolve_config("train", "paper", {"cell": "directional_weight_sharing", "variant": "vanilla"})


# --- nothing is written ---------------------------------------------------------------
def test_runs_validate_a_directly_built_config_before_writing(tmp_path):
    bad_train = TrainConfig(cell="gru", dataset="digits", epochs=0, out=str(tmp_path / "train"), device="cpu")
    with pytest.raises(ConfigError, match="epochs=0"):
        run_train(bad_train, log=None)
    bad_search = dataclasses.replace(SearchConfig(dataset="digits", device="cpu"), lr=float("nan"), out=str(tmp_path / "s"))
    with pytest.raises(ConfigError, match="lr must be a finite number"):
        run_search(bad_search, log=None)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["train", "--cell", "gru", "--set", "epochs=0"], "epochs=0 is out of range; valid: an integer >= 1"),
        (["train", "--cell", "gru", "--set", "lr=nan"], "lr must be a finite number, got nan"),
        (["train", "--cell", "gru", "--set", "patience=0"], "patience=0 is out of range"),
        (["train", "--cell", "gru", "--variant", "vanilla"], "ignored by the gru baseline"),
        (["train", "--cell", "gru", "--set", "channels=3"], "channels=3 is out of range"),
        (["search", "--set", "lr_min=1"], "lr_min=1.0 is out of range; valid: a number in [0, lr] = [0, 0.1]"),
        (["search", "--set", "weight_optimizer=adam", "--set", "momentum=0.9"], "momentum is ignored"),
        (["train"], "give exactly one of --genotype FILE|NAME|STRING and --cell gru|lstm"),
    ],
)
def test_cli_bad_input_is_one_line_with_exit_2_and_writes_nothing(tmp_path, capsys, arguments, words):
    out = tmp_path / "run"
    status = cli.main([*arguments, "--preset", "demo", "--device", "cpu", "--out", str(out)])
    captured = capsys.readouterr()
    assert status == 2
    assert captured.err.startswith("error: ") and captured.err.count("\n") == 1, captured.err
    assert words in captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    assert not out.exists()


def test_cli_binary_genotype_file_is_named(tmp_path, capsys):
    genotype = tmp_path / "cell.json"
    genotype.write_bytes(bytes(range(256)))
    out = tmp_path / "run"
    status = cli.main(["train", "--genotype", str(genotype), "--preset", "demo", "--out", str(out)])
    err = capsys.readouterr().err
    assert status == 2 and err == f"error: {genotype}: not a genotype JSON file (not UTF-8 text)\n"
    assert not out.exists()

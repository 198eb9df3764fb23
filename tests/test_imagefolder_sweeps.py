"""Sweeps over ``imagefolder:PATH`` datasets (sweeps/options.py: ``dataset_argument``,
``dataset_tag``): the path is made absolute and checked while the sweep is planned, the
experiment and trial folders are named after the image folder's own name, and the
analysis finds the experiments.

A real tiny image folder (tests/fixtures_data.py) goes through real sweeps on the
session's local Ray: a search given a *relative* path (Ray runs trials in their own
working folders, where the relative path leads nowhere) and an evaluation given an
absolute one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[sweeps]')")

from analysis import draw_cells, make_table
from analysis.results import FINISHED, find_experiments, load_trials
from dartsrenet import results
from sweeps import evaluate_genotypes, random_baseline, search_all_variants, tune_hparams
from sweeps.errors import EXIT_USAGE
from sweeps.experiment import trial_dirname
from tests.fixtures_data import write_imagefolder

TINY = ["--set", "channels=4", "--set", "epochs=2", "--set", "limit=96", "--set", "batch_size=16"]
COMMON = ["--preset", "demo", "--verbose", "0", "--gpus-per-trial", "0", *TINY]


@pytest.fixture()
def pets(tmp_path, monkeypatch) -> Path:
    """``tmp_path/data/pets``: 2 classes × 18 images in train/ and in test/; the working
    folder is ``tmp_path``, so ``data/pets`` is a relative path to it."""
    folder = tmp_path / "data" / "pets"
    write_imagefolder(folder, split_dirs=True, per_variant=6)
    monkeypatch.chdir(tmp_path)
    return folder


def test_planning_makes_the_path_absolute_and_the_names_short(pets, tmp_path):
    search = search_all_variants.plan(search_all_variants.parse_args(
        ["--dataset", "imagefolder:data/pets", "--preset", "demo", "--storage", "results"]
    ))
    assert search.name == "search_pets_demo"
    assert {entry["dataset"] for entry in search.planned} == {f"imagefolder:{pets}"}
    assert search.param_space["dataset"] == f"imagefolder:{pets}"
    assert search.experiment == str(tmp_path / "results" / "search_pets_demo")

    evaluation = evaluate_genotypes.plan(evaluate_genotypes.parse_args(
        ["--datasets", "imagefolder:data/pets", f"imagefolder:{pets}", "digits", "--preset", "demo"]
    ))
    assert evaluation.name == "eval_pets-digits_demo"  # the two spellings of one folder are one dataset
    assert evaluation.details["datasets"] == [f"imagefolder:{pets}", "digits"]
    random = random_baseline.plan(random_baseline.parse_args(["--datasets", "imagefolder:./data/pets/", "--preset", "demo"]))
    assert random.name.startswith("random_pets_demo_") and random.planned[0]["dataset"] == f"imagefolder:{pets}"
    tune = tune_hparams.plan(tune_hparams.parse_args(["--dataset", "imagefolder:data/pets", "--preset", "demo"]))
    assert tune.name == "tune_vanilla_pets_demo_seed0" and tune.planned[0]["dataset"] == f"imagefolder:{pets}"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("imagefolder:data/cats", "image folder {tmp}/data/cats does not exist"),
        ("imagefolder:data/pets/train/cat", "find any class folder"),
    ],
)
def test_a_bad_image_folder_is_one_line_before_ray_starts(pets, tmp_path, capsys, spec, message):
    storage = tmp_path / "results"
    status = search_all_variants.main(
        ["--dataset", spec, "--storage", str(storage), "--address", "nowhere:1", *COMMON]
    )
    assert status == EXIT_USAGE  # --address is never used: refused while planning
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: dataset {spec}: ") and message.format(tmp=tmp_path) in line
    assert not storage.exists()


def test_trial_folders_are_named_after_the_image_folder():
    class Trial:
        trial_id = "abc12_00000"
        config = {"model": "gru", "dataset": "imagefolder:/data/sets/pets", "seed": 0}

    assert trial_dirname(Trial()) == "gru_pets_seed0_abc12_00000"


def test_search_and_evaluation_sweeps_over_an_image_folder(ray_session, pets, tmp_path, capsys):
    storage = tmp_path / "results"
    status = search_all_variants.main(
        ["--variants", "vanilla", "--num-seeds", "1", "--dataset", "imagefolder:data/pets",
         "--storage", "results", *COMMON]
    )
    assert status == 0
    (search,) = storage.iterdir()
    assert search.name.startswith("search_pets_demo_set-")  # short, beside the other experiments
    selection = json.loads((search / results.SELECTION_FILE).read_text())
    assert selection["dataset"] == f"imagefolder:{pets}"
    assert selection["variants"]["vanilla"]["selected"]["seed"] == 0

    status = evaluate_genotypes.main(
        ["--genotypes", str(search), "--models", "vanilla", "--datasets", f"imagefolder:{pets}",
         "--storage", str(storage), *COMMON]
    )
    assert status == 0
    experiments = {experiment.kind: experiment for experiment in find_experiments(storage)}
    assert len(experiments) == 2 and experiments["search"].name == search.name
    evaluation = experiments["train"]
    assert evaluation.name.startswith("eval_pets_demo_set-") and evaluation.name.endswith(f"_from_{search.name}")
    assert Path(evaluation.path).parent == storage
    trials = load_trials(evaluation)
    assert list(trials["status"]) == [FINISHED]
    (trial_dir,) = trials["trial_dir"]
    assert Path(trial_dir).parent == Path(evaluation.path) and Path(trial_dir).name.startswith("vanilla_pets_seed0_")
    capsys.readouterr()

    assert make_table.main(["--results", str(storage)]) == 0
    out = capsys.readouterr().out
    assert f"experiment {evaluation.name}" in out and f"experiment {search.name}" in out

    cells = tmp_path / "cells"
    assert draw_cells.main(["--results", str(storage), "--out", str(cells)]) in (
        draw_cells.EXIT_OK, draw_cells.EXIT_SOURCES_ONLY
    )
    assert [path.stem for path in cells.iterdir()] == ["vanilla"]
    assert f"from {search / results.SELECTION_FILE}" in capsys.readouterr().err

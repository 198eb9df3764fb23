"""The random-genotype control: ``sweeps/random_baseline.py`` (real trials on the session's
local Ray, tiny configs on ``digits``), its table (:mod:`analysis.control`) and figure
(:mod:`analysis.plot_random`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[sweeps]')")

from analysis import make_table, plot_random
from analysis.control import control_table, display_control_table, rank_and_percentile
from analysis.results import FAILED, FINISHED, load_trials, read_experiment
from dartsrenet import results
from dartsrenet.genotypes import sample_genotypes
from dartsrenet.variants import VARIANTS
from sweeps import evaluate_genotypes, random_baseline
from sweeps.errors import EXIT_USAGE

TINY = ["--set", "channels=4", "--set", "epochs=2", "--set", "limit=96", "--set", "batch_size=16"]
SHARED = ["--preset", "demo", "--datasets", "digits", "--gpus-per-trial", "0", "--verbose", "0", *TINY]


@pytest.fixture(scope="module")
def control(ray_session, tmp_path_factory) -> Path:
    """A random control (K = 3, vanilla) and an evaluation of the paper's vanilla cell and
    GRU, side by side in one results root."""
    storage = tmp_path_factory.mktemp("control")
    status = random_baseline.main(
        ["--num-samples", "3", "--sample-seed", "5", "--variants", "vanilla", "--storage", str(storage), *SHARED]
    )
    assert status == 0
    status = evaluate_genotypes.main(
        ["--genotypes", "paper", "--models", "vanilla", "gru", "--storage", str(storage), "--name", "eval", *SHARED]
    )
    assert status == 0
    return storage


def test_random_control_records_its_draws_and_trains_like_the_evaluation(control):
    (experiment_dir,) = [path for path in control.iterdir() if path.name.startswith("random_")]
    assert experiment_dir.name.startswith("random_digits_demo_k3_s5_set-")
    marker = json.loads((experiment_dir / "sweep.json").read_text())
    assert marker["kind"] == results.RANDOM_KIND and marker["sample_seed"] == 5 and marker["num_samples"] == 3
    drawn = [genotype.to_string() for genotype in sample_genotypes(3, 5)]
    assert marker["random_genotypes"] == drawn
    assert "random_baseline.py" in marker["command"]

    trials = load_trials(read_experiment(experiment_dir))
    assert list(trials["status"]) == [FINISHED] * 3
    assert sorted(trials["config/genotype"]) == sorted(drawn)
    assert set(trials["config/model"]) == {f"vanilla_random{i:02d}" for i in range(3)}
    # The same preset and overrides as the evaluation sweep: the same run config but the cell.
    evaluation = load_trials(read_experiment(control / "eval"))
    assert marker["configs"] == json.loads((control / "eval" / "sweep.json").read_text())["configs"]
    assert (trials["params"].notna()).all() and (evaluation["params"].notna()).all()


def test_table_ranks_the_darts_cell_among_the_random_ones(control, capsys):
    random = results.latest_experiment(control, results.RANDOM_KIND)
    evaluation = read_experiment(control / "eval")
    parts, failures = make_table.table_texts(None, evaluation, "markdown", random)
    assert failures == []
    text = parts["random"]
    assert "Random-genotype control" in text and "Vanilla" in text and "CPU-h" in text

    random_trials, eval_trials = load_trials(random), load_trials(evaluation)
    table = control_table(random_trials, eval_trials, None, {"random": {"cpu": 1, "gpu": 0}})
    (row,) = table.to_dict(orient="records")
    accuracies = sorted(100 * random_trials["test_accuracy"])
    darts = 100 * float(eval_trials.loc[eval_trials["config/model"] == "vanilla", "test_accuracy"].iloc[0])
    assert row["n_random"] == row["n_random_planned"] == 3
    assert row["random_mean"] == pytest.approx(sum(accuracies) / 3)
    assert row["random_best"] == pytest.approx(accuracies[-1])
    assert row["darts_accuracy"] == pytest.approx(darts)
    assert row["darts_rank"] == 1 + sum(accuracy > darts for accuracy in accuracies)
    assert 0 <= row["darts_percentile"] <= 100
    assert row["random_hours"] > 0 and row["compute_unit"] == "CPU-h" and math.isnan(row["search_hours"])

    # The whole command: the latest random control under the root is found by itself.
    assert make_table.main(["--results", str(control), "--format", "csv", "--out", str(control / "t.csv")]) == 0
    csv = pd.read_csv(make_table.part_output_path(control / "t.csv", "random"))
    assert list(csv["variant"]) == ["vanilla"] and csv.loc[0, "n_random"] == 3
    assert "# random" in capsys.readouterr().out


def test_plot_marks_the_darts_cell_and_baselines(control, tmp_path):
    out = tmp_path / "control.png"
    assert plot_random.main(["--results", str(control), "--eval", str(control / "eval"), "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    figure = plot_random.plot_random_control(
        load_trials(results.latest_experiment(control, results.RANDOM_KIND)), load_trials(read_experiment(control / "eval"))
    )
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert labels[0] == "random genotypes (K=3 per variant)"
    assert any(label.startswith("DARTS cell") for label in labels) and any(label.startswith("GRU") for label in labels)


def test_the_same_draws_for_every_variant():
    args = random_baseline.parse_args(["--num-samples", "4", "--sample-seed", "2", *SHARED])
    plan = random_baseline.plan(args)
    by_variant: dict[str, list[str]] = {}
    for entry in plan.planned:
        by_variant.setdefault(entry["variant"], []).append(entry["genotype"])
    assert list(by_variant) == list(VARIANTS)
    drawn = [genotype.to_string() for genotype in sample_genotypes(4, 2)]
    assert all(genotypes == drawn for genotypes in by_variant.values())
    assert plan.name == random_baseline.default_name(["digits"], "demo", plan.details["overrides"], 4, 2)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--num-samples", "0"], "error: --num-samples 0: must be an integer >= 1"),
        (["--num-samples", "2", "--sample-seed", "-1"], "error: --sample-seed -1: "),
        (["--num-samples", "2", "--set", "colour=red"], "colour"),
        (["--num-samples", "2", "--num-seeds", "0"], "error: --num-seeds must be at least 1"),
    ],
)
def test_bad_arguments_are_one_line_before_ray(tmp_path, capsys, argv, message):
    assert random_baseline.main([*argv, "--storage", str(tmp_path), "--preset", "demo"]) == EXIT_USAGE
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error:") and message in errors[0]
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_control_table_counts_genotypes_that_are_not_results():
    def trial(model, accuracy, status=FINISHED, seed=0):
        return {"config/dataset": "digits", "config/model": model, "config/variant": "vanilla", "config/seed": seed,
                "status": status, "test_accuracy": accuracy, "wall_time_s": 1800.0}

    random_trials = pd.DataFrame([
        trial("vanilla_random00", 0.5), trial("vanilla_random00", 0.7, seed=1),  # mean 60
        trial("vanilla_random01", 0.8), trial("vanilla_random02", None, status=FAILED),
    ])
    eval_trials = pd.DataFrame([trial("vanilla", 0.8), trial("vanilla", 1.0, seed=1), trial("gru", 0.4)])
    table = control_table(random_trials, eval_trials, None, {"random": {"cpu": 2, "gpu": 0}, "eval": {"cpu": 1, "gpu": 1}})
    (row,) = table.to_dict(orient="records")
    assert row["n_random"] == 2 and row["n_random_planned"] == 3
    assert row["random_mean"] == pytest.approx(70.0) and row["random_std"] == pytest.approx(14.142135623730951)
    assert row["darts_accuracy"] == pytest.approx(90.0) and row["darts_rank"] == 1 and row["darts_percentile"] == 100
    assert row["random_hours"] == pytest.approx(2 * 2.0) and row["darts_eval_hours"] == pytest.approx(1.0)
    assert row["compute_unit"] == "CPU-h + GPU-h"
    shown = display_control_table(table).iloc[0]
    assert shown["Random [%]"] == "70.00 ± 14.14 (K=2/3)" and shown["Rank"] == "1 of 3"


def test_rank_and_percentile_count_ties_half():
    others = pd.Series([60.0, 70.0, 70.0, 80.0])
    assert rank_and_percentile(70.0, others) == (2.0, 50.0)
    assert rank_and_percentile(90.0, others) == (1.0, 100.0)
    assert rank_and_percentile(50.0, others) == (5.0, 0.0)
    assert all(math.isnan(value) for value in rank_and_percentile(math.nan, others))


def test_study_report_holds_every_table_figure_and_the_missing_stages(control, tmp_path):
    from analysis.report import write_study_report

    random = results.latest_experiment(control, results.RANDOM_KIND)
    path = write_study_report(
        tmp_path,
        {"eval": control / "eval", "random": Path(random.path), "search": tmp_path / "no-such-search"},
        timings={"eval": 60.0, "random": 120.0},
        command="python sweeps/study.py",
        machine="a test machine",
        dataset="digits",
    )
    text = path.read_text()
    assert "`python sweeps/study.py`" in text and "Machine: a test machine" in text
    assert "| **all sweeps** | **3.0 min** |" in text
    assert "- cell search, first-order DARTS: no experiment" in text
    assert "### Table 1: test accuracy per data set and model (experiment eval)" in text
    assert "### Searched cells against the baselines (experiment eval)" in text
    assert "### Random-genotype control" in text and "| Vanilla " in text
    assert (tmp_path / "figures" / "random_control.png").stat().st_size > 10_000
    assert "![random-genotype control](figures/random_control.png)" in text

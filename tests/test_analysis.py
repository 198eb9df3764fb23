"""Analysis: result folders in Ray Tune's layout → tables, cell drawings and plots (no Ray).

The experiments are hand-written by :mod:`tests.fixtures_results` with finished, failed,
unfinished (truncated ``result.json``) and planned-but-missing trials.
"""

from __future__ import annotations

import io
import json
import math
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from matplotlib.figure import Figure

from analysis import draw_cells, make_table, plot_search
from analysis.formatting import latex_escape, to_markdown
from analysis.results import (
    FAILED,
    FINISHED,
    MISSING,
    STOPPED_EARLY,
    UNFINISHED,
    ExperimentNotFoundError,
    find_experiments,
    latest_experiment,
    load_history,
    load_trials,
    read_experiment,
    read_json_lines,
    unique_trials,
)
from analysis.tables import display_results_table, results_table, search_summary, select_seed
from dartsrenet.activations import PRIMITIVES
from dartsrenet.genotypes import PAPER_GENOTYPES, Genotype, edge_index
from tests.ci import missing
from tests.fixtures_results import (
    EVAL_TRIALS,
    SEARCH_EPOCHS,
    SEARCH_EXPECTED_SELECTION,
    SEARCH_VAL_ACCURACIES,
    eval_config,
    eval_reports,
    make_eval_experiment,
    make_search_experiment,
    search_config,
    search_reports,
    write_search_seed,
    write_sweep,
    write_trial,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def dot_binary() -> str:
    """Graphviz's ``dot``: rendering tests skip without it — and fail in CI (``CI`` set, as
    .ci/run and CI services do), which must have it (.ci/run installs it)."""
    dot = shutil.which("dot")
    if dot is None:
        missing("graphviz's `dot` binary is not installed (apt-get install graphviz)")
    return dot


@pytest.fixture(scope="module")
def results_root(tmp_path_factory) -> Path:
    """A results root with an old and a new evaluation experiment and one search experiment."""
    root = tmp_path_factory.mktemp("results")
    old_trials = [{"dataset": "cifar10", "model": "vanilla", "seed": 0, "test": 0.10, "params": 1, "status": "finished"}]
    make_eval_experiment(root, name="eval_old", created="2025-01-01T00:00:00", trials=old_trials)
    make_eval_experiment(root)  # created 2026-01-02 05:00 UTC (POSIX seconds in the marker)
    make_search_experiment(root)  # created 2026-01-02 03:04:05 UTC (ISO string in the marker)
    (root / "not_an_experiment").mkdir()
    return root


@pytest.fixture(scope="module")
def eval_trials(results_root) -> pd.DataFrame:
    return load_trials(read_experiment(results_root / "eval_paper"))


@pytest.fixture(scope="module")
def search_trials(results_root) -> pd.DataFrame:
    return load_trials(read_experiment(results_root / "search_digits_demo"))


# --- results.py ----------------------------------------------------------------------


def test_find_experiments_by_marker_and_pick_latest(results_root):
    experiments = find_experiments(results_root)
    assert [experiment.name for experiment in experiments] == ["eval_old", "search_digits_demo", "eval_paper"]
    assert latest_experiment(results_root, "eval").name == "eval_paper"
    assert latest_experiment(results_root, "search").name == "search_digits_demo"
    assert latest_experiment(results_root / "nowhere", "search") is None
    with pytest.raises(ExperimentNotFoundError):
        read_experiment(results_root / "not_an_experiment")


def test_read_json_lines_tolerates_truncated_last_line(tmp_path):
    path = tmp_path / "result.json"
    path.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epoch": 3, "val_acc')
    assert read_json_lines(path) == [{"epoch": 1}, {"epoch": 2}]
    assert read_json_lines(tmp_path / "absent.json") == []


def test_trial_statuses(eval_trials, search_trials):
    for trials, expected in (
        (eval_trials, [trial["status"] for trial in EVAL_TRIALS]),
        (search_trials, None),
    ):
        assert set(trials["status"]) <= {FINISHED, FAILED, UNFINISHED, MISSING}
        if expected is not None:
            assert trials["status"].tolist() == expected  # planned order, missing included
    by_key = {(row["config/variant"], row["config/seed"]): row for _, row in search_trials.iterrows()}
    assert by_key[("sigmoid_weighting", 0)]["status"] == FAILED
    assert by_key[("sigmoid_weighting", 0)]["error"] == "RuntimeError: CUDA out of memory (simulated)"
    assert by_key[("sigmoid_weighting", 2)]["status"] == MISSING
    unfinished = by_key[("directional_weight_sharing", 0)]
    assert unfinished["status"] == UNFINISHED
    assert unfinished["reports"] == 2  # the truncated third line is skipped
    assert unfinished["epoch"] == 2
    finished = by_key[("vanilla", 1)]
    assert finished["status"] == FINISHED
    assert finished["checkpoint"] == f"checkpoint_{SEARCH_EPOCHS - 1:06d}"
    assert finished["trial"].startswith("trainable_abc12_00001_1_")
    assert finished["trial_id"] == "abc12_00001"
    assert finished["training_iteration"] == SEARCH_EPOCHS
    assert "config" not in search_trials  # Ray's repeated config is dropped


def test_metrics_come_from_the_run_folder_not_rays_files(tmp_path):
    experiment_dir = tmp_path / "exp"
    config = eval_config("cifar10", "gru", 0)
    write_sweep(experiment_dir, "eval", [config], 1.0)
    trial_dir = write_trial(experiment_dir, 0, config, eval_reports(0.8, 4_790_000))
    (trial_dir / "result.json").unlink()
    (trial_dir / "progress.csv").unlink()
    trials = load_trials(read_experiment(experiment_dir))
    assert trials.loc[0, "status"] == FINISHED
    assert trials.loc[0, "test_accuracy"] == pytest.approx(0.8)
    assert load_history(read_experiment(experiment_dir))["epoch"].tolist() == [1, 2, 3]


def test_trial_retried_after_a_failure_shows_every_epoch_once(tmp_path):
    """Ray's result.json lost the report made before the retry; the run folder has all."""
    experiment_dir = tmp_path / "exp"
    config = search_config("vanilla", 0)
    write_sweep(experiment_dir, "search", [config], 1.0)
    reports = search_reports("vanilla", 0, [0.5, 0.7, 0.6, 0.65])
    trial_dir = write_trial(experiment_dir, 0, config, reports, error="injected fault after epoch 1",
                            ray_lost_epochs=(1,))
    assert [line["epoch"] for line in read_json_lines(trial_dir / "result.json")] == [2, 3, 4]
    experiment = read_experiment(experiment_dir)
    trials = load_trials(experiment)
    assert trials.loc[0, "status"] == FINISHED and trials.loc[0, "reports"] == 4
    assert trials.loc[0, "training_iteration"] == 4  # Ray's bookkeeping of the last epoch
    assert load_history(experiment)["epoch"].tolist() == [1, 2, 3, 4]
    assert search_summary(trials).loc[0, "selected_val_accuracy"] == pytest.approx(70.0)


NOT_A_RESULT = {
    "NaN test accuracy": ({"test_accuracy": math.nan}, None, "summary.json: test_accuracy is NaN, not a fraction in [0, 1]"),
    "null test accuracy": ({"test_accuracy": None}, None, "summary.json: test_accuracy is null (not a number), not a fraction in [0, 1]"),
    "percent, not fraction": ({"test_accuracy": 97.5}, None, "summary.json: test_accuracy is 97.5, not a fraction in [0, 1]"),
    "NaN in metrics.jsonl": ({}, ("val_accuracy", math.nan), "metrics.jsonl epoch 2: val_accuracy is NaN, not a fraction in [0, 1]"),
    "null in metrics.jsonl": ({}, ("train_accuracy", None), "metrics.jsonl epoch 2: train_accuracy is null (not a number), not a fraction in [0, 1]"),
    "null validation not marked": ({}, ("val_accuracy", None), "metrics.jsonl epoch 2: val_accuracy is null (not a number), not a fraction in [0, 1]"),
    "null best with an epoch selected": ({}, ("best_val_accuracy", None), "metrics.jsonl epoch 2: best_val_accuracy is null (not a number), not a fraction in [0, 1]"),
}


@pytest.mark.parametrize("case", NOT_A_RESULT)
def test_records_that_are_not_fractions_make_a_failed_trial_with_the_reason(tmp_path, case, capsys):
    summary, metric, reason = NOT_A_RESULT[case]
    experiment_dir = tmp_path / "exp"
    good, bad = eval_config("svhn", "gru", 0), eval_config("svhn", "gru", 1)
    write_sweep(experiment_dir, "eval", [good, bad], 1.0)
    write_trial(experiment_dir, 0, good, eval_reports(0.9, 4_790_000))
    reports = eval_reports(0.95, 4_790_000)
    if metric is not None:
        reports[1][metric[0]] = metric[1]
    write_trial(experiment_dir, 1, bad, reports, summary=summary)
    trials = load_trials(read_experiment(experiment_dir))
    assert trials["status"].tolist() == [FINISHED, FAILED]
    assert trials.loc[1, "error"] == reason
    row = display_results_table(results_table(trials)).iloc[0]
    assert row["Accuracy [%]"] == "90.00 (n=1)" and row["Seeds"] == "1/2 (1 failed)"

    assert make_table.main(["--eval", str(experiment_dir)]) == 0
    err = capsys.readouterr().err
    assert f"note: failed trial exp: svhn gru seed 1 ({trials.loc[1, 'trial']}): {reason}" in err.splitlines()


def test_an_epoch_marked_not_finite_leaves_a_finished_run_a_result(tmp_path):
    """The run records an epoch whose validation outputs were not finite as null with
    ``val_finite: false`` and never selects it (docs/architecture.md §6.4): a result."""
    experiment_dir = tmp_path / "exp"
    config = eval_config("svhn", "gru", 0)
    write_sweep(experiment_dir, "eval", [config], 1.0)
    reports = eval_reports(0.9, 4_790_000)
    reports[0].update(val_accuracy=None, val_loss=None, val_finite=False, best_epoch=0, best_val_accuracy=None)
    write_trial(experiment_dir, 0, config, reports)
    trials = load_trials(read_experiment(experiment_dir))
    assert trials["status"].tolist() == [FINISHED] and trials.loc[0, "error"] is None


def test_unparsable_genotype_is_never_the_selected_cell(tmp_path):
    experiment_dir = tmp_path / "exp"
    configs = [search_config("vanilla", 0), search_config("vanilla", 1)]
    write_sweep(experiment_dir, "search", configs, 1.0)
    write_trial(experiment_dir, 0, configs[0], search_reports("vanilla", 0, [0.5, 0.6, 0.7, 0.8]))
    write_trial(experiment_dir, 1, configs[1], search_reports("vanilla", 1, [0.5, 0.9, 0.95, 0.99]),
                summary={"genotype_string": "tanh:0,bogus:1"})
    trials = load_trials(read_experiment(experiment_dir))
    assert trials["status"].tolist() == [FINISHED, FAILED]
    assert trials.loc[1, "error"].startswith("summary.json: genotype_string 'tanh:0,bogus:1' is not a genotype (")
    summary = search_summary(trials)
    assert summary.loc[0, "selected_seed"] == 0 and summary.loc[0, "selected_val_accuracy"] == pytest.approx(80.0)
    Genotype.from_string(summary.loc[0, "genotype"])


def test_trial_without_params_json_still_matches_its_plan(tmp_path):
    experiment_dir = tmp_path / "exp"
    config = eval_config("svhn", "lstm", 3)
    write_sweep(experiment_dir, "eval", [config], 1.0)
    trial_dir = write_trial(experiment_dir, 0, config, eval_reports(0.9, 6_000_000))
    (trial_dir / "params.json").unlink()
    trials = load_trials(read_experiment(experiment_dir))
    assert trials["status"].tolist() == [FINISHED]
    assert trials.loc[0, "config/seed"] == 3


def test_unique_trials_prefers_the_finished_rerun(tmp_path):
    experiment_dir = tmp_path / "exp"
    config = eval_config("cifar10", "vanilla", 0)
    write_sweep(experiment_dir, "eval", [config], 1.0)
    write_trial(experiment_dir, 0, config, eval_reports(None, 1, finished=False), error="boom", trial_hex="aaaaa")
    write_trial(experiment_dir, 0, config, eval_reports(0.5, 1), trial_hex="bbbbb")
    trials = load_trials(read_experiment(experiment_dir))
    assert sorted(trials["status"]) == [FAILED, FINISHED]
    kept = unique_trials(trials, ["config/dataset", "config/model", "config/seed"])
    assert kept["status"].tolist() == [FINISHED]
    table = results_table(trials)
    assert table.loc[0, ["n_finished", "n_planned", "n_failed"]].tolist() == [1, 1, 0]


def test_history_has_one_row_per_epoch(results_root):
    history = load_history(read_experiment(results_root / "search_digits_demo"))
    epochs = history.groupby(["config/variant", "config/seed"])["epoch"].apply(list).to_dict()
    expected = {key: list(range(1, len(values) + 1)) for key, values in SEARCH_VAL_ACCURACIES.items()}
    expected[("directional_weight_sharing", 0)] = [1, 2]  # third line truncated
    assert epochs == expected
    assert len(history.loc[0, "alpha"]) == 36 and len(history.loc[0, "alpha"][0]) == len(PRIMITIVES)


# --- Table 1 -------------------------------------------------------------------------


def test_results_table_numbers(eval_trials):
    table = results_table(eval_trials).set_index(["dataset", "model"])
    assert list(table.index) == [
        ("cifar10", "vanilla"),
        ("cifar10", "gru"),
        ("svhn", "directional_weight_sharing"),
        ("digits", "lstm"),
    ]
    vanilla = table.loc[("cifar10", "vanilla")]
    assert vanilla["accuracy_mean"] == pytest.approx(91.0)
    assert vanilla["accuracy_std"] == pytest.approx(1.0)  # sample std of 90, 91, 92
    assert vanilla["accuracy_best"] == pytest.approx(92.0)
    assert vanilla[["n_finished", "n_planned", "n_failed", "n_unfinished", "n_missing"]].tolist() == [3, 5, 1, 0, 1]
    assert vanilla["params_m"] == pytest.approx(6.812)
    assert vanilla["paper_accuracy"] == pytest.approx(90.26)
    assert vanilla["paper_params_m"] == pytest.approx(6.8)
    assert vanilla["difference"] == pytest.approx(0.74)

    gru = table.loc[("cifar10", "gru")]
    assert gru["accuracy_mean"] == pytest.approx(75.0)
    assert math.isnan(gru["accuracy_std"])  # one finished seed
    assert gru[["n_finished", "n_planned", "n_unfinished"]].tolist() == [1, 2, 1]
    assert gru["difference"] == pytest.approx(-0.30)

    dws = table.loc[("svhn", "directional_weight_sharing")]
    assert dws["accuracy_mean"] == pytest.approx(96.5)
    assert dws["accuracy_std"] == pytest.approx(math.sqrt(0.5))
    assert dws["paper_accuracy"] == pytest.approx(96.91)
    assert dws["difference"] == pytest.approx(-0.41)

    lstm = table.loc[("digits", "lstm")]
    assert lstm["accuracy_mean"] == pytest.approx(50.0)
    assert math.isnan(lstm["paper_accuracy"]) and math.isnan(lstm["difference"])


def test_results_table_display(eval_trials):
    display = display_results_table(results_table(eval_trials))
    rows = display.to_dict(orient="records")
    assert rows[0] == {
        "Data set": "CIFAR-10",
        "Model": "Vanilla - DartsReNet",
        "Params [M]": "6.8",
        "Accuracy [%]": "91.00 ± 1.00",
        "Best [%]": "92.00",
        "Seeds": "3/5 (1 failed, 1 not started)",
        "Paper [%]": "90.26",
        "Δ [pp]": "+0.74",
    }
    assert rows[1]["Data set"] == ""  # the data set is printed on its first row only
    assert rows[1]["Model"] == "Baseline ReNet with GRU"
    assert rows[1]["Accuracy [%]"] == "75.00 (n=1)"
    assert rows[1]["Seeds"] == "1/2 (1 unfinished)"
    assert rows[1]["Δ [pp]"] == "-0.30"
    assert rows[2]["Accuracy [%]"] == "96.50 ± 0.71"
    assert rows[2]["Params [M]"] == "4.0"
    assert rows[3]["Paper [%]"] == "—" and rows[3]["Δ [pp]"] == "—"


def test_results_table_without_finished_trials():
    trials = pd.DataFrame(
        {"status": [FAILED, MISSING], "config/dataset": ["svhn"] * 2, "config/model": ["gru"] * 2, "config/seed": [0, 1]}
    )
    row = display_results_table(results_table(trials)).iloc[0]
    assert row["Accuracy [%]"] == "—" and row["Best [%]"] == "—" and row["Params [M]"] == "—"
    assert row["Seeds"] == "0/2 (1 failed, 1 not started)"
    assert row["Paper [%]"] == "95.16" and row["Δ [pp]"] == "—"


# --- search summary ------------------------------------------------------------------


def test_search_summary_selects_best_seed_ties_to_lower(search_trials):
    summary = search_summary(search_trials).set_index("variant")
    assert list(summary.index) == list(SEARCH_EXPECTED_SELECTION)
    for variant, (seed, accuracy) in SEARCH_EXPECTED_SELECTION.items():
        assert summary.loc[variant, "selected_seed"] == seed
        assert summary.loc[variant, "selected_val_accuracy"] == pytest.approx(accuracy)
        reports = search_reports(variant, seed, SEARCH_VAL_ACCURACIES[(variant, seed)])
        assert summary.loc[variant, "genotype"] == reports[-1]["best_genotype"]
        Genotype.from_string(summary.loc[variant, "genotype"])  # a valid genotype
    counts = summary[["n_finished", "n_planned", "n_failed", "n_unfinished", "n_missing"]]
    assert counts.loc["vanilla"].tolist() == [3, 3, 0, 0, 0]
    assert counts.loc["sigmoid_weighting"].tolist() == [1, 3, 1, 0, 1]
    assert counts.loc["directional_weight_sharing"].tolist() == [1, 3, 0, 1, 1]


def test_select_seed_ignores_unfinished_and_breaks_ties_by_seed(tmp_path):
    experiment = tmp_path / "search"
    write_sweep(experiment, "search", [], "2026-01-02T03:04:05+00:00")
    write_search_seed(experiment, 0, "vanilla", 7, [0.5, 0.6, 0.7, 0.9])  # finished
    write_search_seed(experiment, 1, "vanilla", 2, [0.5, 0.6, 0.7, 0.9])  # finished, tied: lower seed
    write_search_seed(experiment, 2, "vanilla", 0, [0.99])  # unfinished
    write_search_seed(experiment, 3, "vanilla", 1, [0.5, 0.95], error="CUDA out of memory")  # failed
    trials = load_trials(read_experiment(experiment))
    assert select_seed(trials)["config/seed"] == 2
    assert select_seed(trials[trials["config/seed"].isin([0, 1])]) is None


# --- output formats and the command line ---------------------------------------------


def test_markdown_form(results_root, capsys):
    assert make_table.main(["--results", str(results_root)]) == 0
    out = capsys.readouterr().out
    table1_part, _, baselines = out.partition("Searched cells against the baselines")
    table1 = [line for line in table1_part.splitlines() if line.startswith("| CIFAR-10")]
    assert len(table1) == 1
    # one GRU seed: a difference, but no interval from one value
    assert "| Baseline ReNet with GRU |" in baselines and "n too small for an interval" in baselines
    cells = [cell.strip() for cell in table1[0].strip("|").split("|")]
    assert cells == ["CIFAR-10", "Vanilla - DartsReNet", "6.8", "91.00 ± 1.00", "92.00",
                     "3/5 (1 failed, 1 not started)", "90.26", "+0.74"]
    assert "eval_paper" in out and "eval_old" not in out  # the latest evaluation experiment
    assert "search_digits_demo" in out
    lines = [line for line in out.splitlines() if line.startswith("| ")]
    assert len({line.count("|") for line in lines[:6]}) == 1  # well-formed rows


def test_markdown_escapes_pipes():
    text = to_markdown(pd.DataFrame({"a": ["x|y"], "b": ["1"]}))
    assert r"x\|y" in text


def test_latex_form(results_root, tmp_path):
    out = tmp_path / "table1.tex"
    assert make_table.main(["--results", str(results_root), "--format", "latex", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.count(r"\begin{tabular}") == 3 and text.count(r"\end{table}") == 3  # Table 1, baselines, search
    assert r"CIFAR-10 & Vanilla - DartsReNet & 6.8 & 91.00 $\pm$ 1.00 & 92.00 & 3/5 (1 failed, 1 not started) & 90.26 & +0.74 \\" in text
    assert r"digits & Baseline ReNet with LSTM & 6.0 & 50.00 (n=1) & 50.00 & 1/1 & --- & --- \\" in text
    assert r"Accuracy [\%]" in text and r"search\_digits\_demo" in text
    assert latex_escape("a_b & 50% ± Δ") == r"a\_b \& 50\% $\pm$ $\Delta$"


def test_csv_form_parses_back(results_root, tmp_path):
    out = tmp_path / "table1.csv"
    assert make_table.main(["--results", str(results_root), "--format", "csv", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert table[["dataset", "model"]].values.tolist() == [
        ["cifar10", "vanilla"], ["cifar10", "gru"], ["svhn", "directional_weight_sharing"], ["digits", "lstm"]
    ]
    vanilla = table.iloc[0]
    assert vanilla["accuracy_mean"] == pytest.approx(91.0)
    assert vanilla["accuracy_std"] == pytest.approx(1.0)
    assert vanilla["accuracy_best"] == pytest.approx(92.0)
    assert vanilla["n_finished"] == 3 and vanilla["n_planned"] == 5 and vanilla["n_failed"] == 1
    assert vanilla["paper_accuracy"] == pytest.approx(90.26)
    assert vanilla["difference"] == pytest.approx(0.74)
    assert math.isnan(table.iloc[1]["accuracy_std"]) and math.isnan(table.iloc[3]["paper_accuracy"])

    search = pd.read_csv(make_table.search_output_path(out))
    assert search.set_index("variant")["selected_seed"].to_dict() == {
        variant: seed for variant, (seed, _) in SEARCH_EXPECTED_SELECTION.items()
    }


def test_explicit_experiment_folders(results_root, capsys):
    argv = ["--eval", str(results_root / "eval_old"), "--search", str(results_root / "search_digits_demo"),
            "--format", "csv"]
    assert make_table.main(argv) == 0
    out = capsys.readouterr().out
    first = out.split("# search")[0].split("\n", 1)[1]
    table = pd.read_csv(io.StringIO(first))
    assert table["accuracy_mean"].tolist() == [pytest.approx(10.0)]
    assert make_table.main(["--eval", str(results_root / "search_digits_demo")]) == 2  # wrong kind


def test_no_experiments_exit_nonzero_with_help(tmp_path, capsys):
    assert make_table.main(["--results", str(tmp_path / "empty")]) == 1
    err = capsys.readouterr().err
    assert "make demo" in err and "sweeps/search_all_variants.py" in err


def test_script_runs_as_a_file(results_root, tmp_path):
    import subprocess

    script = Path(make_table.__file__)
    result = subprocess.run(
        [sys.executable, str(script), "--results", str(results_root), "--format", "csv"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "cifar10,vanilla" in result.stdout


# --- cell drawings -------------------------------------------------------------------

EDGE = re.compile(r'^\s*"?([\w]+)"?\s*->\s*"?([\w]+)"?')
NODE_LABEL = re.compile(r'^\s*"?(\d+)"?\s*\[label="(\d+)\\n(\w+)"')


def drawn_edges(source: str) -> Counter:
    return Counter(match.groups() for line in source.splitlines() if (match := EDGE.match(line)))


def expected_edges(genotype: Genotype) -> Counter:
    edges = [("x_t", "0"), ("h_prev", "0")]
    edges += [(str(predecessor), str(node)) for node, (_, predecessor) in enumerate(genotype.recurrent, start=1)]
    edges += [(str(node), "h_t") for node in genotype.concat]
    return Counter(edges)


@pytest.mark.parametrize("variant", sorted(PAPER_GENOTYPES))
def test_drawing_has_exactly_the_genotype_edges_and_labels(variant):
    genotype = PAPER_GENOTYPES[variant]
    graph = draw_cells.draw_genotype(genotype, title=variant)
    source = graph.source
    assert drawn_edges(source) == expected_edges(genotype)
    labels = {int(m[1]): (int(m[2]), m[3]) for line in source.splitlines() if (m := NODE_LABEL.match(line))}
    expected = {0: (0, "tanh")} | {node: (node, f) for node, (f, _) in enumerate(genotype.recurrent, start=1)}
    assert labels == expected
    assert "h_t" in source and "mean" in source and "x<sub>t</sub>" in source


def test_drawing_with_partial_concat():
    genotype = Genotype(recurrent=PAPER_GENOTYPES["vanilla"].recurrent, concat=(2, 5, 8))
    assert drawn_edges(draw_cells.draw_genotype(genotype).source) == expected_edges(genotype)


def test_load_genotypes_from_selection_and_files(results_root, tmp_path):
    selection = results_root / "search_digits_demo" / "selected_genotypes.json"
    named = draw_cells.load_genotypes(str(selection))
    assert [item.name for item in named] == list(SEARCH_EXPECTED_SELECTION)
    assert "seed 1" in named[0].title
    assert [item.name for item in draw_cells.load_genotypes(str(selection.parent))] == list(SEARCH_EXPECTED_SELECTION)
    single = tmp_path / "my_cell.json"
    PAPER_GENOTYPES["sigmoid_weighting"].save(single)
    (loaded,) = draw_cells.load_genotypes(str(single))
    assert loaded.genotype == PAPER_GENOTYPES["sigmoid_weighting"] and loaded.name == "my_cell"
    assert len(draw_cells.load_genotypes("paper")) == 3
    (from_string,) = draw_cells.load_genotypes(PAPER_GENOTYPES["vanilla"].to_string())
    assert from_string.genotype == PAPER_GENOTYPES["vanilla"]


@pytest.mark.parametrize("fmt", ["png", "svg"])
def test_render_paper_cells(tmp_path, fmt, capsys, dot_binary):
    assert draw_cells.main(["--genotypes", "paper", "--out", str(tmp_path), "--format", fmt]) == 0
    files = sorted(tmp_path.iterdir())
    assert [path.name for path in files] == sorted(f"paper_{variant}.{fmt}" for variant in PAPER_GENOTYPES)
    for path in files:
        data = path.read_bytes()
        if fmt == "png":
            assert data.startswith(PNG_MAGIC) and len(data) > 5_000
        else:
            assert b"<svg" in data[:2000] and b"sigmoid" in data


def test_render_default_is_latest_search_selection(results_root, tmp_path, dot_binary):
    out = tmp_path / "cells"
    assert draw_cells.main(["--results", str(results_root), "--out", str(out), "--format", "svg"]) == 0
    assert sorted(path.stem for path in out.iterdir()) == sorted(SEARCH_EXPECTED_SELECTION)


def test_draw_cells_without_dot_on_path(tmp_path, monkeypatch, capsys):
    (tmp_path / "no-dot").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "no-dot"))
    out = tmp_path / "cells"
    assert draw_cells.main(["--genotypes", "vanilla", "--out", str(out)]) == draw_cells.EXIT_SOURCES_ONLY
    assert [path.name for path in out.iterdir()] == ["vanilla.dot"]
    (line,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert f"`dot -Tpng {out}/vanilla.dot -o {out}/vanilla.png`" in line
    assert f"`python analysis/draw_cells.py --genotypes vanilla --out {out}` again" in line



def test_draw_bad_genotype_spec_exits_nonzero(tmp_path, capsys):
    assert draw_cells.main(["--genotypes", "not-a-genotype", "--out", str(tmp_path)]) == 2
    assert "error" in capsys.readouterr().err


# --- plots ---------------------------------------------------------------------------


def test_plot_alpha_draws_the_chosen_edges(results_root):
    history = load_history(read_experiment(results_root / "search_digits_demo"))
    trial = history.loc[(history["config/variant"] == "vanilla") & (history["config/seed"] == 1), "trial"].iloc[0]
    alpha, epochs = plot_search.trial_alpha(history, trial)
    assert epochs == [1, 2, 3, 4]
    genotype = PAPER_GENOTYPES["vanilla"]
    figure = plot_search.plot_alpha(alpha, genotype, title="vanilla", epochs=epochs, selected_epoch=3)
    assert isinstance(figure, Figure)
    curves = figure.axes[0]
    node_lines = [line for line in curves.get_lines() if line.get_label().startswith("node ")]
    assert len(node_lines) == 8
    for node, line in enumerate(node_lines, start=1):
        activation, predecessor = genotype.recurrent[node - 1]
        expected = [a[edge_index(node, predecessor)][PRIMITIVES.index(activation)] for a in alpha]
        assert list(line.get_ydata()) == pytest.approx(expected)
        assert line.get_label() == f"node {node}: {activation} ← {predecessor}"
    assert "epoch 3" in figure.axes[1].get_title()


def test_chosen_genotype_from_probabilities_matches_derivation():
    from tests.fixtures_results import search_alpha_logits, softmax
    from dartsrenet.genotypes import derive_genotype

    logits = search_alpha_logits("directional_weight_sharing", 0, 2)
    assert plot_search.chosen_genotype(softmax(logits)) == derive_genotype(logits)


def test_plot_alpha_rejects_wrong_shape():
    with pytest.raises(ValueError, match="36"):
        plot_search.plot_alpha([[[0.2] * 5] * 3])


def test_learning_curves_one_line_per_trial(results_root):
    history = load_history(read_experiment(results_root / "search_digits_demo"))
    figure = plot_search.plot_learning_curves(history)
    trials = history["trial"].nunique()
    for axis in figure.axes[:2]:
        data_lines = [line for line in axis.get_lines() if len(line.get_xdata()) and line.get_linestyle() != "None"]
        assert len(data_lines) == trials


def test_plot_cli_writes_png_files(results_root, tmp_path):
    out = tmp_path / "figures"
    assert plot_search.main(["--results", str(results_root), "--out", str(out)]) == 0
    names = sorted(path.name for path in out.iterdir())
    assert names == sorted(["learning_curves.png", *(f"alpha_{variant}.png" for variant in SEARCH_EXPECTED_SELECTION)])
    for path in out.iterdir():
        data = path.read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000


def test_plot_cli_without_search_exits_nonzero(tmp_path, capsys):
    assert plot_search.main(["--results", str(tmp_path)]) == 1
    assert "make demo" in capsys.readouterr().err


def test_selected_genotypes_json_agrees_with_search_summary(results_root, search_trials):
    selection = json.loads((results_root / "search_digits_demo" / "selected_genotypes.json").read_text())
    summary = search_summary(search_trials).set_index("variant")
    for variant, entry in selection["variants"].items():
        assert entry["selected"]["seed"] == summary.loc[variant, "selected_seed"]
        assert entry["selected"]["genotype_string"] == summary.loc[variant, "genotype"]


# --- the evaluation of a search; experiments at storage URIs ---------------------------


def test_search_alone_shows_the_evaluation_made_from_it(tmp_path, capsys):
    """``--search DIR`` without ``--eval``: Table 1 is the evaluation whose sweep.json names
    that search, not the newest evaluation under the results root."""
    root = tmp_path / "results"
    search = make_search_experiment(root)
    own = [{"dataset": "digits", "model": "vanilla", "seed": 0, "test": 0.42, "params": 1, "status": "finished"}]
    newer = [{"dataset": "digits", "model": "vanilla", "seed": 0, "test": 0.99, "params": 1, "status": "finished"}]
    evaluation = make_eval_experiment(root, name="eval_from_search", created=1767330000.0, trials=own)
    marker = json.loads((evaluation / "sweep.json").read_text())
    marker["search_experiment"] = str(search)  # as evaluate_genotypes.py records it
    (evaluation / "sweep.json").write_text(json.dumps(marker))
    make_eval_experiment(root, name="eval_unrelated_newer", created=1767339999.0, trials=newer)

    assert make_table.main(["--search", str(search), "--results", str(root), "--format", "csv"]) == 0
    table = pd.read_csv(io.StringIO(capsys.readouterr().out.split("# search")[0].split("\n", 1)[1]))
    assert table["accuracy_mean"].tolist() == [pytest.approx(42.0)]

    (evaluation / "sweep.json").write_text(json.dumps({**marker, "search_experiment": str(tmp_path / "other")}))
    assert make_table.main(["--search", str(search), "--results", str(root)]) == 0
    captured = capsys.readouterr()
    assert "Table 1" not in captured.out and "Cell search" in captured.out
    assert f"note: no evaluation experiment made from {search}" in captured.err


def test_tables_from_a_storage_uri_equal_those_from_the_folder(results_root, capsys):
    assert make_table.main(["--results", str(results_root), "--format", "csv"]) == 0
    local = capsys.readouterr().out
    assert make_table.main(["--results", results_root.as_uri(), "--format", "csv"]) == 0
    assert capsys.readouterr().out == local
    search_uri = (results_root / "search_digits_demo").as_uri()
    assert make_table.main(["--search", search_uri, "--eval", (results_root / "eval_paper").as_uri()]) == 0
    assert "Sigmoid Weighting" in capsys.readouterr().out


def test_trials_read_from_a_uri_equal_the_local_ones(results_root, search_trials):
    remote = load_trials(read_experiment((results_root / "search_digits_demo").as_uri()))
    local_names = search_trials.drop(columns=["trial_dir", "mtime"])
    pd.testing.assert_frame_equal(remote.drop(columns=["trial_dir", "mtime"]), local_names)
    assert all(str(path).startswith("file://") for path in remote["trial_dir"].dropna())


def test_plots_and_drawings_from_a_uri(results_root, tmp_path, dot_binary):
    out = tmp_path / "figures"
    assert plot_search.main(["--results", results_root.as_uri(), "--out", str(out)]) == 0
    assert sorted(path.name for path in out.iterdir()) == sorted(
        ["learning_curves.png", *(f"alpha_{variant}.png" for variant in SEARCH_EXPECTED_SELECTION)]
    )
    selection_uri = (results_root / "search_digits_demo").as_uri()
    assert [item.name for item in draw_cells.load_genotypes(selection_uri)] == list(SEARCH_EXPECTED_SELECTION)
    cells = tmp_path / "cells"
    assert draw_cells.main(["--results", results_root.as_uri(), "--out", str(cells), "--format", "svg"]) == 0
    assert sorted(path.stem for path in cells.iterdir()) == sorted(SEARCH_EXPECTED_SELECTION)


def test_a_uri_that_is_not_an_experiment_is_one_line(capsys):
    assert make_table.main(["--search", "file:///nonexistent/search"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: file:///nonexistent/search is not an experiment folder: no readable sweep.json " \
                  "(sweeps write it; see docs/design.md)"


def test_a_trial_the_scheduler_stopped_is_stopped_early(tmp_path):
    """sweep.json's stopped_early list (written by the sweep when its scheduler stops a
    trial) makes that trial "stopped early", counted apart from unfinished ones."""
    experiment_dir = make_eval_experiment(tmp_path)
    trials = load_trials(read_experiment(experiment_dir))
    (unfinished,) = trials.loc[trials["status"] == UNFINISHED, "trial"]
    marker = json.loads((experiment_dir / "sweep.json").read_text())
    (experiment_dir / "sweep.json").write_text(json.dumps({**marker, "stopped_early": [unfinished]}))
    trials = load_trials(read_experiment(experiment_dir))
    assert trials.loc[trials["trial"] == unfinished, "status"].tolist() == [STOPPED_EARLY]
    assert UNFINISHED not in set(trials["status"])
    table = results_table(trials).set_index(["dataset", "model"])
    assert table.loc[("cifar10", "gru"), ["n_unfinished", "n_stopped_early"]].tolist() == [0, 1]
    display = display_results_table(results_table(trials))
    assert display.loc[display["Model"] == "Baseline ReNet with GRU", "Seeds"].tolist() == ["1/2 (1 stopped early)"]

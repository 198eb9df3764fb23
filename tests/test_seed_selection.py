"""One seed selection (paper §3.3; docs/design.md, "Sweeps — experiment layout"): the
search sweep's ``selected_genotypes.json`` and the analysis's search summary select with
the same function on the same run folders, so they cannot disagree."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[sweeps]')")

from analysis.results import load_trials, read_experiment
from analysis.tables import search_summary, select_seed
from dartsrenet import results
from sweeps import search_all_variants
from tests.fixtures_results import SEARCH_DATASET, search_config, write_search_seed, write_sweep

EXPECTED = {"vanilla": 1, "sigmoid_weighting": 1, "directional_weight_sharing": None}
"""The seed each variant selects in :func:`several_seeds_experiment`."""


def several_seeds_experiment(root: Path) -> tuple[Path, list[dict]]:
    """Five seeds of vanilla (a tie, a NaN and an out-of-range accuracy, a failed seed
    that scored best, a missing one), three of sigmoid weighting (one with a genotype
    that does not parse) and one unfinished seed of directional weight sharing."""
    experiment = root / "search"
    planned = [search_config("vanilla", seed) for seed in range(6)]
    planned += [search_config("sigmoid_weighting", seed) for seed in range(3)]
    planned += [search_config("directional_weight_sharing", 0)]
    write_sweep(experiment, "search", planned, "2026-01-02T03:04:05+00:00", dataset=SEARCH_DATASET, preset="demo")
    seeds = [
        ("vanilla", 3, [0.5, 0.6, 0.8, 0.9], {}, None),  # tied with seed 1: the lower seed wins
        ("vanilla", 1, [0.5, 0.9, 0.7, 0.7], {}, None),
        ("vanilla", 0, [0.5, 0.6, 0.7, 0.8], {"best_val_accuracy": float("nan")}, None),
        ("vanilla", 2, [0.5, 0.6, 0.7, 0.8], {"best_val_accuracy": 97.5}, None),
        ("vanilla", 4, [0.95, 0.99], {}, "loss is NaN"),  # best so far, but it failed
        ("sigmoid_weighting", 0, [0.5, 0.6, 0.7, 0.8], {}, None),
        ("sigmoid_weighting", 1, [0.5, 0.6, 0.7, 0.85], {}, None),
        ("sigmoid_weighting", 2, [0.9, 0.9, 0.9, 0.99], {"genotype_string": "tanh:0,bogus:1"}, None),
        ("directional_weight_sharing", 0, [0.5, 0.6], {}, None),
    ]
    for index, (variant, seed, accuracies, summary, error) in enumerate(seeds):
        write_search_seed(experiment, index, variant, seed, accuracies, summary=summary, error=error)
    return experiment, planned


def test_sweep_and_analysis_select_the_same_seeds(tmp_path):
    experiment, planned = several_seeds_experiment(tmp_path)
    lines: list[str] = []
    document = results.selection_document(
        SEARCH_DATASET, str(experiment),
        results.seeds_from_run_folders(results.trial_folders(experiment), planned), log=lines.append,
    )
    swept = search_all_variants.selection_document(str(experiment), planned, SEARCH_DATASET)
    by_sweep = {variant: entry["selected"] and entry["selected"]["seed"] for variant, entry in swept["variants"].items()}
    assert by_sweep == EXPECTED
    assert {variant: entry["selected"] and entry["selected"]["seed"]
            for variant, entry in document["variants"].items()} == EXPECTED

    summary = search_summary(load_trials(read_experiment(experiment))).set_index("variant")
    by_analysis = {variant: None if pd.isna(seed) else int(seed) for variant, seed in summary["selected_seed"].items()}
    assert by_analysis == by_sweep
    assert summary.loc["vanilla", "selected_val_accuracy"] == pytest.approx(90.0)
    assert summary.loc["vanilla", "genotype"] == swept["variants"]["vanilla"]["selected"]["genotype_string"]

    vanilla = {seed["seed"]: seed for seed in swept["variants"]["vanilla"]["seeds"]}
    assert [seed for seed, entry in vanilla.items() if entry["note"] is None] == [1, 3]
    assert "best_val_accuracy is NaN, not a fraction in [0, 1]" in vanilla[0]["note"]
    assert "best_val_accuracy is 97.5, not a fraction in [0, 1]" in vanilla[2]["note"]
    assert vanilla[4]["note"] == "did not finish (failed: RuntimeError: loss is NaN)"
    assert vanilla[5]["status"] == results.MISSING
    sigmoid = {seed["seed"]: seed for seed in swept["variants"]["sigmoid_weighting"]["seeds"]}
    assert "genotype_string 'tanh:0,bogus:1' is not a genotype" in sigmoid[2]["note"]
    assert any(line.startswith("note: vanilla seed 0 not selectable") for line in lines)


def test_analysis_selects_a_row_of_its_trials(tmp_path):
    experiment, _ = several_seeds_experiment(tmp_path)
    trials = load_trials(read_experiment(experiment))
    vanilla = trials[trials["config/variant"] == "vanilla"]
    assert select_seed(vanilla)["config/seed"] == 1
    assert select_seed(vanilla[vanilla["config/seed"].isin([0, 2, 4, 5])]) is None

"""Comparison tables with intervals and p-values (analysis/significance.py): searched cells
against the GRU/LSTM baselines, search strategies against each other, and how well a
weight-sharing supernet ranks the random control's genotypes (Kendall τ).

Inputs are trial DataFrames (:func:`analysis.results.load_trials`); accuracies are test
accuracies in %, finished trials only, one value per seed (a repeated trial counts once,
:func:`analysis.results.unique_trials`). Evaluations of different cells share their seeds
(0 … n−1), so two cells are compared paired by seed (:func:`analysis.significance.compare_by_seed`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import pandas as pd

from analysis.control import genotype_accuracies
from analysis.results import FINISHED, config_column, unique_trials
from analysis.significance import Comparison, compare_by_seed, format_comparison, kendall_tau
from analysis.tables import DATASET_ORDER, MISSING_VALUE, dataset_label, model_label, numeric_column, ordered_values

BASELINES = ("gru", "lstm")

COMPARISON_COLUMNS: tuple[str, ...] = (
    "dataset", "a", "b", "n_a", "n_b", "paired", "mean_a", "mean_b", "difference", "low", "high", "p_value", "p_exact",
    "distinguishable",
)
"""Columns of :func:`baseline_comparisons` and :func:`strategy_comparisons` (accuracies in %)."""

COMPARISON_DISPLAY_COLUMNS = ("Data set", "A", "B", "A [%]", "B [%]", "A − B [pp], 95 % CI, p")
COMPARISON_DISPLAY_ALIGN = "lllrrl"
COMPARISON_NOTE = (
    "A − B: difference of the mean test accuracies, paired by training seed where both have at least two "
    "seeds in common (n = pairs), else unpaired; 95 % bootstrap interval (10,000 resamples, seed 0) and "
    "two-sided permutation p-value (exact when all rearrangements fit in 20,000); not distinguishable where "
    "the interval contains 0 or p ≥ 0.05 (3 paired seeds cannot give p below 0.25; analysis/significance.py)."
)

KENDALL_COLUMNS: tuple[str, ...] = ("strategy", "variant", "k", "kendall_tau", "p_value")
KENDALL_NOTE = (
    "Kendall τ-b between the trained supernet's validation accuracy of each random-control genotype (its "
    "path, shared weights) and the genotype's stand-alone test accuracy in the random control; 1 = the "
    "supernet ranks them exactly as training them does, 0 = no relation."
)


def seed_accuracies(trials: pd.DataFrame, dataset: str, model: str) -> dict[int, float]:
    """Test accuracy in % per seed of ``model``'s finished trials on ``dataset``."""
    dataset_col, model_col, seed_col = config_column("dataset"), config_column("model"), config_column("seed")
    rows = trials[(trials[dataset_col] == dataset) & (trials[model_col] == model) & (trials["status"] == FINISHED)]
    accuracy = numeric_column(rows, "test_accuracy") * 100.0
    return {int(seed): float(value) for seed, value in zip(rows[seed_col], accuracy, strict=True) if not math.isnan(value)}


def _row(dataset: str, a: str, b: str, first: dict[int, float], second: dict[int, float]) -> dict:
    comparison = compare_by_seed(first, second) if first and second else None
    return {
        "dataset": dataset, "a": a, "b": b,
        "n_a": comparison.n_a if comparison else len(first), "n_b": comparison.n_b if comparison else len(second),
        "paired": bool(comparison and comparison.paired),
        "mean_a": sum(first.values()) / len(first) if first else math.nan,
        "mean_b": sum(second.values()) / len(second) if second else math.nan,
        "difference": comparison.difference if comparison else math.nan,
        "low": comparison.low if comparison else math.nan, "high": comparison.high if comparison else math.nan,
        "p_value": comparison.p_value if comparison else math.nan, "p_exact": bool(comparison and comparison.exact),
        "distinguishable": bool(comparison and comparison.distinguishable),
    }


def _unique(trials: pd.DataFrame) -> pd.DataFrame:
    return unique_trials(trials, [config_column("dataset"), config_column("model"), config_column("seed")])


def baseline_comparisons(eval_trials: pd.DataFrame) -> pd.DataFrame:
    """Every searched cell of an evaluation against each GRU/LSTM baseline it holds, per dataset."""
    model_col, dataset_col = config_column("model"), config_column("dataset")
    if eval_trials.empty or model_col not in eval_trials:
        return pd.DataFrame(columns=list(COMPARISON_COLUMNS))
    trials = _unique(eval_trials)
    rows = []
    for dataset in ordered_values(trials[dataset_col], DATASET_ORDER):
        models = sorted(set(trials.loc[trials[dataset_col] == dataset, model_col]))
        for model in (m for m in models if m not in BASELINES):
            for baseline in (b for b in BASELINES if b in models):
                rows.append(_row(dataset, model, baseline, seed_accuracies(trials, dataset, model),
                                 seed_accuracies(trials, dataset, baseline)))
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def strategy_comparisons(evaluations: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Every pair of strategies (in the order given) on each dataset and searched cell (variant)
    both evaluated; A and B are named ``strategy/variant``."""
    model_col, dataset_col = config_column("model"), config_column("dataset")
    trials = {name: _unique(frame) for name, frame in evaluations.items() if not frame.empty and model_col in frame}
    rows = []
    for first, second in itertools.combinations(trials, 2):
        a, b = trials[first], trials[second]
        datasets = ordered_values(set(a[dataset_col]) & set(b[dataset_col]), DATASET_ORDER)
        for dataset in datasets:
            shared = sorted((set(a.loc[a[dataset_col] == dataset, model_col]) & set(b.loc[b[dataset_col] == dataset, model_col]))
                            - set(BASELINES))
            for model in shared:
                rows.append(_row(dataset, f"{first}/{model}", f"{second}/{model}", seed_accuracies(a, dataset, model),
                                 seed_accuracies(b, dataset, model)))
    return pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))


def display_comparisons(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`baseline_comparisons` / :func:`strategy_comparisons` as strings."""
    rows = []
    for record in table.to_dict(orient="records"):
        comparison = Comparison(record["difference"], record["low"], record["high"], record["p_value"],
                                bool(record["p_exact"]), bool(record["paired"]), record["n_a"], record["n_b"])
        pairing = f"paired, n={record['n_a']}" if record["paired"] else f"n={record['n_a']} vs {record['n_b']}"
        rows.append({
            "Data set": dataset_label(record["dataset"]),
            "A": _label(record["a"]), "B": _label(record["b"]),
            "A [%]": MISSING_VALUE if math.isnan(record["mean_a"]) else f"{record['mean_a']:.2f}",
            "B [%]": MISSING_VALUE if math.isnan(record["mean_b"]) else f"{record['mean_b']:.2f}",
            "A − B [pp], 95 % CI, p": f"{format_comparison(comparison)} ({pairing})",
        })
    return pd.DataFrame(rows, columns=list(COMPARISON_DISPLAY_COLUMNS))


def _label(name: str) -> str:
    strategy, _, model = name.rpartition("/")
    return f"{strategy}: {model_label(model)}" if strategy else model_label(name)


def kendall_table(
    supernet_scores: Mapping[str, Sequence[Mapping[str, object]]], random_trials: pd.DataFrame, variant: str,
    dataset: str,
) -> pd.DataFrame:
    """Kendall τ per strategy between its supernet's scores of the random control's genotypes
    (``[{"model": "vanilla_random03", "accuracy": 0.41}, …]``, as ``sweeps/study.py`` writes
    them) and their stand-alone test accuracy (the ``random`` experiment, ``variant``, ``dataset``)."""
    rows = []
    variant_col, dataset_col = config_column("variant"), config_column("dataset")
    group = random_trials[(random_trials[variant_col] == variant) & (random_trials[dataset_col] == dataset)] \
        if not random_trials.empty and variant_col in random_trials else random_trials
    standalone = genotype_accuracies(group) if not group.empty else pd.Series(dtype=float)
    for strategy, scores in supernet_scores.items():
        pairs = [(float(entry["accuracy"]), float(standalone[entry["model"]]))
                 for entry in scores if entry["model"] in standalone.index]
        tau, p_value = kendall_tau([s for s, _ in pairs], [t for _, t in pairs]) if pairs else (math.nan, math.nan)
        rows.append({"strategy": strategy, "variant": variant, "k": len(pairs), "kendall_tau": tau, "p_value": p_value})
    return pd.DataFrame(rows, columns=list(KENDALL_COLUMNS))

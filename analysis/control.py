"""The random-genotype control against the searched cells (docs/architecture.md §8).

Built from trial DataFrames (:func:`analysis.results.load_trials`) of three experiments:
the ``random`` experiment of ``sweeps/random_baseline.py``, the ``train`` experiment of
the DARTS-selected cells (Table 1) and, for the compute each arm used, the ``search``
experiment those cells came from.

Conventions (also stated under the printed table by :data:`CONTROL_NOTE`):

* a random genotype's accuracy is its test accuracy in %, the mean over its finished
  training seeds; genotypes with no finished seed are counted, not averaged;
* the DARTS cell's accuracy is the mean over its finished evaluation seeds;
* its percentile is the share of random genotypes it beats, ties counting one half
  (100 = better than every random cell); its rank is among the random genotypes and
  itself (1 = best);
* compute is device-hours: each trial's wall time (``wall_time_s`` of ``summary.json``,
  else the sum of its epochs' ``epoch_time_s``) times the GPUs it held, or its CPUs when it
  held none, as the experiment's ``sweep.json`` recorded them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from analysis.results import FINISHED, config_column, unique_trials
from analysis.significance import Comparison, compare, format_comparison
from analysis.tables import (
    DATASET_ORDER,
    MISSING_VALUE,
    VARIANT_LABELS,
    numeric_column,
    ordered_values,
    dataset_label,
    format_accuracy,
    format_number,
    variant_label,
)

CONTROL_COLUMNS: tuple[str, ...] = (
    "dataset",
    "variant",
    "n_random",
    "n_random_planned",
    "random_mean",
    "random_std",
    "random_best",
    "random_worst",
    "darts_accuracy",
    "darts_std",
    "darts_seeds",
    "darts_rank",
    "darts_percentile",
    "vs_random_difference",
    "vs_random_low",
    "vs_random_high",
    "vs_random_p",
    "vs_random_p_exact",
    "search_hours",
    "darts_eval_hours",
    "random_hours",
    "compute_unit",
)
"""Columns of :func:`control_table` (accuracies in %, compute in device-hours)."""

CONTROL_DISPLAY_COLUMNS: tuple[str, ...] = (
    "Data set", "Variant", "Random [%]", "Best of K [%]", "DARTS cell [%]", "Rank", "Percentile",
    "DARTS − random [pp]", "Compute",
)
CONTROL_DISPLAY_ALIGN = "llrrrrrll"
"""Columns of :func:`display_control_table` and their alignment (l/r)."""

CONTROL_NOTE = (
    "Random: test accuracy in % of K random genotypes (each the mean over its finished training seeds), "
    "mean ± sample std over genotypes, with finished/planned genotypes; Best of K: the best of them. "
    "DARTS cell: the searched cell of Table 1, mean ± std over its finished seeds. Rank: among the K random "
    "genotypes and the DARTS cell (1 = best); Percentile: the share of random genotypes it beats, ties "
    "counting half. DARTS − random: difference of the mean accuracies (DARTS cell's seeds vs the K random "
    "genotypes, unpaired) with its 95 % bootstrap interval (10,000 resamples, seed 0) and two-sided "
    "permutation p-value (exact when all rearrangements fit in 20,000); not distinguishable where the "
    "interval contains 0 or p ≥ 0.05 (analysis/significance.py). Compute: device-hours (trial wall time × GPUs held, or CPUs when none) of the search "
    "and the DARTS cell's evaluation against the K random evaluations."
)


def trial_hours(trials: pd.DataFrame) -> pd.Series:
    """Wall-clock hours of each trial: ``wall_time_s`` of a finished run's summary; for a
    trial without one (unfinished, failed), its last epoch's ``epoch_time_s`` times the
    epochs it reported — an estimate; 0 for a trial that never ran."""
    wall = numeric_column(trials, "wall_time_s")
    per_epoch = numeric_column(trials, "epoch_time_s") * numeric_column(trials, "reports")
    return wall.fillna(per_epoch).fillna(0.0) / 3600.0


def device_factor(resources: Mapping[str, Any] | None) -> tuple[float, str]:
    """``(devices per trial, unit)`` from a ``sweep.json`` ``resources`` record:
    ``(gpus, "GPU-h")`` when trials held GPUs, else ``(cpus, "CPU-h")``."""
    resources = resources or {}
    gpus = float(resources.get("gpu") or 0.0)
    if gpus > 0:
        return gpus, "GPU-h"
    return float(resources.get("cpu") or 1.0), "CPU-h"


def _hours(trials: pd.DataFrame | None, resources: Mapping[str, Any] | None) -> tuple[float, str]:
    factor, unit = device_factor(resources)
    if trials is None or trials.empty:
        return math.nan, unit
    return float(trial_hours(trials).sum()) * factor, unit


def genotype_accuracies(trials: pd.DataFrame) -> pd.Series:
    """Test accuracy in % per random genotype (model), the mean over finished seeds."""
    finished = trials[trials["status"] == FINISHED]
    accuracy = numeric_column(finished, "test_accuracy") * 100.0
    return accuracy.groupby(finished[config_column("model")]).mean().dropna()


def rank_and_percentile(value: float, others: pd.Series) -> tuple[float, float]:
    """``value``'s rank among ``others`` and itself (1 = best; ties share the better
    rank) and the percentage of ``others`` it beats (ties count half)."""
    if math.isnan(value) or others.empty:
        return math.nan, math.nan
    better = float((others > value).sum())
    beaten = float((others < value).sum()) + 0.5 * float((others == value).sum())
    return better + 1.0, 100.0 * beaten / len(others)


def control_table(
    random_trials: pd.DataFrame,
    eval_trials: pd.DataFrame | None = None,
    search_trials: pd.DataFrame | None = None,
    resources: Mapping[str, Mapping[str, Any] | None] | None = None,
    variants: Sequence[str] | None = None,
) -> pd.DataFrame:
    """The random-genotype control: one row per dataset × variant of the ``random`` experiment.

    Args:
        random_trials: :func:`analysis.results.load_trials` of a ``random`` experiment.
        eval_trials: the same of the ``train`` experiment of the DARTS-selected cells
            (their ``model`` is the variant's name); ``None`` leaves the DARTS columns NaN.
        search_trials: the same of the search those cells came from (compute only).
        resources: the ``resources`` record of each experiment's ``sweep.json`` under
            ``"random"``, ``"eval"`` and ``"search"``.
        variants: only these variants (e.g. those an evaluation has a DARTS cell of);
            ``None``: every variant of the random experiment.

    Returns:
        A DataFrame with :data:`CONTROL_COLUMNS`.
    """
    dataset_col, model_col, variant_col = config_column("dataset"), config_column("model"), config_column("variant")
    if random_trials.empty or variant_col not in random_trials:
        return pd.DataFrame(columns=list(CONTROL_COLUMNS))
    resources = resources or {}
    random_trials = unique_trials(random_trials, [dataset_col, model_col, config_column("seed")])
    if eval_trials is not None and not eval_trials.empty and model_col in eval_trials:
        eval_trials = unique_trials(eval_trials, [dataset_col, model_col, config_column("seed")])
    else:
        eval_trials = None
    rows = []
    for dataset in ordered_values(random_trials[dataset_col], DATASET_ORDER):
        in_dataset = random_trials[random_trials[dataset_col] == dataset]
        for variant in ordered_values(in_dataset[variant_col], VARIANT_LABELS):
            if variants is not None and variant not in variants:
                continue
            group = in_dataset[in_dataset[variant_col] == variant]
            accuracies = genotype_accuracies(group)
            darts = None
            if eval_trials is not None:
                darts = eval_trials[(eval_trials[dataset_col] == dataset) & (eval_trials[model_col] == variant)]
            darts_accuracies = (
                pd.Series(dtype=float) if darts is None
                else (numeric_column(darts[darts["status"] == FINISHED], "test_accuracy") * 100.0).dropna()
            )
            darts_mean = float(darts_accuracies.mean()) if len(darts_accuracies) else math.nan
            rank, percentile = rank_and_percentile(darts_mean, accuracies)
            versus = compare(darts_accuracies.tolist(), accuracies.tolist()) if len(darts_accuracies) and len(
                accuracies) else None
            search = None
            if search_trials is not None and not search_trials.empty and variant_col in search_trials:
                search = search_trials[search_trials[variant_col] == variant]
            search_hours, search_unit = _hours(search, resources.get("search"))
            eval_hours, eval_unit = _hours(darts, resources.get("eval"))
            random_hours, random_unit = _hours(group, resources.get("random"))
            units = {unit for unit, hours in ((search_unit, search_hours), (eval_unit, eval_hours),
                                              (random_unit, random_hours)) if not math.isnan(hours)}
            rows.append(
                {
                    "dataset": dataset,
                    "variant": variant,
                    "n_random": int(len(accuracies)),
                    "n_random_planned": int(group[model_col].nunique()),
                    "random_mean": float(accuracies.mean()) if len(accuracies) else math.nan,
                    "random_std": float(accuracies.std(ddof=1)) if len(accuracies) > 1 else math.nan,
                    "random_best": float(accuracies.max()) if len(accuracies) else math.nan,
                    "random_worst": float(accuracies.min()) if len(accuracies) else math.nan,
                    "darts_accuracy": darts_mean,
                    "darts_std": float(darts_accuracies.std(ddof=1)) if len(darts_accuracies) > 1 else math.nan,
                    "darts_seeds": int(len(darts_accuracies)),
                    "darts_rank": rank,
                    "darts_percentile": percentile,
                    "vs_random_difference": versus.difference if versus else math.nan,
                    "vs_random_low": versus.low if versus else math.nan,
                    "vs_random_high": versus.high if versus else math.nan,
                    "vs_random_p": versus.p_value if versus else math.nan,
                    "vs_random_p_exact": versus.exact if versus else False,
                    "search_hours": search_hours,
                    "darts_eval_hours": eval_hours,
                    "random_hours": random_hours,
                    "compute_unit": " + ".join(sorted(units)) if units else random_unit,
                }
            )
    return pd.DataFrame(rows, columns=list(CONTROL_COLUMNS))


def format_hours(hours: float) -> str:
    """Device-hours with two significant decimals (``0.012``, ``1.35``, ``24.0``)."""
    if math.isnan(hours):
        return MISSING_VALUE
    return f"{hours:.3f}" if hours < 0.1 else f"{hours:.2f}" if hours < 10 else f"{hours:.1f}"


def display_control_table(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`control_table` as strings: Data set, Variant, Random [%], Best of K [%],
    DARTS cell [%], Rank, Percentile, Compute."""
    rows = []
    for record in table.to_dict(orient="records"):
        n_random, planned = record["n_random"], record["n_random_planned"]
        rank = record["darts_rank"]
        rows.append(
            {
                "Data set": dataset_label(record["dataset"]),
                "Variant": variant_label(record["variant"]),
                "Random [%]": f"{format_accuracy(record['random_mean'], record['random_std'], n_random)} "
                f"(K={n_random}/{planned})",
                "Best of K [%]": format_number(record["random_best"], 2),
                "DARTS cell [%]": format_accuracy(record["darts_accuracy"], record["darts_std"], record["darts_seeds"]),
                "Rank": MISSING_VALUE if math.isnan(rank) else f"{int(rank)} of {n_random + 1}",
                "Percentile": format_number(record["darts_percentile"], 0),
                "DARTS − random [pp]": format_comparison(Comparison(
                    record["vs_random_difference"], record["vs_random_low"], record["vs_random_high"],
                    record["vs_random_p"], bool(record["vs_random_p_exact"]), False, record["darts_seeds"], n_random,
                )),
                "Compute": f"search {format_hours(record['search_hours'])} + eval "
                f"{format_hours(record['darts_eval_hours'])} vs random {format_hours(record['random_hours'])} "
                f"{record['compute_unit']}",
            }
        )
    return pd.DataFrame(rows, columns=list(CONTROL_DISPLAY_COLUMNS))

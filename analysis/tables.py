"""The paper's Table 1 and the cell-search summary, built from trial DataFrames (paper §4).

Two kinds of output per table:

* a *numeric* table (:func:`results_table`, :func:`search_summary`): one row per
  dataset × model (or dataset × variant), plain numbers, NaN where undefined — this is
  what CSV output holds;
* a *display* table (:func:`display_results_table`, :func:`display_search_summary`):
  the same rows as strings in the paper's style, for Markdown and LaTeX.

Conventions (also stated under the printed tables by :data:`RESULTS_NOTE`):

* accuracies are in %; the mean and the sample standard deviation (ddof = 1) are over
  *finished* seeds only; with one finished seed the std is undefined: NaN in the numeric
  table, shown as ``(n=1)`` instead of ``± std``;
* failed, unfinished (running or interrupted), stopped early (by a scheduler) and missing
  (planned, never started) trials are counted and shown in the Seeds column, never
  dropped silently; a run whose
  records are not finite fractions in [0, 1] or whose genotype does not parse is a
  failed trial (:func:`analysis.results.invalid_result`), never a number, and
  :func:`failure_lines` says why each trial failed;
* when the same trial (dataset, model, seed) was run twice, the finished run counts
  (:func:`analysis.results.unique_trials`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from analysis.results import DIVERGED, FAILED, FINISHED, MISSING, STOPPED_EARLY, UNFINISHED, config_column, unique_trials
from dartsrenet import paper, results

DATASET_ORDER: tuple[str, ...] = ("cifar10", "svhn")
"""The paper's datasets first, in its order; other datasets follow alphabetically."""

DATASET_LABELS: dict[str, str] = {"cifar10": "CIFAR-10", "svhn": "SVHN", "fashion_mnist": "Fashion-MNIST"}
"""Printed dataset names; others are printed as they are named."""

VARIANT_LABELS: dict[str, str] = {
    "vanilla": "Vanilla",
    "sigmoid_weighting": "Sigmoid Weighting",
    "directional_weight_sharing": "Directional Weight Sharing",
}
"""Printed variant names (paper §3.2)."""

MISSING_VALUE = "—"
"""What a display table shows where there is no value."""

RESULTS_COLUMNS: tuple[str, ...] = (
    "dataset",
    "model",
    "params_m",
    "accuracy_mean",
    "accuracy_std",
    "accuracy_best",
    "n_finished",
    "n_planned",
    "n_failed",
    "n_diverged",
    "n_unfinished",
    "n_stopped_early",
    "n_missing",
    "paper_params_m",
    "paper_accuracy",
    "difference",
)
"""Columns of :func:`results_table` (accuracies in %, parameters in millions)."""

SEARCH_COLUMNS: tuple[str, ...] = (
    "dataset",
    "variant",
    "n_finished",
    "n_planned",
    "n_failed",
    "n_diverged",
    "n_unfinished",
    "n_stopped_early",
    "n_missing",
    "selected_seed",
    "selected_val_accuracy",
    "genotype",
)
"""Columns of :func:`search_summary` (accuracy in %)."""

RESULTS_DISPLAY_COLUMNS: tuple[str, ...] = (
    "Data set", "Model", "Params [M]", "Accuracy [%]", "Best [%]", "Seeds", "Paper [%]", "Δ [pp]"
)
RESULTS_DISPLAY_ALIGN = "llrrrlrr"
"""Columns of :func:`display_results_table` and their alignment (l/r)."""

SEARCH_DISPLAY_COLUMNS: tuple[str, ...] = (
    "Data set", "Variant", "Seeds", "Selected seed", "val_cs acc. [%]", "Genotype"
)
SEARCH_DISPLAY_ALIGN = "lllrrl"
"""Columns of :func:`display_search_summary` and their alignment (l/r)."""

RESULTS_NOTE = (
    "Accuracy: test accuracy in %, mean ± sample std (ddof=1) over finished seeds; "
    "(n=1) marks a single finished seed (no std). Best: best finished seed. "
    "Seeds: finished/planned, with failed (the run raised, or its records are not "
    "accuracies in [0, 1]), unfinished (running or interrupted), stopped early "
    "(by a scheduler) and not started trials named. Paper: Table 1 of the paper (CIFAR-10 and SVHN only); "
    "Δ: our mean minus the paper's, in percentage points."
)
SEARCH_NOTE = (
    "Seeds: finished/planned. Selected: the finished seed with the best val_cs accuracy "
    "(best_val_accuracy; ties go to the lower seed; a seed whose records are not "
    "accuracies in [0, 1] or whose genotype does not parse counts as failed); its best epoch's genotype, "
    "'activation:predecessor' for nodes 1-8 '@' averaged nodes."
)


# --- ordering ------------------------------------------------------------------------


def ordered_values(values: Iterable[str], preferred: Iterable[str]) -> list[str]:
    """The distinct strings of ``values``: those in ``preferred`` in its order, then the rest sorted."""
    values = {value for value in values if isinstance(value, str)}
    preferred = [value for value in preferred if value in values]
    return preferred + sorted(values - set(preferred))


def _status_counts(statuses: pd.Series) -> dict[str, int]:
    return {
        "n_finished": int((statuses == FINISHED).sum()),
        "n_planned": int(len(statuses)),
        "n_failed": int((statuses == FAILED).sum()),
        "n_diverged": int((statuses == DIVERGED).sum()),
        "n_unfinished": int((statuses == UNFINISHED).sum()),
        "n_stopped_early": int((statuses == STOPPED_EARLY).sum()),
        "n_missing": int((statuses == MISSING).sum()),
    }


def numeric_column(frame: pd.DataFrame, column: str) -> pd.Series:
    """``frame[column]`` as numbers (NaN where not a number, all NaN where no such column)."""
    if column not in frame:
        return pd.Series(dtype=float, index=frame.index)
    return pd.to_numeric(frame[column], errors="coerce")


# --- Table 1 -------------------------------------------------------------------------


def results_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Table 1: one row per dataset × model of an evaluation experiment.

    Args:
        trials: :func:`analysis.results.load_trials` of a ``train`` experiment (columns
            ``status``, ``config/dataset``, ``config/model``, ``config/seed``, and the
            metrics ``test_accuracy`` and ``params`` where reported).

    Returns:
        A DataFrame with :data:`RESULTS_COLUMNS`: ``params_m`` (millions, from the
        ``params`` metric, the most frequent value over trials), ``accuracy_mean``,
        ``accuracy_std`` (ddof = 1; NaN for fewer than two finished seeds) and
        ``accuracy_best`` in % over finished seeds, status counts, the paper's values
        (NaN outside CIFAR-10 / SVHN) and ``difference`` = our mean − the paper's.
        Rows: datasets in :data:`DATASET_ORDER`, models in the paper's order.
    """
    dataset_col, model_col = config_column("dataset"), config_column("model")
    if trials.empty or dataset_col not in trials or model_col not in trials:
        return pd.DataFrame(columns=list(RESULTS_COLUMNS))
    trials = unique_trials(trials, [dataset_col, model_col, config_column("seed")])
    rows = []
    for dataset in ordered_values(trials[dataset_col], DATASET_ORDER):
        for model in ordered_values(trials.loc[trials[dataset_col] == dataset, model_col], paper.MODELS):
            group = trials[(trials[dataset_col] == dataset) & (trials[model_col] == model)]
            finished = group[group["status"] == FINISHED]
            accuracies = numeric_column(finished, "test_accuracy").dropna() * 100.0
            params = numeric_column(group, "params").dropna()
            paper_accuracy = paper.ACCURACY_PERCENT.get(dataset, {}).get(model, math.nan)
            mean = float(accuracies.mean()) if len(accuracies) else math.nan
            rows.append(
                {
                    "dataset": dataset,
                    "model": model,
                    "params_m": float(params.mode().iloc[0]) / 1e6 if len(params) else math.nan,
                    "accuracy_mean": mean,
                    "accuracy_std": float(accuracies.std(ddof=1)) if len(accuracies) > 1 else math.nan,
                    "accuracy_best": float(accuracies.max()) if len(accuracies) else math.nan,
                    **_status_counts(group["status"]),
                    "paper_params_m": (
                        paper.PARAMS_MILLIONS.get(model, math.nan)
                        if dataset in paper.ACCURACY_PERCENT
                        else math.nan
                    ),
                    "paper_accuracy": paper_accuracy,
                    "difference": mean - paper_accuracy,
                }
            )
    return pd.DataFrame(rows, columns=list(RESULTS_COLUMNS))


def dataset_label(dataset: str) -> str:
    """Printed name of a dataset (``cifar10`` → ``CIFAR-10``)."""
    return DATASET_LABELS.get(dataset, dataset)


def model_label(model: str) -> str:
    """Printed name of a model in the paper's words (``gru`` → ``Baseline ReNet with GRU``)."""
    return paper.MODEL_LABELS.get(model, model)


def variant_label(variant: str) -> str:
    """Printed name of a search variant."""
    return VARIANT_LABELS.get(variant, variant)


def format_number(value: float, decimals: int, signed: bool = False) -> str:
    """``value`` with ``decimals`` decimals, :data:`MISSING_VALUE` when NaN/None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING_VALUE
    return f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"


def format_accuracy(mean: float, std: float, n_finished: int) -> str:
    """``"90.26 ± 0.12"``; ``"90.26 (n=1)"`` for one seed; :data:`MISSING_VALUE` for none."""
    if n_finished == 0 or math.isnan(mean):
        return MISSING_VALUE
    if math.isnan(std):
        return f"{mean:.2f} (n={n_finished})"
    return f"{mean:.2f} ± {std:.2f}"


def format_seeds(record: Mapping[str, Any]) -> str:
    """``"3/5 (1 failed, 1 not started)"``: finished/planned, then what became of the rest,
    from a table record's ``n_finished``, ``n_planned``, ``n_failed``, ``n_diverged``, ``n_unfinished``,
    ``n_stopped_early`` and ``n_missing`` counts."""
    notes = [
        f"{record[column]} {label}"
        for column, label in (
            ("n_failed", "failed"), ("n_diverged", "diverged"), ("n_unfinished", "unfinished"), ("n_stopped_early", "stopped early"),
            ("n_missing", "not started"),
        )
        if record[column]
    ]
    text = f"{record['n_finished']}/{record['n_planned']}"
    return f"{text} ({', '.join(notes)})" if notes else text


def display_results_table(table: pd.DataFrame) -> pd.DataFrame:
    """Table 1 as strings in the paper's style, from :func:`results_table`.

    Columns: Data set, Model, Params [M], Accuracy [%], Best [%], Seeds, Paper [%], Δ [pp].
    The data set is printed on its first row only, as in the paper.
    """
    rows = []
    previous = None
    for record in table.to_dict(orient="records"):
        rows.append(
            {
                "Data set": dataset_label(record["dataset"]) if record["dataset"] != previous else "",
                "Model": model_label(record["model"]),
                # Small networks (digits demos) would all print as 0.0: more decimals below 1M.
                "Params [M]": format_number(record["params_m"], 3 if record["params_m"] < 1 else 1),
                "Accuracy [%]": format_accuracy(
                    record["accuracy_mean"], record["accuracy_std"], record["n_finished"]
                ),
                "Best [%]": format_number(record["accuracy_best"], 2),
                "Seeds": format_seeds(record),
                "Paper [%]": format_number(record["paper_accuracy"], 2),
                "Δ [pp]": format_number(record["difference"], 2, signed=True),
            }
        )
        previous = record["dataset"]
    return pd.DataFrame(rows, columns=list(RESULTS_DISPLAY_COLUMNS))


# --- search summary ------------------------------------------------------------------


def select_seed(trials: pd.DataFrame) -> pd.Series | None:
    """The selected search trial, by the sweep's own function on the same run folders
    (:func:`dartsrenet.results.select_from_run_folders`: finished, best
    ``best_val_accuracy``, ties → lower seed, genotype parses).

    Args:
        trials: rows of one variant's search trials (from :func:`analysis.results.load_trials`;
            its ``trial_dir`` column names their folders, ``None`` for a missing trial).

    Returns:
        The selected row, or ``None`` when no trial can be selected.
    """
    folders = [folder for folder in trials["trial_dir"] if isinstance(folder, str)]
    selected = results.select_from_run_folders(folders)
    if selected is None:
        return None
    return trials[trials["trial_dir"] == selected["trial_dir"]].iloc[0]


def search_summary(trials: pd.DataFrame) -> pd.DataFrame:
    """Summary of a search experiment: one row per dataset × variant.

    Args:
        trials: :func:`analysis.results.load_trials` of a ``search`` experiment.

    Returns:
        A DataFrame with :data:`SEARCH_COLUMNS`: status counts, the seed chosen by
        :func:`select_seed`, its ``best_val_accuracy`` in % (val_cs) and its
        ``genotype_string`` from ``summary.json`` (NaN / None when no seed finished).
    """
    dataset_col, variant_col, seed_col = config_column("dataset"), config_column("variant"), config_column("seed")
    if trials.empty or variant_col not in trials:
        return pd.DataFrame(columns=list(SEARCH_COLUMNS))
    if dataset_col not in trials:
        trials = trials.assign(**{dataset_col: ""})
    trials = unique_trials(trials, [dataset_col, variant_col, seed_col])
    rows = []
    for dataset in ordered_values(trials[dataset_col], DATASET_ORDER):
        variants = trials.loc[trials[dataset_col] == dataset, variant_col]
        for variant in ordered_values(variants, VARIANT_LABELS):
            group = trials[(trials[dataset_col] == dataset) & (trials[variant_col] == variant)]
            selected = select_seed(group)
            rows.append(
                {
                    "dataset": dataset,
                    "variant": variant,
                    **_status_counts(group["status"]),
                    "selected_seed": math.nan if selected is None else int(selected[seed_col]),
                    "selected_val_accuracy": (
                        math.nan if selected is None else float(selected["best_val_accuracy"]) * 100.0
                    ),
                    "genotype": None if selected is None else selected.get("genotype_string"),
                }
            )
    summary = pd.DataFrame(rows, columns=list(SEARCH_COLUMNS))
    summary["selected_seed"] = summary["selected_seed"].astype("Int64")
    return summary


def failure_lines(trials: pd.DataFrame, fields: Iterable[str]) -> list[str]:
    """One line per failed or diverged trial: ``"cifar10 vanilla seed 3 (<trial folder>): <why>"``.

    Args:
        trials: :func:`analysis.results.load_trials` rows.
        fields: config fields that name a trial, e.g. ``("dataset", "model", "seed")``.
    """
    if trials.empty or "status" not in trials:
        return []
    lines = []
    for _, row in trials[trials["status"].isin([FAILED, DIVERGED])].iterrows():
        name = " ".join(
            f"seed {row[config_column(field)]}" if field == "seed" else str(row[config_column(field)])
            for field in fields
            if config_column(field) in row and not pd.isna(row[config_column(field)])
        )
        lines.append(f"{name} ({row['trial']}): {row['error'] or 'failed'}")
    return lines


def display_search_summary(summary: pd.DataFrame) -> pd.DataFrame:
    """The search summary as strings, from :func:`search_summary`.

    Columns: Data set, Variant, Seeds, Selected seed, val_cs acc. [%], Genotype.
    """
    rows = []
    for record in summary.to_dict(orient="records"):
        seed = record["selected_seed"]
        genotype = record["genotype"]
        rows.append(
            {
                "Data set": dataset_label(record["dataset"]),
                "Variant": variant_label(record["variant"]),
                "Seeds": format_seeds(record),
                "Selected seed": MISSING_VALUE if pd.isna(seed) else str(int(seed)),
                "val_cs acc. [%]": format_number(record["selected_val_accuracy"], 2),
                "Genotype": genotype if isinstance(genotype, str) and genotype else MISSING_VALUE,
            }
        )
    return pd.DataFrame(rows, columns=list(SEARCH_DISPLAY_COLUMNS))

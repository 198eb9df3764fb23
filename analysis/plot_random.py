"""The random-genotype control as a figure: how the random cells' test accuracies spread,
with the DARTS-selected cells and the GRU and LSTM baselines marked (docs/architecture.md §8).

One panel per dataset × variant: each random genotype is a dot (its accuracy, the mean
over its finished seeds), the box spans their quartiles; the DARTS cell of that variant
is a star per evaluation seed with a line at its mean, GRU and LSTM are dashed lines at
their means over seeds. Extra searched cells (e.g. second-order DARTS) can be marked too.

Usage::

    python analysis/plot_random.py                                 # latest experiments under ./results
    python analysis/plot_random.py --random results/study/random_control --eval results/study/eval_first_order

Functions build :class:`matplotlib.figure.Figure` objects without pyplot; only
:func:`main` saves a PNG file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.control import genotype_accuracies
from analysis.results import (
    DEFAULT_RESULTS_ROOT,
    FINISHED,
    ExperimentNotFoundError,
    config_column,
    latest_experiment,
    load_trials,
    read_experiment,
)
from analysis.tables import DATASET_ORDER, VARIANT_LABELS, dataset_label, numeric_column, ordered_values, variant_label
from dartsrenet.results import RANDOM_KIND, TRAIN_KIND

DPI = 150
BASELINE_STYLES: dict[str, dict[str, str]] = {
    "gru": {"color": "tab:green", "linestyle": "--", "label": "GRU"},
    "lstm": {"color": "tab:purple", "linestyle": ":", "label": "LSTM"},
}


def finished_accuracies(trials: pd.DataFrame, dataset: str, model: str) -> pd.Series:
    """Test accuracies in % of ``model``'s finished trials on ``dataset``."""
    if trials.empty or config_column("model") not in trials:
        return pd.Series(dtype=float)
    rows = trials[
        (trials[config_column("dataset")] == dataset)
        & (trials[config_column("model")] == model)
        & (trials["status"] == FINISHED)
    ]
    return (numeric_column(rows, "test_accuracy") * 100.0).dropna()


def plot_random_control(
    random_trials: pd.DataFrame,
    eval_trials: pd.DataFrame | None = None,
    extra_cells: Mapping[str, pd.DataFrame] | None = None,
    title: str | None = None,
) -> Figure:
    """The figure described in the module docstring.

    Args:
        random_trials: :func:`analysis.results.load_trials` of a ``random`` experiment.
        eval_trials: the same of the ``train`` experiment of the DARTS cells and baselines.
        extra_cells: more evaluations of searched cells to mark, by label (e.g.
            ``{"2nd-order DARTS": trials}``); their ``model`` is the variant's name.
        title: the figure's title.
    """
    dataset_col, variant_col = config_column("dataset"), config_column("variant")
    eval_trials = pd.DataFrame() if eval_trials is None else eval_trials
    panels = [
        (dataset, variant)
        for dataset in ordered_values(random_trials[dataset_col], DATASET_ORDER)
        for variant in ordered_values(
            random_trials.loc[random_trials[dataset_col] == dataset, variant_col], VARIANT_LABELS
        )
    ]
    figure = Figure(figsize=(4.2 * max(len(panels), 1), 5.2), layout="constrained")
    axes = figure.subplots(1, max(len(panels), 1), squeeze=False, sharey=True)[0]
    generator = np.random.default_rng(0)  # jitter only
    legend: dict[str, Any] = {}
    for axis, (dataset, variant) in zip(axes, panels, strict=False):
        group = random_trials[(random_trials[dataset_col] == dataset) & (random_trials[variant_col] == variant)]
        accuracies = genotype_accuracies(group).to_numpy()
        if len(accuracies):
            axis.boxplot(accuracies, positions=[0], widths=0.5, showfliers=False,
                         medianprops={"color": "black"})
            axis.scatter(generator.uniform(-0.15, 0.15, len(accuracies)), accuracies, s=18, color="tab:gray",
                         alpha=0.8, label=f"random genotypes (K={len(accuracies)} per variant)", zorder=3)
        marks = [("DARTS cell", eval_trials, "tab:red", "*")]
        marks += [(label, trials, color, "D") for (label, trials), color in
                  zip((extra_cells or {}).items(), ("tab:orange", "tab:brown", "tab:pink"), strict=False)]
        for offset, (label, trials, color, marker) in enumerate(marks):
            darts = finished_accuracies(trials, dataset, variant)
            if len(darts):
                axis.scatter(np.full(len(darts), 0.45 + 0.15 * offset), darts, marker=marker, s=70, color=color,
                             zorder=4, label=f"{label}: seeds, line at their mean")
                axis.axhline(darts.mean(), color=color, linewidth=1.2)
        for model, style in BASELINE_STYLES.items():
            baseline = finished_accuracies(eval_trials, dataset, model)
            if len(baseline):
                axis.axhline(baseline.mean(), color=style["color"], linestyle=style["linestyle"],
                             label=f"{style['label']} (mean over seeds)")
        axis.set_xlim(-0.6, 0.6 + 0.15 * len(marks))
        axis.set_xticks([])
        axis.set_title(f"{dataset_label(dataset)}: {variant_label(variant)}", fontsize=10)
        axis.grid(axis="y", alpha=0.3)
        handles, labels = axis.get_legend_handles_labels()
        legend.update(zip(labels, handles, strict=True))
    axes[0].set_ylabel("test accuracy [%]")
    if legend:
        figure.legend(list(legend.values()), list(legend), loc="outside lower center", ncol=3, fontsize=8)
    if title:
        figure.suptitle(title)
    return figure


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--random", metavar="DIR|URI", help="random-control experiment (default: latest under --results)")
    parser.add_argument(
        "--eval", metavar="DIR|URI",
        help="evaluation experiment of the DARTS cells and baselines (default: latest under --results)",
    )
    parser.add_argument("--results", metavar="ROOT|URI", default=DEFAULT_RESULTS_ROOT,
                        help="results root: a folder or a storage URI (default: ./results)")
    parser.add_argument("--out", type=Path, default=Path("random_control.png"), metavar="FILE",
                        help="the PNG file to write (default: random_control.png)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: write the figure. Returns the exit status."""
    args = parse_args(argv)
    try:
        random = read_experiment(args.random) if args.random else latest_experiment(args.results, RANDOM_KIND)
        evaluation = read_experiment(args.eval) if args.eval else latest_experiment(args.results, TRAIN_KIND)
    except (ExperimentNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if random is None or random.kind != RANDOM_KIND:
        print(f"error: no random-control experiment ({'--random ' + args.random if args.random else 'under ' + args.results}); "
              "create one with python sweeps/random_baseline.py --num-samples K", file=sys.stderr)
        return 2
    figure = plot_random_control(
        load_trials(random), load_trials(evaluation) if evaluation else None, title=f"random-genotype control ({random.name})"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=DPI)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

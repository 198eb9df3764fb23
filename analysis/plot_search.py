"""Figures of a cell-search sweep: α over the search epochs and learning curves (paper §4.1).

* :func:`plot_alpha` — for one search trial: left, the probability softmax(α) of the
  finally chosen (activation, predecessor) edge of every node over the epochs (how
  early and how firmly the search settles on the cell); right, the selected epoch's
  softmax(α) as a 36 × 5 heatmap, rows ``i←j`` (edge j → i, eq. 9–10), chosen cells
  outlined.
* :func:`plot_learning_curves` — train and val_cs accuracy per epoch, one line per trial,
  coloured by variant.

Usage::

    python analysis/plot_search.py                        # latest search under ./results
    python analysis/plot_search.py --search results/search_digits_demo --out figures/search

Functions build :class:`matplotlib.figure.Figure` objects without pyplot (no global state,
no display); only :func:`main` saves PNG files.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from analysis.results import (
    DEFAULT_RESULTS_ROOT,
    Experiment,
    ExperimentNotFoundError,
    latest_experiment,
    load_history,
    load_trials,
    read_experiment,
)
from analysis.tables import select_seed, variant_label
from dartsrenet.activations import PRIMITIVES
from dartsrenet.genotypes import NUM_NODES, Genotype, GenotypeError, derive_genotype, edge_index, num_edges
from dartsrenet.safe_paths import path_inside

DPI = 150


def _note(line: str) -> None:
    print(line, file=sys.stderr)


def alpha_array(alpha_history: Sequence[Any]) -> np.ndarray:
    """softmax(α) per epoch as an array of shape (epochs, 36, 5).

    Raises:
        ValueError: if an epoch's α does not have shape (36, len(PRIMITIVES)).
    """
    array = np.asarray([np.asarray(alpha, dtype=float) for alpha in alpha_history], dtype=float)
    expected = (num_edges(), len(PRIMITIVES))
    if array.ndim != 3 or array.shape[1:] != expected:
        raise ValueError(f"alpha must be a list of {expected} arrays per epoch, got shape {array.shape}")
    return array


def chosen_genotype(probabilities: np.ndarray) -> Genotype:
    """The genotype derived (eq. 9–10) from softmax probabilities of shape (36, 5)."""
    return derive_genotype(np.log(np.clip(probabilities, 1e-30, None)))


def edge_label(node: int, predecessor: int) -> str:
    """Row label of α's edge predecessor → node, ``"3←1"``."""
    return f"{node}←{predecessor}"


def plot_alpha(
    alpha_history: Sequence[Any],
    genotype: Genotype | None = None,
    title: str | None = None,
    epochs: Sequence[int] | None = None,
    selected_epoch: int | None = None,
) -> Figure:
    """α over the search of one trial.

    Args:
        alpha_history: softmax(α) per epoch (the ``alpha`` metric), each 36 × 5, columns
            in :data:`dartsrenet.activations.PRIMITIVES` order.
        genotype: the finally chosen cell (the run's ``best_genotype``); default: derived
            from the last epoch's α.
        title: figure title.
        epochs: epoch numbers of the entries (default 1, 2, …).
        selected_epoch: the epoch whose genotype the run kept (its ``best_epoch``): marked
            on the curves and shown in the heatmap; default (or when not among
            ``epochs``): the last epoch.

    Returns:
        A figure with the chosen edges' probabilities over epochs and the selected
        epoch's softmax(α) heatmap.
    """
    alpha = alpha_array(alpha_history)
    epochs = np.arange(1, len(alpha) + 1) if epochs is None else np.asarray(epochs)
    if len(epochs) != len(alpha):
        raise ValueError(f"{len(epochs)} epochs given for {len(alpha)} α entries")
    matches = np.flatnonzero(epochs == selected_epoch) if selected_epoch is not None else []
    shown = int(matches[-1]) if len(matches) else len(alpha) - 1
    if genotype is None:
        genotype = chosen_genotype(alpha[shown])

    figure = Figure(figsize=(13, 7.5), layout="constrained")
    curves, heatmap = figure.subplots(1, 2, width_ratios=[1.5, 1])
    colours = [f"C{k}" for k in range(NUM_NODES)]
    for node, (activation, predecessor) in enumerate(genotype.recurrent, start=1):
        row, column = edge_index(node, predecessor), PRIMITIVES.index(activation)
        curves.plot(
            epochs,
            alpha[:, row, column],
            marker="o" if len(epochs) <= 30 else None,
            markersize=4,
            color=colours[node - 1],
            label=f"node {node}: {activation} ← {predecessor}",
        )
    curves.axhline(1 / len(PRIMITIVES), color="gray", linestyle=":", linewidth=1, label="uniform (1/5)")
    curves.axvline(epochs[shown], color="black", linestyle="--", linewidth=1, label=f"selected epoch {epochs[shown]}")
    curves.set_xlabel("search epoch")
    curves.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(epochs) == 1:  # a single epoch: keep integer ticks around it
        curves.set_xlim(epochs[0] - 1, epochs[0] + 1)
    curves.set_ylabel("softmax(α) of the chosen edge")
    curves.set_title("Chosen (activation, predecessor) per node")
    curves.set_ylim(0, 1)
    curves.grid(alpha=0.3)
    curves.legend(loc="upper left", fontsize=9)

    selected = alpha[shown]
    image = heatmap.imshow(selected, aspect="auto", cmap="viridis", vmin=0, vmax=max(float(selected.max()), 1e-9))
    labels = [edge_label(node, predecessor) for node in range(1, NUM_NODES + 1) for predecessor in range(node)]
    heatmap.set_yticks(range(num_edges()), labels, fontsize=7)
    heatmap.set_xticks(range(len(PRIMITIVES)), PRIMITIVES, rotation=30)
    for node in range(1, NUM_NODES):  # separate the nodes' row blocks
        heatmap.axhline(edge_index(node + 1, 0) - 0.5, color="white", linewidth=0.8)
    for node, (activation, predecessor) in enumerate(genotype.recurrent, start=1):
        row, column = edge_index(node, predecessor), PRIMITIVES.index(activation)
        heatmap.add_patch(Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="red", linewidth=1.8))
    heatmap.set_title(f"softmax(α), epoch {int(epochs[shown])} (chosen edges outlined)")
    figure.colorbar(image, ax=heatmap, shrink=0.8)
    if title:
        figure.suptitle(title)
    return figure


STATUS_LINESTYLES: dict[str, str] = {"finished": "-", "unfinished": "--", "failed": ":"}
"""Line style of a learning curve by trial status (failed trials also end in a cross)."""


def plot_learning_curves(history: pd.DataFrame, group: str = "config/variant", title: str | None = None) -> Figure:
    """Train and validation accuracy per epoch, one line per trial, one colour per ``group``.

    Finished trials are drawn solid, unfinished ones dashed, failed ones dotted and ending
    in a cross.

    Args:
        history: :func:`analysis.results.load_history` rows (``trial``, ``status``,
            ``epoch``, ``train_accuracy``, ``val_accuracy`` in [0, 1]).
        group: column whose values get one colour each (e.g. ``config/variant``).
        title: figure title.
    """
    figure = Figure(figsize=(12, 5), layout="constrained")
    axes = figure.subplots(1, 2, sharey=True)
    groups = list(dict.fromkeys(history[group])) if group in history else [None]
    colours = {value: f"C{k % 10}" for k, value in enumerate(groups)}
    short = "epoch" in history and pd.to_numeric(history["epoch"], errors="coerce").max() <= 30
    for axis, metric, name in zip(axes, ("train_accuracy", "val_accuracy"), ("train", "validation"), strict=True):
        labelled: set[Any] = set()
        statuses: set[str] = set()
        if metric in history and "epoch" in history:
            for _, rows in history.groupby("trial", sort=False):
                first = rows.iloc[0]
                value = first[group] if group in history else None
                status = str(first.get("status", "finished"))
                points = rows[["epoch", metric]].apply(pd.to_numeric, errors="coerce").dropna()
                if points.empty:
                    continue
                colour = colours[value]
                axis.plot(
                    points["epoch"],
                    100 * points[metric],
                    color=colour,
                    alpha=0.8,
                    linestyle=STATUS_LINESTYLES.get(status, "-."),
                    marker="o" if short else None,
                    markersize=3,
                )
                if status == "failed":
                    axis.plot(points["epoch"].iloc[-1], 100 * points[metric].iloc[-1], "x", color=colour, markersize=9)
                labelled.add(value)
                statuses.add(status)
        for value in (value for value in groups if value in labelled):  # legend: one entry per group
            axis.plot([], [], color=colours[value], label=variant_label(str(value)))
        for status in sorted(statuses - {"finished"}):
            axis.plot([], [], color="gray", linestyle=STATUS_LINESTYLES.get(status, "-."), label=status)
        axis.set_title(f"{name} accuracy")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(alpha=0.3)
        if labelled:
            axis.legend(fontsize=9)
    axes[0].set_ylabel("accuracy [%]")
    if title:
        figure.suptitle(title)
    return figure


def trial_alpha(history: pd.DataFrame, trial: str) -> tuple[list[Any], list[int]]:
    """The ``alpha`` metric of one trial per epoch, and the epochs."""
    rows = history[(history["trial"] == trial)]
    if "alpha" not in rows:
        return [], []
    rows = rows[rows["alpha"].map(lambda value: isinstance(value, list))]
    epochs = rows["epoch"].astype(int).tolist() if "epoch" in rows else list(range(1, len(rows) + 1))
    return rows["alpha"].tolist(), epochs


def _genotype_or_none(text: Any) -> Genotype | None:
    if not isinstance(text, str):
        return None
    try:
        return Genotype.from_string(text)
    except GenotypeError:
        return None


def plot_experiment(
    experiment: Experiment, out: Path, all_trials: bool = False, log: Callable[[str], None] = _note
) -> list[Path]:
    """Save ``learning_curves.png`` and one ``alpha_<variant>.png`` per variant (its
    selected seed; every trial's with ``all_trials``) into ``out``; returns the files.
    ``log`` gets a note for variants or trials with nothing to plot.

    Raises:
        UnsafePathError: a variant (read from a trial's ``params.json``) that would make a
            file name leading outside ``out``; checked before any file is written.
    """
    history = load_history(experiment)
    trials = load_trials(experiment)
    variant_col, seed_col = "config/variant", "config/seed"
    variants = list(dict.fromkeys(trials[variant_col].dropna())) if variant_col in trials else []
    for variant in variants:
        path_inside(out, f"alpha_{variant}", "variant (from a trial's params.json)", ".png")
    out.mkdir(parents=True, exist_ok=True)
    written = []

    figure = plot_learning_curves(history, title=f"Search learning curves ({experiment.name})")
    figure.savefig(out / "learning_curves.png", dpi=DPI)
    written.append(out / "learning_curves.png")

    for variant in variants:
        group = trials[trials[variant_col] == variant]
        if all_trials:
            chosen = [row for _, row in group.iterrows() if isinstance(row["trial"], str)]
        else:
            selected = select_seed(group)
            if selected is None:
                log(f"note: {variant}: no finished seed yet (use --all-trials)")
            chosen = [] if selected is None else [selected]
        for row in chosen:
            alpha, epochs = trial_alpha(history, row["trial"])
            if not alpha:
                log(f"note: {row['trial']}: no alpha reported")
                continue
            seed = row.get(seed_col)
            title = f"{variant_label(variant)}, seed {seed} ({experiment.name})"
            best_epoch = pd.to_numeric(row.get("best_epoch"), errors="coerce")
            figure = plot_alpha(
                alpha,
                _genotype_or_none(row.get("genotype_string")),
                title=title,
                epochs=epochs,
                selected_epoch=None if pd.isna(best_epoch) else int(best_epoch),
            )
            name = f"alpha_{variant}_seed{seed}" if all_trials else f"alpha_{variant}"
            path = path_inside(out, name, f"{row['trial']}: variant and seed (from its params.json)", ".png")
            figure.savefig(path, dpi=DPI)
            written.append(path)
    return written


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--search", metavar="DIR|URI", help="search experiment folder (default: latest under --results)")
    parser.add_argument(
        "--results", metavar="ROOT|URI", default=DEFAULT_RESULTS_ROOT,
        help="results root: a folder or a storage URI such as s3://bucket/prefix (default: ./results)",
    )
    parser.add_argument("--out", metavar="DIR", type=Path, help="output folder (default: figures/<experiment name>)")
    parser.add_argument(
        "--all-trials", action="store_true", help="plot α of every trial, not only each variant's selected seed"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: save ``learning_curves.png`` and ``alpha_<variant>.png`` files."""
    args = parse_args(argv)
    try:
        experiment = read_experiment(args.search) if args.search else latest_experiment(args.results, "search")
    except (ExperimentNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if experiment is None:
        print(
            f"error: no search experiment under {args.results}/. Create one with `make demo` or "
            "`python sweeps/search_all_variants.py ...`, or pass --search DIR.",
            file=sys.stderr,
        )
        return 1
    out = args.out or Path("figures") / experiment.name
    try:
        paths = plot_experiment(experiment, out, all_trials=args.all_trials)
    except ValueError as error:  # a name leading outside the output folder
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

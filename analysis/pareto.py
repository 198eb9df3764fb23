"""The network-design sweep's Pareto front as tables and a figure (docs/network-design.md).

Reads a design experiment of ``sweeps/design_network.py`` and, when present, its
re-evaluation (``<experiment>_reeval``), from their run folders
(:mod:`dartsrenet.design_results`):

* the **front table**: each non-dominated network of the search (validation accuracy
  max, parameters or latency min, the sweep's objective), its configuration, parameters,
  latency, the search trial's validation accuracy, and the validation and test accuracy
  as mean ± std over every seed it was trained with (search and re-evaluation);
* the **ordering table**: the front's most accurate network with each sequence ordering,
  over the re-evaluation's ordering seeds;
* the **figure**: every finished trial, the front, and the paper's fixed networks (GRU,
  LSTM, the three DartsReNet cells in the paper's design) on the same axes — at their
  measured accuracies when an evaluation experiment is given (``--eval``), otherwise as
  parameter counts only (vertical lines, marked as such), at the paper's design of
  ``--paper-channels`` N (default: the space's largest width).

Usage::

    python analysis/pareto.py results/design_digits_design_params_n20_seed0
    python analysis/pareto.py EXPERIMENT --eval results/demo/eval_digits_demo --out figures/

Functions build DataFrames and :class:`matplotlib.figure.Figure` objects without pyplot;
only :func:`main` prints and saves files.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from analysis.formatting import to_csv, to_markdown
from dartsrenet.design_results import (
    REEVAL_SUFFIX,
    SEARCH_STAGE,
    STAGE_FIELD,
    Outcome,
    distinct_runs,
    finished_outcomes,
    front_of,
    most_accurate,
    orderings_of,
    with_ordering,
)
from dartsrenet.design_space import DesignSpace, layouts, paper_cells
from dartsrenet.network_spec import paper_network
from dartsrenet.paper import MODELS
from dartsrenet.results import DESIGN_KIND, ExperimentNotFoundError, exists, read_experiment

OBJECTIVE_LABELS = {"params": "parameters", "latency": "inference time per image (ms)"}


@dataclass(frozen=True)
class DesignResults:
    """A design experiment's finished runs.

    Attributes:
        name: the search experiment's name.
        objective: ``params`` or ``latency``.
        search: the search's finished trials.
        reevaluation: the re-evaluation's finished trials (empty without one).
        seed: the search's seed.
        ordering_seeds: the re-evaluation's ordering seeds (0 without one).
        space: the search space as ``sweep.json`` records it.
    """

    name: str
    objective: str
    search: list[Outcome]
    reevaluation: list[Outcome]
    seed: int
    ordering_seeds: int
    space: Mapping[str, object]

    @property
    def front(self) -> list[Outcome]:
        return front_of(self.search, self.objective)

    def runs_of(self, configuration: tuple[object, ...]) -> list[Outcome]:
        """Every finished run (search and re-evaluation) of one configuration, one per seed."""
        return distinct_runs([o for o in [*self.search, *self.reevaluation] if o.configuration == configuration])


def load_design(experiment: str, reevaluation: str | None = None) -> DesignResults:
    """Read a design experiment and its re-evaluation (default: ``<experiment>_reeval`` if it exists).

    Raises:
        ExperimentNotFoundError: no experiment there.
        ValueError: not a design search experiment.
    """
    search = read_experiment(experiment)
    if search.kind != DESIGN_KIND or search.marker.get(STAGE_FIELD) != SEARCH_STAGE:
        raise ValueError(f"{experiment} is not a network-design search (sweeps/design_network.py), but {search.kind}")
    location = reevaluation or str(experiment).rstrip("/") + REEVAL_SUFFIX
    again, ordering_seeds = [], 0
    if exists(location):
        marker = read_experiment(location).marker
        again, ordering_seeds = finished_outcomes(location), int(marker.get("ordering_seeds") or 0)
    return DesignResults(
        name=search.name, objective=search.marker.get("objective", "params"), search=finished_outcomes(experiment),
        reevaluation=again, seed=int(search.marker.get("seed", 0)), ordering_seeds=ordering_seeds,
        space=search.marker.get("space") or {},
    )


def mean_std(values: Sequence[float]) -> str:
    """``"91.23 ± 0.45 (n=3)"`` in percent; ``"—"`` for none."""
    if not values:
        return "—"
    mean = 100 * statistics.fmean(values)
    spread = f" ± {100 * statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{mean:.2f}{spread} (n={len(values)})"


def front_table(design: DesignResults) -> pd.DataFrame:
    """One row per front member, by ascending cost."""
    rows = []
    for member in design.front:
        runs = design.runs_of(member.configuration)
        rows.append({
            "cell": member.model,
            "network": member.network,
            "lr": f"{member.lr:.3g}",
            "params": f"{member.params:,}",
            "ms/image": "—" if member.latency_ms is None else f"{member.latency_ms:.3f}",
            "search val %": f"{100 * member.val_accuracy:.2f}",
            "val % over seeds": mean_std([run.val_accuracy for run in runs]),
            "test % over seeds": mean_std([run.test_accuracy for run in runs]),
        })
    return pd.DataFrame(rows)


def ordering_table(design: DesignResults) -> pd.DataFrame:
    """The front's most accurate network with each ordering, over the ordering seeds
    (``seed`` … ``seed + K − 1``); empty without a re-evaluation."""
    if not design.front or not design.ordering_seeds:
        return pd.DataFrame()
    best = most_accurate(design.front)
    seeds = set(range(design.seed, design.seed + design.ordering_seeds))
    rows = []
    for ordering in design.space.get("orderings") or []:
        network = with_ordering(best.network, str(ordering))
        runs = [run for run in design.runs_of((best.model, best.genotype, network, best.lr)) if run.seed in seeds]
        rows.append({
            "cell": best.model, "network": network, "ordering": orderings_of(network),
            "seeds": ", ".join(str(run.seed) for run in sorted(runs, key=lambda run: run.seed)) or "—",
            "val %": mean_std([run.val_accuracy for run in runs]),
            "test %": mean_std([run.test_accuracy for run in runs]),
        })
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class PaperPoint:
    """A paper network on the figure: its parameters, and its accuracy if it was evaluated."""

    model: str
    params: int
    val_accuracy: float | None
    latency_ms: float | None


def paper_points(channels: int, num_classes: int, evaluation: str | None) -> list[PaperPoint]:
    """The paper's five networks in the paper's design with N = ``channels``, or as an
    evaluation experiment trained them (their mean validation accuracy over seeds)."""
    if evaluation is not None:
        by_model: dict[str, list[Outcome]] = defaultdict(list)
        for outcome in finished_outcomes(evaluation):
            by_model[outcome.model].append(outcome)
        points = []
        for model in MODELS:
            runs = by_model.get(model)
            if runs:
                latencies = [run.latency_ms for run in runs if run.latency_ms is not None]
                points.append(PaperPoint(model, runs[0].params, statistics.fmean(r.val_accuracy for r in runs),
                                         statistics.fmean(latencies) if latencies else None))
        return points
    space = DesignSpace(
        cells=tuple(paper_cells([m for m in MODELS if m not in ("gru", "lstm")])), layouts=tuple(layouts(3, [2])),
        widths=(channels,), orderings=("rowcol",), lr=(0.1, 0.1), num_classes=num_classes,
    )
    return [PaperPoint(cell.name, space.parameters(cell.name, paper_network(channels)), None, None) for cell in space.cells]


PAPER_COLOURS = {"vanilla": "C0", "sigmoid_weighting": "C1", "directional_weight_sharing": "C2", "gru": "C3", "lstm": "C4"}
PAPER_STYLES = {"vanilla": (0, (1, 1)), "sigmoid_weighting": (0, (4, 2)), "directional_weight_sharing": ":",
                "gru": "--", "lstm": "-."}
SHORT_LABELS = {"vanilla": "Vanilla", "sigmoid_weighting": "Sigmoid Weighting",
                "directional_weight_sharing": "Dir. Weight Sharing", "gru": "GRU", "lstm": "LSTM"}


def plot_front(design: DesignResults, paper: Sequence[PaperPoint], paper_note: str) -> Figure:
    """Validation accuracy against the cost: every trial, the front, the paper's networks."""
    objective = design.objective
    figure = Figure(figsize=(8, 5.2), layout="constrained")
    axes = figure.add_subplot()
    axes.scatter([o.cost(objective) for o in design.search], [100 * o.val_accuracy for o in design.search],
                 s=22, color="0.6", label=f"trials ({len(design.search)})")
    front = design.front
    axes.plot([o.cost(objective) for o in front], [100 * o.val_accuracy for o in front], "-o", color="black",
              drawstyle="steps-post", markersize=6, label=f"Pareto front ({len(front)})")
    for point in paper:
        label = f"paper's {SHORT_LABELS.get(point.model, point.model)}"
        cost = point.params if objective == "params" else point.latency_ms
        if cost is None:
            continue
        if point.val_accuracy is None:
            axes.axvline(cost, color=PAPER_COLOURS.get(point.model, "C5"), linestyle=PAPER_STYLES.get(point.model, ":"),
                         linewidth=1.4, label=f"{label} (params only)")
        else:
            axes.scatter([cost], [100 * point.val_accuracy], marker="*", s=120,
                         color=PAPER_COLOURS.get(point.model, "C5"), label=label, zorder=3)
    axes.set_xscale("log")
    axes.set_xlabel(OBJECTIVE_LABELS[objective] + " (log scale)")
    axes.set_ylabel("validation accuracy (%)")
    axes.set_title(f"Network design: {design.name}\npaper's networks: {paper_note}", fontsize=9)
    axes.grid(alpha=0.3)
    figure.legend(loc="outside lower center", ncols=3, fontsize=7.5, frameon=False)
    return figure


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("experiment", help="the design search experiment (sweeps/design_network.py)")
    parser.add_argument("--reeval", metavar="DIR", help="its re-evaluation (default: EXPERIMENT_reeval if it exists)")
    parser.add_argument("--eval", metavar="DIR", help="an evaluation experiment of the paper's networks to place on the figure")
    parser.add_argument(
        "--paper-channels", type=int, metavar="N",
        help="without --eval: the paper's networks' N for their parameter counts (default: the space's largest width)",
    )
    parser.add_argument("--num-classes", type=int, default=10, metavar="K", help="classes of the paper networks' head (default: 10)")
    parser.add_argument("--out", type=Path, default=Path("figures"), metavar="DIR", help="where the figure goes (default: figures/)")
    parser.add_argument("--format", choices=("markdown", "csv"), default="markdown", help="table format (default: markdown)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the front and ordering tables and save the figure; exit status 0, or 2 for bad input."""
    args = parse_args(argv)
    try:
        design = load_design(args.experiment, args.reeval)
    except (ExperimentNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not design.search:
        print(f"error: {args.experiment} has no finished trial yet", file=sys.stderr)
        return 2
    widths = design.space.get("widths") or [256]
    channels = args.paper_channels or max(int(width) for width in widths)
    if channels < 2 or channels % 2:
        print(f"error: --paper-channels must be even and at least 2, got {channels}", file=sys.stderr)
        return 2
    try:
        paper = paper_points(channels, args.num_classes, args.eval)
    except (ExperimentNotFoundError, ValueError) as error:
        print(f"error: --eval {args.eval}: {error}", file=sys.stderr)
        return 2
    note = f"evaluated in {Path(args.eval).name}" if args.eval else f"paper design, N = {channels}, not trained"
    render = to_markdown if args.format == "markdown" else to_csv
    print(f"Pareto front of {design.name} (validation accuracy vs {design.objective}; "
          f"{len(design.front)} of the {len(design.search)} trials with a result):\n")
    print(render(front_table(design)))
    orderings = ordering_table(design)
    if not orderings.empty:
        print(f"\nOrderings of the front's most accurate network (seeds {design.seed} … "
              f"{design.seed + design.ordering_seeds - 1}):\n")
        print(render(orderings))
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"pareto_{design.name}.png"
    plot_front(design, paper, note).savefig(path, dpi=120)
    print(f"\nfigure: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

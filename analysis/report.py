"""The study's report: every table and figure of ``sweeps/study.py``'s experiments in one
Markdown file (docs/study-fashion-mnist.md is written from it).

:func:`write_study_report` reads the experiments that exist (a stage that did not run is
named as missing, never left out silently), writes the figures into ``figures/`` beside
the report and links them relatively, so the folder can be copied as it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from analysis import draw_cells, make_table, plot_search
from analysis.comparisons import (
    COMPARISON_DISPLAY_ALIGN,
    COMPARISON_NOTE,
    KENDALL_NOTE,
    display_comparisons,
    kendall_table,
    strategy_comparisons,
)
from analysis.plot_random import DPI, plot_random_control
from analysis.results import Experiment, ExperimentNotFoundError, load_trials, read_experiment
from analysis.tables import dataset_label, format_number
from dartsrenet.genotypes import GenotypeError
from dartsrenet.results import SELECTION_FILE

REPORT_FILE = "report.md"
FIGURES = "figures"
STAGE_TITLES: dict[str, str] = {
    "search": "cell search, first-order DARTS",
    "search_order2": "cell search, second-order DARTS (vanilla)",
    "eval": "evaluation of the first-order cells + GRU + LSTM",
    "eval_order2": "evaluation of the second-order vanilla cell",
    "random": "random-genotype control",
}
"""The study's stages (keys of ``experiments`` and ``timings``), in the order they run."""


def _read(location: Path | None) -> Experiment | None:
    if location is None:
        return None
    try:
        return read_experiment(location)
    except (ExperimentNotFoundError, ValueError):
        return None


def timing_table(timings: Mapping[str, float]) -> str:
    """The wall time of each stage and in all, as a Markdown table."""
    lines = ["| stage | wall time |", "|---|---:|"]
    for key, title in STAGE_TITLES.items():
        seconds = timings.get(key)
        lines.append(f"| {title} | {'—' if seconds is None else f'{seconds / 60:.1f} min'} |")
    total = sum(float(seconds) for seconds in timings.values())
    lines.append(f"| **all sweeps** | **{total / 60:.1f} min** |")
    return "\n".join(lines) + "\n"


def _section(title: str, body: str) -> str:
    return f"## {title}\n\n{body.strip()}\n"


def _demote(markdown: str) -> str:
    """A table's ``## title`` as ``### title`` (inside a report section)."""
    return "\n".join(f"#{line}" if line.startswith("## ") else line for line in markdown.splitlines()) + "\n"


def write_study_report(
    out: Path,
    experiments: Mapping[str, Path],
    *,
    timings: Mapping[str, float],
    command: str,
    machine: str,
    dataset: str,
    strategies: Mapping[str, Path] | None = None,
    supernet_scores: Path | None = None,
) -> Path:
    """Write ``out/report.md`` and ``out/figures/``; returns the report's path.

    Args:
        out: the study's folder.
        experiments: the experiment folder of each stage (keys of :data:`STAGE_TITLES`).
        timings: wall seconds of each stage.
        command: the study's command line.
        machine: one line describing the machine.
        dataset: the dataset's name.
        strategies: the evaluation experiment of each search strategy's cell (``darts``: the
            first-order one), compared with each other and with the random control.
        supernet_scores: ``supernet_scores.json`` of ``sweeps/study.py`` (Kendall τ).
    """
    found = {key: _read(experiments.get(key)) for key in STAGE_TITLES}
    missing = [STAGE_TITLES[key] for key, experiment in found.items() if experiment is None]
    figures = out / FIGURES
    figures.mkdir(parents=True, exist_ok=True)
    sections = [
        f"# Study report: DARTS cells against random cells on {dataset_label(dataset)}\n",
        _section("Command and machine", f"`{command}`\n\nMachine: {machine}\n\n" + timing_table(timings)),
    ]
    if missing:
        sections.append(_section("Missing stages", "\n".join(f"- {title}: no experiment" for title in missing)))

    search, search2 = found["search"], found["search_order2"]
    evaluation, evaluation2, random = found["eval"], found["eval_order2"], found["random"]
    tables = []
    for experiment in (evaluation, evaluation2):
        if experiment is not None:
            tables.append(_demote(make_table.results_text(experiment, "markdown")))
            baselines = make_table.baselines_text(experiment, "markdown")
            if baselines is not None:
                tables.append(_demote(baselines))
    for experiment in (search, search2):
        if experiment is not None:
            tables.append(_demote(make_table.search_text(experiment, "markdown")))
    if random is not None:
        for experiment in (evaluation, evaluation2):
            if experiment is not None:
                models = experiment.marker.get("models")
                tables.append(_demote(make_table.control_text(
                    random, experiment, "markdown", variants=models if isinstance(models, list) else None
                )))
    sections.append(_section("Tables", "\n".join(tables) or "no experiment to tabulate"))
    if strategies:
        sections.append(_section("Search strategies", strategy_tables(strategies, random, supernet_scores, dataset)))

    figure_lines = []
    if random is not None:
        extra = {"2nd-order DARTS": load_trials(evaluation2)} if evaluation2 is not None else None
        figure = plot_random_control(
            load_trials(random), load_trials(evaluation) if evaluation is not None else None, extra,
            title=f"Random-genotype control on {dataset_label(dataset)}: test accuracy",
        )
        figure.savefig(figures / "random_control.png", dpi=DPI)
        figure_lines.append(f"![random-genotype control]({FIGURES}/random_control.png)")
    cells = figures / "cells"
    for experiment, suffix in ((search, ""), (search2, "_order2")):
        if experiment is None:
            continue
        try:
            named = draw_cells.load_genotypes(str(Path(experiment.path) / SELECTION_FILE))
        except (GenotypeError, ValueError) as error:
            figure_lines.append(f"No cells of {experiment.name} to draw: {error}")
            continue
        named = [draw_cells.NamedGenotype(item.name + suffix, item.genotype, item.title) for item in named]
        paths, rendered = draw_cells.draw_all(named, cells, "png")
        for item, path in zip(named, paths, strict=True):
            link = path.relative_to(out).as_posix()
            figure_lines.append(f"![{item.title}]({link})" if rendered else f"[{item.title} (DOT source)]({link})")
        plotted = plot_search.plot_experiment(experiment, figures / experiment.name)
        figure_lines += [f"![{path.stem} ({experiment.name})]({path.relative_to(out).as_posix()})" for path in plotted]
    sections.append(_section("Figures", "\n\n".join(figure_lines) or "no figures"))

    path = out / REPORT_FILE
    path.write_text("\n".join(sections))
    (out / "report_inputs.json").write_text(
        json.dumps({key: (experiment.path if experiment else None) for key, experiment in found.items()}, indent=2)
    )
    return path


def strategy_tables(
    strategies: Mapping[str, Path], random: Experiment | None, supernet_scores: Path | None, dataset: str
) -> str:
    """Markdown: each strategy's cell against the random control, the strategies against each
    other, and the Kendall τ of each supernet's ranking of the random genotypes."""
    found = {name: experiment for name, location in strategies.items() if (experiment := _read(location)) is not None}
    parts = []
    if random is not None:
        for name, experiment in found.items():
            if name != "darts":  # the first-order DARTS cells' control is among the tables above
                parts.append(_demote(make_table.control_text(random, experiment, "markdown", variants=["vanilla"])))
    evaluations = {name: load_trials(experiment) for name, experiment in found.items()}
    table = strategy_comparisons(evaluations)
    if not table.empty:
        parts.append(_demote(make_table.render(
            table, display_comparisons(table), "markdown", "Search strategies against each other", COMPARISON_NOTE,
            COMPARISON_DISPLAY_ALIGN,
        )))
    if supernet_scores is not None and supernet_scores.is_file() and random is not None:
        scores = json.loads(supernet_scores.read_text())
        random_trials = load_trials(random)
        rows = []
        for strategy, entries in scores.items():
            for seed in sorted({entry["seed"] for entry in entries}):
                rows.append((f"{strategy} (search seed {seed})", [e for e in entries if e["seed"] == seed]))
        kendall = kendall_table(dict(rows), random_trials, "vanilla", dataset)
        shown = pd.DataFrame({
            "Supernet": kendall["strategy"], "K": kendall["k"],
            "Kendall τ": [format_number(v, 2) for v in kendall["kendall_tau"]],
            "p": [format_number(v, 3) for v in kendall["p_value"]],
        })
        parts.append(_demote(make_table.render(
            kendall, shown, "markdown", "Supernet ranking of the random genotypes against training them", KENDALL_NOTE,
            "lrrr",
        )))
    return "\n".join(parts) or "no strategy evaluation to tabulate"

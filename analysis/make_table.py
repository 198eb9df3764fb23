"""Print the paper's Table 1 and the cell-search summary from the sweeps' result folders.

Usage::

    python analysis/make_table.py                       # latest experiments under ./results
    python analysis/make_table.py --eval results/eval_cifar10_paper --format latex --out table1.tex
    python analysis/make_table.py --format csv --out table1.csv   # also writes table1_search.csv
    python analysis/make_table.py --results s3://bucket/dartsrenet   # a cluster's storage, read in place
    python analysis/make_table.py --random results/random_cifar10_paper_k8_s0   # a given random control

Table 1 (paper §4.2) has one row per dataset × model of the latest ``train`` experiment (an evaluation sweep);
the search summary one row per variant of the latest ``search`` experiment. With
``--search DIR`` alone, Table 1 is the latest evaluation made from that search's
selection (its ``sweep.json`` names the search), never an unrelated one. The
random-genotype control (``sweeps/random_baseline.py``; the latest ``random`` experiment,
or ``--random DIR``) adds a table per dataset × variant: the random cells' mean ± std and
best of K, the DARTS cell's rank and percentile among them, and the compute of each arm
(:mod:`analysis.control`). Experiments may
be local folders or storage URIs (``s3://…``, ``gs://…``, ``file://…``). See
:mod:`analysis.tables` for how numbers are computed and shown.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analysis.comparisons import COMPARISON_DISPLAY_ALIGN, COMPARISON_NOTE, baseline_comparisons, display_comparisons
from analysis.control import CONTROL_DISPLAY_ALIGN, CONTROL_NOTE, control_table, display_control_table
from analysis.formatting import to_csv, to_latex, to_markdown
from analysis.results import (
    DEFAULT_RESULTS_ROOT,
    Experiment,
    ExperimentNotFoundError,
    evaluations_of,
    latest_experiment,
    load_trials,
    read_experiment,
)
from analysis.tables import (
    RESULTS_DISPLAY_ALIGN,
    RESULTS_NOTE,
    SEARCH_DISPLAY_ALIGN,
    SEARCH_NOTE,
    display_results_table,
    display_search_summary,
    failure_lines,
    results_table,
    search_summary,
)
from dartsrenet.results import RANDOM_KIND, SEARCH_EXPERIMENT_FIELD, SEARCH_KIND, TRAIN_KIND

FORMATS: tuple[str, ...] = ("markdown", "latex", "csv")

HOW_TO_CREATE = (
    "Create them with `make demo` (a small search + evaluation on the digits dataset), or run the "
    "sweeps, e.g. `python sweeps/search_all_variants.py ...` then the evaluation sweep; "
    "or point to existing ones with --results ROOT, --search DIR, --eval DIR."
)


def render(
    numeric: pd.DataFrame, display: pd.DataFrame, fmt: str, title: str, note: str, align: str | None = None
) -> str:
    """One table as text.

    Args:
        numeric: the numeric table (written as is in CSV).
        display: the same rows as strings (Markdown and LaTeX).
        fmt: one of :data:`FORMATS`.
        title: heading (Markdown) or caption (LaTeX); not part of CSV.
        note: explanation printed under the table (Markdown) or in the caption (LaTeX).
        align: ``"l"``/``"r"`` per display column.
    """
    if fmt == "csv":
        return to_csv(numeric)
    if fmt == "latex":
        return to_latex(display, caption=f"{title}. {note}", align=align)
    if fmt == "markdown":
        return f"## {title}\n\n{to_markdown(display, align)}\n{note}\n"
    raise ValueError(f"unknown format {fmt!r}; valid formats: {', '.join(FORMATS)}")


def results_text(experiment: Experiment, fmt: str, trials: pd.DataFrame | None = None) -> str:
    """Table 1 of a ``train`` experiment as text in format ``fmt`` (``trials``: its
    :func:`load_trials`, read here when not given)."""
    table = results_table(load_trials(experiment) if trials is None else trials)
    title = f"Table 1: test accuracy per data set and model (experiment {experiment.name})"
    return render(table, display_results_table(table), fmt, title, RESULTS_NOTE, RESULTS_DISPLAY_ALIGN)


def search_text(experiment: Experiment, fmt: str, trials: pd.DataFrame | None = None) -> str:
    """The search summary of a ``search`` experiment as text in format ``fmt`` (``trials``:
    its :func:`load_trials`, read here when not given)."""
    summary = search_summary(load_trials(experiment) if trials is None else trials)
    title = f"Cell search: selected cell per variant (experiment {experiment.name})"
    return render(summary, display_search_summary(summary), fmt, title, SEARCH_NOTE, SEARCH_DISPLAY_ALIGN)


def control_text(
    random: Experiment, evaluation: Experiment | None, fmt: str, random_trials: pd.DataFrame | None = None,
    eval_trials: pd.DataFrame | None = None, variants: Sequence[str] | None = None,
) -> str:
    """The random-genotype control of a ``random`` experiment against the DARTS cells of
    ``evaluation`` (and the compute of the search those came from) as text in ``fmt``;
    ``variants`` limits the rows (:func:`analysis.control.control_table`)."""
    random_trials = load_trials(random) if random_trials is None else random_trials
    if evaluation is not None and eval_trials is None:
        eval_trials = load_trials(evaluation)
    search = search_of(evaluation)
    resources = {
        "random": random.marker.get("resources"),
        "eval": evaluation.marker.get("resources") if evaluation else None,
        "search": search.marker.get("resources") if search else None,
    }
    table = control_table(random_trials, eval_trials, load_trials(search) if search else None, resources, variants)
    against = f"against {evaluation.name}" if evaluation else "no evaluation of DARTS cells found"
    title = f"Random-genotype control (experiment {random.name}, {against})"
    return render(table, display_control_table(table), fmt, title, CONTROL_NOTE, CONTROL_DISPLAY_ALIGN)


def baselines_text(evaluation: Experiment, fmt: str, eval_trials: pd.DataFrame | None = None) -> str | None:
    """The searched cells of ``evaluation`` against its GRU/LSTM baselines (intervals, p-values)
    as text in ``fmt``; None when it holds no baseline beside a searched cell."""
    table = baseline_comparisons(load_trials(evaluation) if eval_trials is None else eval_trials)
    if table.empty:
        return None
    title = f"Searched cells against the baselines (experiment {evaluation.name})"
    return render(table, display_comparisons(table), fmt, title, COMPARISON_NOTE, COMPARISON_DISPLAY_ALIGN)


def search_of(evaluation: Experiment | None) -> Experiment | None:
    """The search experiment an evaluation's cells came from (its ``sweep.json`` names it),
    or ``None`` (the paper's cells, or the search is gone)."""
    location = evaluation.marker.get(SEARCH_EXPERIMENT_FIELD) if evaluation else None
    if not isinstance(location, str):
        return None
    try:
        return read_experiment(location)
    except (ExperimentNotFoundError, ValueError):
        return None


def _resolve(path: str | None, root: str, kind: str) -> Experiment | None:
    if path is None:
        return latest_experiment(root, kind)
    experiment = read_experiment(path)
    if experiment.kind != kind:
        raise ValueError(f"{path} is a {experiment.kind!r} experiment, not {kind!r}")
    return experiment


def evaluation_of(search: Experiment, root: str) -> Experiment | None:
    """The latest evaluation made from ``search``'s selection, under ``root`` or beside
    the search experiment; ``None`` when there is none."""
    parent = search.path.rstrip("/").rsplit("/", 1)[0] if "://" in search.path else str(Path(search.path).parent)
    found = {experiment.path: experiment for folder in (root, parent) for experiment in evaluations_of(search, folder)}
    ordered = sorted(found.values(), key=lambda experiment: (experiment.created, experiment.name))
    return ordered[-1] if ordered else None


def table_texts(
    search: Experiment | None, evaluation: Experiment | None, fmt: str, random: Experiment | None = None
) -> tuple[dict[str, str], list[str]]:
    """Table 1 of ``evaluation``, the search summary of ``search`` and the random-genotype
    control of ``random`` against ``evaluation`` (any may be ``None``) as text in format ``fmt``.

    Returns:
        ``{"results": …, "search": …, "random": …}`` (the tables there are), and one line
        per failed trial saying why a Seeds (or K) column counts it as failed.
    """
    parts: dict[str, str] = {}
    failures: list[str] = []
    eval_trials = None
    if evaluation is not None:
        eval_trials = load_trials(evaluation)
        parts["results"] = results_text(evaluation, fmt, eval_trials)
        baselines = baselines_text(evaluation, fmt, eval_trials)
        if baselines is not None:
            parts["baselines"] = baselines
        failures += [f"{evaluation.name}: {line}" for line in failure_lines(eval_trials, ("dataset", "model", "seed"))]
    if search is not None:
        trials = load_trials(search)
        parts["search"] = search_text(search, fmt, trials)
        failures += [f"{search.name}: {line}" for line in failure_lines(trials, ("dataset", "variant", "seed"))]
    if random is not None:
        trials = load_trials(random)
        parts["random"] = control_text(random, evaluation, fmt, trials, eval_trials)
        failures += [f"{random.name}: {line}" for line in failure_lines(trials, ("dataset", "model", "seed"))]
    return parts, failures


def write_tables(parts: dict[str, str], fmt: str, out: Path) -> None:
    """Write :func:`table_texts` to ``out``; in CSV, Table 1 to ``out``, the search
    summary and the random control to :func:`part_output_path`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt != "csv":
        out.write_text("\n".join(parts.values()))
        return
    if "results" in parts:
        out.write_text(parts["results"])
    for part in ("baselines", "search", "random"):
        if part in parts:
            part_output_path(out, part).write_text(parts[part])


def part_output_path(out: Path, part: str) -> Path:
    """Where a table other than Table 1 goes in CSV mode: ``table1.csv`` →
    ``table1_search.csv``, ``table1_random.csv``."""
    return out.with_name(f"{out.stem}_{part}{out.suffix}")


def search_output_path(out: Path) -> Path:
    """Where the search summary goes in CSV mode: ``table1.csv`` → ``table1_search.csv``."""
    return part_output_path(out, "search")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--search", metavar="DIR|URI", help="search experiment folder (default: latest under --results)"
    )
    parser.add_argument(
        "--eval", metavar="DIR|URI",
        help="evaluation experiment folder (default: with --search, the latest evaluation of that search's "
        "selection; else the latest under --results)",
    )
    parser.add_argument(
        "--random", metavar="DIR|URI",
        help="random-genotype control experiment of sweeps/random_baseline.py (default: the latest under --results, "
        "if any)",
    )
    parser.add_argument(
        "--results", metavar="ROOT|URI", default=DEFAULT_RESULTS_ROOT,
        help="results root: a folder or a storage URI such as s3://bucket/prefix (default: ./results)",
    )
    parser.add_argument("--format", choices=FORMATS, default="markdown", help="output format (default: markdown)")
    parser.add_argument(
        "--out",
        metavar="FILE",
        type=Path,
        help="also write the output to FILE; with --format csv, FILE gets Table 1, "
        "FILE_search.csv (same suffix) the search summary and FILE_random.csv the random control",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: print the tables and optionally write them. Returns the exit status
    (2: no such experiment, or the tables could not be written to ``--out``: one line naming the folder)."""
    args = parse_args(argv)
    try:
        search = _resolve(args.search, args.results, SEARCH_KIND)
        if args.search is not None and args.eval is None:
            evaluation = evaluation_of(search, args.results)
        else:
            evaluation = _resolve(args.eval, args.results, TRAIN_KIND)
        random = _resolve(args.random, args.results, RANDOM_KIND)
    except (ExperimentNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if search is None and evaluation is None:
        print(f"error: no search or evaluation experiments under {args.results}/. {HOW_TO_CREATE}", file=sys.stderr)
        return 1

    if evaluation is None and args.search is not None:
        print(f"note: no evaluation experiment made from {search.path} under {args.results}/ or beside it; "
              "showing the search only", file=sys.stderr)
    elif evaluation is None:
        print(f"note: no evaluation experiment under {args.results}/; showing the search only", file=sys.stderr)
    if search is None:
        print(f"note: no search experiment under {args.results}/; showing Table 1 only", file=sys.stderr)
    parts, failures = table_texts(search, evaluation, args.format, random)
    for line in failures:  # why the Seeds column counts a trial as failed
        print(f"note: failed trial {line}", file=sys.stderr)
    if args.format == "csv":
        print("\n".join(f"# {name}\n{text}" for name, text in parts.items()), end="")
    else:
        text = "\n".join(parts.values())
        print(text, end="")
    if args.out is not None:
        try:
            write_tables(parts, args.format, args.out)
        except OSError as error:  # read-only folder, disk full, no permission, …
            print(f"error: cannot write {args.out} into the folder {args.out.parent}: "
                  f"{error.strerror or error}; the tables are printed above, choose another --out", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

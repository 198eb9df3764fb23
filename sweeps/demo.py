"""``make demo``: the whole study in small, on the embedded ``digits`` dataset on CPU.

1. The cell search sweep: three variants × 2 seeds (``demo`` preset), as Ray Tune
   trials; the selected genotype per variant goes to ``selected_genotypes.json``.
2. The evaluation sweep: the three selected cells + the GRU and LSTM baselines, 1 seed.
3. The random-genotype control: 4 random cells per variant, trained like the selected
   ones (``sweeps/random_baseline.py``).
4. The analysis: Table 1, the search summary and the random control (printed, and saved
   as Markdown and CSV), drawings of the selected cells beside the paper's three, α,
   learning-curve and random-control plots.

Everything lands in one folder (default ``results/demo``), listed at the end. Running
the demo again resumes the sweeps (finished trials are reused) and redoes the analysis;
``python analysis/make_table.py`` afterwards prints the table with no arguments.

Every sweep is planned — every trial's config built and checked — before Ray starts,
so a bad ``--set`` value is one ``error:`` line. Without graphviz's ``dot`` the cell
drawings are written as DOT sources and the demo still succeeds, ending with how to
render them.

Usage::

    python sweeps/demo.py                     # what `make demo` runs
    python sweeps/demo.py --set epochs=1      # extra config overrides for every sweep
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Show every trial's progress lines (Ray folds similar lines of different trials together).
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


from analysis import draw_cells, make_table, plot_random, plot_search
from analysis.results import load_trials
from dartsrenet.genotypes import GenotypeError
from dartsrenet.results import PARAMS_FILE, SELECTION_FILE, SWEEP_MARKER, read_experiment
from dartsrenet.variants import VARIANTS
from sweeps import stages
from sweeps.errors import EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE, SweepError, usage_error

DATASET = "digits"
PRESET = "demo"
DEFAULT_FOLDER = Path("results") / "demo"
NUM_SAMPLES = 4


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    stages.add_driver_arguments(
        parser, out=DEFAULT_FOLDER, out_help="results folder: experiments, tables, drawings, plots",
        search_seeds=2, eval_seeds=1, num_samples=NUM_SAMPLES,
    )
    return parser.parse_args(argv)


def shared_values(args: argparse.Namespace, storage: Path) -> dict[str, Any]:
    """Option values every stage of the demo shares (by destination)."""
    return stages.shared_values(args, PRESET, storage)


def plan_search(args: argparse.Namespace, storage: Path) -> stages.Stage:
    return stages.search(dataset=DATASET, num_seeds=args.search_seeds, **shared_values(args, storage))


def plan_evaluation(args: argparse.Namespace, storage: Path, genotypes: str) -> stages.Stage:
    return stages.evaluation(
        genotypes=genotypes, datasets=[DATASET], num_seeds=args.eval_seeds, **shared_values(args, storage)
    )


def plan_random(args: argparse.Namespace, storage: Path) -> stages.Stage:
    return stages.random_control(num_samples=args.num_samples, datasets=[DATASET], **shared_values(args, storage))


def check_plans(args: argparse.Namespace, storage: Path) -> None:
    """Plan every stage without running it, so that bad arguments stop the demo before
    Ray starts. The evaluation is planned with the paper's cells in place of the ones the
    search will select: its trials have the same config fields.

    Raises:
        SweepError: with the sweep scripts' one-line message.
    """
    plan_search(args, storage)
    plan_evaluation(args, storage, "paper")
    plan_random(args, storage)


def run_sweeps(
    args: argparse.Namespace, storage: Path, command: str
) -> tuple[int, Path | None, Path | None, Path | None]:
    """Search, evaluation and random control, each planned once and run in this process's
    Ray; returns (status, search experiment, eval experiment, random experiment)."""
    stages.banner(f"1/4 cell search: 3 variants x {args.search_seeds} seeds on {DATASET}")
    search = plan_search(args, storage)
    status = stages.run_stage(search, command)
    selection = stages.selection_of(search)
    if status == EXIT_USAGE or selection is None:
        return status or EXIT_INCOMPLETE, search.experiment, None, None

    stages.banner(f"2/4 evaluation: selected cells + GRU + LSTM, {args.eval_seeds} seed(s) on {DATASET}")
    try:
        evaluation = plan_evaluation(args, storage, str(selection))
    except SweepError as error:
        return usage_error(error), search.experiment, None, None
    eval_status = stages.run_stage(evaluation, command)
    if eval_status == EXIT_USAGE:
        return eval_status, search.experiment, None, None

    stages.banner(f"3/4 random-genotype control: {args.num_samples} random cells per variant, trained alike")
    control = plan_random(args, storage)
    random_status = stages.run_stage(control, command)
    return max(status, eval_status, random_status), search.experiment, evaluation.experiment, control.experiment


def side_by_side(ours: Sequence[Path], paper: Sequence[Path], out: Path) -> Path:
    """One figure: our selected cells (top row) above the paper's (bottom row)."""
    from matplotlib.figure import Figure
    from matplotlib.image import imread

    columns = max(len(ours), len(paper), 1)
    figure = Figure(figsize=(5 * columns, 9), layout="constrained")
    axes = figure.subplots(2, columns, squeeze=False)
    for row, paths in enumerate((ours, paper)):
        for column in range(columns):
            axis = axes[row][column]
            axis.axis("off")
            if column < len(paths):
                axis.imshow(imread(paths[column]))
    figure.suptitle("top: the cells selected by this demo's search; bottom: the paper's cells")
    figure.savefig(out, dpi=120)
    return out


def run_analysis(
    storage: Path, search_dir: Path, eval_dir: Path | None, random_dir: Path | None = None
) -> tuple[int, str | None]:
    """Tables (printed + saved), cell drawings, search plots, the random-control figure.

    Returns:
        The exit status, and — when graphviz's ``dot`` is missing, so that the drawings
        were written as DOT sources — one line saying how to render them (else ``None``).
    """
    stages.banner("4/4 analysis")
    search = read_experiment(search_dir)
    evaluation = read_experiment(eval_dir) if eval_dir else None
    random = read_experiment(random_dir) if random_dir else None
    for fmt, name in (("markdown", "table1.md"), ("csv", "table1.csv")):
        parts, failures = make_table.table_texts(search, evaluation, fmt, random)
        make_table.write_tables(parts, fmt, storage / name)
        if fmt == "markdown":  # printed once; the CSV form is only written
            print("\n".join(parts.values()), end="")
            for line in failures:
                print(f"note: failed trial {line}", file=sys.stderr)
    if random is not None:
        figure = plot_random.plot_random_control(
            load_trials(random), load_trials(evaluation) if evaluation else None,
            title="random-genotype control: test accuracy on digits",
        )
        (storage / "plots").mkdir(parents=True, exist_ok=True)
        figure.savefig(storage / "plots" / "random_control.png", dpi=plot_random.DPI)

    status = EXIT_OK
    try:
        ours_named = draw_cells.load_genotypes(str(search_dir))
    except GenotypeError as error:  # no selected cell (e.g. no search seed finished)
        print(f"note: no cells of this search to draw: {error}", file=sys.stderr)
        ours_named, status = [], EXIT_INCOMPLETE
    cells = storage / "cells"
    drawn = [draw_cells.draw_all(named, cells, "png") for named in (ours_named, draw_cells.paper_genotypes())]
    hint = None
    if not all(rendered for _, rendered in drawn):
        hint = draw_cells.render_hint(sorted(cells.glob("*.dot")), "png", "make demo")
    ours = [cells / f"{variant}.png" for variant in VARIANTS if (cells / f"{variant}.png").is_file()]
    paper = [cells / f"paper_{variant}.png" for variant in VARIANTS if (cells / f"paper_{variant}.png").is_file()]
    if ours or paper:
        side_by_side(ours, paper, cells / "comparison.png")

    plot_search.plot_experiment(search, storage / "plots")
    return status, hint


def list_folder(storage: Path) -> None:
    """The results folder: experiments (one line each) and the analysis files."""
    print(f"\nresults in {storage}/:")
    for path in sorted(storage.iterdir()):
        if (path / SWEEP_MARKER).is_file():
            trials = sum(1 for child in path.iterdir() if (child / PARAMS_FILE).is_file())
            extra = ", selected_genotypes.json" if (path / SELECTION_FILE).is_file() else ""
            print(f"  {path.name}/  (experiment: {trials} trial folders, sweep.json{extra})")
        elif path.is_dir():
            print(f"  {path.name}/")
            for child in sorted(path.rglob("*")):
                if child.is_file():
                    print(f"      {child.relative_to(path)}  ({child.stat().st_size / 1024:.0f} KiB)")
        else:
            print(f"  {path.name}  ({path.stat().st_size / 1024:.0f} KiB)")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    command = shlex.join(["python", "sweeps/demo.py", *argv])  # recorded in each experiment's sweep.json
    started = time.perf_counter()
    storage = args.out.expanduser().resolve()
    try:
        check_plans(args, storage)
    except SweepError as error:
        return usage_error(error)
    storage.mkdir(parents=True, exist_ok=True)
    with stages.local_ray(args.num_cpus):
        status, search_dir, eval_dir, random_dir = run_sweeps(args, storage, command)
    if status == EXIT_USAGE or search_dir is None or not search_dir.is_dir():
        print("error: the search sweep did not run; see the messages above", file=sys.stderr)
        return EXIT_USAGE
    analysis_status, render_hint = run_analysis(storage, search_dir, eval_dir, random_dir)
    status = max(status, analysis_status)
    list_folder(storage)
    minutes, seconds = divmod(time.perf_counter() - started, 60)
    print(f"\ndemo finished in {int(minutes)} min {seconds:.0f} s"
          + ("" if status == 0 else " (with problems: see above; run `make demo` again to resume)"))
    print("tables: python analysis/make_table.py   (reads the latest experiments under ./results)")
    if render_hint is not None:
        print(f"cell drawings: {render_hint}")
    return status


if __name__ == "__main__":
    sys.exit(main())

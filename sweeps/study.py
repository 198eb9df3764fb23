"""``make study``: the searched cells against random ones on Fashion-MNIST, on a CPU, in
about two and a half hours (2 h 27 min on 2026-12-03) with every search strategy (docs/study-fashion-mnist.md).

Fashion-MNIST (60,000/10,000 real 28×28 images; offline from Debian's
``dataset-fashion-mnist``) at the ``study`` preset (training subsets, narrow networks:
``dartsrenet/config.py``), every run a Ray Tune trial:

1. cell search, first-order DARTS: the three variants × 2 seeds;
2. cell search, second-order DARTS (``arch_order=2``): vanilla × 2 seeds;
3. evaluation of the cells selected by 1, and the GRU and LSTM baselines: 3 seeds each;
4. evaluation of the vanilla cell selected by 2: 3 seeds;
5. random-genotype control: K = 8 random genotypes per variant, one seed each;
6. every other search strategy (``--strategies``, default all: sdarts_rs, gdas, rsws,
   darts_pt; dartsrenet/strategies): a vanilla search × the search seeds, and the
   evaluation of its selected cell × the evaluation seeds — against the same random control;
   then each search's trained supernet scores the control's K genotypes (Kendall τ against
   their stand-alone accuracy, ``supernet_scores.json``);
7. analysis: the tables (Table 1 of every evaluation, the searches, the random control of
   every searched cell, the searched cells against GRU/LSTM and strategy against strategy
   with 95 % intervals and p-values, Kendall τ),
   the distribution of random cells' accuracies with the DARTS cells and baselines marked,
   drawings of the found cells, and ``report.md`` with all of them, the wall time of each
   stage, the command and the machine.

Everything lands in ``--out`` (default ``results/study``). Running the command again
resumes the sweeps (finished trials are reused) and redoes the analysis; the wall time
of a stage is the longest run recorded for it (a resumed stage that had nothing left
to do does not replace it).

Usage::

    python sweeps/study.py                    # what `make study` runs
    python sweeps/study.py --num-samples 4 --set epochs=2    # smaller (a test, a trial run)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

# Show every trial's progress lines (Ray folds similar lines of different trials together).
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


from dartsrenet.results import write_json
from sweeps import stages
from sweeps.errors import EXIT_INCOMPLETE, EXIT_OK, SweepError, usage_error

DATASET = "fashion_mnist"
PRESET = "study"
DEFAULT_FOLDER = Path("results") / "study"
TIMINGS_FILE = "timings.json"
EXPERIMENTS = {
    "search": "search_first_order",
    "search_order2": "search_second_order",
    "eval": "eval_first_order",
    "eval_order2": "eval_second_order",
    "random": "random_control",
}
"""Stage → experiment name inside ``--out``."""

STRATEGIES = ("sdarts_rs", "gdas", "rsws", "darts_pt")
"""The search strategies beside first-order DARTS that the study runs (vanilla only)."""
STRATEGY_OVERRIDES = {"rsws": ["rsws_candidates=50", "selection_batches=8"], "darts_pt": ["selection_batches=8"]}
"""What the strategies' selections cost in the study: 50 ranked genotypes, 8 val_cs batches per score."""
SCORE_BATCHES = 8
"""val_cs batches a supernet scores each random-control genotype on (Kendall τ)."""
SUPERNET_SCORES_FILE = "supernet_scores.json"


def strategy_experiments(strategy: str) -> tuple[str, str]:
    """(search, evaluation) experiment names of a strategy."""
    return f"search_{strategy}", f"eval_{strategy}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    stages.add_driver_arguments(
        parser, out=DEFAULT_FOLDER, out_help="results folder: experiments, tables, figures, report.md",
        search_seeds=2, eval_seeds=3, num_samples=8,
    )
    parser.add_argument("--data-root", default="data", metavar="DIR", help="where datasets live (default: ./data)")
    parser.add_argument(
        "--strategies", default=",".join(STRATEGIES), metavar="LIST",
        help=f"comma-separated search strategies beside DARTS ({', '.join(STRATEGIES)}; default: all; '' for none)",
    )
    args = parser.parse_args(argv)
    args.strategies = [name.strip() for name in args.strategies.split(",") if name.strip()]
    return args


def check_strategies(args: argparse.Namespace) -> None:
    """Raises :class:`SweepError` for a strategy the study does not know."""
    unknown = [name for name in args.strategies if name not in STRATEGIES]
    if unknown:
        raise SweepError(f"unknown --strategies {', '.join(unknown)}; valid: {', '.join(STRATEGIES)}")


def plan_strategy_search(args: argparse.Namespace, storage: Path, strategy: str) -> stages.Stage:
    """A strategy's vanilla search (stage 6)."""
    shared = shared_values(args, storage)
    overrides = [*shared["overrides"], f"strategy={strategy}", *STRATEGY_OVERRIDES.get(strategy, [])]
    return stages.search(
        dataset=DATASET, num_seeds=args.search_seeds, variants=["vanilla"], name=strategy_experiments(strategy)[0],
        **{**shared, "overrides": overrides},
    )


def plan_strategy_evaluation(args: argparse.Namespace, storage: Path, strategy: str, genotypes: str) -> stages.Stage:
    """The evaluation of a strategy's selected vanilla cell (stage 6)."""
    return stages.evaluation(
        genotypes=genotypes, datasets=[DATASET], num_seeds=args.eval_seeds, models=["vanilla"],
        name=strategy_experiments(strategy)[1], **shared_values(args, storage),
    )


def shared_values(args: argparse.Namespace, storage: Path) -> dict:
    """Option values every stage of the study shares (by destination)."""
    return stages.shared_values(args, PRESET, storage, data_root=args.data_root)


def plan_searches(args: argparse.Namespace, storage: Path) -> list[stages.Stage]:
    """Stages 1 and 2 (raises :class:`SweepError` for bad arguments)."""
    shared = shared_values(args, storage)
    return [
        stages.search(dataset=DATASET, num_seeds=args.search_seeds, name=EXPERIMENTS["search"], **shared),
        stages.search(
            dataset=DATASET, num_seeds=args.search_seeds, variants=["vanilla"], name=EXPERIMENTS["search_order2"],
            **{**shared, "overrides": [*shared["overrides"], "arch_order=2"]},
        ),
    ]


def plan_evaluation(args: argparse.Namespace, storage: Path, genotypes: str, order2: bool) -> stages.Stage:
    """Stage 3 (``order2`` False) or 4; ``genotypes``: a selection file, or ``paper`` to check the plan early."""
    models = {"models": ["vanilla"]} if order2 else {}
    return stages.evaluation(
        genotypes=genotypes, datasets=[DATASET], num_seeds=args.eval_seeds,
        name=EXPERIMENTS["eval_order2" if order2 else "eval"], **models, **shared_values(args, storage),
    )


def plan_random(args: argparse.Namespace, storage: Path) -> stages.Stage:
    """Stage 5."""
    return stages.random_control(
        num_samples=args.num_samples, datasets=[DATASET], num_seeds=1, name=EXPERIMENTS["random"],
        **shared_values(args, storage),
    )


def timed(name: str, storage: Path, body: Callable[[], int]) -> int:
    """Run a stage and record its wall time in ``timings.json`` (the longest run kept)."""
    started = time.perf_counter()
    status = body()
    seconds = time.perf_counter() - started
    path = storage / TIMINGS_FILE
    timings = json.loads(path.read_text()) if path.is_file() else {}
    timings[name] = max(seconds, float(timings.get(name, 0.0)))
    write_json(str(path), timings)
    return status


def run_sweeps(args: argparse.Namespace, storage: Path, command: str) -> int:
    """Stages 1–5 in this process's Ray; returns the worst exit status."""
    status = EXIT_OK
    searches = plan_searches(args, storage)
    for number, (key, search) in enumerate(zip(("search", "search_order2"), searches, strict=True), start=1):
        order = "second" if key == "search_order2" else "first"
        stages.banner(f"{number}/7 cell search, {order}-order DARTS: {', '.join(search.plan.details['variants'])} "
                      f"x {args.search_seeds} seeds on {DATASET}")
        status = max(status, timed(key, storage, lambda search=search: stages.run_stage(search, command)))

    for number, (key, search) in enumerate(zip(("eval", "eval_order2"), searches, strict=True), start=3):
        selection = stages.selection_of(search)
        stages.banner(f"{number}/7 evaluation of the cells of {search.plan.name}, {args.eval_seeds} seeds each")
        if selection is None:
            print(f"note: {search.plan.name} selected no cell (no search seed finished); not evaluated")
            status = max(status, EXIT_INCOMPLETE)
            continue
        evaluation = plan_evaluation(args, storage, str(selection), order2=key == "eval_order2")
        status = max(status, timed(key, storage, lambda evaluation=evaluation: stages.run_stage(evaluation, command)))

    stages.banner(f"5/7 random-genotype control: K = {args.num_samples} per variant, 1 seed each")
    control = plan_random(args, storage)
    status = max(status, timed("random", storage, lambda: stages.run_stage(control, command)))

    for strategy in args.strategies:
        search = plan_strategy_search(args, storage, strategy)
        stages.banner(f"6/7 strategy {strategy}: vanilla search x {args.search_seeds} seeds, then its cell x "
                      f"{args.eval_seeds} seeds")
        status = max(status, timed(f"search_{strategy}", storage, lambda search=search: stages.run_stage(search, command)))
        selection = stages.selection_of(search)
        if selection is None:
            print(f"note: {search.plan.name} selected no cell (no search seed finished); not evaluated")
            status = max(status, EXIT_INCOMPLETE)
            continue
        evaluation = plan_strategy_evaluation(args, storage, strategy, str(selection))
        status = max(status, timed(f"eval_{strategy}", storage,
                                   lambda evaluation=evaluation: stages.run_stage(evaluation, command)))
    return status


def score_supernets(args: argparse.Namespace, storage: Path) -> Path:
    """Every finished vanilla search's supernet scores the random control's K genotypes (their
    paths, shared weights, :data:`SCORE_BATCHES` val_cs batches); writes and returns
    :data:`SUPERNET_SCORES_FILE`: ``{strategy: [{"seed", "model", "genotype", "accuracy"}, …]}``.
    A search scored before (same trial, same genotypes) is not scored again."""
    from analysis.results import FINISHED, config_column, load_trials, read_experiment
    from dartsrenet.genotypes import sample_genotypes
    from dartsrenet.results import RUN_FOLDER
    from dartsrenet.strategies.selection import score_on_run
    from sweeps.random_baseline import model_name

    path = storage / SUPERNET_SCORES_FILE
    previous = json.loads(path.read_text()) if path.is_file() else {}
    genotypes = {model_name("vanilla", k): genotype for k, genotype in enumerate(sample_genotypes(args.num_samples, 0))}
    searches = {"darts": storage / EXPERIMENTS["search"]}
    searches.update({name: storage / strategy_experiments(name)[0] for name in args.strategies})
    scores = {}
    for strategy, location in searches.items():
        if not location.is_dir():
            continue
        trials = load_trials(read_experiment(str(location)))
        finished = trials[(trials["status"] == FINISHED) & (trials[config_column("variant")] == "vanilla")]
        entries = []
        for trial_dir, seed in zip(finished["trial_dir"], finished[config_column("seed")], strict=True):
            done = [e for e in previous.get(strategy, []) if e["trial"] == trial_dir and e["model"] in genotypes]
            if len(done) == len(genotypes):
                entries += done
                continue
            accuracies = score_on_run(Path(trial_dir) / RUN_FOLDER, genotypes, batches=SCORE_BATCHES)
            entries += [{"trial": trial_dir, "seed": int(seed), "model": model, "genotype": genotypes[model].to_string(),
                         "accuracy": accuracy} for model, accuracy in accuracies.items()]
        scores[strategy] = entries
    write_json(str(path), scores)
    return path


def machine() -> str:
    """One line: CPU model, cores, memory, OS, Python and torch."""
    import torch

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM"
    except (ValueError, OSError, AttributeError):
        memory = "RAM unknown"
    return (f"{model}, {os.cpu_count()} cores, {memory}; {platform.system()} {platform.release()}; "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    command = shlex.join(["python", "sweeps/study.py", *argv])
    storage = args.out.expanduser().resolve()
    try:  # every stage planned before Ray starts (the evaluations with the paper's cells as stand-ins)
        check_strategies(args)
        plan_searches(args, storage)
        plan_evaluation(args, storage, "paper", order2=False)
        plan_random(args, storage)
        for strategy in args.strategies:
            plan_strategy_search(args, storage, strategy)
            plan_strategy_evaluation(args, storage, strategy, "paper")
    except SweepError as error:
        return usage_error(error)
    storage.mkdir(parents=True, exist_ok=True)
    with stages.local_ray(args.num_cpus):
        status = run_sweeps(args, storage, command)
    from analysis import report  # after the sweeps: the analysis needs no Ray

    stages.banner("7/7 supernet scores of the random genotypes, and analysis")
    scores = score_supernets(args, storage)
    experiments = {key: storage / name for key, name in EXPERIMENTS.items()}
    strategies = {"darts": storage / EXPERIMENTS["eval"]}
    strategies.update({name: storage / strategy_experiments(name)[1] for name in args.strategies})
    timings = json.loads((storage / TIMINGS_FILE).read_text())
    report_path = report.write_study_report(
        storage, experiments, timings=timings, command=command, machine=machine(), dataset=DATASET,
        strategies=strategies, supernet_scores=scores,
    )
    print(f"\nreport: {report_path}")
    return status


if __name__ == "__main__":
    sys.exit(main())

"""Network-design sweep: search the ReNet network around the cell for an accuracy–cost
Pareto front, with Optuna's multi-objective samplers in Ray Tune (paper §5's future
work; docs/network-design.md).

The space (:class:`dartsrenet.design_space.DesignSpace`): the cell (GRU, LSTM, the
paper's three DartsReNet cells, genotypes selected by a search experiment or drawn by a
random-genotype control, each with its variant), the layer layout (1 … ``--layers`` ReNet
layers, a patch size per layer), a width per layer, the sequence ordering (row/column,
serpentine, Hilbert) and the learning rate. Two objectives: the validation accuracy of
the selected epoch (max) and the parameter count or the measured inference time per
image (min, ``--objective``). ``--max-params`` bounds the size: widths are drawn within
the budget, so every sampled network fits it.

No ASHA: ASHA stops trials by one metric, and stopping by accuracy would drop the small,
slow-to-learn networks that a size–accuracy front is about; every trial runs the
preset's full epochs, so the front compares like with like. (Successive halving would
fit a Pareto search only if each rung promoted by non-dominated rank over both
objectives, which Ray's schedulers do not do.) Every trial is an ordinary evaluation run
folder (:func:`sweeps.trainable.train_trial`).

After the search, a second experiment (``<name>_reeval``) trains the front's members
with ``--front-seeds`` more seeds, and the front's most accurate network with every
ordering over ``--ordering-seeds`` seeds (the ordering table). The analysis:
``python analysis/pareto.py EXPERIMENT``.

Usage::

    python sweeps/design_network.py --dataset digits --preset design
    python sweeps/design_network.py --objective latency --max-params 1.5M --num-samples 64 --gpus-per-trial 0.25
    python sweeps/design_network.py --genotypes results/search_cifar10_paper --random results/random_cifar10_paper_k8_s0

Running the same command again resumes both experiments (default name
``design_<dataset>_<preset>_<objective>[_max<N>]_n<samples>_seed<seed>``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import threading
from collections.abc import Sequence
from typing import Any

import optuna
from ray import tune
from ray.tune.search.optuna import OptunaSearch

from dartsrenet import results
from dartsrenet.data import get_dataset_info
from dartsrenet.design_results import (
    OBJECTIVES,
    REEVAL_STAGE,
    REEVAL_SUFFIX,
    SEARCH_STAGE,
    STAGE_FIELD,
    Outcome,
    finished_outcomes,
    front_of,
    most_accurate,
    with_ordering,
)
from dartsrenet.design_space import DesignCell, DesignSpace, layouts, paper_cells, parse_count
from dartsrenet.orderings import ORDERINGS
from dartsrenet.paper import MODELS
from dartsrenet.variants import VARIANTS
from sweeps import failure_drill, options, trainable
from sweeps.errors import EXIT_INCOMPLETE, SweepError
from sweeps.experiment import SweepPlan, resolved_configs, result_status, run_plan, run_script
from sweeps.evaluate_genotypes import load_genotypes

SCRIPT = "sweeps/design_network.py"
ACCURACY_METRIC = trainable.SELECTED_SCORE  # the selected epoch's validation accuracy (−1 while none is)
COST_METRICS = dict(zip(OBJECTIVES, ("params", "latency_ms"), strict=True))
"""``--objective`` → the reported metric minimised beside the accuracy."""
SAMPLERS = ("nsga2", "motpe")
DESIGN_EXPERIMENT_FIELD = "design_experiment"
"""``sweep.json`` field of the re-evaluation: the search experiment it re-evaluates."""


@dataclasses.dataclass(frozen=True)
class DesignPlan(SweepPlan):
    """A planned design search: the sweep plan and its space (a searcher's, not a grid)."""

    space: DesignSpace | None = None


def count_argument(text: str) -> int:
    """``--max-params`` as argparse's ``type``: ``1.5M``, ``800k``, ``2e6``."""
    try:
        return parse_count(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="Run the same command again to resume the experiment."
    )
    parser.add_argument("--dataset", help="dataset (default: the preset's: design → digits, paper → cifar10)")
    parser.add_argument("--num-samples", type=int, default=20, metavar="N", help="networks to try (default: 20)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler and of every search trial (default: 0)")
    parser.add_argument(
        "--objective", choices=list(COST_METRICS), default="params",
        help="the cost minimised beside the validation accuracy: parameters, or measured inference "
        "milliseconds per image (default: params)",
    )
    parser.add_argument(
        "--max-params", type=count_argument, metavar="COUNT",
        help="parameter budget, e.g. 1.5M or 800k: every sampled network fits it (default: none)",
    )
    parser.add_argument("--sampler", choices=SAMPLERS, default="nsga2", help="Optuna's multi-objective sampler (default: nsga2)")
    parser.add_argument(
        "--population", type=int, default=6, metavar="P",
        help="NSGA-II's population: the first P trials are random, later ones bred from the front (default: 6)",
    )
    parser.add_argument(
        "--cells", nargs="+", choices=list(MODELS), default=list(MODELS), metavar="CELL",
        help=f"the paper's cells in the space (default: all: {', '.join(MODELS)})",
    )
    parser.add_argument(
        "--genotypes", metavar="FILE|DIR",
        help="also the genotypes a search sweep selected (selected_genotypes.json or its experiment), with their variants",
    )
    parser.add_argument(
        "--random", metavar="DIR", help="also the genotypes (and variants) of a random-genotype control experiment"
    )
    parser.add_argument("--layers", type=int, default=3, metavar="L", help="at most L ReNet layers (default: 3)")
    parser.add_argument(
        "--patch-sizes", type=int, nargs="+", default=[2, 4], metavar="P", help="a layer's patch sizes (default: 2 4)"
    )
    parser.add_argument(
        "--widths", type=int, nargs="+", default=[16, 32, 64], metavar="W",
        help="a layer's widths, even (default: 16 32 64; the paper's N = 256)",
    )
    parser.add_argument(
        "--orderings", nargs="+", choices=sorted(ORDERINGS), default=sorted(ORDERINGS), metavar="ORDERING",
        help=f"sequence orderings (default: all: {', '.join(sorted(ORDERINGS))})",
    )
    parser.add_argument(
        "--lr", type=float, nargs=2, default=[0.01, 0.1], metavar=("LOW", "HIGH"),
        help="log-uniform learning-rate range (default: 0.01 0.1)",
    )
    parser.add_argument(
        "--front-seeds", type=int, default=1, metavar="K", help="re-train every front member with K more seeds (default: 1)"
    )
    parser.add_argument(
        "--ordering-seeds", type=int, default=2, metavar="K",
        help="train the front's most accurate network with every ordering over K seeds (default: 2; 0: no ordering table)",
    )
    options.add_sweep_arguments(parser, default_name="design_<dataset>_<preset>_<objective>[_max<N>]_n<samples>_seed<seed>")
    # a design whose outputs become non-finite fails the same way again (same seed): no retry by
    # default; pass --max-failures on clusters where trials can fail for other reasons
    parser.set_defaults(max_failures=0)
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def design_cells(args: argparse.Namespace) -> list[DesignCell]:
    """The cell choices: the paper's named ones, a search's selection, a random control's draws.

    Raises:
        SweepError: for an unreadable ``--genotypes`` or ``--random``.
    """
    cells = [cell for cell in paper_cells([m for m in args.cells if m in VARIANTS]) if cell.name in args.cells]
    if args.genotypes:
        source = load_genotypes(args.genotypes)
        cells += [DesignCell(f"searched_{variant}", genotype.to_string(), variant)
                  for variant, genotype in sorted(source.genotypes.items())]
    if args.random:
        try:
            experiment = results.read_experiment(args.random)
        except (FileNotFoundError, ValueError) as error:
            raise SweepError(f"--random {args.random}: {error}") from None
        if experiment.kind != results.RANDOM_KIND:
            raise SweepError(f"--random {args.random}: a {experiment.kind} experiment, not a random-genotype control")
        drawn = {(entry.get("genotype"), entry.get("variant"), entry.get("sample")) for entry in experiment.planned}
        cells += [DesignCell(f"random{sample}_{variant}", genotype, variant)
                  for genotype, variant, sample in sorted(drawn, key=lambda d: (d[2], d[1])) if genotype and variant]
    if not cells:
        raise SweepError("no cell in the space: give --cells, --genotypes or --random")
    return cells


def default_name(args: argparse.Namespace, dataset: str, preset: str, overrides: dict[str, Any]) -> str:
    budget = f"_max{args.max_params}" if args.max_params else ""
    return (f"design_{dataset}_{options.preset_tag(preset)}{options.overrides_tag(overrides)}_{args.objective}"
            f"{budget}_n{args.num_samples}_seed{args.seed}")


def _check_counts(args: argparse.Namespace) -> None:
    for name, value, least in [("--num-samples", args.num_samples, 1), ("--layers", args.layers, 1),
                               ("--population", args.population, 2), ("--front-seeds", args.front_seeds, 0),
                               ("--ordering-seeds", args.ordering_seeds, 0)]:
        if value < least:
            raise SweepError(f"{name} must be at least {least}, got {value}")
    if any(p < 1 for p in args.patch_sizes):
        raise SweepError(f"--patch-sizes must be at least 1, got {args.patch_sizes}")


def plan(args: argparse.Namespace) -> DesignPlan:
    """The design search's space, trial template and experiment (no Ray needed).

    Raises:
        SweepError: for invalid arguments, before Ray starts.
    """
    _check_counts(args)
    preset = options.preset_argument(args.preset)
    overrides = options.sweep_overrides("train", args.overrides, args.data_root)
    for field in ("network", "channels", "lr"):
        if field in overrides:
            raise SweepError(f"--set {field}: the design sweep chooses it per trial (see --widths, --lr)")
    if overrides.get("measure_latency") is False and args.objective == "latency":
        raise SweepError("--objective latency needs measure_latency (drop --set measure_latency=false)")
    dataset = args.dataset or options.default_dataset("train", preset)
    name = args.name or default_name(args, dataset, preset, overrides)  # the user's overrides only
    overrides.setdefault("measure_latency", True)
    try:
        num_classes = get_dataset_info(dataset, overrides["data_root"]).num_classes
        space = DesignSpace(
            cells=tuple(design_cells(args)),
            layouts=tuple(layouts(args.layers, args.patch_sizes)),
            widths=tuple(sorted(set(args.widths))),
            orderings=tuple(dict.fromkeys(args.orderings)),
            lr=(args.lr[0], args.lr[1]),
            num_classes=num_classes,
            max_params=args.max_params,
        )
        space.check_budget()
    except (ValueError, FileNotFoundError) as error:
        raise SweepError(str(error)) from None
    base = {"dataset": dataset, "seed": args.seed, "preset": preset, "overrides": overrides}
    # every cell at the first layout's smallest and largest widths, at both learning-rate bounds
    corners = [
        {**base, "model": cell.name, "genotype": cell.genotype, "variant": cell.variant, "lr": lr,
         "network": space.network(space.layouts[0], [width] * len(space.layouts[0]), space.orderings[0]).to_string()}
        for cell in space.cells for width in (space.widths[0], space.widths[-1]) for lr in space.lr
    ]
    configs = trainable.planned_configs("train", preset, overrides, [dataset])
    trainable.check_trial_configs("train", corners, configs)
    param_space: dict[str, Any] = {**base, trainable.PLANNED_CONFIGS_FIELD: configs, **failure_drill.drill_fields(args)}
    return DesignPlan(
        kind=results.DESIGN_KIND,
        planned=[{**base, "sample": index} for index in range(args.num_samples)],
        param_space=param_space,
        name=name,
        storage=options.storage_location(args.storage),
        details={
            STAGE_FIELD: SEARCH_STAGE, "dataset": dataset, "preset": preset, "overrides": overrides,
            "objective": args.objective, "objectives": {"max": ACCURACY_METRIC, "min": COST_METRICS[args.objective]},
            "max_params": args.max_params, "sampler": args.sampler, "population": args.population,
            "num_samples": args.num_samples, "seed": args.seed,
            "space": {
                "cells": [dataclasses.asdict(cell) for cell in space.cells],
                "layouts": [list(layout) for layout in space.layouts], "widths": list(space.widths),
                "orderings": list(space.orderings), "lr": list(space.lr),
            },
            "configs": resolved_configs("train", configs),
        },
        space=space,
    )


class PicklableNSGAIISampler(optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II sampler that Ray can save with the experiment (and restore on resume).

    Optuna 5.1's genetic samplers hold a ``threading.Lock`` (``_thread_lock``, private),
    which cannot be pickled; Ray Tune pickles the searcher, sampler included, into the
    experiment's state. The lock guards nothing across processes: a new one on unpickling.
    """

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_thread_lock", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._thread_lock = threading.Lock()


def make_sampler(args: argparse.Namespace) -> optuna.samplers.BaseSampler:
    """NSGA-II (population ``--population``) or MOTPE (Optuna's TPE, multi-objective), seeded."""
    if args.sampler == "nsga2":
        return PicklableNSGAIISampler(population_size=args.population, seed=args.seed)
    return optuna.samplers.TPESampler(n_startup_trials=args.population, multivariate=True, seed=args.seed)


def reevaluation_entries(front: Sequence[Outcome], orderings: Sequence[str], seed: int, front_seeds: int,
                         ordering_seeds: int) -> list[dict[str, Any]]:
    """Trial fields of the re-evaluation: every front member at seeds seed+1 … seed+K, and
    the most accurate member with every ordering at seeds seed … seed+K−1 (without the
    search's own trial); duplicates once."""
    entries: dict[tuple[Any, ...], dict[str, Any]] = {}

    def add(outcome: Outcome, network: str, trial_seed: int, role: str) -> None:
        entry = {"model": outcome.model, "genotype": outcome.genotype, "variant": outcome.variant,
                 "network": network, "lr": outcome.lr, "seed": trial_seed, "role": role}
        key = (outcome.model, outcome.genotype, network, outcome.lr, trial_seed)
        if key != (outcome.model, outcome.genotype, outcome.network, outcome.lr, outcome.seed):
            entries.setdefault(key, entry)

    for outcome in front:
        for trial_seed in range(seed + 1, seed + 1 + front_seeds):
            add(outcome, outcome.network, trial_seed, "front")
    if front and ordering_seeds:
        best = most_accurate(front)
        for ordering in orderings:
            for trial_seed in range(seed, seed + ordering_seeds):
                add(best, with_ordering(best.network, ordering), trial_seed, "ordering")
    return list(entries.values())


def plan_reevaluation(sweep: DesignPlan, args: argparse.Namespace, front: Sequence[Outcome]) -> SweepPlan | None:
    """The re-evaluation experiment of a finished search, or None when there is nothing to train."""
    assert sweep.space is not None
    entries = reevaluation_entries(front, sweep.space.orderings, args.seed, args.front_seeds, args.ordering_seeds)
    if not entries:
        return None
    base = {key: sweep.param_space[key] for key in ("dataset", "preset", "overrides")}
    configs = sweep.param_space[trainable.PLANNED_CONFIGS_FIELD]
    planned = [{**base, **entry} for entry in entries]
    trainable.check_trial_configs("train", planned, configs)
    fields = sorted({field for entry in entries for field in entry})
    param_space: dict[str, Any] = {
        "entry": tune.grid_search(list(range(len(entries)))),
        **{field: tune.sample_from(_entry_field(entries, field)) for field in fields},
        **base, trainable.PLANNED_CONFIGS_FIELD: configs,
    }
    return SweepPlan(
        kind=results.DESIGN_KIND,
        planned=planned,
        param_space=param_space,
        name=sweep.name + REEVAL_SUFFIX,
        storage=sweep.storage,
        details={
            STAGE_FIELD: REEVAL_STAGE, DESIGN_EXPERIMENT_FIELD: sweep.experiment,
            "dataset": base["dataset"], "preset": base["preset"], "overrides": base["overrides"],
            "front_seeds": args.front_seeds, "ordering_seeds": args.ordering_seeds,
            "configs": sweep.details["configs"],
        },
    )


def _entry_field(entries: list[dict[str, Any]], field: str) -> Any:
    """Tune's ``sample_from`` function giving a trial's ``field`` from its entry."""
    return lambda config: entries[config["entry"]].get(field)


def print_front(front: Sequence[Outcome], objective: str) -> None:
    unit = "parameters" if objective == "params" else "ms/image"
    for outcome in front:
        cost = f"{outcome.params:,}" if objective == "params" else f"{outcome.cost(objective):.3f}"
        print(f"  {outcome.model:<28} {outcome.network:<34} lr {outcome.lr:.3g}  {cost} {unit}  "
              f"val {100 * outcome.val_accuracy:.2f}%  test {100 * outcome.test_accuracy:.2f}%")


def run(args: argparse.Namespace, command: str, sweep: DesignPlan) -> int:
    """Run (or resume) the design search, then its re-evaluation; returns the exit status."""
    assert sweep.space is not None
    searcher = OptunaSearch(
        space=sweep.space.sample,
        metric=[ACCURACY_METRIC, COST_METRICS[args.objective]],
        mode=["max", "min"],
        sampler=make_sampler(args),
    )
    tune_config = tune.TuneConfig(search_alg=searcher, num_samples=args.num_samples)
    results_grid, _, status = run_plan(sweep, args, command, trainable.train_trial, tune_config)
    statuses = {result_status(result) for result in results_grid}
    outcomes = finished_outcomes(sweep.experiment)
    front = front_of(outcomes, args.objective)
    print(f"Pareto front ({len(front)} of the {len(outcomes)} trials whose run folders hold a result, "
          f"docs/design.md; validation accuracy vs {args.objective}):")
    print_front(front, args.objective)
    if statuses & {results.UNFINISHED, results.MISSING} or len(results_grid) < args.num_samples:
        print("the search did not finish: run the same command again to resume it before the re-evaluation")
        return EXIT_INCOMPLETE
    reevaluation = plan_reevaluation(sweep, args, front)
    if reevaluation is not None:
        print(f"re-evaluating the front ({args.front_seeds} more seed(s)) and the orderings ({args.ordering_seeds} seed(s))")
        _, _, reevaluation_status = run_plan(reevaluation, args, command, trainable.train_trial)
        status = max(status, reevaluation_status)
    print(f"front table and figure: python analysis/pareto.py {sweep.experiment}")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry; returns the exit status (0 every trial finished, 1 some did not,
    2 usage or resource error)."""
    return run_script(SCRIPT, argv, parse_args, plan, run)


if __name__ == "__main__":
    sys.exit(main())

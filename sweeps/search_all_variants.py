"""Cell search sweep: one Ray Tune trial per (variant, seed) (paper §3.3, §4.1).

Each trial is one :func:`dartsrenet.search.run_search` run that reports every epoch
with a checkpoint. When the sweep ends, ``selected_genotypes.json`` in the experiment
folder holds, per variant, the selected genotype (the finished seed with the best
val_cs accuracy, ties → lower seed) and every seed's status and genotype. A seed that
did not finish, whose best val_cs accuracy is not a finite fraction in [0, 1], or whose
genotype does not parse is never selected: a note says why (also in its ``note``).
The seeds are read from the trials' run folders, as the analysis reads them
(:func:`dartsrenet.results.seeds_from_run_folders`).

Usage::

    python sweeps/search_all_variants.py --num-seeds 10                      # paper preset, cifar10
    python sweeps/search_all_variants.py --preset demo --num-seeds 2         # digits, small, CPU
    python sweeps/search_all_variants.py --num-seeds 10 --gpus-per-trial 0.5 --storage s3://bucket/dartsrenet

Running the same command again resumes the experiment (``--name`` defaults to
``search_<dataset>_<preset>``); see ``docs/cluster.md`` for clusters.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any


from ray import tune

from dartsrenet import results
from dartsrenet.variants import VARIANTS
from dartsrenet.results import join_location, write_json
from sweeps import failure_drill, options, trainable
from sweeps.errors import SweepError
from sweeps.experiment import SweepPlan, resolved_configs, run_plan, run_script

SCRIPT = "sweeps/search_all_variants.py"
SELECTION_FILE = results.SELECTION_FILE


def default_name(dataset: str, preset: str, overrides: dict[str, Any]) -> str:
    """``search_<dataset>_<preset>`` (+ ``_set-<hash>`` when ``--set`` is used)."""
    return f"search_{options.dataset_tag(dataset)}_{options.preset_tag(preset)}{options.overrides_tag(overrides)}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="Run the same command again to resume the experiment."
    )
    parser.add_argument("--num-seeds", type=int, default=1, metavar="N", help="seeds 0 … N-1 per variant (default: 1)")
    parser.add_argument("--seeds", type=int, nargs="+", metavar="S", help="explicit seeds (instead of --num-seeds)")
    parser.add_argument(
        "--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), metavar="VARIANT",
        help=f"variants to search (default: all: {', '.join(VARIANTS)})",
    )
    parser.add_argument("--dataset", help="dataset (default: the preset's: paper → cifar10, demo → digits)")
    options.add_sweep_arguments(parser, default_name="search_<dataset>_<preset>")
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def plan(args: argparse.Namespace) -> SweepPlan:
    """Trial configs, Tune's param space and the experiment name (no Ray needed).

    Raises:
        SweepError: for invalid arguments.
    """
    preset = options.preset_argument(args.preset)
    overrides = options.sweep_overrides("search", args.overrides, args.data_root)
    dataset = options.dataset_argument(args.dataset or options.default_dataset("search", preset))
    seeds = list(dict.fromkeys(args.seeds)) if args.seeds else list(range(args.num_seeds))
    if not seeds:
        raise SweepError("--num-seeds must be at least 1")
    variants = list(dict.fromkeys(args.variants))
    shared = {"dataset": dataset, "preset": preset, "overrides": overrides}
    planned = [{"variant": variant, "seed": seed, **shared} for variant in variants for seed in seeds]
    configs = trainable.planned_configs("search", preset, overrides, [dataset])
    trainable.check_trial_configs("search", planned, configs)  # fail here, before Ray, not in every trial
    param_space: dict[str, Any] = {
        "variant": tune.grid_search(variants), "seed": tune.grid_search(seeds), **shared,
        trainable.PLANNED_CONFIGS_FIELD: configs, **failure_drill.drill_fields(args),
    }
    return SweepPlan(
        kind="search",
        planned=planned,
        param_space=param_space,
        name=args.name or default_name(dataset, preset, overrides),
        storage=options.storage_location(args.storage),
        details={
            "dataset": dataset, "preset": preset, "overrides": overrides, "variants": variants, "seeds": seeds,
            "configs": resolved_configs("search", configs),
        },
    )


def select_genotypes(
    seeds_by_variant: dict[str, list[dict[str, Any]]], log: Callable[[str], None] = print
) -> dict[str, dict[str, Any]]:
    """Per variant: the selected seed and all seeds (:func:`dartsrenet.results.select_genotypes`)."""
    return results.select_genotypes(seeds_by_variant, log)


def selection_document(
    experiment: str, planned: Sequence[dict[str, Any]], dataset: str, stopped_early: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """The content of ``selected_genotypes.json`` (:func:`dartsrenet.results.selection_document`),
    selected from the experiment's run folders as the analysis selects
    (:func:`dartsrenet.results.seeds_from_run_folders`); planned trials that have no
    folder (never started) are listed as ``missing``."""
    by_variant = results.seeds_from_run_folders(results.trial_folders(experiment), planned, stopped_early)
    return results.selection_document(dataset, experiment, by_variant)


def print_selection(document: dict[str, Any]) -> None:
    for variant, entry in document["variants"].items():
        selected = entry["selected"]
        finished = sum(seed["status"] == results.FINISHED for seed in entry["seeds"])
        if selected is None:
            print(f"  {variant:<27} no finished seed ({finished}/{len(entry['seeds'])})")
        else:
            print(f"  {variant:<27} seed {selected['seed']} of {finished}/{len(entry['seeds'])} finished, "
                  f"val_cs {100 * selected['best_val_accuracy']:.2f}%  {selected['genotype_string']}")


def run(args: argparse.Namespace, command: str, sweep: SweepPlan) -> int:
    """Run the planned search and write ``selected_genotypes.json``; returns the exit status.

    Args:
        command: the command line recorded in ``sweep.json`` (:func:`options.command_line`).
    """
    _, stopped, status = run_plan(
        sweep, args, command, trainable.search_trial
    )
    experiment = sweep.experiment
    document = selection_document(experiment, sweep.planned, sweep.details["dataset"], stopped)
    location = join_location(experiment, SELECTION_FILE)
    write_json(location, document)
    print("selected genotypes (" + results.SELECTION_RULE + "):")
    print_selection(document)
    print(f"selected genotypes written to {location}")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry; returns the exit status (0 all trials finished, 1 some did
    not, 2 usage or resource error)."""
    return run_script(SCRIPT, argv, parse_args, plan, run)


if __name__ == "__main__":
    sys.exit(main())

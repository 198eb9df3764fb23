"""Evaluation sweep (Table 1): one Ray Tune trial per (model, dataset, seed) (paper §3.3, §4.2).

Models: the three derived DartsReNet cells — from a search sweep's
``selected_genotypes.json`` or the paper's genotypes — and the ReNet baselines with
GRU and LSTM cells. Each trial is one :func:`dartsrenet.train.run_train` run that
reports every epoch with a checkpoint; the last report carries the test accuracy.

Usage::

    python sweeps/evaluate_genotypes.py --genotypes paper --datasets cifar10 svhn --num-seeds 3
    python sweeps/evaluate_genotypes.py --genotypes results/search_cifar10_paper/selected_genotypes.json
    python sweeps/evaluate_genotypes.py --preset demo --genotypes results/demo/search_digits_demo --models vanilla gru

Running the same command again resumes the experiment (default name
``eval_<datasets>_<preset>[_from_<search experiment>]``). The table:
``python analysis/make_table.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from ray import tune

from dartsrenet import results
from dartsrenet.genotypes import PAPER_GENOTYPES, Genotype
from dartsrenet.networks import BASELINE_CELLS
from dartsrenet.paper import MODELS
from sweeps import failure_drill, options, trainable
from sweeps.errors import SweepError
from sweeps.experiment import SweepPlan, resolved_configs, run_plan, run_script

SCRIPT = "sweeps/evaluate_genotypes.py"


@dataclass(frozen=True)
class GenotypeSource:
    """Where ``--genotypes`` took the cells from.

    Attributes:
        tag: ``paper``, or the search experiment's name (for default experiment names).
        genotypes: the genotype per variant (variants without a selected seed left out).
        search_experiment: the search experiment's location (recorded in the evaluation's
            ``sweep.json``, so that the analysis pairs them); ``None`` for ``paper``.
    """

    tag: str
    genotypes: dict[str, Genotype]
    search_experiment: str | None


def load_genotypes(spec: str) -> GenotypeSource:
    """``--genotypes``: ``paper``, or a ``selected_genotypes.json`` (file, URI, or the
    search experiment folder holding it).

    Raises:
        SweepError: if the file is missing or malformed.
    """
    if spec == "paper":
        return GenotypeSource("paper", dict(PAPER_GENOTYPES), None)
    location = results.selection_location(spec)
    if not results.is_uri(location):
        location = str(Path(location).expanduser().resolve())
    try:
        document = results.read_selection(location)
    except FileNotFoundError as error:
        raise SweepError(f"--genotypes {spec}: {error}, and not 'paper'") from None
    except ValueError as error:  # names the file
        raise SweepError(f"--genotypes {error}") from None
    try:
        genotypes = results.selected_genotypes(document)
    except ValueError as error:
        raise SweepError(f"--genotypes {location}: {error}") from None
    experiment = location.rstrip("/").rsplit("/", 1)[0]
    return GenotypeSource(results.location_name(experiment) or "selection", genotypes, experiment)


def default_name(datasets: Sequence[str], preset: str, overrides: dict[str, Any], source: str) -> str:
    """``eval_<datasets>_<preset>`` (+ ``_set-<hash>``) (+ ``_from_<search experiment>``)."""
    tags = "-".join(options.dataset_tag(dataset) for dataset in datasets)
    name = f"eval_{tags}_{options.preset_tag(preset)}{options.overrides_tag(overrides)}"
    return name if source == "paper" else f"{name}_from_{source}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="Run the same command again to resume the experiment."
    )
    parser.add_argument(
        "--genotypes", default="paper", metavar="FILE|DIR|paper",
        help="the derived cells: a search sweep's selected_genotypes.json (or its experiment folder), "
        "or 'paper' (default)",
    )
    parser.add_argument(
        "--models", nargs="+", choices=list(MODELS), metavar="MODEL",
        help=f"models to evaluate (default: all: {', '.join(MODELS)})",
    )
    parser.add_argument(
        "--datasets", nargs="+", metavar="DATASET", help="datasets (default: the preset's: paper → cifar10, demo → digits)"
    )
    parser.add_argument("--num-seeds", type=int, default=1, metavar="N", help="seeds 0 … N-1 per model (default: 1)")
    parser.add_argument("--seeds", type=int, nargs="+", metavar="S", help="explicit seeds (instead of --num-seeds)")
    options.add_sweep_arguments(parser, default_name="eval_<datasets>_<preset>[_from_<search experiment>]")
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def model_cells(models: Sequence[str], genotypes: dict[str, Genotype], explicit: bool) -> dict[str, dict[str, Any]]:
    """``{model: {"genotype": string or None, "variant": name or None}}``.

    A DARTS model whose variant has no genotype is an error if the user named it
    (``explicit``), else left out with a note.
    """
    cells = {}
    for model in models:
        if model in BASELINE_CELLS:
            cells[model] = {"genotype": None, "variant": None}
        elif model in genotypes:
            cells[model] = {"genotype": genotypes[model].to_string(), "variant": model}
        elif explicit:
            raise SweepError(f"--models {model}: no selected genotype for that variant in --genotypes")
        else:
            print(f"note: {model}: no selected genotype (no finished search seed); not evaluated")
    if not cells:
        raise SweepError("nothing to evaluate")
    return cells


def plan(args: argparse.Namespace) -> SweepPlan:
    """Trial configs, Tune's param space and the experiment name (no Ray needed).

    Raises:
        SweepError: for invalid arguments.
    """
    preset = options.preset_argument(args.preset)
    overrides = options.sweep_overrides("train", args.overrides, args.data_root)
    datasets = options.datasets_argument(args.datasets or [options.default_dataset("train", preset)])
    seeds = seeds_argument(args)
    source = load_genotypes(args.genotypes)
    cells = model_cells(list(dict.fromkeys(args.models or MODELS)), source.genotypes, explicit=args.models is not None)
    return plan_cells(
        kind=results.TRAIN_KIND,
        cells=cells,
        datasets=datasets,
        seeds=seeds,
        preset=preset,
        overrides=overrides,
        name=args.name or default_name(datasets, preset, overrides, source.tag),
        storage=args.storage,
        details={
            "models": list(cells), "genotypes": args.genotypes,
            results.SEARCH_EXPERIMENT_FIELD: source.search_experiment,
        },
        drill=failure_drill.drill_fields(args),
    )


def seeds_argument(args: argparse.Namespace) -> list[int]:
    """``--seeds`` (duplicates dropped) or ``0 … --num-seeds - 1``.

    Raises:
        SweepError: if that leaves no seed.
    """
    seeds = list(dict.fromkeys(args.seeds)) if args.seeds else list(range(args.num_seeds))
    if not seeds:
        raise SweepError("--num-seeds must be at least 1")
    return seeds


def plan_cells(
    *,
    kind: str,
    cells: dict[str, dict[str, Any]],
    datasets: Sequence[str],
    seeds: Sequence[int],
    preset: str,
    overrides: dict[str, Any],
    name: str,
    storage: str,
    details: dict[str, Any],
    drill: dict[str, Any] | None = None,
) -> SweepPlan:
    """The evaluation sweep of some cells: one trial per (cell, dataset, seed), each a
    :func:`dartsrenet.train.run_train` run of the same preset and overrides.

    Shared by this script (the derived cells and the baselines) and
    ``sweeps/random_baseline.py`` (random genotypes), so every arm is trained alike.

    Args:
        kind: the experiment kind (:data:`dartsrenet.results.KINDS`): ``train`` or ``random``.
        cells: ``{model: {"genotype": string or None, "variant": name or None, …}}``;
            every field of a model's entry goes into its trial configs.
        preset: a preset name or an absolute preset file (:func:`options.preset_argument`).
        overrides: typed ``--set`` overrides (:func:`options.sweep_overrides`).
        details: what ``sweep.json`` records besides datasets, seeds, preset and configs.

    Raises:
        SweepError: if some trial's config is invalid.
    """
    datasets, seeds = list(datasets), list(seeds)
    shared = {"preset": preset, "overrides": overrides}
    planned = [
        {"model": model, **cell, "dataset": dataset, "seed": seed, **shared}
        for dataset in datasets for model, cell in cells.items() for seed in seeds
    ]
    configs = trainable.planned_configs("train", preset, overrides, datasets)
    trainable.check_trial_configs("train", planned, configs)  # fail here, before Ray, not in every trial
    fields = sorted({field for cell in cells.values() for field in cell})
    param_space: dict[str, Any] = {
        "model": tune.grid_search(list(cells)),
        **{field: tune.sample_from(_cell_field(cells, field)) for field in fields},
        "dataset": tune.grid_search(datasets),
        "seed": tune.grid_search(seeds),
        **shared,
    }
    param_space.update({trainable.PLANNED_CONFIGS_FIELD: configs, **(drill or {})})
    return SweepPlan(
        kind=kind,
        planned=planned,
        param_space=param_space,
        name=name,
        storage=options.storage_location(storage),
        details={
            "datasets": datasets, "seeds": seeds, **details, "preset": preset, "overrides": overrides,
            "configs": resolved_configs("train", configs),
        },
    )


def _cell_field(cells: dict[str, dict[str, Any]], field: str) -> Any:
    """Tune's ``sample_from`` function giving a trial's ``field`` from its model's entry."""
    return lambda config: cells[config["model"]].get(field)


def run(args: argparse.Namespace, command: str, sweep: SweepPlan) -> int:
    """Run the planned evaluation (or random-genotype control) and print each trial's test
    accuracy; returns the exit status.

    Args:
        command: the command line recorded in ``sweep.json`` (:func:`options.command_line`).
    """
    results_grid, _, status = run_plan(sweep, args, command, trainable.train_trial)
    experiment = sweep.experiment
    started = [result for result in results_grid if result.config]
    for result in sorted(started, key=lambda r: (r.config["dataset"], r.config["model"], r.config["seed"])):
        accuracy = results.finite((result.metrics or {}).get("test_accuracy"))
        shown = "—" if accuracy is None else f"{100 * accuracy:.2f}%"
        config = result.config
        print(f"  {config['dataset']:<8} {config['model']:<27} seed {config['seed']}  test accuracy {shown}")
    table = "--random" if sweep.kind == results.RANDOM_KIND else "--eval"
    print(f"evaluation results in {experiment}; table: python analysis/make_table.py {table} {experiment}")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry; returns the exit status (0 all trials finished, 1 some did
    not, 2 usage or resource error)."""
    return run_script(SCRIPT, argv, parse_args, plan, run)


if __name__ == "__main__":
    sys.exit(main())

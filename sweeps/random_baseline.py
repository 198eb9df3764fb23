"""Random-genotype control: evaluate K randomly sampled cells per variant, trained exactly
like the DARTS-selected ones (docs/architecture.md §7).

The control asks whether the search found anything: in this search space random
genotypes are a strong baseline (Li & Talwalkar 2019; Yang et al. 2020). K genotypes are
drawn uniformly from the search space (:func:`dartsrenet.genotypes.sample_genotypes`:
each node picks a predecessor j < i and one of the four activations; the cell averages
all nodes) with ``--sample-seed``. The same K genotypes are evaluated with every variant
— the variants differ only in how the cell weights its input, so a difference between
variants is not a difference between draws. Each (genotype, variant, dataset, seed) is
one evaluation trial of the evaluation sweep (:func:`sweeps.evaluate_genotypes.plan_cells`,
the same preset, overrides and trainable as ``evaluate_genotypes.py``), in an experiment
of kind ``random`` whose ``sweep.json`` records the sampled genotypes and the seed.

Usage::

    python sweeps/random_baseline.py --num-samples 8                      # paper preset, cifar10, all variants
    python sweeps/random_baseline.py --num-samples 8 --preset demo --variants vanilla
    python sweeps/random_baseline.py --num-samples 8 --datasets svhn --num-seeds 2 --sample-seed 1

Running the same command again resumes the experiment (default name
``random_<datasets>_<preset>_k<K>_s<sample seed>``). The comparison with the searched
cells: ``python analysis/make_table.py`` (the "Random-genotype control" table) and
``python analysis/plot_random.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from dartsrenet import results
from dartsrenet.genotypes import Genotype, sample_genotypes
from dartsrenet.variants import VARIANTS
from sweeps import evaluate_genotypes, failure_drill, options
from sweeps.errors import SweepError
from sweeps.experiment import SweepPlan, run_script

SCRIPT = "sweeps/random_baseline.py"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="Run the same command again to resume the experiment."
    )
    parser.add_argument(
        "--num-samples", type=int, default=8, metavar="K", help="random genotypes per variant (default: 8)"
    )
    parser.add_argument(
        "--sample-seed", type=int, default=0, metavar="S", help="seed of the genotype draws (default: 0)"
    )
    parser.add_argument(
        "--variants", nargs="+", choices=list(VARIANTS), metavar="VARIANT",
        help=f"variants to evaluate each genotype with (default: all: {', '.join(VARIANTS)})",
    )
    parser.add_argument(
        "--datasets", nargs="+", metavar="DATASET", help="datasets (default: the preset's: paper → cifar10, demo → digits)"
    )
    parser.add_argument(
        "--num-seeds", type=int, default=1, metavar="N",
        help="training seeds 0 … N-1 per genotype (default: 1: the spread over genotypes is the point)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", metavar="S", help="explicit training seeds (instead of --num-seeds)")
    options.add_sweep_arguments(parser, default_name="random_<datasets>_<preset>_k<K>_s<sample seed>")
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def sample(num_samples: int, sample_seed: int) -> list[Genotype]:
    """The control's genotypes: ``num_samples`` draws seeded with ``sample_seed``.

    Raises:
        SweepError: naming the flag, for a K < 1 or a negative seed.
    """
    if num_samples < 1:
        raise SweepError(f"--num-samples {num_samples}: must be an integer >= 1")
    try:
        return sample_genotypes(num_samples, sample_seed)
    except ValueError as error:
        raise SweepError(f"--sample-seed {sample_seed}: {error}") from None


def model_name(variant: str, index: int) -> str:
    """``vanilla_random03``: the model name of sample ``index`` evaluated with ``variant``."""
    return f"{variant}_random{index:02d}"


def random_cells(genotypes: Sequence[Genotype], variants: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{model: {"genotype", "variant", "sample"}}`` for every (variant, sample)."""
    return {
        model_name(variant, index): {"genotype": genotype.to_string(), "variant": variant, "sample": index}
        for variant in variants for index, genotype in enumerate(genotypes)
    }


def default_name(datasets: Sequence[str], preset: str, overrides: dict[str, Any], num_samples: int, seed: int) -> str:
    """``random_<datasets>_<preset>_k<K>_s<seed>`` (+ ``_set-<hash>`` of the overrides)."""
    return (
        f"random_{'-'.join(map(options.dataset_tag, datasets))}_{options.preset_tag(preset)}_k{num_samples}_s{seed}"
        f"{options.overrides_tag(overrides)}"
    )


def plan(args: argparse.Namespace) -> SweepPlan:
    """Sample the genotypes and plan their evaluation trials (no Ray needed).

    Raises:
        SweepError: for invalid arguments.
    """
    genotypes = sample(args.num_samples, args.sample_seed)
    preset = options.preset_argument(args.preset)
    overrides = options.sweep_overrides("train", args.overrides, args.data_root)
    datasets = options.datasets_argument(args.datasets or [options.default_dataset("train", preset)])
    variants = list(dict.fromkeys(args.variants or VARIANTS))
    seeds = evaluate_genotypes.seeds_argument(args)
    return evaluate_genotypes.plan_cells(
        kind=results.RANDOM_KIND,
        cells=random_cells(genotypes, variants),
        datasets=datasets,
        seeds=seeds,
        preset=preset,
        overrides=overrides,
        name=args.name or default_name(datasets, preset, overrides, args.num_samples, args.sample_seed),
        storage=args.storage,
        details={
            "variants": variants,
            "num_samples": args.num_samples,
            results.SAMPLE_SEED_FIELD: args.sample_seed,
            results.RANDOM_GENOTYPES_FIELD: [genotype.to_string() for genotype in genotypes],
        },
        drill=failure_drill.drill_fields(args),
    )


def run(args: argparse.Namespace, command: str, sweep: SweepPlan) -> int:
    """Run the planned control and print each trial's test accuracy; returns the exit status.

    Args:
        command: the command line recorded in ``sweep.json`` (:func:`options.command_line`).
    """
    return evaluate_genotypes.run(args, command, sweep)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry; returns the exit status (0 all trials finished, 1 some did
    not, 2 usage or resource error)."""
    return run_script(SCRIPT, argv, parse_args, plan, run)


if __name__ == "__main__":
    sys.exit(main())

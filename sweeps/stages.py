"""The stages of an end-to-end run — cell search, evaluation, random-genotype control —
as the demo (``sweeps/demo.py``) and the study (``sweeps/study.py``) chain them.

Each stage is one of the sweep scripts, called through its ``arguments``/``plan``/``run``
functions (no command lines built and parsed again): every stage is planned — each
trial's config built and checked — before Ray starts, so a bad ``--set`` value is one
``error:`` line, and runs in the Ray that the caller started in this process. The
experiments record the caller's own command line in ``sweep.json``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import ray

from sweeps import evaluate_genotypes, options, random_baseline, ray_setup, search_all_variants
from sweeps.experiment import SweepPlan


@dataclass(frozen=True)
class Stage:
    """One planned sweep.

    Attributes:
        script: the sweep's module (:mod:`sweeps.search_all_variants`, …).
        args: its arguments (the module's ``arguments``).
        plan: its plan (the module's ``plan``).
    """

    script: ModuleType
    args: argparse.Namespace
    plan: SweepPlan

    @property
    def experiment(self) -> Path:
        """The experiment folder (the stages run with local storage)."""
        return Path(self.plan.experiment)


def arguments(script: ModuleType, **values: Any) -> argparse.Namespace:
    """``script``'s arguments as its command line would give them, from option
    destinations (e.g. ``num_seeds=2``) instead (:func:`options.namespace`)."""
    return options.namespace(script.build_parser(), **values)


def plan_stage(script: ModuleType, **values: Any) -> Stage:
    """Plan ``script``'s sweep for option values ``values`` (option destinations).

    Raises:
        sweeps.errors.SweepError: with the sweep's one-line message.
    """
    args = arguments(script, **values)
    return Stage(script, args, script.plan(args))


def run_stage(stage: Stage, command: str) -> int:
    """Run a planned stage in this process's Ray; returns its exit status."""
    return ray_setup.with_ray(stage.args, lambda: stage.script.run(stage.args, command, stage.plan))


def search(**values: Any) -> Stage:
    """A planned cell search (:mod:`sweeps.search_all_variants`)."""
    return plan_stage(search_all_variants, **values)


def evaluation(**values: Any) -> Stage:
    """A planned evaluation (:mod:`sweeps.evaluate_genotypes`)."""
    return plan_stage(evaluate_genotypes, **values)


def random_control(**values: Any) -> Stage:
    """A planned random-genotype control (:mod:`sweeps.random_baseline`)."""
    return plan_stage(random_baseline, **values)


def selection_of(stage: Stage) -> Path | None:
    """The ``selected_genotypes.json`` a finished search stage wrote, or ``None``."""
    selection = stage.experiment / search_all_variants.SELECTION_FILE
    return selection if selection.is_file() else None


def banner(text: str) -> None:
    print(f"\n=== {text} ===", flush=True)


def add_driver_arguments(
    parser: argparse.ArgumentParser, *, out: Path, out_help: str, search_seeds: int, eval_seeds: int, num_samples: int
) -> None:
    """The options of a driver (demo, study): its folder, how many seeds and random
    genotypes, config overrides, and the local Ray's CPUs."""
    parser.add_argument("--out", type=Path, default=out, metavar="DIR", help=f"{out_help} (default: {out})")
    parser.add_argument(
        "--search-seeds", type=int, default=search_seeds, metavar="N",
        help=f"search seeds per variant (default: {search_seeds})",
    )
    parser.add_argument(
        "--eval-seeds", type=int, default=eval_seeds, metavar="N", help=f"evaluation seeds per model (default: {eval_seeds})"
    )
    parser.add_argument(
        "--num-samples", type=int, default=num_samples, metavar="K",
        help=f"random genotypes per variant in the random-genotype control (default: {num_samples})",
    )
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE",
        help="config override for every sweep (repeatable)",
    )
    parser.add_argument("--num-cpus", type=int, help="CPUs of the local Ray (default: all)")


def shared_values(args: argparse.Namespace, preset: str, storage: Path, **extra: Any) -> dict[str, Any]:
    """Option values every stage of a driver shares: the preset, the storage, CPU-only
    trials, quiet Tune output, the driver's ``--set`` overrides, and ``extra``."""
    return {"preset": preset, "storage": str(storage), "gpus_per_trial": 0, "verbose": 0,
            "overrides": list(args.overrides), **extra}


@contextmanager
def local_ray(num_cpus: int | None) -> Iterator[None]:
    """One local CPU-only Ray for every stage of a driver (never a cluster: RAY_ADDRESS
    is ignored), listening on the loopback address only; shut down on the way out."""
    ray_setup.start_local_ray(num_cpus, 0)
    try:
        yield
    finally:
        ray.shutdown()

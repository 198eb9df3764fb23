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
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from sweeps import common, evaluate_genotypes, random_baseline, search_all_variants


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
    plan: common.SweepPlan

    @property
    def experiment(self) -> Path:
        """The experiment folder (the stages run with local storage)."""
        return Path(self.plan.experiment)


def plan_stage(script: ModuleType, **values: Any) -> Stage:
    """Plan ``script``'s sweep for option values ``values`` (option destinations).

    Raises:
        common.SweepError: with the sweep's one-line message.
    """
    args = script.arguments(**values)
    return Stage(script, args, script.plan(args))


def run_stage(stage: Stage, command: str) -> int:
    """Run a planned stage in this process's Ray; returns its exit status."""
    return common.with_ray(stage.args, lambda: stage.script.run(stage.args, command, stage.plan))


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

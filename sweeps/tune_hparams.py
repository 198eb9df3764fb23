"""Tune training hyperparameters of one model on one dataset: Optuna (TPE, seeded) + ASHA.

Searches learning rate, weight decay, momentum, batch size and Cutout for one
evaluation model (a DartsReNet cell or the GRU/LSTM baseline) through Ray Tune's
``OptunaSearch``, with ASHA stopping poor trials early on validation accuracy. The
best trial's configuration is written as a preset file (``{"train": {...}}``, on top
of the base preset) that ``--preset FILE`` of the sweep scripts accepts.

Seed replicates never go through this script: ASHA stops trials early, which would
bias a results table (see ``evaluate_genotypes.py`` for Table 1).

Usage::

    python sweeps/tune_hparams.py --model gru --dataset cifar10 --num-samples 32 --gpus-per-trial 0.25
    python sweeps/tune_hparams.py --model vanilla --genotypes results/search_digits_demo --preset demo --num-samples 8
    python sweeps/evaluate_genotypes.py --preset results/tune_gru_cifar10_paper_seed0/best_preset.json ...
"""

from __future__ import annotations

import argparse
import copy
import itertools
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


from ray import tune
from ray.tune.search.optuna import OptunaSearch

from dartsrenet import results
from dartsrenet.config import load_preset
from dartsrenet.paper import MODELS
from dartsrenet.results import RUN_FOLDER, join_location, write_json
from sweeps import failure_drill, options, ray_compat, trainable
from sweeps.errors import EXIT_INCOMPLETE, EXIT_OK, SweepError
from sweeps.experiment import SweepPlan, resolved_configs, run_plan, run_script
from sweeps.evaluate_genotypes import load_genotypes, model_cells

SCRIPT = "sweeps/tune_hparams.py"
METRIC = trainable.SCHEDULER_SCORE  # ASHA's signal each epoch (val_accuracy; −1 if not finite); the best trial: best_val_accuracy
PRESET_FILE = "best_preset.json"


SEARCH_SPACE = trainable.TUNING_SPACE


def search_space() -> dict[str, Any]:
    """:data:`SEARCH_SPACE` as Ray Tune distributions."""
    return {
        name: tune.choice(list(values)) if kind == "choice" else getattr(tune, kind)(*values)
        for name, (kind, values) in SEARCH_SPACE.items()
    }


def search_space_text() -> dict[str, Any]:
    """:data:`SEARCH_SPACE` for ``sweep.json``: ``"loguniform(0.001, 0.3)"``, or the choices."""
    return {
        name: list(values) if kind == "choice" else f"{kind}({', '.join(f'{value:g}' for value in values)})"
        for name, (kind, values) in SEARCH_SPACE.items()
    }


def search_space_corners() -> list[dict[str, Any]]:
    """Every combination of the bounds and choices of :data:`SEARCH_SPACE`: if all of
    them give valid configs, so does every sample in between."""
    names = list(SEARCH_SPACE)
    return [dict(zip(names, values, strict=True))
            for values in itertools.product(*(SEARCH_SPACE[name][1] for name in names))]


def default_name(model: str, dataset: str, preset: str, overrides: dict[str, Any], seed: int) -> str:
    tag = options.dataset_tag(dataset)
    return f"tune_{model}_{tag}_{options.preset_tag(preset)}{options.overrides_tag(overrides)}_seed{seed}"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="Run the same command again to resume the experiment."
    )
    parser.add_argument("--model", default="vanilla", choices=list(MODELS), help="model to tune (default: vanilla)")
    parser.add_argument(
        "--genotypes", default="paper", metavar="FILE|DIR|paper",
        help="where a DartsReNet model's cell comes from (as in evaluate_genotypes.py; default: paper)",
    )
    parser.add_argument("--dataset", help="dataset (default: the preset's: paper → cifar10, demo → digits)")
    parser.add_argument("--num-samples", type=int, default=16, metavar="N", help="configurations to try (default: 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler and of every training run (default: 0)")
    parser.add_argument(
        "--grace-period", type=int, default=1, metavar="EPOCHS",
        help="epochs every trial runs before ASHA may stop it (default: 1)",
    )
    parser.add_argument(
        "--out", metavar="FILE",
        help=f"where to write the best configuration as a preset (default: the experiment's {PRESET_FILE})",
    )
    options.add_sweep_arguments(parser, default_name="tune_<model>_<dataset>_<preset>_seed<seed>")
    return parser.parse_args(argv)


def plan(args: argparse.Namespace) -> dict[str, Any]:
    """Trial config template, Tune configs and the experiment name (no Ray needed)."""
    if args.num_samples < 1:
        raise SweepError("--num-samples must be at least 1")
    preset = options.preset_argument(args.preset)
    overrides = options.sweep_overrides("train", args.overrides, args.data_root)
    dataset = options.dataset_argument(args.dataset or options.default_dataset("train", preset))
    genotypes = load_genotypes(args.genotypes).genotypes if args.model not in ("gru", "lstm") else {}
    cell = model_cells([args.model], genotypes, explicit=True)[args.model]
    base = {"model": args.model, **cell, "dataset": dataset, "seed": args.seed, "preset": preset, "overrides": overrides}
    # Fail here, before Ray, not in every trial: the base config and every corner of the space.
    configs = trainable.planned_configs("train", preset, overrides, [dataset])
    trainable.check_trial_configs("train", [base], configs)
    for corner in search_space_corners():
        try:
            trainable.check_trial_configs("train", [{**base, **corner}], configs)
        except SweepError as error:
            values = ", ".join(f"{name}={value:g}" for name, value in corner.items())
            raise SweepError(f"{error} (at tuned values {values}, a corner of the search space)") from None
    base_config = {**base, trainable.PLANNED_CONFIGS_FIELD: configs}
    epochs = trainable.trial_run_config("train", base_config, Path(RUN_FOLDER)).epochs
    param_space: dict[str, Any] = {**base_config, **search_space(), **failure_drill.drill_fields(args)}
    return SweepPlan(
        kind="tune",
        planned=[{**base, "sample": index} for index in range(args.num_samples)],
        param_space=param_space,
        name=args.name or default_name(args.model, dataset, preset, overrides, args.seed),
        storage=options.storage_location(args.storage),
        details={
            "model": args.model, "dataset": dataset, "preset": preset, "overrides": overrides,
            "num_samples": args.num_samples, "seed": args.seed,
            "configs": resolved_configs("train", configs),
            "search_space": search_space_text(),
        },
        epochs=epochs,
    )


def best_preset(preset: str, dataset: str, best: dict[str, Any], comment: str) -> dict[str, Any]:
    """The base preset with the tuned values in its ``train`` section (and in the tuned
    dataset's ``train`` section, which ``resolve_config`` applies after it)."""
    data = copy.deepcopy(load_preset(preset))
    data = {key: value for key, value in data.items() if key in ("search", "train", "datasets")}
    data["train"] = {**data.get("train", {}), **best}
    dataset_section = data.get("datasets", {}).get(dataset, {})
    if "train" in dataset_section:
        dataset_section["train"].update(best)
    return {"comment": comment, **data}


def run(args: argparse.Namespace, command: str, sweep: SweepPlan) -> int:
    """Run the planned tuning and write the best configuration as a preset; returns the exit status."""
    tune_config = tune.TuneConfig(
        metric=METRIC,
        mode="max",
        search_alg=OptunaSearch(seed=args.seed),
        scheduler=ray_compat.StopRecordingASHAScheduler(
            time_attr="training_iteration", max_t=sweep.epochs, grace_period=min(args.grace_period, sweep.epochs),
            reduction_factor=3,
        ),
        num_samples=args.num_samples,
    )
    results_grid, _, _ = run_plan(
        sweep, args, command, trainable.train_trial, tune_config
    )
    try:
        best = results_grid.get_best_result(metric="best_val_accuracy", mode="max", scope="last")
    except RuntimeError:
        best = None
    if best is None or results.finite(best.metrics.get("best_val_accuracy")) is None:
        print("error: no trial reported a validation accuracy; no preset written", file=sys.stderr)
        return EXIT_INCOMPLETE
    values = {name: best.config[name] for name in trainable.HPARAM_FIELDS}
    details = sweep.details
    comment = (
        f"tune_hparams.py {time.strftime('%Y-%m-%d %H:%M')}: best of {args.num_samples} samples for "
        f"{details['model']} on {details['dataset']} (preset {options.preset_tag(details['preset'])}, "
        f"val accuracy {100 * best.metrics['best_val_accuracy']:.2f}% after {best.metrics.get('epoch')} epochs, "
        f"trial {Path(best.path).name})"
    )
    preset = best_preset(details["preset"], details["dataset"], values, comment)
    location = args.out or join_location(sweep.experiment, PRESET_FILE)
    write_json(location, preset)
    print("best configuration: " + ", ".join(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
                                             for name, value in values.items()))
    print(f"  val accuracy {100 * best.metrics['best_val_accuracy']:.2f}% ({Path(best.path).name})")
    print(f"best configuration written as a preset to {location}")
    print(f"use it with: --preset {location}")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry; returns the exit status (0 a preset was written, 1 no trial
    reported, 2 usage or resource error)."""
    return run_script(SCRIPT, argv, parse_args, plan, run)


if __name__ == "__main__":
    sys.exit(main())

"""Experiments: planning them, their ``sweep.json``, running them in Ray Tune, and
what became of their trials.

Contracts (docs/design.md, "Sweeps — experiment layout"):

* An experiment is ``STORAGE/NAME/`` with Ray Tune's trial folders and our
  ``sweep.json`` marker (``kind``, ``created``, ``command``, ``planned``, …). Default
  names are deterministic, so running the same command again *resumes* the experiment
  (``Tuner.restore``): finished trials are not rerun, interrupted or failed ones
  continue from their last checkpoint. A resume of an experiment planned differently,
  or with other config values, is refused (:func:`prepare_experiment`).
* A sweep script plans a :class:`SweepPlan` (no Ray needed: every trial's config is
  built and checked, :func:`sweeps.trainable.check_trial_configs`), then
  :func:`run_plan` runs it with the trainables of :mod:`sweeps.trainable`;
  :func:`run_script` is the scripts' command-line entry.
* Ray's ``result.json`` / ``progress.csv`` keep every report of a trial that failed and
  was retried (:data:`sweeps.ray_compat.RETRY_SAFE_LOGGERS`); the analysis reads the
  run folder anyway.
* Around each experiment (modules of their own): one driver at a time
  (:mod:`sweeps.experiment_lock`, held by :func:`run_experiment`); a resume only of
  folders with our valid ``sweep.json``, checked before Ray unpickles anything
  (:mod:`sweeps.trusted_storage`); TensorBoard and MLflow loggers
  (:mod:`sweeps.tracking`); Ray itself (:mod:`sweeps.ray_setup`) and the trials'
  resources (:mod:`sweeps.resources`).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import ray
from ray import tune

from dartsrenet import results
from dartsrenet.config import config_from_values
from dartsrenet.results import SWEEP_MARKER, join_location, read_text, write_json
from dartsrenet.safe_paths import UnsafePathError, checked_name
from sweeps import ray_compat, ray_setup, tracking, trusted_storage
from sweeps.errors import EXIT_INCOMPLETE, EXIT_OK, SweepError, usage_error
from sweeps.experiment_lock import ExperimentLockError, experiment_lock
from sweeps.options import command_line, dataset_tag
from sweeps.resources import trial_resources
from sweeps.trainable import PLANNED_CONFIGS_FIELD

# --- planning ------------------------------------------------------------------------


def planned_key(entry: Mapping[str, Any]) -> str:
    return json.dumps(entry, sort_keys=True, default=str)


IDENTITY_CONFIG_FIELDS = ("out", "seed", "variant", "cell", "device", "num_workers")
"""Fields left out of :func:`resolved_configs` (per trial, or irrelevant to results)."""


def resolved_configs(kind: str, planned: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Every config value the trials share, per dataset, from the values planned for them
    (:func:`sweeps.trainable.planned_configs`); recorded in ``sweep.json`` so that resuming
    after a preset changed is refused instead of mixing configs."""
    configs = {}
    for dataset, values in planned.items():
        config = dataclasses.asdict(config_from_values(kind, dict(values)))  # type: ignore[arg-type]
        configs[dataset] = {key: value for key, value in config.items() if key not in IDENTITY_CONFIG_FIELDS}
    return configs


def config_changes(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> str:
    """``"digits: epochs 4 → 6"`` for config values that differ ("" if none or unknown)."""
    if not old or not new:
        return ""
    changes = []
    for dataset in sorted(set(old) & set(new)):
        before, after = old[dataset], new[dataset]
        changes += [
            f"{dataset}: {key} {before.get(key)!r} → {after.get(key)!r}"
            for key in sorted(set(before) | set(after)) if before.get(key) != after.get(key)
        ]
    return "; ".join(changes)


def prepare_experiment(
    experiment: str, kind: str, planned: list[dict[str, Any]], command: str, details: Mapping[str, Any]
) -> bool:
    """Write or update ``sweep.json``; returns True if the experiment is resumed.

    Raises:
        SweepError: if the folder holds an experiment planned differently (another
            command under the same name), which restoring would silently ignore.
    """
    marker_location = join_location(experiment, SWEEP_MARKER)
    try:
        existing = trusted_storage.existing_marker(experiment)  # before Ray reads the folder
    except trusted_storage.UntrustedExperimentError as error:
        raise SweepError(str(error)) from None
    now = time.time()
    if existing is not None:
        old = sorted(planned_key(entry) for entry in existing.get("planned", []))
        new = sorted(planned_key(entry) for entry in planned)
        if results.canonical_kind(existing.get("kind")) != kind or old != new:
            raise SweepError(
                f"{experiment} holds a {existing.get('kind')} experiment planned differently "
                f"(by: {existing.get('command')}). Pass --name for a new experiment, "
                "or delete that folder to start over."
            )
        if PLANNED_CONFIGS_FIELD in details and PLANNED_CONFIGS_FIELD not in existing:
            raise SweepError(
                f"{experiment} was planned by an older version of the sweeps, whose trials read the "
                "preset themselves: pass --name for a new experiment, or delete that folder to start over."
            )
        changed = config_changes(existing.get("configs"), details.get("configs"))
        if changed:
            raise SweepError(
                f"{experiment} was run with other config values ({changed}; the preset changed "
                "since?). Its finished trials would be reused as they are: pass --name for a new "
                "experiment, or delete that folder to start over."
            )
    resumable = tune.Tuner.can_restore(experiment)
    marker = dict(existing or {})
    marker.update(
        kind=kind,
        created=marker.get("created", now),
        command=marker.get("command", command),
        planned=planned,
        **details,
        ray_version=ray.__version__,
    )
    marker.setdefault("runs", []).append({"started": now, "command": command, "resumed": resumable})
    try:
        write_json(marker_location, marker)
    except OSError as error:
        raise SweepError(f"cannot write {marker_location}: {error.strerror or error}") from None
    return resumable


@dataclasses.dataclass(frozen=True)
class SweepPlan:
    """A sweep as planned from its arguments before Ray starts: every trial's config built
    once to check it, from the config values planned per dataset, which ``param_space``
    ships to the trials (:data:`sweeps.trainable.PLANNED_CONFIGS_FIELD`).

    Attributes:
        kind: the experiment kind (``search``, ``train``, ``random``, ``tune``; :data:`dartsrenet.results.KINDS`).
        planned: the trial configs (recorded in ``sweep.json``).
        param_space: Ray Tune's parameter space.
        name: the experiment name.
        storage: where experiments are stored (absolute path or URI).
        details: what ``sweep.json`` records besides (dataset, preset, overrides, configs, …).
        epochs: epochs of each trial, where a scheduler needs them (ASHA's ``max_t``).
    """

    kind: str
    planned: list[dict[str, Any]]
    param_space: dict[str, Any]
    name: str
    storage: str
    details: dict[str, Any]
    epochs: int | None = None

    def __post_init__(self) -> None:
        try:  # one folder of the storage, where the analysis finds it
            checked_name(self.name, "experiment name")
        except UnsafePathError as error:
            raise SweepError(f"{error} (--name names one folder inside --storage)") from None

    @property
    def experiment(self) -> str:
        """The experiment's location, ``STORAGE/NAME``."""
        return join_location(self.storage, self.name)


# --- running ----------------------------------------------------------------------------


def run_plan(
    sweep: SweepPlan,
    args: argparse.Namespace,
    command: str,
    trainable: Callable[[dict[str, Any]], None],
    tune_config: tune.TuneConfig | None = None,
) -> tuple[tune.ResultGrid, frozenset[str], int]:
    """Run (or resume) a planned sweep and print what became of its trials.

    Returns:
        The results, the trial folders the scheduler stopped early, and the exit status
        of :func:`summarize`.
    """
    resources = trial_resources(args)
    results_grid = run_experiment(
        trainable=trainable,
        param_space=sweep.param_space,
        planned=sweep.planned,
        kind=sweep.kind,
        storage=sweep.storage,
        name=sweep.name,
        resources=resources,
        max_failures=args.max_failures,
        command=command,
        details={**sweep.details, "resources": resources, **_planned_configs_record(sweep)},
        tune_config=tune_config,
        verbose=args.verbose,
        mlflow=getattr(args, "mlflow", None),
    )
    stopped = stopped_early_trials(sweep.experiment)
    return results_grid, stopped, summarize(results_grid, sweep.name, stopped)


def _planned_configs_record(sweep: SweepPlan) -> dict[str, Any]:
    """``sweep.json``'s record of the config values shipped to the trials (none if none)."""
    planned = sweep.param_space.get(PLANNED_CONFIGS_FIELD)
    return {} if planned is None else {PLANNED_CONFIGS_FIELD: planned}


def run_experiment(
    *,
    trainable: Callable[[dict[str, Any]], None],
    param_space: dict[str, Any],
    planned: list[dict[str, Any]],
    kind: str,
    storage: str,
    name: str,
    resources: Mapping[str, float],
    max_failures: int,
    command: str,
    details: Mapping[str, Any] | None = None,
    tune_config: tune.TuneConfig | None = None,
    verbose: int = 1,
    log: Callable[[str], None] = print,
    mlflow: str | None = None,
) -> tune.ResultGrid:
    """Run a new experiment, or resume the one under ``storage/name``; returns the results.

    The driver holds the experiment's lock throughout (:mod:`sweeps.experiment_lock`):
    a second driver of the same experiment is refused.
    ``mlflow``: ``--mlflow``'s value (sweeps/tracking.py).

    Raises:
        SweepError: another driver runs the experiment, or it cannot be resumed
            (:func:`prepare_experiment`).
    """
    experiment = join_location(storage, name)
    # Short epochs (demos, tests) make Tune warn about frequent state snapshots: expected here.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(experiment_lock(experiment, command, log))  # one driver per experiment
        except ExperimentLockError as error:
            raise SweepError(str(error)) from None
        resumed = prepare_experiment(experiment, kind, planned, command, details or {})
        trainable = tune.with_resources(trainable, dict(resources))
        try:
            callbacks = tracking.sweep_callbacks([logger() for logger in ray_compat.RETRY_SAFE_LOGGERS], experiment,
                                                 name, {"sweep_kind": kind, "sweep_command": command}, mlflow, log)
        except ValueError as error:
            raise SweepError(str(error)) from None
        if resumed:
            log(f"resuming experiment {experiment} (finished trials are kept)")
            tuner = tune.Tuner.restore(experiment, trainable, resume_errored=True)
            ray_compat.replace_callbacks(tuner, callbacks)
        else:
            log(f"starting experiment {experiment}: {len(planned)} trial(s) planned")
            base = tune_config or tune.TuneConfig()
            base.trial_dirname_creator = trial_dirname
            base.trial_name_creator = trial_dirname
            tuner = tune.Tuner(
                trainable,
                param_space=param_space,
                tune_config=base,
                run_config=tune.RunConfig(
                    name=name,
                    storage_path=storage,
                    failure_config=tune.FailureConfig(max_failures=max_failures),
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
                    sync_config=tune.SyncConfig(sync_artifacts=True),
                    callbacks=callbacks,
                    verbose=verbose,
                ),
            )
        with tracking.own_loggers_only():
            results_grid = tuner.fit()
        # The scheduler that ran: ours, or the one Tuner.restore unpickled from the experiment.
        stopped = getattr(ray_compat.scheduler_of(tuner), "stopped_trials", None)
        if stopped:
            record_stopped_early(experiment, stopped)
        return results_grid


def trial_dirname(trial: Any) -> str:
    """Readable trial folder names: ``vanilla_seed0_<id>``, ``gru_digits_seed0_<id>``."""
    config = trial.config
    parts = [str(config.get("model") or config.get("variant") or "trial")]
    if "model" in config:
        parts.append(dataset_tag(str(config.get("dataset"))))
    if "seed" in config:
        parts.append(f"seed{config['seed']}")
    parts.append(trial.trial_id)
    return "_".join(parts)


def record_stopped_early(experiment: str, trial_names: Iterable[str]) -> None:
    """Add trial folder names to ``sweep.json``'s list of trials the scheduler stopped."""
    location = join_location(experiment, SWEEP_MARKER)
    marker = json.loads(read_text(location) or "{}")
    known = set(marker.get(results.STOPPED_EARLY_FIELD) or [])
    marker[results.STOPPED_EARLY_FIELD] = sorted(known | set(trial_names))
    write_json(location, marker)


def stopped_early_trials(experiment: str) -> frozenset[str]:
    """The trial folder names that the scheduler stopped, from ``sweep.json``."""
    return results.read_experiment(experiment).stopped_early


# --- what became of the trials -----------------------------------------------------


def result_status(result: Any, stopped_early: Iterable[str] = ()) -> str:
    """A Ray result in the results contract's words (:func:`dartsrenet.results.trial_status`):
    ``finished`` (final report seen), ``diverged`` (it raised and its run folder says its
    numbers stopped being finite), ``failed``, ``stopped early`` (its trial folder is in
    ``stopped_early``: the scheduler stopped it), ``unfinished`` (reported, then
    interrupted) or ``missing`` (never reported)."""
    metrics = result.metrics or {}
    failed = result.error is not None
    return results.trial_status(
        finished=metrics.get("finished") is True,
        failed=failed,
        reported=bool(metrics),
        stopped_early=Path(str(result.path)).name in set(stopped_early),
        diverged=failed and results.read_divergence(str(result.path)) is not None,
    )


def error_line(result: Any) -> str | None:
    if result.error is None:
        return None
    lines = [line for line in str(result.error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(result.error).__name__


def summarize(
    results_grid: tune.ResultGrid, name: str, stopped_early: Iterable[str] = (), log: Callable[[str], None] = print
) -> int:
    """Print what became of the trials; returns the exit status (1 if running the same
    command again would continue some trial: unfinished, failed or never started; a
    diverged trial would only diverge again, so it is listed but does not count).

    Args:
        stopped_early: trial folder names the scheduler stopped (:func:`stopped_early_trials`).
    """
    statuses = [result_status(result, stopped_early) for result in results_grid]
    log(f"{name}: {results.status_counts_text(statuses)}")
    for result, status in zip(results_grid, statuses, strict=True):
        if status == results.FAILED:
            log(f"  failed: {Path(result.path).name}: {error_line(result)}")
        elif status == results.DIVERGED:
            log(f"  diverged: {Path(result.path).name}: {results.read_divergence(str(result.path))}")
    if not results.resumable(statuses):
        return EXIT_OK
    log("not every trial finished: run the same command again to resume the experiment")
    return EXIT_INCOMPLETE


def run_script(
    script: str,
    argv: Sequence[str] | None,
    parse_args: Callable[[Sequence[str]], argparse.Namespace],
    plan: Callable[[argparse.Namespace], SweepPlan],
    run: Callable[[argparse.Namespace, str, SweepPlan], int],
) -> int:
    """A sweep script's command-line entry: parse ``argv`` (default: ``sys.argv``), plan
    (a bad argument is one ``error:`` line and exit status 2, before Ray starts), then
    run in Ray with the command line recorded. Returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        sweep = plan(args)
    except SweepError as error:
        return usage_error(error)
    try:
        tracking.mlflow_store(getattr(args, "mlflow", None), sweep.experiment)  # checked before Ray starts
    except ValueError as error:
        return usage_error(error)
    return ray_setup.with_ray(args, lambda: run(args, command_line(script, argv), sweep))

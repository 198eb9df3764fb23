"""The sweeps' experiments as pandas DataFrames (docs/design.md, "Analysis").

What an experiment folder holds, the trial statuses and how a trial folder is read are
the results contract of :mod:`dartsrenet.results`, which the sweeps write through; this
module turns its records into one row per trial (:func:`load_trials`) or per epoch
(:func:`load_history`). Experiments may live in a local folder or at a storage URI
(``s3://…``, ``gs://…``, ``file://…``), as the sweeps' ``--storage`` allows.

Ray's files are read only for what Ray alone knows: the trial's config
(``params.json``), its failure (``error.txt``), its checkpoints, and the bookkeeping of
its last report (``trial_id``, ``training_iteration``, …, from ``result.json``).
Everything here is plain pandas/json: Ray is never imported, so results can be read on
any machine and with any Ray version. Missing or truncated files are tolerated: a trial
that never started has no folder (status ``missing``), a file being copied may end in
half a line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from dartsrenet.results import (
    DEFAULT_RESULTS_ROOT,
    DIVERGED,
    ERROR_FILE,
    FAILED,
    FINISHED,
    KINDS,
    METRICS_FILE,
    MISSING,
    PARAMS_FILE,
    RAY_RESULT_FILE,
    RUN_FOLDER,
    STATUSES,
    STOPPED_EARLY,
    SUMMARY_FILE,
    SWEEP_MARKER,
    UNFINISHED,
    Experiment,
    ExperimentNotFoundError,
    evaluations_of,
    find_experiments,
    invalid_result,
    join_location,
    latest_checkpoint,
    latest_experiment,
    location_name,
    modified_time,
    read_experiment,
    read_json_lines,
    read_trial_config,
    trial_folders,
    trial_state,
)

__all__ = [
    "DEFAULT_RESULTS_ROOT", "DIVERGED", "FAILED", "FINISHED", "KINDS", "MISSING", "STATUSES", "STOPPED_EARLY", "SWEEP_MARKER",
    "UNFINISHED", "Experiment", "ExperimentNotFoundError", "config_column", "evaluations_of", "find_experiments",
    "invalid_result", "latest_experiment", "load_history", "load_trials", "read_experiment", "read_json_lines",
    "unique_trials",
]

CONFIG_PREFIX = "config/"
"""Config fields become ``config/<field>`` columns, as in Ray's own DataFrames."""

IDENTITY_FIELDS: tuple[str, ...] = ("dataset", "model", "variant", "seed")
"""Config fields that identify a trial (a planned entry is matched on those it has)."""

RAY_BOOKKEEPING: tuple[str, ...] = ("config",)
"""Report fields that are dropped: Ray repeats the whole config in every report."""

SUMMARY_COLUMNS_SKIPPED: tuple[str, ...] = ("kind", "config", "versions", "genotype")
"""``summary.json`` fields that do not become columns (nested, or repeated elsewhere)."""


def ray_bookkeeping(trial_dir: str, epoch: Any, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """What Ray alone recorded about its report of ``epoch`` (``trial_id``,
    ``training_iteration``, ``timestamp``, …): the fields of that epoch's line in Ray's
    ``result.json`` that are not in ``metrics``. ``{}`` when Ray has no such line."""
    lines = [line for line in read_json_lines(join_location(trial_dir, RAY_RESULT_FILE)) if line.get("epoch") == epoch]
    if not lines:
        return {}
    return {key: value for key, value in lines[-1].items() if key not in metrics and key not in RAY_BOOKKEEPING}


# --- trials --------------------------------------------------------------------------


def _config_columns(config: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{CONFIG_PREFIX}{key}": value for key, value in config.items()}


def _matches(planned: Mapping[str, Any], config: Mapping[str, Any]) -> bool:
    """Whether a trial's config is the planned one: equal on the identity fields the plan
    names (all of the plan's fields when it names none of them)."""
    keys = [key for key in IDENTITY_FIELDS if key in planned] or list(planned)
    return all(key in config and config[key] == planned[key] for key in keys)


def load_trials(experiment: Experiment) -> pd.DataFrame:
    """One row per trial of ``experiment``, planned-but-missing trials included.

    Columns: ``trial`` (folder name; ``None`` when missing), ``trial_dir``, ``status``
    (see :data:`STATUSES` and :func:`trial_state`), ``error`` (why it failed),
    ``reports`` (epochs in ``metrics.jsonl``), ``checkpoint`` (Ray's latest checkpoint
    folder), ``mtime`` (last change of the trial's files, POSIX seconds),
    ``config/<field>`` for every config field, every field of the last epoch's metrics,
    the scalar fields of ``summary.json`` (e.g. ``genotype_string``, ``test_accuracy``),
    and Ray's bookkeeping of that epoch's report (e.g. ``training_iteration``).

    Rows are ordered as the sweep planned them, then unplanned trial folders by name.
    """
    folder_rows = []
    for trial_dir in trial_folders(experiment.path):
        status, error, history, summary = trial_state(trial_dir, location_name(trial_dir) in experiment.stopped_early)
        config = read_trial_config(trial_dir)
        row: dict[str, Any] = {
            "trial": location_name(trial_dir),
            "trial_dir": trial_dir,
            "status": status,
            "error": error,
            "reports": len(history),
            "checkpoint": latest_checkpoint(trial_dir),
            "mtime": _latest_mtime(trial_dir),
            **_config_columns(config),
        }
        last = history[-1] if history else {}
        row.update({key: value for key, value in last.items() if key not in row})
        if summary is not None:
            row.update(
                {key: value for key, value in summary.items() if key not in SUMMARY_COLUMNS_SKIPPED and key not in config}
            )
        if last:
            ray = ray_bookkeeping(trial_dir, last["epoch"], last)
            row.update({key: value for key, value in ray.items() if key not in row})
        folder_rows.append((config, row))

    rows = []
    used: set[int] = set()
    for planned in experiment.planned:
        matched = [k for k, (config, _) in enumerate(folder_rows) if k not in used and _matches(planned, config)]
        if matched:
            used.update(matched)
            rows.extend(folder_rows[k][1] for k in matched)
        else:
            rows.append(
                {
                    "trial": None,
                    "trial_dir": None,
                    "status": MISSING,
                    "error": None,
                    "reports": 0,
                    "checkpoint": None,
                    "mtime": None,
                    **_config_columns(planned),
                }
            )
    rows.extend(row for k, (_, row) in enumerate(folder_rows) if k not in used)
    return pd.DataFrame(rows, columns=_ordered_columns(rows))


def _latest_mtime(trial_dir: str) -> float:
    """Last change of a trial's files (POSIX seconds)."""
    locations = [trial_dir, join_location(trial_dir, RUN_FOLDER, METRICS_FILE),
                 join_location(trial_dir, RUN_FOLDER, SUMMARY_FILE),
                 *(join_location(trial_dir, name) for name in (ERROR_FILE, PARAMS_FILE, RAY_RESULT_FILE))]
    times = [time for time in map(modified_time, locations) if time is not None]
    return max(times, default=math.nan)


def _ordered_columns(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    columns: dict[str, None] = dict.fromkeys(
        ["trial", "trial_dir", "status", "error", "reports", "checkpoint", "mtime"]
    )
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns)


def load_history(experiment: Experiment) -> pd.DataFrame:
    """Per-epoch metrics of every trial folder: one row per (trial, epoch), from the run
    folders' ``metrics.jsonl`` — every epoch once, also for a trial retried after a failure.

    Columns: ``trial``, ``status`` (as in :func:`load_trials`), ``config/<field>`` and
    every metric (docs/design.md, "The report callback").
    """
    frames = []
    for trial_dir in trial_folders(experiment.path):
        status, _, history, _ = trial_state(trial_dir, location_name(trial_dir) in experiment.stopped_early)
        if not history:
            continue
        frame = pd.DataFrame(history)
        header = {"trial": location_name(trial_dir), "status": status, **_config_columns(read_trial_config(trial_dir))}
        for position, (key, value) in enumerate(header.items()):
            frame.insert(position, key, [value] * len(frame))
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["trial", "status"])
    return pd.concat(frames, ignore_index=True)


def unique_trials(trials: pd.DataFrame, keys: Iterable[str]) -> pd.DataFrame:
    """One row per value of ``keys`` (e.g. dataset, model, seed): when a trial was run
    more than once (a sweep re-launched without resuming), keep the finished run, else
    the most recently changed one; ties keep the first row.

    Args:
        trials: rows of :func:`load_trials`.
        keys: column names (``config/…``) that identify a trial; absent ones are ignored.
    """
    keys = [key for key in keys if key in trials]
    if not keys or trials.empty:
        return trials
    rank = {FINISHED: 0, DIVERGED: 1, UNFINISHED: 2, STOPPED_EARLY: 3, FAILED: 4, MISSING: 5}
    mtime = trials["mtime"] if "mtime" in trials else pd.Series(math.nan, index=trials.index)
    ordered = trials.assign(
        _rank=trials["status"].map(rank).fillna(len(rank)),
        _mtime=-pd.to_numeric(mtime, errors="coerce").fillna(-math.inf),
        _order=range(len(trials)),
    )
    ordered = ordered.sort_values(["_rank", "_mtime", "_order"], kind="stable")
    kept = ordered.drop_duplicates(subset=keys, keep="first").sort_values("_order")
    return kept.drop(columns=["_rank", "_mtime", "_order"])


def config_column(name: str) -> str:
    """The DataFrame column of config field ``name`` (``config/<name>``)."""
    return f"{CONFIG_PREFIX}{name}"

"""Read the experiment folders of the Ray Tune sweeps (docs/design.md, "Sweeps — experiment layout").

An experiment is a folder ``STORAGE/NAME/`` marked by ``sweep.json``
(``{"kind": "search"|"eval", "created": …, "planned": [{trial config}, …], …}``), with
one folder per trial. Each trial folder holds the library's run folder ``run/`` (synced
from the trial's working directory with every checkpoint) beside Ray Tune's files::

    NAME/
      sweep.json
      vanilla_seed0_abc12_00000/
        run/
          config.json      the resolved config
          metrics.jsonl    one JSON object per epoch           ← per-epoch history
          summary.json     written when the run finishes      ← the trial's result
          …                (docs/design.md, "Run folder")
        params.json        the trial's config (Ray)
        error.txt          only when the trial failed (Ray)
        result.json        Ray's copy of the reports
        progress.csv       the same, flattened to CSV
        checkpoint_000003/ Ray's checkpoints

Metrics come from the run folder only: the library rewrites ``metrics.jsonl`` whole
after every epoch, so a trial that failed and was retried from a checkpoint shows every
epoch once, whereas Ray's ``result.json`` can miss the reports made before a retry.
Ray's files are read only for what Ray alone knows: the trial's config
(``params.json``), its failure (``error.txt``), its checkpoints, and the bookkeeping of
its last report (``trial_id``, ``training_iteration``, …, from ``result.json``).

A record that is not a result is never shown as a number: a finished run whose
accuracies are not finite fractions in [0, 1] (NaN — written as ``NaN`` or ``null`` —
or a percentage such as 97.5), or whose selected genotype does not parse, is a
``failed`` trial with the reason in ``error``.

Everything here is plain pandas/json: Ray is never imported, so results can be read on
any machine and with any Ray version. Missing or truncated files are tolerated: a trial
that never started has no folder (status ``missing``), a file being copied may end in
half a line.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from dartsrenet.genotypes import Genotype, GenotypeError

SWEEP_MARKER = "sweep.json"
"""The file that marks an experiment folder."""

KINDS: tuple[str, ...] = ("search", "eval")
"""Experiment kinds: cell search sweeps and evaluation (Table 1) sweeps."""

DEFAULT_RESULTS_ROOT = Path("results")
"""Where the sweeps store experiments by default (``--storage``)."""

FINISHED, FAILED, UNFINISHED, MISSING = "finished", "failed", "unfinished", "missing"
STATUSES: tuple[str, ...] = (FINISHED, FAILED, UNFINISHED, MISSING)
"""Trial statuses (:func:`trial_state`). ``unfinished``: running, or stopped before its run
folder got ``summary.json`` and without an error (e.g. the sweep was interrupted);
``missing``: planned but no trial folder."""

CONFIG_PREFIX = "config/"
"""Config fields become ``config/<field>`` columns, as in Ray's own DataFrames."""

IDENTITY_FIELDS: tuple[str, ...] = ("dataset", "model", "variant", "seed")
"""Config fields that identify a trial (a planned entry is matched on those it has)."""

RUN_FOLDER = "run"
"""The library's run folder inside each trial folder (``sweeps.common.RUN_FOLDER``)."""

METRICS_FILE, SUMMARY_FILE = "metrics.jsonl", "summary.json"
"""Files of the run folder: per-epoch metrics, and the result of a finished run."""

RAY_BOOKKEEPING: tuple[str, ...] = ("config",)
"""Report fields that are dropped: Ray repeats the whole config in every report."""

ACCURACY_FIELDS: tuple[str, ...] = ("train_accuracy", "val_accuracy", "best_val_accuracy", "test_accuracy")
"""Metrics that are fractions in [0, 1] (docs/design.md); anything else is not a result."""

SUMMARY_COLUMNS_SKIPPED: tuple[str, ...] = ("kind", "config", "versions", "genotype")
"""``summary.json`` fields that do not become columns (nested, or repeated elsewhere)."""

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


class ExperimentNotFoundError(FileNotFoundError):
    """A folder that is not an experiment (no ``sweep.json``), or no experiment at all."""


@dataclass(frozen=True)
class Experiment:
    """An experiment folder and its ``sweep.json`` marker.

    Attributes:
        path: the experiment folder (``STORAGE/NAME``).
        kind: ``"search"`` or ``"eval"``.
        created: creation time (POSIX seconds) from the marker's ``created`` field, or the
            marker file's modification time when the field is absent or unreadable.
        marker: the whole ``sweep.json`` content.
    """

    path: Path
    kind: str
    created: float
    marker: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        """The experiment's name (its folder name)."""
        return self.path.name

    @property
    def planned(self) -> list[dict[str, Any]]:
        """The trial configs the sweep planned (empty when the marker lists none)."""
        planned = self.marker.get("planned") or []
        return [dict(entry) for entry in planned if isinstance(entry, Mapping)]


# --- experiments ---------------------------------------------------------------------


def read_experiment(path: str | os.PathLike[str]) -> Experiment:
    """Read the experiment in folder ``path``.

    Raises:
        ExperimentNotFoundError: if ``path`` has no readable ``sweep.json``.
        ValueError: if the marker's ``kind`` is not one of :data:`KINDS`.
    """
    path = Path(path)
    marker_path = path / SWEEP_MARKER
    marker = _read_json(marker_path)
    if not isinstance(marker, dict):
        raise ExperimentNotFoundError(
            f"{path} is not an experiment folder: no readable {SWEEP_MARKER} "
            "(sweeps write it; see docs/design.md)"
        )
    kind = marker.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{marker_path}: 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    return Experiment(path=path, kind=kind, created=_created_time(marker, marker_path), marker=marker)


def find_experiments(
    root: str | os.PathLike[str] = DEFAULT_RESULTS_ROOT, kind: str | None = None
) -> list[Experiment]:
    """All experiments under ``root`` (the root itself and two levels below), oldest first.

    Folders whose ``sweep.json`` is unreadable or has an unknown kind are skipped.

    Args:
        root: the results root (the sweeps' ``--storage``).
        kind: keep only experiments of this kind; ``None`` keeps all.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    markers = [root / SWEEP_MARKER, *root.glob(f"*/{SWEEP_MARKER}"), *root.glob(f"*/*/{SWEEP_MARKER}")]
    experiments = []
    for marker in markers:
        if not marker.is_file():
            continue
        try:
            experiment = read_experiment(marker.parent)
        except (ExperimentNotFoundError, ValueError):
            continue
        if kind is None or experiment.kind == kind:
            experiments.append(experiment)
    return sorted(experiments, key=lambda experiment: (experiment.created, experiment.name))


def latest_experiment(root: str | os.PathLike[str] = DEFAULT_RESULTS_ROOT, kind: str = "search") -> Experiment | None:
    """The most recently created experiment of ``kind`` under ``root``, or ``None``."""
    experiments = find_experiments(root, kind)
    return experiments[-1] if experiments else None


def _created_time(marker: Mapping[str, Any], marker_path: Path) -> float:
    created = marker.get("created")
    if isinstance(created, int | float) and not isinstance(created, bool) and math.isfinite(created):
        return float(created)
    if isinstance(created, str):
        try:
            return datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return marker_path.stat().st_mtime


# --- files ---------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    """JSON content of ``path``, or ``None`` when missing or malformed."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_json_lines(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file such as the run folder's ``metrics.jsonl``.

    A missing file gives ``[]``. Lines that do not parse (typically the last line, cut
    short while the file was being copied) and non-object lines are skipped. ``NaN``
    and ``null`` values are read as they are (``float("nan")``, ``None``).
    """
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return []
    records = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_history(trial_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The per-epoch metrics of one trial, by epoch, from its run folder's ``metrics.jsonl``.

    One record per epoch (an epoch written twice keeps its last record); records without
    an integer ``epoch`` are skipped. ``[]`` when the run wrote no epoch yet.
    """
    by_epoch: dict[int, dict[str, Any]] = {}
    for record in read_json_lines(Path(trial_dir) / RUN_FOLDER / METRICS_FILE):
        epoch = record.get("epoch")
        if isinstance(epoch, int) and not isinstance(epoch, bool):
            by_epoch[epoch] = record
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def read_summary(trial_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The run folder's ``summary.json`` (written when the run finished), or ``None``."""
    summary = _read_json(Path(trial_dir) / RUN_FOLDER / SUMMARY_FILE)
    return summary if isinstance(summary, dict) else None


def ray_bookkeeping(trial_dir: str | os.PathLike[str], epoch: Any, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """What Ray alone recorded about its report of ``epoch`` (``trial_id``,
    ``training_iteration``, ``timestamp``, …): the fields of that epoch's line in Ray's
    ``result.json`` that are not in ``metrics``. ``{}`` when Ray has no such line."""
    lines = [line for line in read_json_lines(Path(trial_dir) / "result.json") if line.get("epoch") == epoch]
    if not lines:
        return {}
    return {key: value for key, value in lines[-1].items() if key not in metrics and key not in RAY_BOOKKEEPING}


def read_error(trial_dir: str | os.PathLike[str]) -> str | None:
    """The last non-empty line of the trial's ``error.txt`` (the exception), or ``None``."""
    try:
        text = (Path(trial_dir) / "error.txt").read_text(errors="replace")
    except OSError:
        return None
    lines = [_ANSI_ESCAPE.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else "error.txt is empty"


def latest_checkpoint(trial_dir: str | os.PathLike[str]) -> str | None:
    """Name of the trial's highest-numbered ``checkpoint_*`` folder, or ``None``."""
    checkpoints = sorted(path.name for path in Path(trial_dir).glob("checkpoint_*") if path.is_dir())
    return checkpoints[-1] if checkpoints else None


def trial_folders(experiment_dir: str | os.PathLike[str]) -> list[Path]:
    """The trial folders of an experiment: sub-folders holding a run folder or Ray's
    trial files, by name."""
    experiment_dir = Path(experiment_dir)
    if not experiment_dir.is_dir():
        return []
    markers = (RUN_FOLDER, "params.json", "result.json", "progress.csv")
    return sorted(
        path
        for path in experiment_dir.iterdir()
        if path.is_dir() and any((path / marker).exists() for marker in markers)
    )


# --- validity ------------------------------------------------------------------------


def _not_a_fraction(value: Any) -> str | None:
    """How ``value`` fails to be a finite fraction in [0, 1] (``"NaN"``, ``"97.5"``, …), or ``None``."""
    if value is None:
        return "null (not a number)"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{value!r} (not a number)"
    if math.isnan(value):
        return "NaN"
    if not 0.0 <= value <= 1.0:
        return f"{value:g}"
    return None


def invalid_result(history: list[dict[str, Any]], summary: Mapping[str, Any] | None) -> str | None:
    """Why a run's records are not a result, or ``None`` if they are.

    Every accuracy (:data:`ACCURACY_FIELDS`) in ``metrics.jsonl`` must be a finite
    fraction in [0, 1]; a finished run's ``summary.json`` must have such a
    ``best_val_accuracy`` (and ``test_accuracy`` for an evaluation run), and a search
    run's ``genotype_string`` must parse as a genotype.

    Returns:
        One line naming the file, the field and the value, e.g.
        ``"summary.json: test_accuracy is NaN, not a fraction in [0, 1]"``.
    """
    for record in history:
        for name in ACCURACY_FIELDS:
            if name in record and (problem := _not_a_fraction(record[name])) is not None:
                return f"{METRICS_FILE} epoch {record['epoch']}: {name} is {problem}, not a fraction in [0, 1]"
    if summary is None:
        return None
    required = ("best_val_accuracy", "test_accuracy") if summary.get("kind") == "train" else ("best_val_accuracy",)
    for name in required:
        if name not in summary:
            return f"{SUMMARY_FILE}: no {name}"
        if (problem := _not_a_fraction(summary[name])) is not None:
            return f"{SUMMARY_FILE}: {name} is {problem}, not a fraction in [0, 1]"
    if summary.get("kind") == "search":
        text = summary.get("genotype_string")
        try:
            if not isinstance(text, str):
                raise GenotypeError(f"expected a string, got {type(text).__name__}")
            Genotype.from_string(text)
        except GenotypeError as error:
            return f"{SUMMARY_FILE}: genotype_string {text!r} is not a genotype ({error})"
    return None


def trial_state(trial_dir: str | os.PathLike[str]) -> tuple[str, str | None, list[dict[str, Any]], dict[str, Any] | None]:
    """Status, error line, per-epoch history and summary of one trial folder.

    Status: ``finished`` when the run folder has ``summary.json`` (a trial that failed,
    was retried by Ray and then finished counts as finished); else ``failed`` when Ray
    wrote ``error.txt``; else ``unfinished``. Records that are not a result
    (:func:`invalid_result`) make any trial ``failed``, with the reason as its error;
    otherwise the error is the last line of ``error.txt``, if any.
    """
    history = read_history(trial_dir)
    summary = read_summary(trial_dir)
    error = read_error(trial_dir)
    reason = invalid_result(history, summary)
    if reason is not None:
        return FAILED, reason, history, summary
    if summary is not None:
        return FINISHED, error, history, summary
    return (FAILED if error is not None else UNFINISHED), error, history, summary


# --- trials --------------------------------------------------------------------------


def _config_columns(config: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{CONFIG_PREFIX}{key}": value for key, value in config.items()}


def _matches(planned: Mapping[str, Any], config: Mapping[str, Any]) -> bool:
    """Whether a trial's config is the planned one: equal on the identity fields the plan
    names (all of the plan's fields when it names none of them)."""
    keys = [key for key in IDENTITY_FIELDS if key in planned] or list(planned)
    return all(key in config and config[key] == planned[key] for key in keys)


def _folder_config(trial_dir: Path) -> dict[str, Any]:
    config = _read_json(trial_dir / "params.json")
    if isinstance(config, dict):
        return config
    # params.json missing: Ray repeats the config in every result.json line.
    for report in reversed(read_json_lines(trial_dir / "result.json")):
        if isinstance(report.get("config"), dict):
            return report["config"]
    return {}


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
        status, error, history, summary = trial_state(trial_dir)
        config = _folder_config(trial_dir)
        row: dict[str, Any] = {
            "trial": trial_dir.name,
            "trial_dir": str(trial_dir),
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


def _latest_mtime(trial_dir: Path) -> float:
    times = [trial_dir.stat().st_mtime]
    run = Path(RUN_FOLDER)
    for name in (run / METRICS_FILE, run / SUMMARY_FILE, "error.txt", "params.json", "result.json"):
        path = trial_dir / name
        if path.is_file():
            times.append(path.stat().st_mtime)
    return max(times)


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
        status, _, history, _ = trial_state(trial_dir)
        if not history:
            continue
        frame = pd.DataFrame(history)
        header = {"trial": trial_dir.name, "status": status, **_config_columns(_folder_config(trial_dir))}
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
    rank = {FINISHED: 0, UNFINISHED: 1, FAILED: 2, MISSING: 3}
    mtime = trials["mtime"] if "mtime" in trials else pd.Series(math.nan, index=trials.index)
    ordered = trials.assign(
        _rank=trials["status"].map(rank).fillna(4),
        _mtime=-pd.to_numeric(mtime, errors="coerce").fillna(-math.inf),
        _order=range(len(trials)),
    )
    ordered = ordered.sort_values(["_rank", "_mtime", "_order"], kind="stable")
    kept = ordered.drop_duplicates(subset=keys, keep="first").sort_values("_order")
    return kept.drop(columns=["_rank", "_mtime", "_order"])


def config_column(name: str) -> str:
    """The DataFrame column of config field ``name`` (``config/<name>``)."""
    return f"{CONFIG_PREFIX}{name}"

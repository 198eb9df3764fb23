"""Read the experiment folders of the Ray Tune sweeps (docs/design.md, "Sweeps — experiment layout").

An experiment is a folder ``STORAGE/NAME/`` marked by ``sweep.json``
(``{"kind": "search"|"eval", "created": …, "planned": [{trial config}, …], …}``), with
one folder per trial in Ray Tune's layout::

    NAME/
      sweep.json
      trainable_abc12_00000_0_seed=0,variant=vanilla_2026-01-01_12-00-00/
        params.json        the trial's config
        result.json        one JSON object per report (our metrics + Ray's fields)
        progress.csv       the same reports, flattened to CSV
        checkpoint_000003/ Ray's checkpoints
        error.txt          only when the trial failed

Everything here is plain pandas/json: Ray is never imported, so results can be read on
any machine and with any Ray version. Missing or truncated files are tolerated: a trial
that never started has no folder (status ``missing``), a trial being written may end in
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

SWEEP_MARKER = "sweep.json"
"""The file that marks an experiment folder."""

KINDS: tuple[str, ...] = ("search", "eval")
"""Experiment kinds: cell search sweeps and evaluation (Table 1) sweeps."""

DEFAULT_RESULTS_ROOT = Path("results")
"""Where the sweeps store experiments by default (``--storage``)."""

FINISHED, FAILED, UNFINISHED, MISSING = "finished", "failed", "unfinished", "missing"
STATUSES: tuple[str, ...] = (FINISHED, FAILED, UNFINISHED, MISSING)
"""Trial statuses. ``unfinished``: running, or stopped without a final report and without
an error (e.g. the sweep was interrupted); ``missing``: planned but no trial folder."""

CONFIG_PREFIX = "config/"
"""Config fields become ``config/<field>`` columns, as in Ray's own DataFrames."""

IDENTITY_FIELDS: tuple[str, ...] = ("dataset", "model", "variant", "seed")
"""Config fields that identify a trial (a planned entry is matched on those it has)."""

RAY_BOOKKEEPING: tuple[str, ...] = ("config",)
"""Report fields that are dropped: Ray repeats the whole config in every report."""

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
    """The JSON objects of a JSON-lines file such as Ray's ``result.json``.

    A missing file gives ``[]``. Lines that do not parse (typically the last line, cut
    short while the trial was writing it) and non-object lines are skipped.
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


def read_progress_csv(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The reports in Ray's ``progress.csv`` (fallback when ``result.json`` is absent).

    List-valued metrics such as ``alpha`` are stored by Ray as their text form; those
    are parsed back. Malformed rows are skipped; a missing or empty file gives ``[]``.
    """
    try:
        frame = pd.read_csv(path, on_bad_lines="skip")
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return []
    records = []
    for record in frame.to_dict(orient="records"):
        parsed = {}
        for key, value in record.items():
            if isinstance(value, float) and math.isnan(value):
                continue
            if isinstance(value, str) and value[:1] in "[{":
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            parsed[key] = value
        records.append(parsed)
    return records


def read_reports(trial_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The reports of one trial, oldest first: ``result.json``, else ``progress.csv``."""
    trial_dir = Path(trial_dir)
    reports = read_json_lines(trial_dir / "result.json")
    if not reports:
        reports = read_progress_csv(trial_dir / "progress.csv")
    return [{key: value for key, value in report.items() if key not in RAY_BOOKKEEPING} for report in reports]


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
    """The trial folders of an experiment: sub-folders holding Ray's trial files, by name."""
    experiment_dir = Path(experiment_dir)
    if not experiment_dir.is_dir():
        return []
    markers = ("params.json", "result.json", "progress.csv")
    return sorted(
        path
        for path in experiment_dir.iterdir()
        if path.is_dir() and any((path / marker).is_file() for marker in markers)
    )


def trial_status(reports: list[dict[str, Any]], trial_dir: str | os.PathLike[str]) -> str:
    """``finished`` if the last report says ``finished: true``; else ``failed`` if the
    folder has ``error.txt``; else ``unfinished``.

    A trial that failed, was retried by Ray and then finished counts as finished.
    """
    if reports and reports[-1].get("finished") is True:
        return FINISHED
    if (Path(trial_dir) / "error.txt").is_file():
        return FAILED
    return UNFINISHED


# --- trials --------------------------------------------------------------------------


def _config_columns(config: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{CONFIG_PREFIX}{key}": value for key, value in config.items()}


def _matches(planned: Mapping[str, Any], config: Mapping[str, Any]) -> bool:
    """Whether a trial's config is the planned one: equal on the identity fields the plan
    names (all of the plan's fields when it names none of them)."""
    keys = [key for key in IDENTITY_FIELDS if key in planned] or list(planned)
    return all(key in config and config[key] == planned[key] for key in keys)


def _folder_config(trial_dir: Path, reports: list[dict[str, Any]]) -> dict[str, Any]:
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
    (see :data:`STATUSES`), ``error`` (last line of ``error.txt``), ``reports`` (number
    of reports), ``checkpoint`` (latest checkpoint folder), ``mtime`` (last change of the
    trial's files, POSIX seconds), ``config/<field>`` for every config field, and every
    field of the last report (our metrics and Ray's, e.g. ``training_iteration``).

    Rows are ordered as the sweep planned them, then unplanned trial folders by name.
    """
    folder_rows = []
    for trial_dir in trial_folders(experiment.path):
        reports = read_reports(trial_dir)
        config = _folder_config(trial_dir, reports)
        row: dict[str, Any] = {
            "trial": trial_dir.name,
            "trial_dir": str(trial_dir),
            "status": trial_status(reports, trial_dir),
            "error": read_error(trial_dir),
            "reports": len(reports),
            "checkpoint": latest_checkpoint(trial_dir),
            "mtime": _latest_mtime(trial_dir),
            **_config_columns(config),
        }
        if reports:
            row.update({key: value for key, value in reports[-1].items() if key not in row})
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
    for name in ("result.json", "progress.csv", "error.txt", "params.json"):
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
    """Per-epoch reports of every trial folder: one row per (trial, report).

    Columns: ``trial``, ``status``, ``config/<field>`` and every report field. When a
    trial was restored from a checkpoint and reported an epoch twice, the later report
    is kept (by ``epoch``, else by Ray's ``training_iteration``).
    """
    frames = []
    for trial_dir in trial_folders(experiment.path):
        reports = read_reports(trial_dir)
        if not reports:
            continue
        config = _folder_config(trial_dir, reports)
        frame = pd.DataFrame(reports)
        step = next((key for key in ("epoch", "training_iteration") if key in frame), None)
        if step is not None:
            frame = frame[frame[step].notna()].drop_duplicates(subset=step, keep="last").sort_values(step)
        header = {"trial": trial_dir.name, "status": trial_status(reports, trial_dir), **_config_columns(config)}
        for position, (key, value) in enumerate(header.items()):
            frame.insert(position, key, [value] * len(frame))
        frames.append(frame.reset_index(drop=True))
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

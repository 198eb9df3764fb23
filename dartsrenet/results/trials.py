"""Trial folders (docs/design.md, "Sweeps — experiment layout"): a trial's per-epoch
history and summary from its run folder, its config and error from Ray's files, and
what became of it (:func:`trial_state`). Imports neither torch, Ray nor pandas.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dartsrenet.results.contract import (
    ACCURACY_FIELDS,
    DIVERGED,
    DIVERGED_FILE,
    ERROR_FILE,
    FAILED,
    METRICS_FILE,
    PARAMS_FILE,
    RAY_RESULT_FILE,
    RUN_FOLDER,
    SUMMARY_FILE,
    fraction_problem,
    genotype_problem,
    trial_status,
)
from dartsrenet.results.storage import exists, join_location, list_folders, location_name, read_json, read_text

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def read_json_lines(location: str | Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file such as the run folder's ``metrics.jsonl``.

    A missing file gives ``[]``. Lines that do not parse (typically the last line, cut
    short while the file was being copied) and non-object lines are skipped. ``NaN``
    and ``null`` values are read as they are (``float("nan")``, ``None``).
    """
    records = []
    for line in (read_text(location) or "").splitlines():
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


def read_history(trial_dir: str | Path) -> list[dict[str, Any]]:
    """The per-epoch metrics of one trial, by epoch, from its run folder's ``metrics.jsonl``.

    One record per epoch (an epoch written twice keeps its last record); records without
    an integer ``epoch`` are skipped. ``[]`` when the run wrote no epoch yet.
    """
    by_epoch: dict[int, dict[str, Any]] = {}
    for record in read_json_lines(join_location(trial_dir, RUN_FOLDER, METRICS_FILE)):
        epoch = record.get("epoch")
        if isinstance(epoch, int) and not isinstance(epoch, bool):
            by_epoch[epoch] = record
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def read_summary(trial_dir: str | Path) -> dict[str, Any] | None:
    """The run folder's ``summary.json`` (written when the run finished), or ``None``."""
    summary = read_json(join_location(trial_dir, RUN_FOLDER, SUMMARY_FILE))
    return summary if isinstance(summary, dict) else None


def read_divergence(trial_dir: str | Path) -> str | None:
    """``"NonFiniteLossError: …"`` from the run folder's :data:`DIVERGED_FILE`, or ``None``
    when the run did not diverge (or the file does not say how)."""
    record = read_json(join_location(trial_dir, RUN_FOLDER, DIVERGED_FILE))
    if not isinstance(record, dict):
        return None
    return f"{record.get('error', 'diverged')}: {record.get('message', '')}".rstrip(": ")


def read_error(trial_dir: str | Path) -> str | None:
    """The last non-empty line of the trial's ``error.txt`` (the exception), or ``None``."""
    text = read_text(join_location(trial_dir, ERROR_FILE))
    if text is None:
        return None
    lines = [_ANSI_ESCAPE.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else f"{ERROR_FILE} is empty"


def read_trial_config(trial_dir: str | Path) -> dict[str, Any]:
    """The trial's config: Ray's ``params.json``, else the config Ray repeats in every
    ``result.json`` line; ``{}`` when neither is readable."""
    config = read_json(join_location(trial_dir, PARAMS_FILE))
    if isinstance(config, dict):
        return config
    for report in reversed(read_json_lines(join_location(trial_dir, RAY_RESULT_FILE))):
        if isinstance(report.get("config"), dict):
            return report["config"]
    return {}


def latest_checkpoint(trial_dir: str | Path) -> str | None:
    """Name of the trial's highest-numbered ``checkpoint_*`` folder, or ``None``."""
    names = [location_name(folder) for folder in list_folders(trial_dir)]
    checkpoints = sorted(name for name in names if name.startswith("checkpoint_"))
    return checkpoints[-1] if checkpoints else None


def trial_folders(experiment_dir: str | Path) -> list[str]:
    """The trial folders of an experiment: sub-folders holding a run folder or Ray's
    trial files, by name."""
    markers = (RUN_FOLDER, PARAMS_FILE, RAY_RESULT_FILE, "progress.csv")
    return [
        folder for folder in list_folders(experiment_dir)
        if any(exists(join_location(folder, marker)) for marker in markers)
    ]


def invalid_result(history: list[dict[str, Any]], summary: Mapping[str, Any] | None) -> str | None:
    """Why a run's records are not a result, or ``None`` if they are.

    Every accuracy (:data:`ACCURACY_FIELDS`) in ``metrics.jsonl`` must be a finite
    fraction in [0, 1], except the ``null`` validation accuracy of an epoch the run marked
    ``val_finite: false`` (its outputs were not finite: recorded as null and never
    selected, docs/architecture.md §6.4) and the ``null`` best validation accuracy of an
    epoch with ``best_epoch: 0`` (none selected yet); a finished run's ``summary.json`` must have such a
    ``best_val_accuracy`` (and ``test_accuracy`` for an evaluation run), and a search
    run's ``genotype_string`` must parse as a genotype.

    Returns:
        One line naming the file, the field and the value, e.g.
        ``"summary.json: test_accuracy is NaN, not a fraction in [0, 1]"``.
    """
    for record in history:
        for name in ACCURACY_FIELDS:
            if name == "val_accuracy" and record.get("val_finite") is False and record[name] is None:
                continue  # an epoch whose validation outputs were not finite: null, never selected
            if name == "best_val_accuracy" and record.get("best_epoch") == 0 and record[name] is None:
                continue  # no epoch selected yet (every validation so far not finite)
            if name in record and (problem := fraction_problem(name, record[name])) is not None:
                return f"{METRICS_FILE} epoch {record['epoch']}: {problem}"
    if summary is None:
        return None
    required = ("best_val_accuracy", "test_accuracy") if summary.get("kind") == "train" else ("best_val_accuracy",)
    for name in required:
        if name not in summary:
            return f"{SUMMARY_FILE}: no {name}"
        if (problem := fraction_problem(name, summary[name])) is not None:
            return f"{SUMMARY_FILE}: {problem}"
    if summary.get("kind") == "search":
        problem = genotype_problem("genotype_string", summary.get("genotype_string"))
        if problem is not None:
            return f"{SUMMARY_FILE}: {problem}"
    return None


def trial_state(
    trial_dir: str | Path, stopped_early: bool = False
) -> tuple[str, str | None, list[dict[str, Any]], dict[str, Any] | None]:
    """Status, error line, per-epoch history and summary of one trial folder.

    Status (:func:`trial_status`): ``finished`` when the run folder has ``summary.json``
    (a trial that failed, was retried by Ray and then finished counts as finished); else
    ``diverged`` when the run folder has :data:`DIVERGED_FILE` (its line is the error); else
    ``failed`` when Ray wrote ``error.txt``; else ``stopped early`` when the experiment
    says so (``stopped_early``); else ``unfinished``. Records that are not a
    result (:func:`invalid_result`) make any trial ``failed``, with the reason as its
    error; otherwise the error is the last line of ``error.txt``, if any.
    """
    history = read_history(trial_dir)
    summary = read_summary(trial_dir)
    error = read_error(trial_dir)
    divergence = read_divergence(trial_dir) if summary is None else None
    if divergence is not None:  # its records may hold the non-finite epochs that led there
        return DIVERGED, divergence, history, summary
    reason = invalid_result(history, summary)
    if reason is not None:
        return FAILED, reason, history, summary
    status = trial_status(
        finished=summary is not None, failed=error is not None, reported=True, stopped_early=stopped_early
    )
    return status, error, history, summary

"""Experiment folders: ``STORAGE/NAME/`` marked by ``sweep.json`` (docs/design.md,
"Sweeps — experiment layout"), found, read and related (an evaluation and the search
its cells came from). Imports neither torch, Ray nor pandas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dartsrenet.results.contract import (
    DEFAULT_RESULTS_ROOT,
    KINDS,
    SEARCH_EXPERIMENT_FIELD,
    STOPPED_EARLY_FIELD,
    SWEEP_MARKER,
    TRAIN_KIND,
    canonical_kind,
)
from dartsrenet.results.storage import is_uri, join_location, list_folders, location_name, modified_time, read_json

class ExperimentNotFoundError(FileNotFoundError):
    """A folder that is not an experiment (no ``sweep.json``), or no experiment at all."""


@dataclass(frozen=True)
class Experiment:
    """An experiment folder and its ``sweep.json`` marker.

    Attributes:
        path: the experiment's location (``STORAGE/NAME``): a local path or a URI.
        kind: one of :data:`KINDS`.
        created: creation time (POSIX seconds) from the marker's ``created`` field, or the
            marker file's modification time when the field is absent or unreadable.
        marker: the whole ``sweep.json`` content.
    """

    path: str
    kind: str
    created: float
    marker: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        """The experiment's name (its folder name)."""
        return location_name(self.path)

    @property
    def stopped_early(self) -> frozenset[str]:
        """Names of the trial folders that the scheduler stopped early."""
        names = self.marker.get(STOPPED_EARLY_FIELD) or []
        return frozenset(name for name in names if isinstance(name, str))

    @property
    def planned(self) -> list[dict[str, Any]]:
        """The trial configs the sweep planned (empty when the marker lists none)."""
        planned = self.marker.get("planned") or []
        return [dict(entry) for entry in planned if isinstance(entry, Mapping)]

    def file(self, name: str) -> str:
        """The location of file ``name`` of the experiment (e.g. :data:`SELECTION_FILE`)."""
        return join_location(self.path, name)


def experiment_location(location: str | Path) -> str:
    """A local experiment path made absolute; a URI as it is."""
    return str(location).rstrip("/") if is_uri(location) else str(Path(location).expanduser().resolve())


def read_experiment(location: str | Path) -> Experiment:
    """Read the experiment at ``location`` (a local folder or a URI).

    Raises:
        ExperimentNotFoundError: if it has no readable ``sweep.json``.
        ValueError: if the marker's ``kind`` is not one of :data:`KINDS`.
    """
    location = str(location).rstrip("/") if is_uri(location) else str(location)
    marker_location = join_location(location, SWEEP_MARKER)
    marker = read_json(marker_location)
    if not isinstance(marker, dict):
        raise ExperimentNotFoundError(
            f"{location} is not an experiment folder: no readable {SWEEP_MARKER} "
            "(sweeps write it; see docs/design.md)"
        )
    kind = canonical_kind(marker.get("kind"))
    if kind not in KINDS:
        raise ValueError(f"{marker_location}: 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    return Experiment(path=location, kind=kind, created=_created_time(marker, marker_location), marker=marker)


def find_experiments(root: str | Path = DEFAULT_RESULTS_ROOT, kind: str | None = None) -> list[Experiment]:
    """All experiments under ``root`` (the root itself and two levels below), oldest first.

    Folders whose ``sweep.json`` is unreadable or has an unknown kind are skipped.

    Args:
        root: the results root (the sweeps' ``--storage``): a local folder or a URI.
        kind: keep only experiments of this kind; ``None`` keeps all.
    """
    root = str(root)
    folders = [root]
    for child in list_folders(root):
        folders += [child, *list_folders(child)]
    experiments = []
    for folder in folders:
        try:
            experiment = read_experiment(folder)
        except (ExperimentNotFoundError, ValueError):
            continue
        if kind is None or experiment.kind == canonical_kind(kind):
            experiments.append(experiment)
    return sorted(experiments, key=lambda experiment: (experiment.created, experiment.name))


def latest_experiment(root: str | Path = DEFAULT_RESULTS_ROOT, kind: str = "search") -> Experiment | None:
    """The most recently created experiment of ``kind`` under ``root``, or ``None``."""
    experiments = find_experiments(root, kind)
    return experiments[-1] if experiments else None



def evaluations_of(search: Experiment, root: str | Path) -> list[Experiment]:
    """The evaluation experiments under ``root`` made from ``search``'s selection (their
    ``sweep.json`` names it in :data:`SEARCH_EXPERIMENT_FIELD`), oldest first."""
    wanted = experiment_location(search.path)
    return [
        experiment for experiment in find_experiments(root, TRAIN_KIND)
        if isinstance(experiment.marker.get(SEARCH_EXPERIMENT_FIELD), str)
        and experiment_location(experiment.marker[SEARCH_EXPERIMENT_FIELD]) == wanted
    ]


def _created_time(marker: Mapping[str, Any], marker_location: str) -> float:
    created = marker.get("created")
    if isinstance(created, int | float) and not isinstance(created, bool) and math.isfinite(created):
        return float(created)
    if isinstance(created, str):
        try:
            return datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return modified_time(marker_location) or 0.0

"""Resume only experiments these sweeps wrote (docs/cluster.md, "Security").

Resuming an experiment (``Tuner.restore``) unpickles Ray Tune's own state files —
``tuner.pkl``, ``experiment_state-*.json`` with pickled trials, searcher and scheduler
state: whoever can write them can run code in the driver. Ray's files therefore must
come from trusted storage; what can be checked is that the folder is an experiment of
ours. Before Ray reads anything, :func:`existing_marker` requires our ``sweep.json``
beside Ray's state, as valid JSON with the fields the sweeps write, so that a folder
of unknown origin — Ray state without our marker, or a damaged marker — is refused
with one line instead of being unpickled or failing with a traceback.
"""

from __future__ import annotations

import json
from typing import Any

from ray import tune

from dartsrenet.results import KINDS, SWEEP_MARKER, canonical_kind, join_location, read_text

MARKER_FIELDS: dict[str, type | tuple[type, ...]] = {
    "kind": str,
    "created": (int, float),
    "command": str,
    "planned": list,
    "runs": list,
}
"""Fields every ``sweep.json`` written by the sweeps has, with their JSON types."""


class UntrustedExperimentError(RuntimeError):
    """An experiment folder that the sweeps did not write, or whose marker is damaged."""


def _refuse(experiment: str, problem: str) -> UntrustedExperimentError:
    return UntrustedExperimentError(
        f"{problem}: not resumed (Ray's state files there are pickles, safe to load only from "
        f"trusted storage). Pass --name for a new experiment, or delete {experiment} to start over."
    )


def marker_problem(marker: Any) -> str | None:
    """What makes a parsed ``sweep.json`` not one the sweeps wrote (``None``: nothing)."""
    if not isinstance(marker, dict):
        return f"holds a JSON {type(marker).__name__}, not an object"
    for field, types in MARKER_FIELDS.items():
        if field not in marker:
            return f"has no {field!r}"
        if not isinstance(marker[field], types) or isinstance(marker[field], bool):
            return f"has a {field!r} of the wrong type ({type(marker[field]).__name__})"
    if canonical_kind(marker["kind"]) not in KINDS:
        return f"has kind {marker['kind']!r}, not one of {', '.join(KINDS)}"
    if not all(isinstance(entry, dict) for entry in marker["planned"]):
        return "has a 'planned' entry that is not an object"
    return None


def existing_marker(experiment: str) -> dict[str, Any] | None:
    """The ``sweep.json`` of the experiment at ``experiment``, checked, before Ray reads
    the folder; ``None`` for a new experiment (neither our marker nor Ray's state).

    Raises:
        UntrustedExperimentError: Ray state without our marker, a marker that is not
            valid JSON or lacks what the sweeps write, or a folder that cannot be read
            (one line naming the file or folder).
    """
    location = join_location(experiment, SWEEP_MARKER)
    try:
        text = read_text(location)
    except OSError as error:
        raise UntrustedExperimentError(f"cannot read {location}: {error.strerror or error}") from None
    if text is None:
        if tune.Tuner.can_restore(experiment):
            raise _refuse(experiment, f"{experiment} holds Ray Tune state but no {SWEEP_MARKER}")
        return None
    try:
        marker = json.loads(text)
    except ValueError as error:
        raise _refuse(experiment, f"{location} is not valid JSON ({error})") from None
    problem = marker_problem(marker)
    if problem:
        raise _refuse(experiment, f"{location} {problem}")
    return marker

"""The failure drill: make a sweep's trial fail, or stall, once at a known epoch.

A supported way to check that a sweep survives failures (docs/cluster.md, "Failure
drill"): that Ray retries a failed trial from its last checkpoint (``--max-failures``),
and that a trial whose node dies continues on another node. The tests use it
(``tests/test_sweeps.py``, ``tests/test_multinode.py``); on a real cluster it is a
rehearsal before a long sweep. It never changes what a trial computes: a retried trial
resumes from its checkpoint as any interrupted one does.

* ``--drill-fail-once-at-epoch K``: the first attempt of every trial raises right after
  epoch K's report (a marker file :data:`FAULT_MARKER` in the trial's working folder
  makes the retry go on).
* ``--drill-hold-once-after-epoch K PATH``: the first trial to finish epoch K's report
  creates PATH and then waits for good, so a test (or an operator) can kill its node at a
  known point instead of guessing from the clock; a trial that finds PATH already there
  goes on.

The flags put fields into the trial configs (:func:`drill_fields`); the trainable calls
:func:`after_report` after every report (:mod:`sweeps.trainable`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FAULT_MARKER = ".fault_injected"
"""Left in a trial's working folder by the injected failure (the retry then goes on)."""

FAIL_FIELD, HOLD_FIELD, HOLD_MARKER_FIELD = "fail_once_at_epoch", "hold_once_after_epoch", "hold_marker"
"""The trial-config fields of the drill."""


def add_drill_arguments(parser: argparse.ArgumentParser) -> None:
    """The drill's flags (documented in docs/cluster.md, "Failure drill")."""
    drill = parser.add_argument_group("failure drill (docs/cluster.md: check that failed trials are retried)")
    drill.add_argument(
        "--drill-fail-once-at-epoch", dest="fail_once_at_epoch", type=int, metavar="K",
        help="make every trial's first attempt fail right after epoch K's report",
    )
    drill.add_argument(
        "--drill-hold-once-after-epoch", dest="hold_once_after_epoch", nargs=2,
        metavar=("K", "PATH"), help="the first trial to report epoch K creates PATH and waits there until killed",
    )


def drill_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The trial-config fields for the drill's flags in ``args`` (none without them)."""
    fields: dict[str, Any] = {}
    if getattr(args, "fail_once_at_epoch", None) is not None:
        fields[FAIL_FIELD] = args.fail_once_at_epoch
    hold = getattr(args, "hold_once_after_epoch", None)
    if hold is not None:
        fields[HOLD_FIELD], fields[HOLD_MARKER_FIELD] = int(hold[0]), hold[1]
    return fields


def after_report(trial_config: Mapping[str, Any], epoch: int, trial_dir: Path) -> None:
    """Run the drill a trial's config asks for, after epoch ``epoch``'s report."""
    inject_fault(trial_config.get(FAIL_FIELD), epoch, trial_dir)
    hold_once(trial_config.get(HOLD_FIELD), epoch, trial_config.get(HOLD_MARKER_FIELD))


def inject_fault(fail_at: int | None, epoch: int, marker_dir: Path) -> None:
    """Raise once, after epoch ``fail_at``'s report (marker file in ``marker_dir``)."""
    if fail_at is None or epoch != fail_at:
        return
    marker = marker_dir / FAULT_MARKER
    if marker.exists():
        return
    marker.write_text(f"failed once after epoch {epoch}\n")
    raise RuntimeError(f"injected fault after epoch {epoch} (failure drill: --drill-fail-once-at-epoch)")


def hold_once(hold_at: int | None, epoch: int, marker: str | None) -> None:
    """After epoch ``hold_at``'s report, create ``marker`` and wait forever (until the
    process is killed); a trial that finds ``marker`` already there goes on."""
    if hold_at is None or epoch != hold_at or marker is None:
        return
    try:
        Path(marker).open("x").close()
    except FileExistsError:
        return
    while True:
        time.sleep(1.0)

"""One sweep driver per experiment (docs/design.md, "Sweeps — experiment layout").

Two drivers on one experiment (the same command run twice on one storage) would both
restore Ray's state and run the same trials in the same folders. While a driver runs
an experiment it holds ``STORAGE/NAME/.driver.lock`` — an OS file lock (``flock``
through :mod:`filelock`) — and records itself beside it in ``.driver.json``: host,
pid, start time, command, and a heartbeat refreshed every :data:`HEARTBEAT_S` seconds.

A second driver is refused with one line naming the first's host and pid. A lock
left behind is taken over with a note:

* **same host**: the OS releases a ``flock`` when its process ends, however it ends
  (``kill -9`` included), so a free lock with a leftover record means that driver is
  gone;
* **another host** (shared NFS storage): the record counts as live while its heartbeat
  is younger than :data:`STALE_AFTER_S`, even where the file system does not share the
  OS lock between hosts; a record older than that is taken over (a driver on a crashed
  machine stops refreshing it).

Object-store URIs (``s3://…``) have no locks: the driver says so and runs unguarded.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import filelock

from dartsrenet.results import is_uri

LOCK_FILE = ".driver.lock"
OWNER_FILE = ".driver.json"
HEARTBEAT_S = 60.0
"""How often the driver holding an experiment refreshes its record."""
STALE_AFTER_S = 600.0
"""A record of another host not refreshed for this long is a stale lock."""


class ExperimentLockError(RuntimeError):
    """The experiment is in use by another driver, or its folder cannot be locked."""


def describe(owner: dict[str, Any]) -> str:
    """``host H, pid P, since …`` of an owner record."""
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(owner.get("started", 0)))
    return f"host {owner.get('host')}, pid {owner.get('pid')}, since {since}"


def read_owner(folder: Path) -> dict[str, Any] | None:
    """The owner record in ``folder`` (``None`` if there is none or it is unreadable)."""
    try:
        owner = json.loads((folder / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None


def _write_owner(folder: Path, owner: dict[str, Any]) -> None:
    temporary = folder / f"{OWNER_FILE}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(owner, indent=2) + "\n")
    os.replace(temporary, folder / OWNER_FILE)


def _live_elsewhere(owner: dict[str, Any] | None, host: str, now: float) -> bool:
    """Whether a record of another host has a fresh heartbeat."""
    if owner is None or owner.get("host") == host:
        return False
    heartbeat = owner.get("heartbeat")
    return isinstance(heartbeat, int | float) and now - heartbeat < STALE_AFTER_S


def _in_use(experiment: str, owner: dict[str, Any] | None) -> ExperimentLockError:
    who = describe(owner) if owner else "its record is unreadable"
    return ExperimentLockError(
        f"{experiment} is in use by another sweep driver ({who}): wait for it to end or stop it, "
        "or pass --name for another experiment"
    )


@contextmanager
def experiment_lock(experiment: str, command: str = "", log: Callable[[str], None] = print) -> Iterator[None]:
    """Hold the experiment at ``experiment`` (a local or mounted folder) for this driver.

    Args:
        experiment: the experiment folder (created if missing) or a URI.
        command: the driver's command line, recorded for whoever is refused.
        log: where notes go (a stale lock taken over, a URI without lock).

    Raises:
        ExperimentLockError: another driver holds it, or the folder cannot be
            created or written (named in the message).
    """
    if is_uri(experiment):
        log(f"note: {experiment} is in an object store, which has no locks: "
            "make sure no other driver runs this experiment")
        yield
        return
    folder = Path(experiment)
    lock = filelock.FileLock(str(folder / LOCK_FILE), timeout=0)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock.acquire()
    except filelock.Timeout:
        raise _in_use(experiment, read_owner(folder)) from None
    except OSError as error:
        raise ExperimentLockError(f"cannot lock {folder}: {error.strerror or error}") from None
    host, now = socket.gethostname(), time.time()
    stop = threading.Event()
    try:
        previous = read_owner(folder)
        if _live_elsewhere(previous, host, now):
            raise _in_use(experiment, previous)
        if previous is not None:
            age = now - float(previous.get("heartbeat") or previous.get("started") or now)
            log(f"note: taking over {experiment} from a sweep driver that is gone ({describe(previous)}; "
                f"{'its process has ended' if previous.get('host') == host else f'silent for {age:.0f} s'})")
        owner = {"host": host, "pid": os.getpid(), "started": now, "heartbeat": now, "command": command}
        try:
            _write_owner(folder, owner)
        except OSError as error:
            raise ExperimentLockError(f"cannot write to {folder}: {error.strerror or error}") from None

        def beat() -> None:
            while not stop.wait(HEARTBEAT_S):
                try:
                    _write_owner(folder, {**owner, "heartbeat": time.time()})
                except OSError:  # storage gone for a moment: the next beat tries again
                    pass

        threading.Thread(target=beat, name="experiment-lock-heartbeat", daemon=True).start()
        yield
    finally:
        stop.set()
        current = read_owner(folder) or {}
        if (current.get("host"), current.get("pid")) == (host, os.getpid()):
            (folder / OWNER_FILE).unlink(missing_ok=True)
        lock.release()

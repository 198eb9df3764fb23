"""A real multi-node Ray cluster on one machine, and ways to watch and break it.

:class:`LocalCluster` starts a head node without CPUs (it hosts the Tune driver and
nothing else) and worker nodes with one CPU each, using ``ray.cluster_utils.Cluster``:
every node has its own raylet, object store and worker processes. Each node gets its
own Ray temp folder, so a trial's working directory — where the library writes its run
folder before Ray syncs it to the storage — is private to the node that runs it, as on
separate machines. The storage folder of an experiment is one local folder that every
node sees: the shared file system (NFS, …) of a real cluster.

Events are read from files, never guessed from the clock:

* the library's run folder on the node that runs a trial
  (``<node temp>/session_*/artifacts/*/<experiment>/working_dirs/<trial>/run``);
* the driver's copy of a trial's ``result.json`` on the head node (written as soon as
  the driver has taken a report in; the storage copy is only synced every few seconds);
* the trial folders in the storage (``result.json``, ``run/metrics.jsonl``).

The ``session_*/artifacts`` layout is Ray Tune's (2.60); :meth:`LocalCluster.working_dirs`
and :meth:`LocalCluster.driver_reports` fail loudly rather than return nothing when it
changes, through :func:`wait_for`'s timeout message.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import ray
import ray._common.utils
import ray._private.ray_constants as ray_constants
from ray.cluster_utils import Cluster

from dartsrenet.results import RUN_FOLDER

ROOT = Path(__file__).resolve().parents[1]
SEARCH_SCRIPT = ROOT / "sweeps" / "search_all_variants.py"
LOOPBACK = "127.0.0.1"
"""Every node of the test cluster listens on the loopback address only: no traffic leaves this machine."""
NODE_HEALTH_CHECKS = {
    "health_check_initial_delay_ms": 1000,
    "health_check_period_ms": 1000,
    "health_check_timeout_ms": 5000,
    "health_check_failure_threshold": 3,
}
"""Ray's node health checks (its ``_system_config``, read by the head node's GCS): a killed
node's raylet refuses the checks at once, so it is declared dead after 3 failed checks a
second apart instead of Ray's default of 5 checks 3 s apart — the tests that kill nodes
wait that much less. A live node, even one starved of CPU, still has 5 s to answer each
of 3 checks in a row."""

T = TypeVar("T")


# --- files ----------------------------------------------------------------------------


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The complete JSON lines of a file (``[]`` if missing; a line being written is skipped)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            pass
    return lines


def epochs(lines: Sequence[dict[str, Any]]) -> list[int]:
    return [line["epoch"] for line in lines]


def trial_folders(experiment: Path) -> list[Path]:
    """The trial folders of an experiment in the storage (those holding ``params.json``)."""
    if not experiment.is_dir():
        return []
    return sorted(path for path in experiment.iterdir() if (path / "params.json").is_file())


def run_metrics(folder: Path) -> list[dict[str, Any]]:
    """The library's per-epoch metrics of a trial folder (or a node-local working directory)."""
    return json_lines(folder / RUN_FOLDER / "metrics.jsonl")


# --- waiting ----------------------------------------------------------------------------


def wait_for(
    condition: Callable[[], T | None],
    what: str,
    *,
    timeout: float = 240.0,
    process: subprocess.Popen | None = None,
    log: Path | None = None,
) -> T:
    """Poll ``condition`` until it returns something truthy, and return that.

    Raises:
        AssertionError: after ``timeout`` seconds, or when ``process`` ended first; the
            message says what was awaited and ends with the tail of ``log``.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        ended = process is not None and process.poll() is not None
        if ended or time.monotonic() > deadline:
            reason = f"the sweep exited with status {process.returncode}" if ended else f"{timeout:.0f} s passed"
            tail = log.read_text()[-4000:] if log is not None and log.is_file() else ""
            raise AssertionError(f"waited for {what}, but {reason}:\n{tail}")
        time.sleep(0.05)


class FinishedTrialWatcher:
    """Knows when a driver may be killed with finished trials safely on record.

    Ray copies the trials' ``result.json`` files and its experiment state (what a resumed
    sweep reads) to the storage together, one sync at a time, every few seconds and after
    a trial's every second checkpoint. Once a trial that still runs shows a newer report
    in the storage *twice* after a trial was first seen finished there, the sync that
    showed the finished trial is complete — and so is the one after it, which recorded a
    checkpoint of the running trial. Call it with :func:`wait_for`; it returns
    ``(finished trial names, {running trial: its report counts seen, one per sync})``.
    """

    def __init__(self, experiment: Path):
        self.experiment = experiment
        self.finished: set[str] | None = None
        self.counts: dict[str, int] = {}
        self.growth: dict[str, list[int]] = {}

    def __call__(self) -> tuple[set[str], dict[str, list[int]]] | None:
        reports = {folder.name: json_lines(folder / "result.json") for folder in trial_folders(self.experiment)}
        if self.finished is None:
            finished = {name for name, lines in reports.items() if lines and lines[-1]["finished"]}
            if finished:
                self.finished = finished
                self.counts = {name: len(lines) for name, lines in reports.items()}
            return None
        running = [name for name, lines in reports.items() if lines and not lines[-1]["finished"]]
        for name in running:
            if len(reports[name]) > self.counts.get(name, 0):
                self.counts[name] = len(reports[name])
                self.growth.setdefault(name, []).append(len(reports[name]))
        ready = {name: self.growth[name] for name in running if len(self.growth.get(name, [])) >= 2}
        return (self.finished, ready) if ready else None


# --- the sweep scripts as processes ------------------------------------------------------


def script_environment() -> dict[str, str]:
    """The environment of a sweep script: unbuffered, never a RAY_ADDRESS from outside."""
    environment = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


def search_command(address: str, storage: Path, name: str, arguments: Sequence[str]) -> list[str]:
    """``python sweeps/search_all_variants.py`` connected to the cluster at ``address``."""
    return [
        sys.executable, str(SEARCH_SCRIPT), "--address", address, "--storage", str(storage), "--name", name,
        *arguments,
    ]


def start(command: Sequence[str], log: Path) -> subprocess.Popen:
    """Start ``command`` in the background, its output going to ``log``."""
    with log.open("w") as handle:
        return subprocess.Popen(
            list(command), cwd=log.parent, env=script_environment(), stdout=handle, stderr=subprocess.STDOUT
        )


def finish(process: subprocess.Popen, log: Path, timeout: float = 300.0) -> str:
    """Wait for ``process`` to exit (killing it after ``timeout`` s); returns its output."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(process)
        raise AssertionError(f"the sweep did not end within {timeout:.0f} s:\n{log.read_text()[-4000:]}") from None
    return log.read_text()


def stop(process: subprocess.Popen) -> None:
    """SIGKILL ``process`` if it still runs, and reap it."""
    if process.poll() is None:
        process.kill()
    process.wait()


# --- the cluster -------------------------------------------------------------------------


class LocalCluster:
    """A head node (0 CPUs) and worker nodes (1 CPU each) on this machine.

    Args:
        workers: how many worker nodes to start.
    """

    def __init__(self, workers: int = 2):
        self._folders: list[Path] = []
        self.temp_dirs: dict[Any, Path] = {}
        self._cluster: Cluster | None = None
        # Ray writes the head's address for `ray.init()` on this machine into its default
        # temp folder (`$RAY_TMPDIR/ray`, else `$TMPDIR/ray` or `/tmp/ray`), which only
        # exists where Ray ran before, and which a user's own Ray shares. This cluster gets
        # a default temp folder of its own for as long as it lives (inherited by the sweep
        # scripts started against it); shutdown() restores the previous one.
        self._previous_ray_tmpdir = os.environ.get("RAY_TMPDIR")
        default_root = self._temp_dir()
        (default_root / "ray").mkdir()
        os.environ["RAY_TMPDIR"] = str(default_root)
        # The nodes' worker processes inherit this environment: let them import this
        # checkout's packages also where the project is not pip-installed.
        paths = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path]
        if str(ROOT) not in paths:
            os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), *paths])
        try:
            head_dir = self._temp_dir()
            self._cluster = Cluster(
                initialize_head=True,
                head_node_args={
                    "num_cpus": 0, "temp_dir": str(head_dir), "include_dashboard": False, "node_ip_address": LOOPBACK,
                    "_system_config": NODE_HEALTH_CHECKS,
                },
            )
            self.head_dir = head_dir
            for _ in range(workers):
                self.add_worker()
        except BaseException:
            self.shutdown()
            raise

    @property
    def address(self) -> str:
        assert self._cluster is not None
        return self._cluster.address

    @property
    def workers(self) -> list[Any]:
        """The worker nodes that are alive, oldest first."""
        return [node for node in self.temp_dirs if node in self._cluster.worker_nodes]

    def _temp_dir(self) -> Path:
        # Short: Ray's socket paths under it must stay within the OS limit (107 bytes).
        folder = Path(tempfile.mkdtemp(prefix="drn-", dir="/tmp"))
        self._folders.append(folder)
        return folder

    def add_worker(self) -> Any:
        """Start a worker node with 1 CPU and its own temp folder; returns it once it is up."""
        folder = self._temp_dir()
        node = self._cluster.add_node(num_cpus=1, temp_dir=str(folder), node_ip_address=LOOPBACK)
        self.temp_dirs[node] = folder
        self._cluster.wait_for_nodes()
        return node

    def ensure_workers(self, count: int) -> None:
        while len(self.workers) < count:
            self.add_worker()

    def working_dirs(self, node: Any, experiment: str) -> list[Path]:
        """The trial working directories of ``experiment`` on ``node`` (each holds ``run/``)."""
        pattern = f"session_[0-9]*/artifacts/*/{experiment}/working_dirs/*"
        return sorted(self.temp_dirs[node].glob(pattern))

    def node_running(self, experiment: str) -> tuple[Any, Path] | None:
        """``(node, working directory)`` of the one trial of ``experiment`` that has a
        working directory on a worker node, ``None`` while there is none."""
        found = [(node, folder) for node in self.workers for folder in self.working_dirs(node, experiment)]
        assert len(found) <= 1, f"expected one trial working directory of {experiment}, found {found}"
        return found[0] if found else None

    def driver_reports(self, experiment: str, trial: str) -> list[dict[str, Any]]:
        """The reports of ``trial`` that the driver (on the head node) has taken in."""
        pattern = f"session_[0-9]*/artifacts/*/{experiment}/driver_artifacts/{trial}/result.json"
        return [line for path in sorted(self.head_dir.glob(pattern)) for line in json_lines(path)]

    def kill_worker(self, node: Any) -> None:
        """Kill a worker node as a machine failure would: SIGKILL its raylet and every
        process under it (the trial's worker process included) at once, then the node's
        other processes."""
        raylet = node.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
        for pid in [raylet, *descendants(raylet)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._cluster.remove_node(node, allow_graceful=False)

    def kill_head(self) -> None:
        """Kill the head node as a machine failure would: SIGKILL its GCS, raylet and every
        other process of it, and everything under them. The worker nodes are left
        without a cluster (:meth:`shutdown` stops them)."""
        head = self._cluster.head_node
        pids = [entry.process.pid for entries in head.all_processes.values() for entry in entries]
        for pid in pids + [child for pid in pids for child in descendants(pid)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def shutdown(self) -> None:
        """Stop every node and delete the temp folders.

        Not ``Cluster.shutdown()``: that also resets this process's connection state,
        which would break a Ray that this test process itself started (``ray_session``).
        """
        if self._cluster is not None:
            address = self._cluster.address
            for node in list(self._cluster.worker_nodes):
                self._cluster.remove_node(node, allow_graceful=False)
            if self._cluster.head_node is not None:
                self._cluster.remove_node(self._cluster.head_node, allow_graceful=False)
            # The head wrote its address for `ray.init()` into this cluster's own default
            # temp folder (see __init__): take it back.
            address_file = Path(ray._common.utils.get_ray_address_file(None))
            if address_file.is_file() and address_file.read_text().strip() == address:
                address_file.unlink()
            self._cluster = None
        if self._previous_ray_tmpdir is None:
            os.environ.pop("RAY_TMPDIR", None)
        else:
            os.environ["RAY_TMPDIR"] = self._previous_ray_tmpdir
        for folder in self._folders:
            shutil.rmtree(folder, ignore_errors=True)
        self._folders.clear()


def descendants(pid: int) -> list[int]:
    """Process ids of every process below ``pid`` (Linux ``/proc``)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found

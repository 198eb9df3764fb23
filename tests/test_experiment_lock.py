"""One sweep driver per experiment (sweeps/experiment_lock.py), with real processes: a
holder process keeps the lock while the test (and a real sweep script) try to take it;
a holder killed with SIGKILL leaves a record that the next driver takes over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[sweeps]')")

from sweeps.errors import EXIT_USAGE
from sweeps.experiment_lock import OWNER_FILE, STALE_AFTER_S, ExperimentLockError, experiment_lock

ROOT = Path(__file__).resolve().parents[1]
HOLDER = """
import sys
from sweeps.experiment_lock import experiment_lock
with experiment_lock(sys.argv[1], "holder"):
    print("locked", flush=True)
    sys.stdin.read()
"""


def environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))])
    return env


@pytest.fixture
def holder(tmp_path):
    """A process that holds the lock of ``tmp_path/results/exp`` until its stdin closes."""
    experiment = tmp_path / "results" / "exp"
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(experiment)], cwd=ROOT, env=environment(),
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "locked"
        yield process, experiment
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_second_driver_is_refused_naming_the_first(holder):
    process, experiment = holder
    with pytest.raises(ExperimentLockError) as refused, experiment_lock(str(experiment)):
        pass
    message = str(refused.value)
    assert "\n" not in message and str(experiment) in message
    assert f"host {socket.gethostname()}, pid {process.pid}," in message


def test_lock_of_a_killed_driver_is_taken_over_with_a_note(holder):
    process, experiment = holder
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert json.loads((experiment / OWNER_FILE).read_text())["pid"] == process.pid  # left behind
    notes = []
    with experiment_lock(str(experiment), "second", log=notes.append):
        owner = json.loads((experiment / OWNER_FILE).read_text())
        assert (owner["pid"], owner["command"]) == (os.getpid(), "second")
    assert len(notes) == 1 and f"pid {process.pid}" in notes[0] and "its process has ended" in notes[0]
    assert not (experiment / OWNER_FILE).exists()


def test_another_hosts_record_counts_while_its_heartbeat_is_fresh(tmp_path):
    experiment = tmp_path / "exp"
    experiment.mkdir()
    record = {"host": "elsewhere", "pid": 4242, "started": time.time() - 5000, "command": "x"}
    (experiment / OWNER_FILE).write_text(json.dumps({**record, "heartbeat": time.time() - 30}))
    with pytest.raises(ExperimentLockError, match="host elsewhere, pid 4242"), experiment_lock(str(experiment)):
        pass
    (experiment / OWNER_FILE).write_text(json.dumps({**record, "heartbeat": time.time() - STALE_AFTER_S - 60}))
    notes = []
    with experiment_lock(str(experiment), log=notes.append):
        pass
    assert len(notes) == 1 and "host elsewhere, pid 4242" in notes[0] and "silent for" in notes[0]


def test_sweep_script_on_a_live_experiment_is_refused(holder):
    process, experiment = holder
    command = [sys.executable, str(ROOT / "sweeps" / "search_all_variants.py"), "--num-cpus", "1",
               "--gpus-per-trial", "0", "--storage", str(experiment.parent), "--name", experiment.name,
               "--preset", "demo", "--dataset", "digits", "--verbose", "0", "--set", "epochs=1"]
    result = subprocess.run(command, cwd=experiment.parent.parent, env=environment(), capture_output=True, text=True,
                            timeout=300, check=False)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == EXIT_USAGE, result.stdout[-2000:] + result.stderr[-2000:]
    assert len(errors) == 1 and f"pid {process.pid}" in errors[0] and socket.gethostname() in errors[0], errors
    assert sorted(path.name for path in experiment.iterdir()) == [".driver.json", ".driver.lock"]

"""Resume only experiments the sweeps wrote (sweeps/trusted_storage.py): Ray's state
without our ``sweep.json`` is never unpickled, a damaged ``sweep.json`` is one line, and
a read-only experiment folder on resume is one line naming the folder."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[sweeps]')")

from sweeps import experiment as sweep_experiment
from sweeps import trainable, trusted_storage
from sweeps.errors import EXIT_USAGE, SweepError
from sweeps.experiment import prepare_experiment

ROOT = Path(__file__).resolve().parents[1]
PLANNED = [{"variant": "vanilla", "seed": 0, "dataset": "digits", "preset": "demo", "overrides": {}}]


class Canary:
    """A pickle that, when loaded, writes a file: proof that something unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (Path.write_text, (Path(self.path), "unpickled"))


def run_experiment(experiment: Path) -> None:
    """The sweeps' entry to an experiment, up to where Ray would read its state."""
    sweep_experiment.run_experiment(
        trainable=trainable.search_trial, param_space={}, planned=PLANNED, kind="search",
        storage=str(experiment.parent), name=experiment.name, resources={"cpu": 1, "gpu": 0},
        max_failures=0, command="test", log=lambda line: None,
    )


def test_ray_state_without_our_marker_is_never_unpickled(tmp_path):
    experiment = tmp_path / "exp"
    experiment.mkdir()
    canary = tmp_path / "canary"
    (experiment / "tuner.pkl").write_bytes(pickle.dumps(Canary(canary)))
    with pytest.raises(SweepError) as refused:
        run_experiment(experiment)
    message = str(refused.value)
    assert "\n" not in message and "holds Ray Tune state but no sweep.json" in message and "--name" in message
    assert not canary.exists()
    assert not (experiment / "sweep.json").exists(), "nothing written into a folder we did not write"


@pytest.mark.parametrize(("text", "problem"), [
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "holds a JSON list"),
    (json.dumps({"kind": "search", "created": 1.0, "command": "x", "planned": []}), "has no 'runs'"),
    (json.dumps({"kind": "search", "created": "yesterday", "command": "x", "planned": [], "runs": []}),
     "has a 'created' of the wrong type"),
    (json.dumps({"kind": "rm -rf", "created": 1.0, "command": "x", "planned": [], "runs": []}), "has kind 'rm -rf'"),
    (json.dumps({"kind": "search", "created": 1.0, "command": "x", "planned": [3], "runs": []}),
     "has a 'planned' entry that is not an object"),
])
def test_a_damaged_marker_is_one_line(tmp_path, text, problem):
    experiment = tmp_path / "exp"
    experiment.mkdir()
    (experiment / "sweep.json").write_text(text)
    with pytest.raises(SweepError) as refused:
        run_experiment(experiment)
    message = str(refused.value)
    assert "\n" not in message and f"{experiment / 'sweep.json'} {problem}" in message


def test_a_marker_the_sweeps_wrote_is_accepted(tmp_path):
    experiment = str(tmp_path / "exp")
    assert prepare_experiment(experiment, "search", PLANNED, "cmd", {}) is False
    marker = trusted_storage.existing_marker(experiment)
    assert trusted_storage.marker_problem(marker) is None and marker["planned"] == PLANNED


def read_only_command(folder: Path, command: list[str]) -> list[str]:
    """``command`` run with ``folder`` read-only: a read-only bind mount in a private mount
    namespace for root (who may write anything a mode forbids), the folder's mode otherwise."""
    if os.geteuid() != 0:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
        return command
    script = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" && exec "$@"'
    return ["unshare", "-m", "sh", "-c", script, str(folder), *command]


def test_resume_in_a_read_only_folder_is_one_line_naming_it(tmp_path):
    experiment = tmp_path / "results" / "exp"
    assert prepare_experiment(str(experiment), "search", PLANNED, "cmd", {}) is False
    before = (experiment / "sweep.json").read_text()
    command = [sys.executable, str(ROOT / "sweeps" / "search_all_variants.py"), "--num-cpus", "1",
               "--gpus-per-trial", "0", "--storage", str(experiment.parent), "--name", experiment.name,
               "--preset", "demo", "--dataset", "digits", "--verbose", "0", "--set", "epochs=1"]
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))])
    try:
        result = subprocess.run(read_only_command(experiment, command), cwd=tmp_path, env=env,
                                capture_output=True, text=True, timeout=300, check=False)
    finally:
        for path in [experiment, *experiment.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == EXIT_USAGE, result.stdout[-2000:] + result.stderr[-2000:]
    assert len(errors) == 1 and str(experiment) in errors[0] and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert (experiment / "sweep.json").read_text() == before

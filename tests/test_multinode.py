"""Failures on a real multi-node Ray cluster (docs/cluster.md, "What survives which failure").

One cluster for the module (tests/multinode_helpers.py): a head node with no CPUs, which
hosts the Tune driver, and two worker nodes with one CPU each, which run the trials; the
storage is a local folder that every node sees. The sweeps run as the real command line
(``sweeps/search_all_variants.py --address …``) on the embedded ``digits`` dataset with
the ``demo`` preset made tiny. Every wait is for an event in a file, with a generous
timeout that fails with the sweep's output.

* A worker node dies (its raylet and every process under it SIGKILLed) after the trial
  on it reported epoch 1, held there by the sweeps' failure drill: Ray retries the trial on the other node from the epoch-1
  checkpoint, and the experiment ends with exactly the per-epoch metrics and selection
  of an unfaulted run.
* The driver is SIGKILLed mid-sweep: the same command again completes the sweep, the
  trials that had finished are not started again and their files stay as they were,
  and the interrupted trial continues from a checkpoint.
* The head node dies (and the driver on it): the same command on a new cluster with the
  same storage does the same (slow: a cluster of its own to lose, then the module's).
"""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterable
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[sweeps]')")
pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").is_file(), reason="finds a node's processes through Linux's /proc"
)

from dartsrenet.results import RUN_FOLDER
from tests.multinode_helpers import (
    FinishedTrialWatcher,
    LocalCluster,
    epochs,
    finish,
    json_lines,
    run_metrics,
    script_environment,
    search_command,
    start,
    stop,
    trial_folders,
    wait_for,
)

DEMO = ["--preset", "demo", "--dataset", "digits", "--gpus-per-trial", "0", "--verbose", "0",
        "--set", "channels=4", "--set", "batch_size=16"]
TIMING_FIELDS = ("epoch_time_s",)
"""Metrics that measure time, not results: left out when runs are compared."""
SELECTION_FIELDS = ("seed", "best_val_accuracy", "best_epoch", "genotype", "genotype_string")
REPEATED_FIELDS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "genotype", "alpha")
"""Per-epoch results that a report and the run folder's metrics of that epoch share."""


def results_only(metrics: list[dict]) -> list[dict]:
    return [{key: value for key, value in line.items() if key not in TIMING_FIELDS} for line in metrics]


def selection(experiment: Path) -> dict[str, dict]:
    document = json.loads((experiment / "selected_genotypes.json").read_text())
    return {
        variant: {key: entry["selected"][key] for key in SELECTION_FIELDS}
        for variant, entry in document["variants"].items()
    }


@pytest.fixture(scope="module")
def cluster():
    local = LocalCluster(workers=2)
    try:
        yield local
    finally:
        local.shutdown()


@pytest.fixture
def two_workers(cluster):
    """The module's cluster with two live worker nodes (a test may have killed one)."""
    cluster.ensure_workers(2)
    return cluster


def test_worker_node_death_retries_the_trial_on_the_other_node(two_workers, tmp_path):
    """Same command twice at once, one run unfaulted; in the other the node running the trial
    dies while the trial, its epoch-1 checkpoint registered by the driver, is held before
    epoch 2 (the failure drill ``--drill-hold-once-after-epoch``; the retry on the other node is not
    held). The two sweeps' trials run side by side, one per node; the retry waits for the
    unfaulted trial to free the surviving node."""
    cluster = two_workers
    arguments = ["--variants", "vanilla", "--num-seeds", "1", "--max-failures", "1", *DEMO,
                 "--set", "epochs=3", "--set", "limit=96"]
    held = tmp_path / "held"
    clean_log = tmp_path / "clean.log"
    clean = start(search_command(cluster.address, tmp_path, "clean", arguments), clean_log)
    log = tmp_path / "faulty.log"
    process = start(
        search_command(cluster.address, tmp_path, "faulty", [*arguments, "--drill-hold-once-after-epoch", "1", str(held)]),
        log,
    )
    try:
        victim, first_workdir = wait_for(
            lambda: cluster.node_running("faulty"), "the trial's working directory on a worker node",
            process=process, log=log,
        )
        trial = first_workdir.name
        # A trial waits after each report until the driver has registered its checkpoint
        # and lets it go on; the hook then holds it: the marker says it is there.
        wait_for(held.is_file, "the trial to be held after its epoch-1 report", process=process, log=log)
        taken_in = wait_for(lambda: cluster.driver_reports("faulty", trial),
                            "the driver to take in the trial's epoch-1 report", process=process, log=log)
        cluster.kill_worker(victim)
        output = finish(process, log)
        clean_output = finish(clean, clean_log)
    finally:
        stop(process)
        stop(clean)
    assert clean.returncode == 0, clean_output[-4000:]
    assert epochs(taken_in) == [1], f"reports taken in before the kill: {epochs(taken_in)}"
    assert epochs(run_metrics(first_workdir)) == [1], "epoch 2 must not have finished on the killed node"
    assert process.returncode == 0, output[-4000:]

    # Ray ran the trial again on the other node, in a fresh working directory whose run
    # folder the library rebuilt from the checkpoint: epoch 1's metrics and then 2 and 3.
    (survivor,) = cluster.workers
    assert survivor is not victim
    (second_workdir,) = cluster.working_dirs(survivor, "faulty")
    assert second_workdir.name == trial
    assert epochs(run_metrics(second_workdir)) == [1, 2, 3]

    faulty, clean_trial = tmp_path / "faulty" / trial, *trial_folders(tmp_path / "clean")
    assert (faulty / "error.txt").is_file(), "Ray did not record the failure"
    reports = json_lines(faulty / "result.json")
    assert [(line["epoch"], line["iterations_since_restore"]) for line in reports] == [(1, 1), (2, 1), (3, 2)], (
        "expected epoch 1, then epochs 2 and 3 resumed from its checkpoint"
    )
    assert results_only(run_metrics(faulty)) == results_only(run_metrics(clean_trial))
    assert selection(tmp_path / "faulty") == selection(tmp_path / "clean")


@pytest.mark.slow
def test_killed_driver_rerun_keeps_finished_trials(two_workers, tmp_path):
    """SIGKILL of the driver once a finished trial is on record and another one runs;
    then the same command again, on the same cluster."""
    cluster = two_workers
    command = search_command(cluster.address, tmp_path, "sweep", THREE_TRIALS)
    experiment = tmp_path / "sweep"
    log = tmp_path / "first.log"
    process = start(command, log)
    try:
        finished, interrupted = wait_for(FinishedTrialWatcher(experiment), WATCHED, process=process, log=log)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        stop(process)
    assert process.returncode == -signal.SIGKILL
    # Ray ends the trials of a dead driver: their processes go away.
    pids = {json_lines(experiment / name / "result.json")[-1]["pid"] for name in interrupted}
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), "the running trials' processes to end",
             timeout=60)
    kept = kept_files(experiment, finished)
    workdirs_before = {name: trial_workdirs(cluster, "sweep", name) for name in finished}

    rerun = subprocess.run(command, cwd=tmp_path, env=script_environment(), capture_output=True, text=True,
                           timeout=300, check=False)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "resuming experiment" in rerun.stdout
    for name in finished:  # not started again: no new working directory on any node
        assert trial_workdirs(cluster, "sweep", name) == workdirs_before[name], name
    assert_completed_from_where_it_stopped(experiment, kept, interrupted)


@pytest.mark.slow
def test_head_node_death_then_a_new_cluster_resumes_the_sweep(two_workers, tmp_path):
    """The head node dies, and the driver with it (it runs there): the cluster is lost.
    The same command on a new cluster with the same storage completes the sweep: the
    module's cluster, which never saw this experiment (named apart from the other tests')."""
    experiment = tmp_path / "lost"
    log = tmp_path / "first.log"
    first = LocalCluster(workers=2)
    process = None
    try:
        process = start(search_command(first.address, tmp_path, "lost", THREE_TRIALS), log)
        finished, interrupted = wait_for(FinishedTrialWatcher(experiment), WATCHED, process=process, log=log)
        process.send_signal(signal.SIGKILL)
        first.kill_head()
    finally:
        if process is not None:
            stop(process)
        first.shutdown()
    kept = kept_files(experiment, finished)

    second = two_workers
    assert not any(second.working_dirs(node, "lost") for node in second.workers)
    rerun = subprocess.run(
        search_command(second.address, tmp_path, "lost", THREE_TRIALS), cwd=tmp_path,
        env=script_environment(), capture_output=True, text=True, timeout=300, check=False,
    )
    started_again = {name for name in finished if trial_workdirs(second, "lost", name)}
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "resuming experiment" in rerun.stdout
    assert not started_again, f"finished trials started again: {sorted(started_again)}"
    assert_completed_from_where_it_stopped(experiment, kept, interrupted)


# --- shared by the driver and head node tests ----------------------------------------------

THREE_TRIALS = ["--variants", "vanilla", "sigmoid_weighting", "directional_weight_sharing", "--num-seeds", "1",
                *DEMO, "--set", "epochs=6", "--set", "limit=96"]
"""Three trials on two one-CPU worker nodes: two run at once, then the third."""
WATCHED = "a finished trial, then two newer reports of a running one"


def kept_files(experiment: Path, names: Iterable[str]) -> dict[str, tuple[bytes, bytes]]:
    """``result.json`` and the run folder's ``metrics.jsonl`` of each named trial, as bytes."""
    return {
        name: ((experiment / name / "result.json").read_bytes(),
               (experiment / name / RUN_FOLDER / "metrics.jsonl").read_bytes())
        for name in names
    }


def trial_workdirs(cluster: LocalCluster, experiment: str, trial: str) -> set[Path]:
    """The working directories of ``trial`` on the cluster's live worker nodes."""
    return {folder for node in cluster.workers for folder in cluster.working_dirs(node, experiment)
            if folder.name == trial}


def assert_completed_from_where_it_stopped(
    experiment: Path, kept: dict[str, tuple[bytes, bytes]], interrupted: dict[str, list[int]]
) -> None:
    """After the rerun: every trial finished all 6 epochs with none lost and none twice in
    its run folder; an epoch that Ray ran again (its saved state had not recorded that
    epoch's checkpoint yet) reported the same numbers; the finished trials' files are
    byte for byte as they were; each interrupted trial resumed from a checkpoint that the
    saved state held — that of its reports seen one sync before the kill, or later."""
    trials = trial_folders(experiment)
    assert len(trials) == 3
    for folder in trials:
        reports, metrics = json_lines(folder / "result.json"), run_metrics(folder)
        assert reports[-1]["finished"] and reports[-1]["epoch"] == 6, folder.name
        assert epochs(metrics) == [1, 2, 3, 4, 5, 6], folder.name
        assert sorted(set(epochs(reports))) == epochs(metrics) and epochs(reports) == sorted(epochs(reports))
        by_epoch = {line["epoch"]: line for line in metrics}
        for report in reports:
            assert {key: report[key] for key in REPEATED_FIELDS} == {
                key: by_epoch[report["epoch"]][key] for key in REPEATED_FIELDS
            }, (folder.name, report["epoch"])
    for name, files in kept.items():
        assert kept_files(experiment, [name])[name] == files, f"{name} was run again"
    for name, counts in interrupted.items():
        reports = json_lines(experiment / name / "result.json")
        restored = [report["epoch"] for report in reports[1:] if report["iterations_since_restore"] == 1]
        assert restored and restored[0] > counts[-2], (name, epochs(reports), counts)
    assert set(selection(experiment)) == {"vanilla", "sigmoid_weighting", "directional_weight_sharing"}
    runs = json.loads((experiment / "sweep.json").read_text())["runs"]
    assert [run["resumed"] for run in runs] == [False, True]

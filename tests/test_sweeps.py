"""Ray Tune sweeps (sweeps/): real trials on a local Ray, tiny configs on ``digits``.

In-process tests share the session Ray of ``conftest.ray_session`` (2 CPUs, 1 logical
GPU); the interrupt and no-GPU tests run the scripts as subprocesses with their own
Ray (``--num-cpus`` starts a new local one; RAY_ADDRESS is removed from their
environment). Each trial takes seconds: 4 channels, 2 epochs, 96 examples.
"""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[sweeps]')")
pytest.importorskip("optuna", reason="optuna is not installed (pip install -e '.[sweeps]')")

from analysis import make_table
from analysis.results import FINISHED, load_history, load_trials, read_experiment
from analysis.tables import results_table, search_summary
from dartsrenet import results
from dartsrenet.config import resolve_config
from dartsrenet.genotypes import Genotype
from sweeps import (
    demo, evaluate_genotypes, failure_drill, ray_compat, resources, search_all_variants, trainable, tune_hparams,
)
from sweeps.errors import EXIT_USAGE, SweepError
from sweeps.experiment import prepare_experiment
from tests.fixtures_results import (
    SEARCH_EXPECTED_SELECTION,
    make_eval_experiment,
    make_search_experiment,
    search_config,
    write_search_seed,
    write_sweep,
)

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--set", "channels=4", "--set", "epochs=2", "--set", "limit=96", "--set", "batch_size=16"]
SEARCH = ["--preset", "demo", "--dataset", "digits", "--verbose", "0", *TINY]
COMPARED_METRICS = (
    "epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "best_val_accuracy", "best_epoch",
    "genotype", "best_genotype", "alpha", "finished",
)


def reports(trial_dir: Path) -> list[dict]:
    path = trial_dir / "result.json"
    if not path.is_file():
        return []
    lines = []
    for line in path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:  # a line being written
            pass
    return lines


def same(a, b) -> bool:
    """Equal metrics: numbers (and lists of them) to 1e-6 relative, anything else exactly."""
    if isinstance(a, str | bool) or a is None:
        return a == b
    return np.allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), rtol=1e-6, atol=1e-9)


def trial_dirs(experiment: Path) -> list[Path]:
    return sorted(path for path in experiment.iterdir() if (path / "params.json").is_file())


def subprocess_env() -> dict[str, str]:
    """The environment of a script run with its own Ray: never the session's Ray."""
    env = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    env["PYTHONUNBUFFERED"] = "1"
    return env


# --- one real search sweep, shared by several tests ---------------------------------


@pytest.fixture(scope="module")
def search_sweep(ray_session, tmp_path_factory) -> Path:
    """2 variants × 1 seed, each trial on half of the logical GPU (so both run at once)."""
    storage = tmp_path_factory.mktemp("sweeps")
    status = search_all_variants.main(
        ["--variants", "vanilla", "sigmoid_weighting", "--num-seeds", "1", "--gpus-per-trial", "0.5",
         "--storage", str(storage), "--name", "search", *SEARCH]
    )
    assert status == 0
    return storage / "search"


def test_search_sweep_writes_marker_and_selection(search_sweep):
    marker = json.loads((search_sweep / "sweep.json").read_text())
    assert marker["kind"] == "search" and isinstance(marker["created"], float)
    assert "search_all_variants.py" in marker["command"]
    assert sorted((p["variant"], p["seed"], p["dataset"]) for p in marker["planned"]) == [
        ("sigmoid_weighting", 0, "digits"), ("vanilla", 0, "digits")
    ]

    selection = json.loads((search_sweep / "selected_genotypes.json").read_text())
    assert selection["dataset"] == "digits"
    assert set(selection["variants"]) == {"vanilla", "sigmoid_weighting"}
    for variant, entry in selection["variants"].items():
        (seed,) = entry["seeds"]
        assert seed["status"] == results.FINISHED and seed["epochs"] == 2
        selected = entry["selected"]
        assert selected["seed"] == 0
        genotype = Genotype.from_dict(selected["genotype"])
        assert genotype.to_string() == selected["genotype_string"] == seed["genotype_string"]
        # The run folder of the library is synced into the trial folder.
        run = search_sweep / selected["trial"] / results.RUN_FOLDER
        summary = json.loads((run / "summary.json").read_text())
        assert summary["variant"] == variant and summary["genotype_string"] == genotype.to_string()
        assert summary["best_val_accuracy"] == pytest.approx(selected["best_val_accuracy"])


def test_analysis_reads_the_real_layout(search_sweep, capsys):
    experiment = read_experiment(search_sweep)
    trials = load_trials(experiment)
    assert list(trials["status"]) == [FINISHED, FINISHED]
    summary = search_summary(trials).set_index("variant")
    selection = json.loads((search_sweep / "selected_genotypes.json").read_text())
    for variant, entry in selection["variants"].items():
        assert summary.loc[variant, "selected_seed"] == entry["selected"]["seed"]
        assert summary.loc[variant, "genotype"] == entry["selected"]["genotype_string"]
        assert summary.loc[variant, "selected_val_accuracy"] == pytest.approx(
            100 * entry["selected"]["best_val_accuracy"]
        )
    history = load_history(experiment)
    assert len(history) == 4 and set(history["epoch"]) == {1, 2}
    assert make_table.main(["--search", str(search_sweep)]) == 0
    assert "Sigmoid Weighting" in capsys.readouterr().out


def test_fractional_gpu_trials_share_the_logical_gpu(search_sweep):
    """Each trial asked for 0.5 GPU: Ray gave both the one (logical) GPU at the same time.
    Without CUDA they ran on the CPU (trial_device's fallback), with CUDA on the GPU."""
    import torch

    expected_device = "cuda" if torch.cuda.is_available() else "cpu"
    intervals = []
    for trial in trial_dirs(search_sweep):
        lines = reports(trial)
        assert all(line["gpu_ids"] for line in lines), "Ray assigned no GPU to the trial"
        assert {line["device"] for line in lines} == {expected_device}
        start = lines[0]["timestamp"] - lines[0]["time_this_iter_s"]
        intervals.append((start, lines[-1]["timestamp"]))
    (start_a, end_a), (start_b, end_b) = intervals
    assert start_a < end_b and start_b < end_a, "the two 0.5-GPU trials did not run concurrently"


def test_evaluation_sweep_of_the_selection(search_sweep, tmp_path):
    status = evaluate_genotypes.main(
        ["--genotypes", str(search_sweep), "--models", "vanilla", "gru", "--datasets", "digits",
         "--storage", str(tmp_path), "--name", "eval", "--gpus-per-trial", "0", "--preset", "demo",
         "--verbose", "0", *TINY]
    )
    assert status == 0
    experiment = read_experiment(tmp_path / "eval")
    trials = load_trials(experiment)
    assert list(trials["status"]) == [FINISHED, FINISHED]
    configs = {row["config/model"]: row for _, row in trials.iterrows()}
    selection = json.loads((search_sweep / "selected_genotypes.json").read_text())
    assert configs["vanilla"]["config/genotype"] == selection["variants"]["vanilla"]["selected"]["genotype_string"]
    assert configs["vanilla"]["config/variant"] == "vanilla"
    assert pd.isna(configs["gru"]["config/genotype"]) and pd.isna(configs["gru"]["config/variant"])
    table = results_table(trials).set_index("model")
    assert set(table.index) == {"vanilla", "gru"}
    assert (table["n_finished"] == 1).all() and table["accuracy_mean"].notna().all()


def test_failed_trial_is_retried_from_its_checkpoint(search_sweep, tmp_path, monkeypatch):
    """A trial that raises once after epoch 1's report is restarted by Ray from that
    checkpoint and ends with exactly the metrics of the unfaulted sweep (on the CPU:
    CUDA kernels are not bitwise reproducible from run to run, faults or not).

    Ray's storage copy of result.json lags behind the driver's (it is synced every few
    seconds); when it was synced before epoch 1's report, Ray's logger used to restore that
    stale copy on the retry and lose the report. The lag is made certain here: storage's
    copy is emptied just before the restarted trial restores it."""
    import torch

    restore = ray_compat._DriverCopyFirst._restore_from_remote
    stale: list[str] = []

    def restore_from_lagging_storage(self, file_name, trial):
        remote = Path(trial.storage.trial_fs_path, file_name)
        if trial.checkpoint is not None and file_name == "result.json":
            remote.write_text("")  # storage synced before epoch 1's report
            stale.append(file_name)
        restore(self, file_name, trial)

    monkeypatch.setattr(ray_compat._DriverCopyFirst, "_restore_from_remote", restore_from_lagging_storage)
    trial_args = ["--variants", "vanilla", "--num-seeds", "1", "--gpus-per-trial", "0.5", *SEARCH,
                  "--set", "device=cpu"]
    status = search_all_variants.main(
        [*trial_args, "--max-failures", "1", "--drill-fail-once-at-epoch", "1", "--storage", str(tmp_path), "--name", "faulty"]
    )
    assert status == 0
    (faulty,) = trial_dirs(tmp_path / "faulty")
    assert (faulty / failure_drill.FAULT_MARKER).is_file(), "the fault was not injected"
    assert (faulty / "error.txt").is_file(), "Ray did not record the failure"
    assert stale == ["result.json"], "the retried trial did not restore Ray's log"
    faulty_reports = reports(faulty)
    assert [line["training_iteration"] for line in faulty_reports] == [1, 2]
    assert [line["epoch"] for line in faulty_reports] == [1, 2]
    assert faulty_reports[1]["iterations_since_restore"] == 1, "epoch 2 did not run in a restored trial"
    # The analysis reads the run folder: every epoch once, the trial finished.
    experiment = read_experiment(tmp_path / "faulty")
    assert load_history(experiment)["epoch"].tolist() == [1, 2]
    assert load_trials(experiment)["status"].tolist() == [FINISHED]

    baseline = search_sweep  # ran on the CPU too, unless CUDA is available
    if torch.cuda.is_available():
        assert search_all_variants.main([*trial_args, "--storage", str(tmp_path), "--name", "clean"]) == 0
        baseline = tmp_path / "clean"
    (clean,) = [trial for trial in trial_dirs(baseline) if trial.name.startswith("vanilla_")]
    clean_reports = reports(clean)
    for faulty_line, clean_line in zip(faulty_reports, clean_reports, strict=True):
        for key in COMPARED_METRICS:
            assert same(faulty_line[key], clean_line[key]), (key, faulty_line[key], clean_line[key])

    faulty_selection = json.loads((tmp_path / "faulty" / "selected_genotypes.json").read_text())
    clean_selection = json.loads((baseline / "selected_genotypes.json").read_text())
    for key in ("seed", "best_val_accuracy", "best_epoch", "genotype_string"):
        faulty_value = faulty_selection["variants"]["vanilla"]["selected"][key]
        assert same(faulty_value, clean_selection["variants"]["vanilla"]["selected"][key]), key


def test_retry_safe_loggers_hook_into_rays_restore():
    """Ray restores a (re)started trial's log files through ``_restore_from_remote``; the
    sweeps' loggers override it to keep the driver's complete copy. If Ray stops calling
    it, a retried trial's result.json can lose reports again: this test says so."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    assert "_restore_from_remote(" in inspect.getsource(JsonLoggerCallback.log_trial_start)
    assert "_restore_from_remote(" in inspect.getsource(CSVLoggerCallback._setup_trial)
    assert {base for logger in ray_compat.RETRY_SAFE_LOGGERS for base in logger.__mro__} >= {
        JsonLoggerCallback, CSVLoggerCallback
    }
    for logger in ray_compat.RETRY_SAFE_LOGGERS:
        assert logger._restore_from_remote is ray_compat._DriverCopyFirst._restore_from_remote


# --- scripts as subprocesses with their own Ray -------------------------------------


def test_interrupted_sweep_resumes_without_rerunning_finished_trials(tmp_path):
    """SIGINT once a trial finished and the next one reported; the same command again
    completes the sweep: the finished trial is untouched, the interrupted one continues."""
    command = [
        sys.executable, str(ROOT / "sweeps" / "search_all_variants.py"),
        "--variants", "vanilla", "sigmoid_weighting", "directional_weight_sharing", "--num-seeds", "1",
        "--num-cpus", "1", "--gpus-per-trial", "0",  # one trial at a time
        "--storage", str(tmp_path), "--name", "interrupted", *SEARCH, "--set", "epochs=4",
    ]
    experiment = tmp_path / "interrupted"
    log = (tmp_path / "first.log").open("w")
    process = subprocess.Popen(command, cwd=tmp_path, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT)
    finished: dict[str, str] = {}
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and process.poll() is None:
            states = {trial.name: reports(trial) for trial in trial_dirs(experiment)} if experiment.is_dir() else {}
            done = {name for name, lines in states.items() if lines and lines[-1]["finished"]}
            running = {name for name, lines in states.items() if lines and not lines[-1]["finished"]}
            if done and running:
                finished = {name: (experiment / name / "result.json").read_text() for name in done}
                process.send_signal(signal.SIGINT)
                break
            time.sleep(0.2)
        process.wait(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
    first_log = (tmp_path / "first.log").read_text()
    assert finished, f"never saw one trial finished and another running:\n{first_log[-3000:]}"
    assert process.returncode != 0, "an interrupted sweep must not report success"

    rerun = subprocess.run(command, check=False, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert "resuming experiment" in rerun.stdout
    trials = trial_dirs(experiment)
    assert len(trials) == 3
    for trial in trials:
        lines = reports(trial)
        assert lines[-1]["finished"] and lines[-1]["epoch"] == 4
        epochs = [line["epoch"] for line in lines]
        assert sorted(set(epochs)) == [1, 2, 3, 4] and epochs == sorted(epochs), trial.name
        if trial.name in finished:  # not rerun: not a single new report
            assert (trial / "result.json").read_text() == finished[trial.name]
            assert len(lines) == 4
    selection = json.loads((experiment / "selected_genotypes.json").read_text())
    assert all(entry["selected"] for entry in selection["variants"].values())
    runs = json.loads((experiment / "sweep.json").read_text())["runs"]
    assert [run["resumed"] for run in runs] == [False, True]


def test_gpu_request_without_gpus_fails_fast(tmp_path):
    command = [
        sys.executable, str(ROOT / "sweeps" / "search_all_variants.py"), "--num-cpus", "1", "--num-gpus", "0",
        "--gpus-per-trial", "1", "--storage", str(tmp_path), *SEARCH,
    ]
    result = subprocess.run(command, check=False, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == EXIT_USAGE
    assert "--gpus-per-trial 1 asks for a GPU, but the Ray cluster has none" in result.stderr
    # fails fast, before Tune starts: no experiment (the timeout above only stops a hang)
    assert not any(tmp_path.glob("search_*")), "no experiment may be created"


BAD_INPUT = {
    "search, unknown dataset": (["sweeps/search_all_variants.py", "--dataset", "bogus"], "bogus"),
    "search, zero epochs": (["sweeps/search_all_variants.py", "--preset", "demo", "--set", "epochs=0"], "epochs"),
    "eval, unknown dataset": (["sweeps/evaluate_genotypes.py", "--preset", "demo", "--datasets", "digits", "bogus"],
                              "bogus"),
    "tune, lr_min above the tuned lr": (["sweeps/tune_hparams.py", "--model", "gru", "--preset", "demo",
                                         "--set", "lr_min=0.01"], "a corner of the search space"),
    "demo, zero epochs": (["sweeps/demo.py", "--set", "epochs=0"], "epochs"),
}


def run_all_at_once(
    commands: dict[str, tuple[list[str], Path]], timeout: float = 180
) -> dict[str, tuple[int, str, str]]:
    """Run each ``name: (argv, cwd)`` as a process, all at the same time (most of each one's
    time is importing torch and Ray, which the machine's cores share out); returns each
    one's (exit status, stdout, stderr)."""
    processes = {}
    try:
        for name, (argv, cwd) in commands.items():
            processes[name] = subprocess.Popen(argv, cwd=cwd, env=subprocess_env(), stdout=subprocess.PIPE,
                                               stderr=subprocess.PIPE, text=True)
        results = {}
        for name, process in processes.items():
            stdout, stderr = process.communicate(timeout=timeout)
            results[name] = (process.returncode, stdout, stderr)
        return results
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait()


def test_bad_config_values_are_refused_before_ray_starts(tmp_path):
    """Every planned trial's config is built while planning: one `error:` line, exit 2,
    no Ray started and no experiment written — not every trial failing three times.
    Every case of BAD_INPUT, each its own process, run side by side."""
    commands, storages = {}, {}
    for case, (argv, _) in BAD_INPUT.items():
        script, *args = argv
        folder = tmp_path / f"case{len(commands)}"
        folder.mkdir()
        storages[case] = storage = folder / "results"
        args += ["--out", str(storage / "demo")] if script.endswith("demo.py") else ["--storage", str(storage)]
        commands[case] = ([sys.executable, str(ROOT / script), *args], folder)
    for case, (returncode, stdout, stderr) in run_all_at_once(commands).items():
        named = BAD_INPUT[case][1]
        assert returncode == EXIT_USAGE, (case, stdout[-2000:] + stderr[-2000:])
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and named in errors[0], (case, stderr)
        assert "Ray" not in stdout + stderr, f"{case}: Ray was started"
        assert not storages[case].exists(), f"{case}: no experiment may be written"


def test_selection_skips_seeds_that_are_not_results(tmp_path, capsys):
    experiment = tmp_path / "search"
    planned = [search_config("vanilla", seed) for seed in range(5)]
    write_sweep(experiment, "search", planned, "2026-01-02T03:04:05+00:00")
    accuracies = [0.2, 0.3, 0.4, 0.5]
    write_search_seed(experiment, 0, "vanilla", 0, accuracies, summary={"best_val_accuracy": float("nan")})
    write_search_seed(experiment, 1, "vanilla", 1, accuracies, summary={"best_val_accuracy": 97.5})
    write_search_seed(experiment, 2, "vanilla", 2, [0.2, 0.3, 0.4, 0.99], summary={"genotype_string": "tanh:0,bogus:1"})
    write_search_seed(experiment, 3, "vanilla", 3, [0.999], error="loss is NaN")
    write_search_seed(experiment, 4, "vanilla", 4, accuracies)

    document = search_all_variants.selection_document(str(experiment), planned, "digits")
    variants = document["variants"]
    assert variants["vanilla"]["selected"]["seed"] == 4
    notes = capsys.readouterr().out.splitlines()
    assert notes[:2] == [
        "note: vanilla seed 0 not selectable: did not finish (failed: summary.json: best_val_accuracy is NaN, "
        "not a fraction in [0, 1])",
        "note: vanilla seed 1 not selectable: did not finish (failed: summary.json: best_val_accuracy is 97.5, "
        "not a fraction in [0, 1])",
    ]
    assert notes[2].startswith(
        "note: vanilla seed 2 not selectable: did not finish (failed: summary.json: genotype_string "
        "'tanh:0,bogus:1' is not a genotype (")
    assert notes[3] == "note: vanilla seed 3 not selectable: did not finish (failed: RuntimeError: loss is NaN)"
    assert len(notes) == 4
    assert [entry["note"] is None for entry in variants["vanilla"]["seeds"]] == [False] * 4 + [True]
    json.dumps(variants, allow_nan=False)  # selected_genotypes.json stays strict JSON


def test_demo_analysis_without_dot_writes_dot_sources(tmp_path, monkeypatch):
    """No graphviz: the demo's analysis still writes tables and plots, the drawings as DOT
    sources, succeeds, and says how to render them."""
    search_dir, eval_dir = make_search_experiment(tmp_path), make_eval_experiment(tmp_path)
    (tmp_path / "no-dot").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "no-dot"))
    status, hint = demo.run_analysis(tmp_path, search_dir, eval_dir)
    assert status == 0
    drawings = sorted(path.name for path in (tmp_path / "cells").iterdir())
    expected = [f"{variant}.dot" for variant in SEARCH_EXPECTED_SELECTION]
    assert drawings == sorted(expected + [f"paper_{name}" for name in expected])
    for path in (tmp_path / "cells").iterdir():
        assert path.read_text().startswith("digraph cell {") and "h_t" in path.read_text()
    assert hint is not None and "dot -Tpng" in hint and "`make demo` again" in hint
    assert (tmp_path / "table1.md").is_file() and (tmp_path / "plots" / "learning_curves.png").is_file()


# --- hyperparameter tuning -------------------------------------------------------------


def test_tune_hparams_writes_a_preset_that_resolves(ray_session, tmp_path):
    out = tmp_path / "best.json"
    status = tune_hparams.main(
        ["--model", "gru", "--num-samples", "2", "--seed", "3", "--storage", str(tmp_path), "--name", "tune",
         "--gpus-per-trial", "0", "--out", str(out), *SEARCH]
    )
    assert status == 0
    preset = json.loads(out.read_text())
    params = [json.loads((trial / "params.json").read_text()) for trial in trial_dirs(tmp_path / "tune")]
    assert len(params) == 2 and all(p["model"] == "gru" for p in params)
    tuned = {name: preset["train"][name] for name in trainable.HPARAM_FIELDS}
    assert tuned in [{name: p[name] for name in trainable.HPARAM_FIELDS} for p in params]

    config = resolve_config("train", str(out))
    assert config.dataset == "digits" and config.channels == 32  # the demo preset underneath
    assert {name: getattr(config, name) for name in trainable.HPARAM_FIELDS} == tuned
    assert resolve_config("search", str(out)).dataset == "digits"
    assert json.loads((tmp_path / "tune" / "sweep.json").read_text())["kind"] == "tune"


def test_trials_that_asha_stopped_are_stopped_early_not_unfinished(ray_session, tmp_path, capsys):
    """6 samples, 2 epochs, ASHA after epoch 1: the trials it stops are "stopped early" —
    in the summary, in sweep.json and in the analysis — and no resume advice is given."""
    status = tune_hparams.main(
        ["--model", "gru", "--num-samples", "6", "--seed", "0", "--storage", str(tmp_path), "--name", "tune",
         "--gpus-per-trial", "0", *SEARCH, "--set", "limit=480", "--set", "channels=16"]
    )
    assert status == 0
    out = capsys.readouterr().out
    experiment = read_experiment(tmp_path / "tune")
    stopped = experiment.stopped_early
    assert stopped, f"ASHA stopped no trial:\n{out[-2000:]}"
    summary = next(line for line in out.splitlines() if line.startswith("tune: "))
    assert summary == f"tune: {6 - len(stopped)} finished, {len(stopped)} stopped early"
    assert "run the same command again" not in out
    trials = load_trials(experiment).set_index("trial")
    assert set(trials.index[trials["status"] == results.STOPPED_EARLY]) == set(stopped)
    assert (trials.loc[sorted(stopped), "reports"] == 1).all()


# --- pieces without Ray ------------------------------------------------------------------


def test_check_resources():
    cpu_only = [{"CPU": 2.0, "GPU": 0.0}]
    gpu_node = [{"CPU": 8.0, "GPU": 1.0}]
    resources.check_resources(1, 0, cpu_only, autoscale=False)
    resources.check_resources(2, 0.5, gpu_node, autoscale=False)
    resources.check_resources(1, 1, cpu_only, autoscale=True)  # the autoscaler will add GPU nodes
    with pytest.raises(SweepError, match="has none"):
        resources.check_resources(1, 0.25, cpu_only, autoscale=False)
    with pytest.raises(SweepError, match="no node"):
        resources.check_resources(4, 0, cpu_only, autoscale=False)
    with pytest.raises(SweepError, match="no node"):
        resources.check_resources(1, 2, gpu_node, autoscale=False)
    with pytest.raises(SweepError, match="whole number"):
        resources.check_resources(1, 1.5, gpu_node, autoscale=True)
    assert resources.default_gpus_per_trial(cpu_only) == 0 and resources.default_gpus_per_trial(gpu_node) == 1


def test_selection_takes_best_finished_seed_ties_to_lower_seed():
    text = "tanh:0,relu:1,tanh:2,relu:3,tanh:4,relu:5,tanh:6,relu:7@1,2,3,4,5,6,7,8"
    genotype = Genotype.from_string(text).to_dict()

    def seed(number, status, accuracy):
        return {"seed": number, "status": status, "best_val_accuracy": accuracy, "best_epoch": 1,
                "genotype": genotype, "genotype_string": text, "trial": f"t{number}"}

    variants = search_all_variants.select_genotypes({
        "vanilla": [seed(2, results.FINISHED, 0.9), seed(1, results.FINISHED, 0.9), seed(0, results.FAILED, 0.95)],
        "sigmoid_weighting": [seed(0, results.UNFINISHED, 0.5)],
    })
    assert variants["vanilla"]["selected"]["seed"] == 1
    assert [entry["seed"] for entry in variants["vanilla"]["seeds"]] == [0, 1, 2]
    assert variants["sigmoid_weighting"]["selected"] is None


SUBMITTED_SCRIPTS = ["search_all_variants.py", "evaluate_genotypes.py", "tune_hparams.py", "random_baseline.py"]


def test_script_runs_alone_as_ray_submit_uploads_it(tmp_path):
    """`ray submit cluster.yaml sweeps/X.py` copies X.py alone into the head node's home,
    beside the checkout folder ~/dartsrenet, and runs it there: it imports the installed
    packages (no sys.path edits) and plans the sweep (here: refuses a bad --set at once).
    Every script of SUBMITTED_SCRIPTS, each in a home of its own, run side by side."""
    commands = {}
    for script in SUBMITTED_SCRIPTS:
        home = tmp_path / script.removesuffix(".py") / "home"
        home.mkdir(parents=True)
        (home / "dartsrenet").symlink_to(ROOT, target_is_directory=True)  # the file_mounts checkout
        (home / script).write_text((ROOT / "sweeps" / script).read_text())
        commands[script] = ([sys.executable, script, "--set", "colour=red", "--storage", str(home.parent / "results")],
                            home)
    for script, (returncode, _, stderr) in run_all_at_once(commands).items():
        assert returncode == EXIT_USAGE, (script, stderr[-2000:])
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "colour" in errors[0], (script, stderr[-2000:])


def test_bad_arguments_fail_before_ray(tmp_path, capsys):
    assert search_all_variants.main(["--set", "seed=3", "--storage", str(tmp_path), *SEARCH]) == EXIT_USAGE
    assert "set by the sweep" in capsys.readouterr().err
    assert search_all_variants.main(["--set", "colour=red", "--storage", str(tmp_path)]) == EXIT_USAGE
    assert "colour" in capsys.readouterr().err
    assert evaluate_genotypes.main(["--genotypes", str(tmp_path), "--storage", str(tmp_path)]) == EXIT_USAGE
    assert "selected_genotypes.json" in capsys.readouterr().err


def test_default_names_are_deterministic():
    args = search_all_variants.parse_args(["--preset", "demo"])
    assert search_all_variants.plan(args).name == "search_digits_demo"
    args = search_all_variants.parse_args(["--preset", "demo", "--set", "epochs=1"])
    name = search_all_variants.plan(args).name
    assert name.startswith("search_digits_demo_set-") and name == search_all_variants.plan(args).name
    assert search_all_variants.plan(search_all_variants.parse_args([])).name == "search_cifar10_paper"


def test_resuming_refuses_another_plan_or_changed_config(tmp_path):
    experiment = str(tmp_path / "search")
    planned = [{"variant": "vanilla", "seed": 0, "dataset": "digits", "preset": "demo", "overrides": {}}]
    configs = {"digits": {"epochs": 4, "channels": 16}}
    assert prepare_experiment(experiment, "search", planned, "cmd", {"configs": configs}) is False
    marker = json.loads((tmp_path / "search" / "sweep.json").read_text())
    assert marker["planned"] == planned and marker["configs"] == configs and len(marker["runs"]) == 1

    prepare_experiment(experiment, "search", planned, "cmd", {"configs": configs})  # same: accepted
    assert len(json.loads((tmp_path / "search" / "sweep.json").read_text())["runs"]) == 2
    with pytest.raises(SweepError, match="planned differently"):
        prepare_experiment(experiment, "search", [{**planned[0], "seed": 1}], "cmd", {"configs": configs})
    with pytest.raises(SweepError, match="digits: epochs 4 → 6"):
        prepare_experiment(experiment, "search", planned, "cmd", {"configs": {"digits": {"epochs": 6, "channels": 16}}})


def test_scheduler_score_ranks_a_non_finite_epoch_last():
    """ASHA and Optuna need a number every epoch; an epoch with null validation metrics ranks last."""
    assert trainable.scheduler_score({"val_accuracy": 0.75, "val_finite": True}) == 0.75
    assert trainable.scheduler_score({"val_accuracy": None, "val_loss": None, "val_finite": False}) == -1.0
    assert trainable.scheduler_score({"val_accuracy": 0.0, "val_finite": True}) == 0.0

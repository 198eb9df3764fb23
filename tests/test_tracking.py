"""Per-epoch logs where users look (sweeps/tracking.py): TensorBoard event files in the
experiment folder, read back with TensorBoard's own reader, and MLflow runs (one per
trial, with the metrics of every epoch) read back with MLflow's client. One real tiny
search sweep on the session Ray, with ``--mlflow`` (the SQLite store in the
experiment), then the same command again (a resume)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[sweeps]')")
mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed (pip install -e '.[tracking]')")
event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator", reason="tensorboard is not installed (pip install -e '.[tracking]')"
)

from sweeps import options, search_all_variants, tracking

TINY = ["--set", "channels=4", "--set", "epochs=2", "--set", "limit=96", "--set", "batch_size=16"]
VARIANTS = ("vanilla", "sigmoid_weighting")
EPOCH_SCALARS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")


def trial_folders(experiment: Path) -> list[Path]:
    return sorted(path for path in experiment.iterdir() if (path / "params.json").is_file())


def read_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of a folder's event files, as TensorBoard loads them."""
    accumulator = event_accumulator.EventAccumulator(str(folder), size_guidance={event_accumulator.SCALARS: 0})
    accumulator.Reload()
    return {tag: [(event.step, event.value) for event in accumulator.Scalars(tag)]
            for tag in accumulator.Tags()["scalars"]}


@pytest.fixture(scope="module")
def tracked_sweep(ray_session, tmp_path_factory):
    storage = tmp_path_factory.mktemp("tracked")
    argv = ["--variants", *VARIANTS, "--num-seeds", "1", "--gpus-per-trial", "0.5", "--storage", str(storage),
            "--name", "tracked", "--preset", "demo", "--dataset", "digits", "--verbose", "1", "--mlflow", *TINY]
    return storage / "tracked", argv


def test_tensorboard_reads_every_trials_epochs_from_the_experiment(tracked_sweep, capsys):
    experiment, argv = tracked_sweep
    assert search_all_variants.main(argv) == 0
    out = capsys.readouterr().out
    assert f"TensorBoard: tensorboard --logdir {experiment}" in out
    assert "driver_artifacts" not in out, "Ray's hint names its temporary session folder"

    trials = trial_folders(experiment)
    assert len(trials) == len(VARIANTS)
    for trial in trials:
        metrics = [json.loads(line) for line in (trial / "run" / "metrics.jsonl").read_text().splitlines()]
        series = read_scalars(trial)
        assert not [tag for tag in series if tag.startswith("ray/tune/")], "Ray's own TensorBoard logger ran too"
        for name in EPOCH_SCALARS:
            assert [step for step, _ in series[name]] == [1, 2], (trial.name, name, series.get(name))
            expected = [record[name] for record in metrics]
            assert [value for _, value in series[name]] == pytest.approx(expected, rel=1e-6), (trial.name, name)


def test_mlflow_has_one_run_per_trial_with_every_epoch(tracked_sweep, capsys):
    experiment, argv = tracked_sweep
    if not (experiment / tracking.MLFLOW_DB).is_file():  # run alone: the sweep of the test above
        assert search_all_variants.main(argv) == 0
    assert search_all_variants.main(argv) == 0  # the same command again: resumed, nothing rerun
    out = capsys.readouterr().out
    uri = f"sqlite:///{experiment / tracking.MLFLOW_DB}"
    assert f"MLflow: mlflow ui --backend-store-uri {uri}" in out

    client = mlflow.MlflowClient(tracking_uri=uri)
    mlflow_experiment = client.get_experiment_by_name("tracked")
    assert mlflow_experiment.artifact_location == (experiment / tracking.MLFLOW_ARTIFACTS).as_uri()
    runs = client.search_runs([mlflow_experiment.experiment_id])
    trials = {trial.name: trial for trial in trial_folders(experiment)}
    assert sorted(run.info.run_name for run in runs) == sorted(trials)
    for run in runs:
        trial = trials[run.info.run_name]
        metrics = [json.loads(line) for line in (trial / "run" / "metrics.jsonl").read_text().splitlines()]
        assert run.data.params["variant"] in VARIANTS and run.data.params["seed"] == "0"
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [metric.step for metric in history] == [record["epoch"] for record in metrics] == [1, 2]
        assert [metric.value for metric in history] == pytest.approx([record["val_accuracy"] for record in metrics], rel=1e-6)


def test_rays_default_loggers_are_off_only_while_a_sweep_runs(monkeypatch):
    monkeypatch.delenv(tracking.AUTO_LOGGERS_ENV, raising=False)
    with tracking.own_loggers_only():
        assert os.environ[tracking.AUTO_LOGGERS_ENV] == "1"
    assert tracking.AUTO_LOGGERS_ENV not in os.environ


def test_tensorboard_scalars_leave_out_bookkeeping_and_non_finite_values():
    values = tracking.scalars({"val_loss": float("nan"), "val_accuracy": 0.5, "finished": True,
                               "genotype": "x", "pid": 12, "epoch": 3, "training_iteration": 3})
    assert values == {"val_accuracy": 0.5, "epoch": 3.0}


def test_mlflow_without_uri_needs_a_file_system():
    assert tracking.mlflow_store(None, "/x/e") is None
    assert tracking.mlflow_store("http://host:5000", "/x/e") == ("http://host:5000", None)
    assert tracking.mlflow_store(tracking.MLFLOW_DEFAULT, "/x/e") == ("sqlite:////x/e/mlflow.db", "file:///x/e/mlartifacts")
    with pytest.raises(ValueError, match="object store"):
        tracking.mlflow_store(tracking.MLFLOW_DEFAULT, "s3://bucket/e")


def test_mlflow_flag_parses_with_and_without_uri():
    parser = search_all_variants.build_parser()
    assert parser.parse_args([]).mlflow is None
    assert parser.parse_args(["--mlflow"]).mlflow == tracking.MLFLOW_DEFAULT
    assert parser.parse_args(["--mlflow", "http://host:5000"]).mlflow == "http://host:5000"
    assert options.namespace(parser).mlflow is None


class TrialStandIn:
    """What Ray Tune's MLflow callback reads of a trial: its name and config."""

    def __init__(self, name: str, config: dict) -> None:
        self.name, self.config, self.evaluated_params = name, config, config

    def __str__(self) -> str:
        return self.name


def test_a_trial_resumed_by_a_new_driver_continues_its_mlflow_run(tmp_path):
    """The first driver dies after epoch 1 (no end of trial); the next driver's logger
    finds the trial's run by name and adds epoch 2 to it."""
    tracking_uri, artifacts = tracking.mlflow_store(tracking.MLFLOW_DEFAULT, str(tmp_path / "exp"))
    (tmp_path / "exp").mkdir()
    trial = TrialStandIn("vanilla_seed0_abc12_00000", {"variant": "vanilla", "seed": 0})
    first = tracking.SweepMLflowLogger(tracking_uri, "exp", artifacts, {"sweep_kind": "search"})
    first.setup()
    first.log_trial_start(trial)
    first.log_trial_result(1, trial, {"val_accuracy": 0.25, "training_iteration": 1})
    second = tracking.SweepMLflowLogger(tracking_uri, "exp", artifacts, {"sweep_kind": "search"})
    second.setup()
    second.log_trial_start(trial)
    second.log_trial_result(2, trial, {"val_accuracy": 0.5, "training_iteration": 2})
    second.log_trial_end(trial)

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    [run] = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    assert run.info.run_name == str(trial) and run.info.status == "FINISHED"
    assert run.data.tags["sweep_kind"] == "search"
    history = client.get_metric_history(run.info.run_id, "val_accuracy")
    assert [(metric.step, metric.value) for metric in history] == [(1, 0.25), (2, 0.5)]

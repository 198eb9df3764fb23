"""Per-epoch logs where users look: TensorBoard always, MLflow on request (docs/cluster.md,
"Watching a sweep").

* **TensorBoard.** :class:`TensorBoardLogger` writes every trial's per-epoch scalars
  (losses, accuracies, epoch time, …; step = the epoch) as TensorBoard event files into
  the trial's folder of the experiment, so ``tensorboard --logdir STORAGE/NAME`` shows
  every trial. It replaces Ray's own TensorBoard logger, whose console hint points to
  Ray's temporary session folder (gone after a reboot) instead of the experiment.
* **MLflow** (``--mlflow [URI]``, needs the ``tracking`` extra): Ray Tune's
  ``MLflowLoggerCallback``, one MLflow run per trial (named like its trial folder; a
  resumed trial continues its run) with the trial's config as parameters and every
  report as metrics, in an MLflow experiment named like the sweep's. Without a URI the
  store is ``sqlite:///STORAGE/NAME/mlflow.db`` (MLflow 3 refuses its old folder
  store), with artifacts under ``STORAGE/NAME/mlartifacts``; view it with
  ``mlflow ui --backend-store-uri sqlite:///STORAGE/NAME/mlflow.db``.

Callbacks run in the driver, never in the trials.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ray.air.integrations.mlflow import MLflowLoggerCallback  # imports mlflow only when used
from ray.tune.logger import LoggerCallback

from dartsrenet.results import is_uri
from sweeps import ray_compat

MLFLOW_DEFAULT = "experiment"
"""``--mlflow`` given without a URI: a SQLite store inside the experiment."""

MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"

NOT_SCALARS = frozenset({
    "timestamp", "pid", "training_iteration", "time_total_s", "time_since_restore",
    "iterations_since_restore", "timesteps_total", "episodes_total", "timesteps_since_restore",
    "done", "should_checkpoint",
})
"""Ray's bookkeeping fields of a report: not plotted."""


def add_tracking_arguments(group: argparse._ArgumentGroup) -> None:
    """``--mlflow [URI]`` (the TensorBoard logs need no flag)."""
    group.add_argument(
        "--mlflow", nargs="?", const=MLFLOW_DEFAULT, metavar="URI",
        help="also log every trial to MLflow (one run per trial; needs pip install -e '.[tracking]'): "
        "to the tracking URI given, or without one to a SQLite store in the experiment folder "
        f"(STORAGE/NAME/{MLFLOW_DB})",
    )


def scalars(result: Mapping[str, Any]) -> dict[str, float]:
    """The finite numbers of a report, by name (Ray's bookkeeping left out)."""
    values = {}
    for key, value in result.items():
        if key in NOT_SCALARS or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(value):
            values[key] = float(value)
    return values


class TensorBoardLogger(ray_compat.DriverWrittenLogger):
    """Every report of a trial as TensorBoard scalars in the trial's folder, at step =
    the report's ``epoch`` (Ray's iteration count where there is none).

    Not a subclass of Ray's ``TBXLoggerCallback`` on purpose: with that one present Ray
    prints a TensorBoard command for its temporary session folder.
    """

    driver_files = ("events.out.tfevents.*",)  # written by the driver, not synced from trials

    def __init__(self) -> None:
        from tensorboardX import SummaryWriter

        self._writer_class = SummaryWriter
        self._writers: dict[Any, Any] = {}

    def log_trial_start(self, trial: Any) -> None:
        if trial in self._writers:
            self._writers.pop(trial).close()
        trial.init_local_path()
        self._writers[trial] = self._writer_class(trial.local_path, flush_secs=30)

    def log_trial_result(self, iteration: int, trial: Any, result: dict[str, Any]) -> None:
        if trial not in self._writers:
            self.log_trial_start(trial)
        step = result.get("epoch")
        if not isinstance(step, int) or isinstance(step, bool):
            step = result.get("training_iteration", iteration)
        writer = self._writers[trial]
        for name, value in scalars(result).items():
            writer.add_scalar(name, value, global_step=step)
        writer.flush()

    def log_trial_end(self, trial: Any, failed: bool = False) -> None:
        if trial in self._writers:
            self._writers.pop(trial).close()

    def __getstate__(self) -> dict[str, Any]:
        # Pickled into Ray's experiment state: the open writers stay behind.
        return {**self.__dict__, "_writers": {}}


def mlflow_store(option: str | None, experiment: str) -> tuple[str, str | None] | None:
    """The tracking URI and artifact location for ``--mlflow``'s value (``None``: off).

    Raises:
        ValueError: ``--mlflow`` without a URI on object-store storage (SQLite needs a
            file system), or MLflow is not installed.
    """
    if option is None:
        return None
    if importlib.util.find_spec("mlflow") is None:  # the tracking extra is optional
        raise ValueError("--mlflow needs MLflow: pip install -e '.[tracking]'")
    if option != MLFLOW_DEFAULT:
        return option, None
    if is_uri(experiment):
        raise ValueError(f"--mlflow without a URI keeps a SQLite store in the experiment, but {experiment} "
                         "is in an object store: pass a tracking URI, e.g. --mlflow http://host:5000")
    folder = Path(experiment)
    return f"sqlite:///{folder / MLFLOW_DB}", (folder / MLFLOW_ARTIFACTS).as_uri()


class SweepMLflowLogger(MLflowLoggerCallback):
    """Ray Tune's MLflow callback with one MLflow run per trial also across resumed
    sweeps (a trial's run is found again by its ``trial_name`` tag), and the MLflow
    experiment's artifacts in a folder of ours.

    Args:
        tracking_uri: MLflow's tracking URI.
        experiment_name: the MLflow experiment (created if missing).
        artifact_location: where a new MLflow experiment keeps artifacts (``None``:
            MLflow's default).
        tags: tags of every run.
    """

    def __init__(self, tracking_uri: str, experiment_name: str, artifact_location: str | None,
                 tags: Mapping[str, str]) -> None:
        super().__init__(tracking_uri=tracking_uri, experiment_name=experiment_name, tags=dict(tags))
        self.artifact_location = artifact_location
        self._experiment_id: str | None = None

    def setup(self, *args: Any, **kwargs: Any) -> None:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self.tracking_uri)
        found = client.get_experiment_by_name(self.experiment_name)
        self._experiment_id = found.experiment_id if found else client.create_experiment(
            self.experiment_name, artifact_location=self.artifact_location
        )
        super().setup(*args, **kwargs)

    def log_trial_start(self, trial: Any) -> None:
        runs_by_trial = ray_compat.mlflow_trial_runs(self)
        if trial not in runs_by_trial:
            from mlflow import MlflowClient

            runs = MlflowClient(tracking_uri=self.tracking_uri).search_runs(
                [self._experiment_id], filter_string=f"tags.trial_name = '{trial}'", max_results=1
            )
            if runs:
                runs_by_trial[trial] = runs[0].info.run_id
        super().log_trial_start(trial)


def mlflow_logger(option: str | None, experiment: str, name: str, tags: Mapping[str, str]) -> SweepMLflowLogger | None:
    """The MLflow callback for ``--mlflow``'s value (``None`` without the flag).

    Raises:
        ValueError: see :func:`mlflow_store`.
    """
    store = mlflow_store(option, experiment)
    if store is None:
        return None
    tracking_uri, artifact_location = store
    return SweepMLflowLogger(tracking_uri, name, artifact_location, tags)


AUTO_LOGGERS_ENV = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"
"""Ray Tune adds its CSV, JSON and TensorBoard loggers unless this is ``1``; the sweeps
pass their own of all three kinds (:data:`sweeps.ray_compat.RETRY_SAFE_LOGGERS`, :class:`TensorBoardLogger`)."""


def sweep_callbacks(
    loggers: list[LoggerCallback], experiment: str, name: str, tags: Mapping[str, str], mlflow: str | None,
    log: Callable[[str], None] = print,
) -> list[LoggerCallback]:
    """``loggers`` plus the TensorBoard logger and, for ``--mlflow``, the MLflow one;
    says where to look. Run the experiment inside :func:`own_loggers_only`.

    Raises:
        ValueError: see :func:`mlflow_store`.
    """
    callbacks = [*loggers, TensorBoardLogger()]
    log(f"TensorBoard: tensorboard --logdir {experiment}")
    mlflow_callback = mlflow_logger(mlflow, experiment, name, tags)
    if mlflow_callback is not None:
        callbacks.append(mlflow_callback)
        log(f"MLflow: mlflow ui --backend-store-uri {mlflow_callback.tracking_uri}")
    return callbacks


@contextmanager
def own_loggers_only() -> Iterator[None]:
    """While a sweep's ``Tuner.fit`` runs, Ray adds none of its default loggers: the
    sweeps pass their own CSV, JSON and TensorBoard loggers, and Ray's TensorBoard one
    would print a hint naming its temporary session folder."""
    before = os.environ.get(AUTO_LOGGERS_ENV)
    os.environ[AUTO_LOGGERS_ENV] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(AUTO_LOGGERS_ENV, None)
        else:
            os.environ[AUTO_LOGGERS_ENV] = before

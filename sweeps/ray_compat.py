"""Every use of Ray's private APIs and internals by the sweeps, in one place.

Ray's Python API has changed shape several times; what the sweeps need beyond its
public API is kept here so that a Ray upgrade is checked in one file. Each use names
the Ray version it was written for (the version pinned in ``cluster.yaml``, 2.60) and
what it relies on. Nothing else in ``sweeps/`` imports ``ray._private`` or reads a
private attribute of a Ray object.

* Local Ray on the loopback address (:mod:`sweeps.ray_setup`): Ray's single-machine
  switch as the driver already imported it (:func:`set_single_machine_mode`), the
  address lookup ``ray.init`` does (:func:`running_cluster_address`), the node-address
  argument of ``ray.init`` (:func:`init_local_ray`).
* Logger callbacks that keep every report of a retried trial
  (:data:`RETRY_SAFE_LOGGERS`), and that write files into trial folders without Ray
  syncing over them (:class:`DriverWrittenLogger`).
* The ASHA scheduler that remembers the trials it stopped
  (:class:`StopRecordingASHAScheduler`), and the scheduler a restored tuner ran
  (:func:`scheduler_of`).
* A restored tuner's callbacks (:func:`replace_callbacks`) and the MLflow callback's
  runs per trial (:func:`mlflow_trial_runs`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ray
from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, LoggerCallback
from ray.tune.schedulers import ASHAScheduler, TrialScheduler

# --- local Ray (sweeps/ray_setup.py) -------------------------------------------------


def set_single_machine_mode() -> None:
    """Make this already-imported driver use Ray's single-machine mode (node address
    127.0.0.1); new Ray processes read the environment variable instead."""
    # Private API (Ray 2.60): `ray._private.ray_constants.ENABLE_RAY_CLUSTER`, the
    # constant that `services.get_node_ip_address` reads at each call; it was computed
    # from RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER when ray was imported.
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def running_cluster_address() -> str | None:
    """The address ``ray.init()`` without one would connect to (``RAY_ADDRESS``, or a
    cluster started with ``ray start`` on this machine), or None: it would start one."""
    # Private API (Ray 2.60): `services.canonicalize_bootstrap_address`, the lookup that
    # ray.init itself does for address=None; None means "start a local instance".
    from ray._private import services

    return services.canonicalize_bootstrap_address(None)


def init_local_ray(node_address: str, **options: Any) -> None:
    """``ray.init(address="local", **options)`` with the node on ``node_address``."""
    # Private argument of ray.init (Ray 2.60): `_node_ip_address`, the node's address.
    ray.init(address="local", _node_ip_address=node_address, **options)


# --- logger callbacks ----------------------------------------------------------------


class _DriverCopyFirst:
    """Keep the driver's own copy of a trial's log file when Ray restarts the trial.

    When a trial is retried after a failure, Ray's logger callbacks replace the log file
    they write on the driver with the copy in the experiment's storage, which is synced
    only now and then: the reports made since the last sync — typically the epoch just
    before the failure — would be lost. In the process that ran the trial, the driver's
    copy is the complete one; a new process (a resumed sweep) has none and still
    restores from storage.
    """

    # Private API (Ray 2.60): `_restore_from_remote(file_name, trial)` of the JSON and CSV
    # logger callbacks, called from their `log_trial_start` when a trial (re)starts.
    def _restore_from_remote(self, file_name: str, trial: Any) -> None:
        if Path(trial.local_path, file_name).is_file():
            return
        super()._restore_from_remote(file_name, trial)  # type: ignore[misc]


class RetrySafeJsonLogger(_DriverCopyFirst, JsonLoggerCallback):
    """Ray's ``result.json`` logger that keeps every report of a retried trial."""


class RetrySafeCSVLogger(_DriverCopyFirst, CSVLoggerCallback):
    """Ray's ``progress.csv`` logger that keeps every report of a retried trial."""


RETRY_SAFE_LOGGERS: tuple[type, ...] = (RetrySafeJsonLogger, RetrySafeCSVLogger)
"""Passed as ``RunConfig(callbacks=…)``; Ray then adds no logger of these two kinds itself."""


class DriverWrittenLogger(LoggerCallback):
    """A logger callback that writes files matching :attr:`driver_files` into trial
    folders on the driver; Ray keeps them apart from what it syncs from the trials."""

    driver_files: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Private API (Ray 2.60): `LoggerCallback._SAVED_FILE_TEMPLATES`, the file patterns
        # a logger callback writes itself (Ray's own loggers set it the same way).
        cls._SAVED_FILE_TEMPLATES = list(cls.driver_files)


def mlflow_trial_runs(callback: Any) -> dict[Any, str]:
    """The MLflow run id of each trial that an ``MLflowLoggerCallback`` logs to."""
    # Private API (Ray 2.60): `MLflowLoggerCallback._trial_runs`, {trial: run id}, filled
    # by its `log_trial_start` (a trial found here gets no new run).
    return callback._trial_runs


def replace_callbacks(tuner: Any, callbacks: list[Any]) -> None:
    """Give a restored ``Tuner`` this run's callbacks (``Tuner.restore`` brings back the
    ones pickled by the experiment's first run)."""
    # Private API (Ray 2.60): `Tuner._local_tuner` (a TunerInternal) holds the RunConfig
    # that fit() reads its callbacks from.
    tuner._local_tuner.get_run_config().callbacks = callbacks


# --- schedulers ----------------------------------------------------------------------


class StopRecordingASHAScheduler(ASHAScheduler):
    """ASHA that remembers the trials it stopped before their last epoch (by trial folder
    name): Ray marks those ``TERMINATED`` like interrupted ones, but only an interrupted
    trial is resumed by running the sweep again. :func:`sweeps.experiment.run_experiment`
    records them in ``sweep.json`` (:data:`dartsrenet.results.STOPPED_EARLY_FIELD`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stopped_trials: set[str] = set()

    # Written for Ray 2.60's `TrialScheduler.on_trial_result(tune_controller, trial,
    # result)`; `trial.path` is the trial's folder in the experiment's storage.
    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP and not result.get("finished"):
            self.stopped_trials.add(os.path.basename(str(trial.path).rstrip("/")))
        return decision


def scheduler_of(tuner: Any) -> Any:
    """The scheduler a tuner ran: the one it was given, or the one ``Tuner.restore``
    unpickled from the experiment (None where there is none to find)."""
    # Private API (Ray 2.60): `Tuner._local_tuner._tune_config`, the TuneConfig in use.
    used = getattr(getattr(tuner, "_local_tuner", None), "_tune_config", None)
    return getattr(used, "scheduler", None)

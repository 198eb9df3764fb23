"""A run whose numbers stop being finite is ``diverged``, not ``failed`` (results contract).

The run leaves ``diverged.json`` beside the records that led there; the analysis reads the
trial as diverged with the error as its line, the tables count it apart, and a sweep lists
it without asking for a rerun that would only diverge again.
"""

from __future__ import annotations

import json

import pytest
from ray.tune import Result

from analysis.tables import format_seeds
from dartsrenet import results
from dartsrenet.config import resolve_config
from dartsrenet.runs import NonFiniteLossError
from dartsrenet.train import run_train
from sweeps.errors import EXIT_INCOMPLETE, EXIT_OK
from sweeps.experiment import result_status, summarize

TINY = {"dataset": "digits", "channels": 4, "epochs": 2, "limit": 96, "batch_size": 16, "device": "cpu"}


@pytest.fixture(scope="module")
def diverged_trial(tmp_path_factory):
    """A trial folder whose run diverged: a GRU trained at lr 1e12 (its loss becomes NaN)."""
    trial = tmp_path_factory.mktemp("trial")
    config = resolve_config("train", "paper", {
        **TINY, "cell": "gru", "lr": 1e12, "grad_clip": 0.0, "weight_decay": 0.0,
        "out": str(trial / results.RUN_FOLDER),
    })
    with pytest.raises(NonFiniteLossError, match="loss became") as info:
        run_train(config, log=None)
    return trial, info.value


def test_a_diverged_run_records_its_error_in_its_folder(diverged_trial):
    trial, error = diverged_trial
    record = json.loads((trial / results.RUN_FOLDER / results.DIVERGED_FILE).read_text())
    assert record == {"error": "NonFiniteLossError", "message": str(error)}
    assert not (trial / results.RUN_FOLDER / results.SUMMARY_FILE).exists()


def test_the_analysis_reads_it_as_diverged_with_its_error(diverged_trial):
    trial, error = diverged_trial
    (trial / results.ERROR_FILE).write_text("Traceback ...\nNonFiniteLossError: as Ray wrote it\n")
    status, line, _, summary = results.trial_state(trial)
    assert status == results.DIVERGED and summary is None
    assert line == f"NonFiniteLossError: {error}"


def test_a_sweep_lists_it_and_does_not_ask_for_a_rerun(diverged_trial):
    trial, _ = diverged_trial
    diverged = Result(metrics={"epoch": 1}, checkpoint=None, error=RuntimeError("trial raised"), path=str(trial))
    finished = Result(metrics={"epoch": 2, "finished": True}, checkpoint=None, error=None, path=str(trial))
    assert result_status(diverged) == results.DIVERGED
    lines: list[str] = []
    assert summarize([finished, diverged], "eval", log=lines.append) == EXIT_OK
    assert lines[0] == "eval: 1 finished, 1 diverged"
    assert lines[1].startswith(f"  diverged: {trial.name}: NonFiniteLossError: ")
    crashed = Result(metrics={"epoch": 1}, checkpoint=None, error=RuntimeError("out of memory"),
                     path=str(trial.parent / "no-such-trial"))
    assert result_status(crashed) == results.FAILED
    assert summarize([finished, diverged, crashed], "eval", log=lines.append) == EXIT_INCOMPLETE


def test_statuses_rank_diverged_after_finished_and_apart_from_failed():
    assert results.trial_status(finished=True, failed=True, reported=True, diverged=True) == results.FINISHED
    assert results.trial_status(finished=False, failed=True, reported=True, diverged=True) == results.DIVERGED
    assert results.trial_status(finished=False, failed=True, reported=True) == results.FAILED
    assert not results.resumable([results.FINISHED, results.DIVERGED, results.STOPPED_EARLY])
    assert results.resumable([results.DIVERGED, results.FAILED])
    assert results.status_counts_text([results.DIVERGED, results.FINISHED, results.DIVERGED]) == "1 finished, 2 diverged"


def test_tables_count_diverged_seeds_apart():
    record = {"n_finished": 2, "n_planned": 4, "n_failed": 1, "n_diverged": 1, "n_unfinished": 0,
              "n_stopped_early": 0, "n_missing": 0}
    assert format_seeds(record) == "2/4 (1 failed, 1 diverged)"

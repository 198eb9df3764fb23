"""Run folders: never overwritten by a different run, readable per umask, strict JSON."""

import dataclasses
import json
import math
import os
import stat

import pytest

from dartsrenet.config import resolve_config
from dartsrenet.runs import ConfigMismatchError, RunFolder, finite_or_none, to_json
from dartsrenet.train import run_train

TINY = {"dataset": "digits", "channels": 2, "epochs": 1, "limit": 24, "batch_size": 8, "device": "cpu"}


def train_config(tmp_path, **overrides):
    return resolve_config("train", "paper", {**TINY, "cell": "gru", "out": str(tmp_path / "run"), **overrides})


def snapshot(folder):
    return {path.relative_to(folder): path.read_bytes() for path in folder.rglob("*") if path.is_file()}


def strict_json(text):
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")
    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def umask():
    """Set the process umask for a test and restore it afterwards."""
    saved = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(saved)


def test_a_finished_run_without_its_checkpoint_is_not_replaced_by_another_run(tmp_path):
    config = train_config(tmp_path)
    run_train(config, log=None)
    folder = tmp_path / "run"
    for path in (folder / "checkpoint").iterdir():
        path.unlink()
    (folder / "checkpoint").rmdir()
    before = snapshot(folder)
    with pytest.raises(ConfigMismatchError, match=r"different config \(cell: 'gru' → 'lstm'\)"):
        run_train(train_config(tmp_path, cell="lstm"), log=None)
    assert snapshot(folder) == before
    # Without config.json the folder's owner cannot be told: refused too.
    (folder / "config.json").unlink()
    before = snapshot(folder)
    with pytest.raises(ConfigMismatchError, match="holds run files .*best.pt.*but no config.json"):
        run_train(config, log=None)
    assert snapshot(folder) == before


def test_a_folder_with_only_the_same_config_starts_the_run(tmp_path):
    config = train_config(tmp_path)
    folder = RunFolder(config.out)
    folder.write_config(dataclasses.asdict(config))  # a run killed before its first checkpoint
    summary = run_train(config, log=None)
    assert summary["epochs"] == 1


@pytest.mark.parametrize(("mask", "mode"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_run_files_get_the_mode_of_the_umask(tmp_path, umask, mask, mode):
    umask(mask)
    run_train(train_config(tmp_path), log=None)
    files = [path for path in (tmp_path / "run").rglob("*") if path.is_file()]
    assert {path.name for path in files} >= {"config.json", "metrics.jsonl", "summary.json", "best.pt", "checkpoint.pt"}
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in files} == {path.name: mode for path in files}
    assert not [path for path in (tmp_path / "run").rglob(".*")]  # no temporary files left


def test_metric_and_summary_files_are_strict_json(tmp_path):
    run_train(train_config(tmp_path), log=None)
    folder = tmp_path / "run"
    for line in (folder / "metrics.jsonl").read_text().splitlines():
        strict_json(line)
    summary = strict_json((folder / "summary.json").read_text())
    assert math.isfinite(summary["test_loss"]) and 0 <= summary["test_accuracy"] <= 1


def test_non_finite_numbers_become_null():
    data = {"a": float("nan"), "b": [1.0, float("inf"), (2, -float("inf"))], "c": {"d": 0.5, "e": "x"}}
    assert finite_or_none(data) == {"a": None, "b": [1.0, None, [2, None]], "c": {"d": 0.5, "e": "x"}}
    assert strict_json(to_json(data)) == finite_or_none(data)

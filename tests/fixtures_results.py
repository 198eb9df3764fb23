"""Hand-written experiment folders in the sweeps' on-disk layout, for the analysis tests.

Each trial folder holds the library's run folder ``run/`` as ``run_search`` /
``run_train`` write it (docs/design.md, "Run folder": ``config.json``, ``metrics.jsonl``
with one object per epoch, ``summary.json`` once the run finished) beside the files Ray
Tune 2.x writes (checked against a real run): ``params.json`` (indented config),
``result.json`` (one JSON object per report: our metrics, then Ray's ``timestamp``,
``checkpoint_dir_name``, ``done``, ``training_iteration``, ``trial_id``, ``config``, …),
``progress.csv``, ``checkpoint_00000N/`` folders and ``error.txt`` (with ANSI colour
codes) for failed trials. Trial folders are named as older Ray versions name them
(``trainable_<hex>_<index>_<index>_<tag>_<date>``); the analysis does not depend on the
names. On top of Ray's files each experiment has our ``sweep.json`` marker.

The builders return the experiment folder; the expected numbers are the constants below.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dartsrenet import results
from dartsrenet.activations import PRIMITIVES
from dartsrenet.config import resolve_config
from dartsrenet.genotypes import PAPER_GENOTYPES, Genotype, derive_genotype, edge_index, num_edges

DATE = "2026-01-02_03-04-05"


def ray_trial_dirname(index: int, config: Mapping[str, Any], trial_hex: str = "abc12") -> str:
    """A trial folder name as Ray writes it: ``trainable_abc12_00000_0_seed=0,variant=vanilla_<date>``."""
    tag = ",".join(f"{key}={config[key]}" for key in sorted(config) if isinstance(config[key], str | int))
    return f"trainable_{trial_hex}_{index:05d}_{index}_{tag}_{DATE}"


def write_sweep(
    experiment_dir: Path, kind: str, planned: Sequence[Mapping[str, Any]], created: Any, **extra: Any
) -> None:
    """Write the ``sweep.json`` marker."""
    experiment_dir.mkdir(parents=True, exist_ok=True)
    marker = {"kind": kind, "created": created, "planned": list(planned), **extra}
    (experiment_dir / "sweep.json").write_text(json.dumps(marker, indent=2))


def write_ray_bookkeeping(experiment_dir: Path) -> None:
    """Files Ray writes beside the trial folders (the analysis must ignore them)."""
    (experiment_dir / f"experiment_state-{DATE}.json").write_text("{}")
    (experiment_dir / f"basic-variant-state-{DATE}.json").write_text("{}")
    (experiment_dir / "tuner.pkl").write_bytes(b"\x80\x05.")
    (experiment_dir / ".validate_storage_marker").write_text("")


def run_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The library config (``run/config.json``) of a search or evaluation trial config."""
    overrides = {**config.get("overrides", {}), "dataset": config["dataset"], "seed": config["seed"], "out": "run"}
    if "model" in config:
        overrides.update(cell=config.get("genotype") or config["model"], variant=config.get("variant"))
        return dataclasses.asdict(resolve_config("train", config["preset"], overrides))
    overrides["variant"] = config["variant"]
    return dataclasses.asdict(resolve_config("search", config["preset"], overrides))


def run_summary(config: Mapping[str, Any], reports: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``run/summary.json`` of a finished run with these reports (docs/design.md)."""
    last = reports[-1]
    summary: dict[str, Any] = {
        "kind": "train" if "model" in config else "search",
        "params": last["params"],
        "best_val_accuracy": last["best_val_accuracy"],
        "best_epoch": last["best_epoch"],
        "epochs": len(reports),
        "stopped_early": False,
        "wall_time_s": 1.5 * len(reports),
        "device": "cpu",
        "backend": "native",
        "versions": {"python": "3.11.9", "torch": "2.14.1", "torchvision": "0.29.1", "dartsrenet": "0.1.0"},
        "code_revision": None,
    }
    if "model" in config:
        genotype = config.get("genotype")
        summary.update(
            model=config["model"], cell=genotype or config["model"], variant=config.get("variant"),
            genotype=Genotype.from_string(genotype).to_dict() if genotype else None, genotype_string=genotype,
            dataset=config["dataset"], seed=config["seed"],
            test_accuracy=last.get("test_accuracy"), test_loss=last.get("test_loss"),
        )
    else:
        best = last["best_genotype"]
        summary.update(
            variant=config["variant"], dataset=config["dataset"], seed=config["seed"],
            genotype=Genotype.from_string(best).to_dict(), genotype_string=best, final_genotype_string=last["genotype"],
        )
    summary["config"] = run_config(config)
    return summary


def write_trial(
    experiment_dir: Path,
    index: int,
    config: Mapping[str, Any],
    reports: Sequence[Mapping[str, Any]],
    *,
    error: str | None = None,
    truncate_last: bool = False,
    trial_hex: str = "abc12",
    summary: Mapping[str, Any] | None = None,
    ray_lost_epochs: Sequence[int] = (),
) -> Path:
    """Write one trial folder (run folder + Ray's files) and return it.

    Args:
        experiment_dir: the experiment folder.
        index: the trial's index in the sweep (part of its name and id).
        config: the trial's config (``params.json``).
        reports: our metrics per report (``run/metrics.jsonl``); Ray's fields are added in
            Ray's files. ``run/summary.json`` is written when the last one is ``finished``.
        error: write ``error.txt`` whose last line is ``RuntimeError: <error>``.
        truncate_last: cut the last line of ``metrics.jsonl`` and ``result.json`` in half
            (a file being copied).
        trial_hex: Ray's experiment id part of trial ids.
        summary: fields that replace those of the written ``summary.json``.
        ray_lost_epochs: epochs whose reports are missing from Ray's ``result.json`` and
            ``progress.csv``, as after Ray retried a failed trial from its checkpoint.
    """
    trial_dir = experiment_dir / ray_trial_dirname(index, config, trial_hex)
    trial_dir.mkdir(parents=True)
    (trial_dir / "params.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    run = trial_dir / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(run_config(config), indent=2) + "\n")
    metrics_lines = [json.dumps(dict(metrics)) for metrics in reports]
    if truncate_last and metrics_lines:
        metrics_lines[-1] = metrics_lines[-1][: len(metrics_lines[-1]) // 2]
    (run / "metrics.jsonl").write_text("".join(line + "\n" for line in metrics_lines))
    if reports and reports[-1].get("finished") and not truncate_last:
        (run / "summary.json").write_text(json.dumps({**run_summary(config, reports), **(summary or {})}, indent=2))
    trial_id = f"{trial_hex}_{index:05d}"
    lines, rows = [], []
    for iteration, metrics in enumerate(reports, start=1):
        checkpoint = f"checkpoint_{iteration - 1:06d}"
        (trial_dir / checkpoint).mkdir()
        (trial_dir / checkpoint / "checkpoint.pt").write_bytes(b"fake")
        if metrics["epoch"] in ray_lost_epochs:
            continue
        ray_fields = {
            "timestamp": 1767322800 + iteration,
            "checkpoint_dir_name": checkpoint,
            "should_checkpoint": True,
            "done": False,
            "training_iteration": iteration,
            "trial_id": trial_id,
            "date": DATE,
            "time_this_iter_s": 1.5,
            "time_total_s": 1.5 * iteration,
            "pid": 4242,
            "hostname": "vm",
            "node_ip": "192.0.2.2",
        }
        record = {**metrics, **ray_fields, "config": dict(config), "time_since_restore": 1.5 * iteration,
                  "iterations_since_restore": iteration}
        lines.append(json.dumps(record))
        rows.append({key: value for key, value in record.items() if key != "config"})
    text = "".join(line + "\n" for line in lines)
    if truncate_last and lines:
        text = "".join(line + "\n" for line in lines[:-1]) + lines[-1][: len(lines[-1]) // 2]
    (trial_dir / "result.json").write_text(text)
    if rows:
        frame = pd.DataFrame(rows)
        for column in frame:
            frame[column] = frame[column].map(lambda value: str(value) if isinstance(value, list) else value)
        frame.to_csv(trial_dir / "progress.csv", index=False)
    else:
        (trial_dir / "progress.csv").write_text("")
    if error is not None:
        (trial_dir / "error.txt").write_text(
            f"Failure # 1 (occurred at {DATE})\n"
            "\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=4242, ip=192.0.2.2, repr=trainable)\n"
            '  File "dartsrenet/train.py", line 1, in run_train\n'
            f"RuntimeError: {error}\n"
        )
    return trial_dir


# --- search experiment ---------------------------------------------------------------

SEARCH_DATASET = "digits"
SEARCH_VARIANTS = ("vanilla", "sigmoid_weighting", "directional_weight_sharing")
SEARCH_SEEDS = (0, 1, 2)

SEARCH_VAL_ACCURACIES: dict[tuple[str, int], list[float]] = {
    ("vanilla", 0): [0.50, 0.80, 0.75, 0.78],
    ("vanilla", 1): [0.60, 0.70, 0.85, 0.84],
    ("vanilla", 2): [0.55, 0.85, 0.83, 0.80],  # ties seed 1 → seed 1 is selected
    ("sigmoid_weighting", 0): [0.40],  # fails after one epoch
    ("sigmoid_weighting", 1): [0.50, 0.65, 0.70, 0.69],
    ("directional_weight_sharing", 0): [0.30, 0.90, 0.95],  # unfinished; last line truncated
    ("directional_weight_sharing", 1): [0.45, 0.60, 0.58, 0.55],
}
"""val_cs accuracy per epoch of every search trial that has a folder (4 epochs = finished).
sigmoid_weighting seed 2 is planned but never started."""

SEARCH_EPOCHS = 4
SEARCH_EXPECTED_SELECTION = {
    "vanilla": (1, 85.0),
    "sigmoid_weighting": (1, 70.0),
    "directional_weight_sharing": (1, 60.0),
}
"""Variant → (selected seed, its best val_cs accuracy in %)."""


def search_alpha_logits(variant: str, seed: int, epoch: int) -> np.ndarray:
    """α logits (36 × 5) drifting towards the paper's cell of ``variant`` as epochs pass."""
    rng = np.random.default_rng(1000 * SEARCH_VARIANTS.index(variant) + 10 * seed + epoch)
    logits = 0.3 * rng.standard_normal((num_edges(), len(PRIMITIVES)))
    for node, (activation, predecessor) in enumerate(PAPER_GENOTYPES[variant].recurrent, start=1):
        logits[edge_index(node, predecessor), PRIMITIVES.index(activation)] += 0.8 * epoch
    return logits


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax."""
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def search_reports(variant: str, seed: int, accuracies: Sequence[float], epochs: int = SEARCH_EPOCHS) -> list[dict]:
    """Reports of one search trial, with the metrics of docs/design.md ("The report callback")."""
    reports = []
    best_accuracy, best_epoch, best_genotype = -1.0, 0, ""
    for epoch, accuracy in enumerate(accuracies, start=1):
        logits = search_alpha_logits(variant, seed, epoch)
        genotype = derive_genotype(logits).to_string()
        if accuracy > best_accuracy:
            best_accuracy, best_epoch, best_genotype = accuracy, epoch, genotype
        reports.append(
            {
                "epoch": epoch,
                "train_loss": 1.0 / epoch,
                "train_accuracy": min(accuracy + 0.05, 1.0),
                "val_loss": 1.2 / epoch,
                "val_accuracy": accuracy,
                "best_val_accuracy": best_accuracy,
                "best_epoch": best_epoch,
                "lr": 0.1,
                "params": 1_234_567,
                "epoch_time_s": 1.5,
                "finished": epoch == epochs,
                "genotype": genotype,
                "best_genotype": best_genotype,
                "alpha": softmax(logits).round(6).tolist(),
            }
        )
    return reports


def search_config(variant: str, seed: int) -> dict[str, Any]:
    """A search trial's config (docs/design.md)."""
    return {"variant": variant, "seed": seed, "dataset": SEARCH_DATASET, "preset": "demo",
            "overrides": {"epochs": SEARCH_EPOCHS}}


def make_search_experiment(
    root: Path, name: str = "search_digits_demo", created: Any = "2026-01-02T03:04:05+00:00"
) -> Path:
    """A search experiment with finished, tied, failed, unfinished and missing trials."""
    experiment_dir = root / name
    planned = [search_config(variant, seed) for variant in SEARCH_VARIANTS for seed in SEARCH_SEEDS]
    write_sweep(experiment_dir, "search", planned, created, dataset=SEARCH_DATASET, preset="demo")
    write_ray_bookkeeping(experiment_dir)
    for index, config in enumerate(planned):
        key = (config["variant"], config["seed"])
        if key not in SEARCH_VAL_ACCURACIES:
            continue  # missing: planned, never started
        reports = search_reports(*key, SEARCH_VAL_ACCURACIES[key])
        error = "CUDA out of memory (simulated)" if key == ("sigmoid_weighting", 0) else None
        write_trial(
            experiment_dir,
            index,
            config,
            reports,
            error=error,
            truncate_last=key == ("directional_weight_sharing", 0),
        )
    # selected_genotypes.json as the sweep writes it: selected from the run folders
    seeds_by_variant = results.seeds_from_run_folders(results.trial_folders(experiment_dir), planned)
    document = results.selection_document(SEARCH_DATASET, str(experiment_dir), seeds_by_variant, log=lambda line: None)
    results.write_json(experiment_dir / results.SELECTION_FILE, document)
    return experiment_dir


# --- evaluation experiment -----------------------------------------------------------

EVAL_TRIALS: list[dict[str, Any]] = [
    # dataset, model, seed, test accuracy (None: no final report), params, status
    {"dataset": "cifar10", "model": "vanilla", "seed": 0, "test": 0.90, "params": 6_812_000, "status": "finished"},
    {"dataset": "cifar10", "model": "vanilla", "seed": 1, "test": 0.91, "params": 6_812_000, "status": "finished"},
    {"dataset": "cifar10", "model": "vanilla", "seed": 2, "test": 0.92, "params": 6_812_000, "status": "finished"},
    {"dataset": "cifar10", "model": "vanilla", "seed": 3, "test": None, "params": 6_812_000, "status": "failed"},
    {"dataset": "cifar10", "model": "vanilla", "seed": 4, "test": None, "params": None, "status": "missing"},
    {"dataset": "cifar10", "model": "gru", "seed": 0, "test": 0.75, "params": 4_790_000, "status": "finished"},
    {"dataset": "cifar10", "model": "gru", "seed": 1, "test": None, "params": 4_790_000, "status": "unfinished"},
    {"dataset": "svhn", "model": "directional_weight_sharing", "seed": 0, "test": 0.97, "params": 4_012_000,
     "status": "finished"},
    {"dataset": "svhn", "model": "directional_weight_sharing", "seed": 1, "test": 0.96, "params": 4_012_000,
     "status": "finished"},
    {"dataset": "digits", "model": "lstm", "seed": 0, "test": 0.50, "params": 5_990_000, "status": "finished"},
]
"""The evaluation trials of :func:`make_eval_experiment` and what became of them."""


def eval_config(dataset: str, model: str, seed: int) -> dict[str, Any]:
    """An evaluation trial's config (docs/design.md)."""
    darts = model in SEARCH_VARIANTS
    return {
        "model": model,
        "genotype": PAPER_GENOTYPES[model].to_string() if darts else None,
        "variant": model if darts else None,
        "dataset": dataset,
        "seed": seed,
        "preset": "paper",
        "overrides": {},
    }


def eval_reports(test_accuracy: float | None, params: int, epochs: int = 3, finished: bool = True) -> list[dict]:
    """Reports of one evaluation trial; the last has the test metrics when ``finished``."""
    reports = []
    for epoch in range(1, epochs + 1):
        report = {
            "epoch": epoch,
            "train_loss": 1.0 / epoch,
            "train_accuracy": 0.3 * epoch,
            "val_loss": 1.1 / epoch,
            "val_accuracy": 0.28 * epoch,
            "best_val_accuracy": 0.28 * epoch,
            "best_epoch": epoch,
            "lr": 0.1,
            "params": params,
            "epoch_time_s": 1.5,
            "finished": finished and epoch == epochs,
        }
        if finished and epoch == epochs:
            report.update(test_accuracy=test_accuracy, test_loss=0.4)
        reports.append(report)
    return reports


def make_eval_experiment(
    root: Path, name: str = "eval_paper", created: Any = 1767330000.0, trials: Sequence[Mapping[str, Any]] = EVAL_TRIALS
) -> Path:
    """An evaluation experiment with finished, failed, unfinished and missing trials."""
    experiment_dir = root / name
    planned = [eval_config(trial["dataset"], trial["model"], trial["seed"]) for trial in trials]
    write_sweep(experiment_dir, "eval", planned, created)
    write_ray_bookkeeping(experiment_dir)
    for index, (trial, config) in enumerate(zip(trials, planned, strict=True)):
        status = trial["status"]
        if status == "missing":
            continue
        if status == "finished":
            reports = eval_reports(trial["test"], trial["params"])
        else:  # failed or unfinished: two epochs, no final report
            reports = eval_reports(None, trial["params"], epochs=2, finished=False)
        write_trial(experiment_dir, index, config, reports, error="loss is NaN" if status == "failed" else None,
                    trial_hex="def34")
    return experiment_dir


def write_search_seed(
    experiment_dir: Path, index: int, variant: str, seed: int, accuracies: Sequence[float], *,
    error: str | None = None, summary: Mapping[str, Any] | None = None,
) -> Path:
    """One search trial folder whose val_cs accuracy per epoch is ``accuracies`` (it
    finishes when they cover :data:`SEARCH_EPOCHS`); ``summary`` replaces fields of its
    ``summary.json``, ``error`` writes Ray's ``error.txt``."""
    config = search_config(variant, seed)
    return write_trial(experiment_dir, index, config, search_reports(variant, seed, accuracies),
                       error=error, summary=summary)

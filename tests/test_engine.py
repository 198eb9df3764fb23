"""The training engine: search and evaluation runs, resume, determinism, run folders, bad input."""

import io
import json
import math
import subprocess
import sys

import pytest
import torch

from dartsrenet.kernels import native_build as native
from dartsrenet.cli import main
from dartsrenet.config import PRESETS, resolve_config
from dartsrenet.engine import RunEngine
from dartsrenet.data import DatasetNotFoundError, make_search_loaders, make_train_loaders
from dartsrenet.genotypes import Genotype, GenotypeError
from dartsrenet.networks import build_eval_model, build_search_model
from dartsrenet.registry import UnknownNameError
from dartsrenet.runs import CheckpointError, ConfigMismatchError, NonFiniteLossError, NonFiniteOutputError
from dartsrenet.search import make_optimizers, run_search, search_epoch
from dartsrenet.train import run_train
from dartsrenet.training import StepProgress, evaluate, validation_metrics
from tests.ci import missing
from tests.recorders import MatrixProductDtypes, native_kernel_calls

TINY = {"dataset": "digits", "channels": 4, "epochs": 3, "limit": 96, "batch_size": 16, "device": "cpu"}


def search_config(tmp_path, name="search", **overrides):
    return resolve_config("search", "paper", {**TINY, "out": str(tmp_path / name), **overrides})


def train_config(tmp_path, name="train", **overrides):
    return resolve_config("train", "paper", {**TINY, "cell": "vanilla", "out": str(tmp_path / name), **overrides})


def without_timing(history):
    return [{k: v for k, v in m.items() if k != "epoch_time_s"} for m in history]


def read_metrics(config):
    with open(f"{config.out}/metrics.jsonl") as handle:
        return without_timing([json.loads(line) for line in handle])


class StopAfter(Exception):
    pass


def stop_after(epoch):
    """A report callback that 'kills' the run after ``epoch``'s checkpoint is written."""

    def report(metrics, checkpoint_dir):
        assert (checkpoint_dir / "checkpoint.pt").is_file()
        if metrics["epoch"] == epoch:
            raise StopAfter

    return report


# --- the first-order DARTS step ------------------------------------------------------
def test_search_epoch_updates_alpha_only_through_its_optimiser(tmp_path):
    torch.manual_seed(0)
    train_cs, val_cs, info = make_search_loaders("digits", batch_size=16, limit=64)
    model = build_search_model("vanilla", channels=4)
    config = search_config(tmp_path)
    weight_optimizer, arch_optimizer = make_optimizers(model, config)
    alpha = model.alpha
    weights = model.weight_parameters()
    changes = {"arch": [], "weights": []}
    snapshot = {}

    def before(name):
        def hook(optimizer, args, kwargs):
            snapshot[name] = (alpha.detach().clone(), [w.detach().clone() for w in weights])
        return hook

    def after(name):
        def hook(optimizer, args, kwargs):
            alpha_before, weights_before = snapshot[name]
            alpha_changed = not torch.equal(alpha_before, alpha)
            weights_changed = any(not torch.equal(b, w) for b, w in zip(weights_before, weights, strict=True))
            changes[name].append((alpha_changed, weights_changed))
        return hook

    arch_optimizer.register_step_pre_hook(before("arch"))
    arch_optimizer.register_step_post_hook(after("arch"))
    weight_optimizer.register_step_pre_hook(before("weights"))
    weight_optimizer.register_step_post_hook(after("weights"))
    alpha_start = alpha.detach().clone()
    weights_start = [w.detach().clone() for w in weights]
    last_state = {}

    # Between optimiser steps nothing may change: check at every pre-hook against the last post-hook.
    def track(optimizer, args, kwargs):
        if last_state:
            assert torch.equal(last_state["alpha"], alpha)
            assert all(torch.equal(a, b) for a, b in zip(last_state["weights"], weights, strict=True))

    def remember(optimizer, args, kwargs):
        last_state["alpha"] = alpha.detach().clone()
        last_state["weights"] = [w.detach().clone() for w in weights]

    for optimizer in (arch_optimizer, weight_optimizer):
        optimizer.register_step_pre_hook(track)
        optimizer.register_step_post_hook(remember)

    search_epoch(model, train_cs, val_cs, weight_optimizer, arch_optimizer, torch.device("cpu"), grad_clip=1.0)
    steps = len(changes["arch"])
    assert steps == len(train_cs) and steps >= 2
    assert changes["arch"] == [(True, False)] * steps  # α steps move α only
    assert changes["weights"] == [(False, True)] * steps  # weight steps move weights only
    assert not torch.equal(alpha_start, alpha)
    assert all(not torch.equal(a, b) for a, b in zip(weights_start, weights, strict=True) if b.requires_grad)
    assert {id(p) for group in arch_optimizer.param_groups for p in group["params"]} == {id(alpha)}


# --- run folders ------------------------------------------------------------------
def test_search_run_folder(tmp_path):
    config = search_config(tmp_path)
    reports = []
    summary = run_search(config, report=lambda m, d: reports.append((m, d)), log=None)
    out = tmp_path / "search"
    for name in ["config.json", "metrics.jsonl", "checkpoint/checkpoint.pt", "best.pt", "genotype.json",
                 "alpha_history.json", "summary.json"]:
        assert (out / name).is_file(), name
    assert [m["epoch"] for m, _ in reports] == [1, 2, 3]
    assert [m["finished"] for m, _ in reports] == [False, False, True]
    metrics = reports[-1][0]
    assert len(metrics["alpha"]) == 36 and all(abs(sum(row) - 1) < 1e-5 for row in metrics["alpha"])
    assert Genotype.from_string(metrics["genotype"]) and Genotype.from_string(metrics["best_genotype"])
    best = max(reports, key=lambda item: (item[0]["val_accuracy"], -item[0]["epoch"]))[0]
    assert summary["best_epoch"] == best["epoch"]
    assert Genotype.load(out / "genotype.json").to_string() == best["genotype"] == summary["genotype_string"]
    assert len(json.loads((out / "alpha_history.json").read_text())) == 3
    saved = json.loads((out / "summary.json").read_text())
    for key in ["params", "best_val_accuracy", "epochs", "wall_time_s", "device", "versions", "code_revision"]:
        assert key in saved
    assert saved["backend"] == ("native" if native.library() is not None else "eager")  # which code computed the cells
    assert 0 <= saved["best_val_accuracy"] <= 1 and saved["epochs"] == 3 and saved["device"] == "cpu"
    assert set(saved["versions"]) >= {"python", "torch", "torchvision", "dartsrenet"}


def test_train_run_folder_and_final_report(tmp_path):
    config = train_config(tmp_path, cell="gru")
    reports = []
    summary = run_train(config, report=lambda m, d: reports.append(m), log=None)
    assert "test_accuracy" in reports[-1] and all("test_accuracy" not in m for m in reports[:-1])
    assert 0 <= summary["test_accuracy"] <= 1 and 0 <= summary["best_val_accuracy"] <= 1
    assert summary["params"] > 0 and summary["model"] == "gru"
    assert (tmp_path / "train" / "best.pt").is_file()
    saved = json.loads((tmp_path / "train" / "config.json").read_text())
    assert saved["cell"] == "gru" and saved["channels"] == 4


# --- determinism and resume --------------------------------------------------------
def test_same_seed_same_metrics(tmp_path):
    first = train_config(tmp_path, "a", epochs=2)
    second = train_config(tmp_path, "b", epochs=2)
    run_train(first, log=None)
    run_train(second, log=None)
    assert read_metrics(first) == read_metrics(second)
    other = train_config(tmp_path, "c", epochs=2, seed=1)
    run_train(other, log=None)
    assert read_metrics(other) != read_metrics(first)


@pytest.mark.parametrize("kind", ["search", "train"])
def test_resume_equals_uninterrupted(tmp_path, kind):
    make, run = (search_config, run_search) if kind == "search" else (train_config, run_train)
    full = make(tmp_path, "full", epochs=3, variant="sigmoid_weighting") if kind == "search" else make(tmp_path, "full", epochs=3, cell="directional_weight_sharing")
    run(full, log=None)
    interrupted = make(tmp_path, "interrupted", **{k: v for k, v in vars(full).items() if k != "out"})
    with pytest.raises(StopAfter):
        run(interrupted, report=stop_after(2), log=None)
    assert not (tmp_path / "interrupted" / "summary.json").exists()
    logs = []
    summary = run(interrupted, log=logs.append)
    assert any("resumed" in line and "after epoch 2" in line for line in logs)
    assert read_metrics(interrupted) == read_metrics(full)
    full_summary = json.loads((tmp_path / "full" / "summary.json").read_text())
    for key in ["best_val_accuracy", "best_epoch", "epochs", "params", "test_accuracy", "genotype_string"]:
        assert summary.get(key) == full_summary.get(key), key
    # A finished run asked again does no more epochs.
    run(interrupted, report=lambda m, d: pytest.fail("a finished run must not train again"), log=None)


def test_resume_refuses_a_different_config(tmp_path):
    config = train_config(tmp_path, epochs=1, cell="gru")
    run_train(config, log=None)
    with pytest.raises(ConfigMismatchError, match="lr"):
        run_train(train_config(tmp_path, epochs=1, cell="gru", lr=0.5), log=None)


# --- bad input ---------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "overrides", "valid"),
    [
        ("search", {"dataset": "mnist"}, "cifar10"),
        ("search", {"variant": "vanila"}, "directional_weight_sharing"),
        ("train", {"dataset": "imagenet"}, "digits"),
        ("train", {"cell": "relu:0,swish:1,relu:2,relu:3,relu:4,relu:5,relu:6,relu:7"}, "sigmoid"),
    ],
)
def test_unknown_names_list_the_valid_ones(tmp_path, kind, overrides, valid):
    make, run = (search_config, run_search) if kind == "search" else (train_config, run_train)
    with pytest.raises(ValueError) as info:
        run(make(tmp_path, **overrides), log=None)
    assert valid in str(info.value)
    assert not (tmp_path / kind).exists()


def test_unknown_preset_and_field_list_the_valid_ones():
    with pytest.raises(UnknownNameError) as info:
        resolve_config("train", "papr")
    assert all(name in str(info.value) for name in PRESETS)
    with pytest.raises(UnknownNameError, match="valid fields: .*batch_size"):
        resolve_config("train", "paper", {"learning_rate": "0.1"})
    with pytest.raises(ValueError, match="epochs must be an integer"):
        resolve_config("train", "paper", {"epochs": "many"})


def test_malformed_genotype_file_names_file_and_problem(tmp_path):
    path = tmp_path / "cell.json"
    path.write_text('{"recurrent": [["relu", 0], ["relu", 5]]}')
    with pytest.raises(GenotypeError) as info:
        run_train(train_config(tmp_path, cell=str(path)), log=None)
    assert str(path) in str(info.value) and "8 nodes" in str(info.value)


def test_missing_dataset_offline_says_where_and_how(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        run_train(train_config(tmp_path, dataset="cifar10", data_root=str(tmp_path / "nowhere")), log=None)
    message = str(info.value)
    assert "cifar-10-batches-py" in message and "--download" in message


def test_corrupted_checkpoint_is_reported_and_nothing_is_overwritten(tmp_path):
    config = train_config(tmp_path, epochs=2, cell="gru")
    with pytest.raises(StopAfter):
        run_train(config, report=stop_after(1), log=None)
    out = tmp_path / "train"
    (out / "checkpoint" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    before = {path.name: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    with pytest.raises(CheckpointError) as info:
        run_train(config, log=None)
    assert "checkpoint.pt" in str(info.value) and "nothing was overwritten" in str(info.value)
    after = {path.name: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    assert after == before


def test_nan_loss_stops_with_a_clear_error(tmp_path):
    config = train_config(tmp_path, epochs=2, cell="gru", lr=1e12, grad_clip=0.0, weight_decay=0.0)
    with pytest.raises(NonFiniteLossError, match="loss became"):
        run_train(config, log=None)
    assert not (tmp_path / "train" / "summary.json").exists()
    assert not (tmp_path / "train" / "checkpoint").exists()


# --- command line --------------------------------------------------------------------
def test_cli_train_and_search(tmp_path):
    common = ["--preset", "demo", "--set", "channels=4", "--set", "limit=64", "--epochs", "1", "--device", "cpu"]
    result = subprocess.run(
        [sys.executable, "-m", "dartsrenet", "train", "--genotype", "directional_weight_sharing",
         "--out", str(tmp_path / "t"), *common],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "epoch   1/1" in result.stdout and "test accuracy" in result.stdout
    saved = json.loads((tmp_path / "t" / "config.json").read_text())
    assert saved["variant"] is None and saved["channels"] == 4 and saved["dataset"] == "digits"
    summary = json.loads((tmp_path / "t" / "summary.json").read_text())
    assert summary["variant"] == "directional_weight_sharing"
    result = subprocess.run(
        [sys.executable, "-m", "dartsrenet", "search", "--variant", "nope", "--out", str(tmp_path / "s"), *common],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2 and "valid variants" in result.stderr and "Traceback" not in result.stderr


# --- selection, early stopping, non-finite numbers ---------------------------------------
def strict_json(text):
    """Parse JSON refusing NaN and infinities, as strict readers do."""
    def refuse(constant):
        raise ValueError(f"non-standard JSON constant {constant}")
    return json.loads(text, parse_constant=refuse)


def test_early_stopping_after_patience_epochs_without_improvement(tmp_path):
    config = train_config(tmp_path, cell="gru", epochs=5, patience=1)
    summary = run_train(config, log=None)
    history = read_metrics(config)
    assert summary["stopped_early"] and summary["epochs"] == len(history) < config.epochs
    assert [m["improved"] for m in history] == [True] * (len(history) - 1) + [False]
    assert history[-1]["finished"] and history[-1]["stopped_early"] and "test_accuracy" in history[-1]
    assert not any(m["finished"] for m in history[:-1])
    # Asked again, the stopped run does no more epochs.
    run_train(config, report=lambda m, d: pytest.fail("a stopped run must not train again"), log=None)


def test_test_metrics_come_from_the_selected_epochs_weights(tmp_path):
    config = train_config(tmp_path, cell="gru", epochs=3, patience=None)
    summary = run_train(config, log=None)
    assert summary["best_epoch"] < config.epochs, "this test needs a run whose last epoch is not the selected one"
    _, _, test_loader, info = make_train_loaders(
        "digits", batch_size=config.batch_size, seed=config.seed, val_fraction=config.val_fraction,
        cutout=config.cutout, limit=config.limit,
    )
    model = build_eval_model("gru", channels=config.channels, head_init_range=info.head_init_range)
    model.load_state_dict(torch.load(tmp_path / "train" / "best.pt", weights_only=True))
    assert evaluate(model, test_loader, torch.device("cpu")) == (summary["test_loss"], summary["test_accuracy"])
    model.load_state_dict(torch.load(tmp_path / "train" / "checkpoint" / "checkpoint.pt", weights_only=True)["model"])
    assert evaluate(model, test_loader, torch.device("cpu"))[0] != summary["test_loss"]  # the last epoch's differ


@pytest.mark.parametrize("arch_order", [1, 2], ids=["first_order", "second_order"])
def test_nan_in_the_alpha_step_is_caught(tmp_path, arch_order):
    torch.manual_seed(0)
    train_cs, val_cs, _ = make_search_loaders("digits", batch_size=16, limit=64)
    model = build_search_model("vanilla", channels=4)
    weight_optimizer, arch_optimizer = make_optimizers(model, search_config(tmp_path))
    model.alpha.register_hook(lambda grad: torch.full_like(grad, float("nan")))  # a finite loss, a NaN gradient
    with pytest.raises(NonFiniteLossError, match="α became non-finite after search α step 0"):
        search_epoch(model, train_cs, val_cs, weight_optimizer, arch_optimizer, torch.device("cpu"), arch_order=arch_order)


def _driven_epoch(driver, model, val_loader, epoch):
    metrics = {
        "epoch": epoch, "train_loss": 1.0, "train_accuracy": 0.5,
        **validation_metrics(model, val_loader, torch.device("cpu")), "lr": 0.1, "params": 1, "epoch_time_s": 0.0,
    }
    driver.end_epoch(metrics)
    driver.commit_epoch(metrics)
    return metrics


def test_non_finite_validation_is_recorded_as_null_and_never_selected(tmp_path):
    config = train_config(tmp_path, cell="gru", epochs=3, patience=None)
    _, val_loader, _, _ = make_train_loaders("digits", batch_size=16, limit=96)
    torch.manual_seed(0)
    model = build_eval_model("gru", channels=4)
    logs = []
    driver = RunEngine("train", config, {"model": model}, log=logs.append)
    driver.start(torch.device("cpu"))
    bias = model.classifier.bias.detach().clone()
    first = _driven_epoch(driver, model, val_loader, 1)
    with torch.no_grad():
        model.classifier.bias[0] = float("nan")  # weights that diverged during epoch 2
    second = _driven_epoch(driver, model, val_loader, 2)
    with torch.no_grad():
        model.classifier.bias.copy_(bias)
    _driven_epoch(driver, model, val_loader, 3)
    assert first["val_finite"] and first["improved"]
    assert second["val_finite"] is False and second["val_loss"] is None and second["val_accuracy"] is None
    assert not second["improved"] and driver.best_epoch == 1
    assert "NOT FINITE (epoch not eligible for selection)" in logs[1]
    assert torch.isfinite(driver.best_weights["classifier.bias"]).all()
    lines = [strict_json(line) for line in (tmp_path / "train" / "metrics.jsonl").read_text().splitlines()]
    assert lines[1]["val_loss"] is None and lines[1]["val_finite"] is False and lines[1]["best_epoch"] == 1


def test_no_selectable_epoch_is_an_error_not_a_result(tmp_path):
    config = train_config(tmp_path, cell="gru", epochs=1, patience=None)
    _, val_loader, _, _ = make_train_loaders("digits", batch_size=16, limit=96)
    model = build_eval_model("gru", channels=4)
    with torch.no_grad():
        model.classifier.weight.fill_(float("inf"))
    driver = RunEngine("train", config, {"model": model}, log=None)
    driver.start(torch.device("cpu"))
    metrics = _driven_epoch(driver, model, val_loader, 1)
    assert metrics["best_epoch"] == 0 and metrics["best_val_accuracy"] is None
    with pytest.raises(NonFiniteOutputError, match="had finite validation outputs, so none can be selected"):
        driver.require_selected_epoch()
    with pytest.raises(NonFiniteOutputError, match="outputs on the test set are not finite"):
        evaluate(model, val_loader, torch.device("cpu"), where="test set")


def test_cli_nan_loss_is_one_line_without_traceback(tmp_path, capsys):
    out = tmp_path / "run"
    status = main([
        "train", "--cell", "gru", "--preset", "demo", "--device", "cpu", "--out", str(out), "--epochs", "2",
        "--set", "channels=4", "--set", "limit=96", "--set", "batch_size=16", "--set", "lr=1e12",
        "--set", "grad_clip=0", "--set", "weight_decay=0",
    ])
    err = capsys.readouterr().err
    assert status == 2 and err.startswith("error: loss became nan at epoch 1") and err.count("\n") == 1, err
    assert not (out / "summary.json").exists()


# --- progress ---------------------------------------------------------------------------
class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_a_bar_on_a_terminal_and_plain_lines_otherwise():
    terminal = Terminal()
    with StepProgress("[train] epoch 1/3", 4, log=lambda line: pytest.fail("no plain lines on a terminal"), stream=terminal) as progress:
        progress.bar.mininterval = 0  # redraw at every step (tqdm's default: at most every 0.1 s), not by the clock
        for _ in range(4):
            progress(16)
    drawn = terminal.getvalue()
    assert "[train] epoch 1/3" in drawn and "4/4" in drawn and "images/s" in drawn

    lines = []
    with StepProgress("[search] epoch 2/9", 4, log=lines.append, stream=io.StringIO(), interval_s=0.0) as progress:
        for _ in range(4):
            progress(32)
    # A line after every step but the last (the epoch line follows it).
    assert [line.split(":", 1)[1].split(",")[0] for line in lines] == [" step 1/4 (25%)", " step 2/4 (50%)", " step 3/4 (75%)"]
    assert all(line.startswith("[search] epoch 2/9: ") and "images/s, ETA 0:00:0" in line for line in lines)

    quiet = Terminal()
    with StepProgress("[train] epoch 1/3", 4, log=None, stream=quiet) as progress:
        progress(16)
    assert quiet.getvalue() == ""


# --- the compute backend and the precision options ------------------------------------
def test_the_chosen_backend_runs_its_kernels_and_equals_eager_to_round_off(tmp_path, monkeypatch):
    """``--set backend=…`` is chosen once for the model and recorded in summary.json; the
    native backend's C kernels compute the cells (forward and backward), eager's none; and
    the two runs are the same maths: over an epoch (6 steps, validation and test included)
    every loss agrees to float32 round-off, and so do the trained weights."""
    if native.library() is None:
        missing(f"the fused C kernels ({native.unavailable_reason()})")
    calls = native_kernel_calls(monkeypatch)
    runs, kernels = {}, {}
    for backend in ("eager", "native"):
        calls.clear()
        runs[backend] = run_train(train_config(tmp_path, backend, epochs=1, backend=backend), log=None)
        kernels[backend] = dict(calls)
        summary = runs[backend]
        assert summary["backend"] == backend and summary["config"]["backend"] == backend
        assert json.loads((tmp_path / backend / "summary.json").read_text())["backend"] == backend
    assert kernels["eager"] == {}
    assert kernels["native"].get("node_forward", 0) > 0 and kernels["native"].get("node_backward", 0) > 0, kernels

    def losses(backend):
        return [{key: value for key, value in line.items() if "loss" in key}
                for line in read_metrics(train_config(tmp_path, backend))]

    eager, fused = losses("eager"), losses("native")
    assert [sorted(line) for line in eager] == [sorted(line) for line in fused] and len(eager) == 1
    for eager_line, fused_line in zip(eager, fused, strict=True):
        assert fused_line == pytest.approx(eager_line, rel=2e-4), (eager_line, fused_line)
    assert runs["native"]["test_loss"] == pytest.approx(runs["eager"]["test_loss"], rel=2e-4)
    eager_weights, fused_weights = (torch.load(tmp_path / b / "best.pt", weights_only=True) for b in ("eager", "native"))
    torch.testing.assert_close(fused_weights, eager_weights, rtol=1e-4, atol=1e-5)


def test_a_backend_that_cannot_run_is_refused_before_any_work(tmp_path):
    config = train_config(tmp_path, "triton", backend="triton")
    with pytest.raises(ValueError, match="backend 'triton' runs on CUDA devices"):
        run_train(config, log=None)
    assert not (tmp_path / "triton").exists()
    with pytest.raises(ValueError, match="backend='eager' is ignored by the gru baseline"):
        train_config(tmp_path, "gru", cell="gru", backend="eager")


def test_bf16_autocast_option_runs_every_matmul_in_bf16(tmp_path):
    """``autocast=bf16``: every matrix product of the run — convolutions, projections, the
    classifier, forward and backward, training and evaluation — takes bf16 inputs. The run's
    metrics stay finite."""
    with MatrixProductDtypes() as products:
        summary = run_train(train_config(tmp_path, "bf16", epochs=1, autocast="bf16"), log=None)
    assert summary["config"]["autocast"] == "bf16"
    assert all(math.isfinite(summary[key]) for key in ("test_loss", "test_accuracy", "best_val_accuracy"))
    assert products.dtypes() == {torch.bfloat16}, products.seen
    ops = {op for op, _ in products.seen}
    assert {"aten.convolution.default", "aten.convolution_backward.default", "aten.addmm.default"} <= ops, ops

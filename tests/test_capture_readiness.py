"""CUDA-graph readiness checked on the CPU (dartsrenet/steps.py): no host syncs in a step, loud capture failures, the run's device.

A captured step may not read a tensor back to the host nor copy a host list to the
device; :class:`~dartsrenet.steps.HostSyncDetector` turns either into an error on any
device, so the cells' steps are checked here without a GPU, with the settings that once
synced (a primitive subset, BatchNorm momentum None). A failed capture is exercised through
:meth:`GraphedStep.abandon`, the code path a failing ``torch.cuda.graph`` takes.
"""

import pytest
import torch
import torch.nn.functional as F

from dartsrenet.kernels import native_build as native
from dartsrenet.cells import ArchitectureWeights, DartsCell, DartsSearchCell
from dartsrenet.cells.norms import DirectionalBatchNorm
from dartsrenet.config import ConfigError, config_from_dict
from dartsrenet.genotypes import Genotype
from dartsrenet.steps import (
    CaptureReport, EpochTotals, GraphedStep, HostSyncDetector, HostSyncError, root_cause, select_device,
)  # fmt: skip

BACKENDS = ["eager"] + (["native"] if native.library() is not None else [])


def test_the_detector_refuses_item_int_branches_and_host_lists():
    value = torch.ones(3)
    for what in (lambda: value.sum().item(), lambda: int(value.sum()), lambda: bool(value.sum() > 0),
                 lambda: torch.tensor([0, 2])):  # fmt: skip
        with HostSyncDetector(), pytest.raises(HostSyncError, match="a captured step cannot do this"):
            what()
    with HostSyncDetector():  # device-side work is fine
        torch.where(value > 0, value, -value).add_(1).cumsum(0)


def set_momentum_none(module):
    for norm in module.modules():
        if isinstance(norm, DirectionalBatchNorm):
            norm.momentum = None


def cell_step(cell, optimizer, totals, x, target):
    optimizer.zero_grad(set_to_none=False)
    out = cell.sweep(x)
    loss = F.mse_loss(out, target)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(list(cell.parameters()), 1.0)
    optimizer.step()
    totals.add(loss)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("kind", ["search", "derived"])
def test_a_cell_train_step_makes_no_host_sync(kind, backend):
    """Forward, backward, clipping, an SGD step and the epoch totals of a search cell over a
    primitive subset (the kernels' columns come from a buffer, not a host list) and of a derived
    cell, with BatchNorm momentum None (the cumulative factor is computed on the device): after
    warm-up (new BatchNorm slots, optimiser state) nothing reads back or copies from the host."""
    torch.manual_seed(0)
    if kind == "search":
        cell = DartsSearchCell(5, 4, ArchitectureWeights(primitives=("none", "tanh", "identity")), "vanilla")
    else:
        genotype = Genotype.from_string("relu:0,tanh:1,identity:1,sigmoid:3,relu:2,tanh:4,sigmoid:5,identity:7@2,5,7,8")
        cell = DartsCell(5, 4, genotype, "vanilla")
    cell.use_backend(backend)
    set_momentum_none(cell)
    optimizer = torch.optim.SGD(cell.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    totals = EpochTotals(torch.device("cpu"), "training")
    x, target = torch.randn(3, 4, 5), torch.randn(3, 4, 8)
    for _ in range(2):  # warm-up
        cell_step(cell, optimizer, totals, x, target)
    counted = [int(norm.num_batches_tracked) for norm in cell.modules() if isinstance(norm, DirectionalBatchNorm)]
    with HostSyncDetector():
        cell_step(cell, optimizer, totals, x, target)
    after = [int(norm.num_batches_tracked) for norm in cell.modules() if isinstance(norm, DirectionalBatchNorm)]
    assert all(b > a for a, b in zip(counted, after, strict=True))


def test_momentum_none_is_the_cumulative_average_of_batch_statistics():
    """With momentum None a slot's running mean and (biased) variance are the plain averages of its
    batches' statistics, as nn.BatchNorm1d's cumulative average, computed on the device."""
    norm = DirectionalBatchNorm(3, affine=False)
    norm.momentum = None
    torch.manual_seed(1)
    batches = [torch.randn(2, 6, 3, dtype=torch.float64) * (k + 1) + k for k in range(4)]
    norm.double()
    for batch in batches:
        norm(batch, slot=0)
    flats = [batch.transpose(0, 1).reshape(6, -1) for batch in batches]
    torch.testing.assert_close(norm.running_mean[0], torch.stack([f.mean(0) for f in flats]).mean(0))
    torch.testing.assert_close(norm.running_var[0], torch.stack([f.var(0, unbiased=False) for f in flats]).mean(0))
    assert int(norm.num_batches_tracked) == 4


def failing_capture(step):
    """What a capture failure looks like: the real error, then a secondary one raised while
    unwinding (as CUDA reports them), handed to the step as ``_record`` does."""
    try:
        try:
            raise ValueError("the real problem: a host sync in the step")
        except ValueError:
            raise RuntimeError("operation not permitted when stream is capturing")  # noqa: B904
    except RuntimeError as error:
        step.abandon(error)


def test_a_failed_capture_warns_with_its_root_cause_and_is_recorded():
    report = CaptureReport(mode=True)
    calls = []
    step = GraphedStep(lambda x: calls.append(x), capture=True, report=report)
    with pytest.warns(UserWarning, match="capture failed.*ValueError: the real problem: a host sync in the step"):
        failing_capture(step)
    assert step.failed and report.abandoned.startswith("ValueError: the real problem")
    later = GraphedStep(lambda x: calls.append(x), capture=True, report=report)  # the next epoch's step
    assert not later.active_for([torch.ones(1)])  # abandoned for the whole run
    later(torch.ones(1))
    assert report.as_dict() == {
        "mode": True, "graphs": 0, "replayed_steps": 0, "eager_steps": 1, "abandoned": report.abandoned
    }


def test_strict_capture_raises_the_first_error():
    step = GraphedStep(lambda x: None, capture="strict")
    with pytest.raises(ValueError, match="the real problem: a host sync in the step"):
        failing_capture(step)
    assert step.report.abandoned is None


def test_the_root_cause_is_the_first_error_of_the_chain():
    try:
        try:
            raise KeyError("first")
        except KeyError as first:
            raise RuntimeError("second") from first
    except RuntimeError as error:
        assert isinstance(root_cause(error), KeyError)


def test_capture_setting_strict_is_a_config_value_and_others_are_refused():
    assert config_from_dict("search", {"capture": "strict"}).capture == "strict"
    assert config_from_dict("train", {"capture": "false"}).capture is False
    with pytest.raises((ConfigError, ValueError), match="capture"):
        config_from_dict("search", {"capture": "sometimes"})
    with pytest.raises(ValueError, match="capture must be one of False, True, 'strict', got 'sometimes'"):
        GraphedStep(lambda: None, capture="sometimes")


def test_the_run_selects_its_cuda_device_once(monkeypatch):
    """select_device makes the model's CUDA device current (Triton launches and streams follow it);
    on other devices it does nothing."""
    chosen = []
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    select_device(torch.device("cuda:1"))
    select_device(torch.device("cpu"))
    assert chosen == [torch.device("cuda:1")]


def test_summary_records_what_capture_did(tmp_path):
    """summary.json says whether steps were replayed and why capture was abandoned (on the CPU:
    every step eager, nothing abandoned)."""
    from dartsrenet.config import resolve_config
    from dartsrenet.search import run_search

    config = resolve_config("search", "paper", {
        "dataset": "digits", "channels": 4, "epochs": 1, "limit": 32, "batch_size": 16, "device": "cpu",
        "capture": "strict", "out": str(tmp_path / "search"),
    })  # fmt: skip
    summary = run_search(config, log=None)
    assert summary["capture"] == {"mode": "strict", "graphs": 0, "replayed_steps": 0, "eager_steps": 1, "abandoned": None}
    validation = summary["validation_capture"]  # the validation forward's own graph and report
    assert validation["mode"] == "strict" and validation["replayed_steps"] == 0 and validation["eager_steps"] >= 1


def test_a_tensor_learning_rate_filled_by_the_schedule_gives_the_float_ones_results():
    """learning_rates_on_device: the schedule fills the tensor in place (a captured step reads it
    each replay) and SGD's fused kernel reads it; the weights follow the float-lr run."""
    from dartsrenet.steps import learning_rates_on_device
    from dartsrenet.training import cosine_schedule

    def run(on_device):
        torch.manual_seed(3)
        model = torch.nn.Linear(6, 3)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.7, weight_decay=3e-4)
        schedule = cosine_schedule(optimizer, 4, 0.001)
        if on_device:
            learning_rates_on_device(optimizer, torch.device("cpu"))
            lr = optimizer.param_groups[0]["lr"]
        for epoch in range(4):
            for _ in range(3):
                optimizer.zero_grad(set_to_none=False)
                F.cross_entropy(model(torch.randn(5, 6)), torch.randint(0, 3, (5,))).backward()
                optimizer.step()
            schedule.step()
        if on_device:
            assert optimizer.param_groups[0]["lr"] is lr  # the same tensor, filled in place
        return model.weight.detach(), float(optimizer.param_groups[0]["lr"])

    (eager_weight, eager_lr), (weight, lr) = run(False), run(True)
    torch.testing.assert_close(weight, eager_weight)
    assert lr == pytest.approx(eager_lr, rel=1e-6)


def test_one_step_serves_the_whole_run_and_its_totals_restart_each_epoch(tmp_path):
    """train_epoch with the run's run_steps dict: the second epoch reuses the first one's step
    (and graph, on CUDA) and its totals, reset in place, and gives the results of a fresh step."""
    from dartsrenet.networks import build_eval_model
    from dartsrenet.training import train_epoch

    torch.manual_seed(4)
    batches = [(torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))) for _ in range(2)]

    def run(keep):
        torch.manual_seed(5)
        model = build_eval_model("vanilla", num_classes=10, channels=4)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.7)
        run_steps = {} if keep else None
        results = [train_epoch(model, batches, optimizer, torch.device("cpu"), 1.0, run_steps=run_steps) for _ in range(2)]
        return results, run_steps

    fresh, _ = run(False)
    kept, run_steps = run(True)
    assert kept == fresh and set(run_steps) == {"train"}
    assert run_steps["train"][0].report.eager_steps == 4


def test_the_validation_forward_kept_for_the_run_gives_the_results_of_a_fresh_one():
    """evaluate with the run's run_steps: the second pass reuses the first one's forward (its graph
    on CUDA) and its sums, reset in place; the figures equal a fresh evaluation's."""
    from dartsrenet.networks import build_eval_model
    from dartsrenet.training import evaluate

    torch.manual_seed(6)
    model = build_eval_model("vanilla", num_classes=10, channels=4)
    batches = [(torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))) for _ in range(3)]
    report, run_steps = CaptureReport(mode=True), {}
    kept = [evaluate(model, batches, torch.device("cpu"), capture=True, capture_report=report, run_steps=run_steps)
            for _ in range(2)]  # fmt: skip
    fresh = evaluate(model, batches, torch.device("cpu"))
    assert kept == [fresh, fresh] and report.eager_steps == 6 and set(run_steps) == {"evaluate"}

"""dartsrenet/steps.py: epoch totals on the device, and steps that run eagerly where no graph can be captured."""

import math

import pytest
import torch

from dartsrenet.runs import NonFiniteLossError
from dartsrenet.steps import EpochTotals, GraphedStep


def test_epoch_totals_equal_the_per_step_sums():
    totals = EpochTotals(torch.device("cpu"), "training")
    torch.manual_seed(0)
    expected_loss, expected_correct, seen = 0.0, 0, 0
    for batch in (5, 5, 3):
        logits, labels = torch.randn(batch, 4), torch.randint(0, 4, (batch,))
        loss = torch.nn.functional.cross_entropy(logits, labels)
        totals.add(loss, logits, labels)
        expected_loss += loss.item() * batch
        expected_correct += (logits.argmax(1) == labels).sum().item()
        seen += batch
    loss, accuracy = totals.result()
    assert loss == pytest.approx(expected_loss / seen, rel=1e-12)
    assert accuracy == expected_correct / seen
    assert int(totals.steps) == 3


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_non_finite_loss_names_its_first_step(bad):
    totals = EpochTotals(torch.device("cpu"), "search α")
    labels = torch.zeros(2, dtype=torch.long)
    for step, value in enumerate([0.5, 0.7, bad, 0.2, float("nan")]):
        totals.add(torch.tensor(value), None, labels)
    shown = "nan" if math.isnan(bad) else str(bad)
    with pytest.raises(NonFiniteLossError, match=rf"loss became {shown} at search α step 2;"):
        totals.result()


def test_a_step_without_labels_counts_only_its_finiteness():
    totals = EpochTotals(torch.device("cpu"), "search α")
    totals.add(torch.tensor(1.0))
    assert totals.result() == (0.0, 0.0)
    totals.add(torch.tensor(float("nan")))
    with pytest.raises(NonFiniteLossError, match="at search α step 1;"):
        totals.check_finite()


def test_graphed_step_runs_the_step_on_the_cpu():
    """No CUDA: every call runs the step itself (nothing captured, nothing skipped)."""
    calls = []
    step = GraphedStep(lambda x, y: calls.append((x.clone(), y.clone())), capture=True, warmup_steps=1)
    for value in range(4):
        step(torch.full((2,), float(value)), torch.tensor([value]))
    assert [int(y) for _, y in calls] == [0, 1, 2, 3]
    assert step.graph is None and step.replays == 0 and not step.failed


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_graphed_step_replays_a_captured_sgd_step_exactly_on_cuda():
    """On a GPU: a captured and replayed linear-model step equals the eager steps."""
    torch.manual_seed(0)
    batches = [(torch.randn(8, 5, device="cuda"), torch.randint(0, 3, (8,), device="cuda")) for _ in range(8)]

    def run(capture):
        torch.manual_seed(1)
        model = torch.nn.Linear(5, 3).cuda()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        totals = EpochTotals(torch.device("cuda"), "training")

        def step(images, labels):
            optimizer.zero_grad(set_to_none=False)
            logits = model(images)
            loss = torch.nn.functional.cross_entropy(logits, labels)
            loss.backward()
            optimizer.step()
            totals.add(loss, logits, labels)

        graphed = GraphedStep(step, capture=capture, warmup_steps=2)
        for images, labels in batches:
            graphed(images, labels)
        return model.weight.detach().clone(), totals.result(), graphed.replays

    eager_weight, eager_totals, _ = run(False)
    weight, totals, replays = run(True)
    assert replays == len(batches) - 2
    torch.testing.assert_close(weight, eager_weight)
    assert totals == pytest.approx(eager_totals)

"""The epoch-selection rule (best epoch, patience, eligibility of non-finite epochs) as a table, without files."""

from __future__ import annotations

import pytest

from dartsrenet.selection_rule import EpochVerdict, SelectionRule

NOT_FINITE = None
"""An epoch whose validation outputs were not finite (``val_finite`` false, accuracy null)."""

# (epochs, patience, validation accuracies per epoch, expected (improved, last, stopped_early) per epoch,
#  expected best epoch, expected best accuracy)
CASES = {
    "rising": (3, None, [0.5, 0.6, 0.7], ["I", "I", "IL"], 3, 0.7),
    "a tie keeps the earlier epoch": (3, None, [0.5, 0.5, 0.4], ["I", "", "L"], 1, 0.5),
    "a later, higher epoch is selected": (4, None, [0.5, 0.4, 0.45, 0.6], ["I", "", "", "IL"], 4, 0.6),
    "non-finite first epoch is not selected": (3, None, [NOT_FINITE, 0.3, 0.2], ["", "I", "L"], 2, 0.3),
    "non-finite epoch between counts as no improvement": (3, 2, [0.5, NOT_FINITE, NOT_FINITE], ["I", "", "L"], 1, 0.5),
    "no epoch finite: none selected": (2, None, [NOT_FINITE, NOT_FINITE], ["", "L"], 0, None),
    "patience runs out before the end": (10, 2, [0.5, 0.4, 0.5], ["I", "", "LS"], 1, 0.5),
    "patience runs out on the last epoch: not early": (3, 2, [0.5, 0.4, 0.4], ["I", "", "L"], 1, 0.5),
    "an improvement resets patience": (10, 2, [0.5, 0.4, 0.6, 0.6, 0.1], ["I", "", "I", "", "LS"], 3, 0.6),
    "patience 1 stops at the first non-improvement": (5, 1, [0.5, 0.5], ["I", "LS"], 1, 0.5),
    "a non-finite epoch spends patience": (5, 1, [0.5, NOT_FINITE], ["I", "LS"], 1, 0.5),
    "no patience never stops early": (4, None, [0.9, 0.1, 0.1, 0.1], ["I", "", "", "L"], 1, 0.9),
}


def verdict(code: str) -> EpochVerdict:
    return EpochVerdict(improved="I" in code, last="L" in code, stopped_early="S" in code)


def observe_all(rule: SelectionRule, accuracies: list[float | None], first_epoch: int = 1) -> list[EpochVerdict]:
    return [
        rule.observe(epoch, accuracy, val_finite=accuracy is not NOT_FINITE)
        for epoch, accuracy in enumerate(accuracies, start=first_epoch)
    ]


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_rule_table(case):
    epochs, patience, accuracies, codes, best_epoch, best_accuracy = case
    rule = SelectionRule(epochs, patience)
    assert observe_all(rule, accuracies) == [verdict(code) for code in codes]
    assert (rule.best_epoch, rule.best_val_accuracy) == (best_epoch, best_accuracy)


def test_a_non_finite_epoch_is_never_selected_whatever_accuracy_it_carries():
    rule = SelectionRule(epochs=3, patience=None)
    rule.observe(1, 0.5)
    assert not rule.observe(2, 0.99, val_finite=False).improved
    assert (rule.best_epoch, rule.best_val_accuracy, rule.epochs_without_improvement) == (1, 0.5, 1)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_resuming_from_the_state_after_any_epoch_gives_the_same_verdicts(case):
    epochs, patience, accuracies, _, _, _ = case
    uninterrupted = SelectionRule(epochs, patience)
    expected = observe_all(uninterrupted, accuracies)
    for after in range(1, len(accuracies)):
        first = SelectionRule(epochs, patience)
        observe_all(first, accuracies[:after])
        resumed = SelectionRule(epochs, patience)
        resumed.load_state_dict(first.state_dict())
        assert observe_all(resumed, accuracies[after:], first_epoch=after + 1) == expected[after:], after
        assert resumed.state_dict() == uninterrupted.state_dict()


def test_resume_without_a_selected_epoch_has_no_best_accuracy():
    rule = SelectionRule(epochs=3, patience=None)
    rule.load_state_dict({"best_epoch": 0, "best_val_accuracy": 0.7, "epochs_without_improvement": 1})
    assert rule.best_val_accuracy is None
    assert rule.observe(2, 0.1).improved  # the first finite epoch after resuming is selected

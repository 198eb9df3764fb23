"""The epoch-selection rule of a run: best validation epoch, early stopping, eligibility (paper §3.3).

Both phases select an epoch on validation accuracy — the search on val_cs (its genotype is
the run's), the evaluation on the validation split carved from the training set (its
weights are tested; docs/architecture.md §6.3) — and stop after ``patience`` epochs without
improvement. :class:`SelectionRule` is that rule alone: plain numbers in, a verdict out, no
files, tensors or clocks, so it is tested as a table (``tests/test_selection_rule.py``).
:class:`~dartsrenet.engine.RunEngine` applies it to every epoch and keeps its state in the
checkpoint.

The rule:

* an epoch is **eligible** unless its validation outputs were not finite
  (``val_finite`` false: nothing non-finite is ever a result);
* an eligible epoch **improves** when no epoch is selected yet or its validation accuracy is
  strictly higher than the best so far (a tie keeps the earlier epoch);
* every other epoch counts one more epoch **without improvement**; the run stops early when
  that count reaches ``patience`` (None: never);
* the epoch is the **last** when the run stops early or reaches ``epochs``; it *stopped
  early* only when that happened before ``epochs``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class EpochVerdict:
    """What the rule says of one epoch.

    Attributes:
        improved: the epoch is now the selected (best) one.
        last: no epoch follows (stopped early, or the last planned epoch).
        stopped_early: patience ran out before the last planned epoch.
    """

    improved: bool
    last: bool
    stopped_early: bool


@dataclass
class SelectionRule:
    """Best epoch and patience of a run of ``epochs`` epochs (see the module docstring).

    Attributes:
        epochs: the planned number of epochs.
        patience: epochs without improvement that stop the run (None: never stop early).
        best_epoch: the selected epoch (1-based; 0 while none is selected).
        best_val_accuracy: its validation accuracy (None while none is selected).
        epochs_without_improvement: epochs since the last improvement.
    """

    epochs: int
    patience: int | None
    best_epoch: int = 0
    best_val_accuracy: float | None = None
    epochs_without_improvement: int = 0

    def observe(self, epoch: int, val_accuracy: float | None, val_finite: bool = True) -> EpochVerdict:
        """Take epoch ``epoch``'s validation result into account; returns its verdict."""
        improved = bool(val_finite) and (self.best_epoch == 0 or val_accuracy > self.best_val_accuracy)
        if improved:
            self.best_val_accuracy = val_accuracy
            self.best_epoch = epoch
            self.epochs_without_improvement = 0
        else:
            self.epochs_without_improvement += 1
        patience_ran_out = self.patience is not None and self.epochs_without_improvement >= self.patience
        return EpochVerdict(
            improved=improved,
            last=patience_ran_out or epoch >= self.epochs,
            stopped_early=patience_ran_out and epoch < self.epochs,
        )

    def state_dict(self) -> dict[str, Any]:
        """The rule's state, as a checkpoint keeps it."""
        return {
            "best_val_accuracy": self.best_val_accuracy,
            "best_epoch": self.best_epoch,
            "epochs_without_improvement": self.epochs_without_improvement,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from a checkpoint's :meth:`state_dict` (a best accuracy without a best epoch is none)."""
        self.best_epoch = state["best_epoch"]
        self.best_val_accuracy = state["best_val_accuracy"] if self.best_epoch else None
        self.epochs_without_improvement = state["epochs_without_improvement"]

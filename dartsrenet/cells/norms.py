"""BatchNorm over both directions of a bidirectional state, with statistics per time step."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dartsrenet.cells.base import NUM_DIRECTIONS


class DirectionalBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over the features of both directions together, ``[fwd ‖ bwd]`` (docs/architecture.md §2),
    with population statistics per *slot* (time step; Cooijmans et al. 2017).

    Holds ``num_directions × features`` channels, exactly like ``BatchNorm1d(2h)`` on the
    concatenated state; statistics are per channel, so it is also equal to one
    ``BatchNorm1d(features)`` per direction. Input and output are (D, B, features); the
    output is stored batch-major, and a batch-major input is normalised without a copy.

    Training mode normalises with the batch's statistics, as ``BatchNorm1d``, and updates
    the running averages of the given slot only: ``running_mean``/``running_var`` are
    (slots, channels), one row per slot, grown on first use and initialised then with
    that batch's statistics (later calls: momentum updates, cumulative with
    ``momentum=None``). ``running_var`` averages the *biased* batch variance, the one
    training mode normalises with (as Keras does; ``BatchNorm1d`` keeps the unbiased one),
    so eval mode reproduces training-mode outputs on a training batch once the statistics
    settle — with the unbiased estimate the B/(B−1) mismatch, amplified through the nine
    BatchNorms in a row, visibly shifted them. Eval mode normalises with the slot's running
    statistics (the last row for slots never seen in training; 0 and 1 before any
    training). The affine parameters are shared by all slots, so parameter counts do not
    change. ``num_batches_tracked`` counts training-mode calls. A cell uses slot t at
    step t (the search cell's shared node norm: t·(nodes+1) + node).
    """

    def __init__(self, features: int, num_directions: int = NUM_DIRECTIONS, affine: bool = True):
        super().__init__(num_directions * features, affine=affine)
        self.features = features
        self.num_directions = num_directions
        # scratch for the batch statistics of a training-mode call (not part of the state)
        self.register_buffer("_batch_mean", torch.zeros(1, self.num_features), persistent=False)
        self.register_buffer("_batch_var", torch.zeros(1, self.num_features), persistent=False)

    def reset_running_stats(self) -> None:
        """No slots yet (rows are added on first use), counter at 0."""
        if self.track_running_stats:
            self.running_mean = self.running_mean.new_zeros(0, self.num_features)
            self.running_var = self.running_var.new_ones(0, self.num_features)
            self.num_batches_tracked.zero_()

    @property
    def num_slots(self) -> int:
        """Slots with running statistics so far."""
        return 0 if self.running_mean is None else self.running_mean.shape[0]

    def grow(self, slots: int) -> None:
        """Make sure slots 0 … ``slots``−1 have running statistics (new rows: mean 0, variance 1)."""
        if self.running_mean is not None and self.num_slots < slots:
            extra = slots - self.num_slots
            with torch.no_grad():
                self.running_mean = torch.cat([self.running_mean, self.running_mean.new_zeros(extra, self.num_features)])
                self.running_var = torch.cat([self.running_var, self.running_var.new_ones(extra, self.num_features)])

    def slot_statistics(self, slot: int) -> tuple[Tensor, Tensor]:
        """The running (mean, variance) that eval mode uses for ``slot``, each (channels,)."""
        if self.num_slots == 0:
            return self.running_mean.new_zeros(self.num_features), self.running_var.new_ones(self.num_features)
        row = min(slot, self.num_slots - 1)
        return self.running_mean[row], self.running_var[row]

    def normalise(self, flat: Tensor, slot: int = 0) -> Tensor:
        """Batch norm of (B, channels), ``[fwd ‖ bwd]`` features, at ``slot``."""
        if not self.uses_batch_statistics():
            mean, var = self.slot_statistics(slot)
            return F.batch_norm(flat, mean, var, self.weight, self.bias, False, 0.0, self.eps)
        if not self.track_running_stats:
            return F.batch_norm(flat, None, None, self.weight, self.bias, True, 0.0, self.eps)
        # momentum 1 leaves the batch mean and unbiased variance in the two scratch buffers
        out = F.batch_norm(flat, self._batch_mean[0], self._batch_var[0], self.weight, self.bias, True, 1.0, self.eps)
        self.record(slot, self._batch_mean, self._batch_var, flat.shape[0])
        return out

    def record(self, first_slot: int, means: Tensor, variances: Tensor, batch_size: int, biased: bool = False) -> None:
        """Fold batch statistics into the running statistics of slots ``first_slot`` … (one per row).

        As one training-mode call per slot would: counts the calls, initialises new slots.

        Args:
            first_slot: the slot of the first row.
            means: batch means, (n, channels).
            variances: batch variances, (n, channels): unbiased (as ``F.batch_norm`` leaves
                them) unless ``biased``.
            batch_size: B, to turn unbiased variances into biased ones.
            biased: the variances are already the biased ones.
        """
        momenta = self.advance(len(means))
        seen = self.num_slots
        self.grow(first_slot + len(means))
        with torch.no_grad():
            biased = variances if biased else variances * ((batch_size - 1) / batch_size)
            if isinstance(momenta, Tensor):  # momentum None: one factor per row, on the device
                momenta[max(0, seen - first_slot) :].fill_(1.0)  # a new slot starts from this batch
                factors = momenta.to(self.running_mean.dtype)[:, None]
                rows = slice(first_slot, first_slot + len(means))
                self.running_mean[rows].lerp_(means, factors)
                self.running_var[rows].lerp_(biased, factors)
                return
            # a new slot starts from this batch (momentum 1); rows of equal momentum in one op each
            momenta = [1.0 if first_slot + row >= seen else momentum for row, momentum in enumerate(momenta)]
            start = 0
            while start < len(momenta):
                stop = start + 1
                while stop < len(momenta) and momenta[stop] == momenta[start]:
                    stop += 1
                rows = slice(first_slot + start, first_slot + stop)
                self.running_mean[rows].lerp_(means[start:stop], momenta[start])  # (1 − m)·running + m·batch
                self.running_var[rows].lerp_(biased[start:stop], momenta[start])
                start = stop

    def forward(self, x: Tensor, slot: int = 0) -> Tensor:
        directions, batch, features = x.shape
        flat = x.transpose(0, 1).reshape(batch, directions * features)  # (B, D·F), a view if batch-major
        return self.normalise(flat, slot).view(batch, directions, features).transpose(0, 1)

    def uses_batch_statistics(self) -> bool:
        """True when forward normalises with the batch's statistics (as ``nn.BatchNorm1d`` decides)."""
        return self.training or self.running_mean is None

    def advance(self, steps: int) -> list[float] | Tensor:
        """Count ``steps`` training-mode calls; return the momentum each call would use.

        Mirrors ``nn.BatchNorm1d.forward``: with ``momentum=None`` the cumulative average
        factor 1/num_batches_tracked, then as a float64 (steps,) tensor computed on the device
        from the counter (never read back: no host sync, so a CUDA graph can hold it).
        """
        if not (self.training and self.track_running_stats):
            return [0.0] * steps
        if self.momentum is None:
            counts = torch.arange(1, steps + 1, dtype=torch.float64, device=self.num_batches_tracked.device)
            factors = torch.reciprocal(self.num_batches_tracked.to(torch.float64) + counts)
            self.num_batches_tracked.add_(steps)
            return factors
        self.num_batches_tracked.add_(steps)
        return [self.momentum] * steps

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        # take the checkpoint's number of slots
        key = prefix + "running_mean"
        if self.running_mean is not None and key in state_dict and state_dict[key].dim() == 2:
            self.running_mean = self.running_mean.new_zeros(state_dict[key].shape)
            self.running_var = self.running_var.new_ones(state_dict[key].shape)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs)



def record_together(
    norms: Sequence[DirectionalBatchNorm], first_slot: int, means: Tensor, variances: Tensor, batch_size: int,
    biased: bool = False,
) -> None:
    """``norms[i].record(first_slot, means[i], variances[i], …)`` for every i, in a few ops.

    The derived cell's nine node BatchNorms each record a row per step at the same slots:
    27 small kernels a step one by one (count, mean, variance), 3 a whole sweep here
    (``torch._foreach_*``) when every norm is in training mode with the same fixed momentum
    and already has the slots. Anything else (a new slot, ``momentum=None``, eval mode) takes
    the per-norm path.

    Args:
        norms: the BatchNorms.
        first_slot: the slot of the first row.
        means: (len(norms), steps, channels), one row per slot from ``first_slot``; or
            (len(norms), channels) for the one slot ``first_slot``.
        variances: as ``means``; unbiased unless ``biased``.
        batch_size: B, to turn unbiased variances into biased ones.
        biased: the variances are already the biased ones.
    """
    if means.dim() == 2:
        means, variances = means.unsqueeze(1), variances.unsqueeze(1)
    steps = means.shape[1]
    active = [norm for norm in norms if norm.training and norm.track_running_stats]
    if not active:
        return
    momentum = active[0].momentum
    if len(active) < len(norms) or momentum is None or any(
        norm.momentum != momentum or norm.num_slots < first_slot + steps for norm in norms
    ):
        for row, norm in enumerate(norms):
            if norm.training and norm.track_running_stats:
                norm.record(first_slot, means[row], variances[row], batch_size, biased)
        return
    with torch.no_grad():
        biased_variances = variances if biased else variances * ((batch_size - 1) / batch_size)
        torch._foreach_add_([norm.num_batches_tracked for norm in norms], steps)
        rows = slice(first_slot, first_slot + steps)
        targets = [norm.running_mean[rows] for norm in norms] + [norm.running_var[rows] for norm in norms]
        sources = list(means.unbind(0)) + list(biased_variances.unbind(0))
        torch._foreach_lerp_(targets, sources, momentum)  # (1 − m)·running + m·batch

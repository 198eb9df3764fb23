"""The GRU and LSTM baselines behind the cells' step interface."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dartsrenet.cells.base import BidirectionalCell


class _TorchRNNCell(BidirectionalCell):
    """A GRU/LSTM baseline held as a bidirectional ``torch.nn.GRU``/``LSTM`` (docs/architecture.md §2).

    ``step`` implements the cell's equations on the module's own weights; ``sweep``
    uses the fused kernel (cuDNN/oneDNN) unless ``fused=False``.
    """

    rnn_class: type[nn.RNNBase]

    def __init__(self, input_size: int, hidden_size: int, fused: bool = True):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.fused = fused
        self.rnn = self.rnn_class(input_size, hidden_size, bidirectional=True)

    def _stacked(self, name: str) -> Tensor:
        """A weight of both directions stacked: (2, …)."""
        return torch.stack([getattr(self.rnn, f"{name}_l0"), getattr(self.rnn, f"{name}_l0_reverse")])

    def _gates(self, x: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """Input and hidden pre-activations W_ih x + b_ih and W_hh h + b_hh, (2, B, k·h)."""
        from_input = torch.baddbmm(self._stacked("bias_ih").unsqueeze(1), x, self._stacked("weight_ih").transpose(1, 2))
        from_hidden = torch.baddbmm(
            self._stacked("bias_hh").unsqueeze(1), hidden, self._stacked("weight_hh").transpose(1, 2)
        )
        return from_input, from_hidden

    def sweep(self, x: Tensor) -> Tensor:
        if self.fused:
            return self.rnn(x)[0]  # (T, B, 2h), backward already aligned
        return super().sweep(x)


class GRUCell(_TorchRNNCell):
    """GRU baseline (Cho et al. 2014), PyTorch's gate order r, z, n."""

    rnn_class = nn.GRU

    def step(self, x: Tensor, state: Tensor, t: int = 0) -> tuple[Tensor, Tensor]:
        from_input, from_hidden = self._gates(x, state)
        input_r, input_z, input_n = from_input.chunk(3, dim=-1)
        hidden_r, hidden_z, hidden_n = from_hidden.chunk(3, dim=-1)
        reset = torch.sigmoid(input_r + hidden_r)
        update = torch.sigmoid(input_z + hidden_z)
        candidate = torch.tanh(input_n + reset * hidden_n)
        hidden = (1 - update) * candidate + update * state
        return hidden, hidden


class LSTMCell(_TorchRNNCell):
    """LSTM baseline (Hochreiter & Schmidhuber 1997), PyTorch's gate order i, f, g, o."""

    rnn_class = nn.LSTM

    def initial_state(self, batch_size: int, like: Tensor) -> tuple[Tensor, Tensor]:
        zeros = super().initial_state(batch_size, like)
        return zeros, zeros.clone()

    def step(self, x: Tensor, state: tuple[Tensor, Tensor], t: int = 0) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        hidden, memory = state
        from_input, from_hidden = self._gates(x, hidden)
        input_gate, forget_gate, candidate, output_gate = (from_input + from_hidden).chunk(4, dim=-1)
        memory = torch.sigmoid(forget_gate) * memory + torch.sigmoid(input_gate) * torch.tanh(candidate)
        hidden = torch.sigmoid(output_gate) * torch.tanh(memory)
        return hidden, (hidden, memory)

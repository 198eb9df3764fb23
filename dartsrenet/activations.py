"""The candidate activation functions of the DARTS RNN search space (paper §2.2).

``PRIMITIVES`` is the order of the columns of α (docs/architecture.md §3): ``none`` first, then the
four activations of the set 𝒪 = {tanh, relu, sigmoid, identity}. ``none`` only
exists during search, where it contributes nothing to a node's mixture.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from dartsrenet.registry import lookup

Activation = Callable[[Tensor], Tensor]


def identity(x: Tensor) -> Tensor:
    """The identity activation f(x) = x."""
    return x


ACTIVATIONS: dict[str, Activation] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "sigmoid": torch.sigmoid,
    "identity": identity,
}

NONE = "none"
PRIMITIVES: tuple[str, ...] = (NONE, "tanh", "relu", "sigmoid", "identity")


def get_activation(name: str) -> Activation:
    """Return the activation called ``name``; unknown names list the valid ones."""
    return lookup(ACTIVATIONS, name, "activation")

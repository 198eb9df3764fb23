"""Comparing a backend's cell sweeps with the eager backend's, shared by the backend tests
(tests/test_fused_nodes.py, tests/test_triton_kernels.py)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch


def assert_same_cell_results(
    results: Sequence[tuple[torch.Tensor, torch.Tensor, Mapping[str, torch.Tensor | None]]],
    state: Mapping[str, torch.Tensor],
    expected_results: Sequence[tuple[torch.Tensor, torch.Tensor, Mapping[str, torch.Tensor | None]]],
    expected_state: Mapping[str, torch.Tensor],
    tolerance: Mapping[str, Any],
) -> None:
    """Per sweep (output, the input's gradient, every parameter's gradient) and the final
    state dict (running statistics included) agree within ``tolerance``. A parameter the
    eager path leaves without a gradient (an unused node's) must have none or a zero one."""
    for (out, x_grad, grads), (expected, x_expected, expected_grads) in zip(results, expected_results, strict=True):
        torch.testing.assert_close(out, expected, **tolerance)
        torch.testing.assert_close(x_grad, x_expected, **tolerance)
        assert grads.keys() == expected_grads.keys()
        for name, grad in expected_grads.items():
            if grad is None:
                assert grads[name] is None or not grads[name].any(), name
            else:
                torch.testing.assert_close(grads[name], grad, **tolerance, msg=lambda m, name=name: f"{name}: {m}")
    assert state.keys() == expected_state.keys()
    for name, value in expected_state.items():
        torch.testing.assert_close(state[name], value, **tolerance, msg=lambda m, name=name: f"{name}: {m}")

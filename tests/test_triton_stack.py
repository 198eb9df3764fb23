"""backend=auto picks Triton only where the installed torch and triton have what the kernels need (dartsrenet/kernels/triton_backend.py, dartsrenet/cells/backends.py)."""

import warnings

import pytest
import torch

from dartsrenet.cells import backends
from dartsrenet.cells.backends import BackendError, resolve_backend
from dartsrenet.kernels import triton_backend as triton_kernels

pytest.importorskip("triton", reason="the check reads triton's attributes")


@pytest.fixture
def fresh_check(monkeypatch):
    """The once-per-process check, redone for this test (and forgotten after it)."""
    monkeypatch.setattr(triton_kernels, "_TRITON_STACK", {})
    monkeypatch.setattr(backends, "_WARNED", set())
    return monkeypatch


def test_this_stack_has_what_the_kernels_need(fresh_check):
    assert triton_kernels.triton_stack_problem() is None
    assert resolve_backend("triton", "cuda") == "triton"


@pytest.mark.parametrize("missing", ["torch.library.triton_op", "torch.library.wrap_triton", "triton.knobs"])
def test_a_stack_without_a_needed_feature_runs_eager_or_refuses_in_one_line(fresh_check, missing):
    import triton

    owner, name = missing.rsplit(".", 1)
    fresh_check.delattr({"torch.library": torch.library, "triton": triton}[owner], name)
    with pytest.warns(UserWarning, match=rf"eager backend: backend 'triton' cannot run here: .*lacks {missing}"):
        assert resolve_backend("auto", "cuda") == "eager"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one warning: the check and its message are not repeated
        assert resolve_backend("auto", "cuda") == "eager"
    with pytest.raises(BackendError) as refused:
        resolve_backend("triton", "cuda")
    message = str(refused.value)
    assert "\n" not in message and f"lacks {missing}" in message
    assert "torch >= 2.6" in message and "triton >= 3.4" in message and torch.__version__ in message

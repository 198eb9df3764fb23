"""Which code computes a DARTS cell's nodes: the compute backend, chosen once per model.

Backends (``docs/design.md`` has the figures behind the choice):

* ``eager`` — the paper's maths as written (:mod:`dartsrenet.cells.maths`), plain PyTorch
  on any device and dtype. The reference every other backend is tested against.
* ``native`` — fused C kernels for the CPU (:mod:`dartsrenet.fused_nodes` over
  ``dartsrenet/csrc``, built by :mod:`dartsrenet.native`): one autograd node per sweep.
* ``triton`` — the same fused sweeps with Triton kernels (:mod:`dartsrenet.triton_nodes`)
  for CUDA GPUs; on a CPU only under ``TRITON_INTERPRET=1`` (the tests).
* ``auto`` — by device: ``native`` on the CPU, ``triton`` on CUDA, ``eager`` elsewhere;
  ``eager`` (with a warning saying why) where the chosen one cannot run — no C compiler,
  no Triton, a torch or triton too old for the kernels (:func:`triton_stack_problem`,
  checked once), ``DARTSRENET_NATIVE=0``, or a cell with activations the kernels lack.

A backend named explicitly that cannot run, or does not cover the cell's activations, is
an error when the model is built or moved to a device — never a silent fallback. The
fused backends compute float32 and float64 (matmuls in bf16/fp16 under autocast); other
dtypes are refused at the first step with the same kind of one-line error.

``eager`` also has an option, :func:`set_compile`: its element-wise work compiled with
``torch.compile`` (falls back to eager mode, with a warning, when compilation fails).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from dartsrenet import native

BACKENDS = ("auto", "eager", "native", "triton")
"""The backend names a model or config accepts."""

KERNEL_ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")
"""The activations the fused kernels (C and Triton) implement."""


class BackendError(ValueError):
    """A backend that cannot run here or cannot compute this cell. The message is one line."""


def triton_available() -> bool:
    """Whether Triton can be imported (it ships with PyTorch's CUDA wheels)."""
    return importlib.util.find_spec("triton") is not None


TRITON_NEEDS = "torch >= 2.6 (torch.library.triton_op, torch.library.wrap_triton) and triton >= 3.4 (triton.knobs)"
"""What the Triton kernels use from the installed torch and triton."""

_TRITON_STACK: dict[str, str | None] = {}


def triton_stack_problem() -> str | None:
    """Why the installed torch and triton cannot run the Triton kernels, or None when they can.

    Checked once per process (the result logged on the ``dartsrenet`` logger): Triton
    installed and importable, ``torch.library.triton_op`` and ``wrap_triton`` (the kernels
    are registered as PyTorch ops with them), ``triton.knobs`` (the interpreter setting is
    read there). Importing triton happens here, so only where the triton backend is asked for.
    """
    if "problem" not in _TRITON_STACK:
        _TRITON_STACK["problem"] = _check_triton_stack()
        logging.getLogger("dartsrenet").info(
            "triton backend: %s", _TRITON_STACK["problem"] or "torch and triton have what the kernels need"
        )
    return _TRITON_STACK["problem"]


def _check_triton_stack() -> str | None:
    if not triton_available():
        return "the triton package is not installed (pip install triton)"
    try:
        import triton
    except Exception as error:  # noqa: BLE001 — any import failure makes the backend unusable
        return f"importing triton failed ({type(error).__name__}: {error})"
    missing = [f"torch.library.{name}" for name in ("triton_op", "wrap_triton") if not hasattr(torch.library, name)]
    missing += [] if hasattr(triton, "knobs") else ["triton.knobs"]
    if missing:
        return (
            f"torch {torch.__version__} with triton {getattr(triton, '__version__', '?')} lacks {', '.join(missing)}; "
            f"the kernels need {TRITON_NEEDS}"
        )
    return None


def triton_interpreted() -> bool:
    """``TRITON_INTERPRET=1``: Triton kernels run on the CPU (slowly; for tests)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def _unavailable(name: str, device: torch.device) -> str | None:
    """Why backend ``name`` cannot run on ``device`` here, or None."""
    if name == "native":
        if device.type != "cpu":
            return f"backend 'native' runs on the CPU, not {device.type}; use eager or triton (CUDA)"
        if native.library() is None:
            return f"backend 'native' is unavailable: {native.unavailable_reason()}"
    if name == "triton":
        if device.type != "cuda" and not (device.type == "cpu" and triton_interpreted()):
            return f"backend 'triton' runs on CUDA devices, not {device.type} (TRITON_INTERPRET=1 runs it on the CPU)"
        problem = triton_stack_problem()
        if problem is not None:
            return f"backend 'triton' cannot run here: {problem}"
    return None


def resolve_backend(name: str, device: torch.device | str, activations: Iterable[str] = ()) -> str:
    """The backend that will compute a cell with ``activations`` on ``device``.

    Args:
        name: one of :data:`BACKENDS`.
        device: where the cell's parameters live.
        activations: the activation names the cell's nodes use.

    Raises:
        BackendError: an unknown name; an explicit backend that cannot run on ``device``
            or lacks one of ``activations``.
    """
    if name not in BACKENDS:
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    device = torch.device(device)
    missing = sorted(set(activations) - set(KERNEL_ACTIVATIONS))
    if name == "auto":
        choice = {"cpu": "native", "cuda": "triton"}.get(device.type, "eager")
        if choice == "eager":
            return "eager"
        reason = _unavailable(choice, device)
        if reason is None and missing:
            reason = f"the fused kernels have no {', '.join(missing)} (they have {', '.join(KERNEL_ACTIVATIONS)})"
        if reason is not None:
            _warn_once(f"dartsrenet: computing the DARTS cells with the eager backend: {reason}")
            return "eager"
        return choice
    if name == "eager":
        return name
    reason = _unavailable(name, device)
    if reason is not None:
        raise BackendError(reason)
    if missing:
        raise BackendError(
            f"backend {name!r} has no kernel for activation {missing[0]!r} "
            f"(it has {', '.join(KERNEL_ACTIVATIONS)}); use backend 'eager'"
        )
    return name


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, stacklevel=3)


def kernels(name: str) -> ModuleType:
    """The kernel module of a fused backend: ``node_forward``, ``node_backward``,
    ``mixed_forward``, ``mixed_backward``, ``mixing_gradients``, ``total_mixing_gradient``,
    ``mean_of_states`` with one signature."""
    if name == "native":
        from dartsrenet import fused_nodes

        return fused_nodes
    if name == "triton":
        from dartsrenet import triton_nodes

        return triton_nodes
    raise BackendError(f"backend {name!r} has no kernels")


def set_backend(model: nn.Module, name: str = "auto", device: torch.device | str | None = None) -> str:
    """Choose the backend of every DARTS cell in ``model`` (again on every move to a device).

    Returns the backend the cells resolved to (``eager`` for a model without DARTS cells).
    """
    resolved = {module.use_backend(name, device) for module in model.modules() if hasattr(module, "use_backend")}
    if not resolved:
        resolve_backend(name, device or _device_of(model))  # still refuse a bad name
        return "eager"
    return resolved.pop() if len(resolved) == 1 else "+".join(sorted(resolved))


def model_backend(model: nn.Module) -> str:
    """The backend ``model``'s DARTS cells compute with (``eager`` without DARTS cells)."""
    names = {module.backend for module in model.modules() if hasattr(module, "use_backend")}
    return names.pop() if len(names) == 1 else ("+".join(sorted(names)) if names else "eager")


def _device_of(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def check_kernel_inputs(name: str, source: Tensor, projection: Tensor, norms: Sequence[Any]) -> None:
    """Refuse, in one line, inputs a fused backend cannot compute (instead of a wrong result)."""
    if source.dtype not in (torch.float32, torch.float64) or projection.dtype not in (
        source.dtype, torch.bfloat16, torch.float16
    ):  # fmt: skip
        raise BackendError(
            f"backend {name!r} computes DARTS cells in float32 or float64 (matmuls in bf16/fp16 under "
            f"autocast), not {source.dtype}/{projection.dtype}; use backend 'eager' for this dtype"
        )
    if source.shape[1] < 2 and any(norm.uses_batch_statistics() for norm in norms):
        raise ValueError(
            f"Expected more than 1 value per channel when training, got input size {tuple(source.shape)}"
        )


# --- the eager backend's option: its element-wise work compiled with torch.compile ------------
_COMPILE: dict[str, Any] = {"enabled": False, "functions": {}}


def set_compile(enabled: bool = True) -> None:
    """Fuse the eager backend's element-wise work with ``torch.compile`` (default off).

    Applies to :func:`~dartsrenet.cells.maths.gated_node` and
    :func:`~dartsrenet.cells.maths.mixed_node` wherever eager cells call them. Worth it where
    kernel launches dominate (GPUs); on CPUs it measured no gain. If compilation fails, a
    warning is issued once and the cells run in eager mode.
    """
    _COMPILE["enabled"] = bool(enabled)


def compile_enabled() -> bool:
    """Whether :func:`set_compile` is on (it turns itself off after a compiler failure)."""
    return _COMPILE["enabled"]


def compiled(function: Callable[..., Tensor]) -> Callable[..., Tensor]:
    """``function``, compiled when :func:`set_compile` is on."""
    if not _COMPILE["enabled"]:
        return function
    wrapper = _COMPILE["functions"].get(function)
    if wrapper is None:
        compiled_function = torch.compile(function)

        def wrapper(*args: Any) -> Tensor:
            if not _COMPILE["enabled"]:
                return function(*args)
            try:
                return compiled_function(*args)
            except Exception as error:  # noqa: BLE001 — any compiler failure falls back to eager mode
                warnings.warn(f"torch.compile failed, running the cells in eager mode: {error}", stacklevel=2)
                _COMPILE["enabled"] = False
                return function(*args)

        _COMPILE["functions"][function] = wrapper
    return wrapper

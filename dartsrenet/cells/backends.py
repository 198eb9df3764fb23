"""Which code computes a DARTS cell's nodes: the compute backend, chosen once per model.

Backends (``docs/design.md`` has the figures behind the choice):

* ``eager`` — the paper's maths as written (:mod:`dartsrenet.cells.maths`), plain PyTorch
  on any device and dtype. The reference every other backend is tested against.
* ``native`` — fused C kernels for the CPU (:mod:`dartsrenet.kernels.native`): one
  autograd node per sweep (:mod:`dartsrenet.cells.fused_sweep`).
* ``triton`` — the same fused sweeps with Triton kernels (:mod:`dartsrenet.kernels.triton_backend`)
  for CUDA GPUs; on a CPU only under ``TRITON_INTERPRET=1`` (the tests).
* ``auto`` — by device: ``native`` on the CPU, ``triton`` on CUDA, ``eager`` elsewhere;
  ``eager`` (with one warning saying why) where the chosen one cannot run — no C compiler,
  no Triton, a torch or triton too old for the kernels
  (:func:`~dartsrenet.kernels.triton_backend.triton_stack_problem`, checked once and logged),
  ``DARTSRENET_NATIVE=0``, or a cell with activations the kernels lack.

A backend named explicitly that cannot run, or does not cover the cell's activations, is
an error when the model is built or moved to a device — never a silent fallback. A cell
keeps the resolved name (:func:`model_backend` reports it) and the backend's kernels
(:func:`kernels`: an object implementing :class:`~dartsrenet.kernels.protocol.KernelBackend`,
None for ``eager``), so nothing is looked up by name per call. The fused backends compute
float32 and float64 (matmuls in bf16/fp16 under autocast); other dtypes are refused at the
first step with the same kind of one-line error.

``eager`` also has an option, :func:`set_compile`: its element-wise work compiled with
``torch.compile`` (falls back to eager mode, with a warning, when compilation fails).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

from dartsrenet.kernels.native import NATIVE
from dartsrenet.kernels.protocol import ACTIVATION_CODES, KernelBackend
from dartsrenet.kernels.triton_backend import TRITON

BACKENDS = ("auto", "eager", "native", "triton")
"""The backend names a model or config accepts."""

KERNEL_ACTIVATIONS = tuple(ACTIVATION_CODES)
"""The activations the fused kernels (C and Triton) implement."""

_KERNELS: dict[str, KernelBackend] = {"native": NATIVE, "triton": TRITON}
"""The fused backends' kernels by name."""


class BackendError(ValueError):
    """A backend that cannot run here or cannot compute this cell. The message is one line."""


def kernels(name: str) -> KernelBackend | None:
    """The kernels a resolved backend computes with: an object implementing
    :class:`~dartsrenet.kernels.protocol.KernelBackend` (``native``, ``triton``), None for ``eager``."""
    if name == "eager":
        return None
    if name not in _KERNELS:
        raise BackendError(f"backend {name!r} has no kernels; choose one of {', '.join(_KERNELS)} or eager")
    return _KERNELS[name]


def _unavailable(name: str, device: torch.device) -> str | None:
    """Why fused backend ``name`` cannot run on ``device`` here, or None."""
    return _KERNELS[name].device_problem(device)


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

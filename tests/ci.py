"""What a test may do when something it needs is missing: skip on a developer's machine, fail in CI.

CI (``.ci/run``, and CI services, which set ``CI``) installs every tool the suite uses — a C
compiler, Graphviz's ``dot``, Debian's Fashion-MNIST, Ray, optuna, triton — so a test that
would skip there hides breakage. ``tests/conftest.py`` turns every skip under CI into a
failure, except that of a test marked ``cuda`` on a machine without CUDA (CI machines have
no GPU; nothing can stand in for one).
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """``CI`` is set to anything but empty, ``0`` or ``false``."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def missing(what: str) -> NoReturn:
    """Skip the running test because ``what`` is missing; under CI, fail it instead."""
    if in_ci():
        pytest.fail(f"{what}; CI must have it (.ci/run installs it)", pytrace=False)
    pytest.skip(what)


CPU_CELL_BACKENDS = ("eager", "native")
"""The backends a DARTS cell runs on this CPU, each tested by name — never ``auto``, whose
choice depends on the machine. (``triton`` runs on the CPU only interpreted:
tests/test_triton_kernels.py.)"""


def require_cell_backend(backend: str) -> str:
    """``backend``, once it can run here: ``native`` needs the C kernels (in CI: always)."""
    if backend == "native":
        from dartsrenet.kernels import native_build as native

        if native.library() is None:
            missing(f"the fused C kernels ({native.unavailable_reason()})")
    return backend

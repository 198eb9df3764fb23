"""Shared fixtures.

``ray_session`` starts one local Ray for the whole test session — only when a test asks
for it (starting Ray costs seconds on a small machine) — and shuts it down at the end.
It declares 2 CPUs and one *logical* GPU, so the GPU scheduling path (whole and
fractional GPUs per trial) is exercised on CPU-only machines: trials are given GPU ids
by Ray, and the sweeps fall back to the CPU because CUDA is not available there
(sweeps/common.py, ``trial_device``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Every Ray a test starts — the session Ray, the sweep scripts' own (--num-cpus), the
# multi-node test cluster and the drivers connecting to it — takes 127.0.0.1 as its nodes'
# address (Ray's single-machine mode; read when ray is imported, and inherited by every
# subprocess): no test traffic goes to another interface of this machine. Without it Ray
# also rewrites an explicit 127.0.0.1 address to the machine's external one.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray instance (2 CPUs, 1 logical GPU), never an existing cluster."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[sweeps]')")
    os.environ.pop("RAY_ADDRESS", None)
    # Ray's workers inherit the environment: let them import this checkout's packages.
    root = str(Path(__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join([root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])
    # on the loopback address: a test's Ray never listens on (or sends to) another interface
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, _node_ip_address="127.0.0.1")
    try:
        yield ray
    finally:
        ray.shutdown()

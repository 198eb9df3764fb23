"""Shared fixtures.

``ray_session`` starts one local Ray for the whole test session — only when a test asks
for it (starting Ray costs seconds on a small machine) — and shuts it down at the end.
It declares 2 CPUs and one *logical* GPU, so the GPU scheduling path (whole and
fractional GPUs per trial) is exercised on CPU-only machines: trials are given GPU ids
by Ray, and the sweeps fall back to the CPU because CUDA is not available there
(sweeps/trainable.py, ``trial_device``).

Under CI no test may skip (tests/ci.py): a skip there becomes a failure naming what was
missing, except for tests marked ``cuda`` when there is no CUDA device.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.ci import CPU_CELL_BACKENDS, in_ci, require_cell_backend

# Every Ray a test starts — the session Ray, the sweep scripts' own (--num-cpus), the
# multi-node test cluster and the drivers connecting to it — takes 127.0.0.1 as its nodes'
# address (Ray's single-machine mode; read when ray is imported, and inherited by every
# subprocess): no test traffic goes to another interface of this machine. Without it Ray
# also rewrites an explicit 127.0.0.1 address to the machine's external one.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")


def _cuda_only_skip(item: pytest.Item) -> bool:
    """A test marked ``cuda`` on a machine without CUDA: the one skip CI allows."""
    if item.get_closest_marker("cuda") is None:
        return False
    import torch

    return not torch.cuda.is_available()


def _skip_reason(longrepr) -> str:
    reason = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return reason.removeprefix("Skipped: ")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    """Under CI a skipped test fails (what it needed is named), unless it needs CUDA that is absent."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci() and not hasattr(report, "wasxfail") and not _cuda_only_skip(item):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, where nothing may be missing: {_skip_reason(report.longrepr)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """Under CI a module that skips itself (``pytest.importorskip`` of a missing package) fails."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and in_ci():
        report.outcome = "failed"
        report.longrepr = f"skipped under CI, where nothing may be missing: {_skip_reason(report.longrepr)}"


@pytest.fixture(params=CPU_CELL_BACKENDS)
def cell_backend(request) -> str:
    """Each CPU backend of the DARTS cells in turn, by name (tests/ci.py)."""
    return require_cell_backend(request.param)


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray instance (2 CPUs, 1 logical GPU), never an existing cluster."""
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[sweeps]')")
    os.environ.pop("RAY_ADDRESS", None)
    # Ray's workers inherit the environment: let them import this checkout's packages.
    root = str(Path(__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join([root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])
    # on the loopback address: a test's Ray never listens on (or sends to) another interface
    # in a temp folder of its own, never the machine's shared default (/tmp/ray): nothing a
    # previous run or the user's own Ray left there is seen, and nothing is left behind.
    # Short (Ray's socket paths under it must stay within the OS limit of 107 bytes).
    temp_dir = tempfile.mkdtemp(prefix="drn-", dir="/tmp")
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, _node_ip_address="127.0.0.1",
             _temp_dir=temp_dir)
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the multi-node tests (tests/test_multinode.py) before every other test.

    They start and kill whole Ray clusters of this machine from this process. A session
    Ray (``ray_session``) started before them does not survive them: the next sweep on it
    ends this process without a word (seen with the random-control tests after them).
    Started after them, as it always was before other sweep tests sorted ahead of them, it
    works. So they go first, whatever the files' names.
    """
    multinode = [item for item in items if item.path.name == "test_multinode.py"]
    if multinode:
        items[:] = multinode + [item for item in items if item.path.name != "test_multinode.py"]

"""Connecting to Ray, or starting a local Ray that listens on the loopback address only
(docs/cluster.md, "Security").

:func:`with_ray` runs a sweep in Ray: it connects to the cluster given by ``--address``
(or ``RAY_ADDRESS``, or one started with ``ray start`` on this machine), else starts a
local Ray (:func:`start_ray`), and shuts down a Ray it started.

A sweep started without a cluster address starts its own Ray on this machine. By
default Ray (2.60) advertises the machine's external address even when asked for
``127.0.0.1`` (``ray.init`` rewrites a loopback ``_node_ip_address`` to the external
one), and its servers then listen on every interface: the GCS server, the raylet,
every worker's and the driver's gRPC servers on ``*:port``, the runtime-env agent on
the external address. Anyone who reaches a Ray port can run code in it; Ray's token
authentication (on by default for a local Ray since 2.60) is then the only guard.

Ray's single-machine mode — the one it uses on macOS and Windows — keeps the node on
``127.0.0.1``; with the node address on loopback, every server listens on loopback
only. :func:`start_local_ray` turns that mode on for this process and the Ray
processes it starts. ``tests/test_ray_loopback.py`` checks the listening sockets of
every process of such a Ray; the dashboard (which would listen on its own port) is not
started.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

import ray

from sweeps import ray_compat
from sweeps.errors import SweepError, usage_error

LOOPBACK = "127.0.0.1"

SINGLE_MACHINE_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
"""Ray's switch between cluster mode (``1``, Linux default) and single-machine mode
(``0``: the node address is the loopback one). Read by every Ray process at import."""


def loopback_only() -> None:
    """Put this process, and the Ray processes it starts from now on, into Ray's
    single-machine mode (node address 127.0.0.1).

    Ray reads :data:`SINGLE_MACHINE_ENV` once, when it is imported: child processes
    (the runtime-env agent, workers) inherit the variable; for this already-imported
    driver the module constant is set too.
    """
    os.environ[SINGLE_MACHINE_ENV] = "0"
    ray_compat.set_single_machine_mode()


def running_cluster() -> bool:
    """Whether ``ray.init()`` without an address would connect to a running Ray —
    ``RAY_ADDRESS``, or a cluster started with ``ray start`` on this machine — rather
    than start a new one (which then must be started by :func:`start_local_ray`)."""
    return ray_compat.running_cluster_address() is not None


def start_local_ray(num_cpus: int | None, num_gpus: int | None, *, log_to_driver: bool = True) -> None:
    """Start a new Ray of this machine only: nodes on 127.0.0.1, no dashboard.

    Args:
        num_cpus, num_gpus: resources to declare (``None``: detected).
        log_to_driver: forward the workers' output to this process.
    """
    loopback_only()
    ray_compat.init_local_ray(
        LOOPBACK, num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False, log_to_driver=log_to_driver
    )


def start_ray(args: argparse.Namespace) -> bool:
    """Connect to a Ray cluster or start a local one; returns True if started here.

    A Ray already initialised in this process (tests, :mod:`sweeps.demo`) is reused.
    """
    if ray.is_initialized():
        return False
    local = args.num_cpus is not None or args.num_gpus is not None
    address = args.address
    if local and address not in (None, "local"):
        raise SweepError("--num-cpus/--num-gpus start a new local Ray; they cannot be combined with --address")
    if local or (address is None and not running_cluster()):
        address = "local"  # a new Ray of this machine (nothing to connect to)
    project_on_worker_path()
    if address == "local":
        start_local_ray(args.num_cpus, args.num_gpus)
    else:
        ray.init(address=address, include_dashboard=False, log_to_driver=True)
    return True


def project_on_worker_path() -> None:
    """Put the project root on ``PYTHONPATH``: the workers of a Ray started here inherit
    it and import ``dartsrenet`` from this checkout even where it is not pip-installed
    (elsewhere, e.g. on cluster nodes, the installed package is used)."""
    root = str(Path(__file__).resolve().parents[1])
    paths = [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path]
    if root not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([root, *paths])


def with_ray(args: argparse.Namespace, body: Callable[[], int]) -> int:
    """Start or connect to Ray, run ``body``, shut down a Ray started here.

    :class:`SweepError` (e.g. a GPU asked of a cluster without one) becomes exit status 2
    with an ``error:`` line on stderr.
    """
    started = False
    try:
        started = start_ray(args)
        return body()
    except SweepError as error:
        return usage_error(error)
    finally:
        if started:
            ray.shutdown()

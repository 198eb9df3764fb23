"""A local Ray that listens on the loopback address only (docs/cluster.md, "Security").

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

import os

import ray

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
    # Private API (Ray 2.60): `ray._private.ray_constants.ENABLE_RAY_CLUSTER`, the
    # constant that `services.get_node_ip_address` reads at each call; it was computed
    # from the variable above when ray was imported.
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def running_cluster() -> bool:
    """Whether ``ray.init()`` without an address would connect to a running Ray —
    ``RAY_ADDRESS``, or a cluster started with ``ray start`` on this machine — rather
    than start a new one (which then must be started by :func:`start_local_ray`)."""
    # Private API (Ray 2.60): `services.canonicalize_bootstrap_address`, the lookup that
    # ray.init itself does for address=None; None means "start a local instance".
    from ray._private import services

    return services.canonicalize_bootstrap_address(None) is not None


def start_local_ray(num_cpus: int | None, num_gpus: int | None, *, log_to_driver: bool = True) -> None:
    """Start a new Ray of this machine only: nodes on 127.0.0.1, no dashboard.

    Args:
        num_cpus, num_gpus: resources to declare (``None``: detected).
        log_to_driver: forward the workers' output to this process.
    """
    loopback_only()
    ray.init(
        address="local",
        num_cpus=num_cpus,
        num_gpus=num_gpus,
        include_dashboard=False,
        log_to_driver=log_to_driver,
        # Private argument of ray.init (Ray 2.60): the node's address.
        _node_ip_address=LOOPBACK,
    )

"""What a trial needs and what the Ray cluster has.

Resources are checked before a sweep starts: Ray would leave a trial that asks for a
GPU on a GPU-less cluster pending forever, so :func:`check_resources` fails at once
(a :class:`~sweeps.errors.SweepError`) unless ``--autoscale`` says that the autoscaler
will add GPU nodes. Where a trial then runs, and on which device, is the trial's own
business (:func:`sweeps.trainable.trial_device`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping, Sequence

import ray

from sweeps.errors import SweepError


def node_capacities() -> list[dict[str, float]]:
    """CPU and GPU count of every alive node of the connected cluster."""
    return [
        {"CPU": float(node["Resources"].get("CPU", 0)), "GPU": float(node["Resources"].get("GPU", 0))}
        for node in ray.nodes()
        if node.get("Alive")
    ]


def default_gpus_per_trial(nodes: Iterable[Mapping[str, float]]) -> float:
    """1 GPU per trial where the cluster has GPUs, else 0 (CPU trials)."""
    return 1.0 if any(node["GPU"] > 0 for node in nodes) else 0.0


def check_resources(cpus: float, gpus: float, nodes: Sequence[Mapping[str, float]], autoscale: bool) -> None:
    """Refuse a trial shape that no node can host — Ray would keep it pending forever.

    Args:
        cpus, gpus: resources of one trial.
        nodes: :func:`node_capacities` of the cluster.
        autoscale: the autoscaler will add nodes, so only the request's form is checked.

    Raises:
        SweepError: with what was asked, what the cluster has, and what to do.
    """
    if cpus <= 0:
        raise SweepError(f"--cpus-per-trial must be positive, got {cpus:g}")
    if gpus < 0:
        raise SweepError(f"--gpus-per-trial must be 0 or more, got {gpus:g}")
    if gpus > 1 and not float(gpus).is_integer():
        raise SweepError(f"--gpus-per-trial above 1 must be a whole number of GPUs, got {gpus:g}")
    if autoscale:
        return
    have = ", ".join(f"{node['CPU']:g} CPUs + {node['GPU']:g} GPUs" for node in nodes) or "no nodes"
    if gpus > 0 and not any(node["GPU"] > 0 for node in nodes):
        raise SweepError(
            f"--gpus-per-trial {gpus:g} asks for a GPU, but the Ray cluster has none ({have}). "
            "Run on CPU with --gpus-per-trial 0, connect to a cluster with GPUs (--address), "
            "or pass --autoscale if the cluster's autoscaler adds GPU nodes on demand."
        )
    if not any(node["CPU"] >= cpus and node["GPU"] >= gpus for node in nodes):
        raise SweepError(
            f"no node of the Ray cluster can host a trial of {cpus:g} CPUs and {gpus:g} GPUs ({have}); "
            "lower --cpus-per-trial/--gpus-per-trial, or pass --autoscale if bigger nodes will be added."
        )


def trial_resources(args: argparse.Namespace, log: Callable[[str], None] = print) -> dict[str, float]:
    """Resources of one trial from the flags and the connected cluster (checked)."""
    nodes = node_capacities()
    gpus = args.gpus_per_trial
    if gpus is None:
        gpus = default_gpus_per_trial(nodes)
        if args.autoscale and gpus == 0:
            log("note: --autoscale without --gpus-per-trial runs CPU trials (an autoscaling cluster "
                "shows no GPUs until it adds GPU nodes); pass --gpus-per-trial to use them")
    check_resources(args.cpus_per_trial, gpus, nodes, args.autoscale)
    total_cpus = sum(node["CPU"] for node in nodes)
    total_gpus = sum(node["GPU"] for node in nodes)
    log(f"Ray cluster: {len(nodes)} node(s), {total_cpus:g} CPUs, {total_gpus:g} GPUs; "
        f"each trial gets {args.cpus_per_trial:g} CPUs and {gpus:g} GPUs")
    return {"cpu": args.cpus_per_trial, "gpu": gpus}

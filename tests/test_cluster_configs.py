"""Offline validation of the Ray cluster launcher configs (cluster*.yaml).

Uses the same checks that ``ray up`` runs before it touches a cloud or a machine:
``prepare_config`` (merges the provider's defaults.yaml; for the ``local``
provider also builds the single node type from head_ip/worker_ips) then
``validate_config`` (JSON schema shipped in the Ray wheel, plus cross-field
checks). Both are private Ray API (``ray.autoscaler._private.util``).
``prepare_config`` only reads files for AWS (no boto3 call, no network); the
``offline`` fixture makes any connection attempt fail to keep it that way.
"""

from __future__ import annotations

import copy
import re
import socket
from pathlib import Path

import pytest
import yaml

pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[sweeps]')")
# Both are Ray dependencies: the local provider aborts with click.ClickException,
# and validate_config raises jsonschema.ValidationError.
import click
import jsonschema
from ray.autoscaler._private.util import prepare_config, validate_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("cluster.yaml", "cluster.local.yaml")


def load(name: str) -> dict:
    with open(ROOT / name) as f:
        return yaml.safe_load(f)


def prepare_and_validate(config: dict) -> dict:
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


@pytest.fixture
def offline(monkeypatch):
    """Fail loudly if validation tries to reach the network (e.g. AWS)."""

    def refuse(*args, **kwargs):
        raise AssertionError("cluster config validation tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_passes_ray_validation(name, offline):
    prepared = prepare_and_validate(load(name))
    assert prepared["head_node_type"] in prepared["available_node_types"]


def test_aws_node_types():
    config = load("cluster.yaml")
    node_types = config["available_node_types"]
    assert config["provider"]["type"] == "aws"
    assert node_types[config["head_node_type"]]["resources"].get("GPU", 0) == 0
    expected = {"gpu_1x_a10g": (1, 8), "gpu_4x": (4, 2)}  # name: (GPUs per node, max nodes)
    for name, (gpus, max_workers) in expected.items():
        node_type = node_types[name]
        assert node_type["resources"]["GPU"] == gpus
        assert (node_type["min_workers"], node_type["max_workers"]) == (0, max_workers)
        assert node_type["node_config"]["InstanceMarketOptions"]["MarketType"] == "spot"
        # Merged from the head's node_config through the YAML anchor.
        assert node_type["node_config"]["ImageId"] == node_types["head_cpu"]["node_config"]["ImageId"]
    assert sum(t.get("max_workers", 0) for t in node_types.values()) <= config["max_workers"]


def test_local_config_leaves_node_types_to_ray():
    config = load("cluster.local.yaml")
    assert config["provider"]["type"] == "local"
    assert "available_node_types" not in config and "head_node_type" not in config


@pytest.mark.parametrize("name", CONFIGS)
def test_project_reaches_every_node(name):
    """`ray submit` uploads only the script: the project must be mounted and installed."""
    config = load(name)
    assert config["file_mounts"]["~/dartsrenet"] == "."
    assert {".venv", ".git", "results", "/data"} <= set(config["rsync_exclude"])
    assert any('pip install -e "$HOME/dartsrenet[all]"' in c for c in config["setup_commands"])


def test_configs_pin_the_same_ray_version():
    pins = {
        name: re.findall(r"ray\[[\w,]+\]==([\w.]+)", " ".join(load(name)["setup_commands"]))
        for name in CONFIGS
    }
    assert all(len(found) == 1 for found in pins.values()), pins
    assert len({found[0] for found in pins.values()}) == 1, pins


# --- broken copies must be refused --------------------------------------------------


def _set(path: str, value):
    """Mutation setting config[a][b]... = value for a dotted path."""

    def mutate(config: dict) -> None:
        *parents, leaf = path.split(".")
        for key in parents:
            config = config[key]
        config[leaf] = value

    return mutate


def _delete(key: str):
    return lambda config: config.pop(key)


BREAKAGES = [
    # (config file, what is broken, mutation, expected exception)
    ("cluster.yaml", "unknown top-level key", _set("max_wokers", 4), jsonschema.ValidationError),
    ("cluster.yaml", "unknown node type key",
     _set("available_node_types.gpu_4x.max_worker", 2), jsonschema.ValidationError),
    ("cluster.yaml", "fractional resource",
     _set("available_node_types.gpu_1x_a10g.resources", {"CPU": 8, "GPU": 0.5}),
     jsonschema.ValidationError),
    ("cluster.yaml", "resource given as text",
     _set("available_node_types.head_cpu.resources", {"CPU": "8"}), jsonschema.ValidationError),
    ("cluster.yaml", "missing provider", _delete("provider"), KeyError),
    ("cluster.yaml", "unknown provider type", _set("provider.type", "aws2"), NotImplementedError),
    ("cluster.yaml", "head type not defined", _set("head_node_type", "gpu_8x"), ValueError),
    ("cluster.yaml", "min_workers above the global max_workers",
     _set("available_node_types.gpu_1x_a10g.min_workers", 11), ValueError),
    ("cluster.local.yaml", "unknown top-level key", _set("head_ips", ["192.0.2.10"]),
     jsonschema.ValidationError),
    ("cluster.local.yaml", "node types given for the local provider",
     _set("available_node_types", {"cpu": {"node_config": {}, "resources": {"CPU": 4}}}),
     click.ClickException),
    ("cluster.local.yaml", "no worker_ips", lambda c: c["provider"].pop("worker_ips"),
     click.ClickException),
    ("cluster.local.yaml", "missing provider", _delete("provider"), KeyError),
]


@pytest.mark.parametrize(
    "name, mutate, error",
    [
        pytest.param(name, mutate, error, id=f"{name.split('.')[-2]}-{what.replace(' ', '-')}")
        for name, what, mutate, error in BREAKAGES
    ],
)
def test_broken_config_is_refused(name, mutate, error, offline):
    config = load(name)
    mutate(config)
    with pytest.raises(error):
        prepare_and_validate(config)


TOKEN_FILE = "~/.ray/auth_token"


@pytest.mark.parametrize("name", CONFIGS)
def test_nodes_share_one_token_and_start_ray_in_token_mode(name):
    """Ray's token authentication: the launching machine's token (`ray get-auth-token
    --generate`) reaches every node through file_mounts, every `ray start` runs with
    RAY_AUTH_MODE=token (Ray then refuses to start without the token), and drivers'
    shells (`ray submit`) use token mode too."""
    config = load(name)
    assert config["file_mounts"][TOKEN_FILE] == TOKEN_FILE
    starts = [command for key in ("head_start_ray_commands", "worker_start_ray_commands")
              for command in config[key] if "ray start" in command]
    assert len(starts) == 2
    assert all(re.search(r"(^|;\s*)RAY_AUTH_MODE=token ray start ", command) for command in starts), starts
    setup = config["setup_commands"]
    assert f"chmod 600 {TOKEN_FILE}" in setup
    assert any("echo \"export RAY_AUTH_MODE=token\" >> ~/.bashrc" in command for command in setup), setup
    assert "--dashboard-host" not in " ".join(starts), "the dashboard stays on the head's loopback (Ray's default)"

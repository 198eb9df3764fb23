"""The listening sockets of a process tree, read from Linux's ``/proc`` (no psutil).

Run as a script (``python -m tests.listening_sockets OUT``) it starts a local Ray the
way a sweep script without flags does (``ray_setup.start_ray``: no cluster to connect to,
so a new local one), runs one Ray Tune
trial that records, while it runs, every listening socket of this process and all its
descendants (GCS server, raylet, agents, workers, the trial itself), and writes them
to ``OUT`` as JSON: ``[[pid, command, protocol, address, port], …]``.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import struct
import sys
from pathlib import Path

TCP_LISTEN = "0A"


def _address(hex_address: str) -> str:
    """An address of /proc/net/{tcp,udp}[6] (little-endian 32-bit words) as text."""
    if len(hex_address) == 8:
        return socket.inet_ntop(socket.AF_INET, struct.pack("<I", int(hex_address, 16)))
    words = b"".join(struct.pack("<I", int(hex_address[i:i + 8], 16)) for i in range(0, 32, 8))
    return socket.inet_ntop(socket.AF_INET6, words)


def listening_by_inode() -> dict[str, tuple[str, str, int]]:
    """Every listening TCP socket and every unconnected bound UDP socket of the machine:
    ``{inode: (protocol, address, port)}``."""
    sockets = {}
    for protocol in ("tcp", "tcp6", "udp", "udp6"):
        path = Path("/proc/net", protocol)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if protocol.startswith("tcp") and state != TCP_LISTEN:
                continue
            if protocol.startswith("udp") and int(remote.split(":")[1], 16) != 0:
                continue  # a connected UDP socket receives from its peer only
            hex_address, hex_port = local.split(":")
            sockets[inode] = (protocol, _address(hex_address), int(hex_port, 16))
    return sockets


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path("/proc", entry, "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def process_sockets(root: int) -> list[tuple[int, str, str, str, int]]:
    """The listening sockets of ``root`` and its descendants:
    ``(pid, command, protocol, address, port)``."""
    sockets = listening_by_inode()
    found = []
    for pid in descendants(root):
        try:
            command = Path("/proc", str(pid), "cmdline").read_text().replace("\0", " ").strip()
            targets = []
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    targets.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
                except OSError:
                    continue
        except OSError:  # the process ended meanwhile
            continue
        for target in targets:
            if target.startswith("socket:[") and target[8:-1] in sockets:
                found.append((pid, command, *sockets[target[8:-1]]))
    return found


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1, or an IPv4-mapped loopback address (``::ffff:127.0.0.1``)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _probe_trial(config: dict) -> None:
    from ray import tune

    tune.report({"sockets": process_sockets(config["driver_pid"])})


def main(out: str) -> None:
    from ray import tune

    from sweeps import options, ray_setup, search_all_variants

    args = options.namespace(search_all_variants.build_parser())  # no flags: the default path
    assert ray_setup.start_ray(args)
    storage = Path(out).parent / "probe_results"
    tuner = tune.Tuner(
        _probe_trial,
        param_space={"driver_pid": os.getpid()},
        run_config=tune.RunConfig(storage_path=str(storage), name="probe", verbose=0),
    )
    [result] = list(tuner.fit())
    if result.error is not None:
        raise result.error
    Path(out).write_text(json.dumps(result.metrics["sockets"]))


if __name__ == "__main__":
    main(sys.argv[1])

"""A sweep's own local Ray listens on the loopback address only (sweeps/ray_setup.py).

The probe (``tests/listening_sockets.py``) runs a sweep's Ray start without flags in a
fresh process whose environment carries neither ``RAY_ADDRESS`` nor the single-machine
switch that ``conftest.py`` sets for the test session, so what is checked is what
``ray_setup.start_ray`` itself does when there is no cluster to connect to. It lists every
listening socket of every process of the Ray it started, while a Tune trial runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[sweeps]')")

from sweeps import ray_setup
from tests.listening_sockets import is_loopback

ROOT = Path(__file__).resolve().parents[1]

KNOWN_NON_LOOPBACK: frozenset[str] = frozenset()
"""Ray processes allowed to listen beyond the loopback address (by program name):
none with Ray 2.60 in single-machine mode without the dashboard."""

RAY_SERVERS = ("gcs_server", "raylet")
"""Programs that must be seen listening, so that the check cannot pass on an empty list."""


def test_is_loopback():
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("::ffff:127.0.0.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("192.0.2.2")


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc")
def test_local_sweep_ray_listens_on_loopback_only(tmp_path):
    env = {key: value for key, value in os.environ.items()
           if key not in ("RAY_ADDRESS", ray_setup.SINGLE_MACHINE_ENV)}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))])
    # A Ray folder of its own: no cluster started elsewhere on this machine to connect to
    # (short: Ray's socket paths must fit in 107 characters).
    env["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="ray_", dir="/tmp")
    out = tmp_path / "sockets.json"
    try:
        result = subprocess.run([sys.executable, "-m", "tests.listening_sockets", str(out)], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=300, check=False)
    finally:
        shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    sockets = json.loads(out.read_text())
    programs = {Path(command.split()[0]).name for _, command, *_ in sockets}
    assert all(name in programs for name in RAY_SERVERS), sockets
    exposed = sorted(
        (Path(command.split()[0]).name, protocol, address, port)
        for _, command, protocol, address, port in sockets if not is_loopback(address)
    )
    assert {name for name, *_ in exposed} == KNOWN_NON_LOOPBACK, f"listening beyond loopback: {exposed}"

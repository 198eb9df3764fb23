"""``.ci/fresh-machine`` (what ``.ci/run`` runs the tests in) shows a command a new machine.

The command sees an empty temp folder and an empty home folder — so no Ray folder in the
temp folder, no compiled kernels, matplotlib or triton caches in the home folder — and none
of the variables that would move those caches elsewhere; nothing of it is left afterwards.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, os, tempfile
home, temp = os.path.expanduser("~"), tempfile.gettempdir()
print(json.dumps({
    "home": home, "temp": temp, "home_entries": os.listdir(home), "temp_entries": os.listdir(temp),
    "moved": {name: os.environ.get(name) for name in ("RAY_TMPDIR", "DARTSRENET_CACHE", "XDG_CACHE_HOME")},
}))
"""


def test_a_command_sees_empty_temp_and_home_folders(tmp_path):
    (tmp_path / "left-by-an-earlier-run").write_text("")
    environment = {**os.environ, "RAY_TMPDIR": str(tmp_path), "DARTSRENET_CACHE": str(tmp_path),
                   "XDG_CACHE_HOME": str(tmp_path), "TMPDIR": str(tmp_path)}
    result = subprocess.run([str(ROOT / ".ci" / "fresh-machine"), sys.executable, "-c", PROBE], env=environment,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["home_entries"] == [] and seen["temp_entries"] == [], seen
    assert seen["moved"] == {"RAY_TMPDIR": None, "DARTSRENET_CACHE": None, "XDG_CACHE_HOME": None}
    assert str(tmp_path) not in (seen["home"], seen["temp"])
    assert not Path(seen["home"]).exists() and not Path(seen["temp"]).exists(), "left behind"


def test_the_command_s_exit_status_is_kept():
    result = subprocess.run([str(ROOT / ".ci" / "fresh-machine"), "sh", "-c", "exit 3"], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 3, result.stderr

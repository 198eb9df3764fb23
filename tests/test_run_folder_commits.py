"""Run folders after kills, hostile files, full disks and read-only folders (docs/design.md, "Run folder").

* A kill at any file write of a run, then a rerun, ends with the files of an uninterrupted
  run: the kill is injected deterministically into the one write function
  (``dartsrenet.runs._atomic_write_bytes``) at its k-th call, for every k of a search and of
  an evaluation run, leaving the half-written temporary file a kill leaves; and once for
  real (SIGKILL inside the second write of ``best.pt``, in a subprocess).
* A checkpoint (or ``best.pt``) whose unpickling would run code is refused with one line
  and nothing in it runs.
* A full disk (a real, tiny tmpfs) and a read-only folder (a real read-only mount) are
  one ``error:`` line naming the file or folder and the cause — in a private mount
  namespace (``unshare``), which CI must allow.
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
import torch

from dartsrenet import runs
from dartsrenet.cli import main
from dartsrenet.config import resolve_config
from dartsrenet.runs import CHECKPOINT_DIR, CHECKPOINT_FILE, TEMPORARY_SUFFIX, CheckpointError, WriteError
from dartsrenet.search import run_search
from dartsrenet.train import run_train

ROOT = Path(__file__).resolve().parents[1]

# Tiny runs of two epochs whose second epoch is selected again (it improves), so best.pt is
# written twice; the search runs one step of each kind per epoch.
SEARCH = {"dataset": "digits", "channels": 2, "epochs": 2, "limit": 24, "batch_size": 12, "device": "cpu", "seed": 0}
TRAIN = {"dataset": "digits", "channels": 2, "epochs": 2, "limit": 96, "batch_size": 12, "device": "cpu", "seed": 4,
         "cell": "gru"}
TRAIN_ARGS = ["train", "--cell", "gru", "--preset", "demo", "--device", "cpu", "--seed", "4", "--epochs", "2",
              "--set", "channels=2", "--set", "limit=96", "--set", "batch_size=12"]

EPOCH_FILES = {
    "search": ["checkpoint.pt", "metrics.jsonl", "best.pt", "alpha_history.json", "genotype.json"],
    "train": ["checkpoint.pt", "metrics.jsonl", "best.pt"],
}
"""The files an epoch writes, in order: the checkpoint (the commit point), then its views."""


def writes(kind: str) -> list[str]:
    """Every file write of a run of two improving epochs, in order."""
    return ["config.json", *EPOCH_FILES[kind], *EPOCH_FILES[kind], "summary.json"]


RUNNERS = {"search": run_search, "train": run_train}


def config(kind: str, out: Path):
    return resolve_config(kind, "demo", {**(SEARCH if kind == "search" else TRAIN), "out": str(out)})


TIMING = {"epoch_time_s", "wall_time_s", "out", "capture", "validation_capture"}
"""Fields that differ between equal runs: timing, the folder's own path, and the capture
reports (how this process ran its steps: a resumed run counts only the steps it ran)."""


def comparable(value: Any) -> Any:
    """``value`` without timing fields, tensors as (dtype, shape, values), for ``==``."""
    if isinstance(value, dict):
        return {key: comparable(item) for key, item in value.items() if key not in TIMING}
    if isinstance(value, (list, tuple)):
        return [comparable(item) for item in value]
    if isinstance(value, torch.Tensor):
        return (str(value.dtype), tuple(value.shape), value.detach().cpu().tolist())
    return value


def folder_contents(folder: Path) -> dict[str, Any]:
    """Every file of a run folder, read (``.pt`` as plain data only), comparable across runs."""
    contents = {}
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        name = str(path.relative_to(folder))
        if path.suffix == ".pt":
            contents[name] = comparable(torch.load(path, weights_only=True))
        elif path.suffix == ".jsonl":
            contents[name] = [comparable(json.loads(line)) for line in path.read_text().splitlines()]
        elif path.suffix == ".json":
            contents[name] = comparable(json.loads(path.read_text()))
        else:
            contents[name] = path.read_bytes()
    return contents


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict[str, dict[str, Any]]:
    """An uninterrupted run of each kind: its files, and the file writes it made."""
    result = {}
    for kind, run in RUNNERS.items():
        out = tmp_path_factory.mktemp(f"uninterrupted_{kind}") / "run"
        made = []
        real = runs._atomic_write_bytes
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(runs, "_atomic_write_bytes", lambda path, data: (made.append(path.name), real(path, data)))
            summary = run(config(kind, out), log=None)
        assert summary["best_epoch"] == 2, f"this test needs a {kind} run whose second epoch is selected"
        result[kind] = {"folder": out, "files": folder_contents(out), "writes": made}
    return result


class Killed(BaseException):
    """The process died here (raised past every ``except Exception``)."""


def half_written_temporary(path: Path, data: bytes) -> None:
    """What a kill inside a write leaves: a temporary file named as the write function names
    its own, with part of the data, never renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, _ = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    os.write(descriptor, data[: len(data) // 2])
    os.close(descriptor)


def run_killed_at_write(kind: str, out: Path, kill_at: int) -> str:
    """Run until the ``kill_at``-th file write (1-based), which is left half-done; returns the file's name."""
    made = []
    real = runs._atomic_write_bytes

    def write(path: Path, data: bytes) -> None:
        made.append(path.name)
        if len(made) == kill_at:
            half_written_temporary(path, data)
            raise Killed(path.name)
        real(path, data)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(runs, "_atomic_write_bytes", write)
        with pytest.raises(Killed):
            RUNNERS[kind](config(kind, out), log=None)
    return made[-1]


@pytest.mark.parametrize(
    ("kind", "kill_at"),
    [(kind, k) for kind in RUNNERS for k in range(1, len(writes(kind)) + 1)],
    ids=[f"{kind}-{k}-{name}" for kind in RUNNERS for k, name in enumerate(writes(kind), start=1)],
)
def test_a_rerun_after_a_kill_at_any_write_ends_like_an_uninterrupted_run(tmp_path, uninterrupted, kind, kill_at):
    reference = uninterrupted[kind]
    assert reference["writes"] == writes(kind), "the writes of a run changed: update writes() and EPOCH_FILES"
    out = tmp_path / "run"
    killed_in = run_killed_at_write(kind, out, kill_at)
    assert killed_in == writes(kind)[kill_at - 1]
    assert list(out.rglob(f"*{TEMPORARY_SUFFIX}")), "the kill should leave its temporary file"
    logs = []
    RUNNERS[kind](config(kind, out), log=logs.append)
    assert not list(out.rglob(f".*{TEMPORARY_SUFFIX}")), "a rerun leaves no temporary file"
    assert folder_contents(out) == reference["files"], f"killed in write {kill_at} ({killed_in}); rerun logged {logs}"


def test_a_real_kill_inside_the_second_save_of_the_best_weights(tmp_path, uninterrupted, capsys):
    """SIGKILL between writing best.pt's temporary file and renaming it, at epoch 2; rerun by the CLI."""
    out = tmp_path / "run"
    killer = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from dartsrenet.cli import main\n"
        "replace, saves = os.replace, []\n"
        "def killing_replace(source, target):\n"
        "    if Path(target).name == 'best.pt':\n"
        "        saves.append(target)\n"
        "        if len(saves) == 2:\n"
        "            os.kill(os.getpid(), signal.SIGKILL)\n"
        "    replace(source, target)\n"
        "os.replace = killing_replace\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    killed = subprocess.run(
        [sys.executable, "-c", killer, *TRAIN_ARGS, "--out", str(out)],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert list(out.glob(f".best.pt.*{TEMPORARY_SUFFIX}")), "killed after writing best.pt's temporary file"
    assert main([*TRAIN_ARGS, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "resumed" in printed and "after epoch 2" in printed and "rewrote best.pt" in printed, printed
    assert folder_contents(out) == uninterrupted["train"]["files"]


def test_a_folder_without_its_checkpoint_starts_over_without_the_old_files(tmp_path, uninterrupted):
    """The checkpoint is what the other files show: without it, the run starts from epoch 1 and
    no file of the earlier attempt (metrics, best weights, summary) is left to disagree."""
    out = tmp_path / "run"
    shutil.copytree(uninterrupted["train"]["folder"], out)
    shutil.rmtree(out / CHECKPOINT_DIR)
    logs = []
    run_killed_at_write("train", out, kill_at=2)  # config.json, then killed writing the first checkpoint
    assert sorted(path.name for path in out.iterdir() if not path.name.startswith(".")) == ["checkpoint", "config.json"]
    run_train(config("train", out), log=logs.append)
    assert folder_contents(out) == uninterrupted["train"]["files"]


# --- hostile files --------------------------------------------------------------------
class CreatesFileWhenLoaded:
    """A pickle that runs code when loaded: it creates the file ``path``."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def hostile_files(directory: Path, marker: Path) -> dict[str, Path]:
    """The same code-running payload as a torch.save zip and as a plain pickle."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"epoch": 1, "model": CreatesFileWhenLoaded(marker), "history": []}
    zipped, plain = directory / "zip.pt", directory / "pickle.pt"
    torch.save(payload, zipped)
    with plain.open("wb") as handle:
        pickle.dump(payload, handle)
    return {"zip": zipped, "pickle": plain}


@pytest.mark.parametrize("form", ["zip", "pickle"])
def test_a_checkpoint_that_would_run_code_is_refused_in_one_line(tmp_path, uninterrupted, capsys, form):
    marker = tmp_path / "marker"
    hostile = hostile_files(tmp_path / "hostile", marker)[form]
    # The probe is real: loading it the unsafe way runs its code.
    torch.load(hostile, weights_only=False) if form == "zip" else pickle.loads(hostile.read_bytes())
    assert marker.exists()
    marker.unlink()

    out = tmp_path / "run"
    (out / CHECKPOINT_DIR).mkdir(parents=True)
    shutil.copy(uninterrupted["train"]["folder"] / "config.json", out / "config.json")
    checkpoint = out / CHECKPOINT_DIR / CHECKPOINT_FILE
    shutil.copy(hostile, checkpoint)
    assert main([*TRAIN_ARGS, "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and captured.err.startswith(f"error: {checkpoint}: refused to load"), captured.err
    assert ("names io.open" if form == "zip" else "Unsupported operand") in captured.err
    assert f"delete {out / CHECKPOINT_DIR}" in captured.err
    assert not marker.exists(), "the checkpoint's code ran"
    assert checkpoint.read_bytes() == hostile.read_bytes()  # nothing overwritten
    with pytest.raises(CheckpointError, match="refused to load"):
        runs.load_checkpoint(out / CHECKPOINT_DIR)
    assert not marker.exists()


def test_a_best_weights_file_that_would_run_code_is_never_loaded_and_is_replaced(tmp_path, uninterrupted):
    marker = tmp_path / "marker"
    out = tmp_path / "run"
    shutil.copytree(uninterrupted["train"]["folder"], out)
    shutil.copy(hostile_files(tmp_path / "hostile", marker)["zip"], out / "best.pt")
    logs = []
    run_train(config("train", out), log=logs.append)
    assert not marker.exists(), "best.pt's code ran"
    assert any("rewrote best.pt" in line for line in logs), logs
    assert folder_contents(out) == uninterrupted["train"]["files"]


# --- full disks and read-only folders ----------------------------------------------------
def test_a_failed_write_is_one_line_naming_the_file_and_keeps_the_old_file(tmp_path, monkeypatch):
    """The write function's own contract, with the OS error injected (the real disk is below)."""
    target = tmp_path / "checkpoint.pt"
    target.write_bytes(b"previous")

    def full_disk(descriptor: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(WriteError) as raised:
        runs._atomic_write_bytes(target, b"new")
    assert raised.value.errno == errno.ENOSPC
    assert str(raised.value).startswith(f"cannot write {target}: No space left on device (ENOSPC)")
    assert "\n" not in str(raised.value)
    assert target.read_bytes() == b"previous" and sorted(tmp_path.iterdir()) == [target]


def private_mount_namespace() -> list[str]:
    """The ``unshare`` command that gives a private mount namespace here (root: ``-m``; otherwise
    ``-r -m``, a user namespace); skips where none can be made — and fails under CI, which must test this."""
    command = ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-r", "-m"]
    probe = None
    if shutil.which("unshare"):
        probe = subprocess.run([*command, "sh", "-c", "mount -t tmpfs tmpfs /mnt || mount -t tmpfs tmpfs /tmp"],
                               capture_output=True, text=True, timeout=60)
    if probe is None or probe.returncode != 0:
        message = f"cannot mount a tmpfs in a private mount namespace ({probe.stderr.strip() if probe else 'no unshare'})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must test full disks and read-only folders for real")
        pytest.skip(message)
    return command


FULL_AND_READ_ONLY = """
import contextlib, io, json, sys
from pathlib import Path
from dartsrenet.cli import main
results = {}
for name, out in [("full", sys.argv[1]), ("read_only_new", sys.argv[2]), ("read_only_existing", sys.argv[3])]:
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        status = main([*sys.argv[4:], "--out", out])
    left = sorted(str(path.relative_to(out)) for path in Path(out).rglob("*")) if Path(out).exists() else []
    results[name] = {"status": status, "out": stdout.getvalue(), "err": stderr.getvalue(), "files": left}
print(json.dumps(results))
"""


def test_a_full_disk_and_a_read_only_folder_are_one_line_each(tmp_path):
    unshare = private_mount_namespace()
    full, read_only = tmp_path / "full", tmp_path / "read_only"
    full.mkdir(), read_only.mkdir()
    # 16 KiB of tmpfs: config.json fits, the checkpoint (about 75 kB) does not.
    script = (
        f"mount -t tmpfs -o size=16k tmpfs {full} && mount -t tmpfs tmpfs {read_only} "
        f"&& mkdir {read_only}/run && echo '{{}}' > {read_only}/run/config.json "
        f"&& mount -o remount,ro {read_only} && exec \"$@\""
    )
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(
        [*unshare, "sh", "-c", script, "sh", sys.executable, "-c", FULL_AND_READ_ONLY,
         str(full / "run"), str(read_only / "new"), str(read_only / "run"), *TRAIN_ARGS],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.splitlines()[-1])

    disk_full = outcome["full"]
    checkpoint = full / "run" / CHECKPOINT_DIR / CHECKPOINT_FILE
    assert disk_full["status"] == 2 and disk_full["err"].count("\n") == 1, disk_full
    assert disk_full["err"].startswith(f"error: cannot write {checkpoint}: No space left on device (ENOSPC)"), disk_full
    assert "inline_container" not in disk_full["err"]
    assert disk_full["files"] == ["checkpoint", "config.json"], "the failed write leaves no temporary file"

    for name, folder in [("read_only_new", read_only / "new"), ("read_only_existing", read_only / "run")]:
        refused = outcome[name]
        assert refused["status"] == 2 and refused["err"].count("\n") == 1, refused
        assert refused["err"].startswith(f"error: cannot write to the run folder {folder}"), refused
        assert "Read-only file system (EROFS)" in refused["err"], refused
        assert "[train]" not in refused["out"], "refused before any work"

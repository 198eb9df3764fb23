"""Run folders: the artifacts of one search or evaluation run (docs/design.md).

A run folder holds the resolved config, per-epoch metrics (JSON lines), the latest
checkpoint (everything needed to resume), the best epoch's weights, and a summary
with versions and the code revision.

Commit protocol (docs/design.md, "Run folder"): the checkpoint is the one commit point
of an epoch. It holds the whole history and the best weights, and every other file
(``metrics.jsonl``, ``best.pt``, a search's α history and genotype) is a view of it,
written after it. A run that starts again compares those views with its checkpoint
and rewrites the ones that differ (:meth:`RunFolder.repair`), removes ``summary.json``
of a run the checkpoint does not show finished, and deletes the temporary files of
interrupted writes — so a run killed at any instant ends, when rerun, with the files
of an uninterrupted run.

Every file goes through one write function (:func:`_atomic_write_bytes`): a temporary
file in the same folder, flushed to disk, then renamed over the target, with the mode
an ordinary ``open`` would give it (0666 less the umask), so colleagues on shared
storage can read the results as they read Ray's files. A failed write (disk full,
read-only file system) is one :class:`WriteError` line naming the file and the cause.

Checkpoints hold only tensors and plain data and are read with
``torch.load(..., weights_only=True)``: a file that would need to run code to load is
refused (:class:`CheckpointError`) and nothing in it runs.

The module keeps these together (past 500 lines) because they are one contract: which
files a run folder holds, how each is written, and how they are kept consistent.

JSON files are strict JSON: a number that is not finite is written as ``null``
(never ``NaN``, which strict readers reject). The engine never *records* a
non-finite metric as a number: the training loss and the test metrics raise
:class:`NonFiniteLossError` / :class:`NonFiniteOutputError`, and a non-finite
validation is recorded as ``null`` with ``val_finite: false`` (dartsrenet/training.py).
"""

from __future__ import annotations

import errno
import io
import json
import math
import os
import pickle
import platform
import re
import subprocess
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torchvision

from dartsrenet.results.contract import (
    BEST_WEIGHTS_FILE, CHECKPOINT_DIR, CHECKPOINT_FILE, CONFIG_FILE, METRICS_FILE, SUMMARY_FILE,
)

TEMPORARY_SUFFIX = ".tmp"
"""Suffix of the temporary files of :func:`_atomic_write_bytes` (``.<name>.<random>.tmp``)."""

JsonViews = Callable[[list[dict[str, Any]], int], dict[str, Any]]
"""``(history, best_epoch) -> {file name: JSON data or None}``: a run kind's own files derived
from its checkpoint (None: the file must not exist yet), e.g. a search's ``alpha_history.json``."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read. The message names the file; nothing was overwritten."""


class WriteError(OSError):
    """A file that could not be written (disk full, read-only file system, no permission).

    The message is one line naming the file and the cause; ``errno`` is the cause's.
    """

    def __init__(self, message: str, error_number: int | None = None):
        super().__init__(message)
        self.errno = error_number


class ConfigMismatchError(RuntimeError):
    """A run folder that holds a run with a different configuration."""


class NonFiniteLossError(FloatingPointError):
    """The loss (or α) became NaN or infinite; the run stopped without writing a checkpoint."""


class NonFiniteOutputError(FloatingPointError):
    """The network's outputs on an evaluation split were NaN or infinite (the message names the split)."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → CUDA, then MPS, then CPU; explicit names are checked to exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available on this machine")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    if device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' requested but MPS is not available on this machine")
    return device


def library_versions() -> dict[str, str]:
    """Versions of Python, torch, torchvision and dartsrenet."""
    from dartsrenet import __version__

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "dartsrenet": __version__,
    }


def code_revision() -> str | None:
    """The git commit of the dartsrenet source (``+dirty`` if modified), or None."""
    source = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=source, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "."],
            cwd=source, capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit


def json_default(value: Any) -> Any:
    """JSON encoder fallback: paths and tensors."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, torch.Tensor):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def finite_or_none(data: Any) -> Any:
    """``data`` with every non-finite float (NaN, ±inf) replaced by None, in nested dicts, lists and tuples."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite_or_none(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [finite_or_none(value) for value in data]
    return data


def to_json(data: Any, indent: int | None = None) -> str:
    """Strict JSON (non-finite floats become ``null``; paths and tensors converted)."""
    return json.dumps(finite_or_none(_plain(data)), indent=indent, allow_nan=False)


def _plain(data: Any) -> Any:
    """Paths and tensors turned into JSON types, so that :func:`finite_or_none` sees their floats."""
    if isinstance(data, dict):
        return {key: _plain(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [_plain(value) for value in data]
    if isinstance(data, (Path, torch.Tensor)):
        return json_default(data)
    return data


def write_json(path: Path, data: Any) -> None:
    """Write strict JSON atomically."""
    _atomic_write_bytes(path, json_bytes(data))


def json_bytes(data: Any) -> bytes:
    """The bytes :func:`write_json` writes for ``data``."""
    return (to_json(data, indent=2) + "\n").encode()


def metrics_bytes(history: list[dict[str, Any]]) -> bytes:
    """``metrics.jsonl`` of a history: one strict-JSON object per epoch."""
    return "".join(to_json(metrics) + "\n" for metrics in history).encode()


def torch_bytes(data: Any) -> bytes:
    """``torch.save`` of ``data``, in memory (so that a failed write reports its OS error)."""
    buffer = io.BytesIO()
    torch.save(data, buffer)
    return buffer.getvalue()


def _umask() -> int:
    """The process's umask, read without changing it where the system allows."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def os_cause(error: OSError) -> str:
    """``No space left on device (ENOSPC)``: an OS error's reason and its errno name."""
    name = errno.errorcode.get(error.errno or 0)
    reason = error.strerror or str(error)
    return f"{reason} ({name})" if name else reason


def _write_hint(error_number: int | None) -> str:
    if error_number == errno.ENOSPC:
        return "; free space there and run again: the run resumes from its last complete checkpoint"
    if error_number in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "; use a writable output folder"
    return ""


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``path`` atomically: every file of a run folder goes through here.

    The bytes go to a temporary file in the same folder (``.<name>.<random>.tmp``), are
    flushed to disk, and the file is renamed over ``path``; a reader (or a kill) sees the
    old file or the new one, never a part. A failed write removes its temporary file.

    Raises:
        WriteError: the file could not be written (one line: the file, the OS's reason).
    """
    temporary: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
        with open(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp creates 0600; use what open() would give
        os.replace(temporary, path)
    except BaseException as error:
        if temporary is not None:
            try:
                os.unlink(temporary)
            except OSError:
                pass
        if isinstance(error, OSError) and not isinstance(error, WriteError):
            raise WriteError(f"cannot write {path}: {os_cause(error)}{_write_hint(error.errno)}", error.errno) from None
        raise


class RunFolder:
    """The files of one run under ``path`` (see docs/design.md for the layout)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics_file(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def summary_file(self) -> Path:
        return self.path / SUMMARY_FILE

    @property
    def best_weights_file(self) -> Path:
        return self.path / BEST_WEIGHTS_FILE

    def has_checkpoint(self) -> bool:
        return (self.checkpoint_dir / CHECKPOINT_FILE).is_file()

    def check_config(self, config: dict[str, Any], ignore: tuple[str, ...] = ("device", "num_workers")) -> None:
        """Refuse a folder that holds (part of) a run with a different config, before anything is written.

        The saved ``config.json`` is compared whenever it exists, checkpoint or not. A
        folder holding run files but no ``config.json`` is refused too: whose run they
        are cannot be told, and starting would overwrite them.
        """
        if not self.config_file.is_file():
            leftovers = sorted(
                path.name for path in (self.metrics_file, self.summary_file, self.best_weights_file, self.checkpoint_dir)
                if path.exists()
            )
            if leftovers:
                raise ConfigMismatchError(
                    f"{self.path} holds run files ({', '.join(leftovers)}) but no config.json, so it cannot be "
                    "told whether they belong to this run; use another output folder or delete this one"
                )
            return
        try:
            saved = json.loads(self.config_file.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise CheckpointError(f"{self.config_file}: cannot read ({error}); nothing was overwritten") from None
        if not isinstance(saved, dict):
            raise CheckpointError(f"{self.config_file}: not a run config (a JSON object); nothing was overwritten")
        differing = sorted(
            key for key in set(saved) | set(config)
            if key not in ignore and saved.get(key) != config.get(key)
        )
        if differing:
            details = ", ".join(f"{key}: {saved.get(key)!r} → {config.get(key)!r}" for key in differing)
            raise ConfigMismatchError(
                f"{self.path} holds a run with a different config ({details}); "
                "use another output folder or delete this one"
            )

    def check_writable(self) -> None:
        """Refuse a run folder that cannot be written, before any work starts.

        The folder and its checkpoint folder are probed where they exist, else the
        nearest existing folder above (where the run folder would be created), by creating
        an anonymous file there and dropping it at once.

        Raises:
            WriteError: one line naming the run folder and the cause (e.g. ``EROFS``).
        """
        probed = [folder for folder in (self.path, self.checkpoint_dir) if folder.is_dir()]
        if not probed:
            nearest = self.path.absolute()
            while not nearest.exists() and nearest != nearest.parent:
                nearest = nearest.parent
            if not nearest.is_dir():
                raise WriteError(f"cannot create the run folder {self.path}: {nearest} is not a folder", errno.ENOTDIR)
            probed = [nearest]
        for folder in probed:
            try:
                with tempfile.TemporaryFile(dir=folder):
                    pass
            except OSError as error:
                where = "" if folder == self.path else f" ({folder})"
                raise WriteError(
                    f"cannot write to the run folder {self.path}{where}: {os_cause(error)}{_write_hint(error.errno)}",
                    error.errno,
                ) from None

    def write_config(self, config: dict[str, Any]) -> None:
        write_json(self.config_file, config)

    def save_checkpoint(self, state: dict[str, Any]) -> Path:
        """Write the latest checkpoint atomically (an epoch's commit point); returns the checkpoint folder."""
        _atomic_write_bytes(self.checkpoint_dir / CHECKPOINT_FILE, torch_bytes(state))
        return self.checkpoint_dir

    def commit(self, state: dict[str, Any], views: JsonViews | None = None, best_changed: bool = True) -> Path:
        """Commit an epoch: the checkpoint (the commit point), then the files derived from it.

        Args:
            state: the checkpoint (``history``, ``best_epoch``, ``best_weights``, ...).
            views: the run kind's own JSON files derived from the history (see :data:`JsonViews`).
            best_changed: the best weights changed this epoch, so ``best.pt`` is rewritten.

        Returns:
            The checkpoint folder.
        """
        self.save_checkpoint(state)
        _atomic_write_bytes(self.metrics_file, metrics_bytes(state["history"]))
        if best_changed and state["best_epoch"]:
            _atomic_write_bytes(self.best_weights_file, torch_bytes(state["best_weights"]))
        for name, data in (views(state["history"], state["best_epoch"]) if views else {}).items():
            if data is not None:
                write_json(self.path / name, data)
        return self.checkpoint_dir

    def repair(
        self, state: dict[str, Any] | None, views: JsonViews | None = None, source: Path | None = None
    ) -> list[str]:
        """Make every file agree with the committed checkpoint ``state`` (None: no epoch committed).

        Rewrites the views (``metrics.jsonl``, ``best.pt``, ``views``' files) that differ
        from ``state``, removes the ones ``state`` has no data for and ``summary.json``
        unless ``state`` is finished, deletes temporary files of interrupted writes, and
        copies a checkpoint resumed from elsewhere (``source``, e.g. Ray's copy) into
        the folder.

        Returns:
            What was changed, as short phrases (empty when the folder was consistent).
        """
        changes = [f"removed {path.relative_to(self.path)}" for path in self.temporary_files() if _unlink(path)]
        own = self.checkpoint_dir / CHECKPOINT_FILE
        if source is not None and state is not None and source.resolve() != own.resolve():
            data = source.read_bytes()
            if not own.is_file() or own.read_bytes() != data:
                _atomic_write_bytes(own, data)
                changes.append(f"copied {source} to {own.relative_to(self.path)}")
        history = state["history"] if state is not None else []
        best_epoch = state["best_epoch"] if state is not None else 0
        expected: dict[Path, bytes | None] = {self.metrics_file: metrics_bytes(history) if history else None}
        if views is not None:
            for name, data in views(history, best_epoch).items():
                expected[self.path / name] = json_bytes(data) if history and data is not None else None
        if state is None or not state["finished"]:
            expected[self.summary_file] = None
        for path, data in expected.items():
            if data is None:
                if _unlink(path):
                    changes.append(f"removed {path.name}")
            elif not path.is_file() or path.read_bytes() != data:
                _atomic_write_bytes(path, data)
                changes.append(f"rewrote {path.name}")
        best_weights = state["best_weights"] if state is not None and best_epoch else None
        if best_weights is None:
            if _unlink(self.best_weights_file):
                changes.append(f"removed {self.best_weights_file.name}")
        elif not _same_weights(self.best_weights_file, best_weights):
            _atomic_write_bytes(self.best_weights_file, torch_bytes(best_weights))
            changes.append(f"rewrote {self.best_weights_file.name}")
        return changes

    def temporary_files(self) -> list[Path]:
        """Temporary files of writes that never finished (a kill between writing and renaming)."""
        folders = [folder for folder in (self.path, self.checkpoint_dir) if folder.is_dir()]
        return sorted(path for folder in folders for path in folder.glob(f".*{TEMPORARY_SUFFIX}") if path.is_file())

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.summary_file, summary)


def _unlink(path: Path) -> bool:
    """Remove a file; False if there was none."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def _same_weights(path: Path, weights: dict[str, torch.Tensor]) -> bool:
    """``path`` holds exactly ``weights`` (read as plain data: nothing in the file runs)."""
    try:
        saved = load_plain_data(path, map_location="cpu")
    except Exception:  # missing, truncated, foreign or unsafe: the checkpoint's copy replaces it
        return False
    return (
        isinstance(saved, dict)
        and saved.keys() == weights.keys()
        and all(
            isinstance(saved[name], torch.Tensor) and saved[name].dtype == value.dtype
            and torch.equal(saved[name], value.detach().cpu())
            for name, value in weights.items()
        )
    )


def load_plain_data(path: Path, map_location: torch.device | str = "cpu") -> Any:
    """``torch.load`` of tensors and plain data only (``weights_only``): nothing in the file runs.

    Raises:
        pickle.UnpicklingError: the file would need more (a function or class) to load.
    """
    with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4" of a foreign file, refused anyway
        warnings.simplefilter("ignore", UserWarning)
        return torch.load(path, map_location=map_location, weights_only=True)


_UNSAFE_GLOBAL = re.compile(r"Unsupported global: GLOBAL ([\w.]+)")
_UNPICKLER_DETAIL = re.compile(r"WeightsUnpickler error:\s*(.+)")


def load_checkpoint(directory: str | os.PathLike[str], map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Read ``directory/checkpoint.pt`` as tensors and plain data (``weights_only``): nothing in it runs.

    Raises:
        CheckpointError: no checkpoint, an unreadable one, one that would need to run code
            to load (refused), or not a dartsrenet checkpoint — one line naming the file.
    """
    path = Path(directory) / CHECKPOINT_FILE
    restart = f"delete {path.parent} to start the run over, or use another output folder"
    try:
        state = load_plain_data(path, map_location)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no checkpoint there") from None
    except pickle.UnpicklingError as error:  # weights_only met something other than tensors and plain data
        found, detail = _UNSAFE_GLOBAL.search(str(error)), _UNPICKLER_DETAIL.search(str(error))
        if found:
            what = f"it names {found.group(1)}"
        else:
            what = "it holds more than tensors and plain data" + (f" ({detail.group(1).strip()})" if detail else "")
        raise CheckpointError(
            f"{path}: refused to load: {what}, and loading it could run code; nothing in it ran and nothing "
            f"was overwritten — dartsrenet checkpoints hold only tensors and plain data; {restart}"
        ) from None
    except Exception as error:  # torch raises many kinds for truncated or foreign files
        cause = " ".join(str(error).split())
        raise CheckpointError(
            f"{path}: cannot read checkpoint ({type(error).__name__}: {cause}); nothing was overwritten — {restart}"
        ) from None
    required = {"epoch", "model", "history", "best_epoch", "best_weights", "finished"}
    if not isinstance(state, dict) or not required <= set(state):
        missing = sorted(required - set(state)) if isinstance(state, dict) else sorted(required)
        raise CheckpointError(f"{path}: not a dartsrenet checkpoint (missing {missing}); {restart}")
    return state

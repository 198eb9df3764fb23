"""Run folders: the artifacts of one search or evaluation run (docs/design.md).

A run folder holds the resolved config, per-epoch metrics (JSON lines), the latest
checkpoint (everything needed to resume), the best epoch's weights, and a summary
with versions and the code revision. Every file is written atomically (temporary
file, then rename), so a run killed mid-write keeps its previous checkpoint, and
gets the mode an ordinary ``open`` would give it (0666 less the umask), so that
colleagues on shared storage can read the results as they read Ray's files.

JSON files are strict JSON: a number that is not finite is written as ``null``
(never ``NaN``, which strict readers reject). The engine never *records* a
non-finite metric as a number: the training loss and the test metrics raise
:class:`NonFiniteLossError` / :class:`NonFiniteOutputError`, and a non-finite
validation is recorded as ``null`` with ``val_finite: false`` (dartsrenet/training.py).
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import torch
import torchvision

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = "checkpoint.pt"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read. The message names the file; nothing was overwritten."""


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
    _atomic_write_text(path, to_json(data, indent=2) + "\n")


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


def _atomic_write(path: Path, write: Any, mode: str) -> None:
    """Write ``path`` via a temporary file in its folder and a rename, with the umask's file mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(mode, dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        try:
            write(handle)
        except BaseException:
            handle.close()
            os.unlink(handle.name)
            raise
    os.chmod(handle.name, 0o666 & ~_umask())  # tempfile creates 0600; use what open() would give
    os.replace(handle.name, path)


def _atomic_write_text(path: Path, text: str) -> None:
    _atomic_write(path, lambda handle: handle.write(text), "w")


def _atomic_torch_save(path: Path, data: Any) -> None:
    _atomic_write(path, lambda handle: torch.save(data, handle), "w+b")


def check_finite(loss: torch.Tensor, where: str) -> None:
    """Raise :class:`NonFiniteLossError` if ``loss`` is NaN or infinite."""
    if not math.isfinite(loss.item()):
        raise NonFiniteLossError(
            f"loss became {loss.item()} at {where}; stopping without writing a checkpoint "
            "(lower the learning rate or check the data)"
        )


def check_finite_alpha(alpha: torch.Tensor, where: str) -> None:
    """Raise :class:`NonFiniteLossError` if the architecture weights α hold a NaN or an infinity."""
    if not bool(torch.isfinite(alpha).all()):
        raise NonFiniteLossError(
            f"α became non-finite after {where}; stopping without writing a checkpoint "
            "(lower arch_lr or check the data)"
        )


class RunFolder:
    """The files of one run under ``path`` (see docs/design.md for the layout)."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def summary_file(self) -> Path:
        return self.path / "summary.json"

    @property
    def best_weights_file(self) -> Path:
        return self.path / "best.pt"

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

    def write_config(self, config: dict[str, Any]) -> None:
        write_json(self.config_file, config)

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        """Rewrite metrics.jsonl from the full history (so a resumed run never duplicates lines)."""
        _atomic_write_text(self.metrics_file, "".join(to_json(m) + "\n" for m in history))

    def save_checkpoint(self, state: dict[str, Any]) -> Path:
        """Write the latest checkpoint atomically; returns the checkpoint folder."""
        _atomic_torch_save(self.checkpoint_dir / CHECKPOINT_FILE, state)
        return self.checkpoint_dir

    def save_best_weights(self, state_dict: dict[str, Any]) -> None:
        _atomic_torch_save(self.best_weights_file, state_dict)

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.summary_file, summary)


def load_checkpoint(directory: str | os.PathLike[str], map_location: torch.device | str = "cpu") -> dict[str, Any]:
    """Read ``directory/checkpoint.pt``; unreadable files raise :class:`CheckpointError`."""
    path = Path(directory) / CHECKPOINT_FILE
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no checkpoint there") from None
    except Exception as error:  # torch raises many kinds for truncated or foreign files
        raise CheckpointError(
            f"{path}: cannot read checkpoint ({type(error).__name__}: {error}); nothing was overwritten — "
            "delete the folder to start over or point the run at another output folder"
        ) from None
    required = {"epoch", "model", "history"}
    if not isinstance(state, dict) or not required <= set(state):
        raise CheckpointError(f"{path}: not a dartsrenet checkpoint (missing {sorted(required - set(state or {}))})")
    return state

"""Run folders: the artifacts of one search or evaluation run (STYLE 10; docs/design.md).

A run folder holds the resolved config, per-epoch metrics (JSON lines), the latest
checkpoint (everything needed to resume), the best epoch's weights, and a summary
with versions and the code revision. Checkpoints are written atomically (temporary
file, then rename), so a run killed mid-write keeps its previous checkpoint.
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
    """The loss became NaN or infinite; the run stopped without writing a checkpoint."""


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


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically."""
    _atomic_write_text(path, json.dumps(data, indent=2, default=json_default) + "\n")


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        handle.write(text)
    os.replace(handle.name, path)


def _atomic_torch_save(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as handle:
        torch.save(data, handle)
    os.replace(handle.name, path)


def check_finite(loss: torch.Tensor, where: str) -> None:
    """Raise :class:`NonFiniteLossError` if ``loss`` is NaN or infinite."""
    if not math.isfinite(loss.item()):
        raise NonFiniteLossError(
            f"loss became {loss.item()} at {where}; stopping without writing a checkpoint "
            "(lower the learning rate or check the data)"
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
        """Refuse to resume a folder written by a run with a different config."""
        if not self.config_file.is_file():
            return
        try:
            saved = json.loads(self.config_file.read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise CheckpointError(f"{self.config_file}: cannot read ({error})") from None
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
        _atomic_write_text(self.metrics_file, "".join(json.dumps(m, default=json_default) + "\n" for m in history))

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

"""Reading and writing the results' files at a local path or a storage URI (``s3://…``,
``gs://…``, ``file://…``) through ``pyarrow.fs`` (Ray brings pyarrow), so results can
be written and read on any machine (docs/design.md, "Sweeps — experiment layout").

This module imports neither torch, Ray nor pandas.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# --- storage: local paths and URIs ---------------------------------------------------


def is_uri(location: str | Path) -> bool:
    """Whether a location is a storage URI (``s3://…``, ``gs://…``, ``file://…``)."""
    return "://" in str(location)


def join_location(base: str | Path, *parts: str) -> str:
    """``base/part/…`` for a local path or a URI."""
    base = str(base)
    return "/".join([base.rstrip("/"), *parts]) if is_uri(base) else str(Path(base, *parts))


def location_name(location: str | Path) -> str:
    """The last part of a local path or a URI (an experiment's name)."""
    return str(location).rstrip("/").rsplit("/", 1)[-1] if is_uri(location) else Path(location).name


def _filesystem(location: str) -> tuple[Any, str]:
    try:
        import pyarrow.fs
    except ImportError:
        raise ValueError(
            f"{location}: reading storage URIs needs pyarrow (pip install pyarrow; Ray brings it)"
        ) from None
    try:
        return pyarrow.fs.FileSystem.from_uri(location)
    except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError) as error:
        raise ValueError(f"{location}: not a storage URI pyarrow can open ({error})") from None


def read_text(location: str | Path) -> str | None:
    """Text of a local file or an object at a URI; ``None`` if there is none."""
    if not is_uri(location):
        try:
            return Path(location).read_text(errors="replace")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
    import pyarrow.fs

    filesystem, path = _filesystem(str(location))
    if filesystem.get_file_info(path).type != pyarrow.fs.FileType.File:
        return None
    with filesystem.open_input_stream(path) as stream:
        return stream.read().decode(errors="replace")


def write_json(location: str | Path, data: Any) -> None:
    """Write strict JSON (non-finite numbers as ``null``): a local file atomically, or an
    object at a URI."""
    from dartsrenet.runs import to_json, write_json as write_local_json

    if not is_uri(location):
        write_local_json(Path(location), data)
        return
    filesystem, path = _filesystem(str(location))
    filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with filesystem.open_output_stream(path) as stream:
        stream.write((to_json(data, indent=2) + "\n").encode())


def list_folders(location: str | Path) -> list[str]:
    """The sub-folders of a local folder or a URI prefix, as locations, by name."""
    if not is_uri(location):
        folder = Path(location)
        return sorted(str(path) for path in folder.iterdir() if path.is_dir()) if folder.is_dir() else []
    import pyarrow.fs

    filesystem, path = _filesystem(str(location))
    selector = pyarrow.fs.FileSelector(path, allow_not_found=True)
    return sorted(
        join_location(location, info.base_name)
        for info in filesystem.get_file_info(selector)
        if info.type == pyarrow.fs.FileType.Directory
    )


def exists(location: str | Path) -> bool:
    """Whether a file or folder exists at a local path or a URI."""
    if not is_uri(location):
        return Path(location).exists()
    import pyarrow.fs

    filesystem, path = _filesystem(str(location))
    return filesystem.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def modified_time(location: str | Path) -> float | None:
    """Last modification (POSIX seconds) of a local path or an object at a URI, or ``None``."""
    if not is_uri(location):
        try:
            return Path(location).stat().st_mtime
        except OSError:
            return None
    filesystem, path = _filesystem(str(location))
    info = filesystem.get_file_info(path)
    return None if info.mtime is None else info.mtime.timestamp()


def read_json(location: str | Path) -> Any:
    """JSON content of a file, or ``None`` when missing or malformed."""
    text = read_text(location)
    try:
        return None if text is None else json.loads(text)
    except ValueError:
        return None

"""Paths built from the contents of files stay inside the folder they belong to.

Result files are data that may come from elsewhere (a synced bucket, a colleague's
experiment, a hand-edited JSON): a variant key of ``selected_genotypes.json``, a
variant read from a trial's ``params.json`` or an experiment name becomes part of a
file name that we write. Such a value must be one plain file-name component, so that
``../../owned`` never writes outside the output folder (docs/design.md, "Analysis":
names read from files stay inside their folder). :func:`path_inside` builds a path from
such values and refuses, with one line naming the value and the folder, anything that
would land elsewhere — including a link already in the folder that points outside it.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["UnsafePathError", "checked_name", "path_inside"]


class UnsafePathError(ValueError):
    """A value read from a file that would make a path leave its folder (one line)."""


def checked_name(name: object, what: str) -> str:
    """``name`` when it is one plain file-name component.

    Args:
        name: the value (read from a file, or typed by a user).
        what: what the value is, for the message (``"variant key in selected_genotypes.json"``).

    Raises:
        UnsafePathError: for a non-string, an empty name, ``.`` or ``..``, or a name with a
            path separator or a NUL character.
    """
    if not isinstance(name, str):
        raise UnsafePathError(f"{what} {name!r} is not a string")
    separators = {"/", os.sep, *(os.altsep or "")}
    if name in ("", ".", "..") or "\0" in name or any(separator in name for separator in separators):
        raise UnsafePathError(
            f"{what} {name!r} is not a plain name: it must be one folder or file name, "
            "without '/', and not '.' or '..'"
        )
    return name


def path_inside(folder: str | os.PathLike[str], name: object, what: str, suffix: str = "") -> Path:
    """``folder/<name><suffix>``, refused unless it stays inside ``folder``.

    Besides :func:`checked_name`, the resolved path (links followed) must lie inside the
    resolved folder: a symbolic link already in ``folder`` that points elsewhere is refused
    too, so writing to the path never changes a file outside ``folder``.

    Args:
        folder: the folder the path belongs to (need not exist yet).
        name: the value read from a file.
        what: what the value is, for the message.
        suffix: appended to the name (``".png"``).

    Raises:
        UnsafePathError: one line naming the value and the folder.
    """
    folder = Path(folder)
    path = folder / (checked_name(name, what) + suffix)
    resolved_folder = folder.resolve()
    if not path.resolve().is_relative_to(resolved_folder):
        raise UnsafePathError(f"{what} {name!r}: {path} leads outside {folder} (to {path.resolve()}); refused")
    return path

"""Name → object registries with errors that list the valid names.

Every user-facing name in dartsrenet (activations, cells, variants, datasets,
presets) is looked up through :func:`lookup`, so a typo always produces the same
kind of message: what was asked for and what exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


class UnknownNameError(ValueError):
    """A name that is not in its registry. The message lists the valid names."""


def lookup(registry: Mapping[str, T], name: str, kind: str) -> T:
    """Return ``registry[name]`` or raise :class:`UnknownNameError` listing the valid names.

    Args:
        registry: mapping of valid names to objects.
        name: the requested name.
        kind: what the registry holds, used in the message (e.g. ``"activation"``).
    """
    try:
        return registry[name]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(registry))
        raise UnknownNameError(f"unknown {kind} {name!r}; valid {kind}s: {valid}") from None

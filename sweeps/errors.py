"""How a sweep script fails before any trial runs, and its exit statuses.

A bad argument, resource request or experiment folder is a :class:`SweepError`: the
script prints one ``error:`` line and exits with :data:`EXIT_USAGE` before Ray starts
(or before Ray runs a trial). :data:`EXIT_INCOMPLETE` says that running the same
command again would continue some trial (docs/design.md, "Sweeps — experiment layout").
"""

from __future__ import annotations

import sys

EXIT_OK, EXIT_INCOMPLETE, EXIT_USAGE = 0, 1, 2


class SweepError(RuntimeError):
    """A problem found before any trial ran (bad arguments, resources, experiment)."""


def usage_error(error: Exception) -> int:
    """Report an argument error found before Ray starts; returns exit status 2."""
    print(f"error: {error}", file=sys.stderr)
    return EXIT_USAGE

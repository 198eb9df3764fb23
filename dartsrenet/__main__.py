"""``python -m dartsrenet``: see :mod:`dartsrenet.cli`."""

import os
import sys

# Before torch loads: spinning OpenMP threads stall when other jobs share the cores
# (benchmarks/README.md); waiting threads sleep instead. An explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from dartsrenet.cli import main  # noqa: E402

sys.exit(main())

"""``python -m dartsrenet``: see :mod:`dartsrenet.cli`."""

import sys

from dartsrenet.cli import main

sys.exit(main())

"""The results contract package (docs/design.md, "Sweeps — experiment layout"): readable
without torch, one seed-selection rule for the sweep and the analysis."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_results_import_without_torch():
    code = "import sys, dartsrenet.results; assert 'torch' not in sys.modules, sorted(sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]

"""Under CI a skipped test is a failed test (tests/ci.py, tests/conftest.py).

A small suite runs in a subprocess with this suite's ``conftest.py``: a skip mark, a
``pytest.skip`` in the test, a module that ``importorskip``\\ s a missing package, and a
test marked ``cuda``. With ``CI`` unset they skip; with ``CI=true`` each fails, except the
CUDA test on a machine without CUDA.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

SKIPPING_TESTS = '''
import pytest

from tests.ci import missing


@pytest.mark.skipif(True, reason="a tool is missing")
def test_marked():
    pass


def test_called():
    pytest.skip("a file is missing")


def test_missing():
    missing("a compiler is missing")


@pytest.mark.cuda
@pytest.mark.skipif(True, reason="needs CUDA")
def test_needs_cuda():
    pass
'''
SKIPPING_MODULE = '''
import pytest

pytest.importorskip("no_such_package_anywhere")


def test_never_collected():
    pass
'''


def run_suite(tmp_path: Path, ci: str | None) -> subprocess.CompletedProcess:
    suite = tmp_path / "tests"
    suite.mkdir(exist_ok=True)
    (suite / "conftest.py").write_text((ROOT / "tests" / "conftest.py").read_text())
    (suite / "ci.py").write_text((ROOT / "tests" / "ci.py").read_text())
    (suite / "test_skipping.py").write_text(SKIPPING_TESTS)
    (suite / "test_skipping_module.py").write_text(SKIPPING_MODULE)
    environment = {key: value for key, value in os.environ.items() if key != "CI"}
    environment["PYTHONPATH"] = str(tmp_path)
    if ci is not None:
        environment["CI"] = ci
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rA", "--continue-on-collection-errors",
         "-o", "markers=cuda: test", "tests"],
        cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120, check=False,
    )


def test_skips_skip_outside_ci(tmp_path):
    result = run_suite(tmp_path, ci=None)
    assert result.returncode == 0, result.stdout
    assert "5 skipped" in result.stdout, result.stdout


@pytest.mark.parametrize("ci", ["true"])
def test_under_ci_every_skip_fails_but_a_missing_cuda(tmp_path, ci):
    result = run_suite(tmp_path, ci=ci)
    assert result.returncode == 1, result.stdout
    for line in ("ERROR tests/test_skipping_module.py - skipped under CI, where nothing may be missing: "
                 "could not import 'no_such_package_anywhere'",
                 "ERROR tests/test_skipping.py::test_marked - skipped under CI, where nothing may be missing: "
                 "a tool is missing",
                 "FAILED tests/test_skipping.py::test_called - skipped under CI, where nothing may be missing: "
                 "a file is missing",
                 "FAILED tests/test_skipping.py::test_missing - Failed: a compiler is missing; CI must have it"):
        assert line in result.stdout, result.stdout
    if torch.cuda.is_available():  # a CUDA machine runs the CUDA tests: skipping one fails there too
        assert "2 failed, 3 errors" in result.stdout, result.stdout
    else:
        assert "2 failed, 1 skipped, 2 errors" in result.stdout, result.stdout
        assert "SKIPPED [1] tests/test_skipping.py:20: needs CUDA" in result.stdout, result.stdout

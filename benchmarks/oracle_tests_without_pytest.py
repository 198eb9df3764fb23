"""Run tests/test_reference_oracle.py where pytest is not installed (e.g. a bare GPU machine).

Usage: ``DARTSRENET_TEST_DEVICE=cuda python benchmarks/oracle_tests_without_pytest.py``

A stand-in ``pytest`` module provides what that file uses (``mark.parametrize`` and the
``monkeypatch`` fixture; other fixtures are not run); every parameter combination runs and the summary line says
how many passed. Exit status 1 if any failed.
"""

from __future__ import annotations

import importlib.util
import itertools
import sys
import traceback
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class _MonkeyPatch:
    def __init__(self):
        self._undo = []

    def setattr(self, target, name, value):
        old = getattr(target, name)
        self._undo.append(lambda: setattr(target, name, old))
        setattr(target, name, value)

    def setitem(self, mapping, key, value):
        missing = key not in mapping
        old = mapping.get(key)
        self._undo.append(lambda: mapping.pop(key) if missing else mapping.__setitem__(key, old))
        mapping[key] = value

    def undo(self):
        for undo in reversed(self._undo):
            undo()


def _parametrize(names, values):
    def decorate(function):
        function.__dict__.setdefault("_parameters", []).append(([n.strip() for n in names.split(",")], list(values)))
        return function

    return decorate


def main() -> int:
    stub = types.ModuleType("pytest")
    stub.mark = types.SimpleNamespace(parametrize=_parametrize)
    stub.fixture = lambda *args, **kwargs: (lambda function: function)  # fixtures other than monkeypatch: skipped
    sys.modules["pytest"] = stub
    path = ROOT / "tests" / "test_reference_oracle.py"
    spec = importlib.util.spec_from_file_location("test_reference_oracle", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    passed, failed = 0, []
    for name in sorted(n for n in dir(module) if n.startswith("test_")):
        function = getattr(module, name)
        groups = getattr(function, "_parameters", [])
        axes = [[dict(zip(names, value if len(names) > 1 else (value,))) for value in values] for names, values in groups]
        for combination in itertools.product(*axes) if axes else [()]:
            kwargs = {k: v for part in combination for k, v in part.items()}
            patch = _MonkeyPatch()
            if "monkeypatch" in function.__code__.co_varnames[: function.__code__.co_argcount]:
                kwargs["monkeypatch"] = patch
            label = f"{name}[{'-'.join(str(v) for k, v in kwargs.items() if k != 'monkeypatch')}]"
            try:
                function(**kwargs)
                passed += 1
            except Exception:  # noqa: BLE001 — report every failure
                failed.append(label)
                print(f"FAILED {label}\n{traceback.format_exc()}", flush=True)
            finally:
                patch.undo()
    print(f"{passed} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

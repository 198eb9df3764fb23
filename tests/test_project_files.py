"""Consistency checks on the project's packaging files and layering rules.

* ``environment.yml`` (conda-forge) and ``pyproject.toml`` (pip) declare the same
  package set with the same lower bounds, through the explicit name map below.
* The library (``dartsrenet/``) and the analysis code (``analysis/``) never import
  Ray (docs/design.md, "Layers"): Ray stays at the edges, in ``sweeps/``.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest itself depends on tomli there.
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]

# conda-forge name -> pip requirement name (with extras), where they differ.
CONDA_TO_PIP = {
    "pytorch": "torch",
    "ray-tune": "ray[tune]",
    "python-graphviz": "graphviz",  # the Python bindings
}
# conda-only entries with no pip counterpart in pyproject's dependency lists:
# the interpreter (pyproject's `requires-python`), pip itself, and Graphviz's
# `dot` binary (conda-forge `graphviz`), which pip cannot install.
CONDA_ONLY = {"python", "pip", "graphviz"}
# pyproject extras that environment.yml mirrors, on top of the core dependencies:
# what `pip install -e ".[all,test]"` (make setup) installs. `cluster` is for the
# machine launching a cloud cluster and is deliberately not in the conda env.
MIRRORED_EXTRAS = ("all", "test")

_CONDA_SPEC = re.compile(r"^\s*(?P<name>[A-Za-z0-9_.\-]+)\s*(?P<constraint>.*)$")


def _load_pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)


def _load_environment() -> dict:
    with open(ROOT / "environment.yml") as f:
        return yaml.safe_load(f)


def _key(name: str, extras=()) -> str:
    """Canonical ``name[extra,...]`` form used to compare the two files."""
    name = canonicalize_name(name)
    return f"{name}[{','.join(sorted(extras))}]" if extras else name


def _lower_bound(specifier: SpecifierSet) -> Version | None:
    bounds = [Version(s.version) for s in specifier if s.operator == ">="]
    return max(bounds) if bounds else None


def _expand_extra(project: dict, extra: str, seen: frozenset = frozenset()) -> list[Requirement]:
    """Requirements of one extra, following self-references like ``dartsrenet[a,b]``."""
    own_name = canonicalize_name(project["name"])
    requirements = []
    for text in project["optional-dependencies"][extra]:
        requirement = Requirement(text)
        if canonicalize_name(requirement.name) == own_name:
            for nested in sorted(requirement.extras - seen):
                requirements += _expand_extra(project, nested, seen | {extra})
        else:
            requirements.append(requirement)
    return requirements


def _pip_requirements() -> dict[str, Version | None]:
    """Key -> lower bound for core dependencies plus the mirrored extras."""
    project = _load_pyproject()["project"]
    requirements = [Requirement(text) for text in project["dependencies"]]
    for extra in MIRRORED_EXTRAS:
        requirements += _expand_extra(project, extra)
    bounds: dict[str, Version | None] = {}
    for requirement in requirements:
        key = _key(requirement.name, requirement.extras)
        bound = _lower_bound(requirement.specifier)
        # The same package in two extras (pandas) must carry the same bound.
        assert bounds.get(key, bound) == bound, f"{key}: conflicting lower bounds in pyproject.toml"
        bounds[key] = bound
    return bounds


def _conda_requirements() -> tuple[dict[str, Version | None], dict[str, Version | None], list]:
    """(mapped key -> lower bound, conda-only name -> lower bound, pip section)."""
    mapped: dict[str, Version | None] = {}
    conda_only: dict[str, Version | None] = {}
    pip_section: list = []
    for entry in _load_environment()["dependencies"]:
        if isinstance(entry, dict):
            pip_section += entry.get("pip", [])
            continue
        match = _CONDA_SPEC.match(entry)
        assert match, f"unparseable conda spec: {entry!r}"
        name = match["name"].lower()
        constraint = match["constraint"].replace(" ", "")
        bound = None
        if constraint:
            assert constraint.startswith(">="), f"{entry!r}: use a plain '>=' lower bound"
            bound = _lower_bound(SpecifierSet(constraint))
        if name in CONDA_ONLY:
            conda_only[name] = bound
        else:
            pip_requirement = Requirement(CONDA_TO_PIP.get(name, name))
            mapped[_key(pip_requirement.name, pip_requirement.extras)] = bound
    return mapped, conda_only, pip_section


def test_environment_uses_conda_forge_only():
    assert _load_environment()["channels"] == ["conda-forge", "nodefaults"]


def test_environment_and_pyproject_declare_the_same_packages():
    pip_bounds = _pip_requirements()
    conda_bounds, _, _ = _conda_requirements()
    assert set(conda_bounds) == set(pip_bounds), (
        f"only in environment.yml: {sorted(set(conda_bounds) - set(pip_bounds))}; "
        f"only in pyproject.toml: {sorted(set(pip_bounds) - set(conda_bounds))}"
    )


def test_environment_and_pyproject_lower_bounds_agree():
    pip_bounds = _pip_requirements()
    conda_bounds, conda_only, _ = _conda_requirements()
    disagreements = {
        key: (str(pip_bounds[key]), str(conda_bounds[key]))
        for key in pip_bounds.keys() & conda_bounds.keys()
        if pip_bounds[key] is not None
        and conda_bounds[key] is not None
        and pip_bounds[key] != conda_bounds[key]
    }
    assert not disagreements, f"(pyproject, environment.yml) lower bounds differ: {disagreements}"
    requires_python = _lower_bound(SpecifierSet(_load_pyproject()["project"]["requires-python"]))
    assert conda_only["python"] == requires_python


def test_environment_installs_the_project_itself():
    _, conda_only, pip_section = _conda_requirements()
    assert "pip" in conda_only
    assert "-e ." in pip_section


def test_all_extra_is_sweeps_plus_analysis_plus_tracking():
    project = _load_pyproject()["project"]
    expanded = {str(r) for r in _expand_extra(project, "all")}
    expected = {str(r) for extra in ("sweeps", "analysis", "tracking") for r in _expand_extra(project, extra)}
    assert expanded == expected


INSTALLED_FOLDERS = ("dartsrenet", "sweeps", "analysis")
"""The project's packages: the library, and the Ray Tune entry points and analysis
scripts, installed with it so that the scripts import each other without sys.path edits."""


def test_package_is_dartsrenet_with_all_its_subpackages():
    """A wheel holds exactly the packages listed: every folder of dartsrenet/, sweeps/ and
    analysis/ with an __init__.py."""
    listed = _load_pyproject()["tool"]["setuptools"]["packages"]
    on_disk = sorted(
        ".".join(init.parent.relative_to(ROOT).parts)
        for folder in INSTALLED_FOLDERS
        for init in (ROOT / folder).rglob("__init__.py")
    )
    assert sorted(listed) == on_disk


@pytest.mark.parametrize("folder", ["sweeps", "analysis", "benchmarks"])
def test_scripts_never_edit_sys_path(folder):
    """Scripts import the installed packages; none patches the import path."""
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if "sys.path" in line
    ]
    assert not offenders, f"{folder}/ must import installed packages, not edit sys.path: {offenders}"


@pytest.mark.parametrize("folder", ["sweeps", "analysis", "benchmarks"])
def test_no_script_folder_module_hides_a_standard_library_module(folder):
    """``python analysis/x.py`` puts analysis/ first on the import path: a module there named
    like a standard-library one (``statistics.py``) would replace it for every import —
    ours, torch's, Ray's — in that process."""
    clashes = sorted(
        str(path.relative_to(ROOT)) for path in (ROOT / folder).glob("*.py") if path.stem in sys.stdlib_module_names
    )
    assert not clashes, f"rename these, they hide standard-library modules when a script here runs: {clashes}"


# --- layering: no Ray in the library or the analysis ------------------------------

RAY_FREE_FOLDERS = ("dartsrenet", "analysis")


def _ray_imports(path: Path, root: Path = ROOT) -> list[str]:
    """``file:line`` (relative to root) of every ``import ray[.x]`` / ``from ray[.x] import``.

    Walks the whole tree, so imports inside functions count too. Dynamic imports
    (``importlib.import_module("ray")``) are not detected.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        else:
            continue
        if any(m == "ray" or m.startswith("ray.") for m in modules):
            found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_ray_import_detector_sees_all_forms(tmp_path):
    source = tmp_path / "sample.py"
    source.write_text(
        "import os, ray\n"
        "from ray import tune\n"
        "import ray.tune as tune\n"
        "from ray.train import report\n"
        "def f():\n    import ray\n"
        "import raytracing\n"
        "from .ray import x\n"
    )
    assert _ray_imports(source, root=tmp_path) == [f"sample.py:{n}" for n in (1, 2, 3, 4, 6)]


@pytest.mark.parametrize("folder", RAY_FREE_FOLDERS)
def test_folder_never_imports_ray(folder):
    directory = ROOT / folder
    if not directory.is_dir():
        pytest.skip(f"{folder}/ does not exist yet")
    offenders = [hit for path in sorted(directory.rglob("*.py")) for hit in _ray_imports(path)]
    assert not offenders, f"{folder}/ must not import ray (docs/design.md, Layers): {offenders}"

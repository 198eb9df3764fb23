"""Every code name and repository path the docs cite exists in the code.

The user docs (``README.md``, ``docs/*.md``) cite names in backticks. What this
test checks, token by token (a backticked span, trailing call arguments such as
``(config, report=None)`` stripped):

* **Repository paths**: a token of path characters ending in ``/`` or in a
  source extension (``.py .md .c .h .yaml .yml .toml .sh``). With a ``/``, when its
  first part is one of the repository's folders (``dartsrenet``, ``sweeps``,
  ``analysis``, ``benchmarks``, ``tests``, ``docs``, ``.ci``) or one of the library's
  subpackages (``cells``, ``strategies``, ``csrc``, ``testing``), it must exist
  relative to the repository root, ``docs/`` or ``dartsrenet/`` (under a repository
  folder, with any extension or none: ``.ci/run``); other paths
  (``results/demo/``, ``run/metrics.jsonl``) name run outputs and are not
  checked. Without a ``/``, a ``.py``/``.c``/``.h``/``.yaml`` file name must be
  some file of the repository. A pytest id ``tests/x.py::name`` also needs its
  test function.
* **Dotted code names**: ``a.b[.c…]`` whose first part is a top-level package
  (``dartsrenet.runs.RunFolder``), a module of the project by its short name
  (``runs.resolve_device``, ``cells.maths.node_update``, ``tables.select_seed``) or
  a class of the project (``SearchConfig.patience``, dataclass fields included)
  must resolve by import and attribute access. Other dotted tokens
  (``nn.GRU``, ``ray.get_gpu_ids()``) belong to other libraries and are skipped.
* **Called names**: a bare ``name(…)`` must be defined somewhere in the project
  (a function, class or assigned name).
* **Identifiers**: a bare ``snake_case`` token with an underscore, or a
  ``CamelCase`` one, must occur in the project's code as a defined name, an
  attribute, a parameter or a string (metric keys, preset names), or in its
  configuration files (``Makefile``, ``cluster*.yaml``, ``pyproject.toml``).
  Plain words (``auto``, ``darts``), flags (``--set epochs=1``), shell commands
  and placeholders (``search_<variant>``) carry no such claim and are skipped.
* **The module table** of ``docs/design.md`` (rows ``| `runs.py` | … |``): every
  identifier a row names must be an attribute of that module (or of its
  submodules, for a package), a member of one of its classes, or a key/item of one
  of its constant tables (``PRESETS``' ``study``, ``ORDERINGS``' ``hilbert``).
"""

from __future__ import annotations

import ast
import builtins
import importlib
import pkgutil
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
PACKAGES = ("dartsrenet", "sweeps", "analysis", "benchmarks")
REPO_FOLDERS = ("dartsrenet", "sweeps", "analysis", "benchmarks", "tests", "docs", ".ci")
LIBRARY_SUBFOLDERS = ("cells", "strategies", "csrc", "testing")
SOURCE_EXTENSIONS = (".py", ".md", ".c", ".h", ".yaml", ".yml", ".toml", ".sh")
BARE_FILE_EXTENSIONS = (".py", ".c", ".h", ".yaml", ".yml")
CONFIG_FILES = ("Makefile", "cluster.yaml", "cluster.local.yaml", "pyproject.toml")
# The project's Python code that names may live in (not the tests: a doc naming
# a test cites it by its pytest id, checked as a path).
CODE_FOLDERS = ("dartsrenet", "sweeps", "analysis", "benchmarks")

BACKTICKED = re.compile(r"``?([^`\n]+?)``?")
WRAPPED_BACKTICKED = re.compile(r"(``?)((?:(?!\n\s*\n)[^`])+?)\1")
PATH_TOKEN = re.compile(r"[\w.\-/]+")
IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
CALL = re.compile(r"([A-Za-z_][\w.]*)\(.*\)")
CAMEL = re.compile(r"_?[A-Z][a-z0-9]+[A-Z]\w*")
PYTEST_ID = re.compile(r"(tests/[\w/]+\.py)::(\w+)")
# Names the docs cite that belong to other code: Ray's environment variable, the
# original DARTS code's option, an example experiment name a sweep derives.
FOREIGN_NAMES = {
    "RAY_gcs_rpc_server_reconnect_timeout_s": "Ray's reconnect timeout (docs/cluster.md)",
    "learning_rate_min": "the original DARTS code's option (docs/architecture.md)",
    "search_pets_demo": "an experiment name derived from a dataset folder (docs/design.md)",
}


def backticked(path: Path) -> Iterator[str]:
    """Backticked spans of a Markdown file outside fenced code blocks (a span may wrap a line)."""
    in_fence = False
    prose = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            in_fence = not in_fence
            prose.append("")
        elif not in_fence:
            prose.append(line)
    for match in WRAPPED_BACKTICKED.finditer("\n".join(prose)):
        yield " ".join(match.group(2).split())


def doc_tokens() -> list[tuple[str, str]]:
    """(doc file, token) for every backticked span of the user docs, deduplicated."""
    seen = {(path.relative_to(ROOT).as_posix(), token) for path in DOCS for token in backticked(path)}
    return sorted(seen)


def python_files() -> list[Path]:
    return sorted(path for folder in CODE_FOLDERS for path in (ROOT / folder).rglob("*.py"))


@cache
def all_file_names() -> frozenset[str]:
    names = set()
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if not any(part.startswith(".") or part == "__pycache__" for part in parts):
            names.add(path.name)
    return frozenset(names)


@cache
def code_names() -> tuple[frozenset[str], frozenset[str]]:
    """(defined, mentioned): names the project's code defines, and every name it uses.

    Defined: functions, classes, assigned names and attributes. Mentioned: those
    plus attribute names, parameters, keywords, identifier-like strings and the
    words of the configuration files.
    """
    defined: set[str] = set()
    mentioned: set[str] = set()
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
            elif isinstance(node, ast.Attribute):
                (defined if isinstance(node.ctx, ast.Store) else mentioned).add(node.attr)
            elif isinstance(node, ast.arg):
                mentioned.add(node.arg)
            elif isinstance(node, ast.keyword) and node.arg:
                mentioned.add(node.arg)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                mentioned.update(IDENTIFIER.findall(node.value))
            elif isinstance(node, ast.Name):
                mentioned.add(node.id)
            elif isinstance(node, ast.alias):
                mentioned.add((node.asname or node.name).split(".")[0])
    for folder in ("dartsrenet/csrc",):
        for path in (ROOT / folder).iterdir():
            mentioned.update(IDENTIFIER.findall(path.read_text(encoding="utf-8")))
    for name in CONFIG_FILES:
        mentioned.update(IDENTIFIER.findall((ROOT / name).read_text(encoding="utf-8")))
    return frozenset(defined), frozenset(mentioned | defined)


@cache
def project_modules() -> dict[str, list[str]]:
    """Short module name (``runs``, ``cells.maths``, ``tables``) -> full module names."""
    short: dict[str, list[str]] = {}
    for path in python_files():
        dotted = path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
        dotted = dotted.removesuffix(".__init__")
        parts = dotted.split(".")
        for start in range(1, len(parts)):
            short.setdefault(".".join(parts[start:]), []).append(dotted)
    return short


@cache
def project_classes() -> dict[str, list[str]]:
    """Class name -> modules that define it."""
    classes: dict[str, list[str]] = {}
    for path in python_files():
        module = path.relative_to(ROOT).with_suffix("").as_posix().replace("/", ".")
        module = module.removesuffix(".__init__")
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef):
                classes.setdefault(node.name, []).append(module)
    return classes


@pytest.fixture(scope="module", autouse=True)
def interpreted_triton_imports():
    """TRITON_INTERPRET=1 while this module imports the documented modules: importing
    ``dartsrenet.kernels.triton_device`` jits its kernels in the mode then in force, and the
    tests run Triton only in its interpreter (tests/test_triton_kernels.py, test_orderings.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRITON_INTERPRET", "1")
        yield


def has_attribute(owner: object, name: str) -> bool:
    fields = getattr(owner, "__dataclass_fields__", {})
    return hasattr(owner, name) or name in fields


def resolves(module_name: str, attributes: list[str]) -> bool:
    try:
        owner: object = importlib.import_module(module_name)
    except ImportError:
        return False
    for name in attributes:
        if isinstance(owner, ModuleType) and not hasattr(owner, name):
            try:
                owner = importlib.import_module(f"{owner.__name__}.{name}")
                continue
            except ImportError:
                return False
        if not has_attribute(owner, name):
            return False
        owner = getattr(owner, name, None)
    return True


def dotted_problem(token: str) -> str | None:
    """Why a dotted token does not resolve, or None (resolves or not ours)."""
    parts = token.split(".")
    if parts[0] in PACKAGES:
        return None if resolves(parts[0], parts[1:]) else "does not resolve"
    modules = project_modules()
    for split in range(len(parts) - 1, 0, -1):
        candidates = modules.get(".".join(parts[:split]), [])
        if candidates:
            if any(resolves(full, parts[split:]) for full in candidates):
                return None
            return f"not found in {' or '.join(candidates)}"
    for module in project_classes().get(parts[0], []):
        if resolves(module, parts):
            return None
    if parts[0] in project_classes():
        return f"not an attribute of {parts[0]}"
    return None


def path_problem(token: str) -> str | None:
    """Why a path token names nothing in the repository, or None (exists or not ours)."""
    test_id = PYTEST_ID.fullmatch(token)
    if test_id:
        test_file = ROOT / test_id.group(1)
        if not test_file.is_file():
            return "no such file"
        if f"def {test_id.group(2)}(" not in test_file.read_text(encoding="utf-8"):
            return f"no test {test_id.group(2)} in {test_id.group(1)}"
        return None
    in_repo_folder = token.split("/")[0] in REPO_FOLDERS and "/" in token
    if not PATH_TOKEN.fullmatch(token) or not (
        in_repo_folder or token.endswith("/") or token.endswith(SOURCE_EXTENSIONS)
    ):
        return None
    if "/" in token.rstrip("/"):
        if token.split("/")[0] not in REPO_FOLDERS + LIBRARY_SUBFOLDERS:
            return None
        bases = (ROOT, ROOT / "docs", ROOT / "dartsrenet")
        return None if any((base / token).exists() for base in bases) else "no such file or folder"
    if token.endswith("/"):
        name = token.rstrip("/")
        if name in REPO_FOLDERS + LIBRARY_SUBFOLDERS and not any(
            (base / name).is_dir() for base in (ROOT, ROOT / "dartsrenet")
        ):
            return "no such folder"
        return None
    if token.endswith(BARE_FILE_EXTENSIONS) and token not in all_file_names():
        return "no file of that name in the repository"
    return None


def token_problem(token: str) -> str | None:
    """Why a backticked token claims a name or path the project lacks, or None."""
    if token.startswith(tuple(f"{folder}/" for folder in REPO_FOLDERS)) or (
        PATH_TOKEN.fullmatch(token) and token.endswith(SOURCE_EXTENSIONS + ("/",))
    ):
        return path_problem(token.split(" ")[0])
    if token in FOREIGN_NAMES:
        return None
    call = CALL.fullmatch(token)
    if call:
        token = call.group(1)
        if IDENTIFIER.fullmatch(token):
            known = token in code_names()[1] or token in dir(builtins)
            return None if known else "no function or class of that name"
    if DOTTED.fullmatch(token):
        return dotted_problem(token)
    if IDENTIFIER.fullmatch(token) and ("_" in token.strip("_") or CAMEL.fullmatch(token)):
        return None if token in code_names()[1] else "not a name in the code"
    return None


def module_table_rows() -> list[tuple[str, list[str]]]:
    """(module cell, backticked names of the row) for docs/design.md's module table."""
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    section = text.split("## Library modules", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        # Split on the first `|` outside backticks (a cell may hold `a|b`).
        body = line.strip().removeprefix("|")
        outside = re.sub(r"`[^`]*`", lambda match: "x" * len(match.group(0)), body)
        if "|" not in outside or not body.lstrip().startswith("`"):
            continue
        split = outside.index("|")
        rows.append((body[:split].strip(), BACKTICKED.findall(body[split + 1 :])))
    return rows


def table_modules(module_cell: str) -> list[ModuleType]:
    """The module(s) (a package with all its submodules) a module-table row is about."""
    modules = []
    for path in BACKTICKED.findall(module_cell):
        if not (path.endswith(".py") or path.endswith("/")) or path == "__main__.py":
            continue  # __main__ runs the command line when imported
        dotted = "dartsrenet." + path.removesuffix(".py").rstrip("/").replace("/", ".")
        if not (ROOT / "dartsrenet" / path / "__init__.py").exists() and not path.endswith(".py"):
            continue  # a folder of C sources
        module = importlib.import_module(dotted.removesuffix(".__init__").removesuffix(".__main__"))
        modules.append(module)
        if hasattr(module, "__path__"):
            for info in pkgutil.iter_modules(module.__path__):
                modules.append(importlib.import_module(f"{module.__name__}.{info.name}"))
    return modules


def module_members(module: ModuleType) -> set[str]:
    """Names a module-table row may cite for ``module``: attributes, class members, table keys."""
    members = set(vars(module))
    for value in list(vars(module).values()):
        if isinstance(value, type) and value.__module__ == module.__name__:
            members.update(dir(value))
            members.update(getattr(value, "__dataclass_fields__", {}))
        elif isinstance(value, dict):
            members.update(key for key in value if isinstance(key, str))
        elif isinstance(value, (tuple, list, frozenset, set)):
            members.update(item for item in value if isinstance(item, str))
    return members


@cache
def tokens_by_doc() -> dict[str, list[str]]:
    """Every doc file (``doc_tokens``'s first field) → its backticked tokens, in order."""
    grouped: dict[str, list[str]] = {path.relative_to(ROOT).as_posix(): [] for path in DOCS}
    for doc, token in doc_tokens():
        grouped[doc].append(token)
    return grouped


@pytest.mark.parametrize("doc", sorted(tokens_by_doc()))
def test_backticked_names_exist(doc: str) -> None:
    """Every backticked token of one doc file, each checked; the failure lists all that name nothing."""
    problems = [f"`{token}`: {problem}" for token in tokens_by_doc()[doc] if (problem := token_problem(token))]
    assert not problems, f"{doc}: " + "; ".join(problems)


def table_row_ids(row: tuple[str, list[str]]) -> str:
    return row[0].replace("`", "")


@pytest.mark.parametrize("row", module_table_rows(), ids=table_row_ids)
def test_module_table_names_exist_in_their_module(row: tuple[str, list[str]]) -> None:
    module_cell, names = row
    folders = [ROOT / "dartsrenet" / path for path in BACKTICKED.findall(module_cell)]
    assert all(folder.exists() for folder in folders), f"docs/design.md module table: no {module_cell} in dartsrenet/"
    modules = table_modules(module_cell)
    # Backend names (`native`, `triton`) are cited across the rows.
    members = set(importlib.import_module("dartsrenet.cells.backends").BACKENDS)
    members = members.union(*(module_members(module) for module in modules))
    missing = []
    for token in names:
        call = CALL.fullmatch(token)
        name = call.group(1) if call else token
        if token.endswith(SOURCE_EXTENSIONS) and PATH_TOKEN.fullmatch(token):
            bases = [ROOT, ROOT / "dartsrenet", *(folder for folder in folders if folder.is_dir())]
            if not any((base / token).exists() for base in bases):
                missing.append(token)
        elif DOTTED.fullmatch(name):
            first, _, rest = name.partition(".")
            owners = [module for module in modules if module.__name__.endswith("." + first)]
            if owners and not any(resolves(owner.__name__, rest.split(".")) for owner in owners):
                missing.append(token)
        elif IDENTIFIER.fullmatch(name) and name not in members:
            missing.append(token)
    assert not missing, f"docs/design.md module table, row {module_cell}: not in the module: {missing}"


def test_the_checks_catch_drift() -> None:
    """The rules flag a renamed field, function, module attribute and file."""
    assert token_problem("fused_cpu_kernels_renamed") is not None
    assert token_problem("arguments_of_nothing(**values)") is not None
    assert token_problem("runs.no_such_function") is not None
    assert token_problem("dartsrenet/no_such_module.py") is not None
    assert token_problem(".ci/no_such_script") is not None
    assert token_problem("tests/test_docs_names.py::test_no_such_test") is not None
    assert token_problem("SearchConfig.no_such_field") is not None
    assert token_problem("runs.RunFolder") is None
    assert token_problem("SearchConfig.epochs") is None
    assert token_problem("--set epochs=1") is None


SECTION_REFERENCE = re.compile(r"architecture(?:\.md)?`?\]?\s*((?:§[\d.]*\d(?:\s*(?:,|and|–|-)\s*)?)+)")
DOC_PATH = re.compile(r"docs/[a-z0-9_-]+\.md")


def cited_texts() -> list[Path]:
    """The docs and the code whose comments and docstrings cite the docs."""
    code = [path for folder in (*CODE_FOLDERS, "tests") for path in (ROOT / folder).rglob("*.py")]
    code = [path for path in code if path != Path(__file__).resolve()]  # its own examples
    return [*DOCS, ROOT / "benchmarks" / "README.md", *sorted(code)]


@cache
def architecture_sections() -> frozenset[str]:
    architecture = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    return frozenset(re.findall(r"^#+ (\d+(?:\.\d+)?)\.? ", architecture, re.MULTILINE))


def unknown_sections(text: str) -> list[str]:
    """Section numbers that ``docs/architecture.md §…`` references in ``text`` name but lack."""
    return [
        number
        for match in SECTION_REFERENCE.finditer(text)
        for number in re.findall(r"§([\d.]*\d)", match.group(1))
        if number not in architecture_sections()
    ]


def test_section_references_name_existing_sections() -> None:
    """``docs/architecture.md §N.M`` (docs, docstrings, comments) names a numbered heading there."""
    assert unknown_sections("docs/architecture.md §2.5, §9.1 and §3") == ["9.1"]
    broken = [
        f"{path.relative_to(ROOT)}: §{number}"
        for path in cited_texts()
        for number in unknown_sections(path.read_text(encoding="utf-8"))
    ]
    assert not broken, f"no such section of docs/architecture.md: {broken}"


def test_cited_doc_files_exist() -> None:
    """Every ``docs/NAME.md`` the docs or the code cite exists."""
    missing = sorted(
        {
            f"{path.relative_to(ROOT)}: {cited}"
            for path in cited_texts()
            for cited in DOC_PATH.findall(path.read_text(encoding="utf-8"))
            if not (ROOT / cited).is_file()
        }
    )
    assert not missing, f"cited docs that do not exist: {missing}"


MARKDOWN_LINK = re.compile(r"\]\(([^)\s#]+)(#[^)\s]*)?\)")


def test_markdown_links_point_at_files() -> None:
    """Every relative link target of the docs (``[text](path#anchor)``) exists."""
    broken = [
        f"{doc.relative_to(ROOT)}: {target}"
        for doc in [*DOCS, ROOT / "benchmarks" / "README.md"]
        for target, _ in MARKDOWN_LINK.findall(doc.read_text(encoding="utf-8"))
        if "://" not in target and not (doc.parent / target).exists()
    ]
    assert not broken, f"links to nothing: {broken}"


NAMED_SECTION = re.compile(r"(docs/[a-z0-9_-]+\.md),?\s+\"([^\"]+)\"")


def plain_heading(text: str) -> str:
    """A heading without backticks and parentheses: ``The `report` callback`` → ``The report callback``."""
    text = re.sub(r"\([^)]*\)", "", text.replace("`", ""))
    return " ".join(text.split())


def test_named_sections_exist() -> None:
    """``docs/NAME.md, "Section"`` (docs, docstrings, comments) names the start of a heading there."""
    broken = []
    for path in cited_texts():
        for doc, title in NAMED_SECTION.findall(path.read_text(encoding="utf-8")):
            title = " ".join(title.split())
            if not (ROOT / doc).is_file():
                continue  # test_cited_doc_files_exist reports it
            headings = re.findall(r"^#+ (.+)$", (ROOT / doc).read_text(encoding="utf-8"), re.MULTILINE)
            if not any(plain_heading(heading).startswith(plain_heading(title)) for heading in headings):
                broken.append(f"{path.relative_to(ROOT)}: {doc}, \"{title}\"")
    assert not broken, f"no heading starts so: {broken}"

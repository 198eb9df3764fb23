"""The library's import graph has no cycle and no arrow that runs back up its layers.

The graph is read from the source (``ast``, nothing imported): an edge m → n for every
``import``/``from … import`` of a ``dartsrenet`` module n in module m, at the top or inside
a function. (A submodule's implicit import of its parent package is not an edge: a package
``__init__`` that re-exports its submodules is how Python packages are built.)

Layers, lowest first (docs/design.md): a module may import its own layer and the layers
below. Modules in no layer (configuration, data, training, search, the command line, …)
are the application on top: they may import any layer, and no layer module imports them.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dartsrenet"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("kernels", ("dartsrenet.kernels",)),  # the fused kernels: torch only
    ("foundation", ("dartsrenet.registry", "dartsrenet.activations", "dartsrenet.genotypes", "dartsrenet.variants",
                    "dartsrenet.paper")),  # fmt: skip
    ("cells", ("dartsrenet.cells",)),  # the recurrent cells and their backends, over the kernels
    ("networks", ("dartsrenet.orderings", "dartsrenet.network_spec", "dartsrenet.renet", "dartsrenet.networks",
                  "dartsrenet.models")),  # fmt: skip
]
"""(layer name, the modules in it: a name and every module below it)."""


def module_names() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


def import_graph() -> dict[str, set[str]]:
    """module → the package's modules it imports."""
    modules = module_names()

    def known(name: str) -> str | None:  # the module a dotted name is, or is in
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(known(alias.name) for alias in node.names if alias.name.startswith("dartsrenet"))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                if base.startswith("dartsrenet"):
                    targets.update(known(f"{base}.{alias.name}") if f"{base}.{alias.name}" in modules else known(base)
                                   for alias in node.names)  # fmt: skip
        graph[module] = {target for target in targets if target is not None and target != module}
    return graph


def layer_of(module: str) -> int | None:
    """The index of ``module``'s layer in :data:`LAYERS`; None for the application."""
    for index, (_, members) in enumerate(LAYERS):
        if any(module == member or module.startswith(member + ".") for member in members):
            return index
    return None


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every edge from a layer to a higher layer or to the application."""
    found = []
    for module, targets in graph.items():
        own = layer_of(module)
        if own is None:
            continue
        for target in sorted(targets):
            other = layer_of(target)
            if other is None or other > own:
                where = "the application" if other is None else f"layer {LAYERS[other][0]!r}"
                found.append(f"{module} (layer {LAYERS[own][0]!r}) imports {target} ({where})")
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected group of modules, if any (depth-first search)."""
    found, state = [], {}  # state: 1 on the current path, 2 finished
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def test_every_layer_module_exists():
    modules = module_names()
    for _, members in LAYERS:
        for member in members:
            assert member in modules, f"{member} is in LAYERS but not in the package"


def test_the_import_graph_has_no_cycle():
    assert cycles(import_graph()) == []


def test_no_import_runs_back_up_the_layers():
    assert upward_imports(import_graph()) == []


def test_the_kernels_import_nothing_of_the_package_but_themselves():
    graph = import_graph()
    outside = {
        f"{module} → {target}" for module, targets in graph.items() if layer_of(module) == 0
        for target in targets if layer_of(target) != 0
    }  # fmt: skip
    assert not outside


def test_the_checks_find_an_upward_import_and_a_cycle():
    """The checks themselves, on a graph with one of each added."""
    graph = import_graph()
    graph["dartsrenet.kernels.native"] = graph["dartsrenet.kernels.native"] | {"dartsrenet.cells.norms"}
    assert upward_imports(graph) == [
        "dartsrenet.kernels.native (layer 'kernels') imports dartsrenet.cells.norms (layer 'cells')"
    ]
    graph["dartsrenet.cells.norms"] = graph["dartsrenet.cells.norms"] | {"dartsrenet.kernels.native"}
    assert [set(cycle) for cycle in cycles(graph)] == [{"dartsrenet.cells.norms", "dartsrenet.kernels.native"}]

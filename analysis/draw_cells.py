"""Draw DartsReNet cells as graphs, in the style of the paper's Fig. 3–5.

The inputs x_t and h_{t−1} (boxes) enter node 0 (fixed tanh, paper §2.2); node i = 1 … 8
is labelled with its number and activation f_i and has one edge from its predecessor
p_i (eq. 4–5); the averaged nodes feed the output h_t = mean(…) (eq. 6).

Usage::

    python analysis/draw_cells.py --genotypes paper --out figures/cells --format pdf
    python analysis/draw_cells.py --genotypes results/search_digits_demo/selected_genotypes.json
    python analysis/draw_cells.py            # the latest search experiment's selection under ./results

Without ``--genotypes`` it draws the selection of the latest search experiment under
``--results`` and says which file that is; with no such selection it says so and exits
with :data:`EXIT_NO_DRAWINGS` (``--genotypes paper`` draws the paper's cells). File names
come from the selection's variant keys: each must be a plain name, so every drawing
lands inside ``--out`` (:func:`dartsrenet.safe_paths.path_inside`).

:func:`draw_genotype` only builds a :class:`graphviz.Digraph`; rendering files (which
needs graphviz's ``dot``) happens in :func:`main` only, and never opens a viewer. Without
``dot`` on ``PATH``, :func:`main` writes each drawing's DOT source (``<name>.dot``), says
how to render it, and exits with :data:`EXIT_SOURCES_ONLY`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import graphviz

from analysis.results import DEFAULT_RESULTS_ROOT, latest_experiment
from analysis.tables import variant_label
from dartsrenet import results
from dartsrenet.genotypes import PAPER_GENOTYPES, Genotype, GenotypeError, parse_genotype
from dartsrenet.results import SELECTION_FILE, exists, is_uri, location_name, read_text, selection_location
from dartsrenet.safe_paths import checked_name, path_inside

INPUT_NODES: tuple[tuple[str, str], ...] = (("x_t", "<x<sub>t</sub>>"), ("h_prev", "<h<sub>t−1</sub>>"))
"""Graph node names and (HTML) labels of the cell's inputs."""

INPUT_NODE = "0"
OUTPUT_NODE = "h_t"
OUTPUT_LABEL = "<h<sub>t</sub><br/>mean>"

ACTIVATION_COLOURS: dict[str, str] = {
    "tanh": "#c6dbef",
    "relu": "#fdd0a2",
    "sigmoid": "#c7e9c0",
    "identity": "#e5e5e5",
}
"""Fill colour per activation, so equal activations are seen at a glance."""

FORMATS: tuple[str, ...] = ("png", "svg", "pdf")
SCRIPT = "analysis/draw_cells.py"

EXIT_OK, EXIT_NO_DRAWINGS, EXIT_USAGE, EXIT_SOURCES_ONLY = 0, 1, 2, 3
"""Exit statuses of :func:`main`; ``EXIT_NO_DRAWINGS``: no selection to draw;
``EXIT_SOURCES_ONLY``: no ``dot``, DOT sources written."""


class NoSelectionError(LookupError):
    """No search selection to draw where one was looked for (the message says where)."""


def node_label(node: int, activation: str) -> str:
    """Label of an intermediate node: ``"1\\nsigmoid"`` (DOT's ``\\n`` line break)."""
    return f"{node}\\n{activation}"


def draw_genotype(genotype: Genotype, title: str | None = None) -> graphviz.Digraph:
    """The cell of ``genotype`` as a graph (not rendered).

    Nodes: ``x_t`` and ``h_prev`` (inputs, boxes), ``0`` … ``8`` (ellipses labelled
    ``"<i>\\n<activation>"``, node 0 with tanh), ``h_t`` (output box, the mean of the
    averaged nodes). Edges: both inputs → 0, p_i → i for every node, every averaged
    node → h_t.

    Args:
        genotype: the cell.
        title: optional caption drawn above the cell.
    """
    graph = graphviz.Digraph(name="cell", format="png")
    graph.attr(rankdir="LR", nodesep="0.25", ranksep="0.45", fontname="Helvetica", fontsize="18")
    if title:
        graph.attr(label=title, labelloc="t")
    graph.attr("node", fontname="Helvetica", fontsize="16", style="filled", penwidth="1.2")
    graph.attr("edge", fontname="Helvetica", penwidth="1.2", arrowsize="0.8")
    for name, label in INPUT_NODES:
        graph.node(name, label, shape="box", fillcolor="#fbe3d4")
    graph.node(INPUT_NODE, node_label(0, "tanh"), shape="ellipse", fillcolor=ACTIVATION_COLOURS["tanh"])
    for node, (activation, _) in enumerate(genotype.recurrent, start=1):
        graph.node(
            str(node),
            node_label(node, activation),
            shape="ellipse",
            fillcolor=ACTIVATION_COLOURS.get(activation, "white"),
        )
    graph.node(OUTPUT_NODE, OUTPUT_LABEL, shape="box", fillcolor="#fff2ae")
    for name, _ in INPUT_NODES:
        graph.edge(name, INPUT_NODE)
    for node, (_, predecessor) in enumerate(genotype.recurrent, start=1):
        graph.edge(str(predecessor), str(node))
    for node in genotype.concat:
        graph.edge(str(node), OUTPUT_NODE, color="gray45", style="dashed")
    return graph


@dataclass(frozen=True)
class NamedGenotype:
    """A genotype to draw, with the file name stem and the title of its drawing."""

    name: str
    genotype: Genotype
    title: str


def paper_genotypes() -> list[NamedGenotype]:
    """The three cells the paper evaluated (Fig. 3–5)."""
    return [
        NamedGenotype(f"paper_{variant}", genotype, f"{variant_label(variant)} (paper)")
        for variant, genotype in PAPER_GENOTYPES.items()
    ]


def selected_genotypes(selection: Mapping[str, Any]) -> list[NamedGenotype]:
    """The selected cell of every variant in a search sweep's ``selected_genotypes.json``
    (read by the results contract, :func:`dartsrenet.results.selected_genotypes`), titled
    with the dataset, seed and val_cs accuracy it was selected with.

    Variants without a selection (no finished seed) are left out.

    Raises:
        GenotypeError: if the document is not a ``selected_genotypes.json``.
    """
    try:
        genotypes = results.selected_genotypes(selection)
    except ValueError as error:
        raise GenotypeError(str(error)) from None
    named = []
    dataset = selection.get("dataset")
    for variant, genotype in genotypes.items():
        selected = selection["variants"][variant]["selected"]
        details = [f"seed {selected['seed']}"] if "seed" in selected else []
        if isinstance(selected.get("best_val_accuracy"), int | float):
            details.append(f"val_cs {100 * selected['best_val_accuracy']:.2f}%")
        if dataset:
            details.insert(0, f"searched on {dataset}")
        title = variant_label(variant) + (f" ({', '.join(details)})" if details else "")
        named.append(NamedGenotype(variant, genotype, title))
    return named


def is_folder(spec: str) -> bool:
    """Whether ``spec`` names a folder (a search experiment): a local one, or a URI not
    ending in ``.json``."""
    return (is_uri(spec) and not spec.endswith(".json")) or Path(spec).is_dir()


def load_genotypes(spec: str) -> list[NamedGenotype]:
    """Resolve ``--genotypes``: ``paper``, a search experiment folder, a
    ``selected_genotypes.json``, a genotype JSON file, a paper variant name or a compact
    genotype string.

    Raises:
        GenotypeError: if ``spec`` is none of those.
    """
    if spec == "paper":
        return paper_genotypes()
    location = selection_location(spec) if is_folder(spec) else spec
    text = read_text(location) if location.endswith(".json") or is_folder(spec) else None
    if is_folder(spec) and text is None:
        raise GenotypeError(f"{spec}: no {SELECTION_FILE} (the search sweep writes it when it ends)")
    if text is not None:
        try:
            data = json.loads(text)
        except ValueError as error:
            raise GenotypeError(f"{location}: malformed JSON: {error}") from None
        if isinstance(data, dict) and "variants" in data:
            named = selected_genotypes(data)
            if not named:
                raise GenotypeError(f"{location}: no variant has a selected genotype yet")
            for item in named:  # variant keys become file names
                checked_name(item.name, f"{location}: variant key")
            return named
        stem = location_name(location).removesuffix(".json")
        if not is_uri(location):
            return [NamedGenotype(stem, Genotype.load(location), stem)]
        wrapped = isinstance(data, dict) and isinstance(data.get("genotype"), dict)
        return [NamedGenotype(stem, Genotype.from_dict(data["genotype"] if wrapped else data), stem)]
    genotype = parse_genotype(spec)
    name = spec if spec in PAPER_GENOTYPES else "cell"
    title = f"{variant_label(spec)} (paper)" if spec in PAPER_GENOTYPES else genotype.to_string()
    return [NamedGenotype(name, genotype, title)]


def default_genotypes(results_root: str) -> tuple[str, list[NamedGenotype]]:
    """The selection of the latest search experiment under ``results_root``.

    Returns:
        The ``selected_genotypes.json`` drawn from (to tell the user) and its genotypes.

    Raises:
        NoSelectionError: no search experiment under ``results_root``, or the latest has
            no selection yet, or (a local root) its selection lies outside the root
            through a link.
    """
    experiment = latest_experiment(results_root, "search")
    if experiment is None:
        raise NoSelectionError(f"no search experiment under {results_root}/")
    location = experiment.file(SELECTION_FILE)
    if not exists(location):
        raise NoSelectionError(
            f"the latest search experiment under {results_root}/, {experiment.name}, has no {SELECTION_FILE} "
            "yet (its search sweep writes it when it ends)"
        )
    if not is_uri(location) and not Path(location).resolve().is_relative_to(Path(results_root).resolve()):
        raise NoSelectionError(  # a link inside the root that leads elsewhere
            f"the latest search experiment's {location} lies outside {results_root}/ "
            f"(at {Path(location).resolve()}); pass it as --genotypes if it is meant"
        )
    return location, load_genotypes(location)
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--genotypes",
        metavar="FILE|paper",
        help="'paper', a selected_genotypes.json or search experiment folder, a genotype JSON file, "
        "or a genotype string (default: the selection of the latest search experiment under --results)",
    )
    parser.add_argument(
        "--results", metavar="ROOT|URI", default=DEFAULT_RESULTS_ROOT,
        help="results root: a folder or a storage URI such as s3://bucket/prefix (default: ./results)",
    )
    parser.add_argument(
        "--out", metavar="DIR", type=Path, default=Path("figures/cells"), help="output folder (default: figures/cells)"
    )
    parser.add_argument("--format", choices=FORMATS, default="png", help="file format (default: png)")
    return parser.parse_args(argv)


def render_hint(sources: Sequence[Path], fmt: str, rerun: str) -> str:
    """One line: how to render DOT ``sources`` without this script, or with it once
    graphviz is installed (``rerun``: the command to run again)."""
    if len(sources) == 1:
        (path,) = sources
        command = f"dot -T{fmt} {shlex.quote(str(path))} -o {shlex.quote(str(path.with_suffix('.' + fmt)))}"
    else:
        pattern = shlex.quote(str(Path(sources[0]).parent)) + "/*.dot"
        command = f'for f in {pattern}; do dot -T{fmt} "$f" -o "${{f%.dot}}.{fmt}"; done'
    return (
        f"graphviz's `dot` is not on PATH, so the drawings were written as DOT sources; render them with "
        f"`{command}`, or install graphviz (sudo apt-get install graphviz, or sudo dnf install graphviz) "
        f"and run `{rerun}` again"
    )


def draw_all(named: Sequence[NamedGenotype], out: Path, fmt: str) -> tuple[list[Path], bool]:
    """Render one ``<name>.<fmt>`` per genotype into ``out``. Without graphviz's ``dot``
    on PATH, ``<name>.dot`` sources are written instead.

    Returns:
        The files written, and whether they were rendered (``False``: DOT sources).

    Raises:
        UnsafePathError: a name that would write outside ``out`` (checked before any file
            is written).
    """
    suffix = "." + (fmt if shutil.which("dot") is not None else "dot")
    for item in named:
        path_inside(out, item.name, "cell name", suffix)
    out.mkdir(parents=True, exist_ok=True)
    if shutil.which("dot") is None:
        return [Path(draw_genotype(item.genotype, item.title).save(f"{item.name}.dot", directory=out))
                for item in named], False
    return [
        Path(draw_genotype(item.genotype, item.title).render(
            filename=item.name, directory=out, format=fmt, cleanup=True, view=False
        ))
        for item in named
    ], True


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: render one file per genotype. Returns the exit status:
    :data:`EXIT_OK`, :data:`EXIT_NO_DRAWINGS` (no ``--genotypes`` and no search selection
    under ``--results``), :data:`EXIT_USAGE` (bad ``--genotypes``, a name that would
    write outside ``--out``, an output folder that cannot be written) or
    :data:`EXIT_SOURCES_ONLY` (no ``dot``: ``<name>.dot`` sources written instead)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    try:
        if args.genotypes is None:
            source, named = default_genotypes(args.results)
            source = f"{source} (the latest search experiment's selection; --genotypes chooses another)"
        else:
            source, named = args.genotypes, load_genotypes(args.genotypes)
    except NoSelectionError as error:
        print(f"error: {error}: nothing to draw. Run a search sweep, pass --genotypes FILE|DIR, "
              "or --genotypes paper for the paper's cells", file=sys.stderr)
        return EXIT_NO_DRAWINGS
    except (GenotypeError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    print(f"drawing {len(named)} cell(s) from {source}", file=sys.stderr)
    try:
        paths, rendered = draw_all(named, args.out, args.format)
    except ValueError as error:  # a name leading outside --out
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        print(f"error: cannot write the drawings into {args.out}: {error.strerror or error}", file=sys.stderr)
        return EXIT_USAGE
    for path in paths:
        print(path)
    if not rendered:
        print(f"note: {render_hint(paths, args.format, shlex.join(['python', SCRIPT, *argv]))}", file=sys.stderr)
        return EXIT_SOURCES_ONLY
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

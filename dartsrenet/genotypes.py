"""Genotypes: the discrete RNN cells that DARTS derives (paper §2.2, docs/architecture.md §3 and §5).

A genotype lists, for each of the cell's 8 intermediate nodes, the activation f_i
and the predecessor p_i of eq. 4–5, plus the nodes whose states are averaged into
the cell output h_t (eq. 6). Node 0 is the input node (fixed tanh), so node i may
read any node j < i.

Three forms, all round-tripping:

* the value: ``Genotype(recurrent=(("sigmoid", 0), ...), concat=(1, ..., 8))``;
* JSON, with the field names of the original DARTS genotype so its files load:
  ``{"recurrent": [["sigmoid", 0], ...], "concat": [1, ..., 8]}``;
* a compact string, ``"sigmoid:0,sigmoid:1,relu:2,...,relu:6@1,2,3,4,5,6,7,8"``
  (the ``@…`` part may be omitted when all nodes are averaged).

:func:`derive_genotype` turns architecture weights α into a genotype (eq. 9–10);
:func:`sample_genotype` and :func:`sample_genotypes` draw genotypes uniformly from the
search space (a random-search baseline).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dartsrenet.activations import ACTIVATIONS, NONE, PRIMITIVES
from dartsrenet.registry import lookup

NUM_NODES = 8
"""Intermediate nodes of a DartsReNet cell (docs/architecture.md §2): 8 nodes after the input node."""


class GenotypeError(ValueError):
    """A genotype that is not well formed. The message says what is wrong."""


def num_edges(num_nodes: int = NUM_NODES) -> int:
    """Edges j→i of the search cell: node i has i predecessors, 1 + 2 + … + num_nodes."""
    return num_nodes * (num_nodes + 1) // 2


def edge_index(node: int, predecessor: int) -> int:
    """Row of α for edge ``predecessor → node`` (node ≥ 1, predecessor < node).

    Rows are ordered node by node, predecessors ascending, as in DARTS:
    1←0, 2←0, 2←1, 3←0, 3←1, 3←2, …
    """
    return (node - 1) * node // 2 + predecessor


@dataclass(frozen=True)
class Genotype:
    """A derived DartsReNet cell: 8 ``(activation, predecessor)`` pairs and the averaged nodes.

    Args:
        recurrent: entry k describes node k + 1 as ``(activation, predecessor)``; the
            activation is one of tanh, relu, sigmoid, identity and the predecessor an
            earlier node (0 … k).
        concat: the nodes (1 … 8) averaged into the cell output, ascending.

    Raises:
        GenotypeError: if the genotype is malformed; the message names the problem.
    """

    recurrent: tuple[tuple[str, int], ...]
    concat: tuple[int, ...] = tuple(range(1, NUM_NODES + 1))

    def __post_init__(self) -> None:
        recurrent = _validated_recurrent(self.recurrent)
        concat = _validated_concat(self.concat, len(recurrent))
        object.__setattr__(self, "recurrent", recurrent)
        object.__setattr__(self, "concat", concat)

    @property
    def activations(self) -> tuple[str, ...]:
        """The activation f_i of nodes 1 … 8."""
        return tuple(activation for activation, _ in self.recurrent)

    @property
    def predecessors(self) -> tuple[int, ...]:
        """The predecessor p_i of nodes 1 … 8."""
        return tuple(predecessor for _, predecessor in self.recurrent)

    # --- JSON -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form ``{"recurrent": [[f, p], …], "concat": […]}``."""
        return {
            "recurrent": [[activation, predecessor] for activation, predecessor in self.recurrent],
            "concat": list(self.concat),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Genotype:
        """Build a genotype from its JSON form (``concat`` optional: all nodes)."""
        if not isinstance(data, dict):
            raise GenotypeError(f"a genotype must be a JSON object, got {type(data).__name__}")
        unknown = set(data) - {"recurrent", "concat"}
        if unknown:
            raise GenotypeError(f"unknown genotype field(s): {', '.join(sorted(unknown))}")
        if "recurrent" not in data:
            raise GenotypeError("a genotype needs a 'recurrent' field")
        recurrent = data["recurrent"]
        if not isinstance(recurrent, list | tuple):
            raise GenotypeError("'recurrent' must be a list of [activation, predecessor] pairs")
        pairs = []
        for k, entry in enumerate(recurrent):
            if not isinstance(entry, list | tuple) or len(entry) != 2:
                raise GenotypeError(
                    f"node {k + 1}: expected an [activation, predecessor] pair, got {entry!r}"
                )
            pairs.append((entry[0], entry[1]))
        concat = data.get("concat", range(1, len(pairs) + 1))
        if not isinstance(concat, list | tuple | range):
            raise GenotypeError("'concat' must be a list of node numbers")
        return cls(recurrent=tuple(pairs), concat=tuple(concat))

    def to_json(self) -> str:
        """JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        """Parse JSON text; malformed JSON raises :class:`GenotypeError`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise GenotypeError(f"malformed JSON: {error}") from None
        return cls.from_dict(data)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the JSON form to ``path``."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Genotype:
        """Read a genotype JSON file. Errors name the file and the problem.

        A file holding ``{"genotype": {...}}`` (as written by search runs with extra
        fields) is accepted too.
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as error:
            raise GenotypeError(f"{path}: cannot read genotype file ({error.strerror})") from None
        except UnicodeDecodeError:
            raise GenotypeError(f"{path}: not a genotype JSON file (not UTF-8 text)") from None
        try:
            data = json.loads(text)
            if isinstance(data, dict) and "genotype" in data and "recurrent" not in data:
                data = data["genotype"]
            return cls.from_dict(data)
        except json.JSONDecodeError as error:
            raise GenotypeError(f"{path}: malformed JSON: {error}") from None
        except GenotypeError as error:
            raise GenotypeError(f"{path}: {error}") from None

    # --- compact string -------------------------------------------------------------
    def to_string(self) -> str:
        """Compact form ``"sigmoid:0,sigmoid:1,…@1,2,…,8"``."""
        nodes = ",".join(f"{activation}:{predecessor}" for activation, predecessor in self.recurrent)
        return f"{nodes}@{','.join(str(node) for node in self.concat)}"

    @classmethod
    def from_string(cls, text: str) -> Genotype:
        """Parse the compact form of :meth:`to_string` (the ``@…`` part is optional)."""
        if not isinstance(text, str) or not text.strip():
            raise GenotypeError("empty genotype string")
        nodes_part, _, concat_part = text.strip().partition("@")
        pairs = []
        for k, token in enumerate(nodes_part.split(",")):
            activation, sep, predecessor = token.strip().partition(":")
            if not sep or not predecessor.strip().lstrip("-").isdigit():
                raise GenotypeError(
                    f"node {k + 1}: expected 'activation:predecessor', got {token.strip()!r}"
                )
            pairs.append((activation.strip(), int(predecessor)))
        if concat_part:
            try:
                concat = tuple(int(node) for node in concat_part.split(","))
            except ValueError:
                raise GenotypeError(f"averaged nodes must be integers, got {concat_part!r}") from None
        else:
            concat = tuple(range(1, len(pairs) + 1))
        return cls(recurrent=tuple(pairs), concat=concat)

    def __str__(self) -> str:
        return self.to_string()


def _validated_recurrent(recurrent: Any) -> tuple[tuple[str, int], ...]:
    if isinstance(recurrent, str) or not isinstance(recurrent, Iterable):
        raise GenotypeError("'recurrent' must be a sequence of (activation, predecessor) pairs")
    pairs = tuple(recurrent)
    if len(pairs) != NUM_NODES:
        raise GenotypeError(f"a genotype has {NUM_NODES} nodes, got {len(pairs)}")
    validated = []
    for k, pair in enumerate(pairs):
        node = k + 1
        if not isinstance(pair, Sequence) or isinstance(pair, str) or len(pair) != 2:
            raise GenotypeError(f"node {node}: expected (activation, predecessor), got {pair!r}")
        activation, predecessor = pair
        if activation == NONE:
            raise GenotypeError(f"node {node}: 'none' is a search-only primitive, not an activation")
        try:
            lookup(ACTIVATIONS, activation, "activation")
        except ValueError as error:
            raise GenotypeError(f"node {node}: {error}") from None
        if isinstance(predecessor, bool) or not isinstance(predecessor, int):
            raise GenotypeError(f"node {node}: predecessor must be an integer, got {predecessor!r}")
        if not 0 <= predecessor < node:
            raise GenotypeError(
                f"node {node}: predecessor {predecessor} must be an earlier node (0 … {node - 1})"
            )
        validated.append((activation, predecessor))
    return tuple(validated)


def _validated_concat(concat: Any, num_nodes: int) -> tuple[int, ...]:
    if isinstance(concat, str) or not isinstance(concat, Iterable):
        raise GenotypeError("'concat' must be a sequence of node numbers")
    nodes = tuple(concat)
    if not nodes:
        raise GenotypeError("'concat' must name at least one node")
    for node in nodes:
        if isinstance(node, bool) or not isinstance(node, int) or not 1 <= node <= num_nodes:
            raise GenotypeError(f"'concat' entries must be nodes 1 … {num_nodes}, got {node!r}")
    if list(nodes) != sorted(set(nodes)):
        raise GenotypeError(f"'concat' must be ascending without repeats, got {list(nodes)}")
    return nodes


PAPER_GENOTYPES: dict[str, Genotype] = {
    "vanilla": Genotype(
        recurrent=(
            ("sigmoid", 0), ("sigmoid", 1), ("relu", 2), ("sigmoid", 3),
            ("relu", 4), ("identity", 5), ("identity", 6), ("relu", 6),
        )
    ),
    "sigmoid_weighting": Genotype(
        recurrent=(
            ("relu", 0), ("sigmoid", 1), ("identity", 2), ("identity", 3),
            ("identity", 4), ("sigmoid", 4), ("identity", 4), ("relu", 4),
        )
    ),
    "directional_weight_sharing": Genotype(
        recurrent=(
            ("relu", 0), ("sigmoid", 1), ("relu", 2), ("relu", 3),
            ("relu", 4), ("relu", 5), ("relu", 6), ("sigmoid", 7),
        )
    ),
}
"""The cells the paper evaluated (docs/architecture.md §5: the original code's lists), keyed by variant."""


def parse_genotype(spec: str | os.PathLike[str] | Genotype) -> Genotype:
    """Resolve a genotype given as a value, a paper variant name, a JSON file or a string.

    Order: a :class:`Genotype` is returned as is; a name in :data:`PAPER_GENOTYPES`; an
    existing file path (JSON); otherwise the compact string form.
    """
    if isinstance(spec, Genotype):
        return spec
    text = os.fspath(spec)
    if text in PAPER_GENOTYPES:
        return PAPER_GENOTYPES[text]
    if Path(text).is_file():
        return Genotype.load(text)
    if ":" not in text:
        raise GenotypeError(
            f"{text!r} is neither a paper genotype ({', '.join(sorted(PAPER_GENOTYPES))}), "
            "an existing JSON file, nor a genotype string like 'relu:0,sigmoid:1,…'"
        )
    return Genotype.from_string(text)


def derive_genotype(alpha: Any, primitives: Sequence[str] = PRIMITIVES) -> Genotype:
    """Derive the discrete cell from architecture weights α (paper eq. 9–10, docs/architecture.md §3).

    For each node i the probabilities p = softmax(α[j→i]) are formed per edge; the
    predecessor is the j whose best non-``none`` probability is highest, and the
    activation is that edge's best non-``none`` primitive. Ties go to the lower j and
    to the earlier primitive. All nodes are averaged.

    Args:
        alpha: architecture weights, shape (36, len(primitives)); a tensor, array or
            nested list. Rows follow :func:`edge_index`.
        primitives: column names of α, ``none`` included.

    Returns:
        The derived :class:`Genotype`.
    """
    weights = torch.as_tensor(alpha, dtype=torch.float64).detach().cpu()
    expected = (num_edges(), len(primitives))
    if weights.shape != expected:
        raise ValueError(f"alpha must have shape {expected}, got {tuple(weights.shape)}")
    probabilities = torch.softmax(weights, dim=-1).tolist()
    candidate_columns = [k for k, name in enumerate(primitives) if name != NONE]
    recurrent = []
    for node in range(1, NUM_NODES + 1):
        best: tuple[float, int, int] | None = None  # (probability, predecessor, column)
        for predecessor in range(node):
            row = probabilities[edge_index(node, predecessor)]
            # max() keeps the first maximum: ties go to the earlier primitive.
            column = max(candidate_columns, key=lambda k: row[k])
            # strict '>' keeps the first maximum: ties go to the lower predecessor.
            if best is None or row[column] > best[0]:
                best = (row[column], predecessor, column)
        assert best is not None
        recurrent.append((primitives[best[2]], best[1]))
    return Genotype(recurrent=tuple(recurrent))


SAMPLED_ACTIVATIONS: tuple[str, ...] = tuple(name for name in PRIMITIVES if name != NONE)
"""The activations a node may take: the search space's primitives without ``none``."""


def sample_genotype(generator_or_seed: torch.Generator | int) -> Genotype:
    """A genotype drawn uniformly from the search space (docs/architecture.md §3).

    Each node i = 1 … 8 independently takes a predecessor uniformly from 0 … i−1 and an
    activation uniformly from tanh, relu, sigmoid, identity; all nodes are averaged, as
    in the cells :func:`derive_genotype` derives. Every one of the 8!·4⁸ genotypes is
    equally likely.

    Args:
        generator_or_seed: a ``torch.Generator`` (advanced by the draw) or a seed (an
            integer >= 0): the same seed gives the same genotype.
    """
    generator = _sampling_generator(generator_or_seed)
    recurrent = []
    for node in range(1, NUM_NODES + 1):
        predecessor = int(torch.randint(node, (), generator=generator))
        activation = SAMPLED_ACTIVATIONS[int(torch.randint(len(SAMPLED_ACTIVATIONS), (), generator=generator))]
        recurrent.append((activation, predecessor))
    return Genotype(recurrent=tuple(recurrent))


def sample_genotypes(k: int, seed: int) -> list[Genotype]:
    """``k`` genotypes drawn by :func:`sample_genotype` from one generator seeded with ``seed``.

    The draws are independent, so repeats are possible (about k²/10¹⁰ expected).

    Raises:
        ValueError: ``k`` is not an integer >= 1, or ``seed`` not an integer >= 0.
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k (the number of genotypes to sample) must be an integer >= 1, got {k!r}")
    generator = _sampling_generator(seed)
    return [sample_genotype(generator) for _ in range(k)]


def _sampling_generator(generator_or_seed: torch.Generator | int) -> torch.Generator:
    if isinstance(generator_or_seed, torch.Generator):
        return generator_or_seed
    seed = generator_or_seed
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ValueError(f"a genotype sampling seed must be an integer in [0, 2**63) or a torch.Generator, got {seed!r}")
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator

"""Genotypes: validation, JSON/string round-trips and derivation from α (eq. 9–10)."""

import json

import pytest
import torch

from dartsrenet.activations import PRIMITIVES
from dartsrenet.genotypes import (
    NUM_NODES,
    PAPER_GENOTYPES,
    Genotype,
    GenotypeError,
    derive_genotype,
    edge_index,
    num_edges,
    parse_genotype,
)

ARCHITECTURE_DOC_GENOTYPES = {  # docs/architecture.md §5, verbatim
    "vanilla": "(sigmoid,0) (sigmoid,1) (relu,2) (sigmoid,3) (relu,4) (identity,5) (identity,6) (relu,6)",
    "sigmoid_weighting": "(relu,0) (sigmoid,1) (identity,2) (identity,3) (identity,4) (sigmoid,4) (identity,4) (relu,4)",
    "directional_weight_sharing": "(relu,0) (sigmoid,1) (relu,2) (relu,3) (relu,4) (relu,5) (relu,6) (sigmoid,7)",
}


@pytest.mark.parametrize("variant", sorted(ARCHITECTURE_DOC_GENOTYPES))
def test_paper_genotypes_match_spec(variant):
    pairs = [token.strip("()").split(",") for token in ARCHITECTURE_DOC_GENOTYPES[variant].split()]
    expected = tuple((activation, int(predecessor)) for activation, predecessor in pairs)
    assert PAPER_GENOTYPES[variant].recurrent == expected
    assert PAPER_GENOTYPES[variant].concat == tuple(range(1, 9))


@pytest.mark.parametrize("genotype", PAPER_GENOTYPES.values(), ids=list(PAPER_GENOTYPES))
def test_round_trips(genotype, tmp_path):
    assert Genotype.from_json(genotype.to_json()) == genotype
    assert Genotype.from_string(genotype.to_string()) == genotype
    assert Genotype.from_string(genotype.to_string().split("@")[0]) == genotype  # '@…' optional
    path = tmp_path / "g.json"
    genotype.save(path)
    assert Genotype.load(path) == genotype
    assert parse_genotype(str(path)) == genotype
    assert parse_genotype(genotype.to_string()) == genotype


def test_loads_original_darts_field_names():
    data = {"recurrent": [["sigmoid", 0], ["relu", 1], ["relu", 1], ["identity", 1],
                          ["tanh", 2], ["sigmoid", 5], ["tanh", 3], ["relu", 5]],
            "concat": [1, 2, 3, 4, 5, 6, 7, 8]}
    genotype = Genotype.from_dict(data)
    assert genotype.activations[4] == "tanh" and genotype.predecessors[5] == 5
    assert json.loads(genotype.to_json()) == data


def test_genotype_is_frozen_and_hashable():
    genotype = PAPER_GENOTYPES["vanilla"]
    with pytest.raises(AttributeError):
        genotype.concat = (1,)
    assert len({genotype, Genotype.from_string(genotype.to_string())}) == 1


VALID = [["relu", k] for k in range(NUM_NODES)]


def _with(index, entry):
    recurrent = [list(pair) for pair in VALID]
    recurrent[index] = entry
    return {"recurrent": recurrent}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_with(2, ["swish", 0]), "unknown activation 'swish'"),
        (_with(2, ["none", 0]), "search-only"),
        (_with(2, ["relu", 3]), "node 3: predecessor 3 must be an earlier node"),
        (_with(0, ["relu", 1]), "node 1: predecessor 1"),
        (_with(4, ["relu", -1]), "predecessor -1"),
        (_with(4, ["relu", "2"]), "predecessor must be an integer"),
        (_with(4, ["relu"]), "expected an [activation, predecessor] pair"),
        ({"recurrent": VALID[:7]}, "8 nodes, got 7"),
        ({"recurrent": VALID + [["relu", 0]]}, "8 nodes, got 9"),
        ({"recurrent": VALID, "concat": [0, 1]}, "'concat' entries must be nodes 1"),
        ({"recurrent": VALID, "concat": [9]}, "'concat' entries must be nodes 1"),
        ({"recurrent": VALID, "concat": [2, 1]}, "ascending"),
        ({"recurrent": VALID, "concat": []}, "at least one node"),
        ({"recurrent": VALID, "extra": 1}, "unknown genotype field"),
        ({"concat": [1]}, "needs a 'recurrent' field"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_invalid_genotypes_raise_naming_the_problem(data, message):
    with pytest.raises(GenotypeError) as info:
        Genotype.from_dict(data)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "empty"), ("relu0,relu1", "expected 'activation:predecessor'"),
     ("relu:0,relu:1", "8 nodes, got 2"), (",".join(["relu:0"] * 8) + "@1,x", "integers")],
)
def test_invalid_strings_raise(text, message):
    with pytest.raises(GenotypeError) as info:
        Genotype.from_string(text)
    assert message in str(info.value)


def test_malformed_json_file_names_file_and_problem(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{"recurrent": [["relu", 0],')
    with pytest.raises(GenotypeError) as info:
        Genotype.load(path)
    assert str(path) in str(info.value) and "malformed JSON" in str(info.value)
    path.write_text(json.dumps(_with(3, ["relu", 7])))
    with pytest.raises(GenotypeError) as info:
        Genotype.load(path)
    assert str(path) in str(info.value) and "node 4" in str(info.value)
    with pytest.raises(GenotypeError, match="cannot read"):
        Genotype.load(tmp_path / "missing.json")


def test_parse_genotype_unknown_name_lists_paper_names():
    with pytest.raises(GenotypeError) as info:
        parse_genotype("vanila")
    assert "vanilla" in str(info.value) and "directional_weight_sharing" in str(info.value)


# --- derivation (eq. 9–10) ----------------------------------------------------------
LOW = -10.0


def alpha_for(choices, none_on_others=True):
    """α whose softmax puts mass 1 on each node's (activation, predecessor)."""
    alpha = torch.full((num_edges(), len(PRIMITIVES)), LOW)
    if none_on_others:
        alpha[:, PRIMITIVES.index("none")] = 0.0
    for node, (activation, predecessor) in enumerate(choices, start=1):
        row = edge_index(node, predecessor)
        alpha[row] = LOW
        alpha[row, PRIMITIVES.index(activation)] = 0.0
    return alpha


def test_edge_index_orders_edges_node_by_node():
    rows = [edge_index(node, j) for node in range(1, NUM_NODES + 1) for j in range(node)]
    assert rows == list(range(num_edges())) and num_edges() == 36


@pytest.mark.parametrize("genotype", PAPER_GENOTYPES.values(), ids=list(PAPER_GENOTYPES))
def test_derive_recovers_a_planted_genotype(genotype):
    assert derive_genotype(alpha_for(genotype.recurrent)) == genotype


def test_derive_ignores_none_and_compares_probabilities_across_edges():
    alpha = torch.zeros(num_edges(), len(PRIMITIVES))
    # node 1 has one edge: relu slightly ahead.
    alpha[edge_index(1, 0), PRIMITIVES.index("relu")] = 0.5
    # node 2: edge 0→2 is dominated by 'none' (its best real op has a small probability)
    # although its raw α for sigmoid is the largest; edge 1→2 wins on probability.
    alpha[edge_index(2, 0)] = torch.tensor([9.0, 0.0, 0.0, 3.0, 0.0])
    alpha[edge_index(2, 1)] = torch.tensor([0.0, 0.0, 0.0, 0.0, 1.0])
    genotype = derive_genotype(alpha)
    assert genotype.recurrent[0] == ("relu", 0)
    assert genotype.recurrent[1] == ("identity", 1)


def test_derive_ties_go_to_lower_predecessor_and_earlier_primitive():
    alpha = torch.zeros(num_edges(), len(PRIMITIVES))  # all uniform: every comparison ties
    genotype = derive_genotype(alpha)
    assert genotype.recurrent == tuple(("tanh", 0) for _ in range(NUM_NODES))
    # node 3: edges 1→3 and 2→3 tie above 0→3; relu and sigmoid tie within them.
    for j in (1, 2):
        alpha[edge_index(3, j), PRIMITIVES.index("relu")] = 2.0
        alpha[edge_index(3, j), PRIMITIVES.index("sigmoid")] = 2.0
    assert derive_genotype(alpha).recurrent[2] == ("relu", 1)


def test_derive_is_pure_and_accepts_lists_and_parameters():
    alpha = torch.nn.Parameter(torch.randn(num_edges(), len(PRIMITIVES)))
    before = alpha.detach().clone()
    first = derive_genotype(alpha)
    assert torch.equal(alpha.detach(), before)
    assert derive_genotype(alpha.detach().tolist()) == first == derive_genotype(alpha)


def test_derive_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\(36, 5\)"):
        derive_genotype(torch.zeros(35, 5))

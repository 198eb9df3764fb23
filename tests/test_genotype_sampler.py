"""The random-genotype sampler: uniform over the search space, seeded, valid genotypes."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from dartsrenet.cells import DartsCell
from dartsrenet.genotypes import NUM_NODES, Genotype, sample_genotype, sample_genotypes

ACTIVATIONS = ("tanh", "relu", "sigmoid", "identity")


def test_every_predecessor_and_activation_is_drawn_about_uniformly():
    genotypes = sample_genotypes(2000, seed=0)
    for node in range(1, NUM_NODES + 1):
        predecessors = Counter(g.predecessors[node - 1] for g in genotypes)
        activations = Counter(g.activations[node - 1] for g in genotypes)
        assert set(predecessors) == set(range(node)), node
        assert set(activations) == set(ACTIVATIONS), node
        # uniform: each count within 25 % of its expectation (about 5 standard deviations at 2000 draws)
        for count in predecessors.values():
            assert abs(count - 2000 / node) < 0.25 * 2000 / node, (node, predecessors)
        for count in activations.values():
            assert abs(count - 500) < 125, (node, activations)
    assert all(g.concat == tuple(range(1, NUM_NODES + 1)) for g in genotypes)


def test_same_seed_same_genotypes_different_seeds_differ():
    assert sample_genotypes(5, seed=3) == sample_genotypes(5, seed=3)
    assert sample_genotype(3) == sample_genotype(3)
    assert sample_genotypes(5, seed=3) != sample_genotypes(5, seed=4)
    # a generator advances: consecutive draws differ, and k draws from a seed are those of one generator
    generator = torch.Generator().manual_seed(3)
    first, second = sample_genotype(generator), sample_genotype(generator)
    assert first != second
    assert sample_genotypes(2, seed=3) == [first, second]


@pytest.mark.parametrize("k", [0, -1, 1.5, "3", True])
def test_invalid_k_is_rejected_with_one_line(k):
    with pytest.raises(ValueError) as info:
        sample_genotypes(k, seed=0)
    message = str(info.value)
    assert message == f"k (the number of genotypes to sample) must be an integer >= 1, got {k!r}"


@pytest.mark.parametrize("seed", [-1, 2**63, 1.0, "0"])
def test_invalid_seed_is_rejected(seed):
    with pytest.raises(ValueError, match="seed must be an integer in"):
        sample_genotype(seed)


def test_sampled_genotypes_round_trip_and_build_cells():
    for genotype in sample_genotypes(20, seed=1):
        assert Genotype.from_string(genotype.to_string()) == genotype
        assert Genotype.from_dict(genotype.to_dict()) == genotype
        cell = DartsCell(6, 4, genotype, backend="eager")
        out = cell.sweep(torch.randn(3, 2, 6))
        assert out.shape == (3, 2, 8) and torch.isfinite(out).all()

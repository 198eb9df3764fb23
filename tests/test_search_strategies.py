"""The search strategies' maths, each against a case computed by hand (docs/search-strategies.md)."""

from __future__ import annotations

import math
import shutil
import os

import pytest
import torch

from dartsrenet.activations import PRIMITIVES
from dartsrenet.cells.darts import ArchitectureWeights, DartsSearchCell
from dartsrenet.genotypes import Genotype, derive_genotype, edge_index, sample_genotypes
from dartsrenet.strategies.darts_pt import decision_order, discretise_node, perturbation_scores, select_by_perturbation
from dartsrenet.strategies.gdas import (
    gdas_temperature,
    gumbel_noise,
    node_candidates,
    sample_mixing,
    straight_through_sample,
)
from dartsrenet.strategies.rsws import rank_genotypes
from dartsrenet.strategies.sdarts import perturbed_mixing, project_to_simplex, sdarts_epsilon, uniform_noise

CHI_SQUARE_999 = {3: 16.266, 7: 24.322}
"""χ² quantiles at 0.999 for 3 and 7 degrees of freedom."""


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def chi_square(counts: torch.Tensor, probabilities: torch.Tensor) -> float:
    expected = probabilities * counts.sum()
    return float(((counts - expected) ** 2 / expected).sum())


# --- GDAS ------------------------------------------------------------------------------
@pytest.mark.parametrize("tau", [10.0, 1.0, 0.1])
def test_gumbel_argmax_follows_softmax_of_the_logits_at_every_temperature(tau):
    """Gumbel-max: argmax(α + g) ~ softmax(α), whatever τ; here p = (0.1, 0.2, 0.3, 0.4)."""
    p = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    draws = 20_000
    hard, _ = straight_through_sample(p.log().expand(draws, 4), tau, gumbel_noise((draws, 4), generator(5)))
    counts = hard.sum(dim=0)
    assert torch.equal(hard.sum(dim=1), torch.ones(draws, dtype=torch.float64))  # one-hot rows
    assert chi_square(counts, p) < CHI_SQUARE_999[3]
    assert chi_square(counts, torch.full((4,), 0.25, dtype=torch.float64)) > 100  # the test can tell p from uniform


def test_a_cell_sample_picks_one_pair_per_node_with_softmax_frequencies():
    """Node 2 has 2 predecessors × 4 activations; its pair frequencies follow softmax(α) over those 8."""
    torch.manual_seed(0)
    alpha = torch.randn(36, 5, dtype=torch.float64)
    candidates = node_candidates(2)
    rows, columns = zip(*candidates)
    expected = torch.softmax(alpha[list(rows), list(columns)], dim=0)
    counts = torch.zeros(8, dtype=torch.float64)
    draws = generator(11)
    for draw in range(2000):
        mixing, genotype = sample_mixing(alpha, 1.0, draws)
        if draw < 10:
            check_one_hot_per_node(mixing, genotype)
        activation, predecessor = genotype.recurrent[1]
        counts[candidates.index((edge_index(2, predecessor), PRIMITIVES.index(activation)))] += 1
    assert chi_square(counts, expected) < CHI_SQUARE_999[7]


def check_one_hot_per_node(mixing, genotype):
    assert mixing[:, PRIMITIVES.index("none")].abs().sum() == 0
    for node in range(1, 9):  # exactly one 1 among each node's candidates, and it is the genotype's
        values = torch.stack([mixing[r, c] for r, c in node_candidates(node)])
        assert torch.equal(values.sort().values[-1:], torch.ones(1, dtype=torch.float64))
        assert float(values.sum()) == pytest.approx(1.0)
        activation, predecessor = genotype.recurrent[node - 1]
        assert mixing[edge_index(node, predecessor), PRIMITIVES.index(activation)] == 1


def test_straight_through_is_one_hot_forward_with_the_softmax_gradient():
    """logits (0.5, −1, 2), noise (0.1, 0.3, −0.2), τ = 0.7: z = (0.6, −0.7, 1.8), forward onehot(2);
    ∂(c·h)/∂logits = y ⊙ (c − c·y)/τ with y = softmax(z/τ), c = (1, 2, 3)."""
    logits = torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64, requires_grad=True)
    noise = torch.tensor([0.1, 0.3, -0.2], dtype=torch.float64)
    hard, soft = straight_through_sample(logits, 0.7, noise)
    assert hard.tolist() == [0.0, 0.0, 1.0]
    (hard * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)).sum().backward()
    exps = [math.exp(z / 0.7) for z in (0.6, -0.7, 1.8)]
    y = [e / sum(exps) for e in exps]
    mean = 1 * y[0] + 2 * y[1] + 3 * y[2]
    expected = [y[k] * (c - mean) / 0.7 for k, c in enumerate((1.0, 2.0, 3.0))]
    assert logits.grad.tolist() == pytest.approx(expected, rel=1e-12)
    assert soft.detach().tolist() == pytest.approx(y, rel=1e-12)


def test_gdas_temperature_falls_linearly_from_10_to_0_1():
    assert gdas_temperature(1, 5) == 10.0
    assert gdas_temperature(5, 5) == pytest.approx(0.1)
    assert gdas_temperature(3, 5) == pytest.approx(5.05)
    assert gdas_temperature(1, 1) == 10.0


# --- SDARTS-RS -------------------------------------------------------------------------
def test_projection_to_the_simplex_by_hand():
    rows = torch.tensor([[0.7, -0.1, 0.4], [-0.1, -0.2, -0.3], [0.2, 0.3, 0.5]], dtype=torch.float64)
    projected = project_to_simplex(rows)
    assert projected[0].tolist() == pytest.approx([0.7 / 1.1, 0.0, 0.4 / 1.1])
    assert projected[1].tolist() == [1.0, 0.0, 0.0]  # all clamped to 0: the largest entry keeps 1
    assert projected[2].tolist() == pytest.approx([0.2, 0.3, 0.5])


def test_sdarts_noise_stays_within_epsilon_and_spans_it():
    noise = uniform_noise((50_000,), 0.03, generator(3))
    assert float(noise.abs().max()) <= 0.03
    assert float(noise.min()) < -0.0299 and float(noise.max()) > 0.0299
    assert abs(float(noise.mean())) < 0.0005  # E δ = 0; σ/√n ≈ 8e-5
    probabilities = torch.softmax(torch.randn(36, 5, dtype=torch.float64, generator=generator(4)), dim=-1)
    perturbed = perturbed_mixing(probabilities, 0.03, generator(5))
    assert torch.allclose(perturbed.sum(dim=-1), torch.ones(36, dtype=torch.float64))
    assert float(perturbed.min()) >= 0
    # before the division by the row sum (≤ 1 + 5ε), each entry moved by at most ε
    assert float((perturbed - probabilities).abs().max()) <= 0.03 + 5 * 0.03 + 1e-12
    assert not torch.equal(perturbed, probabilities)


def test_sdarts_epsilon_ramps_from_0_03_towards_0_3():
    assert sdarts_epsilon(1, 10) == pytest.approx(0.03)
    assert sdarts_epsilon(10, 10) == pytest.approx(0.03 + 0.27 * 0.9)
    assert sdarts_epsilon(4, 10, 0.1, 0.1) == pytest.approx(0.1)


def test_sdarts_weight_step_leaves_alpha_as_it_was():
    from dartsrenet.config import resolve_config
    from dartsrenet.strategies.sdarts import SdartsStrategy

    architecture = ArchitectureWeights()
    cell = DartsSearchCell(3, 4, architecture, backend="eager")
    saved = architecture.alpha.detach().clone()
    strategy = SdartsStrategy(resolve_config("search", "paper", {"strategy": "sdarts_rs", "epochs": 2}))
    with strategy.weight_step(architecture):
        assert not torch.equal(architecture.mixing(), architecture.probabilities())
        cell.sweep(torch.randn(3, 2, 3)).square().sum().backward()
    assert architecture.alpha.grad is None  # the noisy weights are detached from α
    assert torch.equal(architecture.alpha, saved)
    assert architecture.mixing_override is None and torch.equal(architecture.mixing(), architecture.probabilities())
    assert cell.node_weights[0].grad is not None


# --- RSWS ------------------------------------------------------------------------------
def test_rsws_ranking_finds_the_best_of_n_on_a_toy_supernet():
    """A toy supernet whose accuracy is the share of nodes agreeing with a hidden cell: the
    hidden cell, placed among N = 20 random ones, must come first; ties go to the lower loss."""
    target = Genotype.from_string("relu:0,relu:1,sigmoid:2,tanh:0,identity:4,relu:5,tanh:6,sigmoid:7")
    candidates = sample_genotypes(19, seed=1)
    candidates.insert(7, target)

    def toy_supernet(genotype):
        agree = sum(a == b for a, b in zip(genotype.recurrent, target.recurrent, strict=True))
        return agree / 8, 1.0 - agree / 8

    ranking = rank_genotypes(candidates, toy_supernet)
    assert ranking[0] == (target, (1.0, 0.0))
    assert [score for _, score in ranking] == sorted((score for _, score in ranking), key=lambda s: (-s[0], s[1]))
    tied = rank_genotypes(candidates[:3], lambda g: (0.5, {0: 2.0, 1: 1.0, 2: 1.0}[candidates.index(g)]))
    assert [g for g, _ in tied] == [candidates[1], candidates[2], candidates[0]]
    with pytest.raises(ValueError, match="finite"):
        rank_genotypes(candidates[:2], lambda g: (float("nan"), 0.0))


# --- DARTS-PT --------------------------------------------------------------------------
def toy_perturbation_case():
    """softmax(α) uniform (0.2) except a decoy, sigmoid from predecessor 0 at 0.6, on every node;
    the supernet's accuracy is Σ V ⊙ A / 100 with V = 1 except the key op relu from the node's
    last predecessor at V = 4: masking relu:i−1 costs 4·0.2 = 0.8, the decoy 1·0.6, others 0.2."""
    probabilities = torch.full((36, 5), 0.2, dtype=torch.float64)
    value = torch.ones(36, 5, dtype=torch.float64)
    for node in range(1, 9):
        probabilities[edge_index(node, 0), PRIMITIVES.index("sigmoid")] = 0.6
        value[edge_index(node, node - 1), PRIMITIVES.index("relu")] = 4.0

    def evaluate(mixing):
        total = float((value * mixing).sum())
        return total / 100, -total

    return probabilities, evaluate


def test_perturbation_scores_on_a_toy_supernet_by_hand():
    probabilities, evaluate = toy_perturbation_case()
    scores = perturbation_scores(2, probabilities, evaluate)
    assert [(j, f) for j, f, _, _ in scores] == [(j, f) for j in range(2) for f in ("tanh", "relu", "sigmoid", "identity")]
    drops = {(j, f): drop for j, f, drop, _ in scores}
    assert drops[(1, "relu")] == pytest.approx(0.008)  # 4 · 0.2 / 100
    assert drops[(0, "sigmoid")] == pytest.approx(0.006)  # 1 · 0.6 / 100
    assert drops[(0, "tanh")] == pytest.approx(0.002)


def test_darts_pt_keeps_the_op_whose_removal_hurts_most_not_the_largest_alpha():
    probabilities, evaluate = toy_perturbation_case()
    tuned = []
    genotype, decisions = select_by_perturbation(probabilities, evaluate, [3, 1, 8, 2, 7, 4, 6, 5], tuned.append)
    assert genotype == Genotype(recurrent=tuple(("relu", node - 1) for node in range(1, 9)))
    assert derive_genotype(probabilities.log()).recurrent[1] == ("sigmoid", 0)  # DARTS's argmax takes the decoy
    assert [d["node"] for d in decisions] == [3, 1, 8, 2, 7, 4, 6, 5]
    assert len(tuned) == 8  # a fine-tune after every decision, with the decided nodes one-hot
    last = tuned[-1]
    assert torch.equal(last, discretise_node(last, 5, 4, "relu"))
    with pytest.raises(ValueError, match="order"):
        select_by_perturbation(probabilities, evaluate, [1, 2, 3])
    assert sorted(decision_order(generator(0))) == list(range(1, 9))


# --- the cells under a strategy's weights ------------------------------------------------
needs_compiler = pytest.mark.skipif(
    shutil.which(os.environ.get("CC") or "cc") is None and not os.environ.get("CI"),
    reason="no C compiler: no native backend (in CI a missing compiler fails these tests instead)",
)


def search_cell(backend: str) -> DartsSearchCell:
    torch.manual_seed(2)
    architecture = ArchitectureWeights()
    with torch.no_grad():
        architecture.alpha.normal_()
    return DartsSearchCell(5, 4, architecture, backend=backend).double()


def sweep_with(cell: DartsSearchCell, x: torch.Tensor, **mixing) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    cell.zero_grad(set_to_none=True)
    with cell.architecture.mixing_with(**mixing):
        out = cell.sweep(x)
        out.backward(torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out))
    grads = {name: p.grad.clone() for name, p in cell.named_parameters() if p.grad is not None}
    return out.detach(), grads


def test_a_path_computes_what_one_hot_mixing_computes():
    """GDAS's and RSWS's weight step: only the sampled path, the same values and weight gradients."""
    path = Genotype.from_string("relu:0,sigmoid:0,tanh:2,identity:1,relu:4,tanh:3,sigmoid:6,relu:7")
    one_hot = torch.zeros(36, 5, dtype=torch.float64)
    for node, (activation, predecessor) in enumerate(path.recurrent, 1):
        one_hot[edge_index(node, predecessor), PRIMITIVES.index(activation)] = 1.0
    x = torch.randn(4, 3, 5, dtype=torch.float64, generator=generator(1))
    for training in (True, False):
        cell = search_cell("eager").train(training)
        state = {k: v.clone() for k, v in cell.state_dict().items()}
        out_path, grads_path = sweep_with(cell, x, path=path)
        cell.load_state_dict(state)
        out_mix, grads_mix = sweep_with(cell, x, weights=one_hot)
        torch.testing.assert_close(out_path, out_mix, rtol=1e-12, atol=1e-12)
        assert set(grads_path) == set(grads_mix)
        for name, grad in grads_path.items():
            torch.testing.assert_close(grad, grads_mix[name], rtol=1e-10, atol=1e-12)


@needs_compiler
@pytest.mark.parametrize("strategy", ["gdas", "sdarts_rs"])
def test_eager_and_native_agree_under_sampled_and_noisy_weights(strategy):
    """The fused kernels take a Gumbel sample (with α's straight-through gradient) or noisy
    probabilities as mixing weights, exactly as the eager cell does."""
    x = torch.randn(4, 3, 5, dtype=torch.float64, generator=generator(2))
    results = {}
    for backend in ("eager", "native"):
        cell = search_cell(backend).train()
        alpha = cell.architecture.alpha
        if strategy == "gdas":
            weights, _ = sample_mixing(alpha, 0.5, generator(9))
        else:
            weights = perturbed_mixing(cell.architecture.probabilities(), 0.3, generator(9))
        results[backend] = sweep_with(cell, x, weights=weights)
    (out_eager, grads_eager), (out_native, grads_native) = results["eager"], results["native"]
    torch.testing.assert_close(out_native, out_eager, rtol=1e-9, atol=1e-11)
    assert set(grads_native) == set(grads_eager)
    assert ("architecture.alpha" in grads_eager) == (strategy == "gdas")
    for name, grad in grads_eager.items():
        torch.testing.assert_close(grads_native[name], grad, rtol=1e-8, atol=1e-10)

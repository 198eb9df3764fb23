"""Networks: Table 1 parameter counts, gradients, α sharing, sizes, the public API and CLI."""

import subprocess
import sys

import pytest
import torch

import dartsrenet
from dartsrenet import PAPER_GENOTYPES, build_eval_model, build_search_model, count_parameters, paper
from dartsrenet.cells import DartsCell, DartsSearchCell, GRUCell, LSTMCell
from dartsrenet.genotypes import Genotype
from dartsrenet.registry import UnknownNameError
from dartsrenet.variants import VARIANTS

EXPECTED_PARAMS = {  # exact counts; the paper prints them rounded to 0.1M
    "vanilla": 6_782_986,
    "sigmoid_weighting": 6_787_594,
    "directional_weight_sharing": 4_030_474,
    "gru": 4_780_042,
    "lstm": 5_962_762,
}


@pytest.mark.parametrize("model", paper.MODELS)
def test_table1_parameter_counts(model):
    count = count_parameters(build_eval_model(model, num_classes=10))
    assert round(count / 1e6, 1) == paper.PARAMS_MILLIONS[model]
    assert count == EXPECTED_PARAMS[model]


def test_eval_network_structure_matches_spec():
    model = build_eval_model("gru")
    stem = model.backbone.stem
    assert [type(m).__name__ for m in stem] == ["Conv2d", "ReLU", "BatchNorm2d"] * 3
    assert stem[0].kernel_size == (7, 7) and stem[0].stride == (2, 2) and stem[0].padding == (3, 3)
    assert all(conv.bias is not None for conv in stem if isinstance(conv, torch.nn.Conv2d))
    assert len(model.backbone.layers) == 3
    assert model.head_norm.num_features == 1024 and model.classifier.in_features == 1024
    assert model.classifier.weight.abs().max() <= 0.5
    svhn = build_eval_model("gru", head_init_range=0.05)
    assert svhn.classifier.weight.abs().max() <= 0.05


def small_models():
    for name in paper.MODELS:
        yield name, build_eval_model(name, channels=8)
    for variant in sorted(VARIANTS):
        yield f"search-{variant}", build_search_model(variant, channels=8)


@pytest.mark.parametrize(("name", "model"), list(small_models()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_parameter_receives_a_gradient(name, model):
    torch.manual_seed(0)
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    loss = torch.nn.functional.cross_entropy(model(images), labels)
    loss.backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert torch.isfinite(parameter.grad).all(), parameter_name
        assert parameter.grad.abs().sum() > 0, parameter_name


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_search_network_shares_one_alpha_and_splits_parameters(variant):
    model = build_search_model(variant)
    assert model.alpha.shape == (36, 5)
    cells = [m for m in model.modules() if isinstance(m, DartsSearchCell)]
    assert len(cells) == 6  # 3 layers × (horizontal, vertical)
    assert all(cell.architecture.alpha is model.alpha for cell in cells)
    arch = {id(p) for p in model.arch_parameters()}
    weights = {id(p) for p in model.weight_parameters()}
    assert arch == {id(model.alpha)} and not arch & weights
    assert arch | weights == {id(p) for p in model.parameters()}
    assert model.classifier.in_features == 512 and not hasattr(model, "head_norm")
    assert cells[0].hidden_size == 64
    assert isinstance(model.genotype(), Genotype)


def test_build_eval_model_resolves_cells_and_variants():
    def cell_of(model):
        return model.backbone.layers[0].horizontal

    assert isinstance(cell_of(build_eval_model("gru", channels=8)), GRUCell)
    assert isinstance(cell_of(build_eval_model("lstm", channels=8)), LSTMCell)
    implied = cell_of(build_eval_model("sigmoid_weighting", channels=8))
    assert isinstance(implied, DartsCell) and implied.variant.name == "sigmoid_weighting"
    assert implied.genotype == PAPER_GENOTYPES["sigmoid_weighting"]
    explicit = cell_of(build_eval_model("vanilla", variant="directional_weight_sharing", channels=8))
    assert explicit.variant.name == "directional_weight_sharing" and explicit.genotype == PAPER_GENOTYPES["vanilla"]
    genotype = PAPER_GENOTYPES["vanilla"]
    assert cell_of(build_eval_model(genotype, channels=8)).variant.name == "vanilla"
    assert cell_of(build_eval_model(genotype.to_string(), channels=8)).genotype == genotype


@pytest.mark.parametrize(("cell", "variant", "message"), [
    ("transformer", None, "valid cells: gru, lstm, directional_weight_sharing"),
    ("gru", "sigmoid_weighting", "DARTS cells only"),
    ("vanilla", "vanila", "valid variants"),
])
def test_build_eval_model_errors_are_clear(cell, variant, message):
    with pytest.raises(ValueError) as info:
        build_eval_model(cell, variant=variant, channels=8)
    assert message in str(info.value)


def test_unknown_cell_error_is_an_unknown_name_error():
    with pytest.raises(UnknownNameError):
        build_eval_model("transformer", channels=8)


def test_non_square_images_and_refused_sizes():
    model = build_eval_model("vanilla", channels=8, image_size=(32, 64))
    assert model(torch.randn(2, 3, 32, 64)).shape == (2, 10)
    assert model.classifier.in_features == 8 * 2 * 4
    with pytest.raises(ValueError, match="not divisible by 2"):
        build_eval_model("gru", channels=8, image_size=40)
    with pytest.raises(ValueError, match="built for 32×32"):
        build_eval_model("gru", channels=8)(torch.randn(1, 3, 64, 64))


def test_eval_mode_is_deterministic_and_batch_independent():
    model = build_eval_model("directional_weight_sharing", channels=8)
    model(torch.randn(8, 3, 32, 32))  # one training forward records running statistics
    model.eval()
    images = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(images)[:2], model(images[:2]))


def test_public_api():
    for name in ["Genotype", "PAPER_GENOTYPES", "build_eval_model", "build_search_model", "derive_genotype"]:
        assert hasattr(dartsrenet, name)


def test_params_command_prints_table1():
    result = subprocess.run([sys.executable, "-m", "dartsrenet", "params"], capture_output=True, text=True, check=True)
    for model in paper.MODELS:
        line = next(line for line in result.stdout.splitlines() if line.startswith(paper.MODEL_LABELS[model]))
        assert f"{EXPECTED_PARAMS[model]:,}" in line and f"{paper.PARAMS_MILLIONS[model]:.1f}" in line

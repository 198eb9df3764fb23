"""Every registered model builds, runs forward and backward; Table 1's report the paper's size."""

import pytest
import torch

from dartsrenet import count_parameters
from dartsrenet.models import PAPER_PARAMS_MILLIONS, create_model, list_models
from dartsrenet.registry import UnknownNameError


def test_the_registry_lists_table1_and_the_search_networks():
    assert list_models() == sorted(
        [f"renet_{m}" for m in ("vanilla", "sigmoid_weighting", "directional_weight_sharing", "gru", "lstm")]
        + [f"search_{v}" for v in ("vanilla", "sigmoid_weighting", "directional_weight_sharing")]
    )
    with pytest.raises(UnknownNameError, match="valid models: renet_directional_weight_sharing"):
        create_model("resnet50")


@pytest.mark.parametrize("name", list_models())
def test_every_model_builds_and_trains(name):
    torch.manual_seed(0)
    model = create_model(name, channels=8, num_classes=5)
    logits = model(torch.randn(3, 3, 32, 32))
    assert logits.shape == (3, 5)
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 4])).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    if name in PAPER_PARAMS_MILLIONS:
        assert round(count_parameters(create_model(name)) / 1e6, 1) == PAPER_PARAMS_MILLIONS[name]


def test_keyword_arguments_reach_the_builder():
    model = create_model("renet_gru", network="4x16,2x8/hilbert")
    assert str(model.backbone.network) == "4x16,2x8/hilbert"

"""Second-order DARTS (Liu et al. 2019, eq. 7–8): the unrolled α gradient, checked against autograd."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from dartsrenet.config import ConfigError, resolve_config
from dartsrenet.networks import build_search_model
from dartsrenet.search import make_optimizers, run_search
from dartsrenet.second_order import hessian_vector_product, unrolled_arch_gradient
from tests.test_engine import StopAfter, read_metrics, search_config, stop_after

SIZE, BATCH = 16, 6


def small_model(dtype=torch.float64, backend="eager", variant="vanilla"):
    torch.manual_seed(0)
    return build_search_model(variant, channels=4, image_size=SIZE, backend=backend).to(dtype)


def batch(seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randn(BATCH, 3, SIZE, SIZE, generator=generator, dtype=dtype)
    return images, torch.randint(10, (BATCH,), generator=generator)


def train_loss(model, images, labels):
    return F.cross_entropy(model(images), labels)


def buffers(model):
    return {name: buffer.clone() for name, buffer in model.named_buffers()}


def assert_same_tensors(before, after):
    assert before.keys() == after.keys()
    for name in before:
        assert before[name].shape == after[name].shape and torch.equal(before[name], after[name]), name


def test_finite_difference_product_matches_double_backward():
    model = small_model()
    images, labels = batch(1)
    weights = model.weight_parameters()
    generator = torch.Generator().manual_seed(2)
    direction = [torch.randn(w.shape, generator=generator, dtype=w.dtype) for w in weights]
    # exact: ∇_α (∇_w L_train · v), by double backward on the eager backend
    grads = torch.autograd.grad(train_loss(model, images, labels), weights, create_graph=True, allow_unused=True)
    dot = sum((g * v).sum() for g, v in zip(grads, direction, strict=True) if g is not None)
    (exact,) = torch.autograd.grad(dot, model.arch_parameters())
    assert exact.abs().max() > 1e-3  # a product worth comparing
    # where the loss is smooth between w⁻ and w⁺ the central difference is exact up to O(ε²)
    (close,) = hessian_vector_product(model, images, labels, direction, scale=1e-6)
    torch.testing.assert_close(close, exact, rtol=1e-6, atol=1e-8 * exact.abs().max().item())
    # at DARTS's ε = 0.01/‖v‖ some ReLU kinks lie between w⁻ and w⁺: a few per cent off, same direction
    (darts,) = hessian_vector_product(model, images, labels, direction)
    assert (darts - exact).norm() < 0.1 * exact.norm()
    assert F.cosine_similarity(darts.flatten(), exact.flatten(), dim=0) > 0.999


@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_unrolled_gradient_is_the_gradient_through_the_virtual_step(tmp_path, optimizer):
    """eq. 7 is the exact gradient of L_val(w'(α), α); the finite difference (eq. 8) its only approximation."""
    model = small_model()
    overrides = {"weight_optimizer": optimizer, "weight_decay": 1e-2, "lr": 0.05}
    if optimizer == "sgd":
        overrides["momentum"] = 0.9
    weight_optimizer, _ = make_optimizers(model, search_config(tmp_path, **overrides))
    images, labels = batch(1)
    val_images, val_labels = batch(3)
    # one real weight step first, so that SGD has a momentum buffer
    weight_optimizer.zero_grad()
    train_loss(model, *batch(5)).backward()
    weight_optimizer.step()
    model.zero_grad(set_to_none=True)

    exact_model = copy.deepcopy(model)
    names = [name for name, p in exact_model.named_parameters() if p is not exact_model.alpha]
    weights = exact_model.weight_parameters()
    xi, decay = 0.05, 1e-2
    grads = torch.autograd.grad(train_loss(exact_model, images, labels), weights, create_graph=True, allow_unused=True)
    virtual = {}
    for name, weight, grad in zip(names, weights, grads, strict=True):
        step = (torch.zeros_like(weight) if grad is None else grad) + decay * weight
        if optimizer == "sgd":
            step = step + 0.9 * weight_optimizer.state[model.get_parameter(name)]["momentum_buffer"]
        virtual[name] = weight - xi * step
    val_loss = F.cross_entropy(functional_call(exact_model, virtual, (val_images,)), val_labels)
    (exact,) = torch.autograd.grad(val_loss, exact_model.arch_parameters())

    returned = unrolled_arch_gradient(model, images, labels, val_images, val_labels, weight_optimizer, scale=1e-6)
    assert torch.equal(returned, val_loss.detach())
    first_order = torch.autograd.grad(F.cross_entropy(model(val_images), val_labels), model.alpha)[0]
    assert (exact - first_order).abs().max() > 1e-3 * exact.abs().max()  # the second-order term matters here
    torch.testing.assert_close(model.alpha.grad, exact, rtol=1e-6, atol=1e-8 * exact.abs().max().item())


def test_virtual_step_leaves_weights_buffers_and_optimiser_state_as_they_were(tmp_path, cell_backend):
    model = small_model(torch.float32, backend=cell_backend, variant="sigmoid_weighting")
    weight_optimizer, _ = make_optimizers(model, search_config(tmp_path))
    train_loss(model, *batch(5, torch.float32)).backward()
    weight_optimizer.step()  # slots exist, a momentum buffer exists
    marker = [torch.full_like(w, 0.5) for w in model.weight_parameters()]
    for weight, grad in zip(model.weight_parameters(), marker, strict=True):
        weight.grad = grad.clone()
    weights_before = {name: p.detach().clone() for name, p in model.named_parameters()}
    buffers_before = buffers(model)
    state_before = copy.deepcopy(weight_optimizer.state_dict())

    images, labels = batch(1, torch.float32)
    unrolled_arch_gradient(model, images, labels, *batch(3, torch.float32), weight_optimizer)

    assert_same_tensors(weights_before, {name: p.detach() for name, p in model.named_parameters()})
    assert_same_tensors(buffers_before, buffers(model))
    state_after = weight_optimizer.state_dict()
    assert state_after["param_groups"] == state_before["param_groups"]
    for key, state in state_before["state"].items():
        assert_same_tensors(state, state_after["state"][key])
    for weight, grad in zip(model.weight_parameters(), marker, strict=True):
        assert torch.equal(weight.grad, grad)
    assert model.alpha.grad is not None and torch.isfinite(model.alpha.grad).all() and model.alpha.grad.abs().sum() > 0
    # the check can fail: an ordinary training-mode pass does move the running statistics
    train_loss(model, images, labels)
    assert any(not torch.equal(buffers_before[name], now) for name, now in buffers(model).items())


def test_second_order_search_resumes_identically_and_differs_from_first_order(tmp_path):
    full = search_config(tmp_path, "full", epochs=2, arch_order=2)
    summary = run_search(full, log=None)
    assert json.loads((tmp_path / "full" / "config.json").read_text())["arch_order"] == 2
    interrupted = search_config(tmp_path, "interrupted", epochs=2, arch_order=2)
    with pytest.raises(StopAfter):
        run_search(interrupted, report=stop_after(1), log=None)
    resumed = run_search(interrupted, log=None)
    assert read_metrics(interrupted) == read_metrics(full)
    assert resumed["genotype_string"] == summary["genotype_string"]
    # The same run, first-order, up to epoch 1 (its schedule is that of 2 epochs): α differs already.
    first_order = search_config(tmp_path, "first", epochs=2)
    with pytest.raises(StopAfter):
        run_search(first_order, report=stop_after(1), log=None)
    (first_epoch,) = read_metrics(first_order)
    assert first_epoch["epoch"] == 1 and first_epoch["alpha"] != read_metrics(full)[0]["alpha"]


@pytest.mark.parametrize("value", ["0", "3"])
def test_arch_order_outside_1_and_2_is_one_clear_line(value):
    with pytest.raises(ConfigError) as info:
        resolve_config("search", "demo", {"arch_order": value})
    message = str(info.value)
    assert message == (
        f"invalid search config: arch_order={value} is out of range; valid: 1 (first-order DARTS) or 2 "
        "(second-order, unrolled)"
    )
    assert resolve_config("search", "demo", {"arch_order": "2"}).arch_order == 2
    assert resolve_config("search", "demo").arch_order == 1

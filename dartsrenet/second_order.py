"""Second-order DARTS: the unrolled architecture gradient (Liu et al. 2019, eq. 7–8; docs/architecture.md §8.2).

First-order DARTS takes α's gradient of the validation loss at the current weights. The
second-order step takes it at the weights after one virtual weight step,
w' = w − ξ ∇_w L_train(w, α), and corrects it by the Hessian-vector product
−ξ ∇²_{α,w} L_train(w, α) ∇_{w'} L_val(w', α) (eq. 7), computed by central finite
differences (eq. 8) so that only first-order gradients are taken and every cell backend
runs it. As the original code's ``architect.py``, this module is kept apart from the
search loop (:func:`dartsrenet.search.search_epoch` calls :func:`unrolled_arch_gradient`
for ``arch_order=2``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dartsrenet.buffers import restore_buffers, snapshot_buffers
from dartsrenet.networks import SearchNetwork
from dartsrenet.steps import autocast

FINITE_DIFFERENCE_SCALE = 0.01
"""r of DARTS's finite difference (eq. 8): the weights move by ε = r / ‖∇_{w'} L_val(w', α)‖."""


def unrolled_arch_gradient(
    model: SearchNetwork,
    images: torch.Tensor,
    labels: torch.Tensor,
    val_images: torch.Tensor,
    val_labels: torch.Tensor,
    weight_optimizer: torch.optim.Optimizer,
    *,
    autocast_mode: str = "none",
    scale: float = FINITE_DIFFERENCE_SCALE,
) -> torch.Tensor:
    """Set α's gradient to second-order DARTS's (Liu et al. 2019, eq. 7–8); return L_val(w', α).

    The gradient of L_val at the weights after one virtual weight step,

        w' = w − ξ (∇_w L_train(w, α) + λ w + μ m),
        ∇_α L_val(w', α) − ξ ∇²_{α,w} L_train(w, α) ∇_{w'} L_val(w', α),

    with the Hessian-vector product by central finite differences (eq. 8):
    (∇_α L_train(w⁺, α) − ∇_α L_train(w⁻, α)) / 2ε, w± = w ± ε ∇_{w'} L_val(w', α),
    ε = ``scale`` / ‖∇_{w'} L_val(w', α)‖ (DARTS: 0.01). Only first-order gradients are
    taken, so every backend runs it. The difference is exact up to O(ε²) where the loss is
    smooth; a ReLU kink crossed between w⁻ and w⁺ adds an error that does not shrink
    with ε (on a small search network at DARTS's ε, a few per cent of the product).

    The virtual step is the one of the original DARTS code (``architect.py``): ξ is the
    weight optimiser's current learning rate, λ its weight decay, and μ m its momentum
    times its momentum buffer (SGD with a buffer; zero before the first weight step and
    for Adam, whose virtual step is then plain gradient descent with weight decay, as
    that code does with an optimiser without a momentum buffer). As there, the virtual
    step does not clip gradients. The momentum and weight-decay terms do not depend on
    α, so the formula above is the exact gradient of L_val(w'(α), α) up to the finite
    difference.

    Nothing else changes: the weights are swapped in place and copied back bit for bit,
    every buffer (BatchNorm running statistics, their slots and ``num_batches_tracked``)
    is restored as it was before the four passes, the optimiser's state is only read,
    and the weights' ``.grad`` is untouched. Only α's ``.grad`` is written (replaced).

    Args:
        model: the search network, in training mode.
        images, labels: the train_cs batch (the virtual step and the finite difference).
        val_images, val_labels: the val_cs batch.
        weight_optimizer: the weight optimiser (SGD or Adam); its parameter groups must
            share one learning rate (ξ).
        autocast_mode: as :func:`dartsrenet.steps.autocast`.
        scale: r of ε = r / ‖∇_{w'} L_val(w', α)‖.

    Returns:
        L_val(w', α), detached (the α step's loss).
    """
    weights = model.weight_parameters()
    arch = model.arch_parameters()
    settings = _virtual_step_settings(weight_optimizer, weights)
    xi = settings[0][0]
    device = val_images.device
    saved_buffers = snapshot_buffers(model)
    saved_weights = [weight.detach().clone() for weight in weights]
    try:
        # w' = w − ξ (∇_w L_train(w, α) + λ w + μ m)
        train_grads = _gradients(_loss(model, images, labels, device, autocast_mode), weights)
        with torch.no_grad():
            for weight, grad, (lr, weight_decay, momentum_term) in zip(weights, train_grads, settings, strict=True):
                step = grad + weight_decay * weight if weight_decay else grad.clone()
                if momentum_term is not None:
                    step.add_(momentum_term)
                weight.sub_(lr * step)
        val_loss = _loss(model, val_images, val_labels, device, autocast_mode)
        val_grads = _gradients(val_loss, [*weights, *arch])
        direction, arch_grads = val_grads[: len(weights)], val_grads[len(weights) :]
        product = _finite_difference_product(
            model, images, labels, weights, saved_weights, direction, autocast_mode, scale
        )
    finally:
        _restore_weights(weights, saved_weights)
        restore_buffers(saved_buffers)
    for parameter, grad, hessian_term in zip(arch, arch_grads, product, strict=True):
        parameter.grad = grad - xi * hessian_term
    return val_loss.detach()


def hessian_vector_product(
    model: SearchNetwork,
    images: torch.Tensor,
    labels: torch.Tensor,
    direction: list[torch.Tensor],
    *,
    autocast_mode: str = "none",
    scale: float = FINITE_DIFFERENCE_SCALE,
) -> list[torch.Tensor]:
    """∇²_{α,w} L_train(w, α) · ``direction`` by central finite differences (eq. 8), one tensor per α parameter.

    ``direction`` holds one tensor per weight (:meth:`SearchNetwork.weight_parameters`);
    ε = ``scale`` / ‖direction‖ (see :func:`unrolled_arch_gradient` on its accuracy). The
    weights and buffers are left exactly as they were.
    """
    weights = model.weight_parameters()
    saved_buffers = snapshot_buffers(model)
    saved_weights = [weight.detach().clone() for weight in weights]
    try:
        return _finite_difference_product(
            model, images, labels, weights, saved_weights, direction, autocast_mode, scale
        )
    finally:
        _restore_weights(weights, saved_weights)
        restore_buffers(saved_buffers)


def _finite_difference_product(
    model: SearchNetwork,
    images: torch.Tensor,
    labels: torch.Tensor,
    weights: list[nn.Parameter],
    saved_weights: list[torch.Tensor],
    direction: list[torch.Tensor],
    autocast_mode: str,
    scale: float,
) -> list[torch.Tensor]:
    """(∇_α L_train(w⁺, α) − ∇_α L_train(w⁻, α)) / 2ε about the weights ``saved_weights``;
    leaves the weights at w⁻ (the caller restores them)."""
    arch = model.arch_parameters()
    device = images.device
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(v) for v in direction]))
    # a zero direction gives a zero product (not 0/0): ε is then huge but multiplies zeros
    epsilon = scale / norm.clamp_min(torch.finfo(norm.dtype).tiny)
    sides = []
    for sign in (1.0, -1.0):
        with torch.no_grad():
            for weight, saved, v in zip(weights, saved_weights, direction, strict=True):
                weight.copy_(saved).add_(sign * epsilon * v)
        sides.append(_gradients(_loss(model, images, labels, device, autocast_mode), arch))
    return [(plus - minus) / (2 * epsilon) for plus, minus in zip(*sides, strict=True)]


def _loss(
    model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device, autocast_mode: str
) -> torch.Tensor:
    """Cross-entropy of the model on a batch; logits in at least float32 (bf16 ones are upcast, float64 kept)."""
    with autocast(device, autocast_mode):
        logits = model(images)
    return F.cross_entropy(logits.to(torch.promote_types(logits.dtype, torch.float32)), labels)


def _gradients(loss: torch.Tensor, parameters: list[nn.Parameter]) -> list[torch.Tensor]:
    """∂loss/∂parameters without touching ``.grad``; a parameter the loss does not use gets zeros."""
    grads = torch.autograd.grad(loss, parameters, allow_unused=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(parameters, grads, strict=True)]


def _virtual_step_settings(
    optimizer: torch.optim.Optimizer, weights: list[nn.Parameter]
) -> list[tuple[float, float, torch.Tensor | None]]:
    """Per weight: (learning rate, weight decay, momentum × momentum buffer or None) of the virtual step."""
    groups = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    missing = [k for k, weight in enumerate(weights) if id(weight) not in groups]
    if missing:
        raise ValueError(f"the weight optimiser does not hold {len(missing)} of the model's weights")
    rates = {group["lr"] for group in optimizer.param_groups}
    if len(rates) != 1:
        raise ValueError(
            f"second-order DARTS needs one weight learning rate ξ; the optimiser's groups have {sorted(rates)}"
        )
    settings = []
    for weight in weights:
        group = groups[id(weight)]
        momentum = group.get("momentum", 0.0) if isinstance(optimizer, torch.optim.SGD) else 0.0
        buffer = optimizer.state.get(weight, {}).get("momentum_buffer") if momentum else None
        momentum_term = None if buffer is None else momentum * buffer
        settings.append((float(group["lr"]), float(group["weight_decay"]), momentum_term))
    return settings


def _restore_weights(weights: list[nn.Parameter], saved: list[torch.Tensor]) -> None:
    with torch.no_grad():
        for weight, value in zip(weights, saved, strict=True):
            weight.copy_(value)

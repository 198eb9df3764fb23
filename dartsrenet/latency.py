"""Inference time per image of a network, a cost objective of the network-design sweep
(docs/network-design.md).

Timed in eval mode without gradients on a batch of random images (from a private
generator: the run's random streams are untouched), after one warm-up call; the median of
a few calls, divided by the batch size. A measurement of this process on this machine:
comparable between the trials of one sweep on like hardware, not across machines, and
noisy where other work shares the CPU.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from dartsrenet.data import IMAGE_SIZE


def inference_ms_per_image(
    model: nn.Module, device: torch.device, batch_size: int = 32, repeats: int = 5, image_size: int = IMAGE_SIZE
) -> float:
    """Median milliseconds per image of ``model``'s eval-mode forward pass.

    The model's mode is restored afterwards; its weights and running statistics are not
    changed (eval mode).
    """
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, image_size, image_size, generator=generator).to(device)
    was_training = model.training
    model.eval()
    timings = []
    try:
        with torch.no_grad():
            for call in range(repeats + 1):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                started = time.perf_counter()
                model(images)
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                if call:  # the first call warms up (kernels, allocator)
                    timings.append(time.perf_counter() - started)
    finally:
        model.train(was_training)
    return 1000 * statistics.median(timings) / batch_size

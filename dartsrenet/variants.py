"""The three search-space variants of DartsReNet (paper §3.2, docs/architecture.md §4).

* ``vanilla`` — each direction of a bidirectional sweep has its own weights.
* ``sigmoid_weighting`` — a learnt vector w (shared by both directions) gates each
  direction's input node input by g = σ([x_t ; h_{t−1}] · w), one scalar per
  sequence and step, before the input BatchNorm.
* ``directional_weight_sharing`` — both directions use the same W_0 … W_8; the
  BatchNorm modules stay per direction as in ``vanilla``.

Variants apply to DARTS cells, in search and in evaluation networks alike.
"""

from __future__ import annotations

from dataclasses import dataclass

from dartsrenet.registry import lookup


@dataclass(frozen=True)
class Variant:
    """How a DARTS cell's two directions are wired (docs/architecture.md §4)."""

    name: str
    sigmoid_weighting: bool = False
    share_direction_weights: bool = False
    description: str = ""


VARIANTS: dict[str, Variant] = {
    "vanilla": Variant("vanilla", description="separate weights per direction"),
    "sigmoid_weighting": Variant(
        "sigmoid_weighting",
        sigmoid_weighting=True,
        description="input node input gated by σ([x_t; h_t-1]·w), w shared by both directions",
    ),
    "directional_weight_sharing": Variant(
        "directional_weight_sharing",
        share_direction_weights=True,
        description="both directions share W_0 … W_8",
    ),
}


def get_variant(name: str | Variant) -> Variant:
    """Return the variant called ``name``; unknown names list the valid ones."""
    if isinstance(name, Variant):
        return name
    return lookup(VARIANTS, name, "variant")

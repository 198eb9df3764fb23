"""Every network of the paper by name: ``create_model(name)`` and ``list_models()`` (docs/design.md).

The five networks of Table 1 — ``renet_<model>`` for the three DartsReNet cells (the
paper's genotypes and variants) and the GRU and LSTM baselines — and the DARTS search
network of each variant, ``search_<variant>`` (docs/architecture.md §2, §3). Each name is
registered with :func:`register_model`; keyword arguments go to the builder
(:func:`~dartsrenet.networks.build_eval_model` or
:func:`~dartsrenet.networks.build_search_model`: ``num_classes``, ``channels``,
``image_size``, ``network``, ``backend``, …), so ``create_model("renet_gru",
network="4x64,2x64/hilbert")`` builds a GRU network of another shape
(docs/network-design.md). Tests are parametrised over :func:`list_models`: a network is
tested by being registered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from dartsrenet.networks import build_eval_model, build_search_model
from dartsrenet.paper import MODELS, PARAMS_MILLIONS
from dartsrenet.registry import lookup
from dartsrenet.variants import VARIANTS

ModelBuilder = Callable[..., nn.Module]

_MODELS: dict[str, ModelBuilder] = {}
PAPER_PARAMS_MILLIONS: dict[str, float] = {}
"""The parameter count (millions, as printed in Table 1) of the registered networks the paper reports."""


def register_model(name: str, builder: ModelBuilder, paper_params_millions: float | None = None) -> ModelBuilder:
    """Register ``builder`` under ``name`` (a second registration of a name is an error)."""
    if name in _MODELS:
        raise ValueError(f"model {name!r} is already registered")
    _MODELS[name] = builder
    if paper_params_millions is not None:
        PAPER_PARAMS_MILLIONS[name] = paper_params_millions
    return builder


def list_models() -> list[str]:
    """Every registered model name, sorted."""
    return sorted(_MODELS)


def create_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the registered model ``name``; an unknown name lists the valid ones."""
    return lookup(_MODELS, name, "model")(**kwargs)


def _eval_builder(model: str) -> ModelBuilder:
    def build(**kwargs: Any) -> nn.Module:
        return build_eval_model(model, **kwargs)

    return build


def _search_builder(variant: str) -> ModelBuilder:
    def build(**kwargs: Any) -> nn.Module:
        return build_search_model(variant, **kwargs)

    return build


for _model in MODELS:
    register_model(f"renet_{_model}", _eval_builder(_model), PARAMS_MILLIONS[_model])
for _variant in VARIANTS:
    register_model(f"search_{_variant}", _search_builder(_variant))

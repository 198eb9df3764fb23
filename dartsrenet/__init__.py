"""dartsrenet — DARTS-searched RNN cells in ReNet image classifiers (Moser et al., DartsReNet).

Public API::

    from dartsrenet import Genotype, PAPER_GENOTYPES, build_eval_model, build_search_model, derive_genotype
    model = build_eval_model("directional_weight_sharing")      # paper cell, 4.0M params
    model = build_eval_model("gru")                             # baseline ReNet with GRU
    search = build_search_model("vanilla")                      # α of shape (36, 5)
    genotype = derive_genotype(search.alpha)                    # eq. 9-10
    model = create_model("renet_lstm", network="4x64,2x64/hilbert")  # any network, docs/network-design.md
    list_models()                                               # every registered network's name
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC_NAMES: dict[str, str] = {
    "ACTIVATIONS": "dartsrenet.activations",
    "PRIMITIVES": "dartsrenet.activations",
    "CELLS": "dartsrenet.cells",
    "PAPER_GENOTYPES": "dartsrenet.genotypes",
    "Genotype": "dartsrenet.genotypes",
    "GenotypeError": "dartsrenet.genotypes",
    "derive_genotype": "dartsrenet.genotypes",
    "parse_genotype": "dartsrenet.genotypes",
    "create_model": "dartsrenet.models",
    "list_models": "dartsrenet.models",
    "NetworkSpec": "dartsrenet.network_spec",
    "EvalNetwork": "dartsrenet.networks",
    "SearchNetwork": "dartsrenet.networks",
    "build_eval_model": "dartsrenet.networks",
    "build_search_model": "dartsrenet.networks",
    "count_parameters": "dartsrenet.networks",
    "UnknownNameError": "dartsrenet.registry",
    "VARIANTS": "dartsrenet.variants",
}
"""Where each public name lives. They are imported on first use (PEP 562), so that the
torch-free parts of the package (:mod:`dartsrenet.results`) import without torch."""


def __getattr__(name: str) -> Any:
    if name not in _PUBLIC_NAMES:
        raise AttributeError(f"module 'dartsrenet' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC_NAMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC_NAMES})


__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "CELLS",
    "PAPER_GENOTYPES",
    "PRIMITIVES",
    "VARIANTS",
    "EvalNetwork",
    "Genotype",
    "GenotypeError",
    "NetworkSpec",
    "SearchNetwork",
    "UnknownNameError",
    "build_eval_model",
    "build_search_model",
    "count_parameters",
    "create_model",
    "derive_genotype",
    "list_models",
    "parse_genotype",
]

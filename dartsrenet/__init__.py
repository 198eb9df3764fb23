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

from dartsrenet.activations import ACTIVATIONS, PRIMITIVES
from dartsrenet.cells import CELLS
from dartsrenet.genotypes import PAPER_GENOTYPES, Genotype, GenotypeError, derive_genotype, parse_genotype
from dartsrenet.models import create_model, list_models
from dartsrenet.network_spec import NetworkSpec
from dartsrenet.networks import EvalNetwork, SearchNetwork, build_eval_model, build_search_model, count_parameters
from dartsrenet.registry import UnknownNameError
from dartsrenet.variants import VARIANTS

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

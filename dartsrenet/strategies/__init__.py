"""Search strategies beside DARTS, run by the same search loop (docs/search-strategies.md).

One module per strategy holds its maths and its :class:`~dartsrenet.strategies.protocol.SearchStrategy`:

* ``darts`` — :mod:`~dartsrenet.strategies.protocol` (first or second order, the default);
* ``sdarts_rs`` — :mod:`~dartsrenet.strategies.sdarts` (Chen & Hsieh 2020);
* ``gdas`` — :mod:`~dartsrenet.strategies.gdas` (Dong & Yang 2019);
* ``rsws`` — :mod:`~dartsrenet.strategies.rsws` (Li & Talwalkar 2019);
* ``darts_pt`` — :mod:`~dartsrenet.strategies.darts_pt` (Wang et al. 2021).

:mod:`~dartsrenet.strategies.supernet` scores architectures with the shared weights;
:mod:`~dartsrenet.strategies.selection` runs a selection on an existing search run folder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dartsrenet.config import SEARCH_STRATEGIES
from dartsrenet.registry import lookup
from dartsrenet.strategies.darts_pt import DartsPtStrategy
from dartsrenet.strategies.gdas import GdasStrategy
from dartsrenet.strategies.protocol import SearchStrategy, SelectionContext
from dartsrenet.strategies.rsws import RswsStrategy
from dartsrenet.strategies.sdarts import SdartsStrategy

if TYPE_CHECKING:
    from dartsrenet.config import SearchConfig

STRATEGIES: dict[str, type[SearchStrategy]] = {
    "darts": SearchStrategy, "sdarts_rs": SdartsStrategy, "gdas": GdasStrategy, "rsws": RswsStrategy,
    "darts_pt": DartsPtStrategy,
}
if tuple(STRATEGIES) != SEARCH_STRATEGIES:  # the config's Literal and this registry name the same strategies
    raise ImportError(f"strategy registry {tuple(STRATEGIES)} differs from config.SEARCH_STRATEGIES {SEARCH_STRATEGIES}")

SELECTION_METHODS = ("rsws", "darts_pt")
"""Strategies that choose the genotype on a trained supernet (also on an existing run folder)."""


def make_strategy(config: SearchConfig) -> SearchStrategy:
    """The strategy ``config.strategy`` names, for this run."""
    return lookup(STRATEGIES, config.strategy, "search strategy")(config)


__all__ = ["SELECTION_METHODS", "STRATEGIES", "SearchStrategy", "SelectionContext", "make_strategy"]

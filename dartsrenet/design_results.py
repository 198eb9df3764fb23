"""The finished trials of a network-design sweep, read from their run folders, and its
Pareto front (docs/network-design.md).

One reading shared by the sweep (``sweeps/design_network.py``, which plans the front's
re-evaluation from it) and the analysis (``analysis/pareto.py``), so both see the same
front. Only the results contract is read (:mod:`dartsrenet.results`): each trial's run
folder ``summary.json`` and the trial's config.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dartsrenet import results
from dartsrenet.design_space import pareto_front
from dartsrenet.network_spec import LayerSpec, NetworkSpec

OBJECTIVES = ("params", "latency")
"""The cost objectives: parameter count, or inference milliseconds per image."""

STAGE_FIELD, SEARCH_STAGE, REEVAL_STAGE = "design_stage", "search", "reevaluation"
"""``sweep.json``'s field naming which of a design sweep's two experiments it is."""

REEVAL_SUFFIX = "_reeval"
"""The re-evaluation experiment's name is the search's name with this suffix."""


@dataclass(frozen=True)
class Outcome:
    """A finished evaluation run of a design experiment.

    Attributes:
        model: the cell choice's name (``gru``, ``vanilla``, ``searched_vanilla``, …).
        genotype: the genotype string, or None for GRU/LSTM.
        variant: the DARTS variant, or None for GRU/LSTM.
        network: the network's string form (:class:`~dartsrenet.network_spec.NetworkSpec`).
        lr: the learning rate.
        seed: the run's seed.
        params: trainable parameters.
        latency_ms: measured inference milliseconds per image, if measured.
        val_accuracy: the selected epoch's validation accuracy.
        test_accuracy: the selected epoch's test accuracy.
        trial: the trial folder's name.
    """

    model: str
    genotype: str | None
    variant: str | None
    network: str
    lr: float
    seed: int
    params: int
    latency_ms: float | None
    val_accuracy: float
    test_accuracy: float
    trial: str = ""

    def cost(self, objective: str) -> float:
        """The cost objective's value (``params`` or ``latency``).

        Raises:
            ValueError: for a latency that this run did not measure.
        """
        value = self.params if objective == "params" else self.latency_ms
        if value is None:
            raise ValueError(f"trial {self.trial} ({self.model} {self.network}) has no measured latency_ms")
        return float(value)

    @property
    def configuration(self) -> tuple[str, str | None, str, float]:
        """What identifies the trained network apart from its seed."""
        return (self.model, self.genotype, self.network, self.lr)


def finished_outcomes(experiment: str) -> list[Outcome]:
    """The finished trials of an experiment (local path or URI), by trial folder name."""
    outcomes = []
    for folder in sorted(results.trial_folders(experiment)):
        status, _, _, summary = results.trial_state(folder)
        if status != results.FINISHED or summary is None:
            continue
        config = summary["config"]
        darts = summary.get("genotype") is not None
        outcomes.append(Outcome(
            model=results.read_trial_config(folder).get("model") or config["cell"],
            genotype=summary.get("genotype_string") if darts else None,
            variant=summary.get("variant") if darts else None,
            network=config.get("network") or "", lr=config["lr"], seed=config["seed"], params=summary["params"],
            latency_ms=summary.get("latency_ms"), val_accuracy=summary["best_val_accuracy"],
            test_accuracy=summary["test_accuracy"], trial=results.location_name(folder),
        ))
    return outcomes


def distinct_runs(outcomes: Sequence[Outcome]) -> list[Outcome]:
    """The first outcome of each (configuration, seed): the sampler can propose a network it
    tried before, and the same network trained with the same seed is one observation, not two."""
    seen: set[tuple[object, ...]] = set()
    distinct = []
    for outcome in outcomes:
        key = (*outcome.configuration, outcome.seed)
        if key not in seen:
            seen.add(key)
            distinct.append(outcome)
    return distinct


def front_of(outcomes: Sequence[Outcome], objective: str) -> list[Outcome]:
    """The non-dominated outcomes (validation accuracy max, cost min), by ascending cost; a
    configuration tried twice with one seed counts once (:func:`distinct_runs`)."""
    outcomes = distinct_runs(outcomes)
    indices = pareto_front([(outcome.val_accuracy, outcome.cost(objective)) for outcome in outcomes])
    return [outcomes[index] for index in indices]


def most_accurate(front: Sequence[Outcome]) -> Outcome:
    """The front's member of highest validation accuracy (fewer parameters on a tie)."""
    return max(front, key=lambda outcome: (outcome.val_accuracy, -outcome.params))


def with_ordering(network: str, ordering: str) -> str:
    """The same network with every layer read in ``ordering``."""
    spec = NetworkSpec.from_string(network)
    return NetworkSpec(tuple(LayerSpec(layer.patch_size, layer.width, ordering) for layer in spec.layers)).to_string()


def orderings_of(network: str) -> str:
    """The orderings of a network's layers, ``hilbert`` or ``rowcol/hilbert`` when they differ."""
    orderings = list(dict.fromkeys(layer.ordering for layer in NetworkSpec.from_string(network).layers))
    return "/".join(orderings)

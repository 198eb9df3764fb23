"""The seed-selection rule of a search (paper §3.3; docs/design.md, "Sweeps — experiment
layout") and ``selected_genotypes.json``: among a variant's seeds that finished with a
finite ``best_val_accuracy`` and a genotype that parses, the best val_cs accuracy, ties →
lower seed. The search sweep and the analysis both select with this rule on the seeds
as their run folders record them (:func:`seed_from_run_folder`), never on Ray's reports.

Genotypes are parsed (with torch) only inside the functions that need them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dartsrenet.results.contract import FINISHED, MISSING, SELECTION_FILE, finite, fraction_problem, genotype_problem
from dartsrenet.results.storage import join_location, location_name, read_text
from dartsrenet.results.trials import read_trial_config, trial_state

if TYPE_CHECKING:
    from dartsrenet.genotypes import Genotype

SELECTION_RULE = "best val_cs accuracy over seeds"
TIE_BREAK = "lower seed"


def selection_problem(seed: Mapping[str, Any]) -> str | None:
    """Why a search seed cannot be selected, or ``None`` when it can.

    Args:
        seed: ``status``, ``best_val_accuracy``, ``genotype_string`` and optionally
            ``error`` of one seed's trial.

    A seed can be selected when it finished, its ``best_val_accuracy`` is a finite
    fraction in [0, 1] and its (best epoch's) genotype parses.
    """
    if seed.get("status") != FINISHED:
        error = f": {seed['error']}" if seed.get("error") else ""
        return f"did not finish ({seed.get('status')}{error})"
    return fraction_problem("best_val_accuracy", seed.get("best_val_accuracy")) or (
        "no genotype" if seed.get("genotype_string") is None
        else genotype_problem("best_genotype", seed.get("genotype_string"))
    )


def select_seed(seeds: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The selected seed of one variant's search (paper §3.3): among the seeds without a
    :func:`selection_problem`, the best ``best_val_accuracy`` (val_cs), ties → lower seed.
    ``None`` when no seed can be selected."""
    candidates = [seed for seed in seeds if selection_problem(seed) is None]
    return min(candidates, key=lambda seed: (-seed["best_val_accuracy"], seed["seed"]), default=None)


SELECTED_FIELDS: tuple[str, ...] = ("seed", "best_val_accuracy", "best_epoch", "genotype", "genotype_string", "trial")
"""What ``selected_genotypes.json`` records of the selected seed."""


def select_genotypes(
    seeds_by_variant: Mapping[str, Sequence[Mapping[str, Any]]], log: Any = print
) -> dict[str, dict[str, Any]]:
    """Per variant: the selected seed (:func:`select_seed`; ``None`` when no seed can be
    selected) and every seed, sorted by seed, each with a ``note`` saying why it cannot
    be selected (``None`` when it can).

    Args:
        seeds_by_variant: per variant, one entry per planned seed (``seed``, ``status``,
            ``best_val_accuracy``, ``genotype_string``, …; see :func:`selection_problem`).
            An entry may bring its own ``note``: a problem found when its result was
            read (e.g. the accuracy was NaN before it was stored as ``null``).
        log: gets a ``note: …`` line for every seed that cannot be selected.
    """
    from dartsrenet.genotypes import Genotype  # torch, only when a selection is made

    variants = {}
    for variant, seeds in seeds_by_variant.items():
        seeds = sorted((dict(seed) for seed in seeds), key=lambda seed: seed["seed"])
        for seed in seeds:
            seed["note"] = seed.get("note") or selection_problem(seed)
            if seed["note"] is not None:
                log(f"note: {variant} seed {seed['seed']} not selectable: {seed['note']}")
        best = select_seed(seed for seed in seeds if seed["note"] is None)
        selected = None if best is None else {key: best.get(key) for key in SELECTED_FIELDS}
        if selected is not None and selected["genotype"] is None:
            selected["genotype"] = Genotype.from_string(selected["genotype_string"]).to_dict()
        variants[variant] = {"selected": selected, "seeds": seeds}
    return variants


def selection_document(
    dataset: str, experiment: str, seeds_by_variant: Mapping[str, Sequence[Mapping[str, Any]]], log: Any = print
) -> dict[str, Any]:
    """The content of ``selected_genotypes.json`` (docs/design.md): ``{"dataset",
    "experiment", "selection", "tie_break", "written", "variants"}`` with the
    :func:`select_genotypes` of ``seeds_by_variant``."""
    return {
        "dataset": dataset,
        "experiment": experiment,
        "selection": SELECTION_RULE,
        "tie_break": TIE_BREAK,
        "written": time.time(),
        "variants": select_genotypes(seeds_by_variant, log),
    }


def selected_genotypes(document: Mapping[str, Any]) -> dict[str, Genotype]:
    """The selected genotype per variant of a ``selected_genotypes.json`` document (its
    ``genotype``, or its ``genotype_string`` where a hand-written file has only that);
    variants without a selected seed are left out.

    Raises:
        ValueError: if the document is not one (the message names what is wrong).
    """
    from dartsrenet.genotypes import Genotype, GenotypeError  # torch, only when genotypes are read

    try:
        genotypes = {}
        for variant, entry in document["variants"].items():
            selected = (entry or {}).get("selected")
            if not selected:
                continue
            if selected.get("genotype") is None and isinstance(selected.get("genotype_string"), str):
                genotypes[variant] = Genotype.from_string(selected["genotype_string"])
            else:
                genotypes[variant] = Genotype.from_dict(selected["genotype"])
        return genotypes
    except (KeyError, TypeError, AttributeError, GenotypeError) as error:
        raise ValueError(f"not a {SELECTION_FILE} ({type(error).__name__}: {error})") from None


def selection_location(spec: str | Path) -> str:
    """Where a ``selected_genotypes.json`` is, given the file or its search experiment."""
    spec = str(spec)
    return spec if spec.endswith(".json") else join_location(spec, SELECTION_FILE)


def read_selection(location: str | Path) -> dict[str, Any]:
    """The ``selected_genotypes.json`` document at ``location`` (local path or URI).

    Raises:
        FileNotFoundError: if there is no such file.
        ValueError: if it is not such a document.
    """
    text = read_text(location)
    if text is None:
        raise FileNotFoundError(f"no {location} (a search sweep writes it when it ends)")
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ValueError(f"{location}: malformed JSON: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("variants"), dict):
        raise ValueError(f"{location}: not a {SELECTION_FILE} (no 'variants' object)")
    return document


# --- seeds read from run folders: the one input of the sweep's and the analysis's selection


def seed_from_run_folder(trial_dir: str | Path, stopped_early: bool = False) -> dict[str, Any]:
    """One search seed as its trial folder records it: the entry :func:`select_genotypes`
    takes, read from the run folder (``summary.json`` of a finished run, else its last
    ``metrics.jsonl`` record) and Ray's ``params.json`` and ``error.txt``
    (:func:`~dartsrenet.results.trials.trial_state`).

    Args:
        trial_dir: a search trial folder.
        stopped_early: the sweep's scheduler stopped it (``sweep.json``'s ``stopped_early``).

    Returns:
        ``variant``, ``seed``, ``status``, ``best_val_accuracy`` (``None`` unless finite),
        ``best_epoch``, ``epochs``, ``genotype`` (a dict when the seed can be selected),
        ``genotype_string``, ``trial`` (the folder's name), ``trial_dir``, ``error``.
    """
    from dartsrenet.genotypes import Genotype  # torch, only when a seed is read

    status, error, history, summary = trial_state(trial_dir, stopped_early)
    config = read_trial_config(trial_dir)
    last = history[-1] if history else {}
    record = summary if summary is not None else last
    genotype_string = summary.get("genotype_string") if summary is not None else last.get("best_genotype")
    seed = {
        "variant": config.get("variant"),
        "seed": config.get("seed"),
        "status": status,
        "best_val_accuracy": finite(record.get("best_val_accuracy")),
        "best_epoch": record.get("best_epoch"),
        "epochs": last.get("epoch"),
        "genotype": None,
        "genotype_string": genotype_string,
        "trial": location_name(trial_dir),
        "trial_dir": str(trial_dir),
        "error": error,
    }
    if selection_problem(seed) is None:
        seed["genotype"] = Genotype.from_string(genotype_string).to_dict()
    return seed


def seeds_from_run_folders(
    trial_dirs: Iterable[str | Path],
    planned: Sequence[Mapping[str, Any]] = (),
    stopped_early: Iterable[str] = (),
) -> dict[str, list[dict[str, Any]]]:
    """Per variant, one :func:`seed_from_run_folder` entry per trial folder, plus a
    ``missing`` entry for every planned (variant, seed) without a folder — what
    :func:`select_genotypes` and :func:`selection_document` take.

    Args:
        trial_dirs: the search experiment's trial folders
            (:func:`~dartsrenet.results.trials.trial_folders`).
        planned: the trial configs the sweep planned (``variant``, ``seed``).
        stopped_early: names of the trial folders that the scheduler stopped early.
    """
    stopped = frozenset(stopped_early)
    by_variant: dict[str, list[dict[str, Any]]] = {entry["variant"]: [] for entry in planned}
    for trial_dir in trial_dirs:
        seed = seed_from_run_folder(trial_dir, location_name(trial_dir) in stopped)
        if seed["variant"] is not None:
            by_variant.setdefault(seed["variant"], []).append(seed)
    for entry in planned:
        seeds = by_variant[entry["variant"]]
        if not any(seed["seed"] == entry["seed"] for seed in seeds):
            seeds.append({"variant": entry["variant"], "seed": entry["seed"], "status": MISSING,
                          "best_val_accuracy": None, "best_epoch": None, "epochs": None, "genotype": None,
                          "genotype_string": None, "trial": None, "trial_dir": None, "error": None})
    return by_variant


def select_from_run_folders(trial_dirs: Iterable[str | Path], stopped_early: Iterable[str] = ()) -> dict[str, Any] | None:
    """The selected seed (:func:`select_seed`) among one variant's trial folders, as
    :func:`seed_from_run_folder` reads it; ``None`` when none can be selected. The search
    sweep (through :func:`seeds_from_run_folders`) and the analysis select with this
    reading and this rule."""
    stopped = frozenset(stopped_early)
    seeds = [seed_from_run_folder(trial_dir, location_name(trial_dir) in stopped) for trial_dir in trial_dirs]
    selected = select_seed(seeds)
    return None if selected is None else dict(selected)

"""The results contract's words (docs/design.md, "Sweeps — experiment layout"): the file
names of an experiment, a trial folder and a run folder, the experiment kinds, the trial
statuses, and what counts as a result (accuracies that are finite fractions in [0, 1],
genotype strings that parse). The sweeps, the library's run folders
(:mod:`dartsrenet.runs`) and the analysis all take these names from here.

This module imports neither torch, Ray nor pandas; a genotype string is parsed (with
torch) only when :func:`genotype_problem` is called.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

# --- file names ----------------------------------------------------------------------

SWEEP_MARKER = "sweep.json"
"""The file that marks an experiment folder."""

SELECTION_FILE = "selected_genotypes.json"
"""The selected genotype per variant, written into a search experiment when it ends."""

RUN_FOLDER = "run"
"""The library's run folder inside each trial folder (config, metrics, summary, …)."""

METRICS_FILE, SUMMARY_FILE = "metrics.jsonl", "summary.json"
"""Files of the run folder: per-epoch metrics, and the result of a finished run."""


CONFIG_FILE, BEST_WEIGHTS_FILE = "config.json", "best.pt"
"""Files of the run folder: the resolved config, and the best epoch's weights."""

CHECKPOINT_DIR, CHECKPOINT_FILE = "checkpoint", "checkpoint.pt"
"""The run folder's checkpoint folder (the one Ray Tune is handed) and the file in it: an
epoch's commit point, from which every other file of the run folder is derived."""

GENOTYPE_FILE, ALPHA_HISTORY_FILE = "genotype.json", "alpha_history.json"
"""Files of a search's run folder: the selected genotype, and softmax(α) per epoch."""

SUPERNET_SELECTION_FILE = "selection.json"
"""File of a search's run folder whose strategy chooses the genotype on the trained supernet
(RSWS, DARTS-PT): how it was chosen."""


DIVERGED_FILE = "diverged.json"
"""File of a run folder whose run ended because its numbers stopped being finite (a loss,
or every validation epoch's outputs): the error's type and message. Such a run is
``diverged`` (:data:`DIVERGED`), not ``failed``: the model, its settings and its seed lead
there, and running it again leads there again."""


def method_file(file_name: str, method: str) -> str:
    """``genotype-rsws.json``: a run-folder file of a selection run later with ``method``
    (:func:`dartsrenet.strategies.selection.select_on_run`), beside the run's own ``genotype.json``."""
    stem, dot, suffix = file_name.rpartition(".")
    return f"{stem}-{method}{dot}{suffix}"

ERROR_FILE, PARAMS_FILE, RAY_RESULT_FILE = "error.txt", "params.json", "result.json"
"""Ray's files of a trial folder: the exception of a failed trial, the trial's config,
its reports."""

SEARCH_KIND, TRAIN_KIND, RANDOM_KIND, TUNE_KIND = "search", "train", "random", "tune"
"""Experiment kinds (``sweep.json``'s ``kind``). The two phases have one name each in
every layer — the library's commands, configs, presets and ``summary.json``, and the
sweeps' ``sweep.json``: ``search`` and ``train`` (the evaluation phase: a cell trained
from scratch and tested; ``sweeps/evaluate_genotypes.py`` runs such experiments).
``random`` is a random-genotype control (``train`` runs of randomly sampled cells,
``sweeps/random_baseline.py``), kept apart so Table 1 never mixes them in; ``tune`` is
hyperparameter tuning."""

DESIGN_KIND = "design"
"""A network-design sweep (``sweeps/design_network.py``): ``train`` runs of sampled network
configurations, and its re-evaluation of the front and of the orderings (docs/network-design.md)."""

KINDS: tuple[str, ...] = (SEARCH_KIND, TRAIN_KIND, RANDOM_KIND, TUNE_KIND, DESIGN_KIND)
"""Experiment kinds: cell searches, evaluations (Table 1), random-genotype controls,
hyperparameter tuning and network-design sweeps."""

FORMER_KIND_NAMES: dict[str, str] = {"eval": TRAIN_KIND}
"""Kinds that experiments written before the names were unified record: read as the
kind they name now (:func:`canonical_kind`)."""


def canonical_kind(kind: Any) -> Any:
    """``kind`` under its current name (``"eval"`` → ``"train"``); anything else as it is."""
    return FORMER_KIND_NAMES.get(kind, kind) if isinstance(kind, str) else kind

RANDOM_GENOTYPES_FIELD, SAMPLE_SEED_FIELD = "random_genotypes", "sample_seed"
"""``sweep.json`` fields of a random-genotype control: the sampled genotype strings (in
sample order) and the seed they were drawn with."""

DEFAULT_RESULTS_ROOT = "results"
"""Where the sweeps store experiments by default (``--storage``)."""

ACCURACY_FIELDS: tuple[str, ...] = ("train_accuracy", "val_accuracy", "best_val_accuracy", "test_accuracy")
"""Metrics that are fractions in [0, 1] (docs/design.md); anything else is not a result."""

# --- trial statuses ------------------------------------------------------------------

FINISHED, DIVERGED, FAILED, UNFINISHED, STOPPED_EARLY, MISSING = (
    "finished", "diverged", "failed", "unfinished", "stopped early", "missing"
)
STATUSES: tuple[str, ...] = (FINISHED, DIVERGED, FAILED, UNFINISHED, STOPPED_EARLY, MISSING)
"""What became of a planned trial: ``finished`` (its run wrote its summary);
``diverged`` (its run ended because its loss or all its validation outputs stopped being
finite, :data:`DIVERGED_FILE`: an outcome of the configuration and seed, which running it
again repeats — never a metric, and nothing to resume); ``failed`` (it raised for another
reason, or its records are not a result); ``unfinished`` (running, or
interrupted — running the same sweep command again resumes it); ``stopped early`` (a
scheduler such as ASHA stopped it on purpose: nothing to resume); ``missing`` (planned,
but never started)."""

STOPPED_EARLY_FIELD = "stopped_early"
"""The ``sweep.json`` field listing the trial folders that the scheduler stopped on
purpose (Ray's own trial status says ``TERMINATED`` for those and for interrupted ones alike)."""


def trial_status(
    *, finished: bool, failed: bool, reported: bool, stopped_early: bool = False, diverged: bool = False
) -> str:
    """The one place that names what became of a trial (:data:`STATUSES`).

    Args:
        finished: the run reached its end (``summary.json``, or the report marked ``finished``).
        failed: the trial raised (Ray's ``error.txt`` or error), or its records are not a result.
        reported: it reported at least one epoch (or has a trial folder).
        stopped_early: the sweep's scheduler stopped it (listed in ``sweep.json``'s
            :data:`STOPPED_EARLY_FIELD`).
        diverged: its run folder holds :data:`DIVERGED_FILE`.
    """
    if finished:
        return FINISHED
    if diverged:
        return DIVERGED
    if failed:
        return FAILED
    if stopped_early and reported:
        return STOPPED_EARLY
    return UNFINISHED if reported else MISSING


def status_counts_text(statuses: Sequence[str]) -> str:
    """``"5 finished, 1 stopped early"``: how many trials ended how, in :data:`STATUSES` order."""
    return ", ".join(f"{statuses.count(status)} {status}" for status in STATUSES if status in statuses)


def resumable(statuses: Iterable[str]) -> bool:
    """Whether running the sweep again would continue some trial (unfinished, failed or missing)."""
    return any(status in (UNFINISHED, FAILED, MISSING) for status in statuses)


SEARCH_EXPERIMENT_FIELD = "search_experiment"
"""The ``sweep.json`` field of an evaluation that names the search experiment its cells
came from (absent for the paper's genotypes)."""


# --- what counts as a result ------------------------------------------------------


def not_a_fraction(value: Any) -> str | None:
    """How ``value`` fails to be a finite fraction in [0, 1] (``"NaN"``, ``"97.5"``,
    ``"null (not a number)"``), or ``None`` when it is one."""
    if value is None:
        return "null (not a number)"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{value!r} (not a number)"
    if math.isnan(value):
        return "NaN"
    if not 0.0 <= value <= 1.0:
        return f"{value:g}"
    return None


def fraction_problem(name: str, value: Any) -> str | None:
    """``"best_val_accuracy is NaN, not a fraction in [0, 1]"``, or ``None`` for a fraction."""
    problem = not_a_fraction(value)
    return None if problem is None else f"{name} is {problem}, not a fraction in [0, 1]"


def genotype_problem(name: str, text: Any) -> str | None:
    """``"best_genotype 'x' is not a genotype (…)"`` unless ``text`` parses as a genotype."""
    from dartsrenet.genotypes import Genotype, GenotypeError  # torch, only when a genotype is checked

    try:
        if not isinstance(text, str):
            raise GenotypeError(f"expected a string, got {type(text).__name__}")
        Genotype.from_string(text)
    except GenotypeError as error:
        return f"{name} {text!r} is not a genotype ({error})"
    return None


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number, else ``None``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None

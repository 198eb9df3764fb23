"""The results contract between the sweeps and the analysis (docs/design.md, "Sweeps —
experiment layout"): file names, trial statuses, the seed-selection rule, and reading an
experiment folder. The sweeps write through this module and the analysis reads through
it, so each rule is written once.

An experiment is a folder ``STORAGE/NAME/`` marked by ``sweep.json``
(``{"kind": "search"|"train"|"random"|"tune", "created": …, "planned": [{trial config}, …], …}``),
with one folder per trial. Each trial folder holds the library's run folder ``run/``
(synced from the trial's working directory with every checkpoint) beside Ray Tune's
files::

    NAME/
      sweep.json
      selected_genotypes.json   search experiments: the selected cell per variant
      vanilla_seed0_abc12_00000/
        run/
          config.json      the resolved config
          metrics.jsonl    one JSON object per epoch           ← per-epoch history
          summary.json     written when the run finishes      ← the trial's result
          …                (docs/design.md, "Run folder")
        params.json        the trial's config (Ray)
        error.txt          only when the trial failed (Ray)
        result.json        Ray's copy of the reports
        checkpoint_000003/ Ray's checkpoints

Metrics come from the run folder only: the library rewrites ``metrics.jsonl`` whole
after every epoch, so a trial that failed and was retried from a checkpoint shows every
epoch once. A record that is not a result is never shown as a number: a finished run
whose accuracies are not finite fractions in [0, 1], or whose selected genotype does not
parse, is a ``failed`` trial with the reason as its error.

Locations are local paths or storage URIs (``s3://…``, ``gs://…``, ``file://…``), read
and written through ``pyarrow.fs`` (Ray brings pyarrow). This module imports neither Ray
nor pandas: results can be read on any machine and with any Ray version.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dartsrenet.genotypes import Genotype, GenotypeError

# --- file names ----------------------------------------------------------------------

SWEEP_MARKER = "sweep.json"
"""The file that marks an experiment folder."""

SELECTION_FILE = "selected_genotypes.json"
"""The selected genotype per variant, written into a search experiment when it ends."""

RUN_FOLDER = "run"
"""The library's run folder inside each trial folder (config, metrics, summary, …)."""

METRICS_FILE, SUMMARY_FILE = "metrics.jsonl", "summary.json"
"""Files of the run folder: per-epoch metrics, and the result of a finished run."""

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

FINISHED, FAILED, UNFINISHED, STOPPED_EARLY, MISSING = (
    "finished", "failed", "unfinished", "stopped early", "missing"
)
STATUSES: tuple[str, ...] = (FINISHED, FAILED, UNFINISHED, STOPPED_EARLY, MISSING)
"""What became of a planned trial: ``finished`` (its run wrote its summary);
``failed`` (it raised, or its records are not a result); ``unfinished`` (running, or
interrupted — running the same sweep command again resumes it); ``stopped early`` (a
scheduler such as ASHA stopped it on purpose: nothing to resume); ``missing`` (planned,
but never started)."""

STOPPED_EARLY_FIELD = "stopped_early"
"""The ``sweep.json`` field listing the trial folders that the scheduler stopped on
purpose (Ray's own trial status says ``TERMINATED`` for those and for interrupted ones alike)."""


def trial_status(*, finished: bool, failed: bool, reported: bool, stopped_early: bool = False) -> str:
    """The one place that names what became of a trial (:data:`STATUSES`).

    Args:
        finished: the run reached its end (``summary.json``, or the report marked ``finished``).
        failed: the trial raised (Ray's ``error.txt`` or error), or its records are not a result.
        reported: it reported at least one epoch (or has a trial folder).
        stopped_early: the sweep's scheduler stopped it (listed in ``sweep.json``'s
            :data:`STOPPED_EARLY_FIELD`).
    """
    if finished:
        return FINISHED
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


# --- validity and the seed-selection rule --------------------------------------------

SELECTION_RULE = "best val_cs accuracy over seeds"
TIE_BREAK = "lower seed"


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


# --- storage: local paths and URIs ---------------------------------------------------


def is_uri(location: str | Path) -> bool:
    """Whether a location is a storage URI (``s3://…``, ``gs://…``, ``file://…``)."""
    return "://" in str(location)


def join_location(base: str | Path, *parts: str) -> str:
    """``base/part/…`` for a local path or a URI."""
    base = str(base)
    return "/".join([base.rstrip("/"), *parts]) if is_uri(base) else str(Path(base, *parts))


def location_name(location: str | Path) -> str:
    """The last part of a local path or a URI (an experiment's name)."""
    return str(location).rstrip("/").rsplit("/", 1)[-1] if is_uri(location) else Path(location).name


def _filesystem(location: str) -> tuple[Any, str]:
    try:
        import pyarrow.fs
    except ImportError:
        raise ValueError(
            f"{location}: reading storage URIs needs pyarrow (pip install pyarrow; Ray brings it)"
        ) from None
    try:
        return pyarrow.fs.FileSystem.from_uri(location)
    except (pyarrow.ArrowInvalid, pyarrow.ArrowNotImplementedError) as error:
        raise ValueError(f"{location}: not a storage URI pyarrow can open ({error})") from None


def read_text(location: str | Path) -> str | None:
    """Text of a local file or an object at a URI; ``None`` if there is none."""
    if not is_uri(location):
        try:
            return Path(location).read_text(errors="replace")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
    import pyarrow.fs

    filesystem, path = _filesystem(str(location))
    if filesystem.get_file_info(path).type != pyarrow.fs.FileType.File:
        return None
    with filesystem.open_input_stream(path) as stream:
        return stream.read().decode(errors="replace")


def write_json(location: str | Path, data: Any) -> None:
    """Write strict JSON (non-finite numbers as ``null``): a local file atomically, or an
    object at a URI."""
    from dartsrenet.runs import to_json, write_json as write_local_json

    if not is_uri(location):
        write_local_json(Path(location), data)
        return
    filesystem, path = _filesystem(str(location))
    filesystem.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with filesystem.open_output_stream(path) as stream:
        stream.write((to_json(data, indent=2) + "\n").encode())


def list_folders(location: str | Path) -> list[str]:
    """The sub-folders of a local folder or a URI prefix, as locations, by name."""
    if not is_uri(location):
        folder = Path(location)
        return sorted(str(path) for path in folder.iterdir() if path.is_dir()) if folder.is_dir() else []
    import pyarrow.fs

    filesystem, path = _filesystem(str(location))
    selector = pyarrow.fs.FileSelector(path, allow_not_found=True)
    return sorted(
        join_location(location, info.base_name)
        for info in filesystem.get_file_info(selector)
        if info.type == pyarrow.fs.FileType.Directory
    )


def exists(location: str | Path) -> bool:
    """Whether a file or folder exists at a local path or a URI."""
    if not is_uri(location):
        return Path(location).exists()
    import pyarrow.fs

    filesystem, path = _filesystem(str(location))
    return filesystem.get_file_info(path).type != pyarrow.fs.FileType.NotFound


def modified_time(location: str | Path) -> float | None:
    """Last modification (POSIX seconds) of a local path or an object at a URI, or ``None``."""
    if not is_uri(location):
        try:
            return Path(location).stat().st_mtime
        except OSError:
            return None
    filesystem, path = _filesystem(str(location))
    info = filesystem.get_file_info(path)
    return None if info.mtime is None else info.mtime.timestamp()


def _read_json(location: str | Path) -> Any:
    """JSON content of a file, or ``None`` when missing or malformed."""
    text = read_text(location)
    try:
        return None if text is None else json.loads(text)
    except ValueError:
        return None


# --- experiments ---------------------------------------------------------------------


class ExperimentNotFoundError(FileNotFoundError):
    """A folder that is not an experiment (no ``sweep.json``), or no experiment at all."""


@dataclass(frozen=True)
class Experiment:
    """An experiment folder and its ``sweep.json`` marker.

    Attributes:
        path: the experiment's location (``STORAGE/NAME``): a local path or a URI.
        kind: one of :data:`KINDS`.
        created: creation time (POSIX seconds) from the marker's ``created`` field, or the
            marker file's modification time when the field is absent or unreadable.
        marker: the whole ``sweep.json`` content.
    """

    path: str
    kind: str
    created: float
    marker: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        """The experiment's name (its folder name)."""
        return location_name(self.path)

    @property
    def stopped_early(self) -> frozenset[str]:
        """Names of the trial folders that the scheduler stopped early."""
        names = self.marker.get(STOPPED_EARLY_FIELD) or []
        return frozenset(name for name in names if isinstance(name, str))

    @property
    def planned(self) -> list[dict[str, Any]]:
        """The trial configs the sweep planned (empty when the marker lists none)."""
        planned = self.marker.get("planned") or []
        return [dict(entry) for entry in planned if isinstance(entry, Mapping)]

    def file(self, name: str) -> str:
        """The location of file ``name`` of the experiment (e.g. :data:`SELECTION_FILE`)."""
        return join_location(self.path, name)


def experiment_location(location: str | Path) -> str:
    """A local experiment path made absolute; a URI as it is."""
    return str(location).rstrip("/") if is_uri(location) else str(Path(location).expanduser().resolve())


def read_experiment(location: str | Path) -> Experiment:
    """Read the experiment at ``location`` (a local folder or a URI).

    Raises:
        ExperimentNotFoundError: if it has no readable ``sweep.json``.
        ValueError: if the marker's ``kind`` is not one of :data:`KINDS`.
    """
    location = str(location).rstrip("/") if is_uri(location) else str(location)
    marker_location = join_location(location, SWEEP_MARKER)
    marker = _read_json(marker_location)
    if not isinstance(marker, dict):
        raise ExperimentNotFoundError(
            f"{location} is not an experiment folder: no readable {SWEEP_MARKER} "
            "(sweeps write it; see docs/design.md)"
        )
    kind = canonical_kind(marker.get("kind"))
    if kind not in KINDS:
        raise ValueError(f"{marker_location}: 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    return Experiment(path=location, kind=kind, created=_created_time(marker, marker_location), marker=marker)


def find_experiments(root: str | Path = DEFAULT_RESULTS_ROOT, kind: str | None = None) -> list[Experiment]:
    """All experiments under ``root`` (the root itself and two levels below), oldest first.

    Folders whose ``sweep.json`` is unreadable or has an unknown kind are skipped.

    Args:
        root: the results root (the sweeps' ``--storage``): a local folder or a URI.
        kind: keep only experiments of this kind; ``None`` keeps all.
    """
    root = str(root)
    folders = [root]
    for child in list_folders(root):
        folders += [child, *list_folders(child)]
    experiments = []
    for folder in folders:
        try:
            experiment = read_experiment(folder)
        except (ExperimentNotFoundError, ValueError):
            continue
        if kind is None or experiment.kind == canonical_kind(kind):
            experiments.append(experiment)
    return sorted(experiments, key=lambda experiment: (experiment.created, experiment.name))


def latest_experiment(root: str | Path = DEFAULT_RESULTS_ROOT, kind: str = "search") -> Experiment | None:
    """The most recently created experiment of ``kind`` under ``root``, or ``None``."""
    experiments = find_experiments(root, kind)
    return experiments[-1] if experiments else None


SEARCH_EXPERIMENT_FIELD = "search_experiment"
"""The ``sweep.json`` field of an evaluation that names the search experiment its cells
came from (absent for the paper's genotypes)."""


def evaluations_of(search: Experiment, root: str | Path) -> list[Experiment]:
    """The evaluation experiments under ``root`` made from ``search``'s selection (their
    ``sweep.json`` names it in :data:`SEARCH_EXPERIMENT_FIELD`), oldest first."""
    wanted = experiment_location(search.path)
    return [
        experiment for experiment in find_experiments(root, TRAIN_KIND)
        if isinstance(experiment.marker.get(SEARCH_EXPERIMENT_FIELD), str)
        and experiment_location(experiment.marker[SEARCH_EXPERIMENT_FIELD]) == wanted
    ]


def _created_time(marker: Mapping[str, Any], marker_location: str) -> float:
    created = marker.get("created")
    if isinstance(created, int | float) and not isinstance(created, bool) and math.isfinite(created):
        return float(created)
    if isinstance(created, str):
        try:
            return datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return modified_time(marker_location) or 0.0


# --- trial folders -------------------------------------------------------------------

_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def read_json_lines(location: str | Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file such as the run folder's ``metrics.jsonl``.

    A missing file gives ``[]``. Lines that do not parse (typically the last line, cut
    short while the file was being copied) and non-object lines are skipped. ``NaN``
    and ``null`` values are read as they are (``float("nan")``, ``None``).
    """
    records = []
    for line in (read_text(location) or "").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_history(trial_dir: str | Path) -> list[dict[str, Any]]:
    """The per-epoch metrics of one trial, by epoch, from its run folder's ``metrics.jsonl``.

    One record per epoch (an epoch written twice keeps its last record); records without
    an integer ``epoch`` are skipped. ``[]`` when the run wrote no epoch yet.
    """
    by_epoch: dict[int, dict[str, Any]] = {}
    for record in read_json_lines(join_location(trial_dir, RUN_FOLDER, METRICS_FILE)):
        epoch = record.get("epoch")
        if isinstance(epoch, int) and not isinstance(epoch, bool):
            by_epoch[epoch] = record
    return [by_epoch[epoch] for epoch in sorted(by_epoch)]


def read_summary(trial_dir: str | Path) -> dict[str, Any] | None:
    """The run folder's ``summary.json`` (written when the run finished), or ``None``."""
    summary = _read_json(join_location(trial_dir, RUN_FOLDER, SUMMARY_FILE))
    return summary if isinstance(summary, dict) else None


def read_error(trial_dir: str | Path) -> str | None:
    """The last non-empty line of the trial's ``error.txt`` (the exception), or ``None``."""
    text = read_text(join_location(trial_dir, ERROR_FILE))
    if text is None:
        return None
    lines = [_ANSI_ESCAPE.sub("", line).strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    return lines[-1] if lines else f"{ERROR_FILE} is empty"


def read_trial_config(trial_dir: str | Path) -> dict[str, Any]:
    """The trial's config: Ray's ``params.json``, else the config Ray repeats in every
    ``result.json`` line; ``{}`` when neither is readable."""
    config = _read_json(join_location(trial_dir, PARAMS_FILE))
    if isinstance(config, dict):
        return config
    for report in reversed(read_json_lines(join_location(trial_dir, RAY_RESULT_FILE))):
        if isinstance(report.get("config"), dict):
            return report["config"]
    return {}


def latest_checkpoint(trial_dir: str | Path) -> str | None:
    """Name of the trial's highest-numbered ``checkpoint_*`` folder, or ``None``."""
    names = [location_name(folder) for folder in list_folders(trial_dir)]
    checkpoints = sorted(name for name in names if name.startswith("checkpoint_"))
    return checkpoints[-1] if checkpoints else None


def trial_folders(experiment_dir: str | Path) -> list[str]:
    """The trial folders of an experiment: sub-folders holding a run folder or Ray's
    trial files, by name."""
    markers = (RUN_FOLDER, PARAMS_FILE, RAY_RESULT_FILE, "progress.csv")
    return [
        folder for folder in list_folders(experiment_dir)
        if any(exists(join_location(folder, marker)) for marker in markers)
    ]


def invalid_result(history: list[dict[str, Any]], summary: Mapping[str, Any] | None) -> str | None:
    """Why a run's records are not a result, or ``None`` if they are.

    Every accuracy (:data:`ACCURACY_FIELDS`) in ``metrics.jsonl`` must be a finite
    fraction in [0, 1]; a finished run's ``summary.json`` must have such a
    ``best_val_accuracy`` (and ``test_accuracy`` for an evaluation run), and a search
    run's ``genotype_string`` must parse as a genotype.

    Returns:
        One line naming the file, the field and the value, e.g.
        ``"summary.json: test_accuracy is NaN, not a fraction in [0, 1]"``.
    """
    for record in history:
        for name in ACCURACY_FIELDS:
            if name in record and (problem := fraction_problem(name, record[name])) is not None:
                return f"{METRICS_FILE} epoch {record['epoch']}: {problem}"
    if summary is None:
        return None
    required = ("best_val_accuracy", "test_accuracy") if summary.get("kind") == "train" else ("best_val_accuracy",)
    for name in required:
        if name not in summary:
            return f"{SUMMARY_FILE}: no {name}"
        if (problem := fraction_problem(name, summary[name])) is not None:
            return f"{SUMMARY_FILE}: {problem}"
    if summary.get("kind") == "search":
        problem = genotype_problem("genotype_string", summary.get("genotype_string"))
        if problem is not None:
            return f"{SUMMARY_FILE}: {problem}"
    return None


def trial_state(
    trial_dir: str | Path, stopped_early: bool = False
) -> tuple[str, str | None, list[dict[str, Any]], dict[str, Any] | None]:
    """Status, error line, per-epoch history and summary of one trial folder.

    Status (:func:`trial_status`): ``finished`` when the run folder has ``summary.json``
    (a trial that failed, was retried by Ray and then finished counts as finished); else
    ``failed`` when Ray wrote ``error.txt``; else ``stopped early`` when the experiment
    says so (``stopped_early``); else ``unfinished``. Records that are not a
    result (:func:`invalid_result`) make any trial ``failed``, with the reason as its
    error; otherwise the error is the last line of ``error.txt``, if any.
    """
    history = read_history(trial_dir)
    summary = read_summary(trial_dir)
    error = read_error(trial_dir)
    reason = invalid_result(history, summary)
    if reason is not None:
        return FAILED, reason, history, summary
    status = trial_status(
        finished=summary is not None, failed=error is not None, reported=True, stopped_early=stopped_early
    )
    return status, error, history, summary

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

The contract is split by concern; this package re-exports every public name, so
``from dartsrenet.results import X`` reads the same whatever module X lives in:

- :mod:`~dartsrenet.results.contract` — file names, kinds, statuses, what counts as a result;
- :mod:`~dartsrenet.results.storage` — reading and writing local paths and URIs;
- :mod:`~dartsrenet.results.experiments` — experiment folders and their ``sweep.json``;
- :mod:`~dartsrenet.results.trials` — trial folders: history, summary, status;
- :mod:`~dartsrenet.results.selection` — the seed-selection rule and ``selected_genotypes.json``.

Importing it imports no torch (genotypes are parsed only where a function needs them).
"""

from dartsrenet.results.contract import (
    ACCURACY_FIELDS,
    BEST_WEIGHTS_FILE,
    CONFIG_FILE,
    DEFAULT_RESULTS_ROOT,
    DESIGN_KIND,
    DIVERGED,
    DIVERGED_FILE,
    ERROR_FILE,
    FAILED,
    FINISHED,
    FORMER_KIND_NAMES,
    KINDS,
    METRICS_FILE,
    MISSING,
    PARAMS_FILE,
    RANDOM_GENOTYPES_FIELD,
    RANDOM_KIND,
    RAY_RESULT_FILE,
    RUN_FOLDER,
    SAMPLE_SEED_FIELD,
    SEARCH_EXPERIMENT_FIELD,
    SEARCH_KIND,
    SELECTION_FILE,
    STATUSES,
    STOPPED_EARLY,
    STOPPED_EARLY_FIELD,
    SUMMARY_FILE,
    SWEEP_MARKER,
    TRAIN_KIND,
    TUNE_KIND,
    UNFINISHED,
    canonical_kind,
    finite,
    fraction_problem,
    genotype_problem,
    not_a_fraction,
    resumable,
    status_counts_text,
    trial_status,
)
from dartsrenet.results.storage import (
    exists,
    is_uri,
    join_location,
    list_folders,
    location_name,
    modified_time,
    read_text,
    write_json,
)
from dartsrenet.results.experiments import (
    Experiment,
    ExperimentNotFoundError,
    evaluations_of,
    experiment_location,
    find_experiments,
    latest_experiment,
    read_experiment,
)
from dartsrenet.results.trials import (
    invalid_result,
    latest_checkpoint,
    read_divergence,
    read_error,
    read_history,
    read_json_lines,
    read_summary,
    read_trial_config,
    trial_folders,
    trial_state,
)
from dartsrenet.results.selection import (
    SELECTED_FIELDS,
    SELECTION_RULE,
    TIE_BREAK,
    read_selection,
    select_genotypes,
    select_seed,
    selected_genotypes,
    selection_document,
    selection_location,
    seed_from_run_folder,
    seeds_from_run_folders,
    select_from_run_folders,
    selection_problem,
)

__all__ = [
    "ACCURACY_FIELDS",
    "BEST_WEIGHTS_FILE",
    "CONFIG_FILE",
    "DEFAULT_RESULTS_ROOT",
    "DESIGN_KIND",
    "DIVERGED",
    "DIVERGED_FILE",
    "ERROR_FILE",
    "Experiment",
    "ExperimentNotFoundError",
    "FAILED",
    "FINISHED",
    "FORMER_KIND_NAMES",
    "KINDS",
    "METRICS_FILE",
    "MISSING",
    "PARAMS_FILE",
    "RANDOM_GENOTYPES_FIELD",
    "RANDOM_KIND",
    "RAY_RESULT_FILE",
    "RUN_FOLDER",
    "SAMPLE_SEED_FIELD",
    "SEARCH_EXPERIMENT_FIELD",
    "SEARCH_KIND",
    "SELECTED_FIELDS",
    "SELECTION_FILE",
    "SELECTION_RULE",
    "STATUSES",
    "STOPPED_EARLY",
    "STOPPED_EARLY_FIELD",
    "SUMMARY_FILE",
    "SWEEP_MARKER",
    "TIE_BREAK",
    "TRAIN_KIND",
    "TUNE_KIND",
    "UNFINISHED",
    "canonical_kind",
    "evaluations_of",
    "exists",
    "experiment_location",
    "find_experiments",
    "finite",
    "fraction_problem",
    "genotype_problem",
    "invalid_result",
    "is_uri",
    "join_location",
    "latest_checkpoint",
    "latest_experiment",
    "list_folders",
    "location_name",
    "modified_time",
    "not_a_fraction",
    "read_divergence",
    "read_error",
    "read_experiment",
    "read_history",
    "read_json_lines",
    "read_selection",
    "read_summary",
    "read_text",
    "read_trial_config",
    "resumable",
    "select_genotypes",
    "select_seed",
    "selected_genotypes",
    "selection_document",
    "selection_location",
    "seed_from_run_folder",
    "seeds_from_run_folders",
    "select_from_run_folders",
    "selection_problem",
    "status_counts_text",
    "trial_folders",
    "trial_state",
    "trial_status",
    "write_json",
]

"""The network-design sweep: its space (exact counts, budget by construction), a real tiny
multi-objective sweep in Ray Tune with its re-evaluation and resume, bad-input refusal,
and the Pareto analysis on hand-written run folders."""

from __future__ import annotations

import json
import math
from pathlib import Path

import optuna
import pytest

from analysis import pareto
from dartsrenet import build_eval_model, count_parameters, results
from dartsrenet.design_results import finished_outcomes, front_of, with_ordering
from dartsrenet.design_space import DesignSpace, layouts, paper_cells, parse_count, pareto_front
from dartsrenet.network_spec import NetworkSpec
from sweeps import design_network
from sweeps.errors import EXIT_OK, EXIT_USAGE
from tests.fixtures_results import eval_reports, write_sweep, write_trial

VARIANTS = ["vanilla", "sigmoid_weighting", "directional_weight_sharing"]


def small_space(max_params: int | None = None) -> DesignSpace:
    return DesignSpace(
        cells=tuple(paper_cells(VARIANTS)), layouts=tuple(layouts(3, [2, 4])), widths=(8, 16, 32),
        orderings=("rowcol", "serpentine", "hilbert"), lr=(0.01, 0.1), max_params=max_params,
    )


@pytest.mark.parametrize("cell", ["gru", "lstm", *VARIANTS])
def test_space_counts_equal_the_built_networks(cell):
    space = small_space()
    choice = space.cell(cell)
    for network in ["2x8", "4x16/hilbert,2x32", "2x32,2x8/serpentine,4x16"]:
        model = build_eval_model(choice.genotype or cell, choice.variant, network=network)
        assert space.parameters(cell, NetworkSpec.from_string(network)) == count_parameters(model), network


def test_layouts_fit_the_stem_output():
    assert layouts(2, [2, 4]) == [(2,), (4,), (2, 2), (2, 4), (4, 2), (4, 4)]
    assert (4, 4, 2) not in layouts(3, [2, 4])  # 32 does not divide 16


def test_every_sample_fits_the_budget_and_a_too_small_budget_is_refused():
    space = small_space(max_params=60_000)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.NSGAIISampler(seed=0, population_size=4))
    sizes = []
    for _ in range(16):
        trial = study.ask()
        sample = space.sample(trial)
        size = space.parameters(sample["model"], NetworkSpec.from_string(sample["network"]))
        assert size <= 60_000, sample
        sizes.append(size)
        study.tell(trial, [0.5, size])
    assert len(set(sizes)) > 3
    with pytest.raises(ValueError, match=r"the smallest \w+ network with layout .* over the budget of 5,000"):
        small_space(max_params=5_000).check_budget()


def test_parse_count_and_pareto_front():
    assert [parse_count(text) for text in ["1.5M", "800k", "2e6", "12_345", "1G"]] == [
        1_500_000, 800_000, 2_000_000, 12_345, 1_000_000_000
    ]
    for bad in ["many", "0", "-3k", "nan"]:
        with pytest.raises(ValueError, match="parameter count"):
            parse_count(bad)
    points = [(0.9, 100), (0.8, 50), (0.85, 120), (0.8, 60), (0.95, 300), (0.9, 100)]
    assert pareto_front(points) == [1, 0, 5, 4]  # (0.85, 120) and (0.8, 60) are dominated; ties kept


def test_bad_arguments_are_refused_before_ray(tmp_path, capsys):
    base = ["--storage", str(tmp_path), "--preset", "design"]
    for argv, message in [
        (["--max-params", "5k"], "over the budget of 5,000"),
        (["--set", "network=2x8"], "--set network: the design sweep chooses it"),
        (["--num-samples", "0"], "--num-samples must be at least 1"),
        (["--widths", "8", "15"], "widths must be distinct even numbers"),
        (["--random", str(tmp_path)], "--random"),
        (["--set", "epochs=0"], "epochs=0 is out of range"),
    ]:
        assert design_network.main([*argv, *base]) == EXIT_USAGE
        errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and message in errors[0], (argv, errors)
    with pytest.raises(SystemExit):
        design_network.main(["--max-params", "lots", *base])
    assert "parameter count" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing written


TINY = [
    "--preset", "design", "--set", "epochs=1", "--set", "limit=40", "--set", "batch_size=8",
    "--cells", "gru", "lstm", "--layers", "1", "--patch-sizes", "4", "--widths", "4", "8",
    "--orderings", "rowcol", "hilbert", "--num-samples", "2", "--population", "2",
    "--front-seeds", "1", "--ordering-seeds", "1", "--gpus-per-trial", "0", "--verbose", "0",
]


def test_a_real_sweep_finds_a_front_reevaluates_it_and_resumes(ray_session, tmp_path, capsys):
    argv = [*TINY, "--storage", str(tmp_path), "--name", "design"]
    assert design_network.main(argv) == EXIT_OK
    out = capsys.readouterr().out
    assert "Pareto front" in out and "re-evaluating" in out
    experiment, reevaluation = tmp_path / "design", tmp_path / "design_reeval"
    marker = json.loads((experiment / "sweep.json").read_text())
    assert marker["kind"] == results.DESIGN_KIND and marker["objectives"] == {"max": "selected_score", "min": "params"}
    search = finished_outcomes(str(experiment))
    assert len(search) == 2  # every trial is an ordinary evaluation run folder
    for outcome in search:
        assert outcome.model in ("gru", "lstm") and NetworkSpec.from_string(outcome.network).layers[0].width in (4, 8)
        assert outcome.latency_ms is not None and outcome.latency_ms > 0
    front = front_of(search, "params")
    again = finished_outcomes(str(reevaluation))
    best = max(front, key=lambda o: (o.val_accuracy, -o.params))
    expected = {(o.network, 1) for o in front} | {(with_ordering(best.network, name), 0) for name in ("rowcol", "hilbert")}
    assert {(o.network, o.seed) for o in again} == expected - {(best.network, 0)}  # the search trained that one

    summaries = sorted(experiment.glob("*/run/summary.json")) + sorted(reevaluation.glob("*/run/summary.json"))
    stamps = [path.stat().st_mtime_ns for path in summaries]
    assert design_network.main(argv) == EXIT_OK  # resumes: nothing is trained again
    out = capsys.readouterr().out
    assert out.count("resuming experiment") == 2
    assert [path.stat().st_mtime_ns for path in summaries] == stamps

    figures = tmp_path / "figures"
    assert pareto.main([str(experiment), "--out", str(figures)]) == 0
    out = capsys.readouterr().out
    assert "Pareto front of design" in out and "Orderings of the front's most accurate network" in out
    assert (figures / "pareto_design.png").stat().st_size > 10_000


# --- the analysis on hand-written run folders ----------------------------------------

DESIGN_TRIALS = [  # model, network, lr, seed, params, val, test
    ("gru", "2x8", 0.05, 0, 20_000, 0.70, 0.68),
    ("lstm", "2x16/hilbert", 0.02, 0, 40_000, 0.80, 0.79),
    ("vanilla", "4x16", 0.03, 0, 45_000, 0.75, 0.74),  # dominated by lstm
    ("gru", "2x32,2x32", 0.04, 0, 90_000, 0.90, 0.88),
    ("directional_weight_sharing", "2x8,4x8", 0.05, 0, 15_000, 0.60, 0.61),
]
REEVAL_TRIALS = [
    ("gru", "2x32,2x32", 0.04, 1, 90_000, 0.86, 0.84),  # front member, second seed
    ("gru", "2x32/hilbert,2x32/hilbert", 0.04, 0, 90_000, 0.82, 0.80),  # orderings of the best
    ("gru", "2x32/serpentine,2x32/serpentine", 0.04, 0, 90_000, 0.78, 0.77),
]


def design_config(model: str, network: str, lr: float, seed: int) -> dict:
    darts = model in VARIANTS
    from dartsrenet.genotypes import PAPER_GENOTYPES

    return {
        "model": model, "genotype": PAPER_GENOTYPES[model].to_string() if darts else None,
        "variant": model if darts else None, "dataset": "digits", "seed": seed, "preset": "design",
        "overrides": {"network": network, "lr": lr, "measure_latency": True},
    }


def write_design(root: Path) -> Path:
    search, reevaluation = root / "design_fixture", root / "design_fixture_reeval"
    for folder, trials, stage in [(search, DESIGN_TRIALS, "search"), (reevaluation, REEVAL_TRIALS, "reevaluation")]:
        configs = [design_config(*trial[:4]) for trial in trials]
        extra = {"design_stage": stage}
        if stage == "search":
            extra.update(objective="params", seed=0, space={"orderings": ["rowcol", "serpentine", "hilbert"], "widths": [8, 16, 32]})
        else:
            extra.update(ordering_seeds=1, front_seeds=1)
        write_sweep(folder, results.DESIGN_KIND, configs, 1767330000.0, **extra)
        for index, (trial, config) in enumerate(zip(trials, configs, strict=True)):
            *_, params, val, test = trial
            write_trial(folder, index, config, eval_reports(test, params),
                        summary={"best_val_accuracy": val, "latency_ms": 0.5 + index})
    return search


def test_front_and_ordering_tables_from_run_folders(tmp_path):
    design = pareto.load_design(str(write_design(tmp_path)))
    assert [(o.model, o.network) for o in design.front] == [
        ("directional_weight_sharing", "2x8,4x8"), ("gru", "2x8"), ("lstm", "2x16/hilbert"), ("gru", "2x32,2x32")
    ]
    table = pareto.front_table(design)
    assert list(table["params"]) == ["15,000", "20,000", "40,000", "90,000"]
    best = table.iloc[-1]
    assert best["val % over seeds"] == f"88.00 ± {100 * math.sqrt(0.0008):.2f} (n=2)"
    assert best["test % over seeds"] == f"86.00 ± {100 * math.sqrt(0.0008):.2f} (n=2)"
    assert table.iloc[0]["test % over seeds"] == "61.00 (n=1)"
    orderings = pareto.ordering_table(design)
    assert list(orderings["ordering"]) == ["rowcol", "serpentine", "hilbert"]
    assert list(orderings["val %"]) == ["90.00 (n=1)", "78.00 (n=1)", "82.00 (n=1)"]
    assert list(orderings["seeds"]) == ["0", "0", "0"]


def test_figure_places_the_paper_networks(tmp_path, capsys):
    experiment = write_design(tmp_path)
    figures = tmp_path / "figures"
    assert pareto.main([str(experiment), "--out", str(figures), "--paper-channels", "16"]) == 0
    out = capsys.readouterr().out
    assert "| gru" in out and "figure:" in out
    assert (figures / "pareto_design_fixture.png").is_file()
    points = pareto.paper_points(16, 10, None)
    assert [p.model for p in points] == ["gru", "lstm", *VARIANTS]
    assert all(p.val_accuracy is None for p in points)
    assert points[0].params == count_parameters(build_eval_model("gru", channels=16))
    figure = pareto.plot_front(pareto.load_design(str(experiment)), points, "paper design, N = 16, not trained")
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert "paper's GRU (params only)" in labels and "Pareto front (4)" in labels
    assert pareto.main([str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.startswith("error:")


def test_the_space_takes_a_random_controls_genotypes(tmp_path):
    from dartsrenet.genotypes import sample_genotypes

    drawn = [genotype.to_string() for genotype in sample_genotypes(2, 0)]
    planned = [
        {"model": f"{variant}_random{index:02d}", "genotype": genotype, "variant": variant, "sample": index,
         "dataset": "digits", "seed": 0, "preset": "design", "overrides": {}}
        for variant in ("vanilla", "directional_weight_sharing") for index, genotype in enumerate(drawn)
    ]
    write_sweep(tmp_path / "random", results.RANDOM_KIND, planned, 1767330000.0)
    args = design_network.parse_args(
        ["--preset", "design", "--cells", "gru", "--random", str(tmp_path / "random"), "--storage", str(tmp_path)]
    )
    sweep = design_network.plan(args)
    cells = {cell.name: cell for cell in sweep.space.cells}
    assert sorted(cells) == ["gru", "random0_directional_weight_sharing", "random0_vanilla",
                             "random1_directional_weight_sharing", "random1_vanilla"]
    assert cells["random1_vanilla"].genotype == drawn[1] and cells["random1_vanilla"].variant == "vanilla"
    assert sweep.name == "design_digits_design_params_n20_seed0" and sweep.kind == results.DESIGN_KIND


def test_a_network_sampled_twice_is_one_point_of_the_front():
    """The sampler may propose a network again: the same network and seed count once, on the
    front and in the mean over seeds."""
    from dartsrenet.design_results import Outcome, distinct_runs, front_of

    def outcome(network, seed, params, accuracy, trial):
        return Outcome(model="lstm", genotype=None, variant=None, network=network, lr=0.05, seed=seed, params=params,
                       latency_ms=None, val_accuracy=accuracy, test_accuracy=accuracy, trial=trial)

    first, again = outcome("2x32", 0, 1000, 0.5, "a"), outcome("2x32", 0, 1000, 0.5, "b")
    other_seed, larger = outcome("2x32", 1, 1000, 0.6, "c"), outcome("2x64", 0, 4000, 0.9, "d")
    assert [o.trial for o in front_of([first, again, larger], "params")] == ["a", "d"]
    assert [o.trial for o in distinct_runs([first, again, other_seed])] == ["a", "c"]

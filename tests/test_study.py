"""``sweeps/study.py`` and ``sweeps/stages.py``: the study's plan (no Ray: the whole study
runs for an hour; its stages are the sweeps tested in test_sweeps.py and
test_random_baseline.py) and calling sweeps without command lines."""

from __future__ import annotations

import pytest

pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[sweeps]')")

from sweeps import evaluate_genotypes, random_baseline, search_all_variants, stages, study
from sweeps.errors import EXIT_USAGE


def test_the_study_plans_every_arm(tmp_path):
    args = study.parse_args([])
    first, second = study.plan_searches(args, tmp_path)
    assert len(first.plan.planned) == 6 and {entry["dataset"] for entry in first.plan.planned} == {"fashion_mnist"}
    assert [entry["variant"] for entry in second.plan.planned] == ["vanilla", "vanilla"]
    assert all(entry["overrides"]["arch_order"] == 2 for entry in second.plan.planned)
    assert "arch_order" not in first.plan.planned[0]["overrides"]
    evaluation = study.plan_evaluation(args, tmp_path, "paper", order2=False)
    assert len(evaluation.plan.planned) == 5 * 3  # 3 DARTS cells + GRU + LSTM, 3 seeds
    assert len(study.plan_evaluation(args, tmp_path, "paper", order2=True).plan.planned) == 3
    control = study.plan_random(args, tmp_path)
    assert len(control.plan.planned) == 8 * 3 and {entry["seed"] for entry in control.plan.planned} == {0}
    # Every arm trains with the same config: the study preset's, on Fashion-MNIST.
    assert control.plan.details["configs"] == evaluation.plan.details["configs"]
    assert evaluation.plan.details["configs"]["fashion_mnist"]["limit"] == 5000


def test_a_bad_override_stops_the_study_before_ray(tmp_path, capsys):
    assert study.main(["--out", str(tmp_path / "study"), "--set", "colour=red"]) == EXIT_USAGE
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("error:") and "colour" in errors[0]
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize("script", [search_all_variants, evaluate_genotypes, random_baseline])
def test_arguments_are_what_the_command_line_gives(script):
    values = {"num_seeds": 2, "preset": "demo", "overrides": ["epochs=1"], "storage": "/tmp/x"}
    if script is random_baseline:
        values["num_samples"] = 3
    parsed = script.parse_args(
        ["--num-seeds", "2", "--preset", "demo", "--set", "epochs=1", "--storage", "/tmp/x"]
        + (["--num-samples", "3"] if script is random_baseline else [])
    )
    assert vars(stages.arguments(script, **values)) == vars(parsed)
    with pytest.raises(TypeError, match="no option with destination num_seed;"):
        stages.arguments(script, num_seed=2)


def test_defaults_are_not_shared_between_calls():
    first = stages.arguments(search_all_variants)
    first.overrides.append("epochs=1")
    assert stages.arguments(search_all_variants).overrides == []

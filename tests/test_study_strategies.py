"""``sweeps/study.py``'s strategy arms: planned beside DARTS against the same random control (no Ray run)."""

from __future__ import annotations

import pytest

pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[sweeps]')")

from sweeps import study
from sweeps.errors import EXIT_USAGE


def test_every_strategy_gets_a_vanilla_search_and_an_evaluation(tmp_path):
    args = study.parse_args([])
    assert args.strategies == list(study.STRATEGIES)
    for strategy in study.STRATEGIES:
        search = study.plan_strategy_search(args, tmp_path, strategy)
        assert [entry["variant"] for entry in search.plan.planned] == ["vanilla", "vanilla"]
        assert all(entry["overrides"]["strategy"] == strategy for entry in search.plan.planned)
        assert search.plan.name == f"search_{strategy}"
        evaluation = study.plan_strategy_evaluation(args, tmp_path, strategy, "paper")
        assert len(evaluation.plan.planned) == 3 and evaluation.plan.name == f"eval_{strategy}"
    rsws = study.plan_strategy_search(args, tmp_path, "rsws").plan.planned[0]["overrides"]
    assert rsws["rsws_candidates"] == 50 and rsws["selection_batches"] == 8
    # the strategies' cells train exactly as the random control's
    control = study.plan_random(args, tmp_path)
    evaluation = study.plan_strategy_evaluation(args, tmp_path, "gdas", "paper")
    assert control.plan.details["configs"] == evaluation.plan.details["configs"]
    assert study.parse_args(["--strategies", ""]).strategies == []


def test_an_unknown_strategy_stops_the_study_before_ray(tmp_path, capsys):
    assert study.main(["--out", str(tmp_path / "study"), "--strategies", "gdas,enas"]) == EXIT_USAGE
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and "enas" in errors[0] and "sdarts_rs" in errors[0]
    assert not (tmp_path / "study").exists()

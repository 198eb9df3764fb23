"""Every search strategy end to end on tiny digits: run folder, genotype, resume, selection on a run folder."""

from __future__ import annotations

import json

import pytest

from dartsrenet.cli import main
from dartsrenet.config import SEARCH_STRATEGIES, ConfigError, resolve_config
from dartsrenet.genotypes import Genotype
from dartsrenet.search import run_search
from dartsrenet.strategies.selection import score_on_run

TINY = {"channels": 4, "epochs": 2, "limit": 64, "batch_size": 16, "device": "cpu"}
STRATEGY_OPTIONS = {
    "rsws": {"rsws_candidates": 3, "selection_batches": 1},
    "darts_pt": {"selection_batches": 1, "pt_finetune_steps": 1},
}


class StopAfter(Exception):
    pass


def tiny_config(tmp_path, strategy, name=None, **overrides):
    values = {**TINY, **STRATEGY_OPTIONS.get(strategy, {}), "strategy": strategy, "out": str(tmp_path / (name or strategy))}
    return resolve_config("search", "demo", {**values, **overrides})


def metrics(config):
    lines = (json.loads(line) for line in open(f"{config.out}/metrics.jsonl"))
    return [{k: v for k, v in m.items() if k != "epoch_time_s"} for m in lines]


@pytest.mark.parametrize("strategy", ["sdarts_rs", "gdas", "rsws"])  # darts: test_engine; darts_pt: below
def test_each_strategy_searches_resumes_and_writes_a_genotype(tmp_path, strategy):
    full = tiny_config(tmp_path, strategy, "full")
    summary = run_search(full, log=None)
    genotype = Genotype.load(f"{full.out}/genotype.json")
    assert summary["genotype_string"] == genotype.to_string()
    assert summary["strategy"] == strategy
    assert json.loads(open(f"{full.out}/config.json").read())["strategy"] == strategy
    if strategy == "rsws":
        selection = json.loads(open(f"{full.out}/selection.json").read())
        assert selection["method"] == strategy and selection["genotype"] == genotype.to_string()
        assert len(selection["ranking"]) == 3 and selection["ranking"][0]["genotype"] == genotype.to_string()
        # ``select`` on the finished folder repeats the selection (same weights, same seeded draws)
        # into its own files, leaving the run's files alone
        before = {path.name: path.read_bytes() for path in (tmp_path / "full").iterdir() if path.is_file()}
        assert main(["select", "--run", full.out, "--method", "rsws", "--set", "rsws_candidates=3",
                     "--set", "selection_batches=1"]) == 0
        again = json.loads((tmp_path / "full" / "selection-rsws.json").read_text())
        assert again["ranking"] == selection["ranking"] and again["run_strategy"] == "rsws"
        assert Genotype.load(tmp_path / "full" / "genotype-rsws.json") == genotype
        after = {path.name: path.read_bytes() for path in (tmp_path / "full").iterdir() if path.is_file()}
        assert {name: after[name] for name in before} == before
        # scoring named genotypes on the run's supernet (the study's Kendall τ) gives the ranking's numbers
        scores = score_on_run(full.out, {"best": genotype, "last": Genotype.from_string(selection["ranking"][-1]["genotype"])},
                              batches=1)
        assert scores == {"best": selection["ranking"][0]["accuracy"], "last": selection["ranking"][-1]["accuracy"]}
    if strategy == "gdas":
        assert [m["gdas_tau"] for m in metrics(full)] == [10.0, 0.1]
    if strategy == "sdarts_rs":
        assert [m["sdarts_epsilon"] for m in metrics(full)] == pytest.approx([0.03, 0.165])

    interrupted = tiny_config(tmp_path, strategy, "interrupted")

    def stop(metrics, checkpoint):
        if metrics["epoch"] == 1:
            raise StopAfter

    with pytest.raises(StopAfter):
        run_search(interrupted, report=stop, log=None)
    resumed = run_search(interrupted, log=None)
    assert metrics(interrupted) == metrics(full)
    assert resumed["genotype_string"] == summary["genotype_string"]


def test_darts_strategy_is_the_plain_search(tmp_path):
    """strategy=darts given or not: the same run, bit for bit."""
    plain = resolve_config("search", "demo", {**TINY, "out": str(tmp_path / "plain")})
    named = tiny_config(tmp_path, "darts", "named")
    run_search(plain, log=None)
    run_search(named, log=None)
    assert metrics(plain) == metrics(named)
    assert open(f"{plain.out}/alpha_history.json").read() == open(f"{named.out}/alpha_history.json").read()


def test_a_bad_strategy_is_one_error_line_listing_the_valid_ones(tmp_path, capsys):
    code = main(["search", "--preset", "demo", "--out", str(tmp_path / "bad"), "--set", "strategy=enas"])
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1
    assert "strategy" in error and all(name in error for name in SEARCH_STRATEGIES)
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"strategy": "darts", "gdas_tau_max": 5}, "gdas_tau_max is ignored by strategy='darts'"),
        ({"strategy": "gdas", "rsws_candidates": 5}, "rsws_candidates is ignored by strategy='gdas'"),
        ({"strategy": "rsws", "arch_order": 2}, "arch_order=2 does not apply"),
        ({"strategy": "gdas", "gdas_tau_min": 20}, "gdas_tau_min=20.0 is out of range"),
    ],
)
def test_strategy_fields_are_checked(overrides, message):
    with pytest.raises(ConfigError, match=message):
        resolve_config("search", "demo", overrides)


def test_darts_pt_search_selects_by_perturbation(tmp_path, capsys):
    config = tiny_config(tmp_path, "darts_pt", epochs=1)
    summary = run_search(config, log=None)
    selection = json.loads((tmp_path / "darts_pt" / "selection.json").read_text())
    assert selection["genotype"] == summary["genotype_string"] == Genotype.load(f"{config.out}/genotype.json").to_string()
    assert sorted(selection["order"]) == list(range(1, 9)) and len(selection["decisions"]) == 8
    for decision in selection["decisions"]:  # every candidate of the node was scored, the chosen one scored best
        node = decision["node"]
        assert len(decision["scores"]) == 4 * node
        best = max(decision["scores"], key=lambda s: (s["accuracy_drop"], s["loss_rise"]))
        assert decision["chosen"] == [best["activation"], best["predecessor"]]
    assert selection["fine_tune_steps"] == 1 and summary["selection"] == "darts_pt"
    assert summary["supernet_epoch_genotype_string"] == metrics(config)[0]["genotype"]
    # bad requests on a run folder: one error line, before any work
    assert main(["select", "--run", config.out, "--method", "darts_pt", "--set", "lr=3"]) == 2
    assert "selection override" in capsys.readouterr().err
    assert main(["select", "--run", str(tmp_path / "nothing"), "--method", "darts_pt"]) == 2
    assert "no search run with a checkpoint" in capsys.readouterr().err

"""The tables' comparisons (analysis/control.py, analysis/comparisons.py) on fixed trial rows."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from analysis.comparisons import (
    baseline_comparisons,
    display_comparisons,
    kendall_table,
    strategy_comparisons,
)
from analysis.control import control_table, display_control_table
from analysis.results import FINISHED, config_column


def trials(rows):
    """Trial rows (model, variant, seed, test accuracy as a fraction) as load_trials gives them."""
    return pd.DataFrame([
        {"status": FINISHED, config_column("dataset"): "digits", config_column("model"): model,
         config_column("variant"): variant, config_column("seed"): seed, "test_accuracy": accuracy}
        for model, variant, seed, accuracy in rows
    ])


RANDOM = trials([(f"vanilla_random{k:02d}", "vanilla", 0, value) for k, value in enumerate([0.50, 0.52, 0.54, 0.56])])


def test_control_table_shows_the_difference_to_random_beside_the_rank():
    """DARTS seeds (60, 62) % against random (50, 52, 54, 56) %: difference 61 − 53 = 8 pp; all
    C(6, 2) = 15 splits enumerated, only the observed one reaches |8| (the next, {50, 52}, gives 7): p = 1/15."""
    evaluation = trials([("vanilla", None, 0, 0.60), ("vanilla", None, 1, 0.62)])
    table = control_table(RANDOM, evaluation, None, {"random": {"cpu": 1}})
    row = table.iloc[0]
    assert row["darts_rank"] == 1 and row["vs_random_difference"] == pytest.approx(8.0)
    assert row["vs_random_p"] == pytest.approx(1 / 15) and row["vs_random_p_exact"]
    assert 0 < row["vs_random_low"] <= 8 <= row["vs_random_high"]
    shown = display_control_table(table).iloc[0]
    assert shown["DARTS − random [pp]"].startswith("+8.00 [") and "p = 0.067" in shown["DARTS − random [pp]"]
    close = control_table(RANDOM, trials([("vanilla", None, 0, 0.51), ("vanilla", None, 1, 0.57)]), None, {})
    assert "not distinguishable" in display_control_table(close).iloc[0]["DARTS − random [pp]"]


def test_searched_cells_against_the_baselines_paired_by_seed():
    """vanilla − gru per seed: (+1, +3) pp → mean +2, interval [+1, +3], 4 sign flips: p = 2/4."""
    evaluation = trials([
        ("vanilla", None, 0, 0.61), ("vanilla", None, 1, 0.63),
        ("gru", None, 0, 0.60), ("gru", None, 1, 0.60),
        ("lstm", None, 0, 0.70), ("lstm", None, 1, 0.60),
    ])
    table = baseline_comparisons(evaluation)
    assert list(zip(table["a"], table["b"])) == [("vanilla", "gru"), ("vanilla", "lstm")]
    gru, lstm = table.iloc[0], table.iloc[1]
    assert gru["paired"] and gru["difference"] == pytest.approx(2.0)
    assert (gru["low"], gru["high"]) == pytest.approx((1.0, 3.0)) and gru["p_value"] == pytest.approx(0.5)
    # gru: the interval excludes 0, but 2 pairs cannot give p below 2/4; lstm: (−9, +3) straddles 0
    assert not gru["distinguishable"] and not lstm["distinguishable"]
    shown = display_comparisons(table)
    assert all("not distinguishable" in text for text in shown["A − B [pp], 95 % CI, p"])
    assert "(paired, n=2)" in shown.iloc[0]["A − B [pp], 95 % CI, p"]


def test_strategies_against_each_other():
    darts = trials([("vanilla", None, 0, 0.60), ("vanilla", None, 1, 0.62), ("gru", None, 0, 0.7)])
    gdas = trials([("vanilla", None, 0, 0.58), ("vanilla", None, 1, 0.61)])
    table = strategy_comparisons({"darts": darts, "gdas": gdas})
    assert list(table["a"]) == ["darts/vanilla"] and list(table["b"]) == ["gdas/vanilla"]
    assert table.iloc[0]["difference"] == pytest.approx(1.5) and table.iloc[0]["paired"]


def test_kendall_tau_of_the_supernet_against_the_random_control():
    """Supernet scores in the random cells' order except the last two swapped: τ = (5 − 1)/6."""
    scores = {"rsws": [{"model": f"vanilla_random{k:02d}", "accuracy": value} for k, value in
                       enumerate([0.1, 0.2, 0.4, 0.3])],
              "gdas": [{"model": "vanilla_random00", "accuracy": 0.3}]}
    table = kendall_table(scores, RANDOM, "vanilla", "digits")
    rsws, gdas = table.iloc[0], table.iloc[1]
    assert rsws["k"] == 4 and rsws["kendall_tau"] == pytest.approx(2 / 3)
    assert gdas["k"] == 1 and math.isnan(gdas["kendall_tau"])

"""analysis.significance against values computed by hand on fixed numbers."""

from __future__ import annotations

import math

import pytest

from analysis.significance import (
    bootstrap_interval,
    compare,
    compare_by_seed,
    format_comparison,
    kendall_tau,
    permutation_p_value,
)


def test_paired_permutation_enumerates_the_sign_flips():
    """d = a − b = (1, 2, 3): of the 8 sign flips only (+,+,+) and (−,−,−) reach |mean| = 2: p = 2/8."""
    p_value, exact = permutation_p_value([2, 4, 6], [1, 2, 3], paired=True)
    assert exact and p_value == pytest.approx(0.25)


def test_unpaired_permutation_enumerates_the_splits():
    """{1, 2, 3, 4} split 2 + 2: differences −2, −1, 0, 0, 1, 2; |·| ≥ 2 in 2 of 6: p = 1/3."""
    p_value, exact = permutation_p_value([3, 4], [1, 2], paired=False)
    assert exact and p_value == pytest.approx(1 / 3)


def test_a_large_permutation_test_is_monte_carlo_and_near_the_truth():
    """20 + 20 values: C(40, 20) splits, too many; two clearly separated arms give p ≈ 1/(1 + R)."""
    a, b = [10.0 + 0.1 * k for k in range(20)], [0.1 * k for k in range(20)]
    p_value, exact = permutation_p_value(a, b, paired=False)
    assert not exact and p_value == pytest.approx(1 / 10_001)
    same, _ = permutation_p_value(a, a, paired=False)
    assert same == 1.0


def test_bootstrap_interval_of_two_paired_differences():
    """d = (1, 3): a resampled mean is 1, 2 or 3 with probability 1/4, 1/2, 1/4, so the 2.5 %
    and 97.5 % quantiles of 10,000 resamples are 1 and 3."""
    assert bootstrap_interval([2, 5], [1, 2], paired=True) == (1.0, 3.0)


def test_bootstrap_interval_unpaired_constant_arms_and_reproducibility():
    assert bootstrap_interval([1, 1, 1], [0, 0], paired=False) == (1.0, 1.0)
    a, b = [70.1, 71.3, 69.8], [68.0, 72.5, 66.1, 70.0]
    assert bootstrap_interval(a, b, paired=False) == bootstrap_interval(a, b, paired=False)  # fixed seed
    low, high = bootstrap_interval(a, b, paired=False)
    assert low < sum(a) / 3 - sum(b) / 4 < high


def test_compare_flags_intervals_that_contain_zero():
    one_sign = compare([2, 4, 6], [1, 2, 3], paired=True)  # d = (1, 2, 3): the interval is [1, 3] ...
    assert one_sign.difference == pytest.approx(2.0) and (one_sign.low, one_sign.high) == (1.0, 3.0)
    assert one_sign.p_value == pytest.approx(0.25) and not one_sign.distinguishable  # ... but 3 sign flips: p ≥ 2/8
    assert format_comparison(one_sign) == "+2.00 [+1.00, +3.00], p = 0.250 (not distinguishable)"
    clear = compare([2, 4, 6, 8, 10, 12], [1, 2, 3, 4, 5, 6], paired=True)  # d = 1..6, all positive
    assert clear.p_value == pytest.approx(2 / 64) and clear.low > 0 and clear.distinguishable
    assert format_comparison(clear).endswith("p = 0.031")
    unclear = compare([1, 3], [2, 2], paired=True)  # d = (−1, 1)
    assert unclear.low == -1.0 and unclear.high == 1.0 and not unclear.distinguishable
    assert format_comparison(unclear).endswith("(not distinguishable)")
    lonely = compare([70.0], [60.0, 65.0])
    assert lonely.difference == pytest.approx(7.5) and math.isnan(lonely.low) and not lonely.distinguishable


def test_compare_by_seed_pairs_the_shared_seeds():
    paired = compare_by_seed({0: 2.0, 1: 5.0, 7: 9.0}, {0: 1.0, 1: 2.0, 3: 0.0})
    assert paired.paired and paired.n_a == 2 and (paired.low, paired.high) == (1.0, 3.0)
    unpaired = compare_by_seed({0: 3.0, 1: 4.0}, {5: 1.0, 6: 2.0})
    assert not unpaired.paired and unpaired.p_value == pytest.approx(1 / 3)


def test_kendall_tau_by_hand():
    """(1, 2, 3, 4) against (1, 3, 2, 4): 5 concordant pairs, 1 discordant: τ = (5 − 1)/6."""
    tau, _ = kendall_tau([1, 2, 3, 4], [1, 3, 2, 4])
    assert tau == pytest.approx(2 / 3)
    assert kendall_tau([1, 2, 3], [3, 2, 1])[0] == pytest.approx(-1.0)
    assert all(math.isnan(v) for v in kendall_tau([1, 2], [2, 1]))
    with pytest.raises(ValueError, match="finite"):
        compare([1.0, float("nan")], [1.0, 2.0])

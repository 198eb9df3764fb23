"""Is a difference between two arms real? Bootstrap intervals, permutation tests, Kendall τ.

Every comparison the tables make (a searched cell against random cells, against the GRU and
LSTM baselines, one search strategy against another) is the difference of two means,
mean(a) − mean(b), in accuracy points, with

* a 95 % bootstrap percentile interval: :data:`BOOTSTRAP_RESAMPLES` resamples from a
  generator seeded with :data:`BOOTSTRAP_SEED`, so a table is the same every time it is
  made. Paired arms (the same seeds on both sides) resample the per-seed differences;
  unpaired arms resample each arm on its own;
* a two-sided permutation-test p-value for "no difference": the share of rearrangements
  whose |difference of means| is at least the observed one — sign flips of the per-seed
  differences when paired, reassignments of the pooled values to the two arms when not.
  All rearrangements are enumerated when there are at most :data:`EXACT_LIMIT` (then the
  p-value is exact); otherwise :data:`BOOTSTRAP_RESAMPLES` random ones give
  (1 + hits)/(1 + resamples).

The arms are *not distinguishable* when the interval contains 0 or the p-value is not below
:data:`SIGNIFICANCE` (5 %). Both are needed: a percentile interval of 3 paired differences
excludes 0 whenever the three share a sign, while their sign-flip test cannot go below
2/2³ = 0.25 (n pairs: 2/2ⁿ at the least); 6 pairs are the fewest that can reach 5 %. With a
handful of seeds most differences are not distinguishable: that is the honest answer, not a
defect.

For weight-sharing searches, :func:`kendall_tau` measures how well the supernet's ranking
of K genotypes agrees with their stand-alone accuracy (Sciuto et al. 2019 found it weak in
the recurrent search space).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
SIGNIFICANCE = 0.05
"""A difference is distinguishable only with a p-value below this (and an interval without 0)."""
EXACT_LIMIT = 20_000
"""Rearrangements up to which a permutation test enumerates them all (exact p-value)."""
TOLERANCE = 1e-9
"""|difference| within this of the observed one counts as 'at least as large' (float rounding)."""


@dataclass(frozen=True)
class Comparison:
    """mean(a) − mean(b) with its 95 % bootstrap interval and permutation p-value.

    Attributes:
        difference: mean(a) − mean(b).
        low, high: the interval's ends.
        p_value: two-sided permutation p-value.
        exact: whether the p-value enumerated every rearrangement.
        paired: whether the arms were paired by seed.
        n_a, n_b: values in each arm (pairs, when paired).
    """

    difference: float
    low: float
    high: float
    p_value: float
    exact: bool
    paired: bool
    n_a: int
    n_b: int

    @property
    def distinguishable(self) -> bool:
        """False when the interval contains 0, the p-value is not below :data:`SIGNIFICANCE`, or
        there is no interval."""
        if math.isnan(self.low) or self.low <= 0.0 <= self.high:
            return False
        return self.p_value < SIGNIFICANCE


def _values(values: Sequence[float], name: str) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or not np.isfinite(array).all():
        raise ValueError(f"{name} must be a list of finite numbers, got {values!r}")
    return array


def _arms(a: Sequence[float], b: Sequence[float], paired: bool) -> tuple[np.ndarray, np.ndarray]:
    """Both arms as finite 1-D arrays; paired arms must be as long as each other."""
    a_values, b_values = _values(a, "a"), _values(b, "b")
    if paired and len(a_values) != len(b_values):
        raise ValueError(f"paired arms need as many values each, got {len(a_values)} and {len(b_values)}")
    return a_values, b_values


def bootstrap_interval(
    a: Sequence[float], b: Sequence[float], paired: bool, resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED, confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """The percentile bootstrap interval of mean(a) − mean(b) (see the module docstring)."""
    a, b = _arms(a, b, paired)
    rng = np.random.default_rng(seed)
    if paired:
        differences = a - b
        means = differences[rng.integers(0, len(differences), (resamples, len(differences)))].mean(axis=1)
    else:
        means = (a[rng.integers(0, len(a), (resamples, len(a)))].mean(axis=1)
                 - b[rng.integers(0, len(b), (resamples, len(b)))].mean(axis=1))
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


def permutation_p_value(
    a: Sequence[float], b: Sequence[float], paired: bool, resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED, exact_limit: int = EXACT_LIMIT,
) -> tuple[float, bool]:
    """(two-sided p-value, exact) of "mean(a) = mean(b)" (see the module docstring)."""
    a, b = _arms(a, b, paired)
    rng = np.random.default_rng(seed)
    if paired:
        differences = a - b
        observed = abs(differences.mean())
        if 2 ** len(differences) <= exact_limit:
            signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(differences))))
        else:
            signs = rng.choice((1.0, -1.0), size=(resamples, len(differences)))
        statistics = np.abs((signs * differences).mean(axis=1))
        exact = 2 ** len(differences) <= exact_limit
    else:
        pooled = np.concatenate([a, b])
        total = math.comb(len(pooled), len(a))
        observed = abs(a.mean() - b.mean())
        exact = total <= exact_limit
        if exact:
            groups = np.array([list(group) for group in itertools.combinations(range(len(pooled)), len(a))])
        else:
            groups = np.argsort(rng.random((resamples, len(pooled))), axis=1)[:, : len(a)]
        in_a = np.zeros((len(groups), len(pooled)), dtype=bool)
        np.put_along_axis(in_a, groups, True, axis=1)
        sum_a = (in_a * pooled).sum(axis=1)
        statistics = np.abs(sum_a / len(a) - (pooled.sum() - sum_a) / len(b))
    hits = int((statistics >= observed - TOLERANCE).sum())
    if exact:
        return hits / len(statistics), True
    return (1 + hits) / (1 + len(statistics)), False


def compare(a: Sequence[float], b: Sequence[float], paired: bool = False) -> Comparison:
    """mean(a) − mean(b) with interval and p-value; NaN interval and p-value when an arm (or
    the pairs) has fewer than 2 values: no spread can be estimated from one."""
    a, b = _values(a, "a"), _values(b, "b")
    difference = float(a.mean() - b.mean()) if len(a) and len(b) else math.nan
    if min(len(a), len(b)) < 2:
        return Comparison(difference, math.nan, math.nan, math.nan, False, paired, len(a), len(b))
    low, high = bootstrap_interval(a, b, paired)
    p_value, exact = permutation_p_value(a, b, paired)
    return Comparison(difference, low, high, p_value, exact, paired, len(a), len(b))


def compare_by_seed(a: dict[int, float], b: dict[int, float]) -> Comparison:
    """Paired on the seeds both arms have when they share at least 2, else unpaired over all values."""
    common = sorted(set(a) & set(b))
    if len(common) >= 2:
        return compare([a[seed] for seed in common], [b[seed] for seed in common], paired=True)
    return compare(list(a.values()), list(b.values()), paired=False)


def kendall_tau(supernet_scores: Sequence[float], standalone: Sequence[float]) -> tuple[float, float]:
    """(Kendall τ-b, two-sided p-value) between the supernet's scores of K genotypes and their
    stand-alone accuracies (scipy's ``kendalltau``; NaN for fewer than 3 genotypes)."""
    x, y = _values(supernet_scores, "supernet scores"), _values(standalone, "stand-alone accuracies")
    if len(x) != len(y):
        raise ValueError(f"need one stand-alone accuracy per supernet score, got {len(x)} and {len(y)}")
    if len(x) < 3:
        return math.nan, math.nan
    result = stats.kendalltau(x, y)
    return float(result.statistic), float(result.pvalue)


def format_comparison(comparison: Comparison, decimals: int = 2) -> str:
    """``+1.23 [−0.40, +2.90], p = 0.31 (not distinguishable)``; ``—`` without an interval."""
    if math.isnan(comparison.difference):
        return "—"
    difference = f"{comparison.difference:+.{decimals}f}"
    if math.isnan(comparison.low):
        return f"{difference} (n too small for an interval)"
    verdict = "" if comparison.distinguishable else " (not distinguishable)"
    p_value = f"p = {comparison.p_value:.3f}" if comparison.p_value >= 0.001 else "p < 0.001"
    return f"{difference} [{comparison.low:+.{decimals}f}, {comparison.high:+.{decimals}f}], {p_value}{verdict}"

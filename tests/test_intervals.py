"""The one interval helper of the verdicts (metrics.intervals) against known answers."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from scipy import stats

from emovae_utils import metrics
from emovae_utils.metrics import intervals
from emovae_utils.metrics.intervals import difference_interval, mean_interval, share_interval


@pytest.mark.parametrize("k, n, low, high", [(0, 3, 0.0, 0.7076), (3, 3, 0.2924, 1.0), (2, 6, 0.0433, 0.7772),
                                             (0, 6, 0.0, 0.4593), (5, 10, 0.1871, 0.8129)])
def test_clopper_pearson_exact_binomial_limits(k, n, low, high):
    ci = share_interval(k, n)
    assert ci.estimate == k / n and ci.n == n
    assert ci.low == pytest.approx(low, abs=1e-4) and ci.high == pytest.approx(high, abs=1e-4)
    # the defining property: the tail probabilities at the limits are 2.5 %
    if k > 0:
        assert stats.binom.sf(k - 1, n, ci.low) == pytest.approx(0.025, abs=1e-6)
    if k < n:
        assert stats.binom.cdf(k, n, ci.high) == pytest.approx(0.025, abs=1e-6)
    with pytest.raises(ValueError):
        share_interval(4, 3)


def test_t_interval_of_a_known_sample_matches_scipy():
    x = np.array([2.1, 2.5, 1.9, 2.8, 2.2, 2.6])
    ci = mean_interval(x)
    low, high = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert (ci.estimate, ci.n) == (pytest.approx(x.mean()), 6)
    assert ci.low == pytest.approx(low) and ci.high == pytest.approx(high)
    assert mean_interval(x, ci=0.5).high < ci.high
    one = mean_interval([3.0])
    assert one.estimate == 3.0 and np.isnan(one.low) and np.isnan(one.high)
    assert mean_interval([2.0, 2.0, 2.0])[:3] == (2.0, 2.0, 2.0)


def test_seed_means_carry_the_actor_spread():
    rng = np.random.default_rng(0)
    table = 0.25 + 0.01 * rng.standard_normal((3, 1)) + 0.08 * rng.standard_normal((3, 24))
    crossed, nested = mean_interval(table), mean_interval(table, design="nested")
    seeds_only = mean_interval(table.mean(axis=1))
    assert crossed.estimate == pytest.approx(table.mean()) and crossed.n == 3
    assert nested[:3] == pytest.approx(seeds_only[:3])  # nested: the seed means hold the actors' spread
    assert crossed.high - crossed.low > seeds_only.high - seeds_only.low  # crossed: shared actors added
    with_nan = table.copy()
    with_nan[0, 0] = np.nan
    assert np.isfinite(mean_interval(with_nan).low)


def test_difference_paired_only_where_real_else_welch():
    a, b = np.array([0.30, 0.35, 0.28]), np.array([0.25, 0.27, 0.24, 0.26])
    welch = difference_interval(a, b)
    res = stats.ttest_ind(a, b, equal_var=False)
    low, high = res.confidence_interval(0.95)
    assert welch.estimate == pytest.approx(a.mean() - b.mean()) and welch.n == 3
    assert welch.low == pytest.approx(low) and welch.high == pytest.approx(high)
    paired = difference_interval(a, b[:3], paired=True)
    assert paired[:3] == pytest.approx(mean_interval(a - b[:3])[:3])
    copies = difference_interval(a, a)
    assert copies.estimate == 0.0 and copies.low < 0.0 < copies.high
    assert np.isnan(difference_interval([0.3], b).low)  # one seed: no interval


def test_exported_and_docstrings():
    for name in intervals.__all__:
        assert getattr(metrics, name) is getattr(intervals, name)
    assert doctest.testmod(intervals).failed == 0

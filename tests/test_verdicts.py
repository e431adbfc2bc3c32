"""Decision rules for the claims: intervals, Holm, permutation p-values, verdicts.csv."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest

from emovae_utils import metrics
from emovae_utils.metrics import information, verdicts
from emovae_utils.metrics.verdicts import (
    VERDICT_COLUMNS, bias_corrected_nmi, bootstrap_ci, count_verdict, hierarchical_bootstrap_ci, holm,
    holm_adjusted, interval_verdict, difference_verdict, permutation_pvalues, verdict_row, write_verdicts,
)


def test_bootstrap_ci_is_the_mean_with_an_interval_that_covers_it():
    x = np.array([0.19, 0.24, 0.21, 0.22, 0.20, np.nan])
    ci = bootstrap_ci(x)
    assert ci.estimate == pytest.approx(0.212) and ci.n == 5 and ci.low < ci.estimate < ci.high
    assert 0.19 <= ci.low and ci.high <= 0.24  # a mean never leaves the range of the values
    y = np.random.default_rng(0).normal(size=12)
    assert bootstrap_ci(x) == ci and bootstrap_ci(y, random_state=1) != bootstrap_ci(y)  # seeded
    assert bootstrap_ci([3.0]) == (3.0, 3.0, 3.0, 1)
    assert bootstrap_ci(x, statistic=np.median).estimate == pytest.approx(0.21)
    assert bootstrap_ci(x, ci=0.5).high - bootstrap_ci(x, ci=0.5).low < ci.high - ci.low
    with pytest.raises(ValueError):
        bootstrap_ci([np.nan])
    with pytest.raises(ValueError):
        bootstrap_ci([1.0, 2.0], ci=95)


def test_bootstrap_ci_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(0)
    hits = [bootstrap_ci(rng.normal(1.0, 2.0, 30), n_boot=2000, random_state=i) for i in range(200)]
    coverage = np.mean([c.low <= 1.0 <= c.high for c in hits])
    assert 0.88 <= coverage <= 0.99, coverage


def test_hierarchical_bootstrap_resamples_both_levels():
    rng = np.random.default_rng(1)
    mu, covered, widths = 0.25, [], []
    for _ in range(100):  # 5 seeds x 24 actors, both random: seed effect, actor effect, noise
        table = (mu + 0.02 * rng.standard_normal((5, 1)) + 0.06 * rng.standard_normal((1, 24))
                 + 0.03 * rng.standard_normal((5, 24)))
        ci = hierarchical_bootstrap_ci(table, n_boot=1000)
        seeds_only = bootstrap_ci(table.mean(axis=1), n_boot=1000)
        covered.append(ci.low <= mu <= ci.high)
        widths.append((ci.high - ci.low) / (seeds_only.high - seeds_only.low))
    assert np.mean(covered) >= 0.85, np.mean(covered)
    assert np.median(widths) > 1.5  # the actors' spread is in the interval, not only the seeds'
    table = pd.DataFrame(rng.normal(size=(3, 5)), index=[0, 1, 2], columns=[f"fold{i}" for i in range(5)])
    table.iloc[0, 0] = np.nan
    ci = hierarchical_bootstrap_ci(table, n_boot=500)
    assert ci.estimate == pytest.approx(np.nanmean(table.to_numpy())) and ci.n == 3 and ci.low < ci.high
    nested = hierarchical_bootstrap_ci(table, n_boot=500, design="nested")
    assert nested.estimate == ci.estimate and nested != ci
    with pytest.raises(ValueError, match="design"):
        hierarchical_bootstrap_ci(table, design="both")
    with pytest.raises(ValueError, match="2-D"):
        hierarchical_bootstrap_ci(np.ones(3))


def test_interval_verdict():
    assert interval_verdict(0.1, 0.2) == "holds"
    assert interval_verdict(-0.1, 0.2) == "inconclusive"
    assert interval_verdict(-0.2, -0.1) == "does not hold"
    assert interval_verdict(-0.2, 0.0) == "does not hold"  # on the threshold is not above it
    assert interval_verdict(-0.2, -0.1, direction="less") == "holds"
    assert interval_verdict(0.1, 0.2, direction="less") == "does not hold"
    assert interval_verdict(np.nan, 1.0) == "inconclusive"


def test_difference_verdict_spanning_zero_is_inconclusive():
    rng = np.random.default_rng(2)
    a = rng.normal(0.25, 0.03, 5)
    out = difference_verdict(a, a + rng.normal(0.0, 0.03, 5))
    assert out["ci_low"] < 0 < out["ci_high"] and out["verdict"] == "inconclusive"
    assert set(out) == set(VERDICT_COLUMNS) - {"claim"} and out["n_runs"] == 5
    # a clear difference, either way, and the claim's direction
    hi, lo = np.array([0.30, 0.32, 0.31, 0.33, 0.30]), np.array([0.20, 0.21, 0.20, 0.22, 0.19])
    assert difference_verdict(hi, lo)["verdict"] == "holds"
    assert difference_verdict(lo, hi)["verdict"] == "does not hold"
    assert difference_verdict(lo, hi, claim="less")["verdict"] == "holds"
    assert difference_verdict(hi, lo)["statistic"] == pytest.approx(np.mean(hi - lo))
    # pairing only where it is real: a shared per-run offset cancels when paired, not across unrelated models
    offsets = np.array([0.0, 0.3, -0.2, 0.5, -0.4])
    assert difference_verdict(offsets + 0.02, offsets, paired=True)["verdict"] == "holds"
    assert difference_verdict(offsets + 0.02, offsets)["verdict"] == "inconclusive"
    assert "Welch" in difference_verdict(hi, lo)["rule"] and "paired" in difference_verdict(hi, lo, paired=True)["rule"]
    # seeds x folds, and unpaired sides with different numbers of seeds
    grid = difference_verdict(hi[:, None] + np.zeros((5, 4)), lo[:, None] + rng.normal(0, 0.005, (5, 4)))
    assert grid["verdict"] == "holds" and grid["n_runs"] == 5
    assert difference_verdict(hi, lo[:3])["n_runs"] == 3
    with pytest.raises(ValueError, match="same shape"):
        difference_verdict([1.0, 2.0], [1.0], paired=True)


def test_holm_known_answers():
    p = [0.01, 0.04, 0.03, 0.005]
    assert holm(p).tolist() == [True, False, False, True]
    assert holm_adjusted(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # Holm rejects more than Bonferroni (which would keep only p <= 0.0125) and stops at the first failure
    assert holm([0.001, 0.013, 0.02, 0.5]).tolist() == [True, True, True, False]
    assert holm([0.01, 0.02, 0.03, 0.04, 0.05]).tolist() == [True, False, False, False, False]
    assert holm([0.0125, 0.5, 0.5, 0.5]).tolist() == [True, False, False, False]  # p = alpha / m is rejected
    assert holm([0.04], alpha=0.05).tolist() == [True] and holm([0.04], alpha=0.01).tolist() == [False]
    # NaN: not tested, not counted in m; shape kept
    assert holm([[0.01, np.nan], [0.02, 0.9]]).tolist() == [[True, False], [True, False]]  # m = 3, not 4
    assert np.isnan(holm_adjusted([np.nan, 0.1])[0]) and holm_adjusted([0.6, 0.7]).max() == 1.0
    assert holm([]).shape == (0,)


def test_permutation_pvalues_use_the_same_estimator_and_are_calibrated():
    rng = np.random.default_rng(3)
    emotion = np.repeat(np.arange(8), 30)
    codes = np.column_stack([emotion + rng.normal(0, 1, 240), rng.standard_normal((240, 3))])
    factors = pd.DataFrame({"emotion": emotion, "actor": np.tile(np.arange(24), 10)})
    out = permutation_pvalues(codes, factors, n_bins=10, n_permutations=200)
    assert list(out.columns) == ["dim", "factor", "mi", "nmi", "null_mean", "null_nmi_mean", "pvalue"]
    assert len(out) == 8 and out["pvalue"].between(1 / 201, 1).all()
    mi = metrics.latent_factor_mi(codes, factors, n_bins=10)
    nmi = metrics.normalised_mi(codes, factors, n_bins=10)
    for r in out.itertuples():
        assert r.mi == pytest.approx(mi.loc[r.dim, r.factor]) and r.nmi == pytest.approx(nmi.loc[r.dim, r.factor])
    em = out[out.factor == "emotion"].set_index("dim")
    assert em.loc[0, "pvalue"] == pytest.approx(1 / 201) and (em.loc[1:, "pvalue"] > 0.01).all()
    assert (out["null_mean"] > 0).all()  # the histogram estimator's bias
    binned = metrics.discretize_codes(codes, 10)
    assert information._mi_batch(binned[:, 0], emotion[None, :])[0] == pytest.approx(mi.loc[0, "emotion"])
    assert permutation_pvalues(codes, factors, n_bins=10, n_permutations=50).equals(
        permutation_pvalues(codes, factors, n_bins=10, n_permutations=50))


def test_holm_keeps_noise_dimensions_out_where_the_uncorrected_test_lets_them_in():
    # The issue's case: Actor 01's 30 clips, 5 bins, 8 pure-noise dimensions.
    rng = np.random.default_rng(4)
    emotion = pd.DataFrame({"emotion": np.r_[np.zeros(2), np.repeat(np.arange(1, 8), 4)].astype(int)})
    uncorrected = corrected = 0
    for run in range(40):
        p = permutation_pvalues(rng.standard_normal((30, 8)), emotion, n_bins=5, n_permutations=200,
                                random_state=run)["pvalue"].to_numpy()
        uncorrected += bool((p <= 0.05).any())
        corrected += bool(holm(p).any())
    assert uncorrected >= 6 and corrected <= 6 and corrected < uncorrected, (uncorrected, corrected)


def test_bias_corrected_nmi():
    assert bias_corrected_nmi(0.108, 0.045) == pytest.approx(0.063)
    assert bias_corrected_nmi(0.04, 0.045, clip=True) == 0.0
    s = bias_corrected_nmi(pd.Series([0.3, 0.05]), pd.Series([0.26, 0.26]), clip=True)
    assert s.tolist() == pytest.approx([0.04, 0.0])
    assert bias_corrected_nmi(np.array([0.2, 0.1]), 0.1) == pytest.approx([0.1, 0.0])


def test_count_verdict_from_the_counts_over_seeds():
    assert count_verdict([0, 1, 0, 0, 1], claimed=3)["verdict"] == "does not hold"
    assert count_verdict([3, 3, 4, 3, 3], claimed=3)["verdict"] == "holds"
    assert count_verdict([0, 4, 1, 5, 3], claimed=3)["verdict"] == "inconclusive"
    assert count_verdict([6, 7, 6, 7, 6], claimed=3)["verdict"] == "holds"
    assert count_verdict([6, 7, 6, 7, 6], claimed=3, mode="exactly")["verdict"] == "does not hold"
    assert count_verdict([3, 3, 3, 3, 3], claimed=3, mode="exactly")["verdict"] == "holds"
    out = count_verdict([1, 2, 1, 1, 2], claimed=3)
    assert out["statistic"] == pytest.approx(1.4) and out["n_runs"] == 5 and "claimed 3" in out["rule"]
    assert out["verdict"] == "does not hold" and out["ci_high"] <= 2.5
    assert "t-interval" in out["rule"] and count_verdict([2], claimed=3)["verdict"] == "inconclusive"  # one seed


def test_verdict_rows_and_the_csv(tmp_path):
    rows = [
        verdict_row("(a) 3 of 8 dimensions separate emotions", **count_verdict([0, 1, 0, 0, 1], claimed=3)),
        verdict_row("(b) separation weaker with 12 actors",
                    **difference_verdict([0.09, 0.1, 0.08], [0.087, 0.11, 0.07])),
    ]
    with pytest.raises(ValueError, match="verdict"):
        verdict_row("x", "maybe", "rule", 0.0, 0.0, 0.0, 1)
    path = tmp_path / "figures" / "verdicts.csv"
    table = write_verdicts(rows + [{**rows[0], "extra": 1}], path)
    back = pd.read_csv(path)
    assert list(back.columns) == list(VERDICT_COLUMNS) == list(table.columns)
    assert back["verdict"].tolist() == ["does not hold", "inconclusive", "does not hold"]
    assert set(back["verdict"]) <= set(verdicts.VERDICTS) and back["n_runs"].tolist() == [5, 3, 5]
    assert [p.name for p in path.parent.iterdir()] == ["verdicts.csv"]  # written atomically, no leftovers


def test_exported_from_metrics_and_docstring_examples():
    for name in verdicts.__all__:
        assert getattr(metrics, name) is getattr(verdicts, name)
    assert doctest.testmod(verdicts).failed == 0


def test_claim_rows_have_the_verdict_columns_and_clear_cut_verdicts(tmp_path):
    from emovae_utils.metrics.verdicts import claim_a_row, claim_b_row, convergence_row, not_converged_row

    a = claim_a_row([0, 1, 0, 0, 1])
    assert tuple(a) == VERDICT_COLUMNS and a["verdict"] == "does not hold" and a["n_runs"] == 5
    assert a["claim"] == "(a) 3 of 8 latent dimensions separate emotions (one-actor encoder, all 24 actors' clips)"
    assert "Holm" in a["rule"] and a["statistic"] == pytest.approx(0.4)
    assert claim_a_row([3, 3, 4, 3, 3])["verdict"] == "holds"
    assert claim_a_row([0, 4, 1, 5, 3])["verdict"] == "inconclusive"
    assert "(12-actor encoder, Actor 01's clips)" in claim_a_row([1], where="Actor 01's clips",
                                                                 encoder="12-actor encoder")["claim"]

    hi, lo = np.array([0.30, 0.32, 0.31, 0.33, 0.30]), np.array([0.20, 0.21, 0.20, 0.22, 0.19])
    b = claim_b_row(hi, lo)
    assert tuple(b) == VERDICT_COLUMNS and b["verdict"] == "holds" and b["statistic"] == pytest.approx(np.mean(hi - lo))
    assert b["claim"] == "(b) emotion separation is weaker with 12 actors than with one (emotion UAR)"
    assert claim_b_row(lo, hi, measure="max NMI")["verdict"] == "does not hold"
    assert claim_b_row(hi, hi + np.array([0.02, -0.03, 0.01, -0.01, 0.0]))["verdict"] == "inconclusive"
    grid = claim_b_row(hi[:, None] + np.zeros((5, 4)), lo[:, None] + np.zeros((5, 4)))  # seeds x folds
    assert grid["verdict"] == "holds" and grid["n_runs"] == 5 and "Welch" in grid["rule"]
    assert claim_b_row(hi, hi)["statistic"] == 0.0  # two copies of the same encoder

    c = convergence_row([15500, 16200, 17000, 16500, 15800])
    assert tuple(c) == VERDICT_COLUMNS and c["verdict"] == "holds" and c["claim"] == "losses flatten near epoch 16000"
    assert c["statistic"] == pytest.approx(16200) and 12000 <= c["ci_low"] <= c["ci_high"] <= 20000
    assert "[12000, 20000]" in c["rule"]
    assert convergence_row([4000, 5000, 4500])["verdict"] == "does not hold"  # wholly outside
    assert convergence_row([15500, None, 17000, np.nan, 16000])["verdict"] == "inconclusive"  # 2 of 5 never flatten
    few = convergence_row([15500, None, None, None, 16000])  # fewer than half flatten: "2 of 5 flat"
    assert few["verdict"] == "inconclusive" and few["statistic"] == pytest.approx(0.4) and "k of n" in few["rule"]
    assert few["ci_low"] == pytest.approx(0.0527, abs=1e-4) and few["ci_high"] == pytest.approx(0.8534, abs=1e-4)
    assert convergence_row([None] * 6)["verdict"] == "does not hold"  # 0 of 6: [0, 0.46]
    assert convergence_row([9000, 19000, 14000, 21000])["verdict"] == "inconclusive"  # interval spans the edge
    assert convergence_row([9000, 10000, 9500, 9800], tolerance_epochs=8000)["verdict"] == "holds"
    assert convergence_row([25000, None, 24900], horizon=24000)["verdict"] == "does not hold"  # wholly after
    assert "sees up to epoch 24000" in convergence_row([None], horizon=24000)["rule"]
    none = convergence_row([None, None, None])  # 0 of 3 flat: exact [0, 0.708], not [0, 0]
    assert none["verdict"] == "inconclusive" and none["statistic"] == 0.0 and none["n_runs"] == 3
    assert none["ci_high"] == pytest.approx(0.7076, abs=1e-4)
    assert convergence_row(pd.Series([15500, pd.NA, 17000], dtype="Int64"))["verdict"] == "inconclusive"

    n = not_converged_row([None] * 6, 20000)
    assert tuple(n) == VERDICT_COLUMNS and n["verdict"] == "holds" and n["statistic"] == 0.0
    assert n["claim"] == "training on all 24 actors does not converge (loss flattening)"
    assert "15000 of 20000" in n["rule"]
    assert not_converged_row([None] * 3, 20000)["verdict"] == "inconclusive"  # 0 of 3: [0, 0.71] reaches 1/2
    assert not_converged_row([19000] + [None] * 5, 20000)["verdict"] == "holds"  # flat only at the end
    assert not_converged_row([9000, 8000, 12000, 10000, 9500, 9000], 20000)["verdict"] == "does not hold"
    assert not_converged_row([9000, None, 12000, None, 9500], 20000)["verdict"] == "inconclusive"
    assert not_converged_row([9000, None, None, None, None], 20000)["verdict"] == "inconclusive"
    assert not_converged_row([19000] * 6, 20000, min_flat_epochs=500)["verdict"] == "does not hold"
    with pytest.raises(ValueError, match="past the end"):
        not_converged_row([25000], 20000)
    with pytest.raises(ValueError, match="at least one seed"):
        convergence_row([])
    write_verdicts([a, b, c, none, n], tmp_path / "verdicts.csv")
    back = pd.read_csv(tmp_path / "verdicts.csv")
    assert back["verdict"].tolist() == ["does not hold", "holds", "holds", "inconclusive", "holds"]
    assert claim_a_row([0, 1, 0, 0, 1], power=0.22)["verdict"] == "inconclusive (underpowered)"
    assert claim_a_row([0, 1, 0, 0, 1], power=0.95)["verdict"] == "does not hold"
    assert claim_a_row([3, 3, 4, 3, 3], power=0.22)["verdict"] == "holds"  # power matters only for an absence

"""Claim (a) per dimension: activity, emotion MI against the Holm-corrected null, quantile bins, the trivial predictor."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mutual_info_score

from emovae_utils import metrics
from emovae_utils.metrics import information, latents
from emovae_utils.metrics.latents import (
    active_dimensions, emotion_dimensions, kl_per_dimension, separation_sensitivity, trivial_predictor_mse,
)
from emovae_utils.metrics.verdicts import holm_adjusted, permutation_pvalues

N_PER_EMOTION = 30
EMOTION = np.repeat(np.arange(8), N_PER_EMOTION)  # 240 clips


@pytest.fixture(scope="module")
def posterior() -> tuple[np.ndarray, np.ndarray]:
    """8 dims: 0 emotion + noise, 1 another emotion copy, 2-3 active noise, 4-6 collapsed (mu ~ 0, sigma ~ 1),
    7 collapsed but tracking emotion at a scale the decoder cannot use."""
    rng = np.random.default_rng(0)
    n = EMOTION.size
    mu = np.column_stack([
        EMOTION + rng.normal(0, 1, n), -EMOTION + rng.normal(0, 2, n), rng.normal(0, 1, (n, 2)),
        rng.normal(0, 1e-3, (n, 3)), 1e-4 * EMOTION + rng.normal(0, 1e-5, n),
    ])
    sigma = np.column_stack([np.full((n, 4), 0.4), np.full((n, 4), 1.0) + rng.normal(0, 1e-4, (n, 4))])
    return mu, sigma


def test_kl_per_dimension_is_the_closed_form_mean(posterior):
    mu, sigma = posterior
    kl = kl_per_dimension(mu, sigma)
    expected = np.mean(-0.5 * (1 + np.log(sigma**2) - mu**2 - sigma**2), axis=0)  # the models' gaussian_kl
    assert kl.shape == (8,) and kl == pytest.approx(expected)
    assert (kl[4:] < 1e-5).all() and (kl[:4] > 0.3).all()
    assert kl_per_dimension(np.zeros((3, 2)), np.ones((3, 2))).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="positive"):
        kl_per_dimension(mu, np.log(sigma))  # logvar passed by mistake: zeros and negatives
    with pytest.raises(ValueError, match="same shape"):
        kl_per_dimension(mu, sigma[:, :3])


def test_active_dimensions_by_either_criterion(posterior):
    mu, sigma = posterior
    table = active_dimensions(mu, sigma)
    assert list(table.columns) == ["dim", "kl", "var_mu", "mean_sigma", "active"] and table["dim"].tolist() == list(range(8))
    assert table["active"].tolist() == [True] * 4 + [False] * 4
    assert table.loc[4:, "kl"].abs().max() < 1e-5 and table.loc[4:, "mean_sigma"].to_numpy() == pytest.approx(1.0, abs=1e-3)
    n = 1000
    by_kl_only = (np.zeros((n, 1)), np.full((n, 1), 0.5))  # the same posterior for every clip: var 0, KL 0.32
    by_var_only = (np.random.default_rng(1).normal(0, np.sqrt(0.015), (n, 1)), np.ones((n, 1)))  # KL ~ 0.0075
    for (m, s), kl_active, var_active in ((by_kl_only, True, False), (by_var_only, False, True)):
        row = active_dimensions(m, s).iloc[0]
        assert bool(row["kl"] > 0.01) is kl_active and bool(row["var_mu"] > 0.01) is var_active and row["active"]
    assert not active_dimensions(*by_var_only, variance_threshold=0.02)["active"][0]
    assert not active_dimensions(*by_kl_only, kl_threshold=0.5)["active"][0]


def test_emotion_dimensions_counts_active_dimensions_beyond_the_holm_corrected_null(posterior):
    mu, sigma = posterior
    out = emotion_dimensions(mu, sigma, EMOTION, n_bins=10, n_permutations=400)
    assert list(out.columns) == ["dim", "active", "kl", "var_mu", "nmi", "null_nmi_mean", "nmi_corrected",
                                 "pvalue", "pvalue_holm", "separates"]
    assert out["separates"].tolist() == [True, True] + [False] * 6 and out["separates"].dtype == bool
    # the collapsed dimension that tracks emotion: significant MI, but inactive, so not tested and not counted
    assert out.loc[7, "pvalue"] == pytest.approx(1 / 401) and not out.loc[7, "active"]
    assert out.loc[4:, "pvalue_holm"].isna().all() and not out.loc[4:, "separates"].any()
    # Holm over the 4 active dimensions only, not all 8
    active = out["active"].to_numpy()
    assert out.loc[active, "pvalue_holm"].to_numpy() == pytest.approx(holm_adjusted(out.loc[active, "pvalue"]))
    assert not np.allclose(out.loc[active, "pvalue_holm"], holm_adjusted(out["pvalue"])[active])
    assert out["nmi_corrected"].to_numpy() == pytest.approx((out["nmi"] - out["null_nmi_mean"]).to_numpy())
    tests = permutation_pvalues(mu, pd.DataFrame({"emotion": EMOTION}), 10, 400)
    assert out["pvalue"].tolist() == tests["pvalue"].tolist() and out["nmi"].tolist() == tests["nmi"].tolist()
    # labels of any kind: the same answer (MI does not depend on the label names, up to summation order)
    names = np.array(["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"])[EMOTION]
    pd.testing.assert_frame_equal(emotion_dimensions(mu, sigma, pd.Series(names), n_bins=10, n_permutations=400),
                                  out, check_exact=False, rtol=1e-12)


def test_emotion_dimensions_refuses_too_few_permutations_and_bad_labels(posterior):
    mu, sigma = posterior
    with pytest.raises(ValueError, match=r"n_permutations=160 must exceed D / alpha = 160.*use n_permutations >= 161"):
        emotion_dimensions(mu, sigma, EMOTION, n_permutations=160)
    emotion_dimensions(mu[:, :2], sigma[:, :2], EMOTION, n_permutations=41)  # 2 / 0.05 = 40
    with pytest.raises(ValueError, match="one emotion per clip"):
        emotion_dimensions(mu, sigma, EMOTION[:-1])
    with pytest.raises(ValueError, match="alpha"):
        emotion_dimensions(mu, sigma, EMOTION, alpha=5)


def test_quantile_bins_have_equal_counts_and_keep_ties_together():
    rng = np.random.default_rng(2)
    z = np.column_stack([rng.standard_normal(720), rng.exponential(size=720), np.full(720, 3.0)])
    q = information.discretize_codes(z, 20, strategy="quantile")
    assert [np.bincount(q[:, j]).tolist() for j in range(2)] == [[36] * 20] * 2  # skewed or not
    assert (q[:, 2] == 0).all()  # a constant dimension is one bin
    u = information.discretize_codes(z, 20)
    assert np.bincount(u[:, 1], minlength=20).max() > 200  # equal width: the exponential's bulk in few bins
    assert np.array_equal(u, information.discretize_codes(z, 20, strategy="uniform"))
    # monotone in the value, ties share a bin, ~equal counts otherwise
    tied = np.round(rng.exponential(size=(400, 1)), 1)
    b = information.discretize_codes(tied, 10, strategy="quantile")[:, 0]
    assert pd.Series(b).groupby(tied[:, 0]).nunique().max() == 1
    assert np.all(np.diff(b[np.argsort(tied[:, 0], kind="stable")]) >= 0) and b.max() <= 9
    assert np.abs(np.bincount(b) - 40).max() < 40
    with pytest.raises(ValueError, match="strategy must be 'uniform'.*or 'quantile'"):
        information.discretize_codes(z, 20, strategy="kmeans")


def test_strategy_threads_through_every_mi_function():
    rng = np.random.default_rng(3)
    codes = np.column_stack([np.exp(EMOTION / 2 + rng.normal(0, 0.5, EMOTION.size)), rng.standard_normal(EMOTION.size)])
    factors = pd.DataFrame({"emotion": EMOTION})
    q = information.discretize_codes(codes, 20, "quantile")
    mi = metrics.latent_factor_mi(codes, factors, strategy="quantile")
    assert mi["emotion"].tolist() == pytest.approx([mutual_info_score(EMOTION, q[:, j]) for j in range(2)])
    assert not np.allclose(mi, metrics.latent_factor_mi(codes, factors))
    assert metrics.normalised_mi(codes, factors, strategy="quantile").to_numpy() == pytest.approx(
        mi.to_numpy() / np.log(8))
    assert metrics.mig(codes, factors, strategy="quantile")["emotion"] != metrics.mig(codes, factors)["emotion"]
    null_q = metrics.mi_permutation_null(codes, factors, n_permutations=30, strategy="quantile")
    null_u = metrics.mi_permutation_null(codes, factors, n_permutations=30)
    assert (null_q["emotion"] > 0).all() and not np.allclose(null_q, null_u)
    assert metrics.informative_dims(codes, factors, n_permutations=30, strategy="quantile") == {"emotion": [0]}
    sep = metrics.factor_separation(codes, factors, n_permutations=30, strategy="quantile")
    assert sep["dims"] == [0] and sep["max_nmi"] == pytest.approx(mi["emotion"].max() / np.log(8))
    p = permutation_pvalues(codes, factors, n_permutations=50, strategy="quantile")
    assert p["mi"].tolist() == pytest.approx(mi["emotion"].tolist())


def test_separation_sensitivity_table(posterior, monkeypatch):
    mu, sigma = posterior
    calls = []
    real = latents.permutation_pvalues
    monkeypatch.setattr(latents, "permutation_pvalues", lambda *a, **k: calls.append(k) or real(*a, **k))
    table = separation_sensitivity(mu, sigma, EMOTION, n_permutations=200)
    assert len(calls) == 2 and [c["strategy"] for c in calls] == ["uniform", "quantile"]  # one null per binning
    assert list(table.columns) == ["setting", "rule", "strategy", "n_bins", "threshold", "count"]
    assert len(table) == 2 * (1 + 2 * 5)
    assert table.groupby(["strategy", "rule"]).size().to_dict() == {
        (s, r): n for s in ("quantile", "uniform")
        for r, n in (("NMI ≥ t (report-style)", 5), ("active + Holm", 1), ("bias-corrected NMI ≥ t", 5))}
    main = table[table["rule"] == "active + Holm"]
    assert main["setting"].tolist() == ["active + Holm, 20 uniform bins", "active + Holm, 20 quantile bins"]
    assert main["threshold"].isna().all() and main["count"].tolist() == [2, 2]
    assert "active, bias-corrected NMI ≥ 0.075, 20 quantile bins" in table["setting"].tolist()
    assert "active, NMI ≥ 0.125 and p ≤ 0.05, 20 uniform bins" in table["setting"].tolist()
    for _, group in table[table["rule"] != "active + Holm"].groupby(["strategy", "rule"]):
        assert group["threshold"].tolist() == [0.05, 0.075, 0.10, 0.125, 0.15]
        assert np.all(np.diff(group["count"]) <= 0) and group["count"].max() <= 4  # only active dims count
    assert table["count"].dtype.kind == "i"
    small = separation_sensitivity(mu, sigma, EMOTION, thresholds=(0.1,), bins=(("quantile", 10),), n_permutations=200)
    assert small["setting"].tolist() == ["active + Holm, 10 quantile bins",
                                         "active, bias-corrected NMI ≥ 0.1, 10 quantile bins",
                                         "active, NMI ≥ 0.1 and p ≤ 0.05, 10 quantile bins"]


def test_trivial_predictor_mse_by_hand():
    shape = (80, 128)
    X = np.stack([np.zeros(shape), np.full(shape, 2.0), np.full(shape, 4.0), np.full(shape, 6.0)])
    X[0, 0, 0] = 4.0  # one element off: clip 0 now has mean 4 / 10240
    actors = np.array([1, 1, 2, 2])
    out = trivial_predictor_mse(X, groups_train=actors)
    mean = X.mean(axis=0)
    assert out["mean spectrogram"] == pytest.approx(np.mean((X - mean) ** 2))
    # by hand: the mean is 3 everywhere but (0, 0), where it is 4; errors 9, 1, 1, 9 elsewhere, 0, 4, 0, 4 there
    e = 10240
    assert out["mean spectrogram"] == pytest.approx(((e - 1) * 20 + 8) / (4 * e))
    # per actor: means 1 and 5 (3 at (0, 0) for actor 1, from 4 and 2): every error is 1
    assert out["per-actor mean spectrogram"] == pytest.approx(1.0)
    held_out = trivial_predictor_mse(X[:2], X[2:], groups_train=actors[:2], groups_eval=np.array([1, 1]))
    assert held_out["mean spectrogram"] == pytest.approx((9 + 25 + 9 + 25) / 4, rel=1e-3)
    assert held_out["per-actor mean spectrogram"] == held_out["mean spectrogram"]  # one training actor
    assert trivial_predictor_mse(X) == {"mean spectrogram": out["mean spectrogram"]}
    with pytest.raises(ValueError, match=r"groups \[2\] of groups_eval have no training clips"):
        trivial_predictor_mse(X[:2], X[2:], groups_train=actors[:2], groups_eval=actors[2:])
    with pytest.raises(ValueError, match="pass groups_eval"):
        trivial_predictor_mse(X[:2], X[2:], groups_train=actors[:2])
    with pytest.raises(ValueError, match="groups_eval needs groups_train"):
        trivial_predictor_mse(X, groups_eval=actors)
    with pytest.raises(ValueError, match="one group per clip"):
        trivial_predictor_mse(X, groups_train=actors[:3])
    with pytest.raises(ValueError, match="n_mels, n_frames"):
        trivial_predictor_mse(X[0])
    with pytest.raises(ValueError, match="X_eval clips are"):
        trivial_predictor_mse(X, X[:, :40])


def test_exported_from_metrics_and_docstring_examples():
    for name in latents.__all__:
        assert getattr(metrics, name) is getattr(latents, name)
    assert doctest.testmod(latents).failed == 0
    assert doctest.testmod(information).failed == 0

"""Every rule on a case whose answer is known (metrics.controls), on synthetic data."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd

from emovae_utils import metrics, replication
from emovae_utils.metrics import controls
from emovae_utils.metrics.controls import (
    all_actors_emotion_row, all_actors_loss_row, claim_controls_pass, control_row, convergence_controls,
    difference_control, eta_squared, guard_verdict, planted_latent, separation_controls, separation_power,
)


def _history(n: int, tau: float) -> pd.DataFrame:
    t = np.arange(1, n + 1)
    return pd.DataFrame({"epoch": t, "reconstruction": 20 + 900 * np.exp(-t / tau), "kl": 7 - 6 * np.exp(-t / tau)})


def test_flat_loss_is_flat_and_a_decreasing_one_is_not():
    assert metrics.flat_epoch(np.full(5000, 42.0)) == 1
    assert metrics.flat_epoch(np.full(5000, 42.0) + np.random.default_rng(0).normal(0, 0.5, 5000)) is not None
    assert metrics.flat_epoch(np.linspace(900, 20, 5000)) is None  # still falling: censored
    assert metrics.flat_epoch(np.full(800, 42.0)) is None  # shorter than the window: the rule cannot see
    runs = {s: _history(25000, 1500 + 100 * s) for s in range(3)}
    assert [c["verdict"] for c in convergence_controls("c", "toy", runs)] == ["flat", "not flat"]
    flat = replication.flat_epochs(runs)
    assert flat["both"].notna().all() and (flat["horizon"] == 24000).all()


def test_claim_a_planted_dimension_is_found_and_a_shuffled_one_is_not():
    labels = np.repeat(np.arange(8), 90)
    mu = np.random.default_rng(1).standard_normal((720, 8))
    rows = separation_controls("(a)", mu, labels, n_bins=20, n_permutations=200)
    assert [r["verdict"] for r in rows] == [r["expected"] for r in rows] == ["found", "not found"]
    assert np.round(eta_squared(planted_latent(labels, 0.7, n_dims=2), labels), 1).tolist() == [0.7, 0.0]


def test_power_grows_with_the_effect_and_the_clips():
    few = np.repeat(np.arange(8), 4)[:30]
    weak = separation_power(few, 0.3, n_bins=5, n_permutations=200, n_sim=10)
    strong = separation_power(np.repeat(np.arange(8), 90), 0.3, n_bins=20, n_permutations=200, n_sim=5)
    assert weak["power"] < 0.8 <= strong["power"] and weak["ci_low"] <= weak["power"] <= weak["ci_high"]


def test_claim_b_two_copies_give_difference_zero():
    row = difference_control("(b)", "12-actor encoder", np.array([[0.25, 0.3], [0.27, 0.28], [0.26, 0.31]]))
    assert row["verdict"] == row["expected"] == "difference 0, interval contains 0"
    assert metrics.claim_b_row([0.25, 0.27], [0.25, 0.27])["statistic"] == 0.0


def test_guard_withholds_a_verdict_whose_rule_failed_a_control(tmp_path):
    row = metrics.verdict_row("c", "holds", "r", 1.0, 0.5, 1.5, 3)
    good, bad = control_row("c", "a", "flat", "flat"), control_row("c", "b", "not flat", "flat")
    assert guard_verdict(row, [good]) == row and claim_controls_pass("c", [good])
    out = guard_verdict(row, [good, bad, control_row("other", "x", "y", "z")])
    assert out["verdict"] == "inconclusive" and "(b)" in out["rule"] and not claim_controls_pass("c", [bad])
    table = replication.record_controls([good, bad], tmp_path)
    assert list(table.columns) == list(metrics.CONTROL_COLUMNS) and len(table) == 2
    assert len(replication.record_controls([good], tmp_path)) == 2  # upsert by (claim, control)


def test_the_24_actor_claim_in_both_senses():
    trivial = {"mean spectrogram": 193.0, "per-actor mean": 165.0}
    assert all_actors_loss_row([58.8, 55.8, 56.6], trivial)["verdict"] == "does not hold"
    assert all_actors_loss_row([400.0, 420.0, 390.0], trivial)["verdict"] == "holds"  # untrained
    assert "loss sense" in all_actors_loss_row([58.8, 55.8], trivial)["claim"]
    e = all_actors_emotion_row(np.array([0.26, 0.27, 0.26]), np.array([0.26, 0.25, 0.27]))
    assert e["verdict"] == "does not hold" and "emotion sense" in e["claim"] and "Welch" in e["rule"]
    assert all_actors_emotion_row([0.12, 0.13, 0.125], [0.26, 0.25, 0.27])["verdict"] == "holds"
    assert all_actors_emotion_row([0.2, 0.21, 0.2], [0.3, 0.31, 0.3])["verdict"] == "inconclusive"


def test_exported_and_docstrings():
    for name in controls.__all__:
        assert getattr(metrics, name) is getattr(controls, name)
    assert doctest.testmod(controls).failed == 0

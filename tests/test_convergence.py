"""The plateau rule for training curves."""

import numpy as np
import pandas as pd

from emovae_utils.convergence import plateau_epoch


def test_plateau_epoch_finds_where_a_curve_settles():
    epochs = np.arange(1, 2001)
    curve = np.where(epochs < 800, 1000 - epochs, 200.0)  # falls linearly, flat from epoch 800
    assert plateau_epoch(curve, window=1, tolerance=0.0) == 800
    noisy = curve + np.random.default_rng(0).normal(0, 2, len(curve))
    assert abs(plateau_epoch(noisy, window=51, tolerance=0.02) - 784) <= 20  # within 16 of 800 by tolerance
    assert plateau_epoch(1000 - epochs, window=1) >= 1900  # a steady fall only "settles" in its last 5 %
    assert plateau_epoch(np.full(10, 3.0)) == 1  # never decreases


def test_flat_by_slope_known_answers():
    from emovae_utils.convergence import flat_by_slope

    epochs = np.arange(1, 3001)
    kink = np.where(epochs < 800, 1000.0 - epochs, 200.0)
    # (800 - t) / (1000 - t) < 0.01 first at t = 798
    assert flat_by_slope(kink, per_epochs=100, tolerance=0.01, window=1) == 798
    # 1 + 99 exp(-t/1000): relative change per 1000 epochs < 1 % from t > 1000 ln(99 (1 - 1/e) - 0.99) / 0.01)
    expo = 1 + 99 * np.exp(-np.arange(1, 20001) / 1000)
    t_star = 1000 * np.log((99 * (1 - np.exp(-1)) - 0.99) / 0.01)
    assert flat_by_slope(expo, per_epochs=1000, tolerance=0.01, window=1) == int(np.floor(t_star)) + 1 == 8726
    assert flat_by_slope(expo, per_epochs=1000, tolerance=0.05, window=1) < 8726  # looser: earlier
    for seed in range(3):  # noise of 0.5 % of the floor moves the answer by at most ~2 % here
        noisy = expo + np.random.default_rng(seed).normal(0, 0.005, expo.size)
        assert abs(flat_by_slope(noisy, per_epochs=1000, tolerance=0.01) - 8726) <= 200
    # a run stopped while still improving is not flat by the slope, though the endpoint rule calls it flat
    assert plateau_epoch(expo[:5000], window=1) < 5000 and flat_by_slope(expo[:5000], window=1) is None
    assert flat_by_slope(expo[:1000]) is None  # too short to measure a change over 1000 epochs
    assert flat_by_slope(np.full(3000, 5.0)) == 1
    # a rising curve (a KL term) is not flat while it rises, unless only decreases count
    rising = 6 - 5 * np.exp(-np.arange(1, 4001) / 200)
    assert flat_by_slope(rising, window=1) == 886
    assert flat_by_slope(rising, window=1, direction="decrease") == 1


def test_plateau_sensitivity_table():
    from emovae_utils.convergence import plateau_sensitivity

    t = np.arange(1, 6001)
    history = pd.DataFrame({"epoch": t, "reconstruction": 20 + 300 * np.exp(-t / 400),
                            "kl": 6 - 5 * np.exp(-t / 200), "total": 0.0})
    table = plateau_sensitivity(history)
    assert list(table.columns) == ["loss", "rule", "tolerance", "epoch", "n_epochs"] and len(table) == 2 * 3 * 4
    assert set(table["loss"]) == {"reconstruction", "kl"} and set(table["rule"]) == {"endpoint", "slope", "flat"}
    assert table["epoch"].notna().all() and (table["epoch"] > 1).all()  # the rising KL gets an epoch too
    for _, group in table.groupby(["loss", "rule"]):
        assert group.sort_values("tolerance")["epoch"].is_monotonic_decreasing  # looser tolerance, earlier epoch
    runs = plateau_sensitivity({0: history, 1: history.iloc[:1500]}, tolerances=(0.01,))
    assert list(runs.columns)[0] == "run" and len(runs) == 2 * 2 * 3
    short = runs[(runs.run == 1) & (runs.rule == "slope") & (runs.loss == "reconstruction")]
    assert short["epoch"].isna().all()  # 1500 epochs: still improving by more than 1 % per 1000

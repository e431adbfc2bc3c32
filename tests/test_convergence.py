"""The plateau rule for training curves."""

import numpy as np

from emovae_utils.metrics.convergence import plateau_epoch


def test_plateau_epoch_finds_where_a_curve_settles():
    epochs = np.arange(1, 2001)
    curve = np.where(epochs < 800, 1000 - epochs, 200.0)  # falls linearly, flat from epoch 800
    assert plateau_epoch(curve, window=1, tolerance=0.0) == 800
    noisy = curve + np.random.default_rng(0).normal(0, 2, len(curve))
    assert abs(plateau_epoch(noisy, window=51, tolerance=0.02) - 784) <= 20  # within 16 of 800 by tolerance
    assert plateau_epoch(1000 - epochs, window=1) >= 1900  # a steady fall only "settles" in its last 5 %
    assert plateau_epoch(np.full(10, 3.0)) == 1  # never decreases

"""When a training curve stops improving: the report's "losses flatten near epoch N".

Evaluation of a finished run's loss history (``history.csv`` of
:func:`emovae_utils.train.fit`), kept apart from the trainer.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["plateau_epoch"]


def plateau_epoch(loss: pd.Series | np.ndarray, window: int = 500, tolerance: float = 0.05) -> int:
    """The epoch from which a loss curve stays flat: the report's "losses flatten near epoch N".

    The curve is smoothed by a centred running median over ``window`` epochs.
    It is flat from the first epoch after which the smoothed loss stays within
    ``tolerance`` times its whole decrease (first minus last smoothed value) of
    its final value, for every later epoch.

    Parameters
    ----------
    loss : pandas.Series or np.ndarray
        One value per epoch, epoch 1 first.
    window : int
        Running-median width in epochs (at least 1).
    tolerance : float
        Fraction of the total decrease.

    Returns
    -------
    int
        1-based epoch (late, within the last ``tolerance`` share, for a curve that keeps falling
        steadily); 1 when it never decreases.

    Examples
    --------
    >>> import numpy as np
    >>> curve = np.r_[np.linspace(100, 10, 50), np.full(50, 10.0)]
    >>> plateau_epoch(curve, window=1, tolerance=0.0)
    50
    """
    values = pd.Series(np.asarray(loss, dtype=float))
    if values.empty:
        raise ValueError("empty loss curve")
    smooth = values.rolling(max(1, int(window)), center=True, min_periods=1).median().to_numpy()
    drop = smooth[0] - smooth[-1]
    if not drop > 0:
        return 1
    unsettled = np.flatnonzero(np.abs(smooth - smooth[-1]) > tolerance * drop)
    return int(unsettled[-1] + 2) if len(unsettled) else 1

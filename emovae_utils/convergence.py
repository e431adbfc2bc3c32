"""When a training curve stops improving: the report's "losses flatten near epoch N".

Evaluation of a finished run's loss history (``history.csv`` of
:func:`emovae_utils.train.fit`), kept apart from the trainer.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = ["plateau_epoch", "flat_by_slope", "flat_epoch", "truncated", "plateau_sensitivity"]


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


def flat_by_slope(
    loss: pd.Series | np.ndarray,
    per_epochs: int = 1000,
    tolerance: float = 0.01,
    window: int | None = None,
    direction: str = "any",
    relative_to: str = "value",
) -> int | None:
    """The epoch from which a loss curve changes by less than ``tolerance`` per ``per_epochs`` epochs, for good.

    Unlike :func:`plateau_epoch`, the criterion is a rate, not a distance to
    the run's own last value: a run stopped while still improving is not
    called flat, and the answer does not move with the run's length.

    The curve is smoothed by a centred running median over ``window`` epochs.
    At epoch t its relative change is ``|s(t) - s(t + per_epochs)| / |s(t)|``
    (``direction="decrease"``: the improvement ``s(t) - s(t + per_epochs)``
    only, so a rising curve counts as flat). With ``relative_to="range"`` the
    change is divided by the height of the smoothed curve's plot instead (its
    largest absolute value, the axis from 0, or its range if that is larger): the
    share of the plot's height the curve still moves per ``per_epochs`` epochs,
    what the eye judges (:func:`flat_epoch`, the decision
    rule). The curve is flat from the first epoch t after which this stays below
    ``tolerance`` at every epoch where it can be measured (up to the last epoch
    minus ``per_epochs``: the rule cannot see the last ``per_epochs`` epochs).

    Parameters
    ----------
    loss : pandas.Series or np.ndarray
        One value per epoch, epoch 1 first.
    per_epochs : int, default 1000
        The horizon of the change.
    tolerance : float, default 0.01
        Relative change per ``per_epochs`` epochs below which the curve is flat.
    window : int, optional
        Running-median width; default ``max(1, per_epochs // 10)``.
    direction : {"any", "decrease"}, default "any"
        Count a change either way (a KL term that still rises is not flat), or improvement only.
    relative_to : {"value", "range"}, default "value"
        Divide the change by the curve's value at t, or by the height of its plot (see above).

    Returns
    -------
    int or None
        1-based epoch; ``None`` when the curve is still changing at the last
        measurable epoch, or is shorter than ``per_epochs + 1`` epochs.

    Examples
    --------
    >>> import numpy as np
    >>> epochs = np.arange(1, 3001)
    >>> curve = np.where(epochs < 800, 1000.0 - epochs, 200.0)  # falls by 1 per epoch, flat from epoch 800
    >>> flat_by_slope(curve, per_epochs=100, tolerance=0.01, window=1)
    798
    >>> flat_by_slope(curve[:850], per_epochs=100, window=1) is None, plateau_epoch(curve[:750], window=1) < 750
    (True, True)
    """
    if direction not in ("any", "decrease"):
        raise ValueError(f"direction must be 'any' or 'decrease', got {direction!r}")
    if relative_to not in ("value", "range"):
        raise ValueError(f"relative_to must be 'value' or 'range', got {relative_to!r}")
    per = int(per_epochs)
    if per < 1:
        raise ValueError(f"per_epochs must be >= 1, got {per_epochs}")
    values = pd.Series(np.asarray(loss, dtype=float))
    if values.empty:
        raise ValueError("empty loss curve")
    width = max(1, per // 10) if window is None else max(1, int(window))
    smooth = values.rolling(width, center=True, min_periods=1).median().to_numpy()
    if smooth.size <= per:
        return None
    change = smooth[:-per] - smooth[per:]
    if direction == "any":
        change = np.abs(change)
    scale = np.abs(smooth[:-per]) if relative_to == "value" else max(np.ptp(smooth), np.abs(smooth).max())
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = change / np.maximum(scale, np.finfo(float).tiny)
    moving = np.flatnonzero(~(rate < tolerance))  # NaN counts as moving
    if not len(moving):
        return 1
    last = int(moving[-1])
    return None if last == rate.size - 1 else last + 2


def flat_epoch(
    loss: pd.Series | np.ndarray, per_epochs: int = 1000, tolerance: float = 0.01, window: int | None = None,
) -> int | None:
    """The decision rule for "the loss has flattened": what a run that looks flat on its plot passes.

    The loss is smoothed by a centred running median (``window``, default
    ``per_epochs``: the noise of single epochs and of short wanderings goes, the
    trend stays); it is flat from the first epoch after which, over every
    later stretch of ``per_epochs`` epochs the rule can see, it moves by less than
    ``tolerance`` of the height of its plot (the largest absolute smoothed value,
    i.e. an axis from 0; or the range, if larger), either way.
    The rule cannot see the last ``per_epochs`` epochs: a curve still moving at
    epoch ``len(loss) - per_epochs`` is **censored** (``None``: not flat by the
    end), never "flat at the end". A run stopped early, while still falling, is
    not flat: the stretch it last moved by is a large share of its range.

    Parameters
    ----------
    loss : pandas.Series or np.ndarray
        One value per epoch, epoch 1 first.
    per_epochs : int, default 1000
    tolerance : float, default 0.01
        Share of the plot's height per ``per_epochs`` epochs.
    window : int, optional
        Running-median width; default ``per_epochs``. (On a 25000-epoch run of the one-actor model the KL
        term wanders by about 1 % of its height per 1000 epochs for thousands of epochs: a narrower median
        sees those wanderings, not the trend.)

    Returns
    -------
    int or None
        1-based epoch, or None (censored).

    Examples
    --------
    >>> import numpy as np
    >>> t = np.arange(1, 25001)
    >>> curve = 20 + 900 * np.exp(-t / 1500)        # falls fast, then looks flat by eye
    >>> flat_epoch(curve), flat_epoch(curve[:2500]) is None   # stopped early: not flat
    (6040, True)
    >>> flat_epoch(np.full(3000, 5.0)), flat_epoch(5000.0 - t[:3000]) is None   # flat; still falling
    (1, True)
    """
    window = int(per_epochs) if window is None else window
    return flat_by_slope(loss, per_epochs=per_epochs, tolerance=tolerance, window=window, relative_to="range")


def truncated(history: pd.DataFrame, share: float = 0.1) -> pd.DataFrame:
    """The first ``share`` of a loss history: a run stopped early, the control a convergence rule must call not flat.

    Examples
    --------
    >>> len(truncated(pd.DataFrame({"epoch": range(1, 101)})))
    10
    """
    if not 0.0 < share <= 1.0:
        raise ValueError(f"share must be in (0, 1], got {share}")
    return history.iloc[: max(1, int(round(len(history) * share)))]


def plateau_sensitivity(
    history: pd.DataFrame | Mapping[object, pd.DataFrame],
    tolerances: Sequence[float] = (0.01, 0.02, 0.05, 0.10),
    losses: Sequence[str] = ("reconstruction", "kl"),
    per_epochs: int = 1000,
    window: int = 500,
    slope_window: int | None = None,
) -> pd.DataFrame:
    """Where each loss flattens, by both rules, at each tolerance: how much the answer depends on the rule.

    Parameters
    ----------
    history : pandas.DataFrame or mapping of run name to DataFrame
        Loss histories of :func:`emovae_utils.train.fit` (one row per epoch);
        a mapping (e.g. seed -> history) adds a ``run`` column.
    tolerances : sequence of float
        Each is the ``tolerance`` of both rules (a share of the total change
        for ``"endpoint"``, a relative change per ``per_epochs`` for ``"slope"``, a share of the
        plot's height per ``per_epochs`` for ``"flat"``).
        A curve that rises overall (the KL term, typically) is judged by the
        endpoint rule as its mirror image, so it too gets an epoch.
    losses : sequence of str
        History columns, each judged separately.
    per_epochs : int, default 1000
        Horizon of the slope rule.
    window : int, default 500
        Running-median width of the endpoint rule (:func:`plateau_epoch`).
    slope_window : int, optional
        Running-median width of the slope and flat rules (each function's default if None).

    Returns
    -------
    pandas.DataFrame
        Columns ``[run,] loss, rule, tolerance, epoch, n_epochs``; ``rule`` is
        ``"endpoint"`` (:func:`plateau_epoch`), ``"slope"``
        (:func:`flat_by_slope`) or ``"flat"`` (:func:`flat_epoch`, the decision rule); ``epoch`` is
        nullable (``<NA>``: not flat by the end of the run).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> t = np.arange(1, 4001)
    >>> h = pd.DataFrame({"epoch": t, "reconstruction": 20 + 300 * np.exp(-t / 400), "kl": 6 - 5 * np.exp(-t / 200)})
    >>> table = plateau_sensitivity(h, tolerances=(0.01, 0.05))
    >>> e = table.set_index(["loss", "rule", "tolerance"])["epoch"]
    >>> [int(e["reconstruction", rule, tol]) for rule in ("endpoint", "slope") for tol in (0.01, 0.05)]
    [1965, 1324, 2888, 2226]
    >>> [int(e["kl", rule, 0.01]) for rule in ("endpoint", "slope")]
    [1048, 886]
    >>> [int(e[loss, "flat", 0.01]) for loss in ("reconstruction", "kl")]
    [2012, 884]
    """
    runs = dict(history) if isinstance(history, Mapping) else {None: history}
    rows = []
    for run, frame in runs.items():
        for loss in losses:
            if loss not in frame.columns:
                raise KeyError(f"history has no {loss!r} column (columns: {list(frame.columns)})")
            curve = frame[loss].to_numpy(dtype=float)
            for tol in tolerances:
                rising = curve[0] < curve[-1]
                by_end = plateau_epoch(-curve if rising else curve, window=window, tolerance=tol)
                by_slope = flat_by_slope(curve, per_epochs=per_epochs, tolerance=tol, window=slope_window)
                by_flat = flat_epoch(curve, per_epochs=per_epochs, tolerance=tol, window=slope_window)
                for rule, epoch in (("endpoint", by_end), ("slope", by_slope), ("flat", by_flat)):
                    row = {"run": run} if run is not None or isinstance(history, Mapping) else {}
                    rows.append({**row, "loss": loss, "rule": rule, "tolerance": float(tol),
                                 "epoch": epoch, "n_epochs": len(curve)})
    table = pd.DataFrame(rows)
    table["epoch"] = table["epoch"].astype("Int64")
    return table

"""Intervals for few seeds: the one home of every interval a verdict rests on.

Seeds (independent training runs) are the unit. Three cases, one function each:

* :func:`mean_interval`: a Student-t interval of the mean over seed means. A
  2-D table (seeds x actors or folds) is first averaged within each seed; the
  actor-level spread is carried as follows. ``design="nested"`` (each seed has
  its own units): the seed means' sample variance already contains the spread
  of the units inside each seed. ``design="crossed"`` (the same actors in every
  seed, e.g. the held-out actors of the probes): the seeds share one sample of
  actors, whose spread the seed means cannot show, so its variance is added:
  ``se^2 = s^2(seed means) / R + s^2(actor means) / C``, with the seeds' R - 1
  degrees of freedom (conservative: the actor means still hold residual noise,
  and adding a variance never narrows the interval).
* :func:`share_interval`: the exact (Clopper-Pearson) interval of a share
  ``k of n`` (seeds that flatten, simulated detections).
* :func:`difference_interval`: a difference of means. Paired only where the
  pairing is real (the same seeds' folds on the same data: a t-interval of the
  paired differences); otherwise (two models trained apart, whose seed k are
  unrelated runs) Welch's unpaired interval of the difference of seed means.

All are exact formulas (no resampling): deterministic, and honest for 2-6 seeds.
One seed gives NaN limits (no spread to estimate): the verdicts read them as inconclusive.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import pandas as pd
from scipy import stats

__all__ = ["Interval", "mean_interval", "share_interval", "difference_interval"]


class Interval(NamedTuple):
    """A point estimate with its interval, over ``n`` runs (seeds) or trials."""

    estimate: float
    low: float
    high: float
    n: int


def _check_ci(ci: float) -> None:
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), got {ci}")


def _seed_means(values: Sequence[float] | np.ndarray | pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-seed means (NaN cells skipped, all-NaN seeds dropped) and the 2-D table, if any."""
    x = np.asarray(values, dtype=float)
    if x.ndim == 1:
        return x[~np.isnan(x)], None
    if x.ndim != 2:
        raise ValueError(f"values must be 1-D (seeds) or 2-D (seeds x units), got {x.ndim}-D")
    x = x[~np.isnan(x).all(axis=1)]
    with np.errstate(invalid="ignore"):
        return np.nanmean(x, axis=1) if x.size else np.empty(0), x


def mean_interval(
    values: Sequence[float] | np.ndarray | pd.DataFrame, ci: float = 0.95, design: str = "crossed",
) -> Interval:
    """Student-t interval of a mean over seeds (seed means: a 2-D table is averaged within each seed first).

    Parameters
    ----------
    values : array-like, shape (R,) or (R, C)
        One value per seed, or one per (seed, actor or fold); NaNs are skipped.
    ci : float, default 0.95
    design : {"crossed", "nested"}, default "crossed"
        For a 2-D table: the same columns in every seed (their spread is added,
        see the module text), or each seed's own columns (already in the seed means).

    Returns
    -------
    Interval
        ``estimate`` (mean of the seed means), ``low``, ``high``, ``n`` (seeds).
        One seed: NaN limits.

    Examples
    --------
    >>> ci = mean_interval([1.0, 2.0, 3.0])   # mean 2, s = 1, t(0.975, 2) = 4.303
    >>> round(ci.estimate, 3), round(ci.low, 3), round(ci.high, 3), ci.n
    (2.0, -0.484, 4.484, 3)
    >>> table = [[0.2, 0.4], [0.3, 0.5]]      # 2 seeds x 2 actors: the actors' spread widens it
    >>> bool(mean_interval(table).high > mean_interval(table, design="nested").high)
    True
    """
    _check_ci(ci)
    if design not in ("crossed", "nested"):
        raise ValueError(f"design must be 'crossed' or 'nested', got {design!r}")
    means, table = _seed_means(values)
    if means.size == 0:
        raise ValueError("mean_interval needs at least one (non-NaN) value")
    est, r = float(means.mean()), means.size
    if r < 2:
        return Interval(est, np.nan, np.nan, r)
    var_r = means.var(ddof=1) / r
    se2 = float(means.var(ddof=1) / r)
    if table is not None and design == "crossed" and table.shape[1] > 1:
        with np.errstate(invalid="ignore"):
            cols = np.nanmean(table, axis=0)
        cols = cols[~np.isnan(cols)]
        se2 += float(cols.var(ddof=1) / cols.size) if cols.size > 1 else 0.0
    if se2 == 0.0:
        return Interval(est, est, est, r)
    half = float(stats.t.ppf((1.0 + ci) / 2.0, r - 1)) * np.sqrt(se2)
    return Interval(est, float(est - half), float(est + half), r)


def share_interval(k: int, n: int, ci: float = 0.95) -> Interval:
    """Exact (Clopper-Pearson) interval of a share ``k`` of ``n``.

    Examples
    --------
    >>> ci = share_interval(0, 3)
    >>> ci.estimate, ci.low, round(ci.high, 3), ci.n
    (0.0, 0.0, 0.708, 3)
    >>> [round(v, 3) for v in share_interval(3, 6)[:3]]
    [0.5, 0.118, 0.882]
    """
    _check_ci(ci)
    k, n = int(k), int(n)
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    a = (1.0 - ci) / 2.0
    low = 0.0 if k == 0 else float(stats.beta.ppf(a, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1.0 - a, k + 1, n - k))
    return Interval(k / n, low, high, n)


def difference_interval(
    a: Sequence[float] | np.ndarray | pd.DataFrame,
    b: Sequence[float] | np.ndarray | pd.DataFrame,
    paired: bool = False,
    ci: float = 0.95,
) -> Interval:
    """Interval of mean(a) - mean(b): paired t where the pairing is real, else Welch over seed means.

    Parameters
    ----------
    a, b : array-like, shape (R,) or (R, C)
        Values per seed (and fold). Paired: the same shape, entry by entry the
        same data (e.g. two measures of one model's folds); the differences go
        to :func:`mean_interval` (crossed). Unpaired: each side is reduced to
        its seed means, and the sides may have different numbers of seeds.
    paired : bool, default False
    ci : float, default 0.95

    Returns
    -------
    Interval
        ``n``: pairs (paired) or the smaller number of seeds (unpaired). NaN
        limits when a side has fewer than two seeds.

    Examples
    --------
    >>> d = difference_interval([0.30, 0.32, 0.31], [0.20, 0.21, 0.23])
    >>> round(d.estimate, 3), bool(d.low > 0)
    (0.097, True)
    >>> difference_interval([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]).estimate   # two copies: difference 0
    0.0
    """
    if paired:
        a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
        if a_arr.shape != b_arr.shape:
            raise ValueError(f"paired values need the same shape, got {a_arr.shape} and {b_arr.shape}")
        return mean_interval(a_arr - b_arr, ci)
    _check_ci(ci)
    (ma, _), (mb, _) = _seed_means(a), _seed_means(b)
    if ma.size == 0 or mb.size == 0:
        raise ValueError("difference_interval needs at least one (non-NaN) value on each side")
    est, n = float(ma.mean() - mb.mean()), int(min(ma.size, mb.size))
    if n < 2:
        return Interval(est, np.nan, np.nan, n)
    va, vb = ma.var(ddof=1) / ma.size, mb.var(ddof=1) / mb.size
    se2 = va + vb
    if se2 == 0.0:
        return Interval(est, est, est, n)
    df = se2 ** 2 / ((va ** 2 / (ma.size - 1) if va else 0.0) + (vb ** 2 / (mb.size - 1) if vb else 0.0))
    half = float(stats.t.ppf((1.0 + ci) / 2.0, df)) * np.sqrt(se2)
    return Interval(est, float(est - half), float(est + half), n)

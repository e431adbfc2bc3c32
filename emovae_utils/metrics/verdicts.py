"""Decision rules for the report's claims: intervals over runs, multiple-testing control, verdicts.

A claim is decided from several runs (seeds, folds), never from one: each rule
turns per-run numbers into a statistic with a 95 % interval
(:mod:`~emovae_utils.metrics.intervals`: t over seed means, Clopper-Pearson for
shares, Welch across models) and a verdict, ``"holds"``, ``"does not hold"``,
``"inconclusive"`` (the interval does not separate the claim from its negation)
or ``"inconclusive (underpowered)"`` (an absence the test could not have seen). :func:`verdict_row` and
:func:`write_verdicts` give the one table every claim ends in
(``figures/verdicts.csv``, columns :data:`VERDICT_COLUMNS`).

* :func:`bootstrap_ci`, :func:`hierarchical_bootstrap_ci`: percentile
  intervals of a mean over runs, or over two levels (descriptive tables only;
  verdicts use :mod:`~emovae_utils.metrics.intervals`).
* :func:`interval_verdict`: the verdict of an interval against a threshold.
* :func:`difference_verdict`: claim (b)-style comparisons (paired only over the same data).
* :func:`count_verdict`: claim (a)-style counts ("3 of 8 dimensions") over seeds.
* :func:`permutation_pvalues`, :func:`holm`, :func:`holm_adjusted`,
  :func:`bias_corrected_nmi`: which latent dimensions beat the permutation null
  of their mutual information, corrected for testing all of them.
* :func:`claim_a_row`, :func:`claim_b_row`, :func:`convergence_row`,
  :func:`not_converged_row`: the rows of ``verdicts.csv``, one per claim.

All functions are pure and deterministic (seeded by ``random_state``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from ..io import atomic_write
from .information import _binned_factors, _null_mi, factor_entropy, latent_factor_mi
from .intervals import Interval, difference_interval, mean_interval, share_interval

__all__ = [
    "VERDICTS", "VERDICT_COLUMNS", "Interval",
    "bootstrap_ci", "hierarchical_bootstrap_ci", "interval_verdict", "difference_verdict", "count_verdict",
    "holm", "holm_adjusted", "permutation_pvalues", "bias_corrected_nmi", "verdict_row", "write_verdicts",
    "claim_a_text", "claim_a_row", "claim_b_row", "convergence_row", "not_converged_row",
]

#: The three verdicts a claim can get.
VERDICTS: tuple[str, ...] = ("holds", "does not hold", "inconclusive", "inconclusive (underpowered)")
#: Columns of ``verdicts.csv``, in order.
VERDICT_COLUMNS: tuple[str, ...] = ("claim", "verdict", "rule", "statistic", "ci_low", "ci_high", "n_runs")

_CHUNK = 2_000_000  # resampled values held at once


def _tails(ci: float) -> tuple[float, float]:
    if not 0.0 < ci < 1.0:
        raise ValueError(f"ci must be in (0, 1), got {ci}")
    return (1.0 - ci) / 2.0, (1.0 + ci) / 2.0


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    n_boot: int = 10000,
    ci: float = 0.95,
    random_state: int = 0,
    statistic: Callable[..., np.ndarray] = np.mean,
) -> Interval:
    """Percentile bootstrap interval of a statistic (default the mean) of independent values.

    Parameters
    ----------
    values : array-like, 1-D
        One value per run (e.g. per seed); NaNs are dropped.
    n_boot : int, default 10000
        Resamples (with replacement, same size).
    ci : float, default 0.95
        Coverage of the interval.
    random_state : int, default 0
    statistic : callable, default np.mean
        ``statistic(array, axis=1)`` for a (n_boot, n) array of resamples, e.g. ``np.median``.

    Returns
    -------
    Interval
        ``estimate`` (the statistic of ``values``), ``low``, ``high``, ``n``.
        One value gives a zero-width interval (no spread to resample: report ``n``).

    Examples
    --------
    >>> ci = bootstrap_ci([0.19, 0.24, 0.21, 0.22, 0.20])
    >>> round(ci.estimate, 3), ci.low < ci.estimate < ci.high, ci.n
    (0.212, True, 5)
    """
    x = np.asarray(values, dtype=float).ravel()
    x = x[~np.isnan(x)]
    if x.size == 0:
        raise ValueError("bootstrap_ci needs at least one (non-NaN) value")
    lo_q, hi_q = _tails(ci)
    rng = np.random.default_rng(random_state)
    stats = np.empty(int(n_boot))
    step = max(1, _CHUNK // x.size)
    for start in range(0, int(n_boot), step):
        k = min(step, int(n_boot) - start)
        stats[start:start + k] = statistic(x[rng.integers(0, x.size, size=(k, x.size))], axis=1)
    low, high = np.quantile(stats, [lo_q, hi_q])
    return Interval(float(statistic(x[np.newaxis, :], axis=1)[0]), float(low), float(high), int(x.size))


def hierarchical_bootstrap_ci(
    table: pd.DataFrame | np.ndarray,
    n_boot: int = 10000,
    ci: float = 0.95,
    random_state: int = 0,
    design: str = "crossed",
) -> Interval:
    """Bootstrap interval of a grand mean over two levels, e.g. seeds (rows) x actors or folds (columns).

    Both sources of variation are resampled: rows with replacement, and
    columns with replacement, so the interval covers a new seed *and* new
    speakers. The estimate is the mean of all cells (NaN cells are skipped).

    Parameters
    ----------
    table : pandas.DataFrame or array, shape (R, C)
        One value per (run, unit), e.g. a probe's recall per seed and held-out actor.
    n_boot, ci, random_state
        As in :func:`bootstrap_ci`.
    design : {"crossed", "nested"}, default "crossed"
        ``"crossed"``: the same columns in every row (the same actors for each
        seed): one column resample per bootstrap draw, shared by all rows.
        ``"nested"``: the columns of each row are its own units: each resampled
        row gets its own column resample.

    Returns
    -------
    Interval
        ``n`` is the number of rows (runs).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> table = 0.25 + 0.02 * rng.standard_normal((5, 1)) + 0.05 * rng.standard_normal((5, 24))
    >>> ci, seeds_only = hierarchical_bootstrap_ci(table), bootstrap_ci(table.mean(axis=1))
    >>> ci.low < ci.estimate < ci.high, ci.n, ci.high - ci.low > seeds_only.high - seeds_only.low  # actors add spread
    (True, 5, True)
    """
    t = np.asarray(table, dtype=float)
    if t.ndim != 2 or t.size == 0:
        raise ValueError(f"table must be a non-empty 2-D (runs x units) array, got shape {t.shape}")
    if design not in ("crossed", "nested"):
        raise ValueError(f"design must be 'crossed' or 'nested', got {design!r}")
    if np.isnan(t).all():
        raise ValueError("table holds only NaN")
    lo_q, hi_q = _tails(ci)
    R, C = t.shape
    rng = np.random.default_rng(random_state)
    stats = np.empty(int(n_boot))
    step = max(1, _CHUNK // (R * C))
    with np.errstate(invalid="ignore"):
        for start in range(0, int(n_boot), step):
            k = min(step, int(n_boot) - start)
            rows = rng.integers(0, R, size=(k, R))
            if design == "crossed":
                cols = rng.integers(0, C, size=(k, 1, C))
            else:
                cols = rng.integers(0, C, size=(k, R, C))
            stats[start:start + k] = np.nanmean(t[rows[:, :, None], cols], axis=(1, 2))
    stats = stats[~np.isnan(stats)]
    low, high = np.quantile(stats, [lo_q, hi_q])
    return Interval(float(np.nanmean(t)), float(low), float(high), int(R))


def interval_verdict(low: float, high: float, threshold: float = 0.0, direction: str = "greater") -> str:
    """The verdict of an interval on a claim "the quantity is above (or below) ``threshold``".

    Parameters
    ----------
    low, high : float
        Interval of the quantity.
    threshold : float, default 0
    direction : {"greater", "less"}
        The claim: quantity > threshold, or quantity < threshold.

    Returns
    -------
    str
        ``"holds"`` when the whole interval is on the claimed side,
        ``"does not hold"`` when it is wholly on the other side (or on the
        threshold), ``"inconclusive"`` when it spans the threshold.

    Examples
    --------
    >>> interval_verdict(0.01, 0.05), interval_verdict(-0.02, 0.03), interval_verdict(-0.05, -0.01)
    ('holds', 'inconclusive', 'does not hold')
    >>> interval_verdict(2.6, 3.4, threshold=2.5)
    'holds'
    """
    if direction not in ("greater", "less"):
        raise ValueError(f"direction must be 'greater' or 'less', got {direction!r}")
    if np.isnan(low) or np.isnan(high):
        return "inconclusive"
    if direction == "less":
        low, high, threshold = -high, -low, -threshold
    if low > threshold:
        return "holds"
    if high <= threshold:
        return "does not hold"
    return "inconclusive"


def difference_verdict(
    a: pd.DataFrame | np.ndarray | Sequence[float],
    b: pd.DataFrame | np.ndarray | Sequence[float],
    claim: str = "greater",
    paired: bool = False,
    ci: float = 0.95,
    what: str = "a - b",
) -> dict[str, Any]:
    """Comparison of two conditions: mean difference, its interval, verdict.

    The interval is :func:`~emovae_utils.metrics.intervals.difference_interval`.

    Claim (b), "separation is weaker with 12 actors", is ``difference_verdict(
    one_actor, twelve_actors, claim="greater")``: two models trained apart, so
    unpaired (Welch over their seed means; seed k of one model has nothing to do
    with seed k of the other). ``paired=True`` only where entries share the
    data (two measures of the same model's folds).

    Parameters
    ----------
    a, b : array-like, 1-D (seeds) or 2-D (seeds x folds)
        The measure in each condition; unpaired sides may differ in seeds.
    claim : {"greater", "less"}, default "greater"
        The claim is a > b (or a < b).
    paired : bool, default False
    ci : float, default 0.95
    what : str
        Name of the difference for the ``rule`` text.

    Returns
    -------
    dict
        ``verdict`` (``"holds"`` when the interval of the difference is wholly on
        the claimed side of 0, ``"does not hold"`` when wholly on the other,
        ``"inconclusive"`` when it spans 0), ``rule``, ``statistic``, ``ci_low``,
        ``ci_high``, ``n_runs``: the arguments of :func:`verdict_row` but ``claim``.

    Examples
    --------
    >>> out = difference_verdict([0.20, 0.22, 0.19], [0.25, 0.21, 0.23])
    >>> out["verdict"], round(out["statistic"], 3), out["n_runs"]
    ('inconclusive', -0.027, 3)
    >>> difference_verdict([0.3, 0.32, 0.31, 0.33], [0.2, 0.21, 0.2, 0.22])["verdict"]
    'holds'
    """
    interval = difference_interval(a, b, paired, ci)
    sign = ">" if claim == "greater" else "<"
    how = "paired t-interval over the same runs" if paired else "Welch t-interval of the difference of seed means"
    return {
        "verdict": interval_verdict(interval.low, interval.high, 0.0, claim),
        "rule": f"claim {what} {sign} 0: {ci:.0%} {how}; inconclusive when it spans 0",
        "statistic": interval.estimate,
        "ci_low": interval.low,
        "ci_high": interval.high,
        "n_runs": interval.n,
    }


def count_verdict(
    counts_per_seed: Sequence[int] | np.ndarray,
    claimed: int,
    mode: str = "at_least",
    margin: float = 0.5,
    ci: float = 0.95,
    what: str = "dimensions that separate emotions",
) -> dict[str, Any]:
    """Verdict on a claimed count ("3 of 8 dimensions separate emotions") from its count in each seed.

    The statistic is the mean count over seeds with a t-interval over seeds
    (:func:`~emovae_utils.metrics.intervals.mean_interval`); the claim is met by
    a mean count of at least ``claimed - margin`` (with ``margin=0.5``: nearer
    ``claimed`` than ``claimed - 1``).

    Parameters
    ----------
    counts_per_seed : array-like of int
        The count of each run (e.g. active dimensions whose NMI beats the
        Holm-corrected permutation null, per seed).
    claimed : int
        The count the claim states.
    mode : {"at_least", "exactly"}, default "at_least"
        ``"at_least"``: holds when the interval lies at or above
        ``claimed - margin``, does not hold when it lies below.
        ``"exactly"``: holds when the interval lies within
        ``claimed ± margin``, does not hold when it lies wholly outside.
        Otherwise (and with one seed) inconclusive.
    margin : float, default 0.5
    ci : float, default 0.95
    what : str
        What is counted, for the ``rule`` text.

    Returns
    -------
    dict
        ``verdict``, ``rule``, ``statistic`` (mean count), ``ci_low``,
        ``ci_high``, ``n_runs``: the arguments of :func:`verdict_row` but ``claim``.

    Examples
    --------
    >>> count_verdict([0, 1, 0, 0, 1], claimed=3)["verdict"]
    'does not hold'
    >>> count_verdict([3, 3, 4, 3, 3], claimed=3)["verdict"]
    'holds'
    >>> count_verdict([0, 4, 1, 5, 3], claimed=3)["verdict"]
    'inconclusive'
    """
    if mode not in ("at_least", "exactly"):
        raise ValueError(f"mode must be 'at_least' or 'exactly', got {mode!r}")
    interval = mean_interval(np.asarray(counts_per_seed, dtype=float), ci)
    lo, hi = claimed - margin, claimed + margin
    if np.isnan(interval.low):
        verdict = "inconclusive"
        cond = f">= {lo:g}" if mode == "at_least" else f"within [{lo:g}, {hi:g}]"
    elif mode == "at_least":
        verdict = "holds" if interval.low >= lo else "does not hold" if interval.high < lo else "inconclusive"
        cond = f">= {lo:g}"
    else:
        inside = lo <= interval.low and interval.high <= hi
        outside = interval.high < lo or interval.low > hi
        verdict = "holds" if inside else "does not hold" if outside else "inconclusive"
        cond = f"within [{lo:g}, {hi:g}]"
    return {
        "verdict": verdict,
        "rule": (f"mean count of {what} over seeds {cond} (claimed {claimed}), {ci:.0%} t-interval over seeds; "
                 "holds when the whole interval meets it, does not hold when none does, else inconclusive"),
        "statistic": interval.estimate,
        "ci_low": interval.low,
        "ci_high": interval.high,
        "n_runs": interval.n,
    }


def holm_adjusted(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1); NaNs stay NaN and are not counted.

    Examples
    --------
    >>> holm_adjusted([0.01, 0.04, 0.03, 0.005]).round(3).tolist()
    [0.03, 0.06, 0.06, 0.02]
    """
    p = np.asarray(pvalues, dtype=float)
    flat = p.ravel()
    out = np.full(flat.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(flat))
    m = ok.size
    if m:
        order = ok[np.argsort(flat[ok], kind="stable")]
        scaled = (m - np.arange(m)) * flat[order]
        out[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return out.reshape(p.shape)


def holm(pvalues: Sequence[float] | np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Holm–Bonferroni step-down test: which hypotheses to reject at family-wise level ``alpha``.

    The p-values are sorted; the k-th smallest (k = 0, 1, ...) is rejected
    while it is at most ``alpha / (m - k)``; testing stops at the first that is not.

    Parameters
    ----------
    pvalues : array-like
        Any shape; NaNs are not tested (not rejected, not counted in m).
    alpha : float, default 0.05

    Returns
    -------
    np.ndarray of bool
        Reject mask, the shape of ``pvalues``.

    Examples
    --------
    >>> holm([0.01, 0.04, 0.03, 0.005]).tolist()
    [True, False, False, True]
    """
    return np.nan_to_num(holm_adjusted(pvalues), nan=np.inf) <= alpha


def permutation_pvalues(
    codes: np.ndarray,
    factors: pd.DataFrame,
    n_bins: int = 20,
    n_permutations: int = 1000,
    random_state: int = 0,
    *,
    strategy: str = "uniform",
) -> pd.DataFrame:
    """Permutation p-value of the mutual information of every code dimension with every factor.

    The same estimator as :func:`~emovae_utils.metrics.information.latent_factor_mi`
    (equal-width bins, or equal-count with ``strategy="quantile"``); the null shuffles each factor's labels (the same
    shuffles for every dimension, as :func:`~emovae_utils.metrics.information.mi_permutation_null`).
    ``p = (1 + #{null MI >= observed}) / (1 + n_permutations)``, never 0.

    Parameters
    ----------
    codes : np.ndarray, shape (N, D)
    factors : pandas.DataFrame, N rows of discrete columns
    n_bins : int, default 20
    n_permutations : int, default 1000
        The smallest possible p-value is ``1 / (n_permutations + 1)``: with
        Holm over D dimensions, ``n_permutations`` must exceed ``D / alpha``.
    random_state : int, default 0
    strategy : {"uniform", "quantile"}, default "uniform"
        Equal-width or equal-count bins (:func:`~emovae_utils.metrics.information.discretize_codes`).

    Returns
    -------
    pandas.DataFrame
        One row per (dim, factor): ``dim``, ``factor``, ``mi`` (nats),
        ``nmi`` (MI / H(f)), ``null_mean`` and ``null_nmi_mean`` (mean of the
        null, the estimator's bias), ``pvalue``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> emotion = np.repeat(np.arange(8), 30)
    >>> codes = np.column_stack([emotion + rng.normal(0, 1, 240), rng.standard_normal(240)])
    >>> out = permutation_pvalues(codes, pd.DataFrame({"emotion": emotion}), n_bins=10, n_permutations=200)
    >>> out["pvalue"].round(3).tolist(), bool(out["null_nmi_mean"].between(0.01, 0.2).all())
    ([0.005, 0.224], True)
    """
    observed = latent_factor_mi(codes, factors, n_bins, strategy=strategy)
    entropy = factor_entropy(factors)
    binned, encoded = _binned_factors(codes, factors, n_bins, strategy)
    rng = np.random.default_rng(random_state)
    rows = []
    for name, labels in encoded.items():
        null = _null_mi(binned, labels, n_permutations, rng)  # (P, D)
        obs = observed[name].to_numpy()
        h = float(entropy[name]) or np.nan
        for d in range(binned.shape[1]):
            rows.append({
                "dim": d, "factor": name, "mi": float(obs[d]), "nmi": float(obs[d] / h),
                "null_mean": float(null[:, d].mean()), "null_nmi_mean": float(null[:, d].mean() / h),
                "pvalue": float((1 + np.sum(null[:, d] >= obs[d] - 1e-12)) / (1 + n_permutations)),
            })
    return pd.DataFrame(rows)


def bias_corrected_nmi(nmi: Any, null_mean: Any, clip: bool = False) -> Any:
    """Normalised MI minus its permutation-null mean (the estimator's bias for that many clips and bins).

    Parameters
    ----------
    nmi, null_mean : float, array, Series or DataFrame
        Aligned values (e.g. the ``nmi`` and ``null_nmi_mean`` columns of
        :func:`permutation_pvalues`).
    clip : bool, default False
        Clip negative values (dimensions below their null) to 0.

    Returns
    -------
    Same type as ``nmi - null_mean``.

    Examples
    --------
    >>> round(bias_corrected_nmi(0.108, 0.045), 3), bias_corrected_nmi(0.04, 0.045, clip=True)
    (0.063, 0.0)
    """
    out = nmi - null_mean
    if clip:
        out = np.maximum(out, 0.0) if not isinstance(out, (pd.Series, pd.DataFrame)) else out.clip(lower=0.0)
        if isinstance(out, np.generic):
            out = float(out)
    return out


def verdict_row(
    claim: str, verdict: str, rule: str, statistic: float, ci_low: float, ci_high: float, n_runs: int,
) -> dict[str, Any]:
    """One row of ``verdicts.csv``, checked.

    Examples
    --------
    >>> verdict_row("(b) separation weaker with 12 actors", "inconclusive", "paired", -0.03, -0.07, 0.01, 5)["verdict"]
    'inconclusive'
    """
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    if not claim or not rule:
        raise ValueError("a verdict row needs the claim and the rule in words")
    return {"claim": str(claim), "verdict": verdict, "rule": str(rule), "statistic": float(statistic),
            "ci_low": float(ci_low), "ci_high": float(ci_high), "n_runs": int(n_runs)}


def write_verdicts(rows: Iterable[Mapping[str, Any]], path: str | os.PathLike) -> pd.DataFrame:
    """Write the verdicts table (CSV, exactly :data:`VERDICT_COLUMNS`) atomically.

    Parameters
    ----------
    rows : iterable of mappings
        Rows of :func:`verdict_row` (each is checked again).
    path : path-like
        E.g. ``figures/verdicts.csv``.

    Returns
    -------
    pandas.DataFrame
        The table written.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "verdicts.csv"
    >>> row = verdict_row("(a) 3 of 8 dimensions", "does not hold", "count", 0.4, 0.0, 0.8, 5)
    >>> list(write_verdicts([row], out).columns) == list(VERDICT_COLUMNS)
    True
    """
    checked = [verdict_row(**{k: r[k] for k in VERDICT_COLUMNS}) for r in rows]
    table = pd.DataFrame(checked, columns=list(VERDICT_COLUMNS))
    atomic_write(Path(path), lambda p: table.to_csv(p, index=False, float_format="%.6g"))
    return table


def claim_a_text(claimed: int = 3, where: str = "all 24 actors' clips", encoder: str = "one-actor encoder",
                 n_dims: int = 8) -> str:
    """The claim (a) text of :func:`claim_a_row` (its controls are recorded under it).

    Examples
    --------
    >>> claim_a_text(where="Actor 01's 30 clips")
    "(a) 3 of 8 latent dimensions separate emotions (one-actor encoder, Actor 01's 30 clips)"
    """
    return f"(a) {claimed} of {n_dims} latent dimensions separate emotions ({encoder}, {where})"


def claim_a_row(
    counts_per_seed: Sequence[int] | np.ndarray,
    claimed: int = 3,
    where: str = "all 24 actors' clips",
    *,
    encoder: str = "one-actor encoder",
    n_dims: int = 8,
    mode: str = "at_least",
    margin: float = 0.5,
    ci: float = 0.95,
    power: float | None = None,
    effect: str = "eta² 0.5",
    min_power: float = 0.8,
) -> dict[str, Any]:
    """Verdict row of claim (a), "3 of 8 latent dimensions separate emotions", from its count per seed.

    The count rule is :func:`count_verdict`. Power comes before absence: a
    "does not hold" becomes ``"inconclusive (underpowered)"`` when the test's
    simulated power at the effect the report implies
    (:func:`~emovae_utils.metrics.controls.separation_power`) is below ``min_power``.

    Parameters
    ----------
    counts_per_seed : array-like of int
        Per seed, the dimensions that separate emotions: active, with a
        Holm-corrected permutation p-value at most alpha
        (``emotion_dimensions(...)["separates"].sum()`` of :mod:`~emovae_utils.metrics.latents`).
    claimed : int, default 3
    where : str, default "all 24 actors' clips"
        Which clips were encoded.
    encoder : str, default "one-actor encoder"
        Which model, for the claim text.
    n_dims : int, default 8
        Latent size, for the claim text.
    mode, margin, ci
        As in :func:`count_verdict`.
    power : float, optional
        Share of planted dimensions the same test detects at ``effect``; None: not checked.
    effect : str
        The planted effect, for the rule text.
    min_power : float, default 0.8

    Returns
    -------
    dict
        A :func:`verdict_row`: exactly :data:`VERDICT_COLUMNS`.

    Examples
    --------
    >>> row = claim_a_row([1, 0, 1, 1, 0])
    >>> row["claim"], row["verdict"]
    ("(a) 3 of 8 latent dimensions separate emotions (one-actor encoder, all 24 actors' clips)", 'does not hold')
    >>> claim_a_row([1, 0, 1, 1, 0], power=0.22)["verdict"]
    'inconclusive (underpowered)'
    """
    claim = claim_a_text(claimed, where, encoder, n_dims)
    what = "active dimensions whose emotion MI beats the Holm-corrected permutation null"
    out = count_verdict(counts_per_seed, claimed, mode, margin, ci, what)
    if power is not None:
        out["rule"] += (f"; power first: a 'does not hold' is 'inconclusive (underpowered)' when the same test finds "
                        f"a planted dimension ({effect}) in under {min_power:.0%} of simulations (here {power:.0%})")
        if out["verdict"] == "does not hold" and power < min_power:
            out["verdict"] = "inconclusive (underpowered)"
    return verdict_row(claim, **out)


def claim_b_row(
    one: pd.DataFrame | np.ndarray | Sequence[float],
    twelve: pd.DataFrame | np.ndarray | Sequence[float],
    measure: str = "emotion UAR",
    *,
    ci: float = 0.95,
) -> dict[str, Any]:
    """Verdict row of claim (b), "emotion separation is weaker with 12 actors than with one", on one measure.

    Parameters
    ----------
    one, twelve : array-like, 1-D (seeds) or 2-D (seeds x folds)
        The measure of the one-actor and of the 12-actor encoder (larger: more
        separation). The two models were trained apart, so their seeds are not
        paired: :func:`difference_verdict` with ``paired=False`` (Welch over seed
        means, each seed's folds averaged first).
    measure : str, default "emotion UAR"
        Name of the measure, for the claim and rule texts.
    ci : float, default 0.95

    Returns
    -------
    dict
        A :func:`verdict_row`: holds when the interval of ``one - twelve`` lies above 0.

    Examples
    --------
    >>> claim_b_row([0.30, 0.32, 0.31, 0.33], [0.20, 0.21, 0.20, 0.22])["verdict"]
    'holds'
    """
    out = difference_verdict(one, twelve, "greater", False, ci,
                             what=f"{measure} (one-actor) - {measure} (12-actor)")
    return verdict_row(f"(b) emotion separation is weaker with 12 actors than with one ({measure})", **out)


def convergence_row(
    epochs_per_seed: Sequence[float | None] | np.ndarray,
    claimed: int = 16000,
    tolerance_epochs: int = 4000,
    *,
    horizon: int | None = None,
    what: str = "losses",
    ci: float = 0.95,
) -> dict[str, Any]:
    """Verdict row of "losses flatten near epoch 16000" from the epoch each seed's loss flattens.

    A seed that never flattens (``None``/NaN, e.g. from
    :func:`~emovae_utils.convergence.flat_epoch`) is **censored**: not
    flat by the last epoch the rule can see, not "flat at the end".

    * Fewer than half the seeds flatten: the statistic is the share that does
      ("k of n flat", exact Clopper-Pearson interval); the claim **does not
      hold** when the whole interval lies below 1/2, else **inconclusive**.
    * Otherwise the statistic is the mean flat epoch of the seeds that flatten
      (t-interval over them): **holds** when every seed flattens and the
      interval lies within ``claimed ± tolerance_epochs``; **does not hold**
      when it lies wholly outside (censored seeds only push it later, so
      wholly after the window suffices); else **inconclusive**.

    Parameters
    ----------
    epochs_per_seed : array-like of int, None or NaN
        1-based flat epoch of each seed; None/NaN: not flat (censored).
    claimed : int, default 16000
    tolerance_epochs : int, default 4000
        How near is "near".
    horizon : int, optional
        The last epoch the rule can see (run length minus its window), for the rule text.
    what : str, default "losses"
        Which curve, for the claim text.
    ci : float, default 0.95

    Returns
    -------
    dict
        A :func:`verdict_row`; ``n_runs`` counts all seeds.

    Examples
    --------
    >>> [convergence_row(e)["verdict"] for e in ([15500, 16200, 17000], [15500, None, 17000], [4000, 5000, 4500])]
    ['holds', 'inconclusive', 'does not hold']
    >>> row = convergence_row([None] * 6)
    >>> row["verdict"], row["statistic"], round(row["ci_high"], 3)
    ('does not hold', 0.0, 0.459)
    """
    epochs = _flat_epochs(epochs_per_seed, "convergence_row")
    flat = epochs[~np.isnan(epochs)]
    lo, hi = claimed - tolerance_epochs, claimed + tolerance_epochs
    if 2 * flat.size < epochs.size:
        interval = share_interval(flat.size, epochs.size, ci)
        verdict = interval_verdict(interval.low, interval.high, 0.5, "less") == "holds" and "does not hold"
        verdict = verdict or "inconclusive"
    else:
        interval = mean_interval(flat, ci)._replace(n=epochs.size)
        if np.isnan(interval.low):
            verdict = "inconclusive"
        elif interval.low > hi or (flat.size == epochs.size and interval.high < lo):
            verdict = "does not hold"
        elif flat.size == epochs.size and lo <= interval.low and interval.high <= hi:
            verdict = "holds"
        else:
            verdict = "inconclusive"
    seen = f" (the rule sees up to epoch {horizon}; later is censored)" if horizon else ""
    rule = (f"seeds not flat by the end are censored{seen}; when fewer than half flatten the statistic is the share "
            f"flat (k of n, exact {ci:.0%} interval) and the claim does not hold when it lies below 1/2; else the mean "
            f"flat epoch of the seeds that flatten, {ci:.0%} t-interval: holds when every seed flattens and the "
            f"interval lies within [{lo:g}, {hi:g}], does not hold when it lies wholly outside; else inconclusive")
    claim = f"{what} flatten near epoch {claimed}"
    return verdict_row(claim, verdict, rule, interval.estimate, interval.low, interval.high, epochs.size)


def not_converged_row(
    flat_epochs_per_seed: Sequence[float | None] | np.ndarray,
    n_epochs: int,
    *,
    min_flat_epochs: int | None = None,
    where: str = "all 24 actors",
    ci: float = 0.95,
) -> dict[str, Any]:
    """Verdict row of "training on all 24 actors does not converge" (flattening sense) from where seeds flatten.

    A seed **converges** when its loss is flat (:func:`~emovae_utils.convergence.flat_epoch`)
    from an epoch at most ``n_epochs - min_flat_epochs``. The statistic is the
    share of seeds that converge with its exact (Clopper-Pearson) interval:
    the claim **holds** when the whole interval is below 1/2, **does not hold**
    when it is wholly at or above 1/2, else **inconclusive** (with 3 seeds,
    always: 0 of 3 is [0, 0.71]).

    Parameters
    ----------
    flat_epochs_per_seed : array-like of int, None or NaN
        1-based flat epoch of each seed; None/NaN: not flat.
    n_epochs : int
        Length of the runs in epochs.
    min_flat_epochs : int, optional
        Default ``n_epochs // 4``: flat over the last quarter of training.
    where : str, default "all 24 actors"
        For the claim text.
    ci : float, default 0.95

    Returns
    -------
    dict
        A :func:`verdict_row`.

    Examples
    --------
    >>> [not_converged_row(e, 20000)["verdict"] for e in ([None] * 6, [None] * 3, [9000] * 6)]
    ['holds', 'inconclusive', 'does not hold']
    """
    epochs = _flat_epochs(flat_epochs_per_seed, "not_converged_row")
    if np.nanmax(epochs, initial=0) > n_epochs:
        raise ValueError(f"a flat epoch is past the end of the runs (n_epochs={n_epochs}); pass the runs' length")
    min_flat = n_epochs // 4 if min_flat_epochs is None else int(min_flat_epochs)
    converged = int((np.nan_to_num(epochs, nan=np.inf) <= n_epochs - min_flat).sum())
    interval = share_interval(converged, epochs.size, ci)
    rule = (f"share of seeds whose loss is flat from epoch {n_epochs - min_flat} of {n_epochs} or earlier, exact "
            f"{ci:.0%} (Clopper-Pearson) interval; holds when the interval lies below 1/2, does not hold when it "
            "lies at or above 1/2, else inconclusive")
    return verdict_row(f"training on {where} does not converge (loss flattening)",
                       interval_verdict(interval.low, interval.high, 0.5, "less"), rule, interval.estimate,
                       interval.low, interval.high, interval.n)


def _flat_epochs(values: Any, caller: str) -> np.ndarray:
    """Flat epochs as floats, None / NaN / pandas.NA (not flat) as NaN."""
    epochs = np.array([np.nan if pd.isna(e) else float(e) for e in np.asarray(values, dtype=object).ravel()])
    if epochs.size == 0:
        raise ValueError(f"{caller} needs the flat epoch (or None: not flat) of at least one seed")
    return epochs

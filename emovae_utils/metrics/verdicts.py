"""Decision rules for the report's claims: intervals over runs, multiple-testing control, verdicts.

A claim is decided from several runs (seeds, folds), never from one: each rule
turns per-run numbers into a statistic with a 95 % bootstrap interval and a
verdict, ``"holds"``, ``"does not hold"`` or ``"inconclusive"`` (the interval
does not separate the claim from its negation). :func:`verdict_row` and
:func:`write_verdicts` give the one table every claim ends in
(``figures/verdicts.csv``, columns :data:`VERDICT_COLUMNS`).

* :func:`bootstrap_ci`, :func:`hierarchical_bootstrap_ci`: percentile
  intervals of a mean over runs, or over two levels (seeds x actors or folds).
* :func:`interval_verdict`: the verdict of an interval against a threshold.
* :func:`paired_difference`: claim (b)-style comparisons, paired over seeds and folds.
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
from typing import Any, Callable, Iterable, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd

from ..io import atomic_write
from .information import _binned_factors, _null_mi, factor_entropy, latent_factor_mi

__all__ = [
    "VERDICTS", "VERDICT_COLUMNS", "Interval",
    "bootstrap_ci", "hierarchical_bootstrap_ci", "interval_verdict", "paired_difference", "count_verdict",
    "holm", "holm_adjusted", "permutation_pvalues", "bias_corrected_nmi", "verdict_row", "write_verdicts",
    "claim_a_row", "claim_b_row", "convergence_row", "not_converged_row",
]

#: The three verdicts a claim can get.
VERDICTS: tuple[str, ...] = ("holds", "does not hold", "inconclusive")
#: Columns of ``verdicts.csv``, in order.
VERDICT_COLUMNS: tuple[str, ...] = ("claim", "verdict", "rule", "statistic", "ci_low", "ci_high", "n_runs")

_CHUNK = 2_000_000  # resampled values held at once


class Interval(NamedTuple):
    """A point estimate with a percentile bootstrap interval over ``n`` values (or runs)."""

    estimate: float
    low: float
    high: float
    n: int


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


def paired_difference(
    a: pd.DataFrame | np.ndarray | Sequence[float],
    b: pd.DataFrame | np.ndarray | Sequence[float],
    claim: str = "greater",
    n_boot: int = 10000,
    ci: float = 0.95,
    random_state: int = 0,
    what: str = "a - b",
) -> dict[str, Any]:
    """Paired comparison of two conditions over the same runs: mean difference, interval, verdict.

    Claim (b), "separation is weaker with 12 actors", is ``paired_difference(
    one_actor, twelve_actors, claim="greater")`` of a separation measure, each
    entry from the same seed (and fold) in both conditions.

    Parameters
    ----------
    a, b : array-like, 1-D (runs) or 2-D (seeds x folds), same shape
        The measure in each condition, paired entry by entry. 1-D: bootstrap
        over runs (:func:`bootstrap_ci`); 2-D: over seeds and folds
        (:func:`hierarchical_bootstrap_ci`, crossed). NaN pairs are skipped.
    claim : {"greater", "less"}, default "greater"
        The claim is a > b (or a < b).
    n_boot, ci, random_state
        As in :func:`bootstrap_ci`.
    what : str
        Name of the difference for the ``rule`` text.

    Returns
    -------
    dict
        ``verdict`` (``"holds"`` when the interval of the mean difference is
        wholly on the claimed side of 0, ``"does not hold"`` when wholly on the
        other, ``"inconclusive"`` when it spans 0), ``rule`` (text),
        ``statistic`` (the mean difference), ``ci_low``, ``ci_high``, ``n_runs``
        (pairs, or rows for 2-D): the arguments of :func:`verdict_row` but ``claim``.

    Examples
    --------
    >>> out = paired_difference([0.20, 0.22, 0.19], [0.25, 0.21, 0.23])
    >>> out["verdict"], round(out["statistic"], 3), out["n_runs"]
    ('inconclusive', -0.027, 3)
    >>> paired_difference([0.3, 0.32, 0.31, 0.33], [0.2, 0.21, 0.2, 0.22])["verdict"]
    'holds'
    """
    a_arr, b_arr = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"a and b must be paired (same shape), got {a_arr.shape} and {b_arr.shape}")
    d = a_arr - b_arr
    if d.ndim == 1:
        interval = bootstrap_ci(d, n_boot, ci, random_state)
        over = "runs"
    elif d.ndim == 2:
        interval = hierarchical_bootstrap_ci(d, n_boot, ci, random_state, design="crossed")
        over = "seeds and folds"
    else:
        raise ValueError(f"a and b must be 1-D (runs) or 2-D (seeds x folds), got {d.ndim}-D")
    sign = ">" if claim == "greater" else "<"
    return {
        "verdict": interval_verdict(interval.low, interval.high, 0.0, claim),
        "rule": (f"claim {what} {sign} 0: mean paired difference, {ci:.0%} bootstrap interval over {over}; "
                 "inconclusive when it spans 0"),
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
    n_boot: int = 10000,
    ci: float = 0.95,
    random_state: int = 0,
    what: str = "dimensions that separate emotions",
) -> dict[str, Any]:
    """Verdict on a claimed count ("3 of 8 dimensions separate emotions") from its count in each seed.

    The statistic is the mean count over seeds with a bootstrap interval
    (:func:`bootstrap_ci`); the claim is met by a mean count of at least
    ``claimed - margin`` (with ``margin=0.5``: nearer ``claimed`` than ``claimed - 1``).

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
        Otherwise inconclusive.
    margin : float, default 0.5
    n_boot, ci, random_state
        As in :func:`bootstrap_ci`.
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
    counts = np.asarray(counts_per_seed, dtype=float)
    if mode not in ("at_least", "exactly"):
        raise ValueError(f"mode must be 'at_least' or 'exactly', got {mode!r}")
    interval = bootstrap_ci(counts, n_boot, ci, random_state)
    lo, hi = claimed - margin, claimed + margin
    if mode == "at_least":
        verdict = "holds" if interval.low >= lo else "does not hold" if interval.high < lo else "inconclusive"
        cond = f">= {lo:g}"
    else:
        inside = lo <= interval.low and interval.high <= hi
        outside = interval.high < lo or interval.low > hi
        verdict = "holds" if inside else "does not hold" if outside else "inconclusive"
        cond = f"within [{lo:g}, {hi:g}]"
    return {
        "verdict": verdict,
        "rule": (f"mean count of {what} over seeds {cond} (claimed {claimed}), {ci:.0%} bootstrap interval; "
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


def claim_a_row(
    counts_per_seed: Sequence[int] | np.ndarray,
    claimed: int = 3,
    where: str = "all 24 actors' clips",
    *,
    encoder: str = "one-actor encoder",
    n_dims: int = 8,
    mode: str = "at_least",
    margin: float = 0.5,
    n_boot: int = 10000,
    ci: float = 0.95,
    random_state: int = 0,
) -> dict[str, Any]:
    """Verdict row of claim (a), "3 of 8 latent dimensions separate emotions", from its count per seed.

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
    mode, margin, n_boot, ci, random_state
        As in :func:`count_verdict`.

    Returns
    -------
    dict
        A :func:`verdict_row`: exactly :data:`VERDICT_COLUMNS`.

    Examples
    --------
    >>> row = claim_a_row([1, 0, 1, 1, 0])
    >>> row["claim"], row["verdict"]
    ("(a) 3 of 8 latent dimensions separate emotions (one-actor encoder, all 24 actors' clips)", 'does not hold')
    """
    claim = f"(a) {claimed} of {n_dims} latent dimensions separate emotions ({encoder}, {where})"
    what = "active dimensions whose emotion MI beats the Holm-corrected permutation null"
    return verdict_row(claim, **count_verdict(counts_per_seed, claimed, mode, margin, n_boot, ci, random_state, what))


def claim_b_row(
    one: pd.DataFrame | np.ndarray | Sequence[float],
    twelve: pd.DataFrame | np.ndarray | Sequence[float],
    measure: str = "emotion UAR",
    *,
    n_boot: int = 10000,
    ci: float = 0.95,
    random_state: int = 0,
) -> dict[str, Any]:
    """Verdict row of claim (b), "emotion separation is weaker with 12 actors than with one", on one measure.

    Parameters
    ----------
    one, twelve : array-like, 1-D (runs) or 2-D (seeds x folds), same shape
        The measure of the one-actor and of the 12-actor encoder, paired entry
        by entry (same seed, same fold, same clips). Larger must mean more
        separation (UAR, normalised MI, a count of dimensions).
    measure : str, default "emotion UAR"
        Name of the measure, for the claim and rule texts.
    n_boot, ci, random_state
        As in :func:`paired_difference`.

    Returns
    -------
    dict
        A :func:`verdict_row` of :func:`paired_difference` ``(one, twelve,
        claim="greater")``: holds when the interval of the mean of
        ``one - twelve`` lies above 0.

    Examples
    --------
    >>> claim_b_row([0.30, 0.32, 0.31, 0.33], [0.20, 0.21, 0.20, 0.22])["verdict"]
    'holds'
    """
    out = paired_difference(one, twelve, "greater", n_boot, ci, random_state,
                            what=f"{measure} (one-actor) - {measure} (12-actor)")
    return verdict_row(f"(b) emotion separation is weaker with 12 actors than with one ({measure})", **out)


def convergence_row(
    epochs_per_seed: Sequence[float | None] | np.ndarray,
    claimed: int = 16000,
    tolerance_epochs: int = 4000,
    *,
    what: str = "losses",
    n_boot: int = 10000,
    ci: float = 0.95,
    random_state: int = 0,
) -> dict[str, Any]:
    """Verdict row of "losses flatten near epoch 16000" from the epoch each seed's loss flattens.

    The statistic is the mean flat epoch over the seeds that flatten, with a
    bootstrap interval over those seeds (:func:`bootstrap_ci`). A seed whose
    loss never flattens (``None`` or NaN, e.g. from
    :func:`~emovae_utils.metrics.convergence.flat_by_slope`) counts against the claim:

    * **holds** when every seed flattens and the interval lies within
      ``claimed ± tolerance_epochs``;
    * **does not hold** when fewer than half the seeds flatten, or the
      interval lies wholly outside ``claimed ± tolerance_epochs``;
    * **inconclusive** otherwise.

    Parameters
    ----------
    epochs_per_seed : array-like of int, None or NaN
        1-based flat epoch of each seed; None/NaN: not flat by the end of the run.
    claimed : int, default 16000
    tolerance_epochs : int, default 4000
        How near is "near".
    what : str, default "losses"
        Which curve, for the claim text.
    n_boot, ci, random_state
        As in :func:`bootstrap_ci`.

    Returns
    -------
    dict
        A :func:`verdict_row`; ``n_runs`` counts all seeds, ``statistic`` and
        the interval are NaN when no seed flattens.

    Examples
    --------
    >>> [convergence_row(e)["verdict"] for e in ([15500, 16200, 17000], [15500, None, 17000], [4000, 5000, 4500])]
    ['holds', 'inconclusive', 'does not hold']
    """
    epochs = _flat_epochs(epochs_per_seed, "convergence_row")
    flat = epochs[~np.isnan(epochs)]
    lo, hi = claimed - tolerance_epochs, claimed + tolerance_epochs
    interval = bootstrap_ci(flat, n_boot, ci, random_state) if flat.size else Interval(np.nan, np.nan, np.nan, 0)
    if 2 * flat.size < epochs.size or interval.high < lo or interval.low > hi:
        verdict = "does not hold"
    elif flat.size == epochs.size and lo <= interval.low and interval.high <= hi:
        verdict = "holds"
    else:
        verdict = "inconclusive"
    rule = (f"mean epoch at which the loss flattens, {ci:.0%} bootstrap interval over the seeds that flatten; "
            f"holds when every seed flattens and the interval lies within [{lo:g}, {hi:g}]; does not hold when "
            "fewer than half the seeds flatten or the interval lies wholly outside; else inconclusive")
    return verdict_row(f"{what} flatten near epoch {claimed}", verdict, rule, interval.estimate, interval.low,
                       interval.high, epochs.size)


def not_converged_row(
    flat_epochs_per_seed: Sequence[float | None] | np.ndarray,
    n_epochs: int,
    *,
    min_flat_epochs: int | None = None,
    where: str = "all 24 actors",
    n_boot: int = 10000,
    ci: float = 0.95,
    random_state: int = 0,
) -> dict[str, Any]:
    """Verdict row of "training on all 24 actors does not converge" from where each seed's loss flattens.

    A seed **converges** when the slope rule
    (:func:`~emovae_utils.metrics.convergence.flat_by_slope`) finds its loss
    flat from an epoch at most ``n_epochs - min_flat_epochs``: its final slope
    stayed below the rule's tolerance over at least the last
    ``min_flat_epochs`` epochs. A seed still changing at the end (``None``)
    does not converge, nor does one that flattened only within the last
    ``min_flat_epochs`` (too short a flat stretch to call it converged).

    The statistic is the share of seeds that converge, with a bootstrap
    interval over seeds: the claim **holds** when the whole interval is below
    1/2 (e.g. no seed of 5 converges), **does not hold** when it is wholly at
    or above 1/2 (most seeds converge), else **inconclusive**.

    Parameters
    ----------
    flat_epochs_per_seed : array-like of int, None or NaN
        1-based flat epoch of each seed's loss by the slope rule; None/NaN: not flat.
    n_epochs : int
        Length of the runs in epochs.
    min_flat_epochs : int, optional
        Default ``n_epochs // 4``: flat over the last quarter of training.
    where : str, default "all 24 actors"
        For the claim text.
    n_boot, ci, random_state
        As in :func:`bootstrap_ci`.

    Returns
    -------
    dict
        A :func:`verdict_row`.

    Examples
    --------
    >>> [not_converged_row(e, 20000)["verdict"] for e in ([None] * 5, [None, None, 19500, None, None], [9000] * 5)]
    ['holds', 'holds', 'does not hold']
    """
    epochs = _flat_epochs(flat_epochs_per_seed, "not_converged_row")
    if np.nanmax(epochs, initial=0) > n_epochs:
        raise ValueError(f"a flat epoch is past the end of the runs (n_epochs={n_epochs}); pass the runs' length")
    min_flat = n_epochs // 4 if min_flat_epochs is None else int(min_flat_epochs)
    converged = np.nan_to_num(epochs, nan=np.inf) <= n_epochs - min_flat
    interval = bootstrap_ci(converged.astype(float), n_boot, ci, random_state)
    rule = (f"share of seeds whose loss is flat (slope rule) from epoch {n_epochs - min_flat} of {n_epochs} or "
            f"earlier, {ci:.0%} bootstrap interval over seeds; holds when the interval lies below 1/2, does not "
            "hold when it lies at or above 1/2, else inconclusive")
    return verdict_row(f"training on {where} does not converge",
                       interval_verdict(interval.low, interval.high, 0.5, "less"), rule, interval.estimate,
                       interval.low, interval.high, interval.n)


def _flat_epochs(values: Any, caller: str) -> np.ndarray:
    """Flat epochs as floats, None / NaN / pandas.NA (not flat) as NaN."""
    epochs = np.array([np.nan if pd.isna(e) else float(e) for e in np.asarray(values, dtype=object).ravel()])
    if epochs.size == 0:
        raise ValueError(f"{caller} needs the flat epoch (or None: not flat) of at least one seed")
    return epochs

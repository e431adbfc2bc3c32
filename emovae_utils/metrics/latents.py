"""Which latent dimensions are used, and which of them separate emotions: claim (a).

The report's claim (a), "3 of 8 latent dimensions separate emotions", counts a
dimension only when both hold:

1. it is **active**: the encoder uses it (:func:`active_dimensions`, from the
   posterior means ``mu`` and standard deviations ``sigma``), and
2. its mutual information with emotion **beats the permutation null** after a
   Holm correction over the active dimensions (:func:`emotion_dimensions`).

:func:`separation_sensitivity` recounts under other rules (bias-corrected NMI
thresholds, the report's uncorrected rule, quantile bins), and
:func:`trivial_predictor_mse` gives the reconstruction error a model must beat
(the mean spectrogram), drawn as a line in the loss figures.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from .verdicts import bias_corrected_nmi, holm_adjusted, permutation_pvalues

__all__ = [
    "kl_per_dimension",
    "active_dimensions",
    "emotion_dimensions",
    "separation_sensitivity",
    "trivial_predictor_mse",
    "dimension_usage",
]


def _check_posterior(mu: np.ndarray, sigma: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, sigma = np.asarray(mu, dtype=float), np.asarray(sigma, dtype=float)
    if mu.ndim != 2 or mu.shape != sigma.shape:
        raise ValueError(f"mu and sigma must be 2-D (N clips, D dims) of the same shape, got {mu.shape} "
                         f"and {sigma.shape}")
    if mu.shape[0] < 2:
        raise ValueError(f"need at least 2 clips, got {mu.shape[0]}")
    if not (np.all(np.isfinite(mu)) and np.all(np.isfinite(sigma))):
        raise ValueError("mu or sigma contain NaN or inf")
    if np.any(sigma <= 0):
        raise ValueError("sigma must be positive standard deviations (pass np.exp(0.5 * logvar), not logvar)")
    return mu, sigma


def kl_per_dimension(mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Mean KL divergence of each dimension's posterior from the N(0, 1) prior, in nats.

    ``KL(N(mu, sigma^2) || N(0, 1)) = (mu^2 + sigma^2 - 1) / 2 - log(sigma)``,
    averaged over clips; the per-dimension split of the VAE's KL term.

    Parameters
    ----------
    mu : np.ndarray, shape (N, D)
        Posterior means of N clips.
    sigma : np.ndarray, shape (N, D)
        Posterior standard deviations (``np.exp(0.5 * logvar)``), positive.

    Returns
    -------
    np.ndarray, shape (D,)
        Nats per dimension; 0 for a dimension whose posterior is the prior.

    Examples
    --------
    >>> import numpy as np
    >>> mu = np.array([[0.0, 1.0], [0.0, -1.0]])
    >>> kl_per_dimension(mu, np.array([[1.0, 0.5], [1.0, 0.5]])).round(3).tolist()
    [0.0, 0.818]
    """
    mu, sigma = _check_posterior(mu, sigma)
    return (0.5 * (mu**2 + sigma**2 - 1.0) - np.log(sigma)).mean(axis=0)


def active_dimensions(
    mu: np.ndarray, sigma: np.ndarray, kl_threshold: float = 0.01, variance_threshold: float = 0.01
) -> pd.DataFrame:
    """Which latent dimensions the encoder uses (and which collapsed to the prior).

    A dimension is **active** when either criterion holds:

    * its mean KL from the prior (:func:`kl_per_dimension`) exceeds
      ``kl_threshold`` nats: it costs the model something, so it carries information; or
    * the variance over clips of its posterior mean, ``Var_x(E[z_i | x])``,
      exceeds ``variance_threshold``: the activity of Burda, Grosse and
      Salakhutdinov (2016, "Importance weighted autoencoders", ICLR), who call a
      unit active when this exceeds 0.01.

    A collapsed dimension (``mu ≈ 0``, ``sigma ≈ 1`` for every clip) fails both.

    Parameters
    ----------
    mu, sigma : np.ndarray, shape (N, D)
        Posterior means and standard deviations, as in :func:`kl_per_dimension`.
    kl_threshold : float, default 0.01
        Nats.
    variance_threshold : float, default 0.01
        Of ``mu`` over clips (population variance, ``ddof=0``), in squared code units.

    Returns
    -------
    pandas.DataFrame, D rows
        Columns ``dim`` (0-based), ``kl`` (nats), ``var_mu``, ``mean_sigma``, ``active`` (bool).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> mu = np.column_stack([rng.normal(0, 1, 100), rng.normal(0, 0.001, 100)])
    >>> sigma = np.column_stack([np.full(100, 0.3), np.ones(100)])
    >>> active_dimensions(mu, sigma)["active"].tolist()
    [True, False]
    """
    mu, sigma = _check_posterior(mu, sigma)
    kl, var_mu = kl_per_dimension(mu, sigma), mu.var(axis=0)
    return pd.DataFrame({
        "dim": np.arange(mu.shape[1]),
        "kl": kl,
        "var_mu": var_mu,
        "mean_sigma": sigma.mean(axis=0),
        "active": (kl > kl_threshold) | (var_mu > variance_threshold),
    })


def emotion_dimensions(
    mu: np.ndarray,
    sigma: np.ndarray,
    labels: Sequence | np.ndarray | pd.Series,
    *,
    n_bins: int = 20,
    strategy: str = "uniform",
    n_permutations: int = 1000,
    alpha: float = 0.05,
    random_state: int = 0,
    kl_threshold: float = 0.01,
    variance_threshold: float = 0.01,
) -> pd.DataFrame:
    """Which latent dimensions separate emotions: active, and MI beyond the Holm-corrected permutation null.

    Per dimension: activity (:func:`active_dimensions`); the plug-in mutual
    information of the binned posterior mean with emotion, normalised by the
    emotion entropy (NMI), and its permutation p-value
    (:func:`~emovae_utils.metrics.verdicts.permutation_pvalues`). The Holm
    correction runs over the **active** dimensions only: an inactive dimension
    is not tested (its binned mean can still carry emotion at a scale the
    decoder ignores), so it gets a NaN adjusted p-value and never separates.

    Parameters
    ----------
    mu, sigma : np.ndarray, shape (N, D)
        Posterior means and standard deviations; the MI is that of ``mu``.
    labels : array-like, shape (N,)
        Emotion of each clip (any hashable labels).
    n_bins : int, default 20
    strategy : {"uniform", "quantile"}, default "uniform"
        Equal-width or equal-count bins
        (:func:`~emovae_utils.metrics.information.discretize_codes`).
    n_permutations : int, default 1000
        Shuffles of the labels. Must exceed ``D / alpha``: the smallest
        permutation p-value is ``1 / (n_permutations + 1)`` and Holm needs one
        at most ``alpha / D`` to reject anything.
    alpha : float, default 0.05
        Family-wise level over the active dimensions.
    random_state : int, default 0
        Seed of the shuffles.
    kl_threshold, variance_threshold : float, default 0.01
        Activity criteria of :func:`active_dimensions`.

    Returns
    -------
    pandas.DataFrame, D rows
        Columns ``dim``, ``active``, ``kl``, ``var_mu``, ``nmi``,
        ``null_nmi_mean`` (the estimator's bias), ``nmi_corrected``
        (``nmi - null_nmi_mean``, :func:`~emovae_utils.metrics.verdicts.bias_corrected_nmi`),
        ``pvalue``, ``pvalue_holm`` (NaN when inactive), ``separates``
        (``active & pvalue_holm <= alpha``). Claim (a)'s count is ``separates.sum()``.

    Examples
    --------
    Dimension 0 follows emotion, 1 is active noise, 2 has collapsed to the prior:

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> emotion = np.repeat(np.arange(8), 30)
    >>> mu = np.column_stack([emotion + rng.normal(0, 1, 240), rng.normal(0, 0.5, 240), rng.normal(0, 1e-3, 240)])
    >>> sigma = np.column_stack([np.full(240, 0.5), np.full(240, 0.9), np.ones(240)])
    >>> out = emotion_dimensions(mu, sigma, emotion, n_bins=10, n_permutations=200)
    >>> out["active"].tolist(), out["separates"].tolist(), bool(np.isnan(out.loc[2, "pvalue_holm"]))
    ([True, True, False], [True, False, False], True)
    """
    mu, sigma = _check_posterior(mu, sigma)
    labels = np.asarray(labels)
    if labels.shape != (mu.shape[0],):
        raise ValueError(f"labels must hold one emotion per clip, shape ({mu.shape[0]},), got {labels.shape}")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    n_dims = mu.shape[1]
    if not n_permutations > n_dims / alpha:
        raise ValueError(
            f"n_permutations={n_permutations} must exceed D / alpha = {n_dims / alpha:g} ({n_dims} dimensions, "
            f"alpha {alpha:g}): the smallest permutation p-value, 1 / (n_permutations + 1), must be able to pass "
            f"Holm's first step, alpha / D; use n_permutations >= {int(np.floor(n_dims / alpha)) + 1}")
    out = active_dimensions(mu, sigma, kl_threshold, variance_threshold)[["dim", "active", "kl", "var_mu"]]
    tests = permutation_pvalues(mu, pd.DataFrame({"emotion": labels}), n_bins, n_permutations, random_state,
                                strategy=strategy)
    out["nmi"] = tests["nmi"].to_numpy()
    out["null_nmi_mean"] = tests["null_nmi_mean"].to_numpy()
    out["nmi_corrected"] = bias_corrected_nmi(out["nmi"], out["null_nmi_mean"])
    out["pvalue"] = tests["pvalue"].to_numpy()
    out["pvalue_holm"] = holm_adjusted(out["pvalue"].where(out["active"]).to_numpy())
    out["separates"] = out["active"].to_numpy() & (out["pvalue_holm"].to_numpy() <= alpha)
    return out


def separation_sensitivity(
    mu: np.ndarray,
    sigma: np.ndarray,
    labels: Sequence | np.ndarray | pd.Series,
    *,
    thresholds: Sequence[float] = (0.05, 0.075, 0.10, 0.125, 0.15),
    bins: Sequence[tuple[str, int]] = (("uniform", 20), ("quantile", 20)),
    n_permutations: int = 1000,
    alpha: float = 0.05,
    random_state: int = 0,
    kl_threshold: float = 0.01,
    variance_threshold: float = 0.01,
) -> pd.DataFrame:
    """How many dimensions separate emotions under each rule, threshold and binning: claim (a)'s robustness.

    For each binning in ``bins`` (one permutation null each, shared by all
    thresholds), three rules count dimensions among the active ones
    (:func:`emotion_dimensions`):

    * ``"active + Holm"``: the main rule, ``pvalue_holm <= alpha`` (``threshold`` NaN);
    * ``"bias-corrected NMI ≥ t"``: ``nmi_corrected >= t``;
    * ``"NMI ≥ t (report-style)"``: ``nmi >= t`` and uncorrected ``pvalue <= alpha``.

    Parameters
    ----------
    mu, sigma, labels
        As in :func:`emotion_dimensions`.
    thresholds : sequence of float, default (0.05, 0.075, 0.10, 0.125, 0.15)
        NMI thresholds ``t`` of the two threshold rules.
    bins : sequence of (strategy, n_bins), default (("uniform", 20), ("quantile", 20))
        Binnings of the MI estimate.
    n_permutations, alpha, random_state, kl_threshold, variance_threshold
        As in :func:`emotion_dimensions`.

    Returns
    -------
    pandas.DataFrame
        Long table, ``len(bins) * (1 + 2 * len(thresholds))`` rows, columns
        ``setting`` (readable, e.g. ``"active + Holm, 20 quantile bins"``),
        ``rule``, ``strategy``, ``n_bins``, ``threshold``, ``count``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> emotion = np.repeat(np.arange(8), 30)
    >>> mu = np.column_stack([emotion + rng.normal(0, 1, 240), rng.normal(0, 0.5, 240)])
    >>> table = separation_sensitivity(mu, np.full((240, 2), 0.5), emotion, thresholds=(0.1,), n_permutations=200)
    >>> table[["setting", "count"]].values.tolist()[:3]
    [['active + Holm, 20 uniform bins', 1], ['active, bias-corrected NMI ≥ 0.1, 20 uniform bins', 1], ['active, NMI ≥ 0.1 and p ≤ 0.05, 20 uniform bins', 1]]
    """
    rows = []
    for strategy, n_bins in bins:
        n_bins = int(n_bins)
        dims = emotion_dimensions(mu, sigma, labels, n_bins=n_bins, strategy=strategy,
                                  n_permutations=n_permutations, alpha=alpha, random_state=random_state,
                                  kl_threshold=kl_threshold, variance_threshold=variance_threshold)
        active, where = dims["active"], f"{n_bins} {strategy} bins"

        def row(setting: str, rule: str, threshold: float, passes: pd.Series) -> dict:
            return {"setting": f"{setting}, {where}", "rule": rule, "strategy": strategy, "n_bins": n_bins,
                    "threshold": float(threshold), "count": int(passes.sum())}

        rows.append(row("active + Holm", "active + Holm", np.nan, dims["separates"]))
        rows += [row(f"active, bias-corrected NMI ≥ {t:g}", "bias-corrected NMI ≥ t", t,
                     active & (dims["nmi_corrected"] >= t)) for t in thresholds]
        rows += [row(f"active, NMI ≥ {t:g} and p ≤ {alpha:g}", "NMI ≥ t (report-style)", t,
                     active & (dims["nmi"] >= t) & (dims["pvalue"] <= alpha)) for t in thresholds]
    return pd.DataFrame(rows, columns=["setting", "rule", "strategy", "n_bins", "threshold", "count"])


def trivial_predictor_mse(
    X_train: np.ndarray,
    X_eval: np.ndarray | None = None,
    groups_train: Sequence | np.ndarray | None = None,
    groups_eval: Sequence | np.ndarray | None = None,
) -> dict[str, float]:
    """Reconstruction error of predicting every clip by a mean spectrogram: the line a model must beat.

    Parameters
    ----------
    X_train : np.ndarray, shape (N, n_mels, n_frames)
        Log-mel spectrograms in dB (e.g. (N, 80, 128)) whose mean is the prediction.
    X_eval : np.ndarray, shape (M, n_mels, n_frames), optional
        Clips to predict; default ``X_train``.
    groups_train : array-like, shape (N,), optional
        Group (actor) of each training clip; adds the per-actor predictor.
    groups_eval : array-like, shape (M,), optional
        Group of each evaluated clip; default ``groups_train`` when ``X_eval``
        is None. Every group must have training clips.

    Returns
    -------
    dict
        ``"mean spectrogram"``: MSE (mean over clips, mel bins and frames; dB²)
        of the mean of all training clips; with groups also
        ``"per-actor mean spectrogram"``: of each clip's own group mean.

    Notes
    -----
    The same units as the models' per-element reconstruction MSE. For all 24
    actors' statement-01 clips, evaluated on themselves, the mean spectrogram
    scores about 193 dB².

    Examples
    --------
    >>> import numpy as np
    >>> X = np.stack([np.zeros((80, 128)), np.full((80, 128), 2.0), np.full((80, 128), 4.0), np.full((80, 128), 6.0)])
    >>> trivial_predictor_mse(X, groups_train=["01", "01", "02", "02"])  # mean 3: errors 9, 1, 1, 9
    {'mean spectrogram': 5.0, 'per-actor mean spectrogram': 1.0}
    """
    train = _check_spectrograms(X_train, "X_train")
    evaluate = train if X_eval is None else _check_spectrograms(X_eval, "X_eval")
    if evaluate.shape[1:] != train.shape[1:]:
        raise ValueError(f"X_eval clips are {evaluate.shape[1:]} but X_train clips are {train.shape[1:]}")
    out = {"mean spectrogram": float(np.mean((evaluate - train.mean(axis=0)) ** 2))}
    if groups_train is None:
        if groups_eval is not None:
            raise ValueError("groups_eval needs groups_train: the group means come from the training clips")
        return out
    if groups_eval is None:
        if X_eval is not None:
            raise ValueError("pass groups_eval (the actor of each X_eval clip) along with groups_train")
        groups_eval = groups_train
    codes, names = _group_codes(groups_train, len(train), "groups_train")
    sums = np.zeros((len(names), *train.shape[1:]))
    np.add.at(sums, codes, train)
    means = sums / np.bincount(codes, minlength=len(names)).reshape(-1, *([1] * (train.ndim - 1)))
    eval_codes, eval_names = _group_codes(groups_eval, len(evaluate), "groups_eval")
    which = pd.Index(names).get_indexer(eval_names)
    if np.any(which < 0):
        raise ValueError(f"groups {eval_names[which < 0].tolist()} of groups_eval have no training clips, "
                         "so no per-actor mean; evaluate only actors seen in training")
    eval_codes = which[eval_codes]
    out["per-actor mean spectrogram"] = float(np.mean((evaluate - means[eval_codes]) ** 2))
    return out


def _check_spectrograms(X: np.ndarray, name: str) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim != 3 or X.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (N clips, n_mels, n_frames) array, got shape {X.shape}")
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{name} contains NaN or inf")
    return X


def _group_codes(groups: Sequence | np.ndarray, n: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    values = np.asarray(groups)
    if values.shape != (n,):
        raise ValueError(f"{name} must hold one group per clip, shape ({n},), got {values.shape}")
    codes, names = pd.factorize(values, sort=True)
    if np.any(codes < 0):
        raise ValueError(f"{name} contains missing values")
    return codes, np.asarray(names)


def dimension_usage(mu: np.ndarray, logvar: np.ndarray | None = None, threshold: float = 0.01) -> pd.DataFrame:
    """How much each latent dimension is used: mean KL to the prior over the clips (the explorer's slider order).

    Parameters
    ----------
    mu : np.ndarray, shape (N, D)
        Posterior means.
    logvar : np.ndarray, shape (N, D), optional
        Posterior log-variances. Without them the KL is not known: the
        dimensions are ordered by the variance of ``mu`` and all are active.
    threshold : float
        Dimensions with a mean KL (:func:`kl_per_dimension`) of at least this (nats) are active.

    Returns
    -------
    pandas.DataFrame
        Index ``dim`` (0..D-1); columns ``kl`` (nats, NaN without ``logvar``),
        ``mu_std``, ``active``, ``rank`` (0 = most used). Sort by ``rank`` for
        the slider order.

    Examples
    --------
    >>> mu = np.array([[0.0, 1.0], [0.0, -1.0]])
    >>> dimension_usage(mu, np.zeros_like(mu))[["kl", "active", "rank"]].values.tolist()
    [[0.0, False, 1], [0.5, True, 0]]
    """
    mu = np.asarray(mu, dtype=np.float64)
    if mu.ndim != 2:
        raise ValueError(f"mu must be (N, D), got shape {mu.shape}")
    std = mu.std(axis=0)
    if logvar is not None:
        sigma = np.exp(0.5 * np.asarray(logvar, dtype=np.float64))
        # kl_per_dimension asks for two clips at least; one clip counted twice has the same mean
        twice = (np.repeat(mu, 2, axis=0), np.repeat(sigma, 2, axis=0)) if len(mu) == 1 else (mu, sigma)
        kl = kl_per_dimension(*twice)
        order = np.argsort(-kl, kind="stable")
        active = kl >= threshold
    else:
        kl = np.full(mu.shape[1], np.nan)
        order = np.argsort(-std, kind="stable")
        active = np.ones(mu.shape[1], bool)
    rank = np.empty(mu.shape[1], int)
    rank[order] = np.arange(mu.shape[1])
    return pd.DataFrame({"kl": kl, "mu_std": std, "active": active, "rank": rank},
                        index=pd.Index(np.arange(mu.shape[1]), name="dim"))

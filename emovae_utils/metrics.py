"""How much emotion and how much speaker a representation holds.

Three families of numbers, all deterministic:

* **Information per latent dimension** (:func:`latent_factor_mi`, :func:`mig`,
  :func:`informative_dims`): mutual information in nats between each continuous
  code dimension and each discrete factor (emotion, actor, gender, intensity).
  Codes are discretised as in the MIG implementation of Locatello et al. (2019,
  ``disentanglement_lib``, ``_histogram_discretize``): per dimension,
  ``n_bins`` **equal-width** bins spanning that dimension's [min, max]
  (``np.histogram`` edges, then ``np.digitize``); the factor entropy is
  I(f; f), as there.
* **Linear probes** (:func:`cross_validate_probe` and its wrappers
  :func:`probe_uar`, :func:`speaker_id_accuracy`): a standardised multinomial
  logistic regression trained on some groups of clips and scored on held-out
  groups. Emotion and gender are probed speaker-independently with the 5 actor
  folds of :data:`ACTOR_FOLDS`; speaker identity needs every actor in training,
  so it is probed across repetitions (train on repetition 1, test on 2, and
  vice versa).
* **Baselines** on the same clips: :func:`pooled_log_mel`, :func:`pca_features`
  / :class:`PCAFoldTransform`, :func:`egemaps_functionals`; and
  :func:`results_table` to gather one row per representation.

Leakage-free evaluation of learned features: every probe accepts a
``transform(X_train, X_test, fold_index) -> (F_train, F_test)`` callable (see
:data:`FoldTransform`). It receives only the rows of the fold's training groups
for fitting and never sees labels, so a VAE or PCA fitted inside it has not
seen the held-out actors.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score, confusion_matrix
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from .dsp import load_mono, resample
from .generate import encode_posterior
from .paths import cache_root

__all__ = [
    "ACTOR_FOLDS",
    "REPETITION_FOLDS",
    "RESULT_COLUMNS",
    "FoldTransform",
    "ProbeResult",
    "PCAFoldTransform",
    "discretize_codes",
    "factor_entropy",
    "latent_factor_mi",
    "normalised_mi",
    "mig",
    "mi_permutation_null",
    "informative_dims",
    "held_out_splits",
    "make_probe",
    "cross_validate_probe",
    "probe_uar",
    "speaker_id_accuracy",
    "pooled_log_mel",
    "pca_features",
    "egemaps_functionals",
    "summary_row",
    "results_table",
    "EncoderFoldTransform",
    "probe_representation",
    "factor_separation",
    "egemaps_cached",
    "tsne_embedding",
]

#: Speaker-independent RAVDESS folds (actor numbers 1-24); fold k holds out
#: ``ACTOR_FOLDS[k]``. The same 5 folds as the published 8-class RAVDESS
#: baselines quoted in the study reference (wav2vec2 ~0.82 UAR, log-mel CNNs
#: ~0.57-0.62).
ACTOR_FOLDS: tuple[tuple[int, ...], ...] = (
    (2, 5, 14, 15, 16),
    (3, 6, 7, 13, 18),
    (10, 11, 12, 19, 20),
    (8, 17, 21, 23, 24),
    (1, 4, 9, 22),
)

#: Held-out groups for the speaker-identity probe: fold 0 tests repetition 1
#: (trains on 2), fold 1 tests repetition 2 (trains on 1).
REPETITION_FOLDS: tuple[tuple[int, ...], ...] = ((1,), (2,))

#: Columns of :func:`results_table`, in order.
RESULT_COLUMNS: tuple[str, ...] = (
    "representation",
    "dims",
    "emotion_uar_mean",
    "emotion_uar_std",
    "speaker_id_acc",
    "gender_acc",
)

#: ``transform(X_train, X_test, fold_index) -> (F_train, F_test)``: fit on the
#: training rows only (no labels), return 2-D features for both.
FoldTransform = Callable[[np.ndarray, np.ndarray, int], tuple[np.ndarray, np.ndarray]]


# ---------------------------------------------------------------------------
# Mutual information per latent dimension
# ---------------------------------------------------------------------------


def _check_codes(codes: np.ndarray, n_rows: int | None = None) -> np.ndarray:
    codes = np.asarray(codes, dtype=float)
    if codes.ndim != 2:
        raise ValueError(f"codes must be 2-D (N, D), got shape {codes.shape}")
    if not np.all(np.isfinite(codes)):
        raise ValueError("codes contain NaN or inf")
    if n_rows is not None and codes.shape[0] != n_rows:
        raise ValueError(f"codes have {codes.shape[0]} rows but factors have {n_rows}")
    return codes


def _encode_factors(factors: pd.DataFrame) -> dict[str, np.ndarray]:
    """Integer-code each discrete factor column (0..K-1)."""
    if not isinstance(factors, pd.DataFrame):
        raise TypeError("factors must be a pandas DataFrame of discrete columns")
    encoded = {}
    for name in factors.columns:
        values, _ = pd.factorize(factors[name], sort=True, use_na_sentinel=True)
        if np.any(values < 0):
            raise ValueError(f"factor {name!r} contains missing values")
        encoded[str(name)] = values
    return encoded


def _mi_from_labels(a: np.ndarray, b: np.ndarray) -> float:
    """Plug-in mutual information (nats) of two integer label arrays.

    Same value as :func:`sklearn.metrics.mutual_info_score`, computed with one
    ``np.bincount`` (much faster, which matters for permutation nulls).
    """
    return float(_mi_batch(a, b[np.newaxis, :])[0])


def _mi_batch(a: np.ndarray, bs: np.ndarray) -> np.ndarray:
    """Mutual information of ``a`` (N,) with each row of ``bs`` (P, N), in nats."""
    n = a.shape[0]
    ka, kb = int(a.max()) + 1, int(bs.max()) + 1
    n_p = bs.shape[0]
    joint_idx = (np.arange(n_p)[:, None] * ka + a[None, :]) * kb + bs
    joint = np.bincount(joint_idx.ravel(), minlength=n_p * ka * kb).reshape(n_p, ka, kb) / n
    pa = joint.sum(axis=2, keepdims=True)
    pb = joint.sum(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log(joint / (pa * pb)), 0.0)
    return np.maximum(terms.sum(axis=(1, 2)), 0.0)


def discretize_codes(codes: np.ndarray, n_bins: int = 20) -> np.ndarray:
    """Discretise each code dimension into ``n_bins`` equal-width bins.

    Follows ``_histogram_discretize`` of ``disentanglement_lib`` (Locatello et
    al., 2019): the edges are ``np.histogram(z, n_bins)`` over that dimension's
    own [min, max], and ``np.digitize`` against all but the last edge.

    Parameters
    ----------
    codes : np.ndarray, shape (N, D)
        Continuous codes (e.g. the encoder means ``mu``).
    n_bins : int, default 20
        Bins per dimension.

    Returns
    -------
    np.ndarray of int, shape (N, D)
        Bin index per value, in ``0 .. n_bins - 1``. A constant dimension
        falls into a single bin (and so carries zero information).
    """
    codes = _check_codes(codes)
    if n_bins < 2:
        raise ValueError("n_bins must be at least 2")
    out = np.empty(codes.shape, dtype=np.int64)
    for j in range(codes.shape[1]):
        edges = np.histogram(codes[:, j], bins=n_bins)[1]
        out[:, j] = np.digitize(codes[:, j], edges[:-1]) - 1
    return out


def factor_entropy(factors: pd.DataFrame) -> pd.Series:
    """Entropy H(f) in nats of each discrete factor (empirical frequencies).

    Parameters
    ----------
    factors : pandas.DataFrame
        One discrete column per factor (any hashable labels).

    Returns
    -------
    pandas.Series
        Indexed by factor name.
    """
    encoded = _encode_factors(factors)
    return pd.Series(
        {name: _mi_from_labels(v, v) for name, v in encoded.items()}, name="entropy_nats", dtype=float
    )


def latent_factor_mi(codes: np.ndarray, factors: pd.DataFrame, n_bins: int = 20) -> pd.DataFrame:
    """Mutual information I(z_i; f) in nats between code dimensions and factors.

    Parameters
    ----------
    codes : np.ndarray, shape (N, D)
        Continuous codes; discretised by :func:`discretize_codes`
        (equal-width histogram bins, as in Locatello et al. 2019).
    factors : pandas.DataFrame, N rows
        Discrete factors, one column each (e.g. emotion, actor, gender,
        intensity), row-aligned with ``codes``.
    n_bins : int, default 20
        Histogram bins per code dimension.

    Returns
    -------
    pandas.DataFrame, shape (D, n_factors)
        Index ``dim`` (0-based dimension number), one column per factor.

    Notes
    -----
    This is the plug-in (histogram) estimate, biased upwards by roughly
    ``(n_bins - 1)(K - 1) / (2N)`` nats for a K-class factor: with N = 720 and
    20 bins that is ~0.09 nats for emotion and ~0.3 nats for actor even for a
    pure-noise dimension. Compare with :func:`mi_permutation_null`.
    """
    encoded = _encode_factors(factors)
    codes = _check_codes(codes, n_rows=len(factors))
    binned = discretize_codes(codes, n_bins)
    table = {
        name: [_mi_from_labels(binned[:, j], labels) for j in range(binned.shape[1])]
        for name, labels in encoded.items()
    }
    return pd.DataFrame(table, index=pd.RangeIndex(codes.shape[1], name="dim"), dtype=float)


def normalised_mi(codes: np.ndarray, factors: pd.DataFrame, n_bins: int = 20) -> pd.DataFrame:
    """I(z_i; f) / H(f): the share of each factor's entropy held by each dimension.

    Parameters
    ----------
    codes, factors, n_bins
        As in :func:`latent_factor_mi`.

    Returns
    -------
    pandas.DataFrame, shape (D, n_factors)
        Values in [0, 1] (NaN for a constant factor).
    """
    mi = latent_factor_mi(codes, factors, n_bins)
    ent = factor_entropy(factors).replace(0.0, np.nan)
    return mi / ent


def mig(codes: np.ndarray, factors: pd.DataFrame, n_bins: int = 20) -> pd.Series:
    """Mutual information gap per factor (Chen et al. 2018; Locatello et al. 2019).

    ``MIG(f) = (I_(1) - I_(2)) / H(f)`` where ``I_(1) >= I_(2)`` are the two
    largest values of I(z_i; f) over the code dimensions. High when exactly one
    dimension captures the factor; ~0 when two dimensions share it equally or
    none holds it.

    Parameters
    ----------
    codes, factors, n_bins
        As in :func:`latent_factor_mi`; ``codes`` needs at least 2 dimensions.

    Returns
    -------
    pandas.Series
        Indexed by factor name (``.mean()`` gives the usual single MIG score).
    """
    mi = latent_factor_mi(codes, factors, n_bins)
    if mi.shape[0] < 2:
        raise ValueError("MIG needs at least 2 code dimensions")
    top = np.sort(mi.to_numpy(), axis=0)[::-1]
    ent = factor_entropy(factors).replace(0.0, np.nan)
    return pd.Series((top[0] - top[1]) / ent.to_numpy(), index=mi.columns, name="mig")


def mi_permutation_null(
    codes: np.ndarray,
    factors: pd.DataFrame,
    n_bins: int = 20,
    n_permutations: int = 200,
    quantile: float = 0.95,
    random_state: int = 0,
) -> pd.DataFrame:
    """Quantile of I(z_i; f) when the factor labels are shuffled.

    The histogram MI of an uninformative dimension is not zero (finite-sample
    bias, larger for factors with many classes); this gives, per dimension and
    factor, the value that a dimension unrelated to the factor exceeds with
    probability ``1 - quantile``.

    Parameters
    ----------
    codes, factors, n_bins
        As in :func:`latent_factor_mi`.
    n_permutations : int, default 200
        Shuffles of each factor column (the same shuffles for every dimension).
    quantile : float, default 0.95
        Quantile of the null distribution to return.
    random_state : int, default 0
        Seed of the shuffles.

    Returns
    -------
    pandas.DataFrame, shape (D, n_factors)
        Same layout as :func:`latent_factor_mi`.
    """
    encoded = _encode_factors(factors)
    codes = _check_codes(codes, n_rows=len(factors))
    binned = discretize_codes(codes, n_bins)
    rng = np.random.default_rng(random_state)
    table = {}
    for name, labels in encoded.items():
        perms = np.stack([rng.permutation(labels) for _ in range(n_permutations)])
        table[name] = [
            float(np.quantile(_mi_batch(binned[:, j], perms), quantile)) for j in range(binned.shape[1])
        ]
    return pd.DataFrame(table, index=pd.RangeIndex(codes.shape[1], name="dim"), dtype=float)


def informative_dims(
    codes: np.ndarray,
    factors: pd.DataFrame,
    threshold: float = 0.1,
    n_bins: int = 20,
    n_permutations: int = 200,
    alpha: float = 0.05,
    random_state: int = 0,
) -> dict[str, list[int]]:
    """Code dimensions that hold a factor, by a stated two-part criterion.

    Dimension i is *informative* for factor f when both hold:

    1. normalised MI ``I(z_i; f) / H(f) >= threshold`` (it holds a worthwhile
       share of the factor's entropy), and
    2. ``I(z_i; f)`` exceeds the ``1 - alpha`` quantile of its permutation null
       (:func:`mi_permutation_null`), i.e. it is not histogram bias.

    Parameters
    ----------
    codes, factors, n_bins
        As in :func:`latent_factor_mi`.
    threshold : float, default 0.1
        Minimum normalised MI.
    n_permutations, alpha, random_state
        Permutation null: shuffles, one-sided level (no multiple-comparison
        correction), seed.

    Returns
    -------
    dict of str to list of int
        Factor name -> sorted 0-based dimension numbers (possibly empty).
    """
    mi = latent_factor_mi(codes, factors, n_bins)
    nmi = mi / factor_entropy(factors).replace(0.0, np.nan)
    null = mi_permutation_null(codes, factors, n_bins, n_permutations, 1.0 - alpha, random_state)
    keep = (nmi >= threshold) & (mi > null)
    return {str(f): [int(d) for d in keep.index[keep[f]]] for f in keep.columns}


# ---------------------------------------------------------------------------
# Linear probes
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeResult:
    """Outcome of a cross-validated linear probe.

    Attributes
    ----------
    fold_uar : np.ndarray
        Unweighted average recall (``balanced_accuracy_score``) per fold.
    fold_accuracy : np.ndarray
        Plain accuracy per fold.
    confusion : pandas.DataFrame
        Counts summed over folds; rows = true class, columns = predicted class.
    predictions : np.ndarray of object, shape (N,)
        Out-of-fold prediction for each input row (None for rows never held out).
    held_out : tuple of tuple
        The groups held out in each fold.
    """

    fold_uar: np.ndarray
    fold_accuracy: np.ndarray
    confusion: pd.DataFrame
    predictions: np.ndarray
    held_out: tuple[tuple[Any, ...], ...]

    @property
    def uar_mean(self) -> float:
        """Mean of the per-fold UAR."""
        return float(np.mean(self.fold_uar))

    @property
    def uar_std(self) -> float:
        """Standard deviation (ddof=0, as sklearn's examples) of the per-fold UAR."""
        return float(np.std(self.fold_uar))

    @property
    def accuracy_mean(self) -> float:
        """Mean of the per-fold accuracy."""
        return float(np.mean(self.fold_accuracy))

    @property
    def accuracy_std(self) -> float:
        """Standard deviation (ddof=0) of the per-fold accuracy."""
        return float(np.std(self.fold_accuracy))

    @property
    def n_classes(self) -> int:
        """Number of classes."""
        return int(self.confusion.shape[0])

    @property
    def chance(self) -> float:
        """Chance level of UAR, ``1 / n_classes`` (also chance accuracy for balanced classes)."""
        return 1.0 / self.n_classes

    def confusion_matrix(self, normalize: bool = False) -> pd.DataFrame:
        """Confusion matrix summed over folds.

        Parameters
        ----------
        normalize : bool, default False
            If True, divide each row by its total (rows = true class sum to 1,
            the diagonal is per-class recall).

        Returns
        -------
        pandas.DataFrame
        """
        if not normalize:
            return self.confusion.copy()
        return self.confusion.div(self.confusion.sum(axis=1).replace(0, np.nan), axis=0)

    def to_dict(self) -> dict[str, Any]:
        """Scalar summary (means, stds, chance, per-fold lists)."""
        return {
            "uar_mean": self.uar_mean,
            "uar_std": self.uar_std,
            "accuracy_mean": self.accuracy_mean,
            "accuracy_std": self.accuracy_std,
            "chance": self.chance,
            "fold_uar": self.fold_uar.tolist(),
            "fold_accuracy": self.fold_accuracy.tolist(),
        }


def held_out_splits(
    groups: Sequence[Any] | np.ndarray, held_out: Sequence[Sequence[Any]]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/test row indices holding out whole groups.

    Parameters
    ----------
    groups : array-like, shape (N,)
        Group of each row (e.g. actor number, repetition number).
    held_out : sequence of sequences
        ``held_out[k]``: the groups tested in fold k; fold k trains on all
        other rows (including rows whose group is in no fold).

    Returns
    -------
    list of (train_idx, test_idx)
        Integer index arrays, one pair per fold.

    Raises
    ------
    ValueError
        If the held-out sets overlap, or a fold has no train or no test rows.
    """
    groups = np.asarray(groups)
    seen: set[Any] = set()
    splits = []
    for k, fold in enumerate(held_out):
        fold_set = set(fold)
        if seen & fold_set:
            raise ValueError(f"fold {k} repeats held-out groups {sorted(seen & fold_set)}")
        seen |= fold_set
        test = np.isin(groups, list(fold_set))
        if not test.any() or test.all():
            raise ValueError(f"fold {k} (held out {sorted(fold_set)}) has no test or no train rows")
        splits.append((np.flatnonzero(~test), np.flatnonzero(test)))
    return splits


def make_probe(C: float = 1.0, max_iter: int = 5000, random_state: int = 0) -> Pipeline:
    """The probe: ``StandardScaler`` then multinomial ``LogisticRegression``.

    Parameters
    ----------
    C : float, default 1.0
        Inverse L2 regularisation strength (fixed, not tuned).
    max_iter : int, default 5000
        lbfgs iterations (large enough to converge on 8-160 standardised features).
    random_state : int, default 0

    Returns
    -------
    sklearn.pipeline.Pipeline
        Unfitted. With the lbfgs solver the loss is multinomial for >2 classes.
    """
    return make_pipeline(
        StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=random_state)
    )


def cross_validate_probe(
    X: np.ndarray | None,
    labels: Sequence[Any] | np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    held_out: Sequence[Sequence[Any]],
    *,
    transform: FoldTransform | None = None,
    C: float = 1.0,
    max_iter: int = 5000,
    random_state: int = 0,
) -> ProbeResult:
    """Generic group-held-out cross-validation of a linear probe.

    For each fold k, rows whose group is in ``held_out[k]`` are the test set
    and all other rows the training set; the probe of :func:`make_probe` is
    fitted on the training rows and scored on the test rows.

    Parameters
    ----------
    X : np.ndarray, shape (N, F), or raw input of shape (N, ...)
        Features. With ``transform`` it can be raw input of any shape (e.g.
        log-mels (N, 80, 128)); ``transform`` turns it into 2-D features.
    labels : array-like, shape (N,)
        Class to predict.
    groups : array-like, shape (N,)
        Group of each row (actor for speaker-independent folds, repetition for
        the speaker-identity probe).
    held_out : sequence of sequences
        Groups tested in each fold (see :func:`held_out_splits`).
    transform : callable, optional
        ``transform(X_train, X_test, fold_index) -> (F_train, F_test)``,
        called once per fold with ``X_train = X[train_idx]`` and
        ``X_test = X[test_idx]``; anything fitted must use ``X_train`` only
        (e.g. :class:`PCAFoldTransform`, or a VAE trained on the training
        actors whose ``mu`` is returned for both). Labels are never passed.
    C, max_iter, random_state
        See :func:`make_probe`.

    Returns
    -------
    ProbeResult
    """
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    if labels.shape[0] != groups.shape[0]:
        raise ValueError("labels and groups must have the same length")
    if X is None or len(X) != labels.shape[0]:
        raise ValueError("X must have one row per label")
    X = np.asarray(X)
    if transform is None and X.ndim != 2:
        raise ValueError(f"X must be 2-D (N, F) without a transform, got shape {X.shape}")
    classes = np.unique(labels)
    splits = held_out_splits(groups, held_out)
    predictions = np.full(labels.shape[0], None, dtype=object)
    fold_uar, fold_acc = [], []
    confusion = np.zeros((classes.size, classes.size), dtype=np.int64)
    for k, (train_idx, test_idx) in enumerate(splits):
        if transform is None:
            f_train, f_test = X[train_idx].astype(float), X[test_idx].astype(float)
        else:
            f_train, f_test = transform(X[train_idx], X[test_idx], k)
            f_train, f_test = np.asarray(f_train, dtype=float), np.asarray(f_test, dtype=float)
            if f_train.shape[0] != train_idx.size or f_test.shape[0] != test_idx.size:
                raise ValueError("transform must return one row per input row")
        probe = make_probe(C=C, max_iter=max_iter, random_state=random_state)
        probe.fit(f_train, labels[train_idx])
        pred = probe.predict(f_test)
        y_true = labels[test_idx]
        predictions[test_idx] = pred
        fold_uar.append(balanced_accuracy_score(y_true, pred))
        fold_acc.append(accuracy_score(y_true, pred))
        confusion += confusion_matrix(y_true, pred, labels=classes)
    conf = pd.DataFrame(
        confusion,
        index=pd.Index(classes, name="true"),
        columns=pd.Index(classes, name="predicted"),
    )
    return ProbeResult(
        fold_uar=np.asarray(fold_uar),
        fold_accuracy=np.asarray(fold_acc),
        confusion=conf,
        predictions=predictions,
        held_out=tuple(tuple(f) for f in held_out),
    )


def probe_uar(
    X: np.ndarray,
    labels: Sequence[Any] | np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    folds: Sequence[Sequence[int]] = ACTOR_FOLDS,
    **kwargs: Any,
) -> ProbeResult:
    """Speaker-independent probe: UAR with whole actors held out per fold.

    Use for emotion (8 classes, chance 0.125) and gender (chance 0.5).

    Parameters
    ----------
    X : np.ndarray
        Features (N, F), or raw input with ``transform=``.
    labels : array-like, shape (N,)
        Emotion or gender of each clip.
    groups : array-like, shape (N,)
        Actor number (1-24) of each clip.
    folds : sequence of sequences of int, default :data:`ACTOR_FOLDS`
        Actors held out in each fold.
    **kwargs
        ``transform``, ``C``, ``max_iter``, ``random_state`` of
        :func:`cross_validate_probe`.

    Returns
    -------
    ProbeResult
        ``uar_mean``, ``uar_std``, ``fold_uar``, ``confusion_matrix(normalize=...)``.
    """
    return cross_validate_probe(X, labels, groups, folds, **kwargs)


def speaker_id_accuracy(
    X: np.ndarray,
    actors: Sequence[Any] | np.ndarray,
    split_groups: Sequence[Any] | np.ndarray,
    held_out: Sequence[Sequence[Any]] = REPETITION_FOLDS,
    **kwargs: Any,
) -> ProbeResult:
    """Actor-identity probe within actors: train on one repetition, test on the other.

    Actor identity cannot be probed with actor-held-out folds, so the split is
    within actors: fold 0 tests RAVDESS repetition 1 after training on
    repetition 2, fold 1 the reverse (``held_out=REPETITION_FOLDS``). With
    statement 01 each actor has 15 clips per repetition covering every emotion
    and intensity, so both halves hold the same conditions and the test
    classes are balanced (accuracy = UAR; chance ``1/24``).

    Parameters
    ----------
    X : np.ndarray
        Features (N, F), or raw input with ``transform=``.
    actors : array-like, shape (N,)
        Actor of each clip (the class to predict).
    split_groups : array-like, shape (N,)
        Repetition (1 or 2) of each clip.
    held_out : sequence of sequences, default ``((1,), (2,))``
    **kwargs
        ``transform``, ``C``, ``max_iter``, ``random_state`` of
        :func:`cross_validate_probe`.

    Returns
    -------
    ProbeResult
        Use ``accuracy_mean`` (mean over the 2 folds) and ``chance``.

    Raises
    ------
    ValueError
        If some actor is missing from the training half of a fold.
    """
    actors_arr, split_arr = np.asarray(actors), np.asarray(split_groups)
    all_actors = set(np.unique(actors_arr).tolist())
    for train_idx, _ in held_out_splits(split_arr, held_out):
        missing = all_actors - set(np.unique(actors_arr[train_idx]).tolist())
        if missing:
            raise ValueError(f"actors {sorted(missing)} have no training clips in some fold")
    return cross_validate_probe(X, actors_arr, split_arr, held_out, **kwargs)


# ---------------------------------------------------------------------------
# Baseline representations
# ---------------------------------------------------------------------------


def _check_logmel(X: np.ndarray) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if X.ndim != 3:
        raise ValueError(f"expected log-mels of shape (N, n_mels, T), got {X.shape}")
    return X


def pooled_log_mel(X: np.ndarray) -> np.ndarray:
    """Mean and standard deviation over time of each mel band.

    Parameters
    ----------
    X : np.ndarray, shape (N, n_mels, T)
        dB log-mel spectrograms (e.g. (N, 80, 128)).

    Returns
    -------
    np.ndarray, shape (N, 2 * n_mels)
        ``[means (n_mels), stds (n_mels)]`` per clip: (N, 160) for 80 bands.
        Needs no fitting, so it is leakage-free as is.
    """
    X = _check_logmel(X)
    return np.concatenate([X.mean(axis=2), X.std(axis=2)], axis=1)


def pca_features(X: np.ndarray, n_components: int = 8, random_state: int = 0) -> np.ndarray:
    """PCA of flattened log-mels, fitted on all the given clips.

    Transductive: the principal axes see every clip, including those a probe
    later tests on (no labels are used, but held-out speakers shape the axes).
    Fine for plots; for probe numbers use :class:`PCAFoldTransform` as the
    ``transform`` of a probe, which fits PCA on each fold's training actors.

    Parameters
    ----------
    X : np.ndarray, shape (N, n_mels, T)
        dB log-mels, flattened to (N, n_mels * T) without scaling.
    n_components : int, default 8
        Matches the VAE's latent size.
    random_state : int, default 0
        Seed for the (randomised) SVD solver sklearn may pick.

    Returns
    -------
    np.ndarray, shape (N, n_components)
    """
    X = _check_logmel(X)
    flat = X.reshape(X.shape[0], -1)
    return PCA(n_components=n_components, random_state=random_state).fit_transform(flat)


@dataclass(frozen=True)
class PCAFoldTransform:
    """Leakage-free PCA baseline: a :data:`FoldTransform` for the probes.

    ``PCAFoldTransform(8)(X_train, X_test, fold)`` fits PCA on the flattened
    training log-mels only and projects both sets.

    Parameters
    ----------
    n_components : int, default 8
    random_state : int, default 0
    """

    n_components: int = 8
    random_state: int = 0

    def __call__(
        self, X_train: np.ndarray, X_test: np.ndarray, fold_index: int
    ) -> tuple[np.ndarray, np.ndarray]:
        X_train, X_test = _check_logmel(X_train), _check_logmel(X_test)
        pca = PCA(n_components=self.n_components, random_state=self.random_state)
        f_train = pca.fit_transform(X_train.reshape(X_train.shape[0], -1))
        return f_train, pca.transform(X_test.reshape(X_test.shape[0], -1))


@functools.lru_cache(maxsize=1)
def _smile() -> Any:
    import opensmile

    return opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.Functionals,
    )


def _load_16k(path: str | os.PathLike[str], sampling_rate: int) -> np.ndarray:
    y, sr = load_mono(path)
    return resample(y, sr, sampling_rate)


def _egemaps_one(source: np.ndarray | str | os.PathLike[str], sampling_rate: int) -> pd.Series:
    if isinstance(source, (str, os.PathLike)):
        signal = _load_16k(source, sampling_rate)
    else:
        signal = np.asarray(source, dtype=np.float32)
        if signal.ndim != 1:
            raise ValueError(f"signals must be 1-D (mono), got shape {signal.shape}")
    frame = _smile().process_signal(signal.astype(np.float32, copy=False), sampling_rate)
    return frame.iloc[0]


def egemaps_functionals(
    sources: Sequence[np.ndarray | str | os.PathLike[str]],
    sampling_rate: int = 16000,
    *,
    n_jobs: int = 1,
    progress: bool = True,
    index: Sequence[Any] | None = None,
) -> pd.DataFrame:
    """eGeMAPS v02 functionals (88 features) per clip, with openSMILE.

    Parameters
    ----------
    sources : sequence of np.ndarray or paths
        Mono signals at ``sampling_rate`` (e.g. the 16 kHz output of the
        preprocessing, so the baseline sees the same audio as the VAE), or
        audio file paths, which are loaded mono and resampled to
        ``sampling_rate`` with :func:`emovae_utils.dsp.load_mono` and :func:`~emovae_utils.dsp.resample` (soxr_hq, as ``librosa.load``).
    sampling_rate : int, default 16000
    n_jobs : int, default 1
        Worker processes (joblib); ~0.05 s per 3-s clip on one core, so 1
        is usually enough.
    progress : bool, default True
        Show a tqdm progress bar.
    index : sequence, optional
        Row labels (default 0..N-1).

    Returns
    -------
    pandas.DataFrame, shape (N, 88)
        Columns are openSMILE's feature names.
    """
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    sources = list(sources)
    if n_jobs == 1:
        rows_iter: Iterable[pd.Series] = (_egemaps_one(s, sampling_rate) for s in sources)
    else:
        rows_iter = Parallel(n_jobs=n_jobs, return_as="generator")(
            delayed(_egemaps_one)(s, sampling_rate) for s in sources
        )
    rows = list(tqdm(rows_iter, total=len(sources), desc="eGeMAPS", disable=not progress))
    out = pd.DataFrame([r.to_numpy() for r in rows], columns=rows[0].index if rows else None, dtype=float)
    out.index = pd.RangeIndex(len(rows)) if index is None else pd.Index(index)
    return out


# ---------------------------------------------------------------------------
# Results table
# ---------------------------------------------------------------------------


def summary_row(
    representation: str,
    dims: int,
    emotion: ProbeResult,
    speaker_id: ProbeResult | None = None,
    gender: ProbeResult | None = None,
) -> dict[str, Any]:
    """One row of :func:`results_table` from probe results.

    Parameters
    ----------
    representation : str
        E.g. ``"VAE mu (12 male actors)"``, ``"PCA"``, ``"pooled log-mel"``, ``"eGeMAPS"``.
    dims : int
        Feature dimensionality.
    emotion : ProbeResult
        From :func:`probe_uar` with emotion labels: gives ``emotion_uar_mean`` / ``_std``.
    speaker_id : ProbeResult, optional
        From :func:`speaker_id_accuracy`: ``speaker_id_acc`` = mean accuracy.
    gender : ProbeResult, optional
        From :func:`probe_uar` with gender labels: ``gender_acc`` = mean plain
        accuracy over the actor folds.

    Returns
    -------
    dict
    """
    return {
        "representation": representation,
        "dims": int(dims),
        "emotion_uar_mean": emotion.uar_mean,
        "emotion_uar_std": emotion.uar_std,
        "speaker_id_acc": np.nan if speaker_id is None else speaker_id.accuracy_mean,
        "gender_acc": np.nan if gender is None else gender.accuracy_mean,
    }


def results_table(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per representation, columns :data:`RESULT_COLUMNS`.

    Parameters
    ----------
    rows : iterable of mappings
        E.g. from :func:`summary_row`; missing numeric columns become NaN.

    Returns
    -------
    pandas.DataFrame
        Ready for ``to_csv(..., index=False)``.

    Raises
    ------
    ValueError
        On a key that is not in :data:`RESULT_COLUMNS` (catches typos), or a
        row without ``representation``.
    """
    records = []
    for row in rows:
        unknown = set(row) - set(RESULT_COLUMNS)
        if unknown:
            raise ValueError(f"unknown columns {sorted(unknown)}; expected {RESULT_COLUMNS}")
        if "representation" not in row:
            raise ValueError("every row needs a 'representation'")
        records.append(dict(row))
    table = pd.DataFrame.from_records(records, columns=list(RESULT_COLUMNS))
    numeric = list(RESULT_COLUMNS[2:])
    table[numeric] = table[numeric].astype(float)
    return table


# ---------------------------------------------------------------------------
# Encoders, learned per fold, cached baselines, maps (report section 5.3)
# ---------------------------------------------------------------------------


class EncoderFoldTransform:
    """Leakage-free learned features: a :data:`FoldTransform` that trains an encoder per fold.

    ``EncoderFoldTransform(train_fn)(X_train, X_test, k)`` calls
    ``train_fn(X_train, k)`` (which must fit a fresh model on ``X_train``
    only, e.g. a VAE on the training actors' clips) and returns the ``mu`` of
    both sets under that model. Results are cached per fold and data, so the
    emotion and gender probes over the same actor folds share one training
    per fold.

    Parameters
    ----------
    train_fn : callable
        ``train_fn(X_train, fold_index) -> model`` with ``model.encode``.
    batch_size : int, default 256
        Encoding batch size.

    Attributes
    ----------
    models : dict
        Fold index -> the trained model (the last one for that index).
    n_trained : int
        How many times ``train_fn`` ran.
    """

    def __init__(self, train_fn: Callable[[np.ndarray, int], Any], batch_size: int = 256) -> None:
        self.train_fn = train_fn
        self.batch_size = batch_size
        self.models: dict[int, Any] = {}
        self.n_trained = 0
        self._cache: dict[tuple[Any, ...], tuple[np.ndarray, np.ndarray]] = {}

    @staticmethod
    def _key(fold_index: int, X_train: np.ndarray, X_test: np.ndarray) -> tuple[Any, ...]:
        import zlib

        def crc(a: np.ndarray) -> int:
            return zlib.crc32(np.ascontiguousarray(a).view(np.uint8))

        return fold_index, X_train.shape, X_test.shape, crc(X_train), crc(X_test)

    def __call__(
        self, X_train: np.ndarray, X_test: np.ndarray, fold_index: int
    ) -> tuple[np.ndarray, np.ndarray]:
        X_train, X_test = np.asarray(X_train, dtype=np.float32), np.asarray(X_test, dtype=np.float32)
        key = self._key(fold_index, X_train, X_test)
        if key not in self._cache:
            model = self.train_fn(X_train, fold_index)
            self.n_trained += 1
            self.models[fold_index] = model
            self._cache[key] = (
                encode_posterior(model, X_train, self.batch_size)[0],
                encode_posterior(model, X_test, self.batch_size)[0],
            )
        f_train, f_test = self._cache[key]
        return f_train.copy(), f_test.copy()


def probe_representation(
    X: np.ndarray,
    index: pd.DataFrame,
    *,
    transform: FoldTransform | None = None,
    speaker_id: bool = True,
    folds: Sequence[Sequence[int]] = ACTOR_FOLDS,
    **kwargs: Any,
) -> dict[str, ProbeResult]:
    """The three probes of one representation on the same clips.

    Parameters
    ----------
    X : np.ndarray
        Features (N, F), or raw input with ``transform``.
    index : pandas.DataFrame, N rows
        Needs columns ``emotion``, ``gender``, ``actor`` and (for the speaker
        probe) ``repetition``, row-aligned with ``X``.
    transform : callable, optional
        See :func:`cross_validate_probe`; used for all three probes.
    speaker_id : bool, default True
        Also run :func:`speaker_id_accuracy` (split by repetition).
    folds : sequence of sequences of int, default :data:`ACTOR_FOLDS`
        Actor folds of the emotion and gender probes.
    **kwargs
        ``C``, ``max_iter``, ``random_state`` of :func:`cross_validate_probe`.

    Returns
    -------
    dict of str to ProbeResult
        Keys ``"emotion"`` and ``"gender"`` (speaker-independent, actor
        folds) and, if asked, ``"speaker_id"``.
    """
    actors = index["actor"].to_numpy()
    out = {
        "emotion": probe_uar(X, index["emotion"].to_numpy(), actors, folds, transform=transform, **kwargs),
        "gender": probe_uar(X, index["gender"].to_numpy(), actors, folds, transform=transform, **kwargs),
    }
    if speaker_id:
        out["speaker_id"] = speaker_id_accuracy(
            X, actors, index["repetition"].to_numpy(), transform=transform, **kwargs
        )
    return out


def factor_separation(
    codes: np.ndarray,
    factors: pd.DataFrame,
    factor: str = "emotion",
    threshold: float = 0.1,
    n_bins: int = 20,
    **kwargs: Any,
) -> dict[str, Any]:
    """How many code dimensions hold one factor, and how much of it.

    Parameters
    ----------
    codes : np.ndarray, shape (N, D)
    factors : pandas.DataFrame
        Must contain the column ``factor``.
    factor : str, default "emotion"
    threshold, n_bins, **kwargs
        Criterion of :func:`informative_dims` (``n_permutations``,
        ``alpha``, ``random_state``).

    Returns
    -------
    dict
        ``n_clips``, ``n_informative`` (count), ``dims`` (0-based list),
        ``max_nmi`` and ``sum_nmi`` (normalised MI over dimensions),
        ``best_dim``, ``mig`` (NaN for a single dimension).
    """
    sub = factors[[factor]]
    nmi = normalised_mi(codes, sub, n_bins)[factor]
    dims = informative_dims(codes, sub, threshold, n_bins, **kwargs)[factor]
    return {
        "n_clips": int(len(sub)),
        "n_informative": len(dims),
        "dims": dims,
        "max_nmi": float(nmi.max()),
        "sum_nmi": float(nmi.sum()),
        "best_dim": int(nmi.idxmax()),
        "mig": float(mig(codes, sub, n_bins)[factor]) if nmi.size > 1 else float("nan"),
    }


def egemaps_cached(
    paths: Sequence[str | os.PathLike[str]],
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    names: Sequence[str] | None = None,
    sampling_rate: int = 16000,
    n_jobs: int = 1,
    progress: bool = True,
) -> pd.DataFrame:
    """:func:`egemaps_functionals` of audio files, computed once and cached as CSV.

    The cache file ``egemaps-<key>.csv`` sits next to the feature cache; its
    key covers the file names and sizes, the sampling rate and the openSMILE
    version, so any change recomputes.

    Parameters
    ----------
    paths : sequence of path-like
        Audio files (loaded mono, resampled to ``sampling_rate``).
    cache_dir : path-like, optional
        Defaults to ``$EMOVAE_CACHE_DIR`` or ``~/.cache/emovae`` (as
        :func:`emovae_utils.data.load_features`).
    names : sequence of str, optional
        Row labels (default: the file stems).
    sampling_rate, n_jobs, progress
        See :func:`egemaps_functionals`.

    Returns
    -------
    pandas.DataFrame, shape (N, 88)
        Indexed by ``names``, in the order of ``paths``.
    """
    import hashlib
    import json

    import opensmile

    paths = [Path(p) for p in paths]
    names = [p.stem for p in paths] if names is None else [str(n) for n in names]
    if len(names) != len(paths):
        raise ValueError("names must have one entry per path")
    blob = json.dumps({"files": [(n, p.stat().st_size) for n, p in zip(names, paths)],
                       "sr": sampling_rate, "opensmile": opensmile.__version__, "set": "eGeMAPSv02"})
    root = cache_root(cache_dir)
    cache_file = root / f"egemaps-{hashlib.sha256(blob.encode()).hexdigest()[:20]}.csv"
    if cache_file.exists():
        try:
            table = pd.read_csv(cache_file, index_col=0)
            if list(table.index.astype(str)) == names and table.shape[1] == 88:
                return table
        except Exception:  # noqa: BLE001 - damaged cache: recompute
            pass
    table = egemaps_functionals(paths, sampling_rate, n_jobs=n_jobs, progress=progress, index=names)
    table.index.name = "name"
    root.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_suffix(f".tmp{os.getpid()}")
    table.to_csv(tmp)
    os.replace(tmp, cache_file)
    return table


def tsne_embedding(
    codes: np.ndarray,
    random_state: int = 0,
    perplexity: float = 30.0,
    standardise: bool = False,
    max_iter: int = 1000,
) -> np.ndarray:
    """2-D t-SNE map of codes (sklearn, PCA initialisation, fixed seed).

    Parameters
    ----------
    codes : np.ndarray, shape (N, D)
    random_state : int, default 0
    perplexity : float, default 30
        Lowered to ``(N - 1) / 3`` for small N.
    standardise : bool, default False
        Z-score each dimension first (the VAE's ``mu`` share the prior's
        scale, so the default keeps the encoder's geometry).
    max_iter : int, default 1000
        Optimisation iterations (sklearn's default; at least 250).

    Returns
    -------
    np.ndarray, shape (N, 2)
    """
    from sklearn.manifold import TSNE

    codes = _check_codes(codes)
    if codes.shape[0] < 4:
        raise ValueError("t-SNE needs at least 4 points")
    if standardise:
        codes = StandardScaler().fit_transform(codes)
    perplexity = min(perplexity, (codes.shape[0] - 1) / 3)
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=random_state, max_iter=max_iter)
    return tsne.fit_transform(codes)

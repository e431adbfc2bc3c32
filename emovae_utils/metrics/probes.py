"""Linear probes: how much emotion, gender and speaker identity a representation holds.

A probe is a standardised multinomial logistic regression (:func:`make_probe`)
trained on some groups of clips and scored on held-out groups, with
scikit-learn's :func:`~sklearn.model_selection.cross_validate` over a
:class:`~sklearn.model_selection.PredefinedSplit` (:func:`predefined_split`).
Emotion and gender are probed speaker-independently with the 5 actor folds of
:data:`emovae_utils.data.ACTOR_FOLDS`; speaker identity needs every actor in
training, so it is probed across repetitions (train on repetition 1, test on
2, and vice versa; :data:`REPETITION_FOLDS`).

The target is UAR (balanced accuracy), and RAVDESS has half as many neutral
clips as clips of each other emotion, so the logistic regression weights each
class inversely to its frequency by default (``class_weight="balanced"``);
``class_weight=None`` gives the unweighted probe.

:func:`probe_rows` lays out the per-fold numbers of one representation's
probes in long form (one row per target and fold), for tables over seeds.

Leakage-free evaluation of learned features: every probe accepts a
``transform``, an unfitted scikit-learn transformer that becomes the first
step of the probe's pipeline. It is cloned and fitted in each fold on that
fold's training rows only, so a PCA
(:func:`~emovae_utils.metrics.baselines.pca_transform`) or a VAE
(:class:`EncoderFoldTransform`) fitted inside it has not seen the held-out
actors.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, confusion_matrix
from sklearn.model_selection import PredefinedSplit, cross_validate
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted, has_fit_parameter

from ..data import ACTOR_FOLDS
from ..generate import encode_posterior
from ..io import sha1_array

__all__ = [
    "REPETITION_FOLDS",
    "ProbeResult",
    "predefined_split",
    "held_out_splits",
    "make_probe",
    "cross_validate_probe",
    "probe_uar",
    "speaker_id_accuracy",
    "probe_representation",
    "probe_rows",
    "actor_uar",
    "PROBE_ROW_COLUMNS",
    "EncoderFoldTransform",
]

#: Held-out groups for the speaker-identity probe: fold 0 tests repetition 1
#: (trains on 2), fold 1 tests repetition 2 (trains on 1).
REPETITION_FOLDS: tuple[tuple[int, ...], ...] = ((1,), (2,))

#: Columns of :func:`probe_rows`, in order.
PROBE_ROW_COLUMNS: tuple[str, ...] = (
    "representation", "seed", "target", "fold", "held_out", "uar", "accuracy", "n_test",
)


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
    fold_n_test : np.ndarray of int, shape (n_folds,), or None
        Number of test rows (clips) per fold; None when not recorded (a
        result built by hand), which :func:`probe_rows` refuses.
    """

    fold_uar: np.ndarray
    fold_accuracy: np.ndarray
    confusion: pd.DataFrame
    predictions: np.ndarray
    held_out: tuple[tuple[Any, ...], ...]
    fold_n_test: np.ndarray | None = None

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
        out = {
            "uar_mean": self.uar_mean,
            "uar_std": self.uar_std,
            "accuracy_mean": self.accuracy_mean,
            "accuracy_std": self.accuracy_std,
            "chance": self.chance,
            "fold_uar": self.fold_uar.tolist(),
            "fold_accuracy": self.fold_accuracy.tolist(),
        }
        if self.fold_n_test is not None:
            out["fold_n_test"] = np.asarray(self.fold_n_test).tolist()
        return out


def predefined_split(
    groups: Sequence[Any] | np.ndarray, held_out: Sequence[Sequence[Any]] = ACTOR_FOLDS
) -> PredefinedSplit:
    """The folds as a scikit-learn split that holds out whole groups.

    Parameters
    ----------
    groups : array-like, shape (N,)
        Group of each row (e.g. actor number, repetition number).
    held_out : sequence of sequences, default :data:`~emovae_utils.data.ACTOR_FOLDS`
        ``held_out[k]``: the groups tested in fold k; fold k trains on all
        other rows (including rows whose group is in no fold).

    Returns
    -------
    sklearn.model_selection.PredefinedSplit
        ``test_fold[i] = k`` for a row of a group in ``held_out[k]``, -1 for a
        row in no fold (always trained on). Its folds come in the order of
        ``held_out``.

    Raises
    ------
    ValueError
        If the held-out sets overlap, or a fold has no train or no test rows.

    Examples
    --------
    >>> import numpy as np
    >>> actors = np.repeat(np.arange(1, 25), 30)
    >>> split = predefined_split(actors)
    >>> [sorted(set(actors[test].tolist())) for _, test in split.split()][0]
    [2, 5, 14, 15, 16]
    """
    groups = np.asarray(groups)
    test_fold = np.full(groups.shape[0], -1, dtype=np.int64)
    seen: set[Any] = set()
    for k, fold in enumerate(held_out):
        fold_set = set(fold)
        if seen & fold_set:
            raise ValueError(f"fold {k} repeats held-out groups {sorted(seen & fold_set)}")
        seen |= fold_set
        test = np.isin(groups, list(fold_set))
        if not test.any() or test.all():
            raise ValueError(f"fold {k} (held out {sorted(fold_set)}) has no test or no train rows")
        test_fold[test] = k
    return PredefinedSplit(test_fold)


def held_out_splits(
    groups: Sequence[Any] | np.ndarray, held_out: Sequence[Sequence[Any]]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Train/test row indices of :func:`predefined_split`, one ``(train_idx, test_idx)`` pair per fold."""
    return list(predefined_split(groups, held_out).split())


def make_probe(
    C: float = 1.0,
    max_iter: int = 5000,
    random_state: int = 0,
    features: Any | None = None,
    *,
    class_weight: str | dict[Any, float] | None = "balanced",
) -> Pipeline:
    """The probe: ``StandardScaler`` then multinomial ``LogisticRegression``.

    Parameters
    ----------
    C : float, default 1.0
        Inverse L2 regularisation strength (fixed, not tuned).
    max_iter : int, default 5000
        lbfgs iterations (large enough to converge on 8-160 standardised features).
    random_state : int, default 0
    features : sklearn transformer, optional
        Prepended as the step ``"features"`` (e.g.
        :func:`~emovae_utils.metrics.baselines.pca_transform`, :class:`EncoderFoldTransform`).
    class_weight : "balanced", dict or None, default "balanced"
        ``LogisticRegression``'s ``class_weight``. ``"balanced"`` weights each
        class by ``n_samples / (n_classes * count)`` in the training rows, so
        every class counts equally in the loss, as it does in UAR (RAVDESS
        neutral has half the clips of each other emotion). ``None``: every
        clip weighs 1 (the probe before this option existed).

    Returns
    -------
    sklearn.pipeline.Pipeline
        Unfitted. With the lbfgs solver the loss is multinomial for >2 classes.

    Examples
    --------
    >>> probe = make_probe()
    >>> [name for name, _ in probe.steps], probe[-1].class_weight
    (['standardscaler', 'logisticregression'], 'balanced')
    >>> make_probe(class_weight=None)[-1].class_weight is None
    True
    """
    probe = make_pipeline(
        StandardScaler(),
        LogisticRegression(C=C, max_iter=max_iter, random_state=random_state, class_weight=class_weight),
    )
    if features is not None:
        probe.steps.insert(0, ("features", features))
    return probe


def cross_validate_probe(
    X: np.ndarray | None,
    labels: Sequence[Any] | np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    held_out: Sequence[Sequence[Any]],
    *,
    transform: Any | None = None,
    C: float = 1.0,
    max_iter: int = 5000,
    random_state: int = 0,
    class_weight: str | dict[Any, float] | None = "balanced",
) -> ProbeResult:
    """Generic group-held-out cross-validation of a linear probe.

    For each fold k, rows whose group is in ``held_out[k]`` are the test set
    and all other rows the training set; the probe of :func:`make_probe`
    (after ``transform``, if given) is fitted on the training rows and scored
    on the test rows (:func:`sklearn.model_selection.cross_validate` over
    :func:`predefined_split`).

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
        Groups tested in each fold (see :func:`predefined_split`).
    transform : sklearn transformer, optional
        Unfitted; cloned per fold and fitted on that fold's training rows only
        (with their labels as ``y``, which the transforms here ignore), e.g.
        :func:`~emovae_utils.metrics.baselines.pca_transform` or
        :class:`EncoderFoldTransform`. A transformer whose ``fit`` takes
        ``test_fold`` receives the split's ``test_fold`` of its training rows.
    C, max_iter, random_state, class_weight
        See :func:`make_probe`; ``class_weight="balanced"`` (default) weights
        the classes of each fold's training rows equally, ``None`` does not.

    Returns
    -------
    ProbeResult
        With ``fold_n_test``, the test rows of each fold.
    """
    labels = np.asarray(labels)
    groups = np.asarray(groups)
    if labels.shape[0] != groups.shape[0]:
        raise ValueError("labels and groups must have the same length")
    if X is None or len(X) != labels.shape[0]:
        raise ValueError("X must have one row per label")
    X = np.asarray(X)
    if transform is None:
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D (N, F) without a transform, got shape {X.shape}")
        X = X.astype(float)
    split = predefined_split(groups, held_out)
    params = {}
    if transform is not None and has_fit_parameter(transform, "test_fold"):
        params["features__test_fold"] = split.test_fold
    cv = cross_validate(
        make_probe(C=C, max_iter=max_iter, random_state=random_state, features=transform,
                   class_weight=class_weight),
        X, labels, cv=split, scoring=("balanced_accuracy", "accuracy"), params=params,
        return_estimator=True, return_indices=True, error_score="raise",
    )
    tests = cv["indices"]["test"]
    fold_pred = [probe.predict(X[test]) for probe, test in zip(cv["estimator"], tests)]
    tested = np.concatenate(tests)
    predictions = np.full(labels.shape[0], None, dtype=object)
    predictions[tested] = np.concatenate(fold_pred)
    classes = np.unique(labels)
    conf = pd.DataFrame(
        confusion_matrix(labels[tested], np.concatenate(fold_pred), labels=classes),
        index=pd.Index(classes, name="true"),
        columns=pd.Index(classes, name="predicted"),
    )
    return ProbeResult(
        fold_uar=np.asarray(cv["test_balanced_accuracy"]),
        fold_accuracy=np.asarray(cv["test_accuracy"]),
        confusion=conf,
        predictions=predictions,
        held_out=tuple(tuple(f) for f in held_out),
        fold_n_test=np.array([len(test) for test in tests], dtype=np.int64),
    )


def probe_uar(
    X: np.ndarray,
    labels: Sequence[Any] | np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    folds: Sequence[Sequence[int]] = ACTOR_FOLDS,
    *,
    class_weight: str | dict[Any, float] | None = "balanced",
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
    folds : sequence of sequences of int, default :data:`~emovae_utils.data.ACTOR_FOLDS`
        Actors held out in each fold.
    class_weight : "balanced", dict or None, default "balanced"
        See :func:`make_probe`.
    **kwargs
        ``transform``, ``C``, ``max_iter``, ``random_state`` of
        :func:`cross_validate_probe`.

    Returns
    -------
    ProbeResult
        ``uar_mean``, ``uar_std``, ``fold_uar``, ``confusion_matrix(normalize=...)``.
    """
    return cross_validate_probe(X, labels, groups, folds, class_weight=class_weight, **kwargs)


def speaker_id_accuracy(
    X: np.ndarray,
    actors: Sequence[Any] | np.ndarray,
    split_groups: Sequence[Any] | np.ndarray,
    held_out: Sequence[Sequence[Any]] = REPETITION_FOLDS,
    *,
    class_weight: str | dict[Any, float] | None = "balanced",
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
    class_weight : "balanced", dict or None, default "balanced"
        See :func:`make_probe` (the actors are balanced here, so it changes
        little).
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
    return cross_validate_probe(X, actors_arr, split_arr, held_out, class_weight=class_weight, **kwargs)


def probe_representation(
    X: np.ndarray,
    index: pd.DataFrame,
    *,
    transform: Any | None = None,
    speaker_id: bool = True,
    folds: Sequence[Sequence[int]] = ACTOR_FOLDS,
    class_weight: str | dict[Any, float] | None = "balanced",
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
    transform : sklearn transformer, optional
        See :func:`cross_validate_probe`; used for all three probes.
    speaker_id : bool, default True
        Also run :func:`speaker_id_accuracy` (split by repetition).
    folds : sequence of sequences of int, default :data:`~emovae_utils.data.ACTOR_FOLDS`
        Actor folds of the emotion and gender probes.
    class_weight : "balanced", dict or None, default "balanced"
        See :func:`make_probe`; used for all three probes.
    **kwargs
        ``C``, ``max_iter``, ``random_state`` of :func:`cross_validate_probe`.

    Returns
    -------
    dict of str to ProbeResult
        Keys ``"emotion"`` and ``"gender"`` (speaker-independent, actor
        folds) and, if asked, ``"speaker_id"``.

    Examples
    --------
    Features that hold the emotion of each clip and nothing of its speaker:

    >>> import itertools, numpy as np, pandas as pd
    >>> index = pd.DataFrame(list(itertools.product(range(1, 25), range(8), (1, 2))),
    ...                      columns=["actor", "emotion", "repetition"])
    >>> index["gender"] = np.where(index.actor % 2, "male", "female")
    >>> X = np.eye(8)[index.emotion] + 0.1 * np.random.default_rng(0).standard_normal((len(index), 8))
    >>> res = probe_representation(X, index)
    >>> round(res["emotion"].uar_mean, 2), res["emotion"].chance, res["speaker_id"].accuracy_mean < 0.2
    (1.0, 0.125, True)
    """
    actors = index["actor"].to_numpy()
    kwargs.update(transform=transform, class_weight=class_weight)
    out = {
        "emotion": probe_uar(X, index["emotion"].to_numpy(), actors, folds, **kwargs),
        "gender": probe_uar(X, index["gender"].to_numpy(), actors, folds, **kwargs),
    }
    if speaker_id:
        out["speaker_id"] = speaker_id_accuracy(X, actors, index["repetition"].to_numpy(), **kwargs)
    return out


def probe_rows(
    probes: Mapping[str, ProbeResult], representation: str, seed: int | None = None
) -> pd.DataFrame:
    """Per-fold probe results of one representation in long form.

    One row per target and fold, so the rows of several representations and
    seeds concatenate (``pd.concat``) into one table for per-fold and
    across-seed statistics.

    Parameters
    ----------
    probes : mapping of str to ProbeResult
        E.g. from :func:`probe_representation`: ``{"emotion": ..., "gender":
        ..., "speaker_id": ...}`` (``"speaker_id"`` optional). The keys become
        the ``target`` column, in the mapping's order.
    representation : str
        Name of the representation, e.g. ``"VAE mu, 12-actor encoder (male)"``.
    seed : int, optional
        Seed of the run that made the representation; None (missing) when
        there is only one.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PROBE_ROW_COLUMNS`: ``representation`` (str), ``seed``
        (nullable ``Int64``), ``target`` (str), ``fold`` (int, 0-based index
        into the result's ``held_out``), ``held_out`` (the fold's held-out
        groups as text, e.g. ``"2 5 14 15 16"``), ``uar`` (balanced
        accuracy), ``accuracy``, ``n_test`` (test clips of the fold). The
        mean of ``uar`` over a target's rows is that result's ``uar_mean``.

    Raises
    ------
    TypeError
        If a value is not a :class:`ProbeResult`.
    ValueError
        If ``probes`` is empty, or a result lacks ``fold_n_test`` (built by
        hand rather than by :func:`cross_validate_probe`).

    Examples
    --------
    >>> import itertools, numpy as np, pandas as pd
    >>> index = pd.DataFrame(list(itertools.product(range(1, 25), range(8), (1, 2))),
    ...                      columns=["actor", "emotion", "repetition"])
    >>> index["gender"] = np.where(index.actor % 2, "male", "female")
    >>> X = np.eye(8)[index.emotion] + 0.1 * np.random.default_rng(0).standard_normal((len(index), 8))
    >>> rows = probe_rows(probe_representation(X, index), "one-hot emotion", seed=0)
    >>> rows.groupby("target", sort=False).size().to_dict()
    {'emotion': 5, 'gender': 5, 'speaker_id': 2}
    >>> print(rows.iloc[[0, 1, 10]][["target", "fold", "held_out", "n_test"]].to_string(index=False))
        target  fold     held_out  n_test
       emotion     0 2 5 14 15 16      80
       emotion     1  3 6 7 13 18      80
    speaker_id     0            1     192
    """
    if not probes:
        raise ValueError("probes is empty: pass the dict probe_representation returns")
    frames = []
    for target, res in probes.items():
        if not isinstance(res, ProbeResult):
            raise TypeError(f"probes[{target!r}] is a {type(res).__name__}, not a ProbeResult")
        if res.fold_n_test is None:
            raise ValueError(
                f"probes[{target!r}] has no fold_n_test (test clips per fold); "
                "make it with cross_validate_probe / probe_uar / probe_representation"
            )
        n_folds = len(res.fold_uar)
        frames.append(pd.DataFrame({
            "representation": representation,
            "seed": pd.array([seed] * n_folds, dtype="Int64"),
            "target": target,
            "fold": np.arange(n_folds),
            "held_out": [" ".join(str(g) for g in fold) for fold in res.held_out],
            "uar": np.asarray(res.fold_uar, dtype=float),
            "accuracy": np.asarray(res.fold_accuracy, dtype=float),
            "n_test": np.asarray(res.fold_n_test, dtype=np.int64),
        }, columns=list(PROBE_ROW_COLUMNS)))
    return pd.concat(frames, ignore_index=True)


def actor_uar(result: Any, actors: Sequence[Any] | np.ndarray, labels: Sequence[Any] | np.ndarray) -> pd.Series:
    """Each held-out actor's UAR (balanced accuracy of its own clips) from a probe's held-out predictions.

    Parameters
    ----------
    result : ProbeResult
        With ``predictions`` for every clip (speaker-independent folds: each clip predicted once, by the
        probe that never saw its actor).
    actors, labels : array-like, shape (N,)

    Returns
    -------
    pandas.Series
        Index: actor; the unit the probes' intervals resample.

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> r = NS(predictions=np.array(["a", "b", "a", "a"], dtype=object))
    >>> actor_uar(r, [1, 1, 2, 2], ["a", "b", "a", "b"]).tolist()
    [1.0, 0.5]
    """
    frame = pd.DataFrame({"actor": np.asarray(actors), "true": np.asarray(labels),
                          "pred": np.asarray(result.predictions)})
    frame = frame[frame["pred"].notna()]
    return frame.groupby("actor").apply(
        lambda g: balanced_accuracy_score(g["true"], g["pred"].astype(g["true"].dtype)), include_groups=False,
    ).rename("uar")


class _TrainedEncoders:
    """What the clones of one :class:`EncoderFoldTransform` share."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[Any, ...], Any] = {}
        self.models: dict[int, Any] = {}
        self.n_trained = 0


def _held_out_fold(train_test_fold: np.ndarray) -> int:
    """Fold index held out, from the ``test_fold`` values of a fold's training rows.

    The training rows hold every fold but the held-out one, so it is the
    smallest fold number missing among them.
    """
    present = set(np.unique(train_test_fold).tolist())
    return next(k for k in itertools.count() if k not in present)


class EncoderFoldTransform(TransformerMixin, BaseEstimator):
    """Leakage-free learned features: an encoder trained per fold, as a pipeline step.

    ``fit(X_train, test_fold=...)`` calls ``train_fn(X_train, fold_index)``,
    which must fit a fresh model on ``X_train`` only (e.g. a VAE on the
    training actors' clips); ``transform(X)`` returns the ``mu`` of ``X``
    under that model. The probes pass ``test_fold`` (the fold numbers of the
    training rows), from which the held-out fold's index is read; without it
    the index is 0. The clones a cross-validation makes share one record of
    trained models: a model trained on the same clips for the same fold is
    reused, so the emotion and gender probes over the same actor folds share
    one training per fold.

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
    model_ : object
        The model of this (fitted) step.

    Examples
    --------
    As in notebook 05 (there 2000 epochs per fold), on the statement-01 clips of RAVDESS
    (``ravdess_dir``):

    >>> from emovae_utils import data, models, train
    >>> X, index = data.load_features(ravdess_dir, progress=False)
    >>> study = (index["statement"] == 1).to_numpy()
    >>> def train_fold_vae(X_train, fold):
    ...     vae = models.build("emotion_vae", latent_dim=8)
    ...     train.fit(vae, X_train, epochs=1, batch_size=64, seed=fold, progress=False)
    ...     return vae
    >>> fold_vae = EncoderFoldTransform(train_fold_vae)
    >>> probes = probe_representation(X[study], index[study].reset_index(drop=True), transform=fold_vae,
    ...                               speaker_id=False)
    >>> fold_vae.n_trained  # one VAE per actor fold, shared by the emotion and gender probes
    5
    """

    def __init__(self, train_fn: Callable[[np.ndarray, int], Any], batch_size: int = 256) -> None:
        self.train_fn = train_fn
        self.batch_size = batch_size
        self._shared = _TrainedEncoders()

    def __sklearn_clone__(self) -> EncoderFoldTransform:
        twin = type(self)(self.train_fn, self.batch_size)
        twin._shared = self._shared
        return twin

    @property
    def models(self) -> dict[int, Any]:
        return self._shared.models

    @property
    def n_trained(self) -> int:
        return self._shared.n_trained

    def fit(self, X: np.ndarray, y: Any = None, test_fold: np.ndarray | None = None) -> EncoderFoldTransform:
        """Train (or reuse) the model of this fold on ``X``; ``y`` is ignored."""
        X = np.asarray(X, dtype=np.float32)
        fold = 0 if test_fold is None else _held_out_fold(np.asarray(test_fold))
        key = (fold, X.shape, sha1_array(X))
        shared = self._shared
        if key not in shared.by_key:
            model = self.train_fn(X, fold)
            shared.n_trained += 1
            shared.models[fold] = shared.by_key[key] = model
        self.model_ = shared.by_key[key]
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Posterior means ``mu`` (N, D), float64, of ``X`` under this fold's model."""
        check_is_fitted(self, "model_")
        return encode_posterior(self.model_, np.asarray(X, dtype=np.float32), self.batch_size)[0].astype(float)

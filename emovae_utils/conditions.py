"""Conditions by name: what a conditioned model gets as ``cond``, built from the clips and their index.

A :class:`~emovae_utils.experiments.Trial` names its condition (``cond="speaker_code"``)
rather than carrying arrays, so it stays a small, hashable spec; the trial
runner, the evaluation of notebook 06 and the latent explorer all build the
condition of any set of clips with :func:`make_condition`, in this one place.
Whether a named condition is the model's ``cond`` (what its encoder/decoder
read) or its training ``labels`` (what only its loss reads) follows from the
model class's declarations (:attr:`~emovae_utils.models.Model.condition`,
:attr:`~emovae_utils.models.Model.labels`): :func:`route_condition`.

=================  ==========================================  ==========================================
name               value per clip                              label-free for emotion?
=================  ==========================================  ==========================================
``speaker_code``   its speaker's mean log-mel (n_mels,)        yes: audio and speaker grouping only
``clip_code``      its own time-averaged log-mel (n_mels,)     label-free, but carries the clip's level
``labels``         (emotion index, speaker index), int         no: training labels (supervised models)
``emotion``        emotion index, int                          no: training labels (classifiers)
``lengths``        voiced frames (the sequence VAE)            yes
=================  ==========================================  ==========================================

Emotion index = ``emotion_id - 1`` (0..7); speaker index = ``actor - 1`` (0..23).

Examples
--------
>>> import numpy as np, pandas as pd
>>> X = np.stack([np.full((80, 128), v) for v in (-40.0, -20.0, -10.0)]).astype("float32")
>>> index = pd.DataFrame({"actor": [1, 1, 2], "emotion_id": [1, 5, 8]})
>>> make_condition("speaker_code", X, index)[:, 0].tolist()
[-30.0, -30.0, -10.0]
>>> make_condition("labels", X, index).tolist()
[[0, 0], [4, 0], [7, 1]]
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch

__all__ = ["speaker_codes", "clip_codes", "CONDITIONS", "LABEL_FREE", "make_condition", "check_condition", "route_condition"]


def _spectrograms(X: Any) -> np.ndarray:
    X = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    if X.ndim != 3:
        raise ValueError(f"X must be (N, n_mels, frames) spectrograms, got shape {X.shape}")
    return X


def clip_codes(X: np.ndarray | torch.Tensor) -> np.ndarray:
    """Each clip's time-averaged log-mel spectrum: the condition formed from the clip alone.

    Parameters
    ----------
    X : array or tensor, (N, n_mels, frames)
        Log-mel spectrograms (dB).

    Returns
    -------
    np.ndarray, (N, n_mels), float32
        ``X.mean(axis=2)``. Label-free, but it carries the clip's own
        emotion-related loudness and spectral tilt (see the module notes).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.stack([np.full((80, 128), -40.0), np.full((80, 128), -20.0)])
    >>> clip_codes(X)[:, 0].tolist()
    [-40.0, -20.0]
    """
    return _spectrograms(X).mean(axis=2, dtype=np.float64).astype(np.float32)


def speaker_codes(X: np.ndarray | torch.Tensor, speakers: Any) -> np.ndarray:
    """Each clip's speaker code: the mean log-mel spectrum of its speaker (over clips and time).

    Parameters
    ----------
    X : array or tensor, (N, n_mels, frames)
        Log-mel spectrograms (dB).
    speakers : array-like, (N,)
        A speaker id per clip (any hashable values, e.g. RAVDESS actor
        numbers: ``index["actor"]``).

    Returns
    -------
    np.ndarray, (N, n_mels), float32
        Row ``i`` is the mean of ``X[j]`` over time and over every clip ``j``
        with ``speakers[j] == speakers[i]`` (each clip weighted equally); all
        clips of a speaker get the same row.

    Notes
    -----
    Label-free for emotion: it uses only audio and the clip-to-speaker
    grouping, never an emotion label. Available at test time: call it on the
    test clips themselves (``speaker_codes(X_test, actors_test)``), so an unseen
    speaker's code comes from their own unlabeled clips; the training codes
    come from the training clips. Because every RAVDESS actor reads the same
    balanced design, each speaker's average covers the same emotion mix, so
    the code describes the voice (level, formant region, spectral tilt,
    recording chain), not the emotion of any clip. With fewer clips per
    speaker (or an unbalanced mix) the code averages over fewer emotions and
    can leak some emotion information.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.stack([np.full((80, 128), v) for v in (-40.0, -20.0, -10.0)])
    >>> speaker_codes(X, ["a", "a", "b"])[:, 0].tolist()
    [-30.0, -30.0, -10.0]
    """
    X = _spectrograms(X)
    speakers = np.asarray(speakers)
    if speakers.shape != (X.shape[0],):
        raise ValueError(f"speakers must hold one id per clip, shape ({X.shape[0]},), got {speakers.shape}")
    per_clip = X.mean(axis=2, dtype=np.float64)  # (N, n_mels)
    _, group = np.unique(speakers, return_inverse=True)
    group = group.reshape(-1)
    sums = np.zeros((group.max(initial=-1) + 1, X.shape[1]))
    np.add.at(sums, group, per_clip)
    means = sums / np.bincount(group)[:, None]
    return means[group].astype(np.float32)


def _speaker_code(X: np.ndarray, index: pd.DataFrame) -> np.ndarray:
    return speaker_codes(X, _column(index, "actor", "speaker_code"))


def _clip_code(X: np.ndarray, index: pd.DataFrame | None) -> np.ndarray:
    return clip_codes(X)


def _emotion(X: np.ndarray, index: pd.DataFrame, name: str = "emotion") -> np.ndarray:
    return _column(index, "emotion_id", name).astype(np.int64) - 1


def _labels(X: np.ndarray, index: pd.DataFrame) -> np.ndarray:
    return np.stack([_emotion(X, index, "labels"), _column(index, "actor", "labels").astype(np.int64) - 1], axis=1)


def _lengths(X: np.ndarray, index: pd.DataFrame) -> np.ndarray:
    column = "n_frames" if index is not None and "n_frames" in index.columns else "voiced_frames"
    return np.minimum(_column(index, column, "lengths").astype(np.int64), X.shape[-1])


#: Condition name -> ``builder(X, index) -> array (N, ...)``.
CONDITIONS: dict[str, Callable[[np.ndarray, Any], np.ndarray]] = {
    "speaker_code": _speaker_code,
    "clip_code": _clip_code,
    "labels": _labels,
    "emotion": _emotion,
    "lengths": _lengths,
}


#: Conditions formed without any label: given at evaluation to the test speakers' clips too.
LABEL_FREE = frozenset({"speaker_code", "clip_code", "lengths"})


#: Index column -> (what it tells of a clip, how to give it where it is missing).
_COLUMNS = {
    "emotion_id": ("emotion", "label the clips: an 'emotion_id' column of RAVDESS codes 1..8 (the label-free "
                              "conditions speaker_code, clip_code and lengths need none)"),
    "actor": ("speaker", "give each speaker an id in an 'actor' column, shared by that speaker's clips "
                         "(or use 'clip_code', which needs none)"),
    "n_frames": ("length", "build the clips with emovae_utils.data.load_sequences"),
    "voiced_frames": ("length", "build the clips with emovae_utils.data.load_features"),
}


def _column(index: pd.DataFrame | None, column: str, name: str) -> np.ndarray:
    """``index[column]`` as an array; an error saying what is missing when the column is absent or has gaps."""
    what, how = _COLUMNS[column]
    if index is None or column not in index.columns:
        raise KeyError(f"condition {name!r} needs each clip's {what}: the clip index with the column {column!r} "
                       f"(emovae_utils.data.load_features gives it for RAVDESS; pass data=(X, index)); for other "
                       f"recordings {how}")
    missing = index[column].isna().to_numpy()
    if missing.any():
        raise ValueError(f"condition {name!r} needs each clip's {what}, but {int(missing.sum())} of {len(missing)} "
                         f"clips have none ({column!r} is missing, e.g. own recordings from data.audio_index, "
                         f"first: row {int(np.flatnonzero(missing)[0])}); {how}")
    return index[column].to_numpy()


def check_condition(name: str) -> str:
    """``name`` if it is a key of :data:`CONDITIONS`, else a KeyError listing the known ones."""
    if name not in CONDITIONS:
        raise KeyError(f"unknown condition {name!r}; known: {', '.join(sorted(CONDITIONS))}")
    return name


def make_condition(name: str | None, X: np.ndarray, index: pd.DataFrame | None) -> np.ndarray | None:
    """The condition ``name`` for clips ``X`` (N, n_mels, frames) with their ``index`` rows (or None for no condition).

    Parameters
    ----------
    name : str or None
        A key of :data:`CONDITIONS`; None returns None.
    X : np.ndarray, (N, n_mels, frames)
        The clips, row-aligned with ``index``.
    index : pandas.DataFrame or None
        Their rows of the feature index (``actor``, ``emotion_id``, ``n_frames``/``voiced_frames``).

    Returns
    -------
    np.ndarray (N, ...) or None

    Raises
    ------
    KeyError
        For an unknown name (listing the known ones) or a missing index column.
    ValueError
        When a clip lacks what the condition needs (no emotion, no speaker: NaN or <NA> in the column).
    """
    if name is None:
        return None
    check_condition(name)
    X = np.asarray(X)
    if index is not None and len(index) != len(X):
        raise ValueError(f"the index has {len(index)} rows but X has {len(X)} clips")
    return CONDITIONS[name](X, index)


def route_condition(name: str | Sequence[str] | None, model_cls: type, X: np.ndarray | None = None,
                    index: pd.DataFrame | None = None) -> dict[str, np.ndarray]:
    """Where the condition ``name`` goes for a model of class ``model_cls``: ``{"cond": ...}`` or ``{"labels": ...}``.

    A label-free condition (:data:`LABEL_FREE`) is the ``cond`` of a model that
    declares a :attr:`~emovae_utils.models.Model.condition`; a labelled one is
    the ``labels`` of a model that declares :attr:`~emovae_utils.models.Model.labels`.

    Parameters
    ----------
    name : str, sequence of str, or None
        A key of :data:`CONDITIONS`; None gives ``{}``. Several names (a model that takes
        both a condition and training labels, e.g. ``("lengths", "labels")``) are routed
        one by one into one dict; two names for the same role are an error.
    model_cls : type
        A registered model class (:func:`emovae_utils.models.model_class`).
    X, index : optional
        The clips and their index rows: given ``X``, the values are built
        (:func:`make_condition`); without it (a check) they are None.

    Returns
    -------
    dict
        ``{}``, ``{"cond": values}`` or ``{"labels": values}`` (keyword arguments of
        :func:`emovae_utils.train.fit`).

    Raises
    ------
    KeyError
        For an unknown name.
    ValueError
        When the model declares neither a condition nor labels of that kind.

    Examples
    --------
    >>> from emovae_utils.models import model_class
    >>> route_condition("labels", model_class("supervised_vae"))
    {'labels': None}
    >>> route_condition("speaker_code", model_cls=model_class("speaker_vae"))
    {'cond': None}
    """
    if name is None:
        return {}
    if not isinstance(name, str):
        routed: dict[str, np.ndarray] = {}
        for one in name:
            part = route_condition(one, model_cls, X, index)
            if set(part) & set(routed):
                raise ValueError(f"conditions {list(name)}: two of them are {model_cls.__name__}'s "
                                 f"{next(iter(part))}; name one condition and at most one set of labels")
            routed.update(part)
        return routed
    check_condition(name)
    if name in LABEL_FREE and model_cls.condition is not None:
        role = "cond"
    elif name not in LABEL_FREE and model_cls.labels is not None:
        role = "labels"
    else:
        kind = "a label-free condition" if name in LABEL_FREE else "training labels"
        raise ValueError(f"{model_cls.__name__} declares condition={model_cls.condition!r} and "
                         f"labels={model_cls.labels!r}: it takes no {kind} such as {name!r}")
    return {role: None if X is None else make_condition(name, X, index)}

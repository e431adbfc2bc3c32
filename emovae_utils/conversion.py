"""Emotion conversion with a model that declares an emotion latent: swap it, decode.

With a model that declares :attr:`~emovae_utils.models.Model.emotion_dims` (the
:class:`~emovae_utils.models.EmotionSupervisedVAE`, the factorised sequence VAE), whose first
``emotion_dims`` latent dimensions are trained to carry emotion and not
speaker, a clip is converted to another emotion by replacing those
dimensions of its posterior mean with the mean sub-latent of the target
emotion (:func:`emotion_means`) and decoding (:func:`convert_emotion`).
Conversions are scored with two classifiers on the converted clips
(:func:`conversion_scores`): an emotion classifier (is the target emotion
heard?) and a speaker classifier (:func:`speaker_classifier`: is the source
speaker kept?).

Examples
--------
>>> import numpy as np
>>> from emovae_utils.models import build
>>> model = build("supervised_vae", latent_dim=8, emotion_dims=2)
>>> X = np.random.default_rng(0).normal(-40, 3, (6, 80, 128)).astype(np.float32)
>>> means = emotion_means(model, X, ["sad", "angry", "sad", "angry", "sad", "angry"])
>>> means.shape, list(means.index)
((2, 2), ['angry', 'sad'])
>>> convert_emotion(model, X[:3], means.loc["angry"].to_numpy()).shape
(3, 80, 128)
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from .metrics.baselines import pooled_log_mel
from .models.base import Model, condition_tensor

__all__ = ["emotion_means", "convert_emotion", "conversion_scores", "speaker_classifier"]


def _check_model(model: Any) -> Model:
    if not isinstance(model, Model) or model.emotion_dims is None:
        raise TypeError(f"emotion conversion needs a model that declares an emotion latent (emotion_dims), e.g. "
                        f"build('supervised_vae') or build('factorised_vae'); got {type(model).__name__}")
    return model


def emotion_means(model: Model, X: np.ndarray | torch.Tensor,
                  emotions: Sequence[Any] | np.ndarray | pd.Series, cond: Any = None) -> pd.DataFrame:
    """Mean posterior emotion sub-latent, ``mu[:, :emotion_dims]``, of each emotion.

    Parameters
    ----------
    model : Model
        A trained model that declares ``emotion_dims`` (evaluated in eval mode, its mode restored).
    X : array or tensor, (N, 80, frames)
        dB log-mels of the clips to average over (the training clips).
    emotions : sequence, (N,)
        Emotion label of each clip (names or ids; any hashable labels).
    cond : array, (N, ...), optional
        The model's condition (e.g. the lengths of a sequence model).

    Returns
    -------
    pandas.DataFrame, (n_emotions, emotion_dims)
        Index: the sorted labels (named ``emotion``); columns ``z0 .. z{emotion_dims-1}``.

    Examples
    --------
    >>> import numpy as np
    >>> from emovae_utils.models import build
    >>> model = build("supervised_vae", emotion_dims=3)
    >>> emotion_means(model, np.zeros((4, 80, 128), np.float32), [1, 2, 1, 2]).shape
    (2, 3)
    """
    model = _check_model(model)
    emotions = np.asarray(emotions)
    if emotions.ndim != 1 or len(emotions) != len(X):
        raise ValueError(f"emotions must hold one label per clip: got shape {emotions.shape} for {len(X)} clips")
    e = model.represent(X, cond)[:, :model.emotion_dims]
    frame = pd.DataFrame(e, columns=[f"z{i}" for i in range(model.emotion_dims)])
    frame["emotion"] = emotions
    return frame.groupby("emotion", sort=True).mean()


@torch.no_grad()
def convert_emotion(model: Model, X: np.ndarray | torch.Tensor, target: np.ndarray | torch.Tensor | pd.Series,
                    batch_size: int = 256, cond: Any = None) -> np.ndarray:
    """Decode each clip with its emotion sub-latent replaced by ``target``.

    ``z = concat(target, mu[:, emotion_dims:])`` with ``mu`` the posterior
    mean of each clip, then ``decode(z)``.

    Parameters
    ----------
    model : Model
        A trained model that declares ``emotion_dims`` (evaluated in eval mode, its mode restored).
    X : array or tensor, (N, 80, frames)
        Source clips (dB log-mels).
    target : array, (emotion_dims,) or (N, emotion_dims)
        One target sub-latent for every clip (e.g. a row of
        :func:`emotion_means`), or one per clip.
    batch_size : int, default 256
        Clips converted at once.
    cond : array, (N, ...), optional
        The model's condition (e.g. the lengths of a sequence model), kept for the converted clip.

    Returns
    -------
    np.ndarray, (N, 80, frames), float32
        Converted dB log-mels.

    Examples
    --------
    >>> import numpy as np
    >>> from emovae_utils.models import build
    >>> model = build("supervised_vae", emotion_dims=2)
    >>> convert_emotion(model, np.zeros((3, 80, 128), np.float32), np.array([1.0, -1.0])).shape
    (3, 80, 128)
    """
    model = _check_model(model)
    p = next(model.parameters())
    X = torch.as_tensor(np.array(X, dtype=np.float32) if not torch.is_tensor(X) else X)
    n, d = X.shape[0], model.emotion_dims
    target = torch.as_tensor(np.array(target, dtype=np.float32) if not torch.is_tensor(target) else target)
    if target.shape == (d,):
        target = target.expand(n, d)
    if target.shape != (n, d):
        raise ValueError(f"target must be one sub-latent ({d},) or one per clip ({n}, {d}); got {tuple(target.shape)}"
                         " (a row of emotion_means(...) has the right size)")
    was_training = model.training
    model.eval()
    parts = []
    try:
        for i in range(0, n, batch_size):
            x = X[i: i + batch_size].to(device=p.device, dtype=p.dtype)
            c = None if cond is None else condition_tensor(np.asarray(cond)[i: i + batch_size], p.device)
            mu, _ = model.encode(x, c)
            z = torch.cat([target[i: i + batch_size].to(device=p.device, dtype=p.dtype), mu[:, d:]], dim=1)
            parts.append(model.decode(z, c).float().cpu())
    finally:
        model.train(was_training)
    if not parts:
        return np.zeros((0, *X.shape[1:]), dtype=np.float32)
    return torch.cat(parts).numpy()


def conversion_scores(emotion_pred: Sequence[Any] | np.ndarray, target_emotion: Sequence[Any] | np.ndarray,
                      speaker_pred: Sequence[Any] | np.ndarray, source_speaker: Sequence[Any] | np.ndarray,
                      n_emotions: int = 8) -> pd.DataFrame:
    """Per target emotion: how often the target emotion is recognised and the source speaker kept.

    Parameters
    ----------
    emotion_pred : array, (N,)
        An emotion classifier's prediction for each converted clip (e.g.
        ``EmotionCNN.predict(converted)``), in the labels of ``target_emotion``.
    target_emotion : array, (N,)
        The emotion each clip was converted to.
    speaker_pred : array, (N,)
        A speaker classifier's prediction for each converted clip (e.g.
        :func:`speaker_classifier` ``.predict(converted)``).
    source_speaker : array, (N,)
        The speaker of each source clip.
    n_emotions : int, default 8
        Number of emotion classes, for the chance level ``1 / n_emotions``.

    Returns
    -------
    pandas.DataFrame
        One row per target emotion (sorted) and a last row ``all`` (over every
        clip), columns ``n`` (clips), ``emotion_rate`` (fraction with
        ``emotion_pred == target_emotion``), ``speaker_rate`` (fraction with
        ``speaker_pred == source_speaker``) and ``emotion_chance``.

    Examples
    --------
    >>> scores = conversion_scores(emotion_pred=["sad", "sad", "angry", "angry"],
    ...                            target_emotion=["sad", "sad", "angry", "angry"],
    ...                            speaker_pred=[1, 2, 3, 3], source_speaker=[1, 1, 3, 3])
    >>> list(scores.index), list(scores.columns)
    (['angry', 'sad', 'all'], ['n', 'emotion_rate', 'speaker_rate', 'emotion_chance'])
    >>> scores["speaker_rate"].tolist(), scores["n"].tolist()
    ([1.0, 0.5, 0.75], [2, 2, 4])
    """
    arrays = [np.asarray(a) for a in (emotion_pred, target_emotion, speaker_pred, source_speaker)]
    lengths = {a.shape for a in arrays}
    if len(lengths) != 1 or arrays[0].ndim != 1:
        raise ValueError("emotion_pred, target_emotion, speaker_pred and source_speaker must be 1-D with one "
                         f"entry per converted clip; got shapes {[a.shape for a in arrays]}")
    e_pred, target, s_pred, source = arrays
    frame = pd.DataFrame({"target": target, "emotion_ok": e_pred == target, "speaker_ok": s_pred == source})
    per = frame.groupby("target", sort=True).agg(n=("emotion_ok", "size"), emotion_rate=("emotion_ok", "mean"),
                                                 speaker_rate=("speaker_ok", "mean"))
    per.loc["all"] = [len(frame), frame["emotion_ok"].mean(), frame["speaker_ok"].mean()]
    per["n"] = per["n"].astype(int)
    per["emotion_chance"] = 1.0 / n_emotions
    per.index.name = "target"
    return per


def speaker_classifier(X: np.ndarray, actors: Sequence[Any] | np.ndarray, random_state: int = 0) -> Pipeline:
    """A speaker classifier on pooled log-mel statistics, fitted on ``X``.

    ``StandardScaler`` + ``LogisticRegression(class_weight="balanced")`` on
    :func:`~emovae_utils.metrics.baselines.pooled_log_mel` (mean and standard
    deviation over time of each mel band). Fit it on clips no VAE saw (e.g.
    statement 2 of all actors) and apply it to converted clips
    (statement 1) to measure whether conversion keeps the speaker.

    Parameters
    ----------
    X : np.ndarray, (N, n_mels, frames)
        dB log-mels.
    actors : array, (N,)
        Speaker of each clip.
    random_state : int, default 0
        Seed of the logistic regression.

    Returns
    -------
    sklearn.pipeline.Pipeline
        Fitted; ``predict`` takes log-mels (N, n_mels, frames) directly.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(-40, 1, (20, 80, 128)); X[10:, :40] += 10  # speaker 2 is brighter
    >>> clf = speaker_classifier(X, [1] * 10 + [2] * 10)
    >>> clf.predict(X[[0, 15]]).tolist()
    [1, 2]
    """
    from sklearn.preprocessing import FunctionTransformer

    X = np.asarray(X)
    actors = np.asarray(actors)
    if X.ndim != 3 or actors.shape != (X.shape[0],):
        raise ValueError(f"X must be (N, n_mels, frames) log-mels and actors one label per clip; got X {X.shape} "
                         f"and actors {actors.shape}")
    if len(np.unique(actors)) < 2:
        raise ValueError("speaker_classifier needs clips of at least 2 speakers")
    pipe = make_pipeline(FunctionTransformer(pooled_log_mel), StandardScaler(),
                         LogisticRegression(class_weight="balanced", max_iter=2000, random_state=random_state))
    return pipe.fit(X, actors)

"""Emotion weights to an emotion latent: :class:`EmotionMixer` (no widgets).

A model that declares an emotion latent (``model.emotion_dims = k``: its
first ``k`` latent dimensions, :attr:`~emovae_utils.models.base.Model.emotion_dims`)
changes a clip's emotion by replacing those dimensions and decoding; content
and speaker, the other dimensions, stay as they are. The mixer makes the
replacement from weights: the clip's own emotion latent and each emotion's
mean emotion latent over the training clips
(:func:`emovae_utils.conversion.emotion_means`), averaged with the weights.
Everything it needs is computed once; a weight change costs a (k x 9) sum.

Examples
--------
>>> import numpy as np
>>> m = EmotionMixer({"sad": [1.0, 0.0], "angry": [0.0, 1.0]}, own=[0.0, 0.0])
>>> m.latent({"sad": 1.0}).tolist()                   # all sad
[1.0, 0.0]
>>> m.latent({OWN: 1.0, "angry": 1.0}).tolist()       # half own, half angry
[0.0, 0.5]
>>> with_emotion(np.array([9.0, 9.0, 5.0, 6.0]), m.latent({"angry": 1.0})).tolist()  # the rest kept
[0.0, 1.0, 5.0, 6.0]
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["OWN", "EmotionMixer", "with_emotion"]

#: Weight name of the clip's own emotion latent.
OWN = "own"


def with_emotion(z: np.ndarray, emotion: np.ndarray) -> np.ndarray:
    """``z`` (D,) with its first ``len(emotion)`` dimensions replaced by ``emotion``; float32, a copy.

    Examples
    --------
    >>> with_emotion(np.zeros(3), np.ones(1)).tolist()
    [1.0, 0.0, 0.0]
    """
    z = np.array(z, dtype=np.float32).reshape(-1)
    e = np.asarray(emotion, dtype=np.float32).reshape(-1)
    if len(e) > len(z):
        raise ValueError(f"an emotion latent of {len(e)} dimensions does not fit a latent of {len(z)}")
    z[: len(e)] = e
    return z


class EmotionMixer:
    """Emotion weights -> an emotion latent: the weighted mean of the clip's own and the emotions' means.

    Parameters
    ----------
    means : mapping of str to array (k,), or pandas.DataFrame
        Each emotion's mean emotion latent: a mapping, or the frame of
        :func:`~emovae_utils.conversion.emotion_means` (one row per emotion, columns ``z0 ..``).
    own : array (k,)
        The clip's own emotion latent (its posterior mean's first ``k`` dimensions).

    Attributes
    ----------
    emotions : list of str
        The emotions, in the order of ``means``; :attr:`names` is ``[OWN, *emotions]``.
    k : int
        Size of the emotion latent.

    Examples
    --------
    >>> m = EmotionMixer({"calm": [2.0]}, own=[0.0])
    >>> m.names, m.latent({}).tolist(), m.latent({"calm": 0.5, OWN: 0.5}).tolist()   # no weight: own
    (['own', 'calm'], [0.0], [1.0])
    """

    def __init__(self, means: Any, own: Sequence[float] | np.ndarray) -> None:
        items = ([(str(e), row.to_numpy()) for e, row in means.iterrows()] if hasattr(means, "iterrows")
                 else [(str(e), v) for e, v in dict(means).items()])
        if not items:
            raise ValueError("no emotion means: give at least one emotion's mean emotion latent "
                             "(conversion.emotion_means of the training clips)")
        self.emotions = [e for e, _ in items]
        self.own = np.asarray(own, dtype=np.float64).reshape(-1)
        self.k = len(self.own)
        rows = [np.asarray(v, dtype=np.float64).reshape(-1) for _, v in items]
        bad = [e for e, r in zip(self.emotions, rows) if r.shape != (self.k,)]
        if bad:
            raise ValueError(f"the means of {bad} do not have the {self.k} dimensions of the emotion latent")
        self.table = np.vstack([self.own[None], *[r[None] for r in rows]])  # (1 + n_emotions, k)

    @property
    def names(self) -> list[str]:
        """The weights' names: :data:`OWN` then the emotions."""
        return [OWN, *self.emotions]

    def weights_vector(self, weights: Mapping[str, float]) -> np.ndarray:
        """``weights`` (name -> weight >= 0, missing: 0) as a vector in :attr:`names` order."""
        unknown = set(weights) - set(self.names)
        if unknown:
            raise KeyError(f"unknown emotion weight(s) {sorted(unknown)}; known: {self.names}")
        w = np.array([float(weights.get(n, 0.0)) for n in self.names])
        if np.any(w < 0) or not np.all(np.isfinite(w)):
            raise ValueError(f"emotion weights must be finite and >= 0, got {dict(weights)}")
        return w

    def latent(self, weights: Mapping[str, float]) -> np.ndarray:
        """The emotion latent (k,) float32: ``sum_j w_j m_j / sum_j w_j`` over own and the emotions (own if all 0)."""
        w = self.weights_vector(weights)
        s = w.sum()
        e = self.own if s <= 0 else (w @ self.table) / s
        return e.astype(np.float32)

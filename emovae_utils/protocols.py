"""Speaker-independent evaluation protocols: which actors a fold holds out, and which clips it tests on.

Two protocols, each a set of actor folds (every actor is a test actor exactly once):

* ``"study"``: the study's five folds (:data:`emovae_utils.data.ACTOR_FOLDS`), tested on statement 01
  (the study's clips: 720 clips, 24 actors), as the published small-model baselines of the study
  reference;
* ``"emobox"``: EmoBox's RAVDESS partition (:data:`EMOBOX_FOLDS`: six folds of four actors), tested on
  both statements (240 test clips per fold), the partition of the field's leaderboard
  (``../shared/docs/anchors.md``). Training clips of a fold are all clips of the other 20 actors.

Nothing fitted or tuned may read a fold's test actors: :func:`fold_actors` names them,
:func:`validation_actors` picks validation actors among the training actors only.

Examples
--------
>>> fold_actors(0, "emobox")
(1, 11, 20, 21)
>>> PROTOCOLS["study"].n_folds, PROTOCOLS["emobox"].n_folds
(5, 6)
>>> sorted(a for f in range(6) for a in fold_actors(f, "emobox")) == list(range(1, 25))
True
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from .data import ACTOR_FOLDS

__all__ = ["Protocol", "PROTOCOLS", "EMOBOX_FOLDS", "EMOBOX_LEADERBOARD", "fold_actors", "held_out_rows",
           "protocol_rows", "validation_actors", "check_protocol"]

#: EmoBox's RAVDESS partition: the test actors of folds 1-6 (here 0-5), from its published partition files.
EMOBOX_FOLDS: tuple[tuple[int, ...], ...] = (
    (1, 11, 20, 21),
    (4, 10, 12, 14),
    (8, 9, 19, 23),
    (3, 5, 7, 24),
    (2, 15, 16, 18),
    (6, 13, 17, 22),
)

#: EmoBox's published RAVDESS results (weighted accuracy, %, mean over its 6 folds): frozen pre-trained
#: speech models with a small trained head (Linear -> ReLU -> mean pool -> Linear), not trained from scratch.
EMOBOX_LEADERBOARD: dict[str, float] = {
    "Whisper large v3": 75.87, "WavLM large": 72.22, "data2vec 2.0 large": 71.63, "HuBERT large": 70.29,
    "HuBERT base": 66.21, "WavLM base": 62.10, "wav2vec 2.0 base": 55.40, "data2vec base": 52.22,
}


@dataclass(frozen=True)
class Protocol:
    """A speaker-independent protocol: its actor folds and the clips it tests on.

    Parameters
    ----------
    name : str
    folds : tuple of tuple of int
        Test actors of each fold (actor numbers 1-24).
    test_clips : mapping
        Index column -> value the test clips must have (``{"statement": 1}``; empty = all clips).
    description : str
    """

    name: str
    folds: tuple[tuple[int, ...], ...]
    test_clips: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""

    @property
    def n_folds(self) -> int:
        """Number of folds."""
        return len(self.folds)


PROTOCOLS: dict[str, Protocol] = {
    "study": Protocol("study", ACTOR_FOLDS, {"statement": 1},
                      "the study's 5 actor folds, statement 01 (720 clips)"),
    "emobox": Protocol("emobox", EMOBOX_FOLDS, {},
                       "EmoBox's RAVDESS partition: 6 folds of 4 actors, both statements (1440 clips)"),
}


def check_protocol(protocol: str | None) -> Protocol:
    """The :class:`Protocol` named ``protocol`` (None: ``"study"``); a ValueError naming the known ones."""
    name = "study" if protocol is None else protocol
    if name not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    return PROTOCOLS[name]


def fold_actors(fold: int, protocol: str | None = None) -> tuple[int, ...]:
    """The test actors of ``fold`` under ``protocol`` (default ``"study"``).

    Raises
    ------
    ValueError
        For an unknown protocol or a fold out of range.
    """
    folds = check_protocol(protocol).folds
    if not 0 <= int(fold) < len(folds):
        raise ValueError(f"fold must be 0..{len(folds) - 1} under protocol {protocol or 'study'!r}, got {fold}")
    return folds[int(fold)]


def protocol_rows(index: pd.DataFrame, protocol: str | None = None) -> np.ndarray:
    """Boolean mask (N,) of the clips a protocol evaluates on (the study's: statement 01; EmoBox's: all).

    Examples
    --------
    >>> idx = pd.DataFrame({"actor": [1, 1], "statement": [1, 2]})
    >>> protocol_rows(idx).tolist(), protocol_rows(idx, "emobox").tolist()
    ([True, False], [True, True])
    """
    keep = np.ones(len(index), dtype=bool)
    for column, value in check_protocol(protocol).test_clips.items():
        keep &= (index[column] == value).to_numpy()
    return keep


def held_out_rows(index: pd.DataFrame, fold: int, protocol: str | None = None) -> np.ndarray:
    """Boolean mask (N,) of the test clips of ``fold``: its actors' clips that the protocol tests on.

    Examples
    --------
    >>> idx = pd.DataFrame({"actor": [1, 1, 2, 11], "statement": [1, 2, 1, 2]})
    >>> held_out_rows(idx, 0, "emobox").tolist(), held_out_rows(idx, 4, "study").tolist()
    ([True, True, False, True], [True, False, False, False])
    """
    return index["actor"].isin(fold_actors(fold, protocol)).to_numpy() & protocol_rows(index, protocol)


def validation_actors(train_actors: Sequence[int], genders: Mapping[int, str], n: int = 4,
                      seed: int = 0) -> tuple[int, ...]:
    """Validation actors drawn from a fold's training actors only, half of each gender.

    Parameters
    ----------
    train_actors : sequence of int
        The fold's training actors (never its test actors).
    genders : mapping
        Actor -> gender (``"male"``/``"female"``).
    n : int, default 4
        How many (even: ``n // 2`` per gender).
    seed : int, default 0
        Of the draw.

    Returns
    -------
    tuple of int
        Sorted actors, a subset of ``train_actors``.

    Examples
    --------
    >>> g = {a: "male" if a % 2 else "female" for a in range(1, 25)}
    >>> train = [a for a in range(1, 25) if a not in (2, 5, 14, 15, 16)]
    >>> v = validation_actors(train, g, n=4, seed=0)
    >>> len(v), set(v) <= set(train), sum(g[a] == "male" for a in v)
    (4, True, 2)
    """
    if n < 2 or n % 2:
        raise ValueError(f"n must be an even number >= 2 (half per gender), got {n}")
    rng = np.random.default_rng(seed)
    picked: list[int] = []
    for gender in ("female", "male"):
        pool = sorted(int(a) for a in train_actors if genders[int(a)] == gender)
        if len(pool) <= n // 2:
            raise ValueError(f"only {len(pool)} {gender} training actors: too few to hold out {n // 2} for validation")
        picked += [int(a) for a in rng.choice(pool, size=n // 2, replace=False)]
    return tuple(sorted(picked))
